"""The protocol engine's execute side: the master of the chip's word bus.

A checked write frame is committed one word per cycle from the burst buffer (plus one cycle to
start the buffer read). Reads are issued one at a time, when the transmitter asks for the next
reply word (``words``), and each word is handed over as soon as its read data arrives.
"""

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import ReadPort
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .bus import chip_bus_signature
from .protocol_frames import Request, word_source_signature

__all__ = ["BusExecutor"]


class BusExecutor(wiring.Component):
    """Runs a frame's bus transactions at ``request.addr`` onward.

    ``validated`` loads the frame's word count ``n_words``; ``execute`` commits a write (burst),
    with ``done`` in its last cycle; ``words`` serves the reply's read words.
    """

    def __init__(self, max_words: int):
        self.max_words = max_words
        super().__init__({
            "request": In(Request),
            "n_words": In(16),
            "validated": In(1),
            "execute": In(1),
            "done": Out(1),
            # The burst buffer's read port (its signature flipped: the executor drives it).
            "buffer": In(ReadPort.Signature(addr_width=ceil_log2(max_words), shape=32)),
            "words": In(word_source_signature()),
            "bus": Out(chip_bus_signature()),
        })

    def elaborate(self, platform):
        m = Module()
        bus, buf, words = self.bus, self.buffer, self.words
        k = Signal(16)                         # word index
        nwords = Signal(16)                    # words the frame moves
        rdata = Signal(32)
        # k and nwords as they will be after this cycle, and "k is the last word" registered
        # from them: the same value as comparing the registers, a cycle of logic earlier.
        k_next = Signal(16)
        nwords_next = Signal(16)
        last = Signal()
        m.d.comb += [
            bus.addr.eq(self.request.addr + k), bus.w_data.eq(buf.data),
            words.data.eq(rdata), words.last.eq(last),
            nwords_next.eq(Mux(self.validated, self.n_words, nwords)),
        ]
        m.d.sync += [k.eq(k_next), nwords.eq(nwords_next), last.eq(k_next == nwords_next - 1)]
        m.d.comb += k_next.eq(k)
        with m.If(self.validated | words.rewind):
            m.d.comb += k_next.eq(0)
        with m.If(words.advance):
            m.d.comb += k_next.eq(k + 1)

        with m.FSM(name="execute") as fsm:
            with m.State("IDLE"):
                with m.If(self.execute):
                    m.next = "WRITE_FETCH"
                with m.Elif(words.fetch):
                    m.next = "READ"

            # Commit a checked write (burst): one word per cycle from the buffer.
            with m.State("WRITE_FETCH"):
                m.next = "WRITE"          # buffer address k = 0: word 0 is on its data next cycle
            with m.State("WRITE"):
                m.d.comb += k_next.eq(k + 1)
                with m.If(last):
                    m.next = "IDLE"

            # Reads: one bus read at a time.
            with m.State("READ"):
                m.next = "READ_WAIT"
            with m.State("READ_WAIT"):
                with m.If(bus.r_valid):
                    m.d.sync += rdata.eq(bus.r_data)
                    m.next = "IDLE"

        # The strobes, as plain functions of the state.
        writing, reading, waiting = (fsm.ongoing(s) for s in ("WRITE", "READ", "READ_WAIT"))
        m.d.comb += [
            bus.w_en.eq(writing), bus.r_en.eq(reading), buf.addr.eq(Mux(writing, k + 1, k)),
            self.done.eq(writing & last), words.ready.eq(waiting & bus.r_valid),
        ]
        return m
