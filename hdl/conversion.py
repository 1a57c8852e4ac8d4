"""The neuron conversion: from integrated charge to output bits (docs/chip.md §2).

After the input phase the conversion compares every output neuron once (its sign), then, by the
batch's ``conversion``:

* SIGN: done; the output is the sign.
* DECREMENT: charge-decrement steps, each moving every neuron that has not flipped yet one packet
  toward zero and comparing again, until all flipped or ``max_steps``; a neuron's output is its
  step count and sign. ReLU reads negative outputs as 0; clipped ReLU caps the count at ``clip``.
* SAR: successive approximation, one comparison per bit from the sign down, the packet halved
  every bit (``step_shift``); the output is the code.

Only the neurons in NEURON_MASK are tracked: the others are done from the start and read 0. Every
comparison latches the tracked neurons' comparators into the output-side ternary register.
Per-neuron state is bit-sliced: one ``lines``-bit vector per bit (``neg``, ``settled``, eight
``mag`` planes, ``over`` for clipped ReLU), so every update is a handful of wide logic operations.
"""

from amaranth import C, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .analog import AnalogOp, analog_array_subset
from .buffers import OUTPUT_PLANE_BITS, plane_write_signature, ternary_latch_signature
from .registers import Activation, Conversion, CoreSettings

__all__ = ["neuron_state_layout", "ConversionController"]


def neuron_state_layout(lines: int) -> data.StructLayout:
    """A conversion's result, bit-sliced: ``neg`` (initial comparator sign, 1 = negative) and
    ``mag``, the eight planes of the step count (DECREMENT) or code (SAR)."""
    return data.StructLayout({"neg": unsigned(lines), "mag": data.ArrayLayout(unsigned(lines), 8)})


class ConversionController(wiring.Component):
    """Converts one MVM's outputs and writes them as output bit-planes.

    ``clear`` (the MVM's INITIALISE) resets the neuron state. While ``run`` is high the controller
    compares and steps; ``done`` marks its last cycle. While ``write`` is high it writes one
    output plane per cycle (``last_plane`` with the eighth) through ``outputs``.
    """

    def __init__(self, config):
        self.config = config
        L = config.lines
        super().__init__({
            "settings": In(CoreSettings),
            "mask": In(L),
            "clear": In(1),
            "run": In(1),
            "done": Out(1),
            "write": In(1),
            "last_plane": Out(1),
            "outputs": Out(plane_write_signature(L, OUTPUT_PLANE_BITS)),
            "latch": Out(ternary_latch_signature(L)),
            "noise_step": Out(1),
            "neurons": Out(neuron_state_layout(L)),
            "array": Out(analog_array_subset(config, "strobe", "op", "step_enable", "step_shift", "cmp")),
        })

    def elaborate(self, platform):
        m = Module()
        L = self.config.lines
        cfg, mask, arr = self.settings, self.mask, self.array
        ONES = C((1 << L) - 1, L)

        c = self.config
        has_dec, has_sar = "decrement" in c.conversions, "sar" in c.conversions
        # Planes of state a built conversion can set (the others read 0 and are not built).
        n_mag = max(c.max_steps_limit.bit_length() if has_dec else 0, c.output_bits_max if has_sar else 0)
        # The neuron state planes have no reset: ``clear`` (every MVM's INITIALISE) sets them first.
        neg = Signal(L, reset_less=True)                   # initial comparator sign: 1 = negative
        settled = Signal(L, name="done", reset_less=True)  # neurons whose conversion is over
        mag = [Signal(L, name=f"mag{k}", reset_less=True) if k < n_mag else C(0, L)
               for k in range(8)]                          # bit-sliced step counters / SAR code
        mag_regs = mag[:n_mag]
        cmp_q = arr.cmp                                    # comparator outputs, registered at the boundary (CimCore)
        steps = Signal(7)
        sar_bit = Signal(3)
        out_k = Signal(OUTPUT_PLANE_BITS)
        m.d.comb += [self.neurons.neg.eq(neg), *[self.neurons.mag[k].eq(mag[k]) for k in range(8)],
                     self.latch.cmp.eq(cmp_q), self.noise_step.eq(self.latch.en & cfg.stochastic)]

        # The wide updates of the neuron planes act on registered controls, not on decodes of the
        # state machine: a plane's flip-flops are a few hundred loads of a flip-flop. ``clear``
        # acts a cycle late (the conversion starts long after INITIALISE); ``at_*`` is high exactly
        # while the state machine is in that state (the conversion only leaves COMPARE while
        # ``run`` is high, and ``run`` stays high until ``done``).
        clear_q = Signal()
        at_latch_sign, at_step_latch, at_sar_latch = (
            Signal(name=n) for n in ("at_latch_sign", "at_step_latch", "at_sar_latch"))
        # Clipped ReLU: neurons whose step count passed ``clip`` (every active neuron's count is
        # the step number, so one comparison of the step counter serves all of them).
        over = Signal(L, reset_less=True)
        m.d.sync += clear_q.eq(self.clear)
        with m.If(clear_q):
            m.d.sync += [settled.eq(0), neg.eq(0), steps.eq(0), out_k.eq(0), over.eq(0)] + [mk.eq(0) for mk in mag_regs]

        with m.If(at_latch_sign):
            # Untracked neurons are done from the start and read 0.
            m.d.sync += [neg.eq(~cmp_q & mask), settled.eq(~mask)]
            if has_sar:
                with m.If(cfg.conversion == Conversion.SAR):
                    for k in range(n_mag):
                        with m.If(cfg.output_bits == k + 1):
                            m.d.sync += mag[k].eq(cmp_q & mask)
        if has_dec:
            with m.If(at_step_latch):
                active = Signal(L)
                m.d.comb += active.eq(~settled)                # every neuron still active counts this step
                m.d.sync += settled.eq(settled | (active & ~(cmp_q ^ neg)))
                # the counters count up: plane k flips where every lower plane is 1
                for k in range(min(7, n_mag)):
                    below = active
                    for j in range(k):
                        below = below & mag[j]
                    m.d.sync += mag[k].eq(mag[k] ^ below)
                with m.If(steps > cfg.clip):
                    m.d.sync += over.eq(over | active)
        if has_sar:
            with m.If(at_sar_latch):
                with m.Switch(sar_bit):
                    for k in range(min(7, n_mag)):
                        with m.Case(k):
                            m.d.sync += mag[k].eq(cmp_q & mask)

        # ---- output planes, one per cycle ---------------------------------------------------------
        outs = self.outputs
        out_next = Signal(OUTPUT_PLANE_BITS)
        m.d.comb += out_next.eq(Mux(self.write, out_k + 1, Mux(clear_q, 0, out_k)))
        data, last = self._output_plane(m, neg, mag, over, out_k, out_next)
        m.d.comb += [outs.en.eq(self.write), outs.sel.eq(out_k), outs.data.eq(data), self.last_plane.eq(last)]
        with m.If(self.write):
            m.d.sync += out_k.eq(out_k + 1)

        with m.If(self.run), m.FSM(name="convert"):
            with m.State("COMPARE"):
                m.d.comb += [arr.strobe.eq(1), arr.op.eq(AnalogOp.COMPARE)]
                m.d.sync += at_latch_sign.eq(1)
                m.next = "LATCH_SIGN"

            with m.State("LATCH_SIGN"):
                m.d.comb += self.latch.en.eq(1)
                m.d.sync += at_latch_sign.eq(0)
                if has_sar:
                    with m.If(cfg.conversion == Conversion.SAR):
                        m.d.sync += sar_bit.eq(cfg.output_bits - 2)
                # Conversions the chip lacks never start (CTRL.start refuses them).
                with m.Switch(cfg.conversion):
                    if has_dec:
                        with m.Case(Conversion.DECREMENT):
                            m.next = "STEP_CHECK"
                    if has_sar:
                        with m.Case(Conversion.SAR):
                            with m.If(cfg.output_bits <= 1):
                                m.d.comb += self.done.eq(1)
                                m.next = "COMPARE"
                            with m.Else():
                                m.next = "SAR_STEP"
                    with m.Default():
                        m.d.comb += self.done.eq(1)
                        m.next = "COMPARE"

            if has_dec:
                with m.State("STEP_CHECK"):
                    with m.If((settled == ONES) | (steps >= cfg.max_steps)):
                        m.d.comb += self.done.eq(1)
                        m.next = "COMPARE"
                    with m.Else():
                        m.next = "STEP"

                with m.State("STEP"):
                    m.d.comb += [arr.strobe.eq(1), arr.op.eq(AnalogOp.STEP), arr.step_enable.eq(~settled)]
                    m.d.sync += [steps.eq(steps + 1), at_step_latch.eq(1)]
                    m.next = "STEP_LATCH"

                with m.State("STEP_LATCH"):
                    m.d.comb += self.latch.en.eq(1)
                    m.d.sync += at_step_latch.eq(0)
                    m.next = "STEP_CHECK"

            if has_sar:
                with m.State("SAR_STEP"):
                    m.d.comb += [arr.strobe.eq(1), arr.op.eq(AnalogOp.STEP), arr.step_enable.eq(mask),
                                 arr.step_shift.eq(sar_bit)]
                    m.d.sync += at_sar_latch.eq(1)
                    m.next = "SAR_LATCH"

                with m.State("SAR_LATCH"):
                    m.d.comb += self.latch.en.eq(1)
                    m.d.sync += [sar_bit.eq(sar_bit - 1), at_sar_latch.eq(0)]
                    with m.If(sar_bit == 0):
                        m.d.comb += self.done.eq(1)
                        m.next = "COMPARE"
                    with m.Else():
                        m.next = "SAR_STEP"
        return m

    def _output_plane(self, m, neg, mag, over, out_k, out_next):
        """Plane ``out_k`` of the output bytes, and whether it is the last: the SAR code as is;
        decrement and sign outputs as magnitude (after ReLU and clipped ReLU) with the sign in
        plane 7."""
        L = self.config.lines
        cfg = self.settings
        # The plane's conditions, registered from the next plane number and the settings (which
        # change only while the core is idle), so that the per-neuron logic starts at flip-flops.
        is_sar, relu, clipped, sign_plane, clip_k = (
            Signal(name=n) for n in ("is_sar", "relu", "clipped", "sign_plane", "clip_k"))
        m.d.sync += [is_sar.eq(cfg.conversion == Conversion.SAR), relu.eq(cfg.activation != Activation.NONE),
                     clipped.eq(cfg.activation == Activation.CLIPPED_RELU), sign_plane.eq(out_next == 7),
                     clip_k.eq(Mux(out_next == 7, 0, cfg.clip.bit_select(out_next, 1)))]
        zero_neg = Signal(L)       # ReLU: negative outputs read 0
        m.d.comb += zero_neg.eq(Mux(relu, neg, 0))
        # Clipped ReLU (decrement): steps above cfg.clip read cfg.clip.
        clip_sel = Signal(L)
        m.d.comb += clip_sel.eq(Mux(clipped, over, 0))
        # Select plane out_k first, then adjust it (one multiplexer per neuron, not eight
        # adjusted planes): SAR as is; decrement and sign the clipped magnitude bit (the clip's
        # bit where clipped), or the sign in plane 7, after ReLU.
        mag_k = Signal(L)
        with m.Switch(out_k):
            for k in range(8):
                with m.Case(k):
                    m.d.comb += mag_k.eq(mag[k])
        dec_bit = Mux(sign_plane, neg, Mux(clip_k, clip_sel, 0) | (mag_k & ~clip_sel)) & ~zero_neg
        out_plane = Signal(L)
        m.d.comb += out_plane.eq(Mux(is_sar, mag_k, dec_bit))
        return out_plane, sign_plane
