"""The host-protocol engine: framed bytes in, bus transactions, framed bytes out.

One module, one job: it turns the byte stream from the host (a UART, a socket under cocotb, a
testbench) into reads and writes on the chip's word bus (``chip_bus_signature``) and answers
every frame with a reply frame. The protocol is specified in ``docs/protocol.md``; the host end
is ``neurram.firmware.protocol`` and speaks exactly the same bytes.

Request  ``A5 | seq | op | len:u16le | payload[len] | crc:u16le``
Reply    ``5A | seq | status | len:u16le | payload[len] | crc:u16le``

CRC-16/CCITT-FALSE over seq..payload, computed one byte per cycle by :class:`Crc16`.

Timing. The engine takes one request byte per cycle. A good frame is validated in one cycle
after its last CRC byte; write bursts are then committed one word per cycle (plus one cycle to
start the buffer read), reads are issued one at a time and each reply word goes out as soon as
its read data arrives. The engine is half-duplex: while it replies it does not accept request
bytes (``rx.ready`` is low), so a transport in front of it buffers them.
"""

from amaranth import C, Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from . import regmap
from .bus import chip_bus_signature

__all__ = [
    "Crc16", "ProtocolEngine", "REQUEST_SYNC", "REPLY_SYNC", "OP", "STATUS",
    "send_frame", "recv_reply", "crc16",
]

#: First byte of every request frame.
REQUEST_SYNC = 0xA5
#: First byte of every reply frame.
REPLY_SYNC = 0x5A

#: Opcodes (the host's ``neurram.firmware.protocol.Op`` holds the same values).
OP = {"READ": 0x01, "WRITE": 0x02, "WRITE_BURST": 0x03, "READ_BURST": 0x04, "STATUS": 0x05}
#: Status codes (``neurram.firmware.protocol.Status``).
STATUS = {"OK": 0, "BAD_CRC": 1, "UNKNOWN_OP": 2, "ADDR_RANGE": 3, "OVERSIZE": 4,
          "TRUNCATED": 5, "BAD_LENGTH": 6}

#: Register space: word offsets below this are in range.
REGISTER_WORDS = 0x1000


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE in software (a reference for the tests and the simulation helpers)."""
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


class Crc16(wiring.Component):
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, MSB first, no xor-out), one byte a cycle.

    ``clear`` loads the initial value; ``en`` folds ``data`` into the CRC (``clear`` wins).
    ``value`` is the CRC of the bytes folded in since the last clear.
    """

    clear: In(1)
    en: In(1)
    data: In(8)
    value: Out(16)

    def __init__(self, poly: int = 0x1021, init: int = 0xFFFF):
        self.poly = poly
        self.init = init
        super().__init__()

    def _next_terms(self):
        """Each next-state bit as the set of (source, index) bits it XORs (linear map)."""
        crc = [frozenset({("c", i)}) for i in range(16)]
        for i in reversed(range(8)):          # most significant data bit first
            fb = crc[15] ^ frozenset({("d", i)})
            shifted = [frozenset()] + crc[:15]
            crc = [shifted[j] ^ fb if (self.poly >> j) & 1 else shifted[j] for j in range(16)]
        return crc

    def elaborate(self, platform):
        m = Module()
        crc = Signal(16, init=self.init, name="state")
        src = {"c": crc, "d": self.data}
        nxt = []
        for terms in self._next_terms():
            bits = [src[s][i] for s, i in sorted(terms)]
            v = bits[0]
            for b in bits[1:]:
                v = v ^ b
            nxt.append(v)
        with m.If(self.clear):
            m.d.sync += crc.eq(self.init)
        with m.Elif(self.en):
            m.d.sync += crc.eq(Cat(*nxt))
        m.d.comb += self.value.eq(crc)
        return m


class ProtocolEngine(wiring.Component):
    """Framed byte protocol to chip bus (see ``docs/protocol.md``).

    Parameters: ``config`` (a ChipConfig: core count and buffer sizes for the address check),
    ``max_words`` (the burst limit and the depth of the write-burst buffer), ``timeout_cycles``
    (cycles without a byte in the middle of a frame before it is declared TRUNCATED).

    Ports: ``rx`` request bytes in, ``tx`` reply bytes out (``amaranth.lib.stream``), ``bus`` the
    chip's word bus, driven as its master.
    """

    def __init__(self, config, max_words: int = 256, timeout_cycles: int = 100_000):
        if not 1 <= max_words <= 16382:
            raise ValueError(f"max_words={max_words} must be within 1..16382 (4 + 4·max_words must fit the u16 len)")
        if timeout_cycles < 2:
            raise ValueError(f"timeout_cycles={timeout_cycles} must be at least 2")
        self.config = config
        self.max_words = max_words
        self.timeout_cycles = timeout_cycles
        super().__init__({
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "bus": Out(chip_bus_signature()),
        })

    @property
    def max_payload(self) -> int:
        """Largest request payload the engine accepts: an address and max_words words."""
        return 4 + 4 * self.max_words

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        rx, tx, bus = self.rx, self.tx, self.bus

        m.submodules.crc = crc = Crc16()
        m.submodules.buf = buf = Memory(shape=32, depth=self.max_words, init=[])
        wr = buf.write_port()
        rd = buf.read_port()

        # ---- frame registers --------------------------------------------------------------------
        seq = Signal(8)
        op = Signal(8)
        length = Signal(16)
        cnt = Signal(16)                       # byte index inside the current field
        sh = Signal(32)                        # payload bytes, little-endian shift register
        addr = Signal(32)
        count = Signal(16)                     # READ_BURST count
        nwords = Signal(16)                    # words the frame moves
        k = Signal(16)                         # word index during execution
        status = Signal(8)
        crc_lo = Signal(8)
        crc_ok = Signal()
        rdata = Signal(32)
        skip_left = Signal(17)                 # OVERSIZE: bytes still to drop after the reply
        timer = Signal(range(self.timeout_cycles))

        frames_ok = Signal(16)
        frames_bad = Signal(16)
        last_error = Signal(8)

        byte_in = rx.payload
        took = rx.valid & rx.ready
        sent = tx.valid & tx.ready
        word_in = Cat(sh[8:], byte_in)         # the word completed by this byte

        # ---- validation (combinational over the received frame) -----------------------------------
        space = addr[regmap.SPACE_SHIFT:regmap.SPACE_SHIFT + 4]
        core = addr[regmap.CORE_SHIFT:regmap.CORE_SHIFT + 6]
        offset = addr[:regmap.OFFSET_BITS]
        is_write = (op == OP["WRITE"]) | (op == OP["WRITE_BURST"])
        n_check = Signal(16)
        with m.Switch(op):
            with m.Case(OP["WRITE_BURST"]):
                m.d.comb += n_check.eq((length - 4) >> 2)
            with m.Case(OP["READ_BURST"]):
                m.d.comb += n_check.eq(count)
            with m.Default():
                m.d.comb += n_check.eq(1)
        end = Signal(24)
        m.d.comb += end.eq(offset + n_check)
        in_range = Signal()
        core_ok = (core < cfg.n_cores) | ((core == regmap.BROADCAST_CORE) & is_write)
        with m.Switch(space):
            with m.Case(0):
                m.d.comb += in_range.eq((addr[regmap.OFFSET_BITS:regmap.SPACE_SHIFT] == 0)
                                        & (end <= REGISTER_WORDS))
            for b in regmap.BUFFERS:
                with m.Case(b.space):
                    m.d.comb += in_range.eq(core_ok & (end <= regmap.buffer_words(b, cfg)))
            with m.Default():
                m.d.comb += in_range.eq(0)

        length_ok = Signal()
        op_known = Signal()
        with m.Switch(op):
            with m.Case(OP["READ"]):
                m.d.comb += [op_known.eq(1), length_ok.eq(length == 4)]
            with m.Case(OP["WRITE"]):
                m.d.comb += [op_known.eq(1), length_ok.eq(length == 8)]
            with m.Case(OP["WRITE_BURST"]):
                m.d.comb += [op_known.eq(1), length_ok.eq((length >= 8) & (length[:2] == 0))]
            with m.Case(OP["READ_BURST"]):
                m.d.comb += [op_known.eq(1), length_ok.eq(length == 6)]
            with m.Case(OP["STATUS"]):
                m.d.comb += [op_known.eq(1), length_ok.eq(length == 0)]

        verdict = Signal(8)
        with m.If(~crc_ok):
            m.d.comb += verdict.eq(STATUS["BAD_CRC"])
        with m.Elif(~op_known):
            m.d.comb += verdict.eq(STATUS["UNKNOWN_OP"])
        with m.Elif(~length_ok):
            m.d.comb += verdict.eq(STATUS["BAD_LENGTH"])
        with m.Elif((op == OP["READ_BURST"]) & (count > self.max_words)):
            m.d.comb += verdict.eq(STATUS["OVERSIZE"])
        with m.Elif(~in_range & (op != OP["STATUS"])):
            m.d.comb += verdict.eq(STATUS["ADDR_RANGE"])
        with m.Else():
            m.d.comb += verdict.eq(STATUS["OK"])

        # Reply payload length: only good reads and STATUS carry data.
        reply_len = Signal(16)
        with m.If(status == STATUS["OK"]):
            with m.Switch(op):
                with m.Case(OP["READ"]):
                    m.d.comb += reply_len.eq(4)
                with m.Case(OP["READ_BURST"]):
                    m.d.comb += reply_len.eq(count << 2)
                with m.Case(OP["STATUS"]):
                    m.d.comb += reply_len.eq(8)

        status_payload = Cat(frames_ok, frames_bad, last_error, C(0, 8), C(self.max_words, 16))

        def fault(code):
            """Count a faulty frame, record its status and get ready to reply."""
            return [status.eq(code), frames_bad.eq(frames_bad + 1), last_error.eq(code), cnt.eq(0)]

        # ---- timeout in the middle of a frame ----------------------------------------------------
        receiving = Signal()
        timed_out = Signal()
        with m.If(~receiving | took):
            m.d.sync += timer.eq(0)
        with m.Else():
            m.d.sync += timer.eq(timer + 1)
        m.d.comb += timed_out.eq(receiving & ~took & (timer == self.timeout_cycles - 1))

        # ---- defaults ----------------------------------------------------------------------------
        m.d.comb += [
            bus.addr.eq(addr + k),
            bus.w_data.eq(rd.data),
            crc.data.eq(Mux(tx.valid, tx.payload, byte_in)),
            wr.addr.eq((cnt >> 2) - 1),
            wr.data.eq(word_in),
            rd.addr.eq(k),
        ]

        with m.FSM(name="protocol"):
            with m.State("HUNT"):
                m.d.comb += rx.ready.eq(1)
                with m.If(took & (byte_in == REQUEST_SYNC)):
                    m.d.comb += crc.clear.eq(1)
                    m.d.sync += [seq.eq(0), op.eq(0), cnt.eq(0), skip_left.eq(0)]
                    m.next = "HEADER"

            with m.State("HEADER"):
                m.d.comb += [rx.ready.eq(1), receiving.eq(1), crc.en.eq(took)]
                hdr_len = Cat(length[:8], byte_in)
                with m.If(took):
                    m.d.sync += cnt.eq(cnt + 1)
                    with m.Switch(cnt):
                        with m.Case(0):
                            m.d.sync += seq.eq(byte_in)
                        with m.Case(1):
                            m.d.sync += op.eq(byte_in)
                        with m.Case(2):
                            m.d.sync += length[:8].eq(byte_in)
                        with m.Case(3):
                            m.d.sync += [length[8:].eq(byte_in), cnt.eq(0)]
                            with m.If(hdr_len > self.max_payload):
                                m.d.sync += [*fault(STATUS["OVERSIZE"]), skip_left.eq(hdr_len + 2)]
                                m.next = "REPLY"
                            with m.Elif(hdr_len == 0):
                                m.next = "RX_CRC"
                            with m.Else():
                                m.next = "PAYLOAD"
                with m.Elif(timed_out):
                    m.d.sync += fault(STATUS["TRUNCATED"])
                    m.next = "REPLY"

            with m.State("PAYLOAD"):
                m.d.comb += [rx.ready.eq(1), receiving.eq(1), crc.en.eq(took)]
                with m.If(took):
                    m.d.sync += [sh.eq(word_in), cnt.eq(cnt + 1)]
                    with m.If(cnt == 3):
                        m.d.sync += addr.eq(word_in)
                    with m.If(cnt == 5):
                        m.d.sync += count.eq(word_in[16:])
                    # Burst words are buffered; nothing reaches the bus before the CRC checks.
                    m.d.comb += wr.en.eq((cnt[:2] == 3) & (cnt >= 7))
                    with m.If(cnt == length - 1):
                        m.d.sync += cnt.eq(0)
                        m.next = "RX_CRC"
                with m.Elif(timed_out):
                    m.d.sync += fault(STATUS["TRUNCATED"])
                    m.next = "REPLY"

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
                    m.d.sync += fault(STATUS["TRUNCATED"])
                    m.next = "REPLY"

            with m.State("VALIDATE"):
                m.d.sync += [status.eq(verdict), nwords.eq(n_check), k.eq(0)]
                with m.If(verdict == STATUS["OK"]):
                    m.d.sync += frames_ok.eq(frames_ok + 1)
                    with m.If(is_write):
                        m.next = "WRITE_FETCH"
                    with m.Else():
                        m.next = "REPLY"
                with m.Else():
                    m.d.sync += fault(verdict)
                    m.next = "REPLY"

            # Commit a checked write (burst): one word per cycle from the buffer.
            with m.State("WRITE_FETCH"):
                m.next = "WRITE"          # rd.addr = k = 0: word 0 is on rd.data next cycle
            with m.State("WRITE"):
                m.d.comb += [bus.w_en.eq(1), rd.addr.eq(k + 1)]
                m.d.sync += k.eq(k + 1)
                with m.If(k == nwords - 1):
                    m.next = "REPLY"

            # Reply header: 5A seq status len.
            with m.State("REPLY"):
                m.d.comb += tx.valid.eq(1)
                with m.Switch(cnt):
                    with m.Case(0):
                        m.d.comb += tx.payload.eq(REPLY_SYNC)
                    with m.Case(1):
                        m.d.comb += tx.payload.eq(seq)
                    with m.Case(2):
                        m.d.comb += tx.payload.eq(status)
                    with m.Case(3):
                        m.d.comb += tx.payload.eq(reply_len[:8])
                    with m.Case(4):
                        m.d.comb += tx.payload.eq(reply_len[8:])
                m.d.comb += [crc.clear.eq(sent & (cnt == 0)), crc.en.eq(sent)]
                with m.If(sent):
                    m.d.sync += [cnt.eq(cnt + 1), k.eq(0)]
                    with m.If(cnt == 4):
                        m.d.sync += cnt.eq(0)
                        with m.If(reply_len == 0):
                            m.next = "TX_CRC"
                        with m.Elif(op == OP["STATUS"]):
                            m.next = "TX_STATUS"
                        with m.Else():
                            m.next = "READ"

            with m.State("TX_STATUS"):
                m.d.comb += [tx.valid.eq(1), tx.payload.eq(status_payload.word_select(cnt[:3], 8)),
                             crc.en.eq(sent)]
                with m.If(sent):
                    m.d.sync += cnt.eq(cnt + 1)
                    with m.If(cnt == 7):
                        m.d.sync += cnt.eq(0)
                        m.next = "TX_CRC"

            # Reads: one bus read at a time, each word sent as soon as it arrives.
            with m.State("READ"):
                m.d.comb += bus.r_en.eq(1)
                m.next = "READ_WAIT"
            with m.State("READ_WAIT"):
                with m.If(bus.r_valid):
                    m.d.sync += rdata.eq(bus.r_data)
                    m.next = "TX_WORD"
            with m.State("TX_WORD"):
                m.d.comb += [tx.valid.eq(1), tx.payload.eq(rdata.word_select(cnt[:2], 8)),
                             crc.en.eq(sent)]
                with m.If(sent):
                    m.d.sync += cnt.eq(cnt + 1)
                    with m.If(cnt == 3):
                        m.d.sync += [cnt.eq(0), k.eq(k + 1)]
                        with m.If(k == nwords - 1):
                            m.next = "TX_CRC"
                        with m.Else():
                            m.next = "READ"

            with m.State("TX_CRC"):
                m.d.comb += [tx.valid.eq(1), tx.payload.eq(Mux(cnt[0], crc.value[8:], crc.value[:8]))]
                with m.If(sent):
                    m.d.sync += cnt.eq(cnt + 1)
                    with m.If(cnt == 1):
                        m.d.sync += cnt.eq(0)
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


# ---- simulation helpers (Amaranth async testbenches) ---------------------------------------------

async def send_frame(ctx, rx, frame: bytes, *, max_wait: int = 10_000):
    """Drive ``frame`` into a byte stream sink, one byte per accepted transfer.

    Raises TimeoutError when the sink holds off a byte for ``max_wait`` cycles.
    """
    for b in bytes(frame):
        ctx.set(rx.payload, b)
        ctx.set(rx.valid, 1)
        for _ in range(max_wait):
            _, _, ready = await ctx.tick().sample(rx.ready)
            if ready:
                break
        else:
            ctx.set(rx.valid, 0)
            raise TimeoutError(f"byte 0x{b:02x} not accepted within {max_wait} cycles")
    ctx.set(rx.valid, 0)


async def recv_byte(ctx, tx, *, max_wait: int = 10_000) -> int:
    """Take one byte from a byte stream source."""
    ctx.set(tx.ready, 1)
    try:
        for _ in range(max_wait):
            _, _, valid, payload = await ctx.tick().sample(tx.valid, tx.payload)
            if valid:
                return payload
        raise TimeoutError(f"no reply byte within {max_wait} cycles")
    finally:
        ctx.set(tx.ready, 0)


async def recv_reply(ctx, tx, *, max_wait: int = 10_000) -> bytes:
    """Receive one whole reply frame (sync byte to CRC) and return its bytes, unchecked.

    Bytes before the reply sync byte are skipped. Raises TimeoutError when the engine goes
    quiet for ``max_wait`` cycles.
    """
    while (b := await recv_byte(ctx, tx, max_wait=max_wait)) != REPLY_SYNC:
        pass
    out = bytearray([b])
    for _ in range(4):
        out.append(await recv_byte(ctx, tx, max_wait=max_wait))
    n = out[3] | (out[4] << 8)
    for _ in range(n + 2):
        out.append(await recv_byte(ctx, tx, max_wait=max_wait))
    return bytes(out)
