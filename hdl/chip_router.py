"""The chip's bus interconnect: the host's word bus to the register block and the core buffers.

Addresses (``neurram/spec/regmap.py``): space 0 is the register file, spaces 1-6 are the buffers of the
core in the core field, or, for writes to core 63 (BROADCAST_CORE), of every core selected in
CORE_SELECT. Every request is registered once on entry and once more before it reaches the
cores, so that the cores' clock gates see it a cycle ahead. Read data returns with ``r_valid``:
two cycles after a register read, four after a buffer read.
"""

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from neurram.spec import regmap
from .bus import chip_bus_signature
from .buffers import core_bus_signature
from .registers import Space

__all__ = ["BusRouter"]


class BusRouter(wiring.Component):
    """Routes ``bus`` (a slave of the chip bus) to ``regs`` (the register bus, whose signature the
    register block gives) and to ``cores[i]``, the buffer port of core i; ``selected`` is
    CORE_SELECT for broadcasts."""

    def __init__(self, config, register_bus: wiring.Signature):
        self.config = config
        n = config.n_cores
        super().__init__({
            "bus": In(chip_bus_signature()),
            "regs": Out(register_bus),
            "selected": In(n),
            "cores": Out(core_bus_signature()).array(n),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.config.n_cores
        bus, regs = self.bus, self.regs

        q_addr = Signal(32)
        q_wdata = Signal(32)
        q_wen = Signal()
        q_ren = Signal()
        m.d.sync += [q_addr.eq(bus.addr), q_wdata.eq(bus.w_data), q_wen.eq(bus.w_en), q_ren.eq(bus.r_en)]
        space = q_addr[regmap.SPACE_SHIFT:regmap.SPACE_SHIFT + 4]
        core_sel = q_addr[regmap.CORE_SHIFT:regmap.CORE_SHIFT + 6]
        offset = q_addr[:regmap.OFFSET_BITS]
        to_regs = space == Space.REGISTERS

        # ---- register space ---------------------------------------------------------------------
        m.d.comb += [regs.addr.eq(q_addr[:16]), regs.w_data.eq(q_wdata),
                     regs.w_en.eq(q_wen & to_regs), regs.r_en.eq(q_ren & to_regs)]

        # ---- buffer requests, registered once more so the clock gate sees them -------------------
        b_space = Signal(Space)
        b_offset = Signal(22)
        b_wdata = Signal(32)
        b_wen = Signal(n)
        b_ren = Signal(n)
        addressed = Cat(*[core_sel == i for i in range(n)])
        hit = addressed | Mux(core_sel == regmap.BROADCAST_CORE, self.selected, 0)
        m.d.sync += [b_space.eq(space), b_offset.eq(offset), b_wdata.eq(q_wdata),
                     b_wen.eq(Mux(q_wen & ~to_regs, hit, 0)), b_ren.eq(Mux(q_ren & ~to_regs, addressed, 0))]
        for i, port in enumerate(self.cores):
            m.d.comb += [port.space.eq(b_space), port.offset.eq(b_offset), port.w_data.eq(b_wdata),
                         port.w_en.eq(b_wen[i]), port.r_en.eq(b_ren[i])]

        # ---- read data ------------------------------------------------------------------------------
        read_core = Signal(range(max(2, n)))
        # A core answers two cycles after the request (input register, then its read register).
        core_read_pending = Signal()
        core_read_pending1 = Signal()
        m.d.sync += [core_read_pending1.eq(b_ren.any()), core_read_pending.eq(core_read_pending1)]
        with m.If(q_ren & ~to_regs):
            m.d.sync += read_core.eq(core_sel)
        reg_read_valid = Signal()
        m.d.sync += reg_read_valid.eq(q_ren & to_regs)
        core_rdata = Signal(32)
        for i, port in enumerate(self.cores):
            with m.If(read_core == i):
                m.d.comb += core_rdata.eq(port.r_data)
        m.d.sync += [bus.r_valid.eq(reg_read_valid | core_read_pending),
                     bus.r_data.eq(Mux(reg_read_valid, regs.r_data, core_rdata))]
        return m
