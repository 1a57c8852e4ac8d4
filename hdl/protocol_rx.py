"""The protocol engine's receive side: request frames in, checked (``docs/protocol.md``).

:class:`FrameReceiver` takes one request byte per cycle: it hunts for the sync byte, collects the
header and payload, folding them into the engine's CRC (write-burst words go into the engine's burst buffer, so that nothing reaches
the bus before the CRC checks), checks the CRC and has :class:`FrameValidator` judge the frame in
one cycle after its last byte. It declares TRUNCATED a frame whose bytes stop for
``timeout_cycles``, and after an OVERSIZE reply drops the rest of the oversized frame. It keeps
the STATUS counters.
"""

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import WritePort
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from neurram.spec import regmap
from .protocol_frames import REGISTER_WORDS, REQUEST_SYNC, FrameStats, Op, Request, Status, crc_user_signature
from .registers import Space

__all__ = ["FrameValidator", "FrameReceiver"]


class FrameValidator(wiring.Component):
    """Judges a received request: its ``verdict`` (a STATUS code) and the number of bus words it
    moves (``n_words``). ``n_words`` and ``is_write`` follow the request at once; ``verdict`` one
    cycle later (the end of the addressed range is registered)."""

    def __init__(self, config, max_words: int):
        self.config = config
        self.max_words = max_words
        super().__init__({
            "request": In(Request),
            "crc_ok": In(1),
            "verdict": Out(8),
            "n_words": Out(16),
            "is_write": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        op, length, addr, count = self.request.op, self.request.length, self.request.addr, self.request.count
        n_words = self.n_words
        m.d.comb += self.is_write.eq((op == Op.WRITE) | (op == Op.WRITE_BURST))
        with m.Switch(op):
            with m.Case(Op.WRITE_BURST):
                m.d.comb += n_words.eq((length - 4) >> 2)
            with m.Case(Op.READ_BURST):
                m.d.comb += n_words.eq(count)
            with m.Default():
                m.d.comb += n_words.eq(1)

        space = addr[regmap.SPACE_SHIFT:regmap.SPACE_SHIFT + 4]
        core = addr[regmap.CORE_SHIFT:regmap.CORE_SHIFT + 6]
        offset = addr[:regmap.OFFSET_BITS]
        end = Signal(24)
        m.d.sync += end.eq(offset + n_words)
        in_range = Signal()
        core_ok = (core < cfg.n_cores) | ((core == regmap.BROADCAST_CORE) & self.is_write)
        with m.Switch(space):
            with m.Case(Space.REGISTERS):
                m.d.comb += in_range.eq((addr[regmap.OFFSET_BITS:regmap.SPACE_SHIFT] == 0)
                                        & (end <= REGISTER_WORDS))
            for b in regmap.BUFFERS.values():
                with m.Case(b.space):
                    m.d.comb += in_range.eq(core_ok & (end <= b.words_per_core(cfg)))
            with m.Default():
                m.d.comb += in_range.eq(0)

        length_ok = Signal()
        op_known = Signal()
        with m.Switch(op):
            with m.Case(Op.READ):
                m.d.comb += [op_known.eq(1), length_ok.eq(length == 4)]
            with m.Case(Op.WRITE):
                m.d.comb += [op_known.eq(1), length_ok.eq(length == 8)]
            with m.Case(Op.WRITE_BURST):
                m.d.comb += [op_known.eq(1), length_ok.eq((length >= 8) & (length[:2] == 0))]
            with m.Case(Op.READ_BURST):
                m.d.comb += [op_known.eq(1), length_ok.eq(length == 6)]
            with m.Case(Op.STATUS):
                m.d.comb += [op_known.eq(1), length_ok.eq(length == 0)]

        with m.If(~self.crc_ok):
            m.d.comb += self.verdict.eq(Status.BAD_CRC)
        with m.Elif(~op_known):
            m.d.comb += self.verdict.eq(Status.UNKNOWN_OP)
        with m.Elif(~length_ok):
            m.d.comb += self.verdict.eq(Status.BAD_LENGTH)
        with m.Elif((op == Op.READ_BURST) & (count > self.max_words)):
            m.d.comb += self.verdict.eq(Status.OVERSIZE)
        with m.Elif(~in_range & (op != Op.STATUS)):
            m.d.comb += self.verdict.eq(Status.ADDR_RANGE)
        with m.Else():
            m.d.comb += self.verdict.eq(Status.OK)
        return m


class FrameReceiver(wiring.Component):
    """Receives and checks request frames (see the module docstring).

    A frame ends in one strobe: ``execute`` (a good write: commit the burst buffer), or
    ``reply`` (anything else: answer now). ``validated`` marks the cycle a complete frame is
    judged, with its ``n_words``. The receiver then holds ``rx`` off until ``replied``.
    ``request``, ``status`` and ``stats`` describe the frame being answered. ``crc`` is the
    receiver's use of the engine's CRC.
    """

    def __init__(self, config, max_words: int, timeout_cycles: int):
        self.config = config
        self.max_words = max_words
        self.timeout_cycles = timeout_cycles
        super().__init__({
            "rx": In(stream.Signature(8)),
            # The burst buffer's write port (its signature flipped: the receiver drives it).
            "buffer": In(WritePort.Signature(addr_width=ceil_log2(max_words), shape=32)),
            "request": Out(Request),
            "status": Out(8),
            "stats": Out(FrameStats),
            "validated": Out(1),
            "n_words": Out(16),
            "execute": Out(1),
            "reply": Out(1),
            "replied": In(1),
            "crc": Out(crc_user_signature()),
        })

    def elaborate(self, platform):
        m = Module()
        rx, crc = self.rx, self.crc
        m.submodules.validator = validator = FrameValidator(self.config, self.max_words)

        # Every field and counter is a register of its own, not a field of one wide register
        # (partial updates of a wide register cost Verilator a read-modify-write every cycle).
        seq, op, length, addr, count = self._registers(m, self.request)
        frames_ok, frames_bad, last_error = self._registers(m, self.stats)
        status = Signal(8)
        cnt = Signal(16)                       # byte index inside the current field
        sh = Signal(32)                        # payload bytes, little-endian shift register
        crc_lo, crc_ok = Signal(8), Signal()
        skip_left = Signal(17)                 # OVERSIZE: bytes still to drop after the reply
        byte_in = rx.payload
        took = rx.valid & rx.ready
        word_in = Cat(sh[8:], byte_in)         # the word completed by this byte
        # The validator's judgement, registered (its address-range path gets two cycles): a
        # request's fields are final at least two cycles before VALIDATE (its two CRC bytes
        # follow them), so in VALIDATE the registers hold this frame's judgement, as a
        # combinational validator would; the CRC check, decided last, takes precedence there.
        judged_verdict, judged_n_words, judged_is_write = Signal(8), Signal(16), Signal()
        m.d.sync += [judged_verdict.eq(validator.verdict), judged_n_words.eq(validator.n_words),
                     judged_is_write.eq(validator.is_write)]
        m.d.comb += [
            self.status.eq(status),
            validator.request.eq(self.request), validator.crc_ok.eq(1), self.n_words.eq(judged_n_words),
            self.buffer.addr.eq((cnt >> 2) - 1), self.buffer.data.eq(word_in),
        ]

        def fault(code):
            """Count a faulty frame, record its status and get ready to reply."""
            m.d.sync += [status.eq(code), frames_bad.eq(frames_bad + 1), last_error.eq(code)]
            m.d.comb += self.reply.eq(1)
            m.next = "ANSWER"

        receiving = Signal()
        timed_out = self._timeout(m, receiving, took)

        with m.FSM(name="receive"):
            with m.State("HUNT"):
                m.d.comb += rx.ready.eq(1)
                with m.If(took & (byte_in == REQUEST_SYNC)):
                    m.d.comb += crc.start.eq(1)
                    m.d.sync += [seq.eq(0), op.eq(0), cnt.eq(0), skip_left.eq(0)]
                    m.next = "HEADER"

            with m.State("HEADER"):
                m.d.comb += [rx.ready.eq(1), receiving.eq(1), crc.valid.eq(took)]
                hdr_len = Cat(length[:8], byte_in)
                with m.If(took):
                    m.d.sync += cnt.eq(cnt + 1)
                    with m.Switch(cnt):
                        for i, field in enumerate((seq, op, length[:8])):
                            with m.Case(i):
                                m.d.sync += field.eq(byte_in)
                        with m.Case(3):
                            m.d.sync += [length[8:].eq(byte_in), cnt.eq(0)]
                            with m.If(hdr_len > 4 + 4 * self.max_words):
                                m.d.sync += skip_left.eq(hdr_len + 2)
                                fault(Status.OVERSIZE)
                            with m.Elif(hdr_len == 0):
                                m.next = "RX_CRC"
                            with m.Else():
                                m.next = "PAYLOAD"
                with m.Elif(timed_out):
                    fault(Status.TRUNCATED)

            with m.State("PAYLOAD"):
                m.d.comb += [rx.ready.eq(1), receiving.eq(1), crc.valid.eq(took)]
                with m.If(took):
                    m.d.sync += [sh.eq(word_in), cnt.eq(cnt + 1)]
                    with m.If(cnt == 3):
                        m.d.sync += addr.eq(word_in)
                    with m.If(cnt == 5):
                        m.d.sync += count.eq(word_in[16:])
                    # Burst words are buffered; nothing reaches the bus before the CRC checks.
                    m.d.comb += self.buffer.en.eq((cnt[:2] == 3) & (cnt >= 7))
                    with m.If(cnt == length - 1):
                        m.d.sync += cnt.eq(0)
                        m.next = "RX_CRC"
                with m.Elif(timed_out):
                    fault(Status.TRUNCATED)

            with m.State("RX_CRC"):
                m.d.comb += [rx.ready.eq(1), receiving.eq(1)]
                with m.If(took):
                    m.d.sync += cnt.eq(cnt + 1)
                    with m.If(cnt == 0):
                        m.d.sync += crc_lo.eq(byte_in)
                    with m.Else():
                        m.d.sync += [cnt.eq(0), crc_ok.eq(crc.value == Cat(crc_lo, byte_in))]
                        m.next = "VALIDATE"
                with m.Elif(timed_out):
                    fault(Status.TRUNCATED)

            with m.State("VALIDATE"):
                verdict = Mux(crc_ok, judged_verdict, Status.BAD_CRC)
                m.d.comb += self.validated.eq(1)
                m.d.sync += status.eq(verdict)
                with m.If(verdict == Status.OK):
                    m.d.sync += frames_ok.eq(frames_ok + 1)
                    m.d.comb += [self.execute.eq(judged_is_write), self.reply.eq(~judged_is_write)]
                    m.next = "ANSWER"
                with m.Else():
                    fault(verdict)

            # The frame is being executed and answered.
            with m.State("ANSWER"):
                with m.If(self.replied):
                    with m.If(skip_left != 0):
                        m.next = "SKIP"
                    with m.Else():
                        m.next = "HUNT"

            # OVERSIZE: drop the rest of the frame (or give up when the bytes stop).
            with m.State("SKIP"):
                m.d.comb += [rx.ready.eq(1), receiving.eq(1)]
                with m.If(took):
                    m.d.sync += skip_left.eq(skip_left - 1)
                    with m.If(skip_left == 1):
                        m.next = "HUNT"
                with m.Elif(timed_out):
                    m.d.sync += skip_left.eq(0)
                    m.next = "HUNT"
        return m

    @staticmethod
    def _registers(m, view) -> list:
        """One register per field of the struct port ``view``, which shows them."""
        regs = []
        for name, field in data.Layout.cast(view.shape()):
            reg = Signal(field.shape, name=name)
            m.d.comb += getattr(view, name).eq(reg)
            regs.append(reg)
        return regs

    def _timeout(self, m, receiving, took):
        """High when a frame has had no byte for ``timeout_cycles`` (while ``receiving``)."""
        timer = Signal(range(self.timeout_cycles))
        timed_out = Signal()
        with m.If(~receiving | took):
            m.d.sync += timer.eq(0)
        with m.Else():
            m.d.sync += timer.eq(timer + 1)
        m.d.comb += timed_out.eq(receiving & ~took & (timer == self.timeout_cycles - 1))
        return timed_out
