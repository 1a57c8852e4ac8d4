"""Facts of the analog boundary that the RTL and the models share (docs/chip.md §2).

The stochastic neurons' random source is a ring of ``NOISE_PLANES · lines`` cells of a
cellular automaton (rule 90 on even cells, rule 150 on odd cells), seeded from LFSR_SEED mixed
with the core index and run ``WARMUP_STEPS`` steps before a stochastic batch. The RTL
(``neurram.hdl``) builds it in gates, the fast model (``neurram.sim.fastcore``) in numpy; both
take the seed bit of each cell from :func:`seed_taps`.
"""

import numpy as np

__all__ = ["NOISE_PLANES", "WARMUP_STEPS", "seed_mix", "seed_taps", "NEURON_GAIN", "charge_per_unit_nV"]

#: Random bit-planes per neuron for stochastic neurons: four 3-bit uniform values.
NOISE_PLANES = 12

#: Cellular-automaton steps that mix the LFSR seed before a stochastic batch.
WARMUP_STEPS = 32


def seed_mix(seed: int, core_index: int) -> int:
    """The 32-bit word a core seeds its automaton with: LFSR_SEED mixed with the core index.

    Integers give an integer, Amaranth values an expression (the RTL truncates it to 32 bits)."""
    return (seed ^ (core_index * 0x9E3779B9)) & 0xFFFFFFFF


def seed_taps(n: int) -> np.ndarray:
    """For a ring of ``n`` cells, the bit of the :func:`seed_mix` word (0..31) each cell is loaded
    with: the top five bits of a small integer hash (a murmur3-style finalizer) of the cell index.

    The expansion must not be periodic over the ring. Both rules are translation-invariant and
    the rule pattern (90 on even cells, 150 on odd) has period 2, so a seed pattern of period P
    dividing the ring length (and even) stays periodic with period P at every step: cells k and
    k + P are equal for ever. The earlier expansion ``(k + (k >> 5)) & 31`` has period 1024,
    which divides the 3072-cell ring of a 256-line core: planes p and p + 4 were copies and the
    injected charge took 5 levels instead of the near-Gaussian sum of four independent 3-bit
    values. A hash of the index breaks every such symmetry (a Fibonacci hash alone would not:
    it is nearly periodic). In the RTL this is wiring only, no logic.
    """
    h = np.arange(n, dtype=np.uint64)
    m = np.uint64(0xFFFFFFFF)
    h = (h * np.uint64(0x9E3779B1)) & m
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & m
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & m
    h ^= h >> np.uint64(16)
    return (h >> np.uint64(27)).astype(np.int64)


#: Integration gain of a neuron, C_sample / C_integ (25 fF / 400 fF, docs/analog-model.md): the
#: design value the host maps and decodes with; each neuron's actual gain deviates from it
#: (the analog model's mismatch), which calibration measures.
NEURON_GAIN = 1 / 16


def charge_per_unit_nV(g_column_sum_uS, *, w_unit_uS: float, v_mV: float, pulse_multiplier: int,
                       neuron_gain: float = NEURON_GAIN):
    """Integrator charge (nV) per ideal unit of an output column: one input code times a weight of
    ``w_unit_uS`` of differential conductance, driven at ±``v_mV``.

    Voltage-mode sensing divides by the column's total conductance ``g_column_sum_uS``; a code x on
    a differential pair integrates 2·m·x·V per unit weight (two phases per bit, m pulses each),
    times the neuron's gain. The uncalibrated decoding of a chip output is q / this value.
    """
    g = np.maximum(np.asarray(g_column_sum_uS, np.float64), 1e-6)
    return neuron_gain * 2 * pulse_multiplier * (v_mV * 1e-3) * w_unit_uS / g * 1e9
