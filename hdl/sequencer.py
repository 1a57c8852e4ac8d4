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

from amaranth import C, Module, Mux, Signal
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
        sign_r = Signal(L)                                 # sign plane of the current vector
        plane_r = Signal(L)                                # magnitude plane of the current bit

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
        nb = Signal(4)                                     # magnitude bits of the input
        m.d.comb += nb.eq(cfg.input_bits - cfg.input_signed)
        acc_sat = C(0, L)                                  # outputs beyond the input range
        for k in range(7):
            nxt = Signal(L, name=f"rec_sat{k}")
            m.d.comb += nxt.eq(acc_sat | Mux(nb <= k, mag[k], C(0, L)))
            acc_sat = nxt
        keep = Signal(L)
        m.d.comb += keep.eq(Mux(cfg.input_signed, self.mask, ~neg & self.mask))
        rec_plane = Signal(L)
        is_sign = Signal()
        m.d.comb += is_sign.eq(cfg.conversion == Conversion.SIGN)
        # Select magnitude plane wb_k first, then adjust it (one multiplexer per line): the sign
        # plane on top; a sign output is magnitude 1; outputs beyond the input range saturate.
        mag_k = Signal(L)
        with m.Switch(wb_k):
            for k in range(min(7, P - 1)):
                with m.Case(k):
                    m.d.comb += mag_k.eq(mag[k])
        value = Mux(is_sign, Mux(wb_k == 0, ONES, 0), mag_k | acc_sat)
        m.d.comb += rec_plane.eq(Mux(wb_k == P - 1, Mux(cfg.input_signed, neg, 0),
                                     Mux(nb > wb_k, value & keep, 0)))

        out = self.planes_out
        m.d.comb += [out.sel.eq(wb_k), out.data.eq(rec_plane), out.en.eq(self.write_back),
                     self.write_back_last.eq(wb_k == P - 1)]
        with m.If(self.write_back):
            # Back to plane 0 after the last, ready for the next write-back.
            m.d.sync += wb_k.eq(Mux(wb_k == P - 1, 0, wb_k + 1))
