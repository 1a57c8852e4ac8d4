"""A protocol transport into an Amaranth simulation of the FPGA chip (tests, docs/fpga.md).

:class:`SimTransport` has the ``write(bytes)`` / ``read(n, timeout)`` of the host's transports
(``firmware/transport.py``), so ``firmware.protocol.Link`` and ``firmware.driver.Chip`` drive the
simulated design exactly as they drive a board over ``serial:``. It carries the bytes either on
the chip's byte streams (``NeurramChip.rx``/``tx``; fast) or at the UART pins of an
:class:`~neurram.hdl.fpga.top.FpgaChip` (``uart_rx``/``uart_tx``, 8N1, bit by bit). A read
advances the simulation until a byte comes out or ``max_cycles`` pass (then it returns nothing,
as a serial port does at its timeout).
"""

from __future__ import annotations

from collections import deque

from amaranth.sim import Simulator

__all__ = ["SimTransport"]

_PERIOD_S = 1e-6                    # simulated clock period (time only counts cycles here)
_RESET_CYCLES = 4                   # the chip's reset leaves through registers: send after it


class SimTransport:
    """Bytes to and from a simulated chip; ``pins=True`` for an FpgaChip's UART pins."""

    def __init__(self, dut, *, pins: bool = False, max_cycles: int = 200_000, chunk_cycles: int = 200):
        self.dut = dut
        self.pins = pins
        self.max_cycles = max_cycles
        self.chunk_cycles = chunk_cycles
        self.divisor = getattr(dut, "divisor", None)
        self._in = deque()                          # bytes (or raw bit lists) to send
        self._out = deque()
        self.cycles = 0
        self.sim = Simulator(dut)
        self.sim.add_clock(_PERIOD_S)
        if pins:
            self.sim.add_testbench(self._pin_sender, background=True)
            self.sim.add_testbench(self._pin_receiver, background=True)
        else:
            self.sim.add_testbench(self._stream_sender, background=True)
            self.sim.add_testbench(self._stream_receiver, background=True)

    # -- the transport ---------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        self._in.extend(bytes(data))

    def send_bits(self, bits) -> None:
        """Drive raw levels on ``uart_rx``, one per bit time (pins only): malformed frames."""
        self._in.append(list(bits))

    def read(self, n: int, timeout: float | None = None) -> bytes:
        spent = 0
        while not self._out and spent < self.max_cycles:
            self.run(self.chunk_cycles)
            spent += self.chunk_cycles
        out = bytearray()
        while self._out and len(out) < max(n, 1):
            out.append(self._out.popleft())
        return bytes(out)

    def close(self) -> None:
        pass

    def run(self, cycles: int) -> None:
        self.cycles += cycles
        self.sim.run_until(self.cycles * _PERIOD_S)

    def idle(self) -> bool:
        return not self._in

    # -- byte streams ----------------------------------------------------------------------------
    async def _stream_sender(self, ctx):
        rx = self.dut.rx
        await ctx.tick().repeat(_RESET_CYCLES)
        while True:
            if not self._in:
                await ctx.tick()
                continue
            ctx.set(rx.payload, self._in.popleft())
            ctx.set(rx.valid, 1)
            await ctx.tick().until(rx.ready)
            ctx.set(rx.valid, 0)

    async def _stream_receiver(self, ctx):
        tx = self.dut.tx
        ctx.set(tx.ready, 1)
        async for _clk, _rst, valid, payload in ctx.tick().sample(tx.valid, tx.payload):
            if valid:
                self._out.append(payload)

    # -- UART pins -------------------------------------------------------------------------------
    async def _pin_sender(self, ctx):
        pin, d = self.dut.uart_rx, self.divisor
        ctx.set(pin, 1)
        await ctx.tick().repeat(_RESET_CYCLES)
        while True:
            if not self._in:
                await ctx.tick()
                continue
            item = self._in.popleft()
            bits = item if isinstance(item, list) else [0] + [(item >> k) & 1 for k in range(8)] + [1]
            for b in bits:
                ctx.set(pin, b)
                await ctx.tick().repeat(d)
            ctx.set(pin, 1)

    async def _pin_receiver(self, ctx):
        d = self.divisor
        state, count, value = "idle", 0, 0
        async for _clk, _rst, level in ctx.tick().sample(self.dut.uart_tx):
            if state == "idle":
                if not level:
                    state, count, value = "frame", 0, 0
                continue
            count += 1
            # sample each bit at its middle: bit k spans cycles k*d .. (k+1)*d - 1 of the frame
            if count % d == d // 2:
                k = count // d
                if k == 0:
                    continue
                if 1 <= k <= 8:
                    value |= level << (k - 1)
                else:
                    if level:                          # a good stop bit
                        self._out.append(value)
                    state = "idle"
