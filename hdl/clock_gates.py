"""Per-core clock gates (ASIC style: the enable latched on the falling edge).

A core's clock runs while it is enabled and busy, starting or running a cell command, or while
the host addresses it (or the counters are cleared, or reset is on). A request takes two core
cycles (the core registers its inputs), so the gate stays open one cycle more. An idle chip
thus costs a simulator almost nothing, and a disabled core keeps its state.
"""

from amaranth import ClockDomain, ClockSignal, Module, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["CoreClockGates"]


class CoreClockGates(wiring.Component):
    """Gated clocks ``clk[i]`` for ``n`` cores; without ``gating`` every clock runs."""

    def __init__(self, n: int, gating: bool = True):
        self.n = n
        self.gating = gating
        super().__init__({
            "enabled": In(n),
            "busy": In(n),
            "start": In(n),
            "cell": In(n),           # a cell command
            "access": In(n),         # a buffer request
            "clear": In(1),          # clear the counters (every core)
            "clk": Out(1).array(n),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.n
        m.domains.neg = ClockDomain("neg", clk_edge="neg", local=True)
        m.d.comb += [ClockSignal("neg").eq(ClockSignal("sync")), ResetSignal("neg").eq(ResetSignal("sync"))]
        wake = Signal(n)
        wake_q = Signal(n, reset_less=True)              # keeps the gate open after reset
        m.d.comb += wake.eq((self.enabled & (self.busy | self.start | self.cell)) | self.access
                            | self.clear.replicate(n) | ResetSignal("sync").replicate(n))
        m.d.sync += wake_q.eq(wake)
        # Clocked through reset (init 1) so that synchronous reset reaches every core.
        gate = Signal(n, init=(1 << n) - 1)
        if self.gating:
            m.d.neg += gate.eq(wake | wake_q)
        for i in range(n):
            m.d.comb += self.clk[i].eq(ClockSignal("sync") & gate[i])
        return m
