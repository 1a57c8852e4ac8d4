"""The host protocol's frame format, shared by the engine's parts (``docs/protocol.md``).

Request  ``A5 | seq | op | len:u16le | payload[len] | crc:u16le``
Reply    ``5A | seq | status | len:u16le | payload[len] | crc:u16le``

The constants, opcodes and status codes are the protocol's one definition,
:mod:`neurram.spec.protocol`; this module adds what only the gateware needs.

CRC-16/CCITT-FALSE over seq..payload (``amaranth.lib.crc.catalog.CRC16_CCITT_FALSE``: poly 0x1021,
init 0xFFFF, no reflection, no xor-out), sent little-endian.
"""

from amaranth.lib import crc, data, wiring
from amaranth.lib.wiring import In, Out

from neurram.spec.protocol import REGISTER_WORDS, REPLY_SYNC, REQUEST_SYNC, Op, Status, crc16

__all__ = ["REQUEST_SYNC", "REPLY_SYNC", "Op", "Status", "REGISTER_WORDS", "CRC16", "crc16", "Request",
           "FrameStats", "crc_user_signature", "word_source_signature"]

#: The frames' CRC in gates (``CRC16(data_width=8).create()``: one byte a cycle); the software CRC
#: of the same algorithm is :func:`neurram.spec.protocol.crc16`.
CRC16 = crc.catalog.CRC16_CCITT_FALSE


class Request(data.Struct):
    """The fields of the request being received (payload fields as far as they arrived)."""
    seq: 8
    op: 8
    length: 16
    addr: 32              # payload bytes 0-3
    count: 16             # READ_BURST: payload bytes 4-5


class FrameStats(data.Struct):
    """What a STATUS request reports (16-bit counters wrap)."""
    frames_ok: 16
    frames_bad: 16
    last_error: 8


def crc_user_signature() -> wiring.Signature:
    """Use of the engine's CRC processor (seen from the user: Out = it drives): ``start``
    restarts it, ``valid`` folds in the byte on the wire; ``value`` is the CRC so far."""
    return wiring.Signature({"start": Out(1), "valid": Out(1), "value": In(16)})


def word_source_signature() -> wiring.Signature:
    """Reply words read from the bus, one at a time (seen from the transmitter: Out = it drives).

    ``rewind`` restarts at word 0; ``fetch`` reads the current word, whose ``data`` is there
    with ``ready``; ``advance`` moves to the next word; ``last`` says the current word is the
    frame's last.
    """
    return wiring.Signature({
        "rewind": Out(1),
        "fetch": Out(1),
        "advance": Out(1),
        "data": In(32),
        "ready": In(1),
        "last": In(1),
    })
