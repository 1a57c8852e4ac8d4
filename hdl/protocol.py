"""The host-protocol engine: framed bytes in, bus transactions, framed bytes out.

It turns the byte stream from the host (a UART, a socket under cocotb, a testbench) into reads and
writes on the chip's word bus (``chip_bus_signature``) and answers every frame with a reply frame.
The protocol is specified in ``docs/protocol.md``; the host end is ``neurram.firmware.protocol``
and speaks exactly the same bytes.

Request  ``A5 | seq | op | len:u16le | payload[len] | crc:u16le``
Reply    ``5A | seq | status | len:u16le | payload[len] | crc:u16le``

CRC-16/CCITT-FALSE over seq..payload, computed one byte per cycle by ``amaranth.lib.crc``.

Three parts, each a component:

* :class:`~neurram.hdl.protocol_rx.FrameReceiver` (receive and validate, ``protocol_rx.py``);
* :class:`~neurram.hdl.protocol_exec.BusExecutor` (execute: the bus master, ``protocol_exec.py``);
* :class:`~neurram.hdl.protocol_tx.ReplyTransmitter` (transmit, ``protocol_tx.py``);

around a ``lib.memory.Memory`` that holds a write burst until its CRC checks, and one
``amaranth.lib.crc`` processor that the receiver and the transmitter use in turn (half-duplex).

Timing. The engine takes one request byte per cycle. A good frame is validated in one cycle
after its last CRC byte; write bursts are then committed one word per cycle (plus one cycle to
start the buffer read), reads are issued one at a time and each reply word goes out as soon as
its read data arrives. The engine is half-duplex: while it replies it does not accept request
bytes (``rx.ready`` is low), so a transport in front of it buffers them.
"""

from amaranth import Module, Mux
from amaranth.lib import crc, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .bus import chip_bus_signature
from .protocol_exec import BusExecutor
from .protocol_frames import CRC16, REGISTER_WORDS, REPLY_SYNC, REQUEST_SYNC, Op, Status, crc16
from .protocol_rx import FrameReceiver
from .protocol_tx import ReplyTransmitter

__all__ = [
    "Crc16", "ProtocolEngine", "REQUEST_SYNC", "REPLY_SYNC", "Op", "Status", "REGISTER_WORDS",
    "send_frame", "recv_reply", "crc16",
]


class Crc16(wiring.Component):
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, MSB first, no xor-out), one byte a cycle.

    ``clear`` loads the initial value; ``en`` folds ``data`` into the CRC (``clear`` wins).
    ``value`` is the CRC of the bytes folded in since the last clear. An ``amaranth.lib.crc``
    processor inside.
    """

    clear: In(1)
    en: In(1)
    data: In(8)
    value: Out(16)

    def __init__(self, poly: int = 0x1021, init: int = 0xFFFF):
        self.poly = poly
        self.init = init
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        algorithm = crc.Algorithm(crc_width=16, polynomial=self.poly, initial_crc=self.init,
                                  reflect_input=False, reflect_output=False, xor_output=0)
        m.submodules.processor = processor = algorithm(data_width=8).create()
        m.d.comb += [processor.start.eq(self.clear), processor.valid.eq(self.en & ~self.clear),
                     processor.data.eq(self.data), self.value.eq(processor.crc)]
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
        m.submodules.buf = buf = Memory(shape=32, depth=self.max_words, init=[])
        m.submodules.receiver = receiver = FrameReceiver(self.config, self.max_words, self.timeout_cycles)
        m.submodules.executor = executor = BusExecutor(self.max_words)
        m.submodules.transmitter = transmitter = ReplyTransmitter(self.max_words)
        m.submodules.crc = checksum = CRC16(data_width=8).create()

        wiring.connect(m, wiring.flipped(self.rx), receiver.rx)
        wiring.connect(m, transmitter.tx, wiring.flipped(self.tx))
        wiring.connect(m, executor.bus, wiring.flipped(self.bus))
        wiring.connect(m, receiver.buffer, buf.write_port())
        wiring.connect(m, executor.buffer, buf.read_port())
        wiring.connect(m, transmitter.words, executor.words)
        # One CRC for both directions (the engine is half-duplex): the byte on the wire is folded in.
        m.d.comb += [
            checksum.start.eq(receiver.crc.start | transmitter.crc.start),
            checksum.valid.eq(receiver.crc.valid | transmitter.crc.valid),
            checksum.data.eq(Mux(self.tx.valid, self.tx.payload, self.rx.payload)),
            receiver.crc.value.eq(checksum.crc), transmitter.crc.value.eq(checksum.crc),
            executor.request.eq(receiver.request), executor.n_words.eq(receiver.n_words),
            executor.validated.eq(receiver.validated), executor.execute.eq(receiver.execute),
            transmitter.request.eq(receiver.request), transmitter.status.eq(receiver.status),
            transmitter.stats.eq(receiver.stats),
            transmitter.start.eq(receiver.reply | executor.done), receiver.replied.eq(transmitter.done),
        ]
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
