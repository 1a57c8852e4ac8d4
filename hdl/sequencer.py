"""The input sequencer: drives one input vector into the array, bit-serially (docs/chip.md §2).

Each MVM starts with INITIALISE; then, for buffer inputs, every magnitude bit-plane b (LSB first)
is driven in two phases, each integrated ``pulse_multiplier · 2^b`` times:

* unsigned bit b: phase 0 drives (2b - 1), phase 1 drives +1 (together 2b, every line driven);
* signed digit t (sign plane on top): phase 0 drives [t > 0 ? +1 : -1], phase 1 [t >= 0 ? +1 : -1];

each line inverted where POLARITY is set. Ternary inputs (the input-side register as loaded by
the host) are integrated once, ``pulse_multiplier`` times.

Recurrent MVMs write each output back as the vector's next input, one input bit-plane per cycle,
without a host round trip: the output magnitude (decrement steps, 1 for sign outputs) saturated
to the input range; signed inputs take the output sign, unsigned ones zero negative outputs.
"""

from amaranth import C, Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .analog import AnalogOp, analog_array_subset
from .buffers import INPUT_PLANE_BITS, plane_read_signature, plane_write_signature, ternary_drive_signature
from .conversion import neuron_state_layout
from .registers import Conversion, CoreSettings, InputSource

__all__ = ["InputSequencer"]


class InputSequencer(wiring.Component):
    """Sequences the input phase of each MVM, and the recurrent write-back.

    While ``run`` is high it runs the input phase (``init`` marks its INITIALISE cycle, ``done``
    its last cycle), reading input planes through ``inputs`` and loading the input-side ternary
    register through ``drive``. While ``write_back`` is high it writes one input plane per cycle,
    computed from the conversion's ``neurons``, through ``planes_out`` (``write_back_last`` with
    the sign plane).
    """

    def __init__(self, config):
        self.config = config
        L = config.lines
        super().__init__({
            "settings": In(CoreSettings),
            "mask": In(L),
            "polarity": In(L),
            "run": In(1),
            "init": Out(1),
            "done": Out(1),
            "inputs": Out(plane_read_signature(L)),
            "drive": Out(ternary_drive_signature(L)),
            "write_back": In(1),
            "write_back_last": Out(1),
            "neurons": In(neuron_state_layout(L)),
            "planes_out": Out(plane_write_signature(L, INPUT_PLANE_BITS)),
            "array": Out(analog_array_subset(config, "strobe", "op", "n_pulses")),
        })

    def elaborate(self, platform):
        m = Module()
        c = self.config
        L = c.lines
        SIGN_PLANE = c.input_planes - 1
        cfg, arr = self.settings, self.array
        ONES = C((1 << L) - 1, L)

        bit = Signal(3)                                    # magnitude plane being driven
        phase = Signal(1)
        hold = Signal(16)                                  # cycles left of the current burst
        ternary_src = Signal()
        # (the two planes have no reset: each vector loads them before it drives a line)
        sign_r = Signal(L, reset_less=True)                # sign plane of the current vector
        plane_r = Signal(L, reset_less=True)               # magnitude plane of the current bit

        m.d.comb += arr.n_pulses.eq(Mux(ternary_src, cfg.pulse_multiplier, cfg.pulse_multiplier << bit))
        m.d.comb += self.inputs.sel.eq(bit)

        # ---- drive pattern of the current phase -----------------------------------------------
        # unsigned bit b: phase 0 -> (2b-1), phase 1 -> +1
        # signed digit t: phase 0 -> [t>0 ? +1 : -1], phase 1 -> [t>=0 ? +1 : -1]
        positive = Signal(L)
        with m.If(cfg.input_signed):
            m.d.comb += positive.eq(Mux(phase, ~(plane_r & sign_r), plane_r & ~sign_r))
        with m.Else():
            m.d.comb += positive.eq(Mux(phase, ONES, plane_r))
        m.d.comb += self.drive.neg.eq(~(positive ^ self.polarity))   # every line driven: -1 where set

        with m.If(self.run), m.FSM(name="input"):
            with m.State("INIT"):
                m.d.comb += [arr.strobe.eq(1), arr.op.eq(AnalogOp.INITIALISE), self.init.eq(1),
                             self.inputs.sel.eq(SIGN_PLANE)]
                m.d.sync += [bit.eq(0), phase.eq(0), ternary_src.eq(cfg.input_source == InputSource.TERNARY)]
                m.next = "INIT_SIGN"

            with m.State("INIT_SIGN"):
                m.d.sync += sign_r.eq(self.inputs.data)
                with m.If(ternary_src):
                    m.next = "BURST"
                with m.Else():
                    m.next = "LOAD"

            with m.State("LOAD"):
                m.next = "LATCH_PLANE"

            with m.State("LATCH_PLANE"):
                m.d.sync += plane_r.eq(self.inputs.data)
                m.next = "DRIVE"

            with m.State("DRIVE"):
                m.d.comb += self.drive.en.eq(1)
                m.next = "BURST"

            with m.State("BURST"):
                m.d.comb += [arr.strobe.eq(1), arr.op.eq(AnalogOp.INTEGRATE)]
                m.d.sync += hold.eq(arr.n_pulses - 1)
                m.next = "HOLD"

            with m.State("HOLD"):
                m.d.sync += hold.eq(hold - 1)
                with m.If(hold == 0):
                    with m.If(ternary_src):
                        m.d.comb += self.done.eq(1)
                        m.next = "INIT"
                    with m.Elif(phase == 0):
                        m.d.sync += phase.eq(1)
                        m.next = "DRIVE"
                    with m.Else():
                        m.d.sync += phase.eq(0)
                        # signed inputs: the top bit is the sign, not a magnitude bit
                        with m.If(bit + 1 + cfg.input_signed >= cfg.input_bits):
                            m.d.comb += self.done.eq(1)
                            m.next = "INIT"
                        with m.Else():
                            m.d.sync += bit.eq(bit + 1)
                            m.next = "LOAD"

        if c.recurrent:                                    # no write-back without recurrent MVMs
            self._write_back(m)
        return m

    def _write_back(self, m):
        """Recurrent write-back: input plane ``wb_k`` of the next step from the outputs."""
        c = self.config
        L, P = c.lines, c.input_planes
        cfg, neg, mag = self.settings, self.neurons.neg, self.neurons.mag
        ONES = C((1 << L) - 1, L)
        wb_k = Signal(INPUT_PLANE_BITS)
        wb_next = Signal(INPUT_PLANE_BITS)
        # Back to plane 0 after the last, ready for the next write-back.
        m.d.comb += wb_next.eq(Mux(self.write_back, Mux(wb_k == P - 1, 0, wb_k + 1), wb_k))
        m.d.sync += wb_k.eq(wb_next)
        # The plane's conditions, registered from the next plane number and the settings (which
        # change only while the core is idle), so that the per-line logic below starts at
        # flip-flops: magnitude plane k beyond the input range (saturating), a sign output, plane
        # 0, the sign plane, a plane within the input's magnitude bits, signed inputs.
        nb = Signal(4)                                     # magnitude bits of the input
        m.d.comb += nb.eq(cfg.input_bits - cfg.input_signed)
        sat_en = Signal(7)
        is_sign, top, in_range, signed_in = (Signal(name=n) for n in ("is_sign", "top", "in_range", "signed_in"))
        first = Signal(init=1)
        m.d.sync += [sat_en.eq(Cat(*[nb <= k for k in range(7)])), is_sign.eq(cfg.conversion == Conversion.SIGN),
                     first.eq(wb_next == 0), top.eq(wb_next == P - 1), in_range.eq(nb > wb_next),
                     signed_in.eq(cfg.input_signed)]
        acc_sat = Signal(L)                                # outputs beyond the input range
        m.d.comb += acc_sat.eq(_or_tree([mag[k] & sat_en[k].replicate(L) for k in range(7)]))
        keep = Signal(L)
        m.d.comb += keep.eq(Mux(signed_in, self.mask, ~neg & self.mask))
        rec_plane = Signal(L)
        # Select magnitude plane wb_k first, then adjust it (one multiplexer per line): the sign
        # plane on top; a sign output is magnitude 1; outputs beyond the input range saturate.
        mag_k = Signal(L)
        with m.Switch(wb_k):
            for k in range(min(7, P - 1)):
                with m.Case(k):
                    m.d.comb += mag_k.eq(mag[k])
        value = Mux(is_sign, Mux(first, ONES, 0), mag_k | acc_sat)
        m.d.comb += rec_plane.eq(Mux(top, Mux(signed_in, neg, 0), Mux(in_range, value & keep, 0)))

        out = self.planes_out
        m.d.comb += [out.sel.eq(wb_k), out.data.eq(rec_plane), out.en.eq(self.write_back),
                     self.write_back_last.eq(top)]


def _or_tree(values):
    """The OR of ``values`` as a balanced tree (no chain of gates through every term)."""
    while len(values) > 1:
        values = [values[i] | values[i + 1] if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values[0]
