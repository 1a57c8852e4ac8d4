"""RRAM device model of a NeuRRAM 1T1R array (docs/chip.md §3 and docs/analog-model.md).

What it models, per cell (i, j) of a ``rows x cols`` array:

* **Programming response** (:meth:`RRAMArray.apply_pulses`). A SET pulse (BL at ``amplitude_V``,
  WL at ``gate_V``) moves the conductance a fraction ``f`` of the way up to the compliance
  conductance ``G_cc(gate)`` set by the access transistor; a RESET pulse (SL pulse, WL at
  ``gate_V``) moves it a fraction ``f`` of the way down to the HRS floor::

      SET:    G += f · max(G_cc(V_gate) - G, 0)      G_cc = gcc_ref · ((V_gate - V_t)/(V_ref - V_t))² · s_ij
      RESET:  G -= f · max(G - G_floor, 0)           V_eff = min(V, V_gate - V_t)   (source follower)
      f = 1 - exp(-r)      r = rate0 · (width / 1 µs) · exp((V - V0_ij) / V_a) · c2c

  The exponential voltage dependence is the voltage-time relation of filamentary switching; the
  per-cell thresholds ``V0_ij`` (Gaussian) and compliance scale ``s_ij`` (log-normal) are the
  device-to-device spread, drawn once; ``c2c`` is a mean-one log-normal factor drawn per pulse
  (cycle-to-cycle noise). The conductance never leaves ``[0, g_ceiling_uS]``.
  These response parameters are *estimates* (no published pulse-level data for NeuRRAM's HfOx
  cells); they are chosen so that docs/chip.md §3's write-verify loop works as on the chip: the
  amplitude ramp from 1.2 V starts to move cells around 1.6-2.0 V, each 0.1 V step raises the
  switching rate about 1.5x, a 40 µS target is reachable at a 2.5 V SET gate, and good cells
  converge well within the round budget (see "Measured" below).

* **Relaxation** (:meth:`RRAMArray.relax`). After programming, each cell's conductance random-walks
  away from its programmed value with a spread that depends on the programmed state g and on the
  time t since programming::

      σ²(g, t) = A(x)² · (1 - exp(-t/τ_f)) + B(x)² · (1 - exp(-(t/τ_s)^β))      x = clip(g/g_max, 0, 1)

  scaled by g_max/40 µS like aihwkit. A and B are 4th-order polynomials fitted (scipy
  ``least_squares``, one-off) to aihwkit's ``ReRamWan2022NoiseModel`` polynomials at 1 s, 1 day and
  2 days over g = 0-40 µS (81 points each), with τ_f = 0.1 s and β = 0.5 fixed (estimates: "fast
  at first, slower later", docs/chip.md §3; the data cannot place the slow time constant anywhere
  between 1 s and 1 day, and a stretched exponential gives log-like growth in between) and τ_s
  fitted (1062.6 s). ``python -m neurram.models.device --refit`` repeats the fit (needs scipy).
  Residuals: ≤ 0.004 µS at 1 s, ≤ 0.042 µS at 1 day and 2 days (the two published curves cross each other at low g, which no
  monotone-in-time model can follow). Each cell keeps its own clock and programmed value, and
  ``relax(s)`` adds only the variance increment σ²(g, t+s) - σ²(g, t), so ``relax(1);
  relax(86399)`` has exactly the statistics of ``relax(86400)``. The aihwkit curves describe the
  deviation from the *target* after write-verify; here σ(g, t) is the spread added to the
  programmed value, so cells programmed by write-verify also keep their ±1 µS window error on top
  (in quadrature: about +3 % at mid-range).

  Cross-check: CrossSim's ``RRAM_Wan`` cubic (t = 1 s) lies 0.15-0.35 µS above this curve over
  5-35 µS (≤ 18 % of its value), 0.53 µS above at 39.26 µS and 0.70 µS above at 0 µS: the two
  published fits of the same figure disagree by that much, and this curve follows aihwkit.

* **Read noise** (:meth:`RRAMArray.read`): every read returns g + N(0, σ_read²) with
  ``σ_read(g, V) = sqrt((read_floor_uS · 0.15 V / V)² + (read_rel · g)²)``: 1 % of g (aihwkit's
  ``ReRamWan2022NoiseModel`` docstring: "short-term read noise (about 1%)") plus a sense-circuit
  floor (estimate) that scales as 1/V_read because it is a current noise.

* **Bad cells**: unformed cells stuck near 0 µS (``p_stuck_off``) and leaky cells stuck high
  (``p_stuck_on``), drawn once; pulses and relaxation do not change them. docs/chip.md §3: the chip
  keeps per-die tables of unformed/leaky rows. The rates are estimates (a separate share of the
  unconverged cells: about 0.2 % of a layer-like array, next to a few working cells per 65,536
  that the dynamics leave unconverged, see "Measured").

* **Cycle-to-cycle steps** (``g_defect_uS``): a pulse moves a Poisson number of defects, so its
  conductance step has σ = sqrt(g_defect · |Δg|) around the mean response (Gaussian limit;
  Ambrogio et al., IEEE TED 61(8), 2912 (2014)).

* **Random telegraph noise** (``rtn_*``): a share of cells has a two-level fluctuator of relative
  amplitude a; a read sees g(1 ± a/2), and an MVM sees the extra variance (a·g/2)²
  (:meth:`RRAMArray.array_read_sigma_uS`); Ambrogio et al., IEEE TED 61(8), 2920 (2014).

Sources of the calibration numbers
----------------------------------
* aihwkit, ``IBM/aihwkit`` ``src/aihwkit/inference/noise/reram.py`` (read at commits
  0c9de573ae10b31e918167ac0ed65b10756fcf0a and 9fa041074a3c8269786226d3f7e58a09ff5952ac, identical):
  ``ReRamWan2022NoiseModel`` ``coeff_dic``, highest power first, x = g/g_max, g_max 40 µS::

      1 s:     [-16.815, 45.393, -43.853, 16.030, 0.348]
      1 day:   [-16.458, 47.095, -50.773, 22.086, 0.701]
      2 days:  [-11.934, 37.062, -43.507, 20.274, 0.782]

* CrossSim, ``sandialabs/cross-sim`` ``simulator/devices/custom/RRAM_Wan.py`` (read at commits
  601222e6df7584d8cf54e499bfaea99830049953 and 5fb61d9b79521162439bf97e4237254d1e322d0f, identical
  coefficients): ``sigma_G = max(A G³ + B G² + C G + D, 0)``, A, B, C, D = 1.536e-4, -1.167e-2,
  2.374e-1, 1.053 (G in µS, G_max ≤ 39.26 µS, "cubic fit to Extended Data Fig. 3 ... t = 1s").
* Write-verify loop and its settings: docs/chip.md §3 and [R] ``weierwan/Neurram_48core``
  ``python/wupdate_control.py`` (``program_increment``, ``program_array``); see
  ``neurram.firmware.writeverify``.

Measured (write-verify, default parameters)
-------------------------------------------
Command: ``neurram device`` (256 x 256 array, seed 0, targets like a layer's weights,
:func:`layer_targets`: W ~ N(0, 1), w_max = 95th percentile of |W|, G+ = clip(max(W, 0) /
w_max, 0, 1)·40 µS and G- = clip(max(-W, 0) / w_max, 0, 1)·40 µS on alternating rows, so half the
targets are 0; cells start in the as-formed HRS; ``WriteVerifyConfig()`` defaults): 139 of 65,536
cells unconverged (0.212 %; the chip: 3 of 1,660 = 0.18 %), 137 stuck and 2 working cells; pulses
per cell p50 2, p90 25, p99 47. ``neurram device --seeds 10``: 0.163-0.212 % (mean 0.186 %), 1-7
working cells per array. ``neurram device --budget-sweep``: working cells unconverged 29.5 % with
one round, 1.6 % with 4, 0.10 % with 8, 0.003 % with 40 (the default); stuck cells 0.209 % at every
budget (docs/analog-model.md has the table). Working cells fail from the cycle-to-cycle response
(rate factor, Poisson defect steps: a step overshoots the ±1 µS window and a new round starts) and
from telegraph fluctuators that keep two reads from confirming; the stuck-cell share is an estimate
(whether the chip's 3 failures were bad cells is not published). The pulse-count distribution is
not calibrated against the chip (Extended Data Fig. 3f of the paper shows it, but its numbers were
not available).

Randomness: every draw comes from the array's own ``np.random.Generator``; the same seed and the
same sequence of calls give bit-identical results. ``RRAMParams.noise_free()`` switches off every
random effect: mean pulse response with nominal (identical) cells, exact reads, no relaxation, no
bad cells.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from neurram.spec.enums import PulsePolarity

from .rng import normal_planes

__all__ = ["RRAMParams", "RRAMArray", "relaxation_sigma_uS", "AIHWKIT_WAN2022_COEFFS",
           "CROSSSIM_WAN_COEFFS", "aihwkit_wan2022_sigma_uS", "crosssim_wan_sigma_uS",
           "layer_targets", "fit_relaxation_curve", "SET", "RESET"]

#: Pulse kinds (the spec's :class:`PulsePolarity`; short names for the many callers).
SET = PulsePolarity.SET
RESET = PulsePolarity.RESET

# --------------------------------------------------------------------------------------------
# Published fits (reference values; see the module docstring for where they were read)
# --------------------------------------------------------------------------------------------

#: aihwkit ``ReRamWan2022NoiseModel.coeff_dic`` (IBM/aihwkit, src/aihwkit/inference/noise/reram.py,
#: commit 9fa041074a3c8269786226d3f7e58a09ff5952ac), *ascending* powers of x = g/g_max, µS, for
#: g_max = 40 µS. Keys: seconds after programming.
AIHWKIT_WAN2022_COEFFS = {
    1.0: (0.348, 16.030, -43.853, 45.393, -16.815),
    86400.0: (0.701, 22.086, -50.773, 47.095, -16.458),
    172800.0: (0.782, 20.274, -43.507, 37.062, -11.934),
}
#: Reference g_max of the aihwkit coefficients, µS.
AIHWKIT_G_MAX_REF_uS = 40.0

#: CrossSim ``RRAMWan.programming_error`` (sandialabs/cross-sim,
#: simulator/devices/custom/RRAM_Wan.py, commit 601222e6df7584d8cf54e499bfaea99830049953):
#: σ_G = max(A G³ + B G² + C G + D, 0), G in µS, valid for G ≤ 39.26 µS, t = 1 s.
CROSSSIM_WAN_COEFFS = (1.536e-4, -1.167e-2, 2.374e-1, 1.053)
CROSSSIM_WAN_G_MAX_uS = 39.26


def _poly(coeffs, x):
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros(x.shape)
    for c in reversed(coeffs):
        out = out * x + c
    return out


def aihwkit_wan2022_sigma_uS(g_uS, seconds: float, g_max_uS: float = 40.0) -> np.ndarray:
    """aihwkit's published σ(g) at one of its three times (1 s, 1 day, 2 days), µS."""
    if seconds not in AIHWKIT_WAN2022_COEFFS:
        raise ValueError(f"aihwkit's fit exists only at {sorted(AIHWKIT_WAN2022_COEFFS)} s, not {seconds}")
    x = np.asarray(g_uS, dtype=np.float64) / g_max_uS
    return _poly(AIHWKIT_WAN2022_COEFFS[seconds], x) * (g_max_uS / AIHWKIT_G_MAX_REF_uS)


def crosssim_wan_sigma_uS(g_uS) -> np.ndarray:
    """CrossSim's published σ_G(G) at t = 1 s, µS (valid for G ≤ 39.26 µS)."""
    g = np.asarray(g_uS, dtype=np.float64)
    a, b, c, d = CROSSSIM_WAN_COEFFS
    return np.maximum(((a * g + b) * g + c) * g + d, 0.0)


# --------------------------------------------------------------------------------------------
# The fitted relaxation curve σ(g, t)
# --------------------------------------------------------------------------------------------

#: Fast component amplitude A(x), ascending powers of x = g/g_max, µS (fitted, see docstring).
RELAX_A_COEFFS = (0.3298, 15.8541, -43.8763, 45.6414, -16.9292)
#: Slow component amplitude B(x), ascending powers of x, µS (fitted).
RELAX_B_COEFFS = (0.6651, 14.8482, -27.0330, 19.2266, -5.2351)
#: Fast time constant, s (estimate: most of the 1-s spread appears within the first second).
RELAX_TAU_FAST_S = 0.1
#: Slow time constant, s (fitted with β fixed).
RELAX_TAU_SLOW_S = 1062.6
#: Stretch exponent of the slow component (estimate: log-like growth from seconds to hours).
RELAX_BETA = 0.5


def _relax_var(g_uS, seconds, g_max_uS: float = 40.0) -> np.ndarray:
    g = np.asarray(g_uS, dtype=np.float64)
    t = np.asarray(seconds, dtype=np.float64)
    x = np.clip(g / g_max_uS, 0.0, 1.0)
    a = _poly(RELAX_A_COEFFS, x)
    b = _poly(RELAX_B_COEFFS, x)
    with np.errstate(over="ignore", invalid="ignore"):
        ff = -np.expm1(-np.maximum(t, 0.0) / RELAX_TAU_FAST_S)
        fs = -np.expm1(-(np.maximum(t, 0.0) / RELAX_TAU_SLOW_S) ** RELAX_BETA)
    scale = g_max_uS / AIHWKIT_G_MAX_REF_uS
    return (a * a * ff + b * b * fs) * (scale * scale)


def relaxation_sigma_uS(g_uS, seconds, g_max_uS: float = 40.0) -> np.ndarray:
    """σ (µS) of a cell's conductance ``seconds`` after it was programmed to ``g_uS``.

    The fitted σ(g, t) of the module docstring; broadcasts ``g_uS`` and ``seconds``. States
    above g_max use the value at g_max. ``seconds`` may be ``np.inf`` (the saturated spread).
    """
    return np.sqrt(_relax_var(g_uS, seconds, g_max_uS))


def fit_relaxation_curve(tau_fast_s: float = RELAX_TAU_FAST_S, beta: float = RELAX_BETA) -> dict:
    """Repeat the one-off fit of σ(g, t) to aihwkit's three polynomials (needs scipy, which the
    library itself does not). Returns the coefficients, τ_s and the largest residual per time."""
    from scipy.optimize import least_squares  # one-off tool, not a dependency

    x = np.linspace(0.0, 1.0, 81)
    times = sorted(AIHWKIT_WAN2022_COEFFS)
    ref = [aihwkit_wan2022_sigma_uS(40.0 * x, t) for t in times]

    def model(q, t):
        ff = -np.expm1(-t / tau_fast_s)
        fs = -np.expm1(-(t / np.exp(q[10])) ** beta)
        return np.sqrt(_poly(q[:5], x) ** 2 * ff + _poly(q[5:10], x) ** 2 * fs)

    def resid(q):
        return np.concatenate([model(q, t) - r for t, r in zip(times, ref)])

    q0 = np.r_[AIHWKIT_WAN2022_COEFFS[1.0], 0.6, 10.0, -10.0, 3.0, 0.0, np.log(3600.0)]
    q = least_squares(resid, q0, xtol=1e-14, ftol=1e-14).x
    err = np.abs(resid(q)).reshape(len(times), -1).max(axis=1)
    return {"A": q[:5].tolist(), "B": q[5:10].tolist(), "tau_slow_s": float(np.exp(q[10])),
            "tau_fast_s": tau_fast_s, "beta": beta,
            "max_residual_uS": dict(zip(times, err.tolist()))}


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RRAMParams:
    """Every parameter of the device model, with its unit, default and source."""

    # -- range ---------------------------------------------------------------------------------
    #: Top of the used conductance range, µS (docs/chip.md §3, [R]: G_max = 40 µS). Also scales the
    #: relaxation curve like aihwkit's g_max.
    g_max_uS: float = 40.0
    #: Hard ceiling of any conductance state, µS (estimate: full-gate SET of a 130-nm 1T1R cell).
    g_ceiling_uS: float = 100.0
    #: RESET floor (deepest HRS), µS (estimate; docs/chip.md §3: "off" cells below 1 µS).
    g_floor_uS: float = 0.1
    #: Median conductance of the as-formed, reset state every cell starts in, µS (estimate).
    g_init_uS: float = 0.5
    #: Log-normal σ of the initial state (estimate).
    g_init_sigma_ln: float = 0.6

    # -- SET response ----------------------------------------------------------------------------
    #: Compliance conductance G_cc at the reference gate voltage, µS (estimate: 40 µS reachable
    #: at a 2.5 V SET gate, docs/chip.md §3).
    set_gcc_ref_uS: float = 60.0
    #: Gate voltage of set_gcc_ref_uS, V (docs/chip.md §3 SET gate 2.5-3.0 V).
    set_gate_ref_V: float = 2.5
    #: Access-transistor threshold voltage, V (estimate, 130-nm I/O device).
    vt_V: float = 0.7
    #: Device-to-device log-normal σ of the compliance (estimate).
    set_gcc_sigma_ln: float = 0.08
    #: BL amplitude at which a 1-µs SET pulse moves a nominal cell rate0 of the way, V (estimate).
    set_v0_V: float = 1.9
    #: Device-to-device σ of set_v0_V, V (estimate).
    set_v0_sigma_V: float = 0.12
    #: Switching rate (fraction per 1-µs pulse, small-signal) at set_v0_V (estimate).
    set_rate0: float = 0.03
    #: Voltage per e-fold of switching rate, V (estimate: ×1.5 per 0.1-V ramp step).
    set_va_V: float = 0.25

    # -- RESET response --------------------------------------------------------------------------
    #: SL amplitude at which a 1-µs RESET pulse moves a nominal cell rate0 of the way, V (estimate).
    reset_v0_V: float = 1.9
    #: Device-to-device σ of reset_v0_V, V (estimate).
    reset_v0_sigma_V: float = 0.12
    #: Switching rate at reset_v0_V (estimate).
    reset_rate0: float = 0.03
    #: Voltage per e-fold of RESET rate, V (estimate).
    reset_va_V: float = 0.25

    # -- cycle-to-cycle noise ---------------------------------------------------------------------
    #: Log-normal σ of the per-pulse switching-rate factor (mean one) (estimate).
    c2c_sigma_ln: float = 0.6
    #: Conductance moved by one defect event, µS: a pulse moves a Poisson number of defects
    #: into or out of the filament, so its conductance change Δg has σ = sqrt(g_defect · |Δg|)
    #: around its mean (Gaussian limit). Ambrogio et al., "Statistical fluctuations in HfOx
    #: resistive-switching memory: Part I - set/reset variability", IEEE TED 61(8), 2912 (2014):
    #: σ_R/R = 1/sqrt(N) with N the defects in the filament; their cycle-to-cycle spreads put one
    #: defect at ~1-4 µS, and 2 µS is an estimate in that range. 0 switches it off.
    g_defect_uS: float = 2.0

    # -- relaxation and reads ---------------------------------------------------------------------
    #: Apply conductance relaxation in relax() (the fitted σ(g, t)).
    relaxation: bool = True
    #: Multiplier on the relaxation σ (1 = the aihwkit-calibrated curve).
    relaxation_scale: float = 1.0
    #: Relative read noise σ/g per read (aihwkit ReRamWan2022NoiseModel docstring: about 1 %).
    read_rel: float = 0.01
    #: Read-noise floor at 0.15 V read, µS; scales as 0.15 V / V_read (estimate).
    read_floor_uS: float = 0.05
    #: Nominal read voltage, V (docs/chip.md §3: ~0.1-0.2 V across the cell).
    read_V: float = 0.15
    #: Random telegraph noise (RTN, the low-frequency read noise of a filament): fraction of cells
    #: with an active two-level fluctuator, drawn once (estimate). Ambrogio et al., "Statistical
    #: fluctuations in HfOx resistive-switching memory: Part II - random telegraph noise", IEEE
    #: TED 61(8), 2920 (2014), and Ielmini et al., APL 96, 053503 (2010): RTN is seen in a part of
    #: the cells, with ΔG/G of about 1-10 % in the 10-100 kΩ range, rarely tens of %.
    rtn_fraction: float = 0.05
    #: Median relative amplitude ΔG/G of an active fluctuator (estimate from the same papers).
    rtn_rel_median: float = 0.05
    #: Log-normal σ of that amplitude between cells (estimate: a decade between the 5th and 95th
    #: percentile).
    rtn_rel_sigma_ln: float = 0.7

    # -- bad cells --------------------------------------------------------------------------------
    #: Fraction of unformed cells, stuck near 0 µS (estimate, see module docstring).
    p_stuck_off: float = 0.003
    #: Fraction of leaky cells, stuck high (estimate, see module docstring).
    p_stuck_on: float = 0.0003
    #: Stuck-off conductances are uniform in [0, stuck_off_max_uS], µS (estimate).
    stuck_off_max_uS: float = 0.3
    #: Stuck-on conductances are uniform in [stuck_on_min_uS, g_ceiling_uS], µS (estimate).
    stuck_on_min_uS: float = 50.0

    #: Noise-free mode: deterministic mean pulse response of nominal cells, exact reads, no
    #: relaxation, no bad cells, every cell starts at g_init_uS.
    ideal: bool = False

    def __post_init__(self):
        problems = []
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool):
                continue
            if not np.isfinite(v):
                problems.append(f"{f.name}={v!r} is not finite")
            elif v < 0:
                problems.append(f"{f.name}={v!r} must be >= 0")
        for name in ("g_max_uS", "g_ceiling_uS", "set_va_V", "reset_va_V", "read_V"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be > 0")
        if self.g_ceiling_uS < self.g_max_uS:
            problems.append(f"g_ceiling_uS={self.g_ceiling_uS} is below g_max_uS={self.g_max_uS}")
        if self.p_stuck_off + self.p_stuck_on > 1:
            problems.append("p_stuck_off + p_stuck_on exceeds 1")
        if not self.stuck_on_min_uS <= self.g_ceiling_uS:
            problems.append("stuck_on_min_uS exceeds g_ceiling_uS")
        if problems:
            raise ValueError("RRAMParams: " + "; ".join(problems))

    @classmethod
    def noise_free(cls, **overrides) -> "RRAMParams":
        return cls(ideal=True, **overrides)


# --------------------------------------------------------------------------------------------
# The array
# --------------------------------------------------------------------------------------------

class _DeviceCellAccess:
    """``firmware.writeverify.CellAccess`` over an :class:`RRAMArray` (mV → V)."""

    def __init__(self, array: "RRAMArray", read_V: float | None = None):
        self.array = array
        self.read_V = array.params.read_V if read_V is None else float(read_V)

    def read_cells(self, rows, cols) -> np.ndarray:
        return self.array.read(rows, cols, self.read_V)

    def pulse_cells(self, rows, cols, polarity, amplitude_mV, width_ns, gate_mV) -> None:
        self.array.apply_pulses(rows, cols, polarity, np.asarray(amplitude_mV, np.float64) / 1000.0,
                                width_ns, np.asarray(gate_mV, np.float64) / 1000.0)


class RRAMArray:
    """Conductance state of a rows x cols 1T1R array (cell (i, j) between bitline i and source line j)."""

    def __init__(self, rows: int, cols: int, params: RRAMParams = RRAMParams(),
                 seed: int | np.random.Generator = 0):
        if int(rows) != rows or int(cols) != cols or rows < 1 or cols < 1:
            raise ValueError(f"RRAMArray: rows={rows!r}, cols={cols!r} must be positive integers")
        self.rows, self.cols = int(rows), int(cols)
        self.params = params
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        p = params
        shape = (self.rows, self.cols)
        if p.ideal:
            self._v0_set = np.full(shape, p.set_v0_V)
            self._v0_reset = np.full(shape, p.reset_v0_V)
            self._gcc_scale = np.ones(shape)
            self.stuck_off = np.zeros(shape, bool)
            self.stuck_on = np.zeros(shape, bool)
            self._g = np.full(shape, min(p.g_init_uS, p.g_ceiling_uS))
        else:
            r = self.rng
            # Always the same number of draws, whatever the parameter values.
            z = r.standard_normal((4,) + shape)
            u = r.random((2,) + shape)
            self._v0_set = p.set_v0_V + p.set_v0_sigma_V * z[0]
            self._v0_reset = p.reset_v0_V + p.reset_v0_sigma_V * z[1]
            self._gcc_scale = np.exp(p.set_gcc_sigma_ln * z[2])
            self.stuck_off = u[0] < p.p_stuck_off
            self.stuck_on = (u[0] >= p.p_stuck_off) & (u[0] < p.p_stuck_off + p.p_stuck_on)
            self._g = np.clip(p.g_init_uS * np.exp(p.g_init_sigma_ln * z[3]), 0.0, p.g_ceiling_uS)
            self._g[self.stuck_off] = (p.stuck_off_max_uS * u[1])[self.stuck_off]
            self._g[self.stuck_on] = (p.stuck_on_min_uS
                                      + (p.g_ceiling_uS - p.stuck_on_min_uS) * u[1])[self.stuck_on]
        self.stuck_off.setflags(write=False)
        self.stuck_on.setflags(write=False)
        self._stuck = self.stuck_off | self.stuck_on
        # Relaxation state: programmed value, accumulated (unclipped) deviation, time since
        # programming (inf: programmed long ago, no further relaxation).
        self._g_prog = self._g.copy()
        self._dev = np.zeros(shape)
        self._t = np.full(shape, np.inf)
        # Per-cell event counters: the cycle-to-cycle draw of a cell's k-th programming pulse and
        # the noise of its k-th read are functions of (array key, cell, k) (models/rng.py), so any
        # order of cells -- one at a time through the RTL's write-verify engine, or all at once in
        # the fast model -- gives every cell the same history. (The pulse count is also the cell's
        # endurance cycle count.)
        self._key = int(self.rng.integers(0, 2 ** 63))
        # Drawn after everything above, so the draws above do not depend on them.
        if p.ideal:
            self._rtn_rel = np.zeros(shape)
        else:
            z2 = self.rng.standard_normal(shape)
            u2 = self.rng.random(shape)
            # ΔG/G of each cell's telegraph fluctuator (0: none); its two levels are g(1 ± ΔG/G / 2).
            self._rtn_rel = np.where(u2 < p.rtn_fraction,
                                     np.minimum(p.rtn_rel_median * np.exp(p.rtn_rel_sigma_ln * z2), 1.0), 0.0)
        self._pulse_count = np.zeros(shape, np.int64)
        self._read_count = np.zeros(shape, np.int64)

    # -- state -------------------------------------------------------------------------------------
    @property
    def g_uS(self) -> np.ndarray:
        """(rows, cols) true conductance now, µS (read-only view)."""
        v = self._g.view()
        v.setflags(write=False)
        return v

    @property
    def seconds_since_programming(self) -> np.ndarray:
        """(rows, cols) time since each cell was last programmed, s (inf: never)."""
        v = self._t.view()
        v.setflags(write=False)
        return v

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.cols)

    @property
    def pulse_count(self) -> np.ndarray:
        """(rows, cols) programming pulses each cell has received (its endurance cycles)."""
        v = self._pulse_count.view()
        v.setflags(write=False)
        return v

    def _cell_normals(self, stream: int, lin: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """One standard normal per (cell, its event number) of a stream (0 pulses, 1 reads);
        counts advance by one for each cell drawn."""
        k = counts.reshape(-1)[lin]
        counts.reshape(-1)[lin] = k + 1
        return self._normals_at(stream, lin, k)

    def _normals_at(self, stream: int, lin: np.ndarray, k: np.ndarray) -> np.ndarray:
        """:meth:`_cell_normals` of a further stream at given event numbers ``k`` (no counting)."""
        index = k.astype(np.uint64) * np.uint64(self.rows * self.cols) + lin.astype(np.uint64)
        return normal_planes(self._key ^ (0x5851F42D4C957F2D * (stream + 1) & (2 ** 64 - 1)),
                             index, np.zeros(1, np.uint64))[0][:, 0]

    def set_conductance(self, g_uS) -> None:
        """Set every cell directly (no programming physics; "ideal programming" and tests).

        ``g_uS`` broadcasts to (rows, cols); values are clipped to [0, g_ceiling_uS]. Stuck cells
        keep their stuck value. Every cell whose conductance changes restarts its relaxation clock
        from its new value; a cell set to the value it has is not programmed (so loading an array
        with another array's write-verified state relaxes exactly the cells that were programmed).
        """
        g = np.asarray(g_uS, dtype=np.float64)
        try:
            g = np.broadcast_to(g, self.shape)
        except ValueError:
            raise ValueError(f"set_conductance: shape {g.shape} does not fit the {self.shape} array") from None
        if not np.all(np.isfinite(g)):
            raise ValueError("set_conductance: conductances must be finite (found NaN or inf)")
        new = np.clip(g, 0.0, self.params.g_ceiling_uS)
        changed = (new != self._g) & ~self._stuck
        self._g[changed] = new[changed]
        self._g_prog[changed] = new[changed]
        self._dev[changed] = 0.0
        self._t[changed] = 0.0

    def _index(self, rows, cols, *extra):
        arrs = np.broadcast_arrays(np.asarray(rows), np.asarray(cols), *[np.asarray(e) for e in extra])
        r, c = arrs[0], arrs[1]
        for name, a, n in (("rows", r, self.rows), ("cols", c, self.cols)):
            if a.dtype.kind not in "iu":
                if a.dtype.kind == "b" or not (a.size == 0 or np.all(a == np.rint(a))):
                    raise ValueError(f"{name} must be integer indices")
            if a.size and (a.min() < 0 or a.max() >= n):
                raise IndexError(f"{name} index out of range 0..{n - 1}")
        return (r.astype(np.intp, copy=False), c.astype(np.intp, copy=False)) + tuple(arrs[2:])

    # -- programming -------------------------------------------------------------------------------
    def apply_pulses(self, rows, cols, polarity, amplitude_V, width_ns, gate_V) -> None:
        """Apply one programming pulse to each (rows[k], cols[k]).

        All arguments broadcast together. ``polarity`` a :class:`PulsePolarity`: SET (BL pulse, raises
        G; ``gate_V`` sets the compliance) or RESET (SL pulse, lowers G). A cell may appear at most once per call.
        Stuck cells do not respond. Pulsed cells restart their relaxation clock.
        """
        if all(np.ndim(v) == 0 for v in (rows, cols, polarity, amplitude_V, width_ns, gate_V)):
            return self._pulse_one(rows, cols, polarity, amplitude_V, width_ns, gate_V)
        r, c, pol, amp, width, gate = self._index(rows, cols, polarity, amplitude_V, width_ns, gate_V)
        r, c = r.ravel(), c.ravel()
        n = r.size
        if n == 0:
            return
        pol = pol.ravel()
        amp = amp.astype(np.float64, copy=False).ravel()
        width = width.astype(np.float64, copy=False).ravel()
        gate = gate.astype(np.float64, copy=False).ravel()
        if not np.all((pol == SET) | (pol == RESET)):
            raise ValueError("polarity must be PulsePolarity.SET or PulsePolarity.RESET")
        if not (np.all(np.isfinite(amp)) and np.all(np.isfinite(gate)) and np.all(np.isfinite(width))):
            raise ValueError("pulse amplitude, width and gate must be finite")
        if (amp < 0).any() or (gate < 0).any() or (width < 0).any():
            raise ValueError("pulse amplitude, width and gate must be >= 0")
        lin = r * self.cols + c
        if n > 1 and np.unique(lin).size != n:
            raise ValueError("apply_pulses: a cell appears more than once in one call")
        p = self.params
        if p.ideal:
            self._pulse_count.reshape(-1)[lin] += 1
            c2c = np.ones(n)
        else:
            k_pulse = self._pulse_count.reshape(-1)[lin].copy()
            c2c = np.exp(p.c2c_sigma_ln * self._cell_normals(0, lin, self._pulse_count) - 0.5 * p.c2c_sigma_ln ** 2)
        g = self._g.ravel()[lin]
        is_set = pol == SET
        # SET: toward the compliance conductance.
        ov = np.maximum(gate - p.vt_V, 0.0) / (p.set_gate_ref_V - p.vt_V)
        gcc = np.minimum(p.set_gcc_ref_uS * ov * ov * self._gcc_scale.ravel()[lin], p.g_ceiling_uS)
        # RESET: transistor as source follower limits the cell voltage to V_gate - V_t.
        v_eff = np.where(is_set, amp, np.minimum(amp, np.maximum(gate - p.vt_V, 0.0)))
        v0 = np.where(is_set, self._v0_set.ravel()[lin], self._v0_reset.ravel()[lin])
        va = np.where(is_set, p.set_va_V, p.reset_va_V)
        rate0 = np.where(is_set, p.set_rate0, p.reset_rate0)
        with np.errstate(over="ignore"):
            rate = rate0 * (width / 1000.0) * np.exp((v_eff - v0) / va) * c2c
        rate = np.where(v_eff > 0, rate, 0.0)
        f = -np.expm1(-rate)
        dg = np.where(is_set, f * np.maximum(gcc - g, 0.0), -f * np.maximum(g - p.g_floor_uS, 0.0))
        if not p.ideal and p.g_defect_uS > 0:
            # discrete defects: a Poisson number of events of g_defect each (Gaussian limit)
            z = self._normals_at(2, lin, k_pulse)
            dg = dg + np.sqrt(p.g_defect_uS * np.abs(dg)) * z
        stuck = self._stuck.ravel()[lin]
        g_new = np.where(stuck, g, np.clip(g + dg, 0.0, p.g_ceiling_uS))
        flat_g = self._g.reshape(-1)
        flat_g[lin] = g_new
        self._g_prog.reshape(-1)[lin] = g_new
        self._dev.reshape(-1)[lin] = 0.0
        self._t.reshape(-1)[lin] = np.where(stuck, np.inf, 0.0)

    def _pulse_one(self, row, col, polarity, amplitude_V, width_ns, gate_V) -> None:
        """:meth:`apply_pulses` for one cell, in scalars: the same operations in the same order on
        float64 scalars and numpy's own exp/expm1/sqrt (so the same bits as the array path,
        ``tests/test_device.py``), without the array overhead (the co-simulated write-verify
        engine pulses one cell at a time)."""
        for name, v in (("rows", row), ("cols", col)):
            if not (float(v) == int(v)) or isinstance(v, (bool, np.bool_)):
                raise ValueError(f"{name} must be integer indices")
        r, c = int(row), int(col)
        if not (0 <= r < self.rows and 0 <= c < self.cols):
            raise IndexError(f"cell ({r}, {c}) out of range of the {self.rows} x {self.cols} array")
        if polarity not in (SET, RESET):
            raise ValueError("polarity must be PulsePolarity.SET or PulsePolarity.RESET")
        amp, width, gate = np.float64(amplitude_V), np.float64(width_ns), np.float64(gate_V)
        if not (np.isfinite(amp) and np.isfinite(gate) and np.isfinite(width)):
            raise ValueError("pulse amplitude, width and gate must be finite")
        if amp < 0 or gate < 0 or width < 0:
            raise ValueError("pulse amplitude, width and gate must be >= 0")
        p = self.params
        lin = np.array([r * self.cols + c])
        k_pulse = self._pulse_count[r, c]
        if p.ideal:
            self._pulse_count[r, c] += 1
            c2c = np.float64(1.0)
        else:
            c2c = np.exp(p.c2c_sigma_ln * self._cell_normals(0, lin, self._pulse_count)[0]
                         - 0.5 * p.c2c_sigma_ln ** 2)
        g = self._g[r, c]
        is_set = polarity == SET
        ov = max(gate - p.vt_V, 0.0) / (p.set_gate_ref_V - p.vt_V)
        gcc = min(p.set_gcc_ref_uS * ov * ov * self._gcc_scale[r, c], p.g_ceiling_uS)
        v_eff = amp if is_set else min(amp, max(gate - p.vt_V, 0.0))
        v0 = self._v0_set[r, c] if is_set else self._v0_reset[r, c]
        va = p.set_va_V if is_set else p.reset_va_V
        rate0 = p.set_rate0 if is_set else p.reset_rate0
        with np.errstate(over="ignore"):
            rate = rate0 * (width / 1000.0) * np.exp((v_eff - v0) / va) * c2c
        rate = rate if v_eff > 0 else np.float64(0.0)
        f = -np.expm1(-rate)
        dg = f * max(gcc - g, 0.0) if is_set else -f * max(g - p.g_floor_uS, 0.0)
        if not p.ideal and p.g_defect_uS > 0:
            z = self._normals_at(2, lin, np.array([k_pulse]))[0]
            dg = dg + np.sqrt(p.g_defect_uS * abs(dg)) * z
        if self._stuck[r, c]:
            g_new = g
        else:
            g_new = min(max(g + dg, 0.0), p.g_ceiling_uS)
        self._g[r, c] = g_new
        self._g_prog[r, c] = g_new
        self._dev[r, c] = 0.0
        self._t[r, c] = np.inf if self._stuck[r, c] else 0.0

    # -- reading -----------------------------------------------------------------------------------
    def read_noise_sigma_uS(self, g_uS, read_V: float | None = None) -> np.ndarray:
        """σ of one read at conductance ``g_uS`` (µS); zero in noise-free mode."""
        g = np.asarray(g_uS, dtype=np.float64)
        p = self.params
        if p.ideal:
            return np.zeros_like(g)
        v = p.read_V if read_V is None else np.asarray(read_V, dtype=np.float64)
        floor = p.read_floor_uS * (0.15 / v)
        return np.sqrt(floor * floor + (p.read_rel * g) ** 2)

    @property
    def rtn_rel(self) -> np.ndarray:
        """(rows, cols) relative amplitude ΔG/G of each cell's telegraph fluctuator (0: none)."""
        v = self._rtn_rel.view()
        v.setflags(write=False)
        return v

    def array_read_sigma_uS(self, g_uS) -> np.ndarray:
        """Per-cell σ (µS) of the conductance one MVM sees, for the whole (rows, cols) array at
        conductances ``g_uS``: the read noise and, per cell, its telegraph fluctuator (two levels
        g(1 ± a/2), in either state with probability ½: σ = a·g/2; fresh in every MVM, since the
        fluctuators switch on the time scale of the ms between MVMs of the chip)."""
        g = np.asarray(g_uS, dtype=np.float64)
        base = self.read_noise_sigma_uS(g)
        if self.params.ideal or g.shape != self.shape or not self._rtn_rel.any():
            return base
        rtn = 0.5 * self._rtn_rel * g
        return np.sqrt(base * base + rtn * rtn)

    def read(self, rows, cols, read_V: float = 0.15) -> np.ndarray:
        """Measured conductance (µS) of each (rows[k], cols[k]) with fresh read noise.

        Shape: the broadcast shape of rows and cols. Reads never disturb the state. Results are
        clipped at 0 (the sense circuit reports magnitudes).
        """
        r, c, v = self._index(rows, cols, read_V)
        v = v.astype(np.float64, copy=False)
        if not np.all(np.isfinite(v)) or (v <= 0).any():
            raise ValueError("read_V must be a positive voltage")
        g = self._g[r, c]
        if self.params.ideal:
            return g.copy()
        sigma = self.read_noise_sigma_uS(g, v)
        lin = (r * self.cols + c).reshape(-1)
        if lin.size > 1 and np.unique(lin).size != lin.size:
            # the same cell twice in one call: successive reads, in the order given
            z = np.empty(lin.size)
            k = np.empty(lin.size, np.int64)
            for i, cell in enumerate(lin):
                k[i] = self._read_count.reshape(-1)[cell]
                z[i] = self._cell_normals(1, np.array([cell]), self._read_count)[0]
        else:
            k = self._read_count.reshape(-1)[lin].copy()
            z = self._cell_normals(1, lin, self._read_count)
        a = self._rtn_rel.reshape(-1)[lin]
        if a.any():
            # the fluctuator's state in this read: a function of (cell, read number), like z
            up = self._normals_at(4, lin, k) > 0
            g = g * (1.0 + np.where(up, 0.5, -0.5) * a).reshape(g.shape)
        return np.maximum(g + sigma * z.reshape(g.shape), 0.0)

    # -- time --------------------------------------------------------------------------------------
    def relaxation_sigma_uS(self, g_uS, seconds) -> np.ndarray:
        """The relaxation σ(g, t) this array applies (µS); zero when relaxation is off."""
        p = self.params
        g = np.asarray(g_uS, dtype=np.float64)
        if p.ideal or not p.relaxation:
            return np.zeros(np.broadcast_shapes(g.shape, np.shape(seconds)))
        return p.relaxation_scale * relaxation_sigma_uS(g, seconds, p.g_max_uS)

    def relax(self, seconds: float) -> None:
        """Let ``seconds`` pass: every cell's conductance relaxes (state- and time-dependent spread).

        Each cell tracks the time since it was programmed; only the variance increment
        σ²(g_prog, t + s) - σ²(g_prog, t) is added, so splitting an interval changes nothing
        statistically.
        """
        s = float(seconds)
        if not np.isfinite(s) or s < 0:
            raise ValueError(f"relax: seconds={seconds!r} must be a finite non-negative number")
        t_old = self._t.copy()
        t_new = t_old + s
        p = self.params
        if not p.ideal and p.relaxation and s > 0:
            live = np.isfinite(t_old)
            if live.any():
                gp = self._g_prog[live]
                inc = _relax_var(gp, t_new[live], p.g_max_uS) - _relax_var(gp, t_old[live], p.g_max_uS)
                sd = p.relaxation_scale * np.sqrt(np.maximum(inc, 0.0))
                # one normal per cell of the array, live or not: a cell's draw does not depend on
                # which other cells are relaxing
                self._dev[live] += sd * self.rng.standard_normal(self.shape)[live]
                self._g[live] = np.clip(gp + self._dev[live], 0.0, p.g_ceiling_uS)
        self._t[...] = t_new

    # -- adapter -------------------------------------------------------------------------------------
    def cell_access(self, read_V: float | None = None) -> _DeviceCellAccess:
        """An object with ``read_cells``/``pulse_cells`` for ``neurram.firmware.writeverify``
        (amplitudes and gates in mV, widths in ns, reads in µS)."""
        return _DeviceCellAccess(self, read_V)


# --------------------------------------------------------------------------------------------
# Targets like a real layer, and the command-line measurement
# --------------------------------------------------------------------------------------------

def layer_targets(rows: int, cols: int, g_max_uS: float = 40.0, seed: int = 0) -> np.ndarray:
    """(rows, cols) conductance targets of a differential layer: W ~ N(0, 1) of shape
    (rows // 2, cols), w_max = 95th percentile of |W| (docs/chip.md §3), G+ on even rows and G- on
    odd rows, each clip(max(±W, 0) / w_max, 0, 1) · g_max."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((rows // 2 + rows % 2, cols))
    w_max = np.percentile(np.abs(w), 95)
    gp = np.clip(np.maximum(w, 0) / w_max, 0, 1) * g_max_uS
    gn = np.clip(np.maximum(-w, 0) / w_max, 0, 1) * g_max_uS
    out = np.empty((w.shape[0] * 2, cols))
    out[0::2], out[1::2] = gp, gn
    return out[:rows]
