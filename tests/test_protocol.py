"""The framed host protocol: host codec, Python chip end, RTL engine, and both ends together.

The RTL engine (``neurram.hdl.protocol.ProtocolEngine``) runs in the Amaranth simulator against
a small bus-slave model; every fault is also fed to the Python chip end
(``neurram.firmware.protocol.ProtocolServer``) and the two must answer with identical bytes.
"""

import os
import random
import struct
from collections import deque

import numpy as np
import pytest

os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")

from amaranth.sim import Simulator  # noqa: E402

from neurram import ChipConfig  # noqa: E402
from neurram.spec import regmap as regs  # noqa: E402
from neurram.firmware.protocol import Link, LoopbackTransport  # noqa: E402
from neurram.spec.protocol import (  # noqa: E402
    AddressMap, Fault, Frame, FrameDecoder, LinkTimeout, Op, ProtocolError, ProtocolServer, Status,
    check_request, crc16, encode_reply, encode_request,
)
from neurram.hdl import protocol as hwp  # noqa: E402
from neurram.hdl.protocol import Crc16, ProtocolEngine, recv_reply, send_frame  # noqa: E402

SMALL = ChipConfig.small()
GRID = ChipConfig.small(cores=(2, 2))
CONFIGS = pytest.mark.parametrize("config", [SMALL, GRID], ids=["1core", "2x2"])
#: The first address space the chip does not have.
BAD_SPACE = max(int(s) for s in regs.Space) + 1


def A(space, core, offset):
    return regs.address(space, core, offset)


def words_of(config, space):
    return AddressMap.from_config(config).buffer_words[space]


def default_word(addr):
    """What the slave returns for a word nobody wrote (distinct per address)."""
    return (addr * 2654435761 + 0x1234) & 0xFFFFFFFF


# ---- host codec ---------------------------------------------------------------------------------

def test_crc16_known_vectors():
    assert crc16(b"123456789") == 0x29B1
    assert crc16(b"") == 0xFFFF
    assert crc16(b"\x00") == 0xE1F0
    assert crc16(b"56789", crc16(b"1234")) == 0x29B1
    assert hwp.crc16(b"123456789") == 0x29B1


def test_encode_layout():
    f = encode_request(0x07, Op.WRITE, struct.pack("<II", 0x10, 0xDEADBEEF))
    assert f[:5] == bytes([0xA5, 0x07, 0x02, 8, 0])
    assert f[5:13] == bytes.fromhex("10000000efbeadde")
    assert struct.unpack("<H", f[13:])[0] == crc16(f[1:13])
    r = encode_reply(0x07, Status.OK, b"")
    assert r == bytes([0x5A, 7, 0, 0, 0]) + struct.pack("<H", crc16(bytes([7, 0, 0, 0])))
    with pytest.raises(ValueError):
        encode_request(256, Op.READ, b"")
    with pytest.raises(ValueError):
        encode_request(1, Op.READ, bytes(0x10000))


def test_decoder_round_trip_in_any_chunking():
    rng = random.Random(1)
    frames = [Frame("request", rng.randrange(256), rng.choice(list(Op)), rng.randbytes(rng.randrange(40)))
              for _ in range(30)]
    stream = b"".join(b"\x00\x13\x5a" + f.to_bytes() for f in frames)  # garbage between frames
    for chunk in (1, 3, 7, len(stream)):
        d = FrameDecoder("request")
        got = []
        for i in range(0, len(stream), chunk):
            got += d.feed(stream[i:i + chunk])
        assert got == frames
        assert not d.in_frame

    replies = [Frame("reply", 9, Status.OK, b"\x01\x02\x03\x04"), Frame("reply", 10, Status.ADDR_RANGE, b"")]
    d = FrameDecoder("reply")
    assert d.feed(b"".join(r.to_bytes() for r in replies)) == replies


def test_decoder_faults_and_resync():
    good = encode_request(2, Op.READ, struct.pack("<I", 5))
    bad = bytearray(encode_request(1, Op.WRITE, struct.pack("<II", 5, 6)))
    bad[7] ^= 0x40
    d = FrameDecoder("request")
    out = d.feed(bytes(bad) + good)
    assert isinstance(out[0], Fault) and out[0].status == Status.BAD_CRC and out[0].seq == 1
    assert "CRC" in out[0].message
    assert out[1] == Frame("request", 2, Op.READ, struct.pack("<I", 5))

    # OVERSIZE from the header alone, then the declared bytes are skipped.
    d = FrameDecoder("request", max_payload=12)
    hdr = bytes([0xA5, 3, Op.WRITE_BURST, 16, 0])
    out = d.feed(hdr)
    assert out == [Fault(Status.OVERSIZE, 3, out[0].message)] and "16" in out[0].message
    assert d.wanted == 18
    assert d.feed(bytes([0xA5]) * 18) == []          # sync bytes inside the skipped part are ignored
    assert d.feed(good) == [Frame("request", 2, Op.READ, struct.pack("<I", 5))]

    # TRUNCATED is the owner's call (a timeout); seq is 0 when the header did not arrive.
    d = FrameDecoder("request")
    d.feed(good[:6])
    assert d.in_frame
    f = d.timeout()
    assert f.status == Status.TRUNCATED and f.seq == 2 and "timeout" in f.message
    assert not d.in_frame
    d.feed(b"\xa5")
    f = d.timeout()
    assert f.status == Status.TRUNCATED and f.seq == 0
    assert d.timeout() is None
    assert Fault(Status.TRUNCATED, 2, "x").reply() == encode_reply(2, Status.TRUNCATED)


def test_decoder_wanted_never_reads_past_a_frame():
    frames = [encode_request(i, Op.READ_BURST, struct.pack("<IH", i, 3)) for i in range(1, 4)]
    stream = b"\x00\x01" + b"".join(frames)
    d = FrameDecoder("request")
    pos, got = 0, []
    while pos < len(stream):
        n = d.wanted
        assert n >= 1
        chunk = stream[pos:pos + n]
        pos += len(chunk)
        items = d.feed(chunk)
        got += items
        if items:   # a frame completes exactly at the end of a read
            assert not d.in_frame
    assert [f.seq for f in got] == [1, 2, 3]


def test_check_request_rules():
    am = AddressMap.from_config(GRID)
    ninput = am.buffer_words[1]

    def req(op, payload):
        return Frame("request", 1, op, payload)

    P = struct.pack
    assert check_request(req(0x7F, b""), am) == Status.UNKNOWN_OP
    assert check_request(req(0x00, P("<I", 0)), am) == Status.UNKNOWN_OP
    assert check_request(req(Op.READ, P("<IB", 0, 0)), am) == Status.BAD_LENGTH
    assert check_request(req(Op.WRITE, P("<I", 0)), am) == Status.BAD_LENGTH
    assert check_request(req(Op.WRITE_BURST, P("<I", 0)), am) == Status.BAD_LENGTH
    assert check_request(req(Op.WRITE_BURST, P("<IIH", 0, 0, 0)), am) == Status.BAD_LENGTH
    assert check_request(req(Op.READ_BURST, P("<II", 0, 1)), am) == Status.BAD_LENGTH
    assert check_request(req(Op.STATUS, b"\x00"), am) == Status.BAD_LENGTH
    assert check_request(req(Op.STATUS, b""), am) == Status.OK
    assert check_request(req(Op.READ_BURST, P("<IH", 0, 257)), am) == Status.OVERSIZE
    assert check_request(req(Op.READ_BURST, P("<IH", 0, 9), ), am, max_words=8) == Status.OVERSIZE
    assert check_request(req(Op.READ, P("<I", 0xFFF)), am) == Status.OK
    assert check_request(req(Op.READ, P("<I", 0x1000)), am) == Status.ADDR_RANGE
    assert check_request(req(Op.READ, P("<I", A(0, 1, 0))), am) == Status.ADDR_RANGE
    assert check_request(req(Op.READ, P("<I", A(BAD_SPACE, 0, 0))), am) == Status.ADDR_RANGE
    assert check_request(req(Op.READ, P("<I", A(1, 3, ninput - 1))), am) == Status.OK
    assert check_request(req(Op.READ, P("<I", A(1, 4, 0))), am) == Status.ADDR_RANGE
    assert check_request(req(Op.READ, P("<I", A(1, 63, 0))), am) == Status.ADDR_RANGE
    assert check_request(req(Op.WRITE, P("<II", A(1, 63, 0), 1)), am) == Status.OK
    assert check_request(req(Op.READ_BURST, P("<IH", A(1, 0, ninput - 2), 2)), am) == Status.OK
    assert check_request(req(Op.READ_BURST, P("<IH", A(1, 0, ninput - 2), 3)), am) == Status.ADDR_RANGE
    nbl = am.buffer_words[3]                              # the BL register: one burst past its end
    assert check_request(req(Op.WRITE_BURST, P(f"<I{nbl}I", A(3, 0, 0), *range(nbl))), am) == Status.OK
    assert check_request(req(Op.WRITE_BURST, P(f"<I{nbl + 1}I", A(3, 0, 0), *range(nbl + 1))), am) == Status.ADDR_RANGE


# ---- the host link against the Python chip end ----------------------------------------------------

class DictBus:
    def __init__(self):
        self.mem = {}
        self.writes = []

    def read(self, addr):
        return self.mem.get(addr, default_word(addr))

    def write(self, addr, data):
        self.mem[addr] = data
        self.writes.append((addr, data))


def python_chip(config=GRID, max_words=8):
    bus = DictBus()
    return bus, ProtocolServer(bus.read, bus.write, AddressMap.from_config(config), max_words=max_words)


def test_link_over_python_chip():
    bus, chip = python_chip()
    sent = []
    link = Link(LoopbackTransport(lambda b: (sent.append(b), chip(b))[1]))
    link.write(0x10, 0xCAFEF00D)
    assert link.read(0x10) == 0xCAFEF00D
    assert link._max_words is None
    data = np.arange(20, dtype=np.uint32) * 3 + 1
    link.write_burst(A(1, 2, 5), data)                      # STATUS, then 3 frames of <= 8 words
    assert link.max_words == 8
    assert [f[2] for f in sent[2:]] == [Op.STATUS, Op.WRITE_BURST, Op.WRITE_BURST, Op.WRITE_BURST]
    assert [bus.mem[A(1, 2, 5 + i)] for i in range(20)] == list(data)
    back = link.read_burst(A(1, 2, 5), 20)
    assert back.dtype == np.uint32 and np.array_equal(back, data)
    assert [f[1] for f in sent] == list(range(1, len(sent) + 1))   # seq increments per frame
    st = link.status()
    assert (st.frames_ok, st.frames_bad, st.last_error, st.max_words) == (len(sent), 0, Status.OK, 8)
    link.write_burst(A(1, 63, 0), [1, 2])                   # broadcast writes are allowed
    link.write_burst(0, [])                                 # nothing to do, nothing sent
    assert len(link.read_burst(0, 0)) == 0


def test_link_errors():
    bus, chip = python_chip()
    link = Link(LoopbackTransport(chip), max_words=8)
    with pytest.raises(ProtocolError) as e:
        link.read(A(BAD_SPACE, 0, 0))
    assert e.value.status == Status.ADDR_RANGE and f"0x{A(BAD_SPACE, 0, 0):08x}" in str(e.value)
    with pytest.raises(ProtocolError) as e:
        link.read(A(1, 63, 0))                              # broadcast is for writes only
    assert e.value.status == Status.ADDR_RANGE
    with pytest.raises(ProtocolError) as e:
        link.transact(0x42)
    assert e.value.status == Status.UNKNOWN_OP and "UNKNOWN_OP" in str(e.value)
    with pytest.raises(ProtocolError) as e:
        link.transact(Op.READ, b"\x00")
    assert e.value.status == Status.BAD_LENGTH
    with pytest.raises(ValueError):
        link.write(0, 1 << 32)
    with pytest.raises(ValueError):
        link.write_burst(0, np.array([1.5]))
    with pytest.raises(ValueError):
        link.write_burst(0, [-1])
    assert bus.writes == []
    st = link.status()
    assert st.frames_bad == 4 and st.last_error == Status.BAD_LENGTH

    # With an address map, a burst the chip would refuse half-way is refused before any frame.
    n = words_of(GRID, 1)
    careful = Link(LoopbackTransport(chip), max_words=8, address_map=AddressMap.from_config(GRID))
    with pytest.raises(ProtocolError) as e:
        careful.write_burst(A(1, 0, n - 10), np.ones(20, np.uint32))
    assert e.value.status == Status.ADDR_RANGE and bus.writes == []
    # Without one, the chip refuses the offending chunk (earlier chunks were written).
    with pytest.raises(ProtocolError):
        link.write_burst(A(1, 0, n - 10), np.ones(20, np.uint32))
    assert len(bus.writes) == 8


def test_link_timeout_stale_and_corrupt_replies():
    with pytest.raises(LinkTimeout) as e:
        Link(LoopbackTransport(lambda b: b""), timeout=0.01).read(0)
    assert e.value.status == Status.TRUNCATED and "no reply" in str(e.value)

    bus, chip = python_chip()
    stale = encode_reply(200, Status.OK, b"\x00\x00\x00\x00")
    link = Link(LoopbackTransport(lambda b: stale + chip(b)), max_words=8)
    bus.mem[4] = 77
    assert link.read(4) == 77 and link.rejected == 1

    def corrupt(b):
        r = bytearray(chip(b))
        r[-1] ^= 1
        return bytes(r)
    with pytest.raises(ProtocolError) as e:
        Link(LoopbackTransport(corrupt), max_words=8).read(4)
    assert e.value.status == Status.BAD_CRC and "corrupt reply" in str(e.value)

    link = Link(LoopbackTransport(chip), max_words=8)
    for _ in range(300):                                    # seq wraps 255 -> 1, never 0
        link.read(4)
    assert link._seq == 300 % 255


def test_python_chip_counts_and_truncation():
    bus, chip = python_chip()
    assert chip(encode_request(9, Op.WRITE, struct.pack("<I", 0))[:6]) == b""
    assert chip.timeout() == encode_reply(9, Status.TRUNCATED)
    assert chip.timeout() == b""
    assert chip(b"\xa5") == b"" and chip.timeout() == encode_reply(0, Status.TRUNCATED)
    assert chip.frames_bad == 2 and chip.last_error == Status.TRUNCATED and bus.writes == []


# ---- the RTL engine ----------------------------------------------------------------------------

class BusSlave:
    """A dict memory on the chip bus: writes land at once, reads answer after ``latency`` cycles."""

    def __init__(self, latency=3, mem=None):
        assert 1 <= latency <= 4
        self.latency = latency
        self.mem = dict(mem or {})
        self.writes = []
        self.reads = []

    def read(self, addr):
        return self.mem.get(addr, default_word(addr))

    def process(self, bus):
        async def run(ctx):
            pending = None
            async for _, _, w_en, r_en, addr, w_data in ctx.tick().sample(
                    bus.w_en, bus.r_en, bus.addr, bus.w_data):
                ctx.set(bus.r_valid, 0)
                assert not (w_en and r_en), "read and write in the same cycle"
                if w_en:
                    self.mem[addr] = w_data
                    self.writes.append((addr, w_data))
                if r_en:
                    assert pending is None, "a read was issued before the previous one answered"
                    pending = [self.latency, addr]
                    self.reads.append(addr)
                if pending is not None:
                    pending[0] -= 1
                    if pending[0] == 0:
                        ctx.set(bus.r_data, self.read(pending[1]))
                        ctx.set(bus.r_valid, 1)
                        pending = None
        return run


class Engine:
    """The RTL engine in the simulator, pumped from plain Python: ``send`` bytes, ``reply()``.

    Two background testbenches shuttle bytes: one drives ``rx`` from a queue, one always takes
    ``tx`` bytes into a buffer (so an engine that replies while bytes are still coming is fine).
    """

    def __init__(self, config, *, max_words=16, timeout_cycles=64, latency=3, mem=None):
        self.dut = ProtocolEngine(config, max_words=max_words, timeout_cycles=timeout_cycles)
        self.slave = BusSlave(latency, mem)
        self.to_chip = deque()
        self.from_chip = bytearray()
        self.cycles = 0
        self.sim = Simulator(self.dut)
        self.sim.add_clock(1e-8)
        self.sim.add_process(self.slave.process(self.dut.bus))
        self.sim.add_testbench(self._driver, background=True)
        self.sim.add_testbench(self._collector, background=True)

    async def _driver(self, ctx):
        rx = self.dut.rx
        while True:
            if self.to_chip:
                ctx.set(rx.payload, self.to_chip[0])
                ctx.set(rx.valid, 1)
                _, _, ready = await ctx.tick().sample(rx.ready)
                if ready:
                    self.to_chip.popleft()
            else:
                ctx.set(rx.valid, 0)
                await ctx.tick()

    async def _collector(self, ctx):
        ctx.set(self.dut.tx.ready, 1)
        async for _, _, valid, payload in ctx.tick().sample(self.dut.tx.valid, self.dut.tx.payload):
            self.cycles += 1
            if valid:
                self.from_chip.append(payload)

    def send(self, data):
        self.to_chip.extend(bytes(data))

    def run(self, cycles):
        end = self.cycles + cycles
        while self.cycles < end:
            self.sim.advance()

    def _complete(self):
        b = self.from_chip
        assert not b or b[0] == 0x5A, f"reply does not start with 0x5A: {bytes(b)!r}"
        return len(b) >= 5 and len(b) >= 7 + (b[3] | b[4] << 8)

    def reply(self, max_cycles=20_000):
        end = self.cycles + max_cycles
        while not self._complete():
            if self.cycles >= end:
                raise TimeoutError(f"no complete reply in {max_cycles} cycles: {bytes(self.from_chip)!r}")
            self.sim.advance()
        n = 7 + (self.from_chip[3] | self.from_chip[4] << 8)
        out = bytes(self.from_chip[:n])
        del self.from_chip[:n]
        return out

    def transact(self, frame):
        self.send(frame)
        return self.reply()


class SimTransport:
    """A Link transport into the simulated engine (timeouts count simulated cycles)."""

    def __init__(self, engine, cycles=20_000):
        self.engine, self.budget = engine, cycles

    def write(self, data):
        self.engine.send(data)

    def read(self, n, timeout=None):
        e = self.engine
        end = e.cycles + self.budget
        while len(e.from_chip) < n and e.cycles < end:
            e.sim.advance()
        out = bytes(e.from_chip[:n])
        del e.from_chip[:n]
        return out


def parse_reply(r):
    d = FrameDecoder("reply")
    (frame,) = d.feed(r)
    assert isinstance(frame, Frame), frame
    return frame


def test_crc16_component_matches_software():
    dut = Crc16()
    data = bytes(random.Random(5).randbytes(40)) + b"123456789"

    async def tb(ctx):
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        for i, b in enumerate(data):
            ctx.set(dut.data, b)
            ctx.set(dut.en, 1)
            await ctx.tick()
            assert ctx.get(dut.value) == crc16(data[:i + 1])
        ctx.set(dut.en, 0)
        ctx.set(dut.clear, 1)
        await ctx.tick()
        for b in b"123456789":
            ctx.set(dut.clear, 0)
            ctx.set(dut.data, b)
            ctx.set(dut.en, 1)
            await ctx.tick()
        assert ctx.get(dut.value) == 0x29B1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()


@CONFIGS
@pytest.mark.parametrize("latency", [1, 4])
def test_engine_operations(config, latency):
    """All five ops in an async testbench with the simulation helpers send_frame / recv_reply."""
    dut = ProtocolEngine(config, max_words=16, timeout_cycles=200)
    slave = BusSlave(latency)
    last = config.n_cores - 1
    nin = words_of(config, 1)
    burst = [0x01020304 * (i + 1) & 0xFFFFFFFF for i in range(16)]
    results = {}

    async def tb(ctx):
        async def ask(seq, op, payload=b""):
            await send_frame(ctx, dut.rx, encode_request(seq, op, payload))
            r = parse_reply(await recv_reply(ctx, dut.tx))
            assert r.seq == seq and r.status == Status.OK, r
            return r.payload

        assert await ask(1, Op.WRITE, struct.pack("<II", 0x18, 0xA5A5_0001)) == b""
        assert await ask(2, Op.READ, struct.pack("<I", 0x18)) == struct.pack("<I", 0xA5A5_0001)
        assert await ask(3, Op.READ, struct.pack("<I", 0x19)) == struct.pack("<I", default_word(0x19))
        base = A(1, last, nin - 16)                         # a full burst ending at the buffer end
        assert await ask(4, Op.WRITE_BURST, struct.pack("<I16I", base, *burst)) == b""
        got = await ask(5, Op.READ_BURST, struct.pack("<IH", base, 16))
        assert list(struct.unpack("<16I", got)) == burst
        assert await ask(6, Op.READ_BURST, struct.pack("<IH", base, 0)) == b""
        assert await ask(7, Op.WRITE_BURST, struct.pack("<II", A(3, 63, 0), 0x55)) == b""
        ok, bad, err, pad, mw = struct.unpack("<HHBBH", await ask(8, Op.STATUS))
        results["status"] = (ok, bad, err, pad, mw)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_process(slave.process(dut.bus))
    sim.add_testbench(tb)
    sim.run()
    assert results["status"] == (8, 0, 0, 0, 16)
    assert slave.writes == ([(0x18, 0xA5A5_0001)] + [(A(1, last, nin - 16) + i, w) for i, w in enumerate(burst)]
                            + [(A(3, 63, 0), 0x55)])


def measure_cycles(frame, latency, config=SMALL):
    """Cycles from offering the first request byte to taking the last reply byte (both sides
    always ready), and the reply."""
    dut = ProtocolEngine(config)
    slave = BusSlave(latency=latency)
    out = {}

    async def tb(ctx):
        ctx.set(dut.tx.ready, 1)
        rx, got, i, ticks = list(frame), [], 0, 0
        while not (len(got) >= 5 and len(got) == 7 + (got[3] | got[4] << 8)):
            ctx.set(dut.rx.valid, i < len(rx))
            ctx.set(dut.rx.payload, rx[i] if i < len(rx) else 0)
            accept = ctx.get(dut.rx.ready) and i < len(rx)
            if ctx.get(dut.tx.valid):
                got.append(ctx.get(dut.tx.payload))
            await ctx.tick()
            ticks += 1
            i += bool(accept)
            assert ticks < 10_000
        out["cycles"], out["reply"] = ticks, bytes(got)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_process(slave.process(dut.bus))
    sim.add_testbench(tb)
    sim.run()
    return out["cycles"], parse_reply(out["reply"])


@pytest.mark.parametrize("latency", [1, 4])
def test_engine_cycle_counts(latency):
    """The timing table of docs/protocol.md."""
    P = struct.pack
    cycles, r = measure_cycles(encode_request(1, Op.READ, P("<I", 3)), latency)
    # 11 request bytes, 1 check, 5 header, 1 read + latency, 4 data, 2 CRC.
    assert r.payload == P("<I", default_word(3)) and cycles == 24 + latency
    assert measure_cycles(encode_request(1, Op.WRITE, P("<II", 3, 4)), latency)[0] == 25
    for n in (1, 5):
        burst = encode_request(1, Op.WRITE_BURST, P("<I", A(1, 0, 0)) + bytes(4 * n))
        assert measure_cycles(burst, latency)[0] == 20 + 5 * n
        burst = encode_request(1, Op.READ_BURST, P("<IH", A(1, 0, 0), n))
        assert measure_cycles(burst, latency)[0] == 21 + n * (5 + latency)
    assert measure_cycles(encode_request(1, Op.STATUS), latency)[0] == 23
    assert measure_cycles(encode_request(1, 0x09), latency)[0] == 15


def fault_cases(config, max_words):
    """(name, bytes sent, expected status, expected seq, cycles to idle after sending)."""
    P = struct.pack
    n_in = words_of(config, 1)
    cores = config.n_cores
    bad_crc = bytearray(encode_request(11, Op.WRITE_BURST, P("<I4I", A(1, 0, 0), 1, 2, 3, 4)))
    bad_crc[9] ^= 0x01
    bad_crc2 = bytearray(encode_request(12, Op.WRITE, P("<II", 0x18, 7)))
    bad_crc2[-1] ^= 0x80
    big = 4 + 4 * max_words + 4
    oversize = bytes([0xA5, 21, Op.WRITE_BURST]) + P("<H", big) + bytes([0xA5]) * (big + 2)
    return [
        ("bad_crc_burst", bytes(bad_crc), Status.BAD_CRC, 11, 0),
        ("bad_crc_in_crc", bytes(bad_crc2), Status.BAD_CRC, 12, 0),
        ("unknown_op", encode_request(13, 0x66, P("<I", 0)), Status.UNKNOWN_OP, 13, 0),
        ("op_zero", encode_request(14, 0x00, b""), Status.UNKNOWN_OP, 14, 0),
        ("bad_space", encode_request(15, Op.WRITE, P("<II", A(BAD_SPACE, 0, 0), 1)), Status.ADDR_RANGE, 15, 0),
        ("space_15", encode_request(15, Op.READ, P("<I", A(15, 0, 0))), Status.ADDR_RANGE, 15, 0),
        ("bad_core", encode_request(16, Op.WRITE, P("<II", A(1, cores, 0), 1)), Status.ADDR_RANGE, 16, 0),
        ("broadcast_read", encode_request(17, Op.READ_BURST, P("<IH", A(1, 63, 0), 1)), Status.ADDR_RANGE, 17, 0),
        ("burst_past_end", encode_request(18, Op.WRITE_BURST, P("<I2I", A(1, 0, n_in - 1), 1, 2)),
         Status.ADDR_RANGE, 18, 0),
        ("read_past_end", encode_request(18, Op.READ_BURST, P("<IH", A(2, 0, 0), words_of(config, 2) + 1)),
         Status.ADDR_RANGE if words_of(config, 2) + 1 <= max_words else Status.OVERSIZE, 18, 0),
        ("register_range", encode_request(19, Op.WRITE_BURST, P("<I2I", 0xFFF, 1, 2)), Status.ADDR_RANGE, 19, 0),
        ("register_core_bits", encode_request(19, Op.WRITE, P("<II", A(0, 1, 0), 1)), Status.ADDR_RANGE, 19, 0),
        ("oversize_len", oversize, Status.OVERSIZE, 21, 0),
        ("oversize_count", encode_request(22, Op.READ_BURST, P("<IH", A(1, 0, 0), max_words + 1)),
         Status.OVERSIZE, 22, 0),
        ("truncated_payload", encode_request(23, Op.WRITE, P("<II", 0x18, 9))[:8], Status.TRUNCATED, 23, 200),
        ("truncated_crc", encode_request(24, Op.WRITE, P("<II", 0x18, 9))[:-1], Status.TRUNCATED, 24, 200),
        ("truncated_header", b"\xa5", Status.TRUNCATED, 0, 200),
        ("bad_length_read", encode_request(25, Op.READ, P("<IB", 0x18, 0)), Status.BAD_LENGTH, 25, 0),
        ("bad_length_write", encode_request(26, Op.WRITE, P("<I", 0x18)), Status.BAD_LENGTH, 26, 0),
        ("bad_length_burst", encode_request(27, Op.WRITE_BURST, P("<IIH", 0x18, 1, 2)), Status.BAD_LENGTH, 27, 0),
        ("bad_length_short_burst", encode_request(27, Op.WRITE_BURST, P("<I", 0x18)), Status.BAD_LENGTH, 27, 0),
        ("bad_length_read_burst", encode_request(28, Op.READ_BURST, P("<II", 0x18, 1)), Status.BAD_LENGTH, 28, 0),
        ("bad_length_status", encode_request(29, Op.STATUS, b"\x00"), Status.BAD_LENGTH, 29, 0),
    ]


FAULT_NAMES = [c[0] for c in fault_cases(SMALL, 16)]


@pytest.mark.parametrize("config", [SMALL, GRID], ids=["1core", "2x2"])
def test_engine_faults(config):
    """Each fault: the right status and seq, nothing written, and the next good frame works
    (also after garbage); the Python chip end answers every byte identically."""
    max_words, timeout = 16, 64
    init = {0x18: 0x11111111, A(1, 0, 0): 0x22222222}
    eng = Engine(config, max_words=max_words, timeout_cycles=timeout, mem=init)
    py_bus = DictBus()
    py_bus.mem.update(init)
    py = ProtocolServer(py_bus.read, py_bus.write, AddressMap.from_config(config), max_words=max_words)
    seq = 100
    for name, data, status, fseq, idle in fault_cases(config, max_words):
        eng.send(data)
        if idle:
            eng.run(idle)
        r = eng.reply()
        f = parse_reply(r)
        assert (f.status, f.seq, f.payload) == (status, fseq, b""), name
        # The Python chip end says the same, byte for byte.
        py_r = py(data) + (py.timeout() if idle else b"")
        assert py_r == r, name
        assert eng.slave.writes == [] and eng.slave.mem == init, name
        # A good frame right after (once with garbage in front) works.
        seq += 1
        garbage = b"\x00\x5a\xff\x13" if seq % 2 else b""
        good = encode_request(seq, Op.READ, struct.pack("<I", 0x18))
        r = eng.transact(garbage + good)
        assert r == py(garbage + good), name
        f = parse_reply(r)
        assert (f.status, f.seq, f.payload) == (Status.OK, seq, struct.pack("<I", 0x11111111)), name
        eng.run(5)
        assert not eng.from_chip, name
    n_faults = len(FAULT_NAMES)
    r = eng.transact(encode_request(1, Op.STATUS))
    assert r == py(encode_request(1, Op.STATUS))
    ok, bad, err, _, mw = struct.unpack("<HHBBH", parse_reply(r).payload)
    assert (ok, bad, err, mw) == (n_faults + 1, n_faults, Status.BAD_LENGTH, max_words)
    assert eng.slave.reads == [0x18] * n_faults


def test_engine_oversize_replies_before_the_payload():
    """OVERSIZE is answered from the header alone, then len + 2 bytes are dropped."""
    eng = Engine(SMALL, max_words=4, timeout_cycles=64)
    eng.send(bytes([0xA5, 3, Op.WRITE_BURST, 0xFF, 0x00]))
    r = eng.reply(max_cycles=50)
    assert parse_reply(r) == Frame("reply", 3, Status.OVERSIZE, b"")
    eng.send(bytes(0xFF + 2))
    eng.send(encode_request(4, Op.STATUS))
    assert parse_reply(eng.reply()).seq == 4
    # The bytes stop while skipping: the engine gives up silently and hunts again.
    eng.send(bytes([0xA5, 5, Op.WRITE_BURST, 0xFF, 0x00, 1, 2, 3]))
    assert parse_reply(eng.reply()).status == Status.OVERSIZE
    eng.run(200)
    assert not eng.from_chip
    assert parse_reply(eng.transact(encode_request(6, Op.STATUS))).seq == 6


def test_engine_random_fuzz_against_python_chip():
    """Random good and corrupted frames: the RTL and the Python chip end agree byte for byte,
    and on the memory they leave behind."""
    rng = random.Random(7)
    config, max_words = GRID, 8
    am = AddressMap.from_config(config)
    eng = Engine(config, max_words=max_words, timeout_cycles=64, latency=2)
    py_bus = DictBus()
    py = ProtocolServer(py_bus.read, py_bus.write, am, max_words=max_words)
    P = struct.pack
    seen = set()
    for i in range(60):
        space = rng.choice([0, 1, 2, 3, 5, 6, BAD_SPACE])
        core = rng.choice([0, 1, 3, 4, 63])
        words = am.buffer_words.get(space, 8) if space else 0x1000
        addr = A(space, core, rng.randrange(max(1, words - 2))) if space else rng.randrange(0xFF8, 0x1000)
        op = rng.choice(list(Op) + [9])
        n = rng.randrange(1, max_words + 2)
        payload = {
            Op.READ: P("<I", addr), Op.WRITE: P("<II", addr, rng.getrandbits(32)),
            Op.WRITE_BURST: P("<I", addr) + bytes(rng.randbytes(4 * n)),
            Op.READ_BURST: P("<IH", addr, n), Op.STATUS: b"", 9: b"",
        }[op]
        frame = bytearray(encode_request(i + 1, op, payload))
        if rng.random() < 0.2:   # flip a bit anywhere but in the sync byte and the length
            frame[rng.choice([1, 2] + list(range(5, len(frame))))] ^= 1 << rng.randrange(8)
        r = eng.transact(bytes(frame))
        assert r == py(bytes(frame)), (i, bytes(frame).hex())
        seen.add(parse_reply(r).status)
    assert eng.slave.writes == py_bus.writes and py_bus.writes
    assert len(seen) >= 5, seen


@pytest.mark.parametrize("config", [SMALL, GRID], ids=["1core", "2x2"])
def test_link_drives_the_rtl_engine(config):
    """The host's Link talks to the RTL engine through the simulator: same protocol, both ends."""
    eng = Engine(config, max_words=8, timeout_cycles=200, latency=3)
    link = Link(SimTransport(eng))
    assert link.max_words == 8                              # learned from STATUS
    link.write(0x20, 0x12345678)
    assert link.read(0x20) == 0x12345678
    core = config.n_cores - 1
    n = words_of(config, 1)
    data = np.arange(n, dtype=np.uint32) * 0x01010101
    link.write_burst(A(1, core, 0), data)                   # the whole input buffer, in 8-word frames
    assert np.array_equal(link.read_burst(A(1, core, 0), n), data)
    with pytest.raises(ProtocolError) as e:
        link.read_burst(A(1, core, n - 4), 5)
    assert e.value.status == Status.ADDR_RANGE
    with pytest.raises(ProtocolError) as e:
        link.read(A(1, config.n_cores, 0))
    assert e.value.status == Status.ADDR_RANGE
    st = link.status()
    assert st.frames_bad == 2 and st.last_error == Status.ADDR_RANGE and st.max_words == 8
    assert len(eng.slave.writes) == 1 + n


def test_host_side_needs_no_amaranth():
    import subprocess
    import sys
    code = ("import sys, neurram.firmware.protocol; "
            "bad = [m for m in sys.modules if m.startswith(('amaranth', 'neurram.hdl'))]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
