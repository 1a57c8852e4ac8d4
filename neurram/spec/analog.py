"""Facts of the analog boundary that the RTL and the models share (docs/chip.md §2).

The stochastic neurons' random source is a ring of ``NOISE_PLANES · lines`` cells of a
cellular automaton (rule 90 on even cells, rule 150 on odd cells), seeded from LFSR_SEED mixed
with the core index and run ``WARMUP_STEPS`` steps before a stochastic batch. The RTL
(``neurram.hdl``) builds it in gates, the fast model (``neurram.sim.fastcore``) in numpy.
"""

import numpy as np

__all__ = ["NOISE_PLANES", "WARMUP_STEPS", "seed_mix", "NEURON_GAIN", "charge_per_unit_nV"]

#: Random bit-planes per neuron for stochastic neurons: four 3-bit uniform values.
NOISE_PLANES = 12

#: Cellular-automaton steps that mix the LFSR seed before a stochastic batch.
WARMUP_STEPS = 32


def seed_mix(seed: int, core_index: int) -> int:
    """The 32-bit word a core seeds its automaton with: LFSR_SEED mixed with the core index.

    Integers give an integer, Amaranth values an expression (the RTL truncates it to 32 bits)."""
    return (seed ^ (core_index * 0x9E3779B9)) & 0xFFFFFFFF


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
