"""The stochastic neurons' random source: a rule 90/150 cellular automaton.

The automaton has ``NOISE_PLANES · lines`` cells: twelve random bit-planes, four 3-bit uniform
values per neuron, which the analog array turns into binary-weighted charge pulses before each
comparison (:mod:`neurram.hdl.analog`, ``noise``). Cells at odd positions follow rule 150, even
ones rule 90, on a ring. A batch seeds the automaton from LFSR_SEED mixed with the core's index
(cell k takes bit ``seed_taps(n)[k]`` of the mixed word: a hash of k, so that the seed pattern is
not periodic over the ring, which the translation-invariant rules would keep for ever, see
:func:`neurram.spec.analog.seed_taps`) and mixes it for :data:`WARMUP_STEPS` steps before the first
draw; the fast model runs exactly the same automaton (``neurram.sim.fastcore``).
"""

from amaranth import C, Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from neurram.spec.analog import NOISE_PLANES, WARMUP_STEPS, seed_mix, seed_taps

__all__ = ["NoiseSource"]


class NoiseSource(wiring.Component):
    """The automaton of one core.

    ``load`` reseeds it (and restarts the warm-up count); ``warm`` runs one warm-up step, with
    ``warm_last`` high during the last; ``step`` runs one step (a new draw). ``noise`` is the state.
    """

    def __init__(self, lines: int):
        self.lines = lines
        super().__init__({
            "seed": In(32),
            "core_index": In(6),
            "load": In(1),
            "warm": In(1),
            "warm_last": Out(1),
            "step": In(1),
            "noise": Out(NOISE_PLANES * lines),
        })

    def elaborate(self, platform):
        m = Module()
        NL = NOISE_PLANES * self.lines
        state = Signal(NL, name="noise")
        odd = C(int("10" * (NL // 2), 2), NL)              # rule 150 on odd cells, 90 on even
        state_next = Signal(NL, name="noise_next")
        m.d.comb += state_next.eq(state.rotate_left(1) ^ state.rotate_right(1) ^ (state & odd))
        mix = Signal(32)
        m.d.comb += mix.eq(seed_mix(self.seed, self.core_index)[:32])
        seeded = Cat(*[mix[int(t)] for t in seed_taps(NL)])    # wiring only

        warm = Signal(range(64))                           # warm-up steps taken
        with m.If(self.load):
            m.d.sync += [state.eq(seeded), warm.eq(0)]
        with m.Elif(self.warm):
            m.d.sync += [state.eq(state_next), warm.eq(warm + 1)]
        with m.Elif(self.step):
            m.d.sync += state.eq(state_next)
        m.d.comb += [self.noise.eq(state), self.warm_last.eq(warm == WARMUP_STEPS - 1)]
        return m
