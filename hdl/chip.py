"""The chip top: register block, core grid, interconnect, clock gating, host bus.

The host reaches everything through one 32-bit word bus (``chip_bus_signature``), whose
addresses are laid out in ``neurram/spec/regmap.py``: space 0 is the register file, spaces 1-6 are the
buffers of one core (or, for writes to core 63, of every core selected in CORE_SELECT: the
interconnect's broadcast). The host-protocol engine (``hdl/protocol.py``) drives this bus from a
byte stream; simulations may drive it directly.

Cores are emitted once as the Verilog module ``neurram_core`` and instantiated per grid position
(``core_<i>``), so the Verilog and the Verilator build do not grow with the core count. Each
core's clock is gated (ASIC style, the enable latched on the falling edge) unless it is enabled
and busy or starting, or the host or a cell command addresses it: an idle chip costs almost
nothing to simulate, and a disabled core keeps its state and resumes when enabled again.
"""

from amaranth import ClockDomain, ClockSignal, Instance, Module, Mux, ResetSignal, Signal
from amaranth.hdl import DomainRenamer
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .bus import chip_bus_signature
from .chip_control import BatchControl
from .chip_router import BusRouter
from .clock_gates import CoreClockGates
from neurram.spec import regmap
from neurram.spec.mvm import SETTINGS_FIELDS
from neurram.spec.writeverify import WV_REGISTERS, wv_start_ok

from .core import CimCore, core_signature
from .registers import CoreSettings
from .protocol import ProtocolEngine
from .registers import RegisterFile
from .writeverify import WvSettings

__all__ = ["chip_bus_signature", "NeurramChip", "CORE_MODULE", "instance_ports"]

CORE_MODULE = "neurram_core"


def instance_ports(signature: wiring.Signature, interface) -> dict:
    """``Instance`` keyword arguments for a module converted from a component with ``signature``,
    connected to ``interface``'s signals: ports named as ``verilog.convert`` names them
    (``bus__space``), inputs ``i_``, outputs ``o_``."""
    return {("i_" if member.flow == In else "o_") + "__".join(map(str, path)): value
            for path, member, value in signature.flatten(interface)}


class NeurramChip(wiring.Component):
    """The whole chip for a ChipConfig.

    Host ports: ``rx``/``tx``, the byte streams of the framed protocol (docs/protocol.md), which a
    UART or the co-simulation's socket server carries; and ``bus``, the word bus itself, for
    testbenches that skip the protocol. Use one host port at a time.
    ``hierarchical=False`` elaborates the cores inline (for the Amaranth simulator, which cannot
    run Verilog instances, and FPGA builds). ``array_factory(config, core_index)``, with inline
    cores only, builds each core's array (default: the black box; FPGA builds pass
    :class:`neurram.hdl.fpga.emulated_array.EmulatedArray`).
    """

    def __init__(self, config, hierarchical: bool = True, max_words: int = 256, array_factory=None):
        if hierarchical and array_factory is not None:
            raise ValueError("array_factory needs inline cores (hierarchical=False)")
        self.config = config
        self.hierarchical = hierarchical
        self.max_words = max_words
        self.array_factory = array_factory
        super().__init__({
            "bus": In(chip_bus_signature()),
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
        })

    def elaborate(self, platform):
        m = Module()
        # The reset enters through a register, and the logic runs in a domain reset by it, so
        # that no logic but the input registers hangs off a top-level input (Verilator speed).
        rst_q = Signal(init=1, reset_less=True)
        m.domains.pad = ClockDomain("pad", reset_less=True, local=True)
        m.domains.main = ClockDomain("main", local=True)
        m.d.comb += [ClockSignal("pad").eq(ClockSignal("sync")),
                     ClockSignal("main").eq(ClockSignal("sync")), ResetSignal("main").eq(rst_q)]
        m.d.pad += rst_q.eq(ResetSignal("sync"))
        m.submodules.logic = logic = DomainRenamer("main")(_ChipLogic(self.config, self.hierarchical, rst_q,
                                                                              self.array_factory))
        m.submodules.protocol = engine = DomainRenamer("main")(ProtocolEngine(self.config, self.max_words))
        # Request bytes enter through a one-entry register, so the engine hangs off no top input.
        rx_data = Signal(8)
        rx_full = Signal()
        m.d.comb += [self.rx.ready.eq(~rx_full), engine.rx.payload.eq(rx_data), engine.rx.valid.eq(rx_full)]
        with m.If(engine.rx.ready & rx_full):
            m.d.main += rx_full.eq(0)
        with m.If(self.rx.valid & ~rx_full):
            m.d.main += [rx_data.eq(self.rx.payload), rx_full.eq(1)]
        wiring.connect(m, wiring.flipped(self.tx), engine.tx)
        # Two masters on the word bus: the direct port wins in a cycle where it is active.
        direct = self.bus.w_en | self.bus.r_en
        m.d.comb += [
            logic.bus.addr.eq(Mux(direct, self.bus.addr, engine.bus.addr)),
            logic.bus.w_data.eq(Mux(direct, self.bus.w_data, engine.bus.w_data)),
            logic.bus.w_en.eq(self.bus.w_en | engine.bus.w_en),
            logic.bus.r_en.eq(self.bus.r_en | engine.bus.r_en),
            self.bus.r_data.eq(logic.bus.r_data), self.bus.r_valid.eq(logic.bus.r_valid),
            engine.bus.r_data.eq(logic.bus.r_data), engine.bus.r_valid.eq(logic.bus.r_valid),
        ]
        return m


class _ChipLogic(wiring.Component):
    """The chip without its host ports' registers: register block, bus router, command and status
    controller, clock gates and the cores."""

    def __init__(self, config, hierarchical, rst_q, array_factory=None):
        self.config = config
        self.hierarchical = hierarchical
        self.rst_q = rst_q
        self.array_factory = array_factory
        super().__init__({"bus": In(chip_bus_signature())})

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        n = cfg.n_cores
        m.submodules.regs = regs = RegisterFile(cfg)
        m.submodules.router = router = BusRouter(cfg, regs.bus.signature.flip())
        m.submodules.control = control = BatchControl(cfg)
        m.submodules.clock_gates = gates = CoreClockGates(n, cfg.clock_gating)
        wiring.connect(m, wiring.flipped(self.bus), router.bus)
        wiring.connect(m, router.regs, regs.bus)

        enabled = Signal(n)
        selected = Signal(n)
        for i in range(n):
            m.d.comb += [enabled[i].eq(regs.core_enable[i // 32].mask[i % 32]),
                         selected[i].eq(regs.core_select[i // 32].mask[i % 32])]
        settings = Signal(CoreSettings)                    # MVM settings, broadcast
        m.d.comb += _settings_from_registers(settings, regs)
        wv_settings = Signal(WvSettings)                   # write-verify settings, broadcast
        m.d.comb += control.read_ok.eq(regs.cell_timing.read_mV != 0)
        if cfg.wv_engine:                                  # without the engine, wv_start is refused
            m.d.comb += _wv_settings_from_registers(wv_settings, regs)
            m.d.comb += control.wv_ok.eq(wv_start_ok(wv_settings, cfg, wv_settings.row, wv_settings.read_mV,
                                                     wv_settings.width_ns))

        ctrl, cmd = regs.ctrl, control.command
        m.d.comb += [
            cmd.start.eq(ctrl.start), cmd.abort.eq(ctrl.abort), cmd.clear_counters.eq(ctrl.clear_counters),
            cmd.cell_program.eq(ctrl.cell_program), cmd.cell_read.eq(ctrl.cell_read), cmd.wv_start.eq(ctrl.wv_start),
            control.settings.eq(settings), control.enabled.eq(enabled), control.selected.eq(selected),
            control.cell_core.eq(regs.cell_addr.core),
            router.selected.eq(selected),
            gates.enabled.eq(enabled), gates.start.eq(control.start),
            gates.cell.eq(control.cell_program | control.cell_read | control.wv_start),
            gates.clear.eq(control.clear_counters),
            regs.status.busy.eq(control.status.busy), regs.status.done.eq(control.status.done),
            regs.status.cell_busy.eq(control.status.cell_busy), regs.status.cell_done.eq(control.status.cell_done),
            regs.status.config_error.eq(control.status.config_error),
        ]

        cores = [self._core(m, i, regs, settings, wv_settings, control, router.cores[i], gates.clk[i])
                 for i in range(n)]
        for i, io in enumerate(cores):
            m.d.comb += [control.busy[i].eq(io.busy), gates.busy[i].eq(io.busy),
                         gates.access[i].eq(router.cores[i].w_en | router.cores[i].r_en),
                         regs.core_status[i].enabled.eq(enabled[i])]

        # The result of the last cell read, from the core in CELL_ADDR.
        cell_result = Signal(16)
        cell_valid = Signal()
        for i, io in enumerate(cores):
            with m.If(regs.cell_addr.core == i):
                m.d.comb += [cell_result.eq(io.cell.result), cell_valid.eq(io.cell.valid)]
        m.d.comb += [regs.cell_result.g_10nS.eq(cell_result), regs.cell_result.valid.eq(cell_valid)]
        return m

    def _core(self, m, i, regs, settings, wv_settings, control, bus, clk):
        """Core ``i``: a ``neurram_core`` instance (or, not hierarchical, the core inline) on the
        gated clock ``clk``, its inputs, its status and its counter registers. Returns the
        interface that stands for the core's ports."""
        cfg = self.config
        signature = core_signature(cfg)
        io = signature.create(path=(f"core{i}",))
        wiring.connect(m, bus, io.bus)
        cell = io.cell
        m.d.comb += [
            io.settings.eq(settings), io.start.eq(control.start[i]), io.abort_batch.eq(control.abort),
            io.clear_counters.eq(control.clear_counters),
            io.v_pos_mV.eq(regs.core_bias[i].v_pos_mV), io.v_neg_mV.eq(regs.core_bias[i].v_neg_mV),
            io.packet_uV.eq(regs.core_neuron[i].packet_uV),
            io.core_index.eq(i), io.wv_start.eq(control.wv_start[i]), io.wv.eq(wv_settings),
            cell.program.eq(control.cell_program[i]), cell.read.eq(control.cell_read[i]),
            cell.row.eq(regs.cell_addr.row), cell.col.eq(regs.cell_addr.col),
            cell.polarity.eq(regs.cell_pulse.polarity.as_value()), cell.pulse_mV.eq(regs.cell_pulse.amplitude_mV),
            cell.gate_mV.eq(regs.cell_pulse.gate_mV), cell.width_ns.eq(regs.cell_timing.width_ns),
            cell.read_mV.eq(regs.cell_timing.read_mV),
        ]
        if cfg.stochastic_neurons:
            m.d.comb += [io.noise_uV.eq(regs.stochastic.noise_uV), io.lfsr_seed.eq(regs.lfsr_seed.seed)]
        if self.hierarchical:
            m.submodules[f"core_{i}"] = Instance(CORE_MODULE, i_clk=clk, i_rst=self.rst_q,
                                                 **instance_ports(signature, io))
        else:
            dom = f"core{i}"
            m.domains += ClockDomain(dom, local=True)
            m.d.comb += [ClockSignal(dom).eq(clk), ResetSignal(dom).eq(self.rst_q)]
            factory = None if self.array_factory is None else (lambda i=i: self.array_factory(cfg, i))
            m.submodules[f"core_{i}"] = core = DomainRenamer(dom)(CimCore(cfg, i, factory))
            wiring.connect(m, wiring.flipped(io), core)

        st = regs.core_status[i]
        m.d.comb += [st.busy.eq(io.busy), st.batch_index.eq(io.batch_index)]
        counters = (("count_mvm", "mvm"), ("count_pulse", "pulse"), ("count_compare", "compare"),
                    ("count_step", "step"), ("count_program", "program"), ("count_read", "read"), ("count_busy", "busy"))
        for reg, field in counters if cfg.event_counters else ():     # without counters: no COUNT_*
            m.d.comb += getattr(regs, reg)[i].count.eq(getattr(io.counters, field))
        return io


def _settings_from_registers(settings, regs) -> list:
    """The batch settings as MVM_CONFIG, MVM_TIMING, NEURON_CONFIG and BATCH hold them."""
    return [getattr(settings, name).eq(getattr(getattr(regs, reg.lower()), name)) for name, reg in SETTINGS_FIELDS] \
        + [settings.batch_count.eq(regs.batch.count)]


def _wv_settings_from_registers(wv_settings, regs) -> list:
    """The write-verify engine's settings as WV_*, CELL_ADDR.row and CELL_TIMING hold them."""
    out = [wv_settings.row.eq(regs.cell_addr.row), wv_settings.width_ns.eq(regs.cell_timing.width_ns),
           wv_settings.read_mV.eq(regs.cell_timing.read_mV)]
    for reg in WV_REGISTERS:
        for f in regmap.register(reg).fields:
            out.append(getattr(wv_settings, f.name).eq(getattr(getattr(regs, reg.lower()), f.name)))
    return out

