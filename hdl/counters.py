"""A core's event counters (docs/architecture.md, contract 8).

The counters count what reaches the analog array (pulses, comparisons, decrement and SAR steps,
cell programs and reads, each from its strobe), plus finished MVMs and busy cycles. They wrap at
2^32; ``clear`` zeroes them all (and wins over an event in the same cycle).
"""

from amaranth import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .analog import AnalogOp

__all__ = ["CoreCounters", "EventCounters"]


class CoreCounters(data.Struct):
    """Event counters (docs/architecture.md, contract 8)."""
    mvm: 32
    pulse: 32
    compare: 32
    step: 32
    program: 32
    read: 32
    busy: 32


class EventCounters(wiring.Component):
    """Counts a core's events.

    ``strobe``, ``op`` and ``n_pulses`` observe the analog port: an INTEGRATE adds its pulses, a
    COMPARE or STEP one comparison, a STEP one step, a PROGRAM or READ one cell operation.
    ``mvm`` marks a finished MVM, ``busy`` a cycle spent on a batch.
    """

    clear: In(1)
    strobe: In(1)
    op: In(AnalogOp)
    n_pulses: In(16)
    mvm: In(1)
    busy: In(1)
    counters: Out(CoreCounters)

    def elaborate(self, platform):
        m = Module()
        op = self.op
        events = {
            "mvm": self.mvm,
            "pulse": self.n_pulses & (self.strobe & (op == AnalogOp.INTEGRATE)).replicate(16),
            "compare": self.strobe & ((op == AnalogOp.COMPARE) | (op == AnalogOp.STEP)),
            "step": self.strobe & (op == AnalogOp.STEP),
            "program": self.strobe & (op == AnalogOp.PROGRAM),
            "read": self.strobe & (op == AnalogOp.READ),
            "busy": self.busy,
        }
        for name, amount in events.items():
            # A register per counter (partial updates of one wide register cost Verilator a
            # read-modify-write every cycle).
            counter = Signal(32, name=name)
            m.d.comb += getattr(self.counters, name).eq(counter)
            with m.If(self.clear):
                m.d.sync += counter.eq(0)
            with m.Else():
                m.d.sync += counter.eq(counter + amount)
        return m
