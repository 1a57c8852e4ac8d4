"""A core's storage: batch buffers, ternary registers, neuron mask, polarity, and host access.

* INPUT buffer: bit-planes, one bit per line, plane-major (plane p of vector v at ``v + p·D``,
  D = batch depth); ``input_planes - 1`` magnitude planes and the sign plane on top.
* OUTPUT buffer: the output bytes as eight bit-planes per vector (plane k of vector v at
  ``8v + k``).
* The BL-side and SL-side ternary registers, as two planes each: entry = act ? (neg ? -1 : +1) : 0.
  The sequencer loads the input-side one before each integration (every line driven); the
  conversion latches the tracked neurons' comparators into the output-side one.
* NEURON_MASK (the neurons a conversion tracks; all at reset) and POLARITY (lines driven
  inverted).
* WV_CELLS: the write-verify engine's targets and results, one word per cell; the engine owns
  its write port while it runs (``wv.active``).

The host reaches all of them through ``bus`` (:func:`core_bus_signature`), one 32-bit word at a
time; read data follows one cycle after ``r_en``. A controller write to a ternary register wins
over a host write in the same cycle.
"""

from amaranth import C, Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .analog import analog_array_subset
from .registers import Space
from .writeverify import wv_buffer_signature

__all__ = ["INPUT_PLANE_BITS", "OUTPUT_PLANE_BITS", "core_bus_signature", "plane_read_signature", "plane_write_signature", "ternary_drive_signature",
           "ternary_latch_signature", "CoreBuffers"]


def core_bus_signature() -> wiring.Signature:
    """Host access to a core's buffers (seen from the chip: Out = chip drives)."""
    return wiring.Signature({
        "space": Out(Space),
        "offset": Out(22),
        "w_data": Out(32),
        "w_en": Out(1),
        "r_en": Out(1),
        "r_data": In(32),        # valid the cycle after r_en
    })


#: Width of an input plane number (the sign plane is at most plane 8).
INPUT_PLANE_BITS = 4
#: Width of an output plane number (eight planes: the output bytes).
OUTPUT_PLANE_BITS = 3


def plane_read_signature(lines: int, sel_bits: int = INPUT_PLANE_BITS) -> wiring.Signature:
    """Reading bit-plane ``sel`` of the current vector (seen from the reader): data next cycle."""
    return wiring.Signature({"sel": Out(sel_bits), "data": In(lines)})


def plane_write_signature(lines: int, sel_bits: int) -> wiring.Signature:
    """Writing bit-plane ``sel`` of the current vector (seen from the writer)."""
    return wiring.Signature({"en": Out(1), "sel": Out(sel_bits), "data": Out(lines)})


def ternary_drive_signature(lines: int) -> wiring.Signature:
    """Loading the input-side ternary register with every line driven, -1 where ``neg``."""
    return wiring.Signature({"en": Out(1), "neg": Out(lines)})


def ternary_latch_signature(lines: int) -> wiring.Signature:
    """Latching comparator outputs ``cmp`` (1 = positive) of the tracked neurons into the
    output-side ternary register; entries of untracked neurons keep their value."""
    return wiring.Signature({"en": Out(1), "cmp": Out(lines)})


def _log2(n: int) -> int:
    assert n & (n - 1) == 0, n
    return n.bit_length() - 1


class CoreBuffers(wiring.Component):
    """The storage of one core (see the module docstring).

    ``vec`` is the vector of the batch in progress; ``forward`` says which ternary register is on
    the input side (BL when forward). ``inputs`` reads and ``write_back`` writes the input
    bit-planes of ``vec``, ``outputs`` writes its output planes.
    """

    def __init__(self, config):
        self.config = config
        L = config.lines
        super().__init__({
            "bus": In(core_bus_signature()),
            "vec": In(13),
            "forward": In(1),
            "inputs": In(plane_read_signature(L)),
            "write_back": In(plane_write_signature(L, INPUT_PLANE_BITS)),
            "outputs": In(plane_write_signature(L, OUTPUT_PLANE_BITS)),
            "drive": In(ternary_drive_signature(L)),
            "latch": In(ternary_latch_signature(L)),
            "wv": In(wv_buffer_signature(config.wv_rows * config.cols)),
            "mask": Out(L),
            "polarity": Out(L),
            "array": Out(analog_array_subset(config, "bl_act", "bl_neg", "sl_act", "sl_neg")),
        })

    def elaborate(self, platform):
        m = Module()
        c = self.config
        L, R, C_, P, D = c.lines, c.rows, c.cols, c.input_planes, c.batch_depth
        wplv = c.words_per_line_vector
        W = 32 * wplv

        # The two ternary registers as planes: entry = act ? (neg ? -1 : +1) : 0.
        bl_act, bl_neg = Signal(R), Signal(R)
        sl_act, sl_neg = Signal(C_), Signal(C_)
        mask = Signal(L, init=(1 << L) - 1)                # neurons tracked by the conversion
        polarity = Signal(L)                               # input lines driven inverted
        arr = self.array
        m.d.comb += [arr.bl_act.eq(bl_act), arr.bl_neg.eq(bl_neg), arr.sl_act.eq(sl_act), arr.sl_neg.eq(sl_neg),
                     self.mask.eq(mask), self.polarity.eq(polarity)]

        m.submodules.input_mem = input_mem = Memory(shape=W, depth=D * P, init=[])
        m.submodules.output_mem = output_mem = Memory(shape=W, depth=D * 8, init=[])
        in_wr = input_mem.write_port(granularity=32)
        in_rd = input_mem.read_port()                      # sequencer
        in_host = input_mem.read_port()                    # host reads
        out_wr = output_mem.write_port()
        out_host = output_mem.read_port()

        # ---- the controller's side ----------------------------------------------------------------
        wb, outs = self.write_back, self.outputs
        m.d.comb += [in_rd.addr.eq(self.vec + self.inputs.sel * D), self.inputs.data.eq(in_rd.data[:L]),
                     out_wr.addr.eq(Cat(outs.sel, self.vec)), out_wr.data.eq(outs.data), out_wr.en.eq(outs.en)]
        planes = {Space.BL_REG: (bl_act, bl_neg), Space.SL_REG: (sl_act, sl_neg),
                  Space.NEURON_MASK: (mask,), Space.POLARITY: (polarity,)}
        wv_host = None
        if c.wv_engine:                                    # without the engine: no WV_CELLS (reads 0)
            m.submodules.wv_mem = wv_mem = Memory(shape=32, depth=c.wv_rows * C_, init=[])
            wv_wr = wv_mem.write_port()
            wv_rd = wv_mem.read_port()                     # the engine
            wv_host = wv_mem.read_port()                   # host reads
            wv = self.wv
            m.d.comb += [wv_rd.addr.eq(wv.r_addr), wv.r_data.eq(wv_rd.data), wv_host.addr.eq(self.bus.offset)]
            with m.If(wv.active):
                m.d.comb += [wv_wr.addr.eq(wv.w_addr), wv_wr.data.eq(wv.w_data), wv_wr.en.eq(wv.w_en)]
            with m.Else():
                m.d.comb += [wv_wr.addr.eq(self.bus.offset), wv_wr.data.eq(self.bus.w_data),
                             wv_wr.en.eq(self.bus.w_en & (self.bus.space == Space.WV_CELLS))]

        self._host_access(m, planes, in_wr, in_host, out_host, wv_host)
        with m.If(wb.en):
            # Recurrent write-back: one whole input plane (wins over a host write).
            m.d.comb += [in_wr.addr.eq(self.vec + wb.sel * D), in_wr.data.eq(Cat(wb.data, C(0, W - L))),
                         in_wr.en.eq((1 << wplv) - 1)]

        # Ternary registers (after the host writes, so that these win).
        with m.If(self.drive.en):
            with m.If(self.forward):
                m.d.sync += [bl_act.eq(C((1 << R) - 1, R)), bl_neg.eq(self.drive.neg[:R])]
            with m.Else():
                m.d.sync += [sl_act.eq(C((1 << C_) - 1, C_)), sl_neg.eq(self.drive.neg[:C_])]
        with m.If(self.latch.en):
            cmp = self.latch.cmp
            with m.If(self.forward):
                mk = mask[:C_]
                m.d.sync += [sl_act.eq(sl_act | mk), sl_neg.eq((sl_neg & ~mk) | (~cmp[:C_] & mk))]
            with m.Else():
                mk = mask[:R]
                m.d.sync += [bl_act.eq(bl_act | mk), bl_neg.eq((bl_neg & ~mk) | (~cmp[:R] & mk))]
        return m

    def _host_access(self, m, planes, in_wr, in_host, out_host, wv_host):
        """The host's word access: the buffers through their memory ports, the registers and masks
        word by word (a ternary register as two planes: non-zero, then negative)."""
        c = self.config
        bus = self.bus
        wplv, wptv = c.words_per_line_vector, c.words_per_ternary_vector
        lw = max(1, _log2(wplv))
        tw = max(1, _log2(wptv))
        m.d.comb += [
            in_wr.addr.eq(bus.offset >> _log2(wplv)),
            in_wr.data.eq(Cat(*[bus.w_data] * wplv)),
            in_host.addr.eq(bus.offset >> _log2(wplv)),
            out_host.addr.eq(bus.offset >> _log2(wplv)),
        ]
        with m.If(bus.w_en & (bus.space == Space.INPUT)):
            m.d.comb += in_wr.en.eq((C(1, wplv) << bus.offset[:lw]) if wplv > 1 else 1)

        def words_of(sigs):
            for p, sig in enumerate(sigs):
                for w in range(wplv):
                    if 32 * w < len(sig):
                        yield p * wplv + w, sig[32 * w:min(32 * w + 32, len(sig))]

        r_word = Signal(32)
        sel = bus.offset[:tw]
        for enable, assign in ((bus.w_en, lambda part: part.eq(bus.w_data)),
                               (bus.r_en, lambda part: r_word.eq(part))):
            with m.If(enable):
                with m.Switch(bus.space):
                    for space, sigs in planes.items():
                        with m.Case(space):
                            with m.Switch(sel):
                                for idx, part in words_of(sigs):
                                    with m.Case(idx):
                                        m.d.sync += assign(part)
        r_space = Signal(Space)
        r_lane = Signal(lw)
        m.d.sync += [r_space.eq(bus.space), r_lane.eq(bus.offset[:lw])]
        with m.Switch(r_space):
            with m.Case(Space.INPUT):
                m.d.comb += bus.r_data.eq(in_host.data.word_select(r_lane, 32) if wplv > 1 else in_host.data)
            with m.Case(Space.OUTPUT):
                m.d.comb += bus.r_data.eq(out_host.data.word_select(r_lane, 32) if wplv > 1 else out_host.data)
            if wv_host is not None:
                with m.Case(Space.WV_CELLS):
                    m.d.comb += bus.r_data.eq(wv_host.data)
            with m.Default():
                m.d.comb += bus.r_data.eq(r_word)
