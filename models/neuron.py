"""The integrate-and-convert neuron (docs/chip.md §2).

Four operations: initialise (discharge the integration capacitor), sample-and-integrate (once
per input pulse: the output line's deviation from V_ref, sampled on C_sample, is added to the
integrator through the ratio C_sample/C_integ), compare (the amplifier becomes a comparator), and
charge decrement (add or remove a fixed packet according to the latched sign).

The integrator voltage is held as an integer number of nanovolts. All later arithmetic
(offsets, packets, steps) is then exact, so the iterative conversion the RTL performs and the
closed forms the fast model uses (:func:`decrement_closed_form`) agree bit for bit. 1 nV is far
below the comparator noise of any real neuron.

Every parameter has its unit in its name; static mismatch is drawn once per neuron from the
core's seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurram.spec.analog import NEURON_GAIN

__all__ = ["NeuronParams", "NeuronBank", "decrement_closed_form", "sar_closed_form", "stochastic_noise_nV",
           "NOISE_CENTRE", "BOLTZMANN_J_PER_K"]

#: Mean of the four 3-bit random values that drive a stochastic neuron's noise pulses.
NOISE_CENTRE = 14

#: Boltzmann constant, J/K (CODATA, exact since the 2019 SI).
BOLTZMANN_J_PER_K = 1.380649e-23


def stochastic_noise_nV(planes: np.ndarray, noise_uV: float) -> np.ndarray:
    """Charge injected into each neuron before a stochastic comparison, in nV.

    ``planes``: (..., 12, n) random bits from the chip's cellular automaton; bits 3a, 3a+1, 3a+2
    gate pulses of weight 1, 2, 4, for a = 0..3. Their sum s (0..28, mean 14, σ ≈ 4.6) gives a
    near-Gaussian charge (s - 14) · noise_uV / 14 µV, so a neuron fires with probability close to
    a sigmoid of its integrated charge (tests/test_stochastic.py fits it).
    """
    p = np.asarray(planes).astype(np.int64)
    w = np.array([1, 2, 4] * 4, dtype=np.int64)
    total = np.tensordot(w, p, axes=([0], [-2])) if p.ndim >= 2 else p
    return np.rint((total - NOISE_CENTRE) * (noise_uV * 1e3 / NOISE_CENTRE)).astype(np.int64)


@dataclass(frozen=True)
class NeuronParams:
    #: Sampling capacitor, fF (estimate; sets the integration gain with c_integ_fF).
    c_sample_fF: float = 25.0
    #: Integration capacitor, fF (estimate). Gain C_sample/C_integ = 1/16.
    c_integ_fF: float = 25.0 / NEURON_GAIN
    #: Integrator swing limit around V_ref, V (estimate: rail-to-rail at 1.8 V with V_ref 0.9 V).
    v_sat_V: float = 0.9
    #: σ of the relative mismatch of C_sample/C_integ between neurons. Estimate: metal capacitor
    #: ratios match to 0.1-0.3 %, plus sampling-switch charge injection (models/irdrop.py,
    #: default_circuit_params).
    gain_mismatch_sigma: float = 0.005
    #: σ of the comparator offset that remains after correlated double sampling, µV. Estimate:
    #: Pelgrom-law offset of a small 130 nm input pair ≈ 3 mV (default_circuit_params), which the
    #: neuron's correlated double sampling (docs/chip.md §2) reduces about sixfold.
    comparator_offset_sigma_uV: float = 500.0
    #: σ of the relative mismatch of the charge packet, positive and negative branches drawn
    #: independently. Estimate: few-fF capacitor plus charge injection.
    packet_mismatch_sigma: float = 0.02
    #: Systematic gain of the negative-branch packet against the positive one. docs/analog-model.md:
    #: the branches differ (published); 5 % is an estimate.
    packet_neg_gain: float = 0.95
    #: Die temperature for the thermal (kT/C) noise of sampling, K (the chip was measured at room
    #: temperature; 0 switches the thermal noise off).
    temperature_K: float = 300.0
    #: kT/C_sample noise charges left on the sampling capacitor per input pulse: one when the
    #: sampling switch opens, one in the transfer to the integrator (the standard result for a
    #: switched-capacitor integrator, R. Schreier et al., "Design-oriented estimation of thermal
    #: noise in switched-capacitor circuits", IEEE TCAS-I 52(11), 2005).
    ktc_phases: float = 2.0
    #: σ of the comparator's input-referred noise, µV, frozen over one conversion and fresh in each
    #: MVM. Estimate: the neuron's amplifier, reused as the comparator, has 1/f noise whose corner
    #: (~1 MHz for small 130 nm devices) lies above the 1/(conversion time) of ~100 steps x 80 ns,
    #: so the noise a conversion sees is nearly constant during it; ~100 µV is typical of a small
    #: 130 nm OTA over that band (a thermal floor of ~5 nV/√Hz over 100 MHz gives 50 µV).
    comparator_noise_uV: float = 100.0

    @classmethod
    def ideal(cls) -> "NeuronParams":
        # The sensing noise (temperature_K, comparator_noise_uV) is drawn with the read noise, so
        # a chip without read noise (AnalogParams.ideal(), noise_scale=0) has none of it either.
        return cls(gain_mismatch_sigma=0.0, comparator_offset_sigma_uV=0.0, packet_mismatch_sigma=0.0,
                   packet_neg_gain=1.0)

    @property
    def gain(self) -> float:
        return self.c_sample_fF / self.c_integ_fF

    def sampling_noise_V2(self, c_line_fF: float) -> float:
        """Variance (V²) of the thermal noise one input pulse adds to the sampled output-line
        deviation: ``ktc_phases`` · kT/C_sample on the sampling capacitor plus kT/C_line of the
        floating line itself (both referred to the line)."""
        kt = BOLTZMANN_J_PER_K * self.temperature_K
        out = self.ktc_phases * kt / (self.c_sample_fF * 1e-15)
        if c_line_fF > 0:
            out += kt / (c_line_fF * 1e-15)
        return out

    def conversion_noise_V2(self) -> float:
        """Variance (V²) of the comparator noise of one conversion, referred back through the
        nominal integration gain to the summed line deviation (V·pulses)."""
        return (self.comparator_noise_uV * 1e-6 / self.gain) ** 2


class NeuronBank:
    """The ``n`` neurons of one core (neuron i serves bitline i and source line i)."""

    def __init__(self, n: int, params: NeuronParams = NeuronParams(),
                 rng: np.random.Generator | None = None):
        self.n = n
        self.params = params
        rng = rng if rng is not None else np.random.default_rng(0)
        # Static mismatch, drawn once (always the same number of draws, whatever the sigmas).
        z = rng.standard_normal((4, n))
        self.gain = params.gain * (1.0 + params.gain_mismatch_sigma * z[0])
        self.gain_nV_per_V = self.gain * 1e9
        self.offset_nV = np.rint(params.comparator_offset_sigma_uV * 1e3 * z[1]).astype(np.int64)
        self.packet_pos_rel = 1.0 + params.packet_mismatch_sigma * z[2]
        self.packet_neg_rel = params.packet_neg_gain * (1.0 + params.packet_mismatch_sigma * z[3])
        self.v_sat_nV = int(round(params.v_sat_V * 1e9))
        self.q_nV = np.zeros(n, dtype=np.int64)

    # -- event API (the co-simulation drives these one at a time) ------------------------------
    def initialise(self) -> None:
        self.q_nV[:] = 0

    def integrate(self, line_deviation_V: np.ndarray, neurons: slice | np.ndarray = slice(None)) -> None:
        """Add summed output-line deviations (V·pulses) of the sensed lines."""
        self.q_nV[neurons] = self.charge_nV(self.q_nV[neurons], line_deviation_V, neurons)

    def compare(self, noise_nV: np.ndarray | None = None) -> np.ndarray:
        """Comparator outputs: True where the integrator (plus offset and noise) is above 0."""
        v = self.q_nV + self.offset_nV
        if noise_nV is not None:
            v = v + noise_nV
        return v > 0

    def step(self, enable: np.ndarray, latched_positive: np.ndarray, packet_uV: float,
             shift: int = 0) -> None:
        """One charge packet toward zero on enabled neurons, signed by the latched comparator."""
        pos, neg = self.packets_nV(packet_uV, shift)
        delta = np.where(latched_positive, -pos, neg)
        self.q_nV += np.where(enable, delta, 0)

    # -- shared arithmetic (both backends) -------------------------------------------------------
    def charge_nV(self, q0_nV, line_deviation_V, neurons=slice(None)) -> np.ndarray:
        """Integrator after adding deviations: q0 + round(gain · ΔV in nV), saturated at ±v_sat.
        Integers held in float64 (exact: |q| <= v_sat < 2^53)."""
        q = np.rint(np.multiply(line_deviation_V, self.gain_nV_per_V[neurons]))
        if not (np.isscalar(q0_nV) and q0_nV == 0):
            q += q0_nV
        return np.clip(q, -self.v_sat_nV, self.v_sat_nV, out=q)

    def packets_nV(self, packet_uV: float, shift: int = 0):
        base = packet_uV * 1e3 * (1 << shift)
        pos = np.maximum(np.rint(base * self.packet_pos_rel), 1).astype(np.int64)
        neg = np.maximum(np.rint(base * self.packet_neg_rel), 1).astype(np.int64)
        return pos, neg


def decrement_closed_form(q_nV: np.ndarray, offset_nV: np.ndarray, packet_pos_nV: np.ndarray,
                          packet_neg_nV: np.ndarray, tracked: np.ndarray | None, max_steps: int):
    """Charge-decrement conversion of a batch without iterating.

    Equals the RTL's loop: latch the initial sign s = (q + off > 0); then repeat up to
    ``max_steps`` times {move q one packet toward zero; compare}; a neuron's output is the number
    of steps until its comparator flips (``max_steps`` when it never does). Untracked neurons
    do no steps (``tracked`` None: every neuron is tracked). Returns (negative, steps, flipped):
    the initial sign, the output step count and whether the comparator flipped within
    ``max_steps`` (bool, int, bool arrays of q's shape).
    """
    v = q_nV + offset_nV
    positive = v > 0
    # Positive: flips at the first k with v - k·p <= 0, i.e. k = ceil(v / p).
    # Negative (v <= 0): flips at the first k with v + k·p > 0, i.e. k = floor(-v / p) + 1,
    # which is ceil((-v + 1) / p) for integers. Both as one ceil of a float64 quotient: for
    # integers below 2^53 the rounded quotient never crosses an integer, so the ceil is exact.
    p = np.where(positive, packet_pos_nV, packet_neg_nV)
    k = np.abs(v).astype(np.float64)
    k += ~positive
    k /= p
    np.ceil(k, out=k)
    flipped = k <= max_steps
    steps = np.minimum(k, max_steps, out=k).astype(np.int64)
    if tracked is not None:
        flipped &= tracked
        steps = np.where(tracked, steps, 0)
    return ~positive, steps, flipped


def sar_closed_form(q_nV: np.ndarray, offset_nV: np.ndarray, packet_pos_nV_of_shift,
                    packet_neg_nV_of_shift, tracked: np.ndarray, bits: int):
    """Non-restoring SAR conversion of a batch, as the RTL performs it.

    Compare (digit d_{n-1}); then for i = n-2 .. 0: move q by one packet · 2^i against the
    latched sign (toward zero) and compare (digit d_i). Digits are 1 for positive. The code
    c = Σ d_i 2^i is offset binary: the value is (c - (2^n - 1)/2) packets.
    ``packet_*_nV_of_shift(i)`` give the per-neuron packets for a step of 2^i.
    Untracked neurons keep only their sign digit (code = d_{n-1} · 2^{n-1}).
    Returns the code array (int64).
    """
    v = q_nV + offset_nV
    d = v > 0
    code = d.astype(np.int64) << (bits - 1)
    for i in range(bits - 2, -1, -1):
        v = v + np.where(tracked, np.where(d, -packet_pos_nV_of_shift(i), packet_neg_nV_of_shift(i)), 0)
        d = v > 0
        code = code | (np.where(tracked, d, False).astype(np.int64) << i)
    return code
