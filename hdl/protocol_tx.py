"""The protocol engine's transmit side: reply frames out, one byte per accepted transfer.

A reply is the header (``5A seq status len``), the payload (the STATUS counters, or the read
words as the executor delivers them) and the CRC, computed over seq..payload as the bytes go.
"""

from amaranth import C, Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .protocol_frames import REPLY_SYNC, FrameStats, Op, Request, Status, crc_user_signature, word_source_signature

__all__ = ["ReplyTransmitter"]


class ReplyTransmitter(wiring.Component):
    """Sends the reply to ``request`` with ``status``, from ``start`` to ``done`` (its last cycle).

    Only good reads and STATUS carry a payload: read words come through ``words``; STATUS sends
    ``stats`` and ``max_words``. ``crc`` is the transmitter's use of the engine's CRC.
    """

    def __init__(self, max_words: int):
        self.max_words = max_words
        super().__init__({
            "tx": Out(stream.Signature(8)),
            "start": In(1),
            "done": Out(1),
            "request": In(Request),
            "status": In(8),
            "stats": In(FrameStats),
            "words": Out(word_source_signature()),
            "crc": Out(crc_user_signature()),
        })

    def elaborate(self, platform):
        m = Module()
        tx, req, words, crc = self.tx, self.request, self.words, self.crc
        cnt = Signal(range(8))                 # byte index inside the current field
        sent = tx.valid & tx.ready

        reply_len = Signal(16)
        with m.If(self.status == Status.OK):
            with m.Switch(req.op):
                with m.Case(Op.READ):
                    m.d.comb += reply_len.eq(4)
                with m.Case(Op.READ_BURST):
                    m.d.comb += reply_len.eq(req.count << 2)
                with m.Case(Op.STATUS):
                    m.d.comb += reply_len.eq(8)
        stats = self.stats
        status_payload = Cat(stats.frames_ok, stats.frames_bad, stats.last_error, C(0, 8), C(self.max_words, 16))

        with m.FSM(name="transmit") as fsm:
            with m.State("IDLE"):
                with m.If(self.start):
                    m.next = "REPLY"

            # Reply header: 5A seq status len.
            with m.State("REPLY"):
                header = [C(REPLY_SYNC, 8), req.seq, self.status, reply_len[:8], reply_len[8:]]
                with m.Switch(cnt):
                    for i, byte in enumerate(header):
                        with m.Case(i):
                            m.d.comb += tx.payload.eq(byte)
                with m.If(sent):
                    m.d.sync += cnt.eq(Mux(cnt == 4, 0, cnt + 1))
                    with m.If(cnt == 4):
                        with m.If(reply_len == 0):
                            m.next = "TX_CRC"
                        with m.Elif(req.op == Op.STATUS):
                            m.next = "TX_STATUS"
                        with m.Else():
                            m.next = "WAIT_WORD"

            with m.State("TX_STATUS"):
                m.d.comb += tx.payload.eq(status_payload.word_select(cnt, 8))
                with m.If(sent):
                    m.d.sync += cnt.eq(cnt + 1)
                    with m.If(cnt == 7):
                        m.next = "TX_CRC"

            # Read words: each sent as soon as it arrives.
            with m.State("WAIT_WORD"):
                with m.If(words.ready):
                    m.next = "TX_WORD"
            with m.State("TX_WORD"):
                m.d.comb += tx.payload.eq(words.data.word_select(cnt[:2], 8))
                with m.If(sent):
                    m.d.sync += cnt.eq(Mux(cnt == 3, 0, cnt + 1))
                    with m.If(cnt == 3):
                        with m.If(words.last):
                            m.next = "TX_CRC"
                        with m.Else():
                            m.next = "WAIT_WORD"

            with m.State("TX_CRC"):
                m.d.comb += tx.payload.eq(Mux(cnt[0], crc.value[8:], crc.value[:8]))
                with m.If(sent):
                    m.d.sync += cnt.eq(Mux(cnt == 1, 0, cnt + 1))
                    with m.If(cnt == 1):
                        m.next = "IDLE"

        # The strobes, as plain functions of the state (the CRC starts after the sync byte).
        header, status_bytes, word, crc_bytes = (fsm.ongoing(s) for s in ("REPLY", "TX_STATUS", "TX_WORD", "TX_CRC"))
        m.d.comb += [
            tx.valid.eq(header | status_bytes | word | crc_bytes),
            crc.start.eq(header & sent & (cnt == 0)),
            crc.valid.eq(sent & ((header & (cnt != 0)) | status_bytes | word)),
            words.rewind.eq(header & sent),
            words.advance.eq(word & sent & (cnt == 3)),
            words.fetch.eq(sent & ((header & (cnt == 4) & (reply_len != 0) & (req.op != Op.STATUS))
                                   | (word & (cnt == 3) & ~words.last))),
            self.done.eq(crc_bytes & sent & (cnt == 1)),
        ]
        return m
