"""The host protocol: frames, CRC, a frame decoder, the validation rules and the chip end.

Every chip is reached through the same framed byte protocol (``docs/protocol.md``)::

    request  A5 | seq | op     | len:u16le | payload[len] | crc:u16le
    reply    5A | seq | status | len:u16le | payload[len] | crc:u16le

with CRC-16/CCITT-FALSE over seq..payload. This module is the protocol's one definition, plain
Python (no Amaranth): the RTL engine (``neurram.hdl.protocol``) takes its constants and opcodes
from here, the host's :class:`neurram.firmware.protocol.Link` and the Python chip ends use the
rest:

* :func:`crc16`, :class:`Op`, :class:`Status`, :func:`encode_request`, :func:`encode_reply`;
* :class:`FrameDecoder`, incremental, for requests (a chip model) and replies (the host);
* :class:`AddressMap` and :func:`check_request`, the validation rules every chip applies;
* :class:`ProtocolServer`, the chip end in Python: bytes in, bus reads and writes, bytes out.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Callable, Mapping, NamedTuple

from . import regmap

__all__ = [
    "REQUEST_SYNC", "REPLY_SYNC", "HEADER_BYTES", "CRC_BYTES", "DEFAULT_MAX_WORDS",
    "REGISTER_WORDS", "Op", "Status", "crc16", "encode_request", "encode_reply", "Frame", "Fault",
    "FrameDecoder", "ProtocolError", "LinkTimeout", "AddressMap", "split_address", "check_request",
    "ProtocolServer", "LinkStatus", "op_name", "status_of",
]

#: First byte of a request frame (host to chip).
REQUEST_SYNC = 0xA5
#: First byte of a reply frame (chip to host).
REPLY_SYNC = 0x5A
#: Bytes before the payload: sync, seq, op/status, len (2).
HEADER_BYTES = 5
#: Bytes after the payload.
CRC_BYTES = 2
#: Burst limit of the engine unless it says otherwise (STATUS reports it).
DEFAULT_MAX_WORDS = 256
#: Register space (space 0): word offsets below this are in range.
REGISTER_WORDS = 0x1000


class Op(enum.IntEnum):
    """Request opcodes."""

    READ = 0x01          #: addr:u32 -> data:u32
    WRITE = 0x02         #: addr:u32, data:u32 -> (empty)
    WRITE_BURST = 0x03   #: addr:u32, words:u32[n >= 1] -> (empty)
    READ_BURST = 0x04    #: addr:u32, count:u16 -> words:u32[count]
    STATUS = 0x05        #: (empty) -> frames_ok:u16, frames_bad:u16, last_error:u8, pad:u8, max_words:u16


class Status(enum.IntEnum):
    """Reply status codes."""

    OK = 0
    BAD_CRC = 1        #: the CRC does not match the frame
    UNKNOWN_OP = 2     #: the opcode is not one of Op
    ADDR_RANGE = 3     #: the address (or part of a burst) is outside the chip's map
    OVERSIZE = 4       #: len > 4 + 4·max_words, or a READ_BURST count > max_words
    TRUNCATED = 5      #: the bytes stopped in the middle of a frame
    BAD_LENGTH = 6     #: len does not fit the op

    @property
    def text(self) -> str:
        return _STATUS_TEXT[self]


_STATUS_TEXT = {
    Status.OK: "ok",
    Status.BAD_CRC: "CRC mismatch: the frame was corrupted",
    Status.UNKNOWN_OP: "unknown opcode",
    Status.ADDR_RANGE: "address out of range",
    Status.OVERSIZE: "frame larger than the engine's burst limit",
    Status.TRUNCATED: "frame truncated: the bytes stopped mid-frame",
    Status.BAD_LENGTH: "payload length does not fit the opcode",
}


def status_of(code: int):
    try:
        return Status(code)
    except ValueError:
        return code


def op_of(code: int):
    try:
        return Op(code)
    except ValueError:
        return code


def op_name(code: int) -> str:
    op = op_of(int(code))
    return op.name if isinstance(op, Op) else f"op 0x{int(code):02x}"


class ProtocolError(Exception):
    """A request failed: ``status`` is the :class:`Status` code, the message names the fault."""

    def __init__(self, status, message: str = ""):
        self.status = status_of(int(status))
        name = self.status.name if isinstance(self.status, Status) else f"status {self.status}"
        text = self.status.text if isinstance(self.status, Status) else "unknown status"
        super().__init__(f"{name}: {message or text}")


class LinkTimeout(ProtocolError):
    """No (complete) reply arrived in time; the transport's TRUNCATED."""

    def __init__(self, message: str):
        super().__init__(Status.TRUNCATED, message)


# ---- CRC and encoding -------------------------------------------------------------------------

def _crc_table() -> list[int]:
    table = []
    for b in range(256):
        crc = b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_CRC_TABLE = _crc_table()


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no xor-out.

    ``crc16(b"123456789") == 0x29B1``. Pass a previous result as ``crc`` to continue.
    """
    t = _CRC_TABLE
    for b in bytes(data):
        crc = ((crc << 8) & 0xFFFF) ^ t[(crc >> 8) ^ b]
    return crc


def _encode(sync: int, seq: int, code: int, payload: bytes) -> bytes:
    payload = bytes(payload)
    if not 0 <= seq <= 0xFF:
        raise ValueError(f"seq {seq} out of range 0..255")
    if not 0 <= code <= 0xFF:
        raise ValueError(f"op/status {code} out of range 0..255")
    if len(payload) > 0xFFFF:
        raise ValueError(f"payload of {len(payload)} bytes exceeds the u16 length field")
    body = struct.pack("<BBH", seq, code, len(payload)) + payload
    return bytes([sync]) + body + struct.pack("<H", crc16(body))


def encode_request(seq: int, op: int, payload: bytes = b"") -> bytes:
    """A request frame: ``A5 | seq | op | len | payload | crc``."""
    return _encode(REQUEST_SYNC, seq, int(op), payload)


def encode_reply(seq: int, status: int, payload: bytes = b"") -> bytes:
    """A reply frame: ``5A | seq | status | len | payload | crc``."""
    return _encode(REPLY_SYNC, seq, int(status), payload)


# ---- decoding ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Frame:
    """A frame with a good CRC. ``code`` is the op (request) or the status (reply)."""

    kind: str
    seq: int
    code: int
    payload: bytes

    @property
    def op(self):
        return op_of(self.code)

    @property
    def status(self):
        return status_of(self.code)

    def to_bytes(self) -> bytes:
        enc = encode_request if self.kind == "request" else encode_reply
        return enc(self.seq, self.code, self.payload)


@dataclass(frozen=True)
class Fault:
    """A frame the decoder rejected. ``seq`` is 0 when the header was not received."""

    status: Status
    seq: int
    message: str

    def reply(self) -> bytes:
        """The error reply a chip sends for this fault."""
        return encode_reply(self.seq, self.status)


class FrameDecoder:
    """Incremental frame decoder: :meth:`feed` bytes, get :class:`Frame` and :class:`Fault` items.

    ``kind="request"`` hunts for 0xA5 (a chip end), ``kind="reply"`` for 0x5A (the host end).
    Faults: BAD_CRC when the CRC does not match; OVERSIZE at once from the header when
    ``len > max_payload`` (the frame's remaining len + 2 bytes are then skipped); TRUNCATED when
    the owner calls :meth:`timeout` in the middle of a frame (time is the transport's business).
    After a fault the decoder hunts for the next sync byte. Opcode, length and address rules
    belong to the chip (:func:`check_request`).
    """

    _HUNT, _HEADER, _PAYLOAD, _CRC, _SKIP = range(5)

    def __init__(self, kind: str = "request", max_payload: int | None = None):
        if kind not in ("request", "reply"):
            raise ValueError(f"kind must be 'request' or 'reply', not {kind!r}")
        self.kind = kind
        self.sync = REQUEST_SYNC if kind == "request" else REPLY_SYNC
        if max_payload is None:
            max_payload = 4 + 4 * DEFAULT_MAX_WORDS if kind == "request" else 0xFFFF
        self.max_payload = max_payload
        self._state = self._HUNT
        self._buf = bytearray()
        self._need = 0
        self._seq = 0

    @property
    def in_frame(self) -> bool:
        """True between a sync byte and the end of its frame (or of the bytes being skipped)."""
        return self._state != self._HUNT

    @property
    def wanted(self) -> int:
        """Bytes that can be read without reading past the end of the current frame."""
        if self._state == self._HUNT:
            return HEADER_BYTES
        if self._state == self._HEADER:
            return 4 - len(self._buf)
        if self._state == self._PAYLOAD:
            return self._need - len(self._buf) + CRC_BYTES
        if self._state == self._CRC:
            return self._need - len(self._buf)
        return self._need

    def reset(self) -> None:
        """Drop any partial frame and hunt for a sync byte."""
        self._state = self._HUNT
        self._buf = bytearray()
        self._need = 0
        self._seq = 0

    def timeout(self) -> Fault | None:
        """The bytes stopped: a frame in progress is TRUNCATED (skipping ends silently)."""
        state, seq = self._state, self._seq
        self.reset()
        if state in (self._HEADER, self._PAYLOAD, self._CRC):
            return Fault(Status.TRUNCATED, seq, "no byte for the timeout in the middle of a frame")
        return None

    def feed(self, data: bytes) -> list[Frame | Fault]:
        """Consume bytes; return the frames and faults they complete, in order."""
        out: list[Frame | Fault] = []
        data = memoryview(bytes(data))
        i, n = 0, len(data)
        while i < n:
            st = self._state
            if st == self._HUNT:
                j = bytes(data[i:]).find(self.sync)
                if j < 0:
                    break
                i += j + 1
                self._state, self._buf, self._seq = self._HEADER, bytearray(), 0
            elif st == self._HEADER:
                self._buf.append(data[i])
                i += 1
                if len(self._buf) == 1:
                    self._seq = self._buf[0]
                if len(self._buf) == 4:
                    length = self._buf[2] | (self._buf[3] << 8)
                    if length > self.max_payload:
                        out.append(Fault(Status.OVERSIZE, self._seq,
                                         f"len {length} exceeds the limit of {self.max_payload} bytes"))
                        self._state, self._need, self._buf = self._SKIP, length + CRC_BYTES, bytearray()
                    else:
                        self._state, self._need = self._PAYLOAD, 4 + length
                        if length == 0:
                            self._state, self._need = self._CRC, 4 + CRC_BYTES
            elif st == self._PAYLOAD:
                take = min(self._need - len(self._buf), n - i)
                self._buf += data[i:i + take]
                i += take
                if len(self._buf) == self._need:
                    self._state, self._need = self._CRC, self._need + CRC_BYTES
            elif st == self._CRC:
                self._buf.append(data[i])
                i += 1
                if len(self._buf) == self._need:
                    out.append(self._finish())
                    self.reset()
            else:  # skip
                take = min(self._need, n - i)
                self._need -= take
                i += take
                if self._need == 0:
                    self.reset()
        return out

    def _finish(self) -> Frame | Fault:
        body = bytes(self._buf[:-CRC_BYTES])
        got = self._buf[-2] | (self._buf[-1] << 8)
        want = crc16(body)
        if got != want:
            return Fault(Status.BAD_CRC, self._seq,
                         f"CRC 0x{got:04x} received, 0x{want:04x} computed over seq..payload")
        return Frame(self.kind, body[0], body[1], body[4:])


# ---- the chip's rules -------------------------------------------------------------------------

split_address = regmap.split_address


@dataclass(frozen=True)
class AddressMap:
    """What addresses a chip answers: its core count and the words per core of each buffer."""

    n_cores: int
    #: Words per core of each buffer space (1..6 on the NeuRRAM chip).
    buffer_words: Mapping[int, int]

    @classmethod
    def from_config(cls, config) -> "AddressMap":
        """The map of a ChipConfig (buffer sizes from the register map)."""
        return cls(config.n_cores, {int(b.space): b.words_per_core(config) for b in regmap.BUFFERS.values()})

    def in_range(self, addr: int, n: int = 1, *, write: bool = False) -> bool:
        """True when the n words from addr are all in one core's buffer or in the registers."""
        space, core, offset = split_address(addr)
        if space == 0:
            return core == 0 and offset + n <= REGISTER_WORDS
        words = self.buffer_words.get(space)
        if words is None:
            return False
        core_ok = core < self.n_cores or (write and core == regmap.BROADCAST_CORE)
        return core_ok and offset + n <= words

    def describe(self, addr: int) -> str:
        space, core, offset = split_address(addr)
        return f"0x{addr:08x} (space {space}, core {core}, offset {offset})"


_LENGTH_OK = {
    Op.READ: lambda n: n == 4,
    Op.WRITE: lambda n: n == 8,
    Op.WRITE_BURST: lambda n: n >= 8 and n % 4 == 0,
    Op.READ_BURST: lambda n: n == 6,
    Op.STATUS: lambda n: n == 0,
}


def check_request(frame: Frame, address_map: AddressMap, max_words: int = DEFAULT_MAX_WORDS) -> Status:
    """The status a chip answers a CRC-checked request with (first failing rule wins:
    UNKNOWN_OP, BAD_LENGTH, OVERSIZE for a READ_BURST count, ADDR_RANGE)."""
    if frame.code not in _LENGTH_OK.keys():
        return Status.UNKNOWN_OP
    op, p = Op(frame.code), frame.payload
    if not _LENGTH_OK[op](len(p)):
        return Status.BAD_LENGTH
    if op == Op.STATUS:
        return Status.OK
    addr = struct.unpack_from("<I", p)[0]
    n = 1
    if op == Op.WRITE_BURST:
        n = (len(p) - 4) // 4
    elif op == Op.READ_BURST:
        n = struct.unpack_from("<H", p, 4)[0]
        if n > max_words:
            return Status.OVERSIZE
    if not address_map.in_range(addr, n, write=op in (Op.WRITE, Op.WRITE_BURST)):
        return Status.ADDR_RANGE
    return Status.OK


class ProtocolServer:
    """The chip end of the protocol in Python, rule for rule the same as the RTL engine.

    ``read(addr) -> int`` and ``write(addr, data)`` reach the chip's word bus; bytes go in with
    ``server(data)`` (or :meth:`feed`), which returns the reply bytes. A frame with a fault
    changes nothing; a write burst is committed only after its frame checks out. Call
    :meth:`timeout` when the bytes stop (a frame in progress is answered TRUNCATED).
    Counters: ``frames_ok``, ``frames_bad`` (16 bits, wrapping), ``last_error``.
    """

    def __init__(self, read: Callable[[int], int], write: Callable[[int, int], None],
                 address_map: AddressMap, max_words: int = DEFAULT_MAX_WORDS):
        self.bus_read = read
        self.bus_write = write
        self.address_map = address_map
        self.max_words = max_words
        self.decoder = FrameDecoder("request", max_payload=4 + 4 * max_words)
        self.frames_ok = 0
        self.frames_bad = 0
        self.last_error = Status.OK

    def __call__(self, data: bytes) -> bytes:
        return self.feed(data)

    def feed(self, data: bytes) -> bytes:
        return b"".join(self._answer(item) for item in self.decoder.feed(data))

    def timeout(self) -> bytes:
        fault = self.decoder.timeout()
        return self._answer(fault) if fault is not None else b""

    def _fail(self, seq: int, status: Status) -> bytes:
        self.frames_bad = (self.frames_bad + 1) & 0xFFFF
        self.last_error = Status(status)
        return encode_reply(seq, status)

    def _answer(self, item: Frame | Fault) -> bytes:
        if isinstance(item, Fault):
            return self._fail(item.seq, item.status)
        status = check_request(item, self.address_map, self.max_words)
        if status != Status.OK:
            return self._fail(item.seq, status)
        self.frames_ok = (self.frames_ok + 1) & 0xFFFF
        op, p = Op(item.code), item.payload
        reply = b""
        if op == Op.STATUS:
            reply = struct.pack("<HHBBH", self.frames_ok, self.frames_bad, int(self.last_error), 0,
                                self.max_words)
        else:
            addr = struct.unpack_from("<I", p)[0]
            if op in (Op.WRITE, Op.WRITE_BURST):
                for i, w in enumerate(struct.unpack_from(f"<{(len(p) - 4) // 4}I", p, 4)):
                    self.bus_write(addr + i, w)
            else:
                n = 1 if op == Op.READ else struct.unpack_from("<H", p, 4)[0]
                reply = struct.pack(f"<{n}I", *(self.bus_read(addr + i) & 0xFFFFFFFF for i in range(n)))
        return encode_reply(item.seq, Status.OK, reply)


class LinkStatus(NamedTuple):
    """The engine's STATUS reply."""

    frames_ok: int
    frames_bad: int
    last_error: Status | int
    max_words: int
