"""The host end of the protocol: a :class:`Link` over any byte transport.

The frame format, CRC, opcodes, status codes and the chip end live in
:mod:`neurram.spec.protocol` (``docs/protocol.md``). :class:`Link` works over any transport with
``write(bytes)`` and ``read(n, timeout) -> bytes``; :class:`LoopbackTransport` connects it to a
Python chip end in the same process.
"""

from __future__ import annotations

import struct
import time

import numpy as np

from neurram.spec import regmap as regs
from typing import Callable

from neurram.spec.link import LinkCapabilities
from neurram.spec.protocol import (AddressMap, Fault, FrameDecoder, LinkStatus, LinkTimeout, Op, ProtocolError,
                                   Status, encode_request, op_name, status_of)

__all__ = ["Link", "LoopbackTransport"]


# ---- the host end -----------------------------------------------------------------------------

def _words(data) -> np.ndarray:
    a = np.asarray(data)
    if a.size == 0:
        return np.zeros(0, dtype="<u4")
    if a.ndim == 0:
        a = a.reshape(1)
    if a.ndim != 1:
        raise ValueError(f"words must be one-dimensional, got shape {a.shape}")
    if a.dtype.kind not in "iub" and not (a.dtype == object and all(isinstance(x, (int, np.integer)) for x in a)):
        raise ValueError(f"words must be integers, got dtype {a.dtype}")
    if a.size and (int(a.min()) < 0 or int(a.max()) > 0xFFFFFFFF):
        raise ValueError("words must be within 0..0xFFFFFFFF")
    return a.astype("<u4")


class Link:
    """The host end of the protocol over a transport with ``write(bytes)`` and
    ``read(n, timeout) -> bytes`` (at most n bytes; fewer, possibly none, on timeout).

    Every request carries the next sequence number (1..255, wrapping to 1; 0 is what a chip
    echoes when it lost a header). A reply with another seq is stale and is dropped
    (``rejected`` counts them). An error reply raises :class:`ProtocolError`, no reply in
    ``timeout`` seconds :class:`LinkTimeout`. Bursts longer than ``max_words`` go as several
    frames; ``max_words`` is asked from the chip (STATUS) on first need unless given. With an
    ``address_map``, bursts are checked before the first frame goes out, so that a burst the
    chip would refuse half-way is refused whole.
    """

    def __init__(self, transport, *, max_words: int | None = None, timeout: float = 1.0,
                 address_map: AddressMap | None = None, capabilities: LinkCapabilities = LinkCapabilities()):
        self.transport = transport
        #: What this link offers beyond the word operations (none, unless the opener says so).
        self.capabilities = capabilities
        self.timeout = timeout
        self.address_map = address_map
        self._max_words = max_words
        self._seq = 0
        self.decoder = FrameDecoder("reply")
        self.rejected = 0
        self.frames = 0

    # -- framing --------------------------------------------------------------------------------
    def _next_seq(self) -> int:
        self._seq = self._seq % 255 + 1
        return self._seq

    def transact(self, op: int, payload: bytes = b"") -> bytes:
        """Send one request and return its reply payload (or raise ProtocolError)."""
        seq = self._next_seq()
        self.decoder.reset()
        self.transport.write(encode_request(seq, op, payload))
        self.frames += 1
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            chunk = self.transport.read(self.decoder.wanted, max(left, 0.0)) if left > 0 else b""
            if not chunk:
                partial = self.decoder.in_frame
                self.decoder.reset()
                raise LinkTimeout(f"no {'complete ' if partial else ''}reply to {op_name(op)} "
                                  f"(seq {seq}) within {self.timeout} s"
                                  + (f"; {self.rejected} stale replies dropped" if self.rejected else ""))
            for item in self.decoder.feed(chunk):
                if isinstance(item, Fault):
                    raise ProtocolError(item.status, f"corrupt reply to {op_name(op)} (seq {seq}): {item.message}")
                if item.seq != seq:
                    self.rejected += 1
                    continue
                if item.code != Status.OK:
                    st = status_of(item.code)
                    text = st.text if isinstance(st, Status) else "unknown status"
                    raise ProtocolError(item.code, f"{op_name(op)} (seq {seq}) refused by the chip: {text}{self._where(op, payload)}")
                return item.payload

    def _where(self, op, payload: bytes) -> str:
        if len(payload) >= 4 and op in (Op.READ, Op.WRITE, Op.WRITE_BURST, Op.READ_BURST):
            addr = struct.unpack_from("<I", payload)[0]
            return f" at address 0x{addr:08x}"
        return ""

    # -- operations -----------------------------------------------------------------------------
    @property
    def max_words(self) -> int:
        """The chip's burst limit (asked with STATUS on first use unless given)."""
        if self._max_words is None:
            self._max_words = self.status().max_words
        return self._max_words

    def status(self) -> LinkStatus:
        p = self.transact(Op.STATUS)
        if len(p) != 8:
            raise ProtocolError(Status.BAD_LENGTH, f"STATUS reply of {len(p)} bytes, expected 8")
        ok, bad, err, _pad, mw = struct.unpack("<HHBBH", p)
        if self._max_words is None:
            self._max_words = mw
        return LinkStatus(ok, bad, status_of(err), mw)

    def read(self, addr: int) -> int:
        """Read one word."""
        p = self.transact(Op.READ, struct.pack("<I", self._addr(addr)))
        if len(p) != 4:
            raise ProtocolError(Status.BAD_LENGTH, f"READ reply of {len(p)} bytes, expected 4")
        return struct.unpack("<I", p)[0]

    def write(self, addr: int, data: int) -> None:
        """Write one word."""
        data = int(data)
        if not 0 <= data <= 0xFFFFFFFF:
            raise ValueError(f"data 0x{data:x} does not fit in 32 bits")
        self.transact(Op.WRITE, struct.pack("<II", self._addr(addr), data))

    def write_burst(self, addr: int, words) -> None:
        """Write words to addr, addr+1, ... (several frames when longer than max_words)."""
        addr = self._addr(addr)
        w = _words(words)
        if w.size == 0:
            return
        self._check_span(addr, w.size, write=True)
        mw = self.max_words
        for i in range(0, w.size, mw):
            self.transact(Op.WRITE_BURST, struct.pack("<I", addr + i) + w[i:i + mw].tobytes())

    def read_burst(self, addr: int, count: int) -> np.ndarray:
        """Read count words from addr, addr+1, ... as a numpy uint32 array."""
        addr = self._addr(addr)
        count = int(count)
        if count < 0:
            raise ValueError(f"count {count} is negative")
        out = np.zeros(count, dtype=np.uint32)
        if count == 0:
            return out
        self._check_span(addr, count, write=False)
        mw = self.max_words
        for i in range(0, count, mw):
            n = min(mw, count - i)
            p = self.transact(Op.READ_BURST, struct.pack("<IH", addr + i, n))
            if len(p) != 4 * n:
                raise ProtocolError(Status.BAD_LENGTH, f"READ_BURST reply of {len(p)} bytes, expected {4 * n}")
            out[i:i + n] = np.frombuffer(p, dtype="<u4")
        return out

    @staticmethod
    def _addr(addr: int) -> int:
        addr = int(addr)
        if not 0 <= addr <= 0xFFFFFFFF:
            raise ValueError(f"address 0x{addr:x} does not fit in 32 bits")
        return addr

    def _check_span(self, addr: int, n: int, *, write: bool) -> None:
        offset = addr & ((1 << regs.OFFSET_BITS) - 1)
        if offset + n > (1 << regs.OFFSET_BITS):
            raise ProtocolError(Status.ADDR_RANGE, f"a burst of {n} words from 0x{addr:08x} "
                                "would cross into the next core or space")
        if self.address_map is not None and not self.address_map.in_range(addr, n, write=write):
            raise ProtocolError(Status.ADDR_RANGE, f"a burst of {n} words from "
                                f"{self.address_map.describe(addr)} is outside the chip's map")


class LoopbackTransport:
    """A transport to a chip that is a Python callable: bytes in, reply bytes out.

    ``write`` hands the bytes to the chip at once and queues what it answers; ``read`` returns
    what is queued (at most n bytes) and never waits, so an empty result is a timeout.
    """

    def __init__(self, chip: Callable[[bytes], bytes]):
        self.chip = chip
        self._rx = bytearray()

    def write(self, data: bytes) -> None:
        self._rx += self.chip(bytes(data)) or b""

    def read(self, n: int, timeout: float | None = None) -> bytes:
        out = bytes(self._rx[:n])
        del self._rx[:n]
        return out
