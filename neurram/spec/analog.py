"""Facts of the analog boundary that the RTL and the models share (docs/chip.md §2).

The stochastic neurons' random source is a ring of ``NOISE_PLANES · lines`` cells of a
cellular automaton (rule 90 on even cells, rule 150 on odd cells), seeded from LFSR_SEED mixed
with the core index and run ``WARMUP_STEPS`` steps before a stochastic batch. The RTL
(``neurram.hdl``) builds it in gates, the fast model (``neurram.sim.fastcore``) in numpy.
"""

__all__ = ["NOISE_PLANES", "WARMUP_STEPS", "seed_mix"]

#: Random bit-planes per neuron for stochastic neurons: four 3-bit uniform values.
NOISE_PLANES = 12

#: Cellular-automaton steps that mix the LFSR seed before a stochastic batch.
WARMUP_STEPS = 32


def seed_mix(seed: int, core_index: int) -> int:
    """The 32-bit word a core seeds its automaton with: LFSR_SEED mixed with the core index.

    Integers give an integer, Amaranth values an expression (the RTL truncates it to 32 bits)."""
    return (seed ^ (core_index * 0x9E3779B9)) & 0xFFFFFFFF
