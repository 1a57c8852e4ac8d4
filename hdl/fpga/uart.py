"""The serial port of the FPGA prototype: 8 data bits, no parity, one stop bit (8N1).

:class:`UartRx` samples every bit three times around its middle and takes the majority, so a
single-cycle glitch does not flip a bit; a start bit that is not low at its middle is a glitch
(ignored), and a stop bit that is not high is a framing error (the byte is dropped and
``framing_error`` pulses). :class:`UartTx` sends the bytes of its stream. Both count bits in
clock cycles: :func:`baud_divisor` from the platform clock and the baud rate.
"""

from amaranth import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["baud_divisor", "UartRx", "UartTx", "MIN_DIVISOR", "MAX_BAUD_ERROR"]

#: Fewest clock cycles per bit: three distinct samples around the middle of a bit.
MIN_DIVISOR = 4
#: Largest relative error of the bit time the link tolerates (half a bit over a 10-bit frame is
#: 5 % for both ends together; each end gets half of it).
MAX_BAUD_ERROR = 0.025


def baud_divisor(clk_hz: float, baud: int) -> int:
    """Clock cycles per bit for ``baud`` at ``clk_hz``; ValueError when the rate cannot be met."""
    if baud <= 0 or clk_hz <= 0:
        raise ValueError(f"baud rate {baud} and clock {clk_hz} Hz must be positive")
    divisor = round(clk_hz / baud)
    if divisor < MIN_DIVISOR:
        raise ValueError(f"{baud} baud needs at least {MIN_DIVISOR} cycles per bit: the clock "
                         f"{clk_hz / 1e6:g} MHz gives {clk_hz / baud:.2f}")
    error = abs(clk_hz / divisor - baud) / baud
    if error > MAX_BAUD_ERROR:
        raise ValueError(f"{baud} baud at {clk_hz / 1e6:g} MHz is off by {error:.1%} "
                         f"(at most {MAX_BAUD_ERROR:.1%})")
    return divisor


class UartRx(wiring.Component):
    """Receiver: bytes from the ``rx`` pin as a stream (``bytes``).

    A byte that arrives while the stream is not ready is dropped and ``overrun`` pulses.
    """

    def __init__(self, divisor: int):
        if divisor < MIN_DIVISOR:
            raise ValueError(f"divisor {divisor} is below {MIN_DIVISOR}")
        self.divisor = divisor
        super().__init__({
            "rx": In(1, init=1),
            "bytes": Out(stream.Signature(8)),
            "framing_error": Out(1),
            "overrun": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        mid = d // 2
        pin = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, pin, init=1)

        tick = Signal(range(d))                      # cycle within the current bit
        bit = Signal(range(10))                      # 0 start, 1-8 data, 9 stop
        votes = Signal(2)                            # ones among the samples taken so far
        shift = Signal(8)
        # majority of three: at least two of the samples at mid-1, mid, mid+1 were high
        level = Signal()
        m.d.comb += level.eq((votes + pin) >= 2)

        with m.If(self.bytes.ready):
            m.d.sync += self.bytes.valid.eq(0)
        m.d.sync += [self.framing_error.eq(0), self.overrun.eq(0)]

        with m.FSM(name="rx"):
            with m.State("IDLE"):
                with m.If(~pin):
                    # the falling edge starts the start bit; it was seen one cycle late
                    m.d.sync += [tick.eq(1), bit.eq(0), votes.eq(0)]
                    m.next = "BIT"
            with m.State("BIT"):
                m.d.sync += tick.eq(tick + 1)
                with m.If((tick == mid - 1) | (tick == mid)):
                    m.d.sync += votes.eq(votes + pin)
                with m.If(tick == mid + 1):
                    m.d.sync += votes.eq(0)
                    with m.Switch(bit):
                        with m.Case(0):
                            with m.If(level):            # not a start bit: a glitch
                                m.next = "IDLE"
                        with m.Case(9):
                            with m.If(level):
                                with m.If(self.bytes.valid & ~self.bytes.ready):
                                    m.d.sync += self.overrun.eq(1)
                                with m.Else():
                                    m.d.sync += [self.bytes.payload.eq(shift), self.bytes.valid.eq(1)]
                            with m.Else():
                                m.d.sync += self.framing_error.eq(1)
                            # back to idle at the middle of the stop bit: ready for the next edge
                            m.next = "IDLE"
                        with m.Default():
                            m.d.sync += shift.eq(Cat(shift[1:], level))
                with m.If(tick == d - 1):
                    m.d.sync += [tick.eq(0), bit.eq(bit + 1)]
        return m


class UartTx(wiring.Component):
    """Transmitter: the bytes of its ``bytes`` stream on the ``tx`` pin."""

    def __init__(self, divisor: int):
        if divisor < 1:
            raise ValueError(f"divisor {divisor} must be positive")
        self.divisor = divisor
        super().__init__({
            "bytes": In(stream.Signature(8)),
            "tx": Out(1, init=1),
        })

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        tick = Signal(range(d))
        frame = Signal(10, init=0x3FF)                 # stop, data (LSB first), start; shifted out
        left = Signal(range(11))                       # bits still to send
        m.d.comb += self.tx.eq(frame[0])
        m.d.comb += self.bytes.ready.eq(left == 0)
        with m.If(left == 0):
            with m.If(self.bytes.valid):
                m.d.sync += [frame.eq(Cat(0, self.bytes.payload, 1)), left.eq(10), tick.eq(0)]
        with m.Else():
            m.d.sync += tick.eq(tick + 1)
            with m.If(tick == d - 1):
                m.d.sync += [tick.eq(0), left.eq(left - 1), frame.eq(Cat(frame[1:], 1))]
        return m
