"""The chip top: register block, core grid, interconnect, clock gating, host bus.

The host reaches everything through one 32-bit word bus (``chip_bus_signature``), whose
addresses are laid out in ``hdl/regmap.py``: space 0 is the register file, spaces 1-6 are the
buffers of one core (or, for writes to core 63, of every core selected in CORE_SELECT: the
interconnect's broadcast). The host-protocol engine (``hdl/protocol.py``) drives this bus from a
byte stream; simulations may drive it directly.

Cores are emitted once as the Verilog module ``neurram_core`` and instantiated per grid position
(``core_<i>``), so the Verilog and the Verilator build do not grow with the core count. Each
core's clock is gated (ASIC style, the enable latched on the falling edge) unless it is enabled
and busy or starting, or the host or a cell command addresses it: an idle chip costs almost
nothing to simulate, and a disabled core keeps its state and resumes when enabled again.
"""

from amaranth import Cat, ClockDomain, ClockSignal, Instance, Module, Mux, ResetSignal, Signal
from amaranth.hdl import DomainRenamer
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from . import regmap
from .bus import chip_bus_signature
from .core import CimCore, CoreCounters, CoreSettings, Space, cell_port_signature, core_bus_signature
from .protocol import ProtocolEngine
from .registers import RegisterFile

__all__ = ["chip_bus_signature", "NeurramChip", "CORE_MODULE"]

CORE_MODULE = "neurram_core"


class _CoreIO:
    """The signals the chip uses to talk to one core instance."""

    def __init__(self, config, i):
        self.settings = Signal(CoreSettings, name=f"core{i}_settings")
        self.start = Signal(name=f"core{i}_start")
        self.abort_batch = Signal(name=f"core{i}_abort")
        self.busy = Signal(name=f"core{i}_busy")
        self.batch_index = Signal(13, name=f"core{i}_batch_index")
        self.v_pos_mV = Signal(10, name=f"core{i}_v_pos_mV")
        self.v_neg_mV = Signal(10, name=f"core{i}_v_neg_mV")
        self.packet_uV = Signal(14, name=f"core{i}_packet_uV")
        self.noise_uV = Signal(14, name=f"core{i}_noise_uV")
        self.lfsr_seed = Signal(32, name=f"core{i}_lfsr_seed")
        self.core_index = Signal(6, name=f"core{i}_index")
        self.bus = core_bus_signature().create(path=(f"core{i}_bus",))
        self.cell = cell_port_signature().create(path=(f"core{i}_cell",))
        self.clear_counters = Signal(name=f"core{i}_clear_counters")
        self.counters = Signal(CoreCounters, name=f"core{i}_counters")

    def instance_ports(self):
        """Instance keyword arguments, named as verilog.convert names CimCore's ports."""
        kw = {}
        for name in ("settings", "start", "abort_batch", "v_pos_mV", "v_neg_mV", "packet_uV", "clear_counters",
                     "noise_uV", "lfsr_seed", "core_index"):
            kw[f"i_{name}"] = getattr(self, name)
        for name in ("busy", "batch_index", "counters"):
            kw[f"o_{name}"] = getattr(self, name)
        for name in ("space", "offset", "w_data", "w_en", "r_en"):
            kw[f"i_bus__{name}"] = getattr(self.bus, name)
        kw["o_bus__r_data"] = self.bus.r_data
        for name in ("program", "read", "row", "col", "polarity", "pulse_mV", "gate_mV", "width_ns", "read_mV"):
            kw[f"i_cell__{name}"] = getattr(self.cell, name)
        kw["o_cell__result"] = self.cell.result
        kw["o_cell__valid"] = self.cell.valid
        return kw


class NeurramChip(wiring.Component):
    """The whole chip for a ChipConfig.

    Host ports: ``rx``/``tx``, the byte streams of the framed protocol (docs/protocol.md), which a
    UART or the co-simulation's socket server carries; and ``bus``, the word bus itself, for
    testbenches that skip the protocol. Use one host port at a time.
    ``hierarchical=False`` elaborates the cores inline (for the Amaranth simulator, which cannot
    run Verilog instances).
    """

    def __init__(self, config, hierarchical: bool = True, max_words: int = 256):
        self.config = config
        self.hierarchical = hierarchical
        self.max_words = max_words
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
        m.submodules.logic = logic = DomainRenamer("main")(_ChipLogic(self.config, self.hierarchical, rst_q))
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
    def __init__(self, config, hierarchical, rst_q):
        self.config = config
        self.hierarchical = hierarchical
        self.rst_q = rst_q
        super().__init__({"bus": In(chip_bus_signature())})

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        n = cfg.n_cores
        rst_q = self.rst_q
        m.domains.neg = ClockDomain("neg", clk_edge="neg", local=True)
        m.d.comb += [ClockSignal("neg").eq(ClockSignal("sync")), ResetSignal("neg").eq(ResetSignal("sync"))]

        m.submodules.regs = regs = RegisterFile(cfg)

        q_addr = Signal(32)
        q_wdata = Signal(32)
        q_wen = Signal()
        q_ren = Signal()
        m.d.sync += [q_addr.eq(self.bus.addr), q_wdata.eq(self.bus.w_data),
                    q_wen.eq(self.bus.w_en), q_ren.eq(self.bus.r_en)]
        space = q_addr[regmap.SPACE_SHIFT:regmap.SPACE_SHIFT + 4]
        core_sel = q_addr[regmap.CORE_SHIFT:regmap.CORE_SHIFT + 6]
        offset = q_addr[:regmap.OFFSET_BITS]
        to_regs = space == 0

        # ---- register space ---------------------------------------------------------------------
        m.d.comb += [regs.bus.addr.eq(q_addr[:16]), regs.bus.w_data.eq(q_wdata),
                     regs.bus.w_en.eq(q_wen & to_regs), regs.bus.r_en.eq(q_ren & to_regs)]

        def mask_bit(reg_port, i):
            return reg_port[i // 32].mask[i % 32]

        enabled = Signal(n)
        selected = Signal(n)
        for i in range(n):
            m.d.comb += [enabled[i].eq(mask_bit(regs.core_enable, i)),
                         selected[i].eq(mask_bit(regs.core_select, i))]

        # ---- MVM settings, broadcast ------------------------------------------------------------
        settings = Signal(CoreSettings)
        mc = regs.mvm_config
        conv_v = mc.conversion.as_value()
        m.d.comb += [
            settings.direction.eq(mc.direction.as_value()), settings.input_source.eq(mc.input_source.as_value()),
            settings.input_bits.eq(mc.input_bits), settings.input_signed.eq(mc.input_signed),
            settings.conversion.eq(conv_v), settings.output_bits.eq(mc.output_bits),
            settings.activation.eq(mc.activation.as_value()), settings.stochastic.eq(mc.stochastic),
            settings.pulse_multiplier.eq(regs.mvm_timing.pulse_multiplier),
            settings.max_steps.eq(regs.neuron_config.max_steps),
            settings.clip.eq(regs.neuron_config.clip),
            settings.batch_count.eq(regs.batch.count),
            settings.recurrent_steps.eq(regs.batch.recurrent_steps),
        ]
        # A start with a configuration the chip cannot run is refused (STATUS.config_error).
        conv_ok = Signal()
        supported = [{"sign": 0, "decrement": 1, "sar": 2}[k] for k in cfg.conversions]
        conv = mc.conversion.as_value()
        m.d.comb += conv_ok.eq(Cat(*[conv == v for v in supported]).any())
        bits_ok = Signal()
        m.d.comb += bits_ok.eq(Mux(mc.input_signed, mc.input_bits >= 2, mc.input_bits >= 1)
                               & (mc.input_bits <= cfg.input_bits_max))
        out_ok = Signal()
        m.d.comb += out_ok.eq((conv != 2) | ((mc.output_bits >= 1) & (mc.output_bits <= cfg.output_bits_max)))
        config_ok = Signal()
        m.d.comb += config_ok.eq(conv_ok & bits_ok & out_ok & (mc.direction.as_value() != 3)
                                 & (regs.batch.count >= 1) & (regs.batch.count <= cfg.batch_depth)
                                 & (regs.mvm_timing.pulse_multiplier >= 1)
                                 & ((mc.direction.as_value() != 2) | (regs.batch.recurrent_steps >= 1))
                                 & (regs.neuron_config.max_steps >= 1)
                                 & (selected & enabled).any())

        start_q = Signal(n)        # per-core start strobe, registered
        abort_q = Signal()
        clear_q = Signal()
        m.d.sync += [start_q.eq(Mux(regs.ctrl.start & config_ok, selected & enabled, 0)),
                     abort_q.eq(regs.ctrl.abort), clear_q.eq(regs.ctrl.clear_counters)]

        # ---- cell commands ------------------------------------------------------------------------
        cell_core = regs.cell_addr.core
        cell_prog_q = Signal(n)
        cell_read_q = Signal(n)
        for i in range(n):
            # A power-gated core cannot program or read its cells: commands need CORE_ENABLE.
            m.d.sync += [cell_prog_q[i].eq(regs.ctrl.cell_program & (cell_core == i) & enabled[i]),
                         cell_read_q[i].eq(regs.ctrl.cell_read & (cell_core == i) & enabled[i])]

        # ---- buffer requests, registered once more so the clock gate sees them -------------------
        b_space = Signal(Space)
        b_offset = Signal(22)
        b_wdata = Signal(32)
        b_wen = Signal(n)
        b_ren = Signal(n)
        m.d.sync += [b_space.eq(space), b_offset.eq(offset), b_wdata.eq(q_wdata)]
        for i in range(n):
            hit = (core_sel == i) | ((core_sel == regmap.BROADCAST_CORE) & selected[i])
            m.d.sync += [b_wen[i].eq(q_wen & ~to_regs & hit),
                         b_ren[i].eq(q_ren & ~to_regs & (core_sel == i))]
        read_core = Signal(range(max(2, n)))
        # A core answers two cycles after the request (input register, then its read register).
        core_read_pending = Signal()
        core_read_pending1 = Signal()
        m.d.sync += [core_read_pending1.eq(b_ren.any()), core_read_pending.eq(core_read_pending1)]
        with m.If(q_ren & ~to_regs):
            m.d.sync += read_core.eq(core_sel)

        # ---- cores ----------------------------------------------------------------------------
        ios = []
        busy = Signal(n)
        for i in range(n):
            io = _CoreIO(cfg, i)
            ios.append(io)
            m.d.comb += [
                io.settings.eq(settings), io.start.eq(start_q[i]), io.abort_batch.eq(abort_q),
                io.v_pos_mV.eq(regs.core_bias[i].v_pos_mV), io.v_neg_mV.eq(regs.core_bias[i].v_neg_mV),
                io.packet_uV.eq(regs.core_neuron[i].packet_uV),
                io.noise_uV.eq(regs.stochastic.noise_uV), io.lfsr_seed.eq(regs.lfsr_seed.seed),
                io.core_index.eq(i),
                io.bus.space.eq(b_space), io.bus.offset.eq(b_offset), io.bus.w_data.eq(b_wdata),
                io.bus.w_en.eq(b_wen[i]), io.bus.r_en.eq(b_ren[i]),
                io.cell.program.eq(cell_prog_q[i]), io.cell.read.eq(cell_read_q[i]),
                io.cell.row.eq(regs.cell_addr.row), io.cell.col.eq(regs.cell_addr.col),
                io.cell.polarity.eq(regs.cell_pulse.polarity.as_value()), io.cell.pulse_mV.eq(regs.cell_pulse.amplitude_mV),
                io.cell.gate_mV.eq(regs.cell_pulse.gate_mV), io.cell.width_ns.eq(regs.cell_timing.width_ns),
                io.cell.read_mV.eq(regs.cell_timing.read_mV),
                io.clear_counters.eq(clear_q),
                busy[i].eq(io.busy),
            ]
            # Clock gate: run while enabled and busy/starting, or while addressed. A request takes
            # two core cycles (the core registers its inputs), so the gate stays open one cycle more.
            wake = Signal(name=f"core{i}_wake")
            wake_q = Signal(name=f"core{i}_wake_q", reset_less=True)   # keeps the gate open after reset
            m.d.comb += wake.eq((enabled[i] & (io.busy | start_q[i] | cell_prog_q[i] | cell_read_q[i]))
                                | b_wen[i] | b_ren[i] | clear_q | ResetSignal("sync"))
            m.d.sync += wake_q.eq(wake)
            # Clocked through reset (init 1) so that synchronous reset reaches every core.
            gate = Signal(name=f"core{i}_gate", init=1)
            if cfg.clock_gating:
                m.d.neg += gate.eq(wake | wake_q)
            gclk = Signal(name=f"core{i}_clk")
            m.d.comb += gclk.eq(ClockSignal("sync") & gate)
            if self.hierarchical:
                m.submodules[f"core_{i}"] = Instance(CORE_MODULE, i_clk=gclk, i_rst=rst_q, **io.instance_ports())
            else:
                core = CimCore(cfg, i)
                dom = f"core{i}"
                m.domains[dom] = ClockDomain(dom, local=True)
                m.d.comb += [ClockSignal(dom).eq(gclk), ResetSignal(dom).eq(rst_q)]
                m.submodules[f"core_{i}"] = DomainRenamer(dom)(core)
                for k, v in io.instance_ports().items():
                    d, name = k[:1], k[2:]
                    path = name.split("__")
                    port = core
                    for p in path:
                        port = getattr(port, p)
                    m.d.comb += (port.eq(v) if d == "i" else v.eq(port))

            st = regs.core_status[i]
            m.d.comb += [st.busy.eq(io.busy), st.enabled.eq(enabled[i]), st.batch_index.eq(io.batch_index)]
            for reg, field in (("count_mvm", "mvm"), ("count_pulse", "pulse"), ("count_compare", "compare"),
                               ("count_step", "step"), ("count_program", "program"), ("count_read", "read"),
                               ("count_busy", "busy")):
                m.d.comb += getattr(regs, reg)[i].count.eq(getattr(io.counters, field))

        # ---- status ---------------------------------------------------------------------------------
        # A core's busy shows two cycles after its start strobe (input register, then FSM).
        start_q2 = Signal(n)
        m.d.sync += start_q2.eq(start_q)
        running = Signal()
        done = Signal()
        config_error = Signal()
        cell_core_enabled = Signal()
        m.d.comb += cell_core_enabled.eq((enabled >> cell_core)[0])
        with m.If(regs.ctrl.start):
            m.d.sync += [done.eq(0), config_error.eq(~config_ok), running.eq(config_ok)]
        with m.Elif(regs.ctrl.cell_program | regs.ctrl.cell_read):
            m.d.sync += config_error.eq(~cell_core_enabled)
        with m.Elif(running & ~start_q.any() & ~start_q2.any() & ~busy.any()):
            m.d.sync += [running.eq(0), done.eq(1)]
        cell_q2 = Signal(n)
        m.d.sync += cell_q2.eq(cell_prog_q | cell_read_q)
        cell_busy = Signal()
        cell_done = Signal()
        cell_sel_busy = Signal()
        m.d.comb += cell_sel_busy.eq((busy >> cell_core)[0])
        with m.If(regs.ctrl.cell_program | regs.ctrl.cell_read):
            m.d.sync += [cell_busy.eq(1), cell_done.eq(0)]
        with m.Elif(cell_busy & ~(cell_prog_q | cell_read_q).any() & ~cell_q2.any() & ~cell_sel_busy):
            m.d.sync += [cell_busy.eq(0), cell_done.eq(1)]
        m.d.comb += [regs.status.busy.eq(running), regs.status.done.eq(done),
                     regs.status.cell_busy.eq(cell_busy), regs.status.cell_done.eq(cell_done),
                     regs.status.config_error.eq(config_error)]
        cell_result = Signal(16)
        cell_valid = Signal()
        for i in range(n):
            with m.If(cell_core == i):
                m.d.comb += [cell_result.eq(ios[i].cell.result), cell_valid.eq(ios[i].cell.valid)]
        m.d.comb += [regs.cell_result.g_10nS.eq(cell_result), regs.cell_result.valid.eq(cell_valid)]

        # ---- read data ------------------------------------------------------------------------------
        reg_read_valid = Signal()
        m.d.sync += reg_read_valid.eq(q_ren & to_regs)
        core_rdata = Signal(32)
        for i in range(n):
            with m.If(read_core == i):
                m.d.comb += core_rdata.eq(ios[i].bus.r_data)
        r_data = Signal(32)
        r_valid = Signal()
        m.d.sync += [r_valid.eq(reg_read_valid | core_read_pending),
                     r_data.eq(Mux(reg_read_valid, regs.bus.r_data, core_rdata))]
        m.d.comb += [self.bus.r_data.eq(r_data), self.bus.r_valid.eq(r_valid)]
        return m
