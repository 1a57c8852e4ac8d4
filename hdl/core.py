"""One compute-in-memory core: the digital controller around an analog array.

The controller (:class:`CoreController`) sequences batches of MVMs with these parts, each a
component of its own:

* :class:`~neurram.hdl.buffers.CoreBuffers` (``buffers.py``): the batch input buffer and output
  buffer (bit-planes), the two ternary registers (BL side and SL side), the neuron mask and the
  input polarity, and the host's access to all of them;
* :class:`~neurram.hdl.sequencer.InputSequencer` (``sequencer.py``): the bit-serial input
  sequencer (phases, pulse multiplier, ternary inputs) and the recurrent write-back of outputs as
  inputs;
* :class:`~neurram.hdl.conversion.ConversionController` (``conversion.py``): the neuron
  controller (compare / step) with sign, charge-decrement and SAR conversion, ReLU and clipped
  ReLU, the neuron mask, and the output planes;
* :class:`~neurram.hdl.noise.NoiseSource` (``noise.py``): the stochastic neurons' random source,
  a cellular automaton seeded from LFSR_SEED;
* :class:`~neurram.hdl.cell.CellAccess` (``cell.py``): single-cell program and read for
  write-verify;
* :class:`~neurram.hdl.writeverify.WriteVerifyEngine` (``writeverify.py``): the on-chip
  write-verify engine, which drives the single-cell port while it runs;
* :class:`~neurram.hdl.counters.EventCounters` (``counters.py``): the event counters.

It talks to its array only through :func:`neurram.hdl.analog.analog_array_signature`; each part
drives and reads its own members of that port (:func:`~neurram.hdl.analog.analog_array_subset`).

Per-neuron state is bit-sliced (one ``lines``-bit vector per bit of state, e.g. seven vectors for
the step counters) so that every update is a handful of wide logic operations: this keeps the
generated Verilog small and the Verilator simulation fast.
"""


from amaranth import C, ClockDomain, ClockSignal, DomainRenamer, EnableInserter, Module, Mux, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .analog import AnalogArrayBlackBox, analog_array_signature, connect_array_parts
from .buffers import CoreBuffers, core_bus_signature
from .cell import CellAccess, cell_port_signature
from .conversion import ConversionController
from .counters import CoreCounters, EventCounters
from .noise import NoiseSource
from .registers import CoreSettings, Direction
from .sequencer import InputSequencer
from .writeverify import WriteVerifyEngine, WvSettings

__all__ = ["CoreCounters", "core_bus_signature", "cell_port_signature",
           "core_members", "core_signature", "CoreController", "CimCore"]


def core_members(config) -> dict:
    """Ports of a core (the controller and the whole core share them)."""
    return {
            "settings": In(CoreSettings),
            "start": In(1),
            "abort_batch": In(1),
            "busy": Out(1),
            "batch_index": Out(13),
            "v_pos_mV": In(10),
            "v_neg_mV": In(10),
            "packet_uV": In(14),
            "noise_uV": In(14),
            "lfsr_seed": In(32),
            "core_index": In(6),
            "bus": In(core_bus_signature()),
            "cell": In(cell_port_signature()),
            "wv_start": In(1),
            "wv": In(WvSettings),
            "clear_counters": In(1),
            "counters": Out(CoreCounters),
        }


def core_signature(config) -> wiring.Signature:
    """Signature of a core (:class:`CimCore`, :class:`CoreController`)."""
    return wiring.Signature(core_members(config))


class CoreController(wiring.Component):
    """The digital half of a core; its ``array`` port goes to the analog array.

    A batch runs, per vector: the input phase (sequencer), the conversion, the output planes
    (conversion), and for recurrent batches the write-back (sequencer) before the next step.
    Stochastic batches first warm the noise source up. Cell commands run while no batch does.
    """

    def __init__(self, config):
        self.config = config
        super().__init__(core_members(config))
        # The controller side of the analog boundary (connected to the array by CimCore).
        self.array = analog_array_signature(config).create(path=("array",))

    def elaborate(self, platform):
        m = Module()
        c = self.config
        m.submodules.buffers = buf = CoreBuffers(c)
        m.submodules.sequencer = seq = InputSequencer(c)
        m.submodules.conversion = conv = ConversionController(c)
        # Optional parts (ChipConfig): absent ones are not built.
        noise = NoiseSource(c.lines) if c.stochastic_neurons else None
        if noise is not None:
            m.submodules.noise = noise
        m.submodules.cell = cell = CellAccess(c)
        counters = EventCounters() if c.event_counters else None   # without: self.counters reads 0
        if counters is not None:
            m.submodules.counters = counters
        engine = WriteVerifyEngine(c) if c.wv_engine else None
        if engine is not None:
            m.submodules.wv_engine = engine
        cfg = Signal(CoreSettings)                         # settings latched at start
        vec = Signal(13)                                   # vector of the batch in progress
        rstep = Signal(8)                                  # recurrent step of the current vector
        abort_pending = Signal()
        forward = Signal()
        m.d.comb += forward.eq(cfg.direction != Direction.BACKWARD if c.backward else 1)

        # ---- the parts ----------------------------------------------------------------------------
        wiring.connect(m, wiring.flipped(self.bus), buf.bus)
        # The single-cell port: the chip's commands, or the write-verify engine while it runs.
        engine_busy = engine.busy if engine is not None else C(0, 1)
        for path, member, value in cell.cell.signature.flatten(cell.cell):
            name = path[0]
            if member.flow == In:
                m.d.comb += value.eq(Mux(engine.busy, getattr(engine.cell, name), getattr(self.cell, name))
                                     if engine is not None else getattr(self.cell, name))
            else:
                m.d.comb += getattr(self.cell, name).eq(value)
                if engine is not None:
                    m.d.comb += getattr(engine.cell, name).eq(value)
        if engine is not None:
            wiring.connect(m, engine.buffer, buf.wv)
            m.d.comb += [engine.settings.eq(self.wv), engine.start.eq(self.wv_start), engine.cell_busy.eq(cell.busy)]
        wiring.connect(m, seq.inputs, buf.inputs)
        wiring.connect(m, seq.drive, buf.drive)
        wiring.connect(m, seq.planes_out, buf.write_back)
        wiring.connect(m, conv.outputs, buf.outputs)
        wiring.connect(m, conv.latch, buf.latch)
        m.d.comb += [
            buf.vec.eq(vec), buf.forward.eq(forward),
            seq.settings.eq(cfg), seq.mask.eq(buf.mask), seq.polarity.eq(buf.polarity),
            seq.neurons.eq(conv.neurons),
            conv.settings.eq(cfg), conv.mask.eq(buf.mask), conv.clear.eq(seq.init),
            self.batch_index.eq(vec),
        ]
        if counters is not None:
            m.d.comb += [counters.clear.eq(self.clear_counters), self.counters.eq(counters.counters)]
        if noise is not None:
            m.d.comb += [noise.seed.eq(self.lfsr_seed), noise.core_index.eq(self.core_index),
                         noise.step.eq(conv.noise_step)]

        # ---- the analog port ----------------------------------------------------------------------
        arr = self.array
        rest = connect_array_parts(m, arr, [seq.array, conv.array, buf.array, cell.array])
        m.d.comb += [
            arr.direction.eq(~forward),
            arr.v_pos_mV.eq(self.v_pos_mV), arr.v_neg_mV.eq(self.v_neg_mV), arr.packet_uV.eq(self.packet_uV),
            arr.noise_uV.eq(self.noise_uV),
        ]
        if counters is not None:
            m.d.comb += [counters.strobe.eq(arr.strobe), counters.op.eq(arr.op), counters.n_pulses.eq(arr.n_pulses)]
        if noise is not None:
            m.d.comb += [arr.noise.eq(noise.noise), arr.noise_en.eq(cfg.stochastic)]
        assert rest == {"direction", "v_pos_mV", "v_neg_mV", "packet_uV", "noise", "noise_en", "noise_uV"}, rest

        # ---- the batch --------------------------------------------------------------------------
        with m.If(self.abort_batch):
            m.d.sync += abort_pending.eq(1)

        with m.FSM(name="ctrl") as fsm:
            with m.State("IDLE"):
                # A cell command or write-verify in progress holds a start off; a start wins over
                # a new command.
                m.d.comb += cell.enable.eq(~self.start)
                if engine is not None:
                    m.d.comb += engine.enable.eq(~self.start & ~cell.busy)
                with m.If(self.start & ~cell.busy & ~engine_busy):
                    m.d.sync += [cfg.eq(self.settings), vec.eq(0), abort_pending.eq(0), rstep.eq(0)]
                    if noise is not None:
                        m.d.comb += noise.load.eq(1)
                        with m.If(self.settings.stochastic):
                            m.next = "WARMUP"
                        with m.Else():
                            m.next = "INPUT"
                    else:
                        m.next = "INPUT"

            if noise is not None:
                with m.State("WARMUP"):
                    # Mix the seed through the automaton before the first draw.
                    m.d.comb += noise.warm.eq(1)
                    with m.If(noise.warm_last):
                        m.next = "INPUT"

            with m.State("INPUT"):
                m.d.comb += seq.run.eq(1)
                with m.If(seq.done):
                    m.next = "CONVERT"

            with m.State("CONVERT"):
                m.d.comb += conv.run.eq(1)
                with m.If(conv.done):
                    m.next = "WRITE"

            with m.State("WRITE"):
                # One output bit-plane per cycle.
                m.d.comb += conv.write.eq(1)
                with m.If(conv.last_plane):
                    if counters is not None:
                        m.d.comb += counters.mvm.eq(1)
                    recur = (cfg.direction == Direction.RECURRENT) & (rstep + 1 < cfg.recurrent_steps) if c.recurrent else 0
                    with m.If(recur):
                        m.d.sync += rstep.eq(rstep + 1)
                        if c.recurrent:
                            m.next = "REC_WB"
                    with m.Else():
                        m.d.sync += [vec.eq(vec + 1), rstep.eq(0)]
                        with m.If(abort_pending | self.abort_batch | (vec + 1 >= cfg.batch_count)):
                            m.next = "IDLE"
                        with m.Else():
                            m.next = "INPUT"

            if c.recurrent:
                with m.State("REC_WB"):
                    # Recurrent: the outputs become this vector's inputs for the next step.
                    m.d.comb += seq.write_back.eq(1)
                    with m.If(seq.write_back_last):
                        m.next = "INPUT"

        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE") | cell.busy | engine_busy)
        if counters is not None:
            m.d.comb += counters.busy.eq(~fsm.ongoing("IDLE"))
        return m


class CimCore(wiring.Component):
    """A whole core: the controller, its input registers and its analog array.

    Every input enters through a register clocked by the core's own (gated) clock, so no logic
    inside the core depends on a signal of another clock domain: an idle, gated core costs a
    simulator nothing. Inputs therefore act one core clock later than they arrive; the chip
    keeps a core's clock running for that extra cycle.

    ``array_factory`` builds the array: any component with a ``port`` of
    ``In(analog_array_signature(config))`` (the FPGA build passes a digital emulation). The
    array's results reach the controller through registers clocked every core cycle. An array
    whose signature also has ``hold: Out(1)`` stops the controller (its clock enable) while
    ``hold`` is high; it raises ``hold`` in the cycle after a strobe and lowers it one cycle after
    its results are there (then they are in the boundary's registers). An array with a method
    ``global_net(m, platform, value, name)`` (the FPGA's) gets the core's reset through it.
    """

    def __init__(self, config, core_index: int = 0, array_factory=None):
        self.config = config
        self.index = core_index
        self._array_factory = array_factory or (lambda: AnalogArrayBlackBox(config, core_index))
        super().__init__(core_members(config))

    def elaborate(self, platform):
        m = Module()
        # The reset, too, enters through a register of the core's own clock: then nothing inside
        # depends on the chip's clock domain.
        m.domains.core = ClockDomain("core", local=True)
        rst_q = Signal(init=1, reset_less=True)
        m.d.sync += rst_q.eq(ResetSignal("sync"))
        array = self._array_factory()
        # An array built for an FPGA may put the reset (thousands of loads) on a global network.
        distribute = getattr(array, "global_net", None)
        rst = rst_q if distribute is None else distribute(m, platform, rst_q, "core_rst")
        m.d.comb += [ClockSignal("core").eq(ClockSignal("sync")), ResetSignal("core").eq(rst)]
        ctrl = DomainRenamer("core")(CoreController(self.config))
        held = "hold" in array.signature.members
        if held:
            # An array that needs more than a cycle to answer (the FPGA's digital emulation)
            # holds the core's clock enable, its input registers included, until its results
            # are valid. The core is busy then: the chip sends it no new request.
            ctrl = EnableInserter({"core": ~array.hold})(ctrl)
        m.submodules.ctrl = ctrl
        inputs = []
        for path, member, outer in self.signature.flatten(self):
            inner = ctrl
            for p in path:
                inner = getattr(inner, p) if isinstance(p, str) else inner[p]
            if member.flow == In:
                inputs.append(inner.eq(outer))
            else:
                m.d.comb += outer.eq(inner)
        if held:
            with m.If(~array.hold):
                m.d.core += inputs
        else:
            m.d.core += inputs
        m.submodules.array = array
        # The array's results (comparators, cell reads) enter the controller through registers
        # that every core cycle clocks, also while an array holds the controller: a holding
        # array then needs no path from the controller's strobe to its hold (the strobe cycle's
        # edge is not held back; the controller waits in the next cycle, results registered).
        for name, member in analog_array_signature(self.config).members.items():
            if member.flow == Out:
                m.d.comb += getattr(array.port, name).eq(getattr(ctrl.array, name))
            else:
                result = Signal.like(getattr(array.port, name), name=f"array_{name}_q", reset_less=True)
                m.d.core += result.eq(getattr(array.port, name))
                m.d.comb += getattr(ctrl.array, name).eq(result)
        return m
