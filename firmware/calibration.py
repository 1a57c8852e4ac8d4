"""Model-driven calibration of a chip through the driver (docs/analog-model.md).

Everything here talks to the chip through :class:`~neurram.firmware.driver.Chip` methods only
(``set_bias``, ``set_packet``, ``mvm`` …), so it runs unchanged on the fast model, the RTL
co-simulation and a board. Three steps, as the chip's test software did them:

1. :func:`balance_inputs` — the operating point of a core's input drivers. Random ±1 inputs are
   applied to every row and the comparators' signs counted; V_pos/V_neg (``CORE_BIAS``) are moved
   in 1 mV steps (one of the two per step, alternately, so their sum stays within 1 mV of where it
   was) until +1 comes out in 50 % ± 5 % of the trials. The search is a bisection over the step
   index followed by a local 1 mV refinement (``method="bisect"``, default), or the plain nudge
   walk from the starting point (``method="nudge"``).

   Inputs: by default **bit-serial signed 2-bit codes ±1** from the input buffer (a 1-bit signed
   code has no magnitude bit and drives nothing). Code +1 drives its line with two +V_pos pulses,
   code −1 with two −V_neg pulses (the two phases of docs/chip.md §2), so every line is driven with
   ±1 exactly as the ternary source would with ``pulse_multiplier = 2``, and a whole set of trials
   is one MVM stream. ``source="ternary"`` uses the BL ternary register instead
   (``write_ternary`` + one ``TERNARY``/``SIGN`` MVM per trial; slower over a real link). Rows
   whose drive the ``POLARITY`` buffer inverts get the opposite sign on the bit-serial path; for
   random ±1 inputs that does not change the statistics.

2. :func:`fit_columns` — per output column, a piecewise-linear map between the chip's decoded
   output q (charge-packet units) and the ideal MVM y computed on the host::

       q = a+ · y + b+   where q > 0        q = a− · y + b−   where q < 0

   with separate gains for the two branches (the positive and negative charge packets differ)
   and one zero crossing (b+/a+ = b−/a−: the comparator offset and the common-mode charge act
   before the conversion, the packets after it). The fit is least squares of y on (q⁺, q⁻, 1)
   — the calibrated output ``apply(q) = (q − b_s)/a_s`` then has the smallest mean squared error
   on the calibration set. Saturated conversions (steps = max_steps) are left out.

3. :func:`mvm_error` — the residual MVM error, RMS(y_chip − y_ideal) / std(y_ideal) over all
   vectors and columns, with or without a calibration.

:func:`calibrate_runtime` fills a :class:`~neurram.firmware.runtime.Runtime`'s decode table from
a calibration run on a few images: each weight layer's segments see the input codes that the
software model's own (quantised) activations give, and are fitted against the software model's
partial sums of that segment.

``python -m neurram.firmware.calibration`` programs a 256 × 256 core of the fast model with random
differential weights and prints the residual error of 3-bit MVMs before and after calibration.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from neurram.spec import regmap as R
from neurram.spec.analog import NEURON_GAIN, charge_per_unit_nV
from neurram.spec.mvm import PACKET_UV_MAX, MvmSettings, decode_output

from . import nn
from .driver import Chip

__all__ = ["BalanceResult", "balance_inputs", "sign_balance", "ColumnCalibration", "fit_columns", "fit_from_data",
           "mvm_error", "relative_error", "choose_packet", "analytic_gain", "SegmentDecoder",
           "calibrate_runtime", "RuntimeCalibration", "random_differential_core", "pair_codes",
           "calibrate_random_core", "segment_residuals", "CHIP_RESIDUAL_PER_COLUMN", "CHIP_MEASUREMENT_AGE_S"]

_V_FIELD_MAX = (1 << 10) - 1          # CORE_BIAS fields are 10-bit millivolts

#: The chip's residual MVM error after calibration, per output column (RMS error over the column's
#: standard deviation, 3-bit inputs): 0.20-0.34 over the ten columns of one segment of the MNIST
#: CNN's dense layer (Wan et al., Nature 608, 2022; docs/chip.md §4).
CHIP_RESIDUAL_PER_COLUMN = (0.20, 0.34)

#: Time between programming and the measurement that a chip-like residual assumes, s. The chip's
#: figure comes from a layer of a network that was programmed core by core, cell by cell, and
#: calibrated before the test vectors ran; the delay is not published. One day: the horizon of
#: the published relaxation curves (paper Extended Data Fig. 3, aihwkit's fit at 1 and 2 days),
#: by which the spread has reached its plateau (docs/analog-model.md, "Residual").
CHIP_MEASUREMENT_AGE_S = 86400.0


# ---------------------------------------------------------------------------------------------
# decoding chip outputs (the byte format of docs/chip.md §2)

# ---------------------------------------------------------------------------------------------
# 1. input balance

@dataclass
class BalanceResult:
    v_pos_mV: int
    v_neg_mV: int
    fraction_positive: float          # over all trials and measured columns, at the chosen point
    column_fraction: np.ndarray       # per measured column
    start: tuple                      # (v_pos_mV, v_neg_mV) the search started from
    start_fraction: float
    evaluations: int
    history: list = field(default_factory=list)   # (v_pos_mV, v_neg_mV, fraction) in search order

    @property
    def moved(self) -> bool:
        return (self.v_pos_mV, self.v_neg_mV) != tuple(self.start)

    def within(self, tol: float = 0.05) -> bool:
        return abs(self.fraction_positive - 0.5) <= tol


def _bias_at(k: int, v_pos0: int, v_neg0: int) -> tuple[int, int]:
    """Step k of the 1 mV ladder: V_pos up by ceil(k/2), V_neg down by floor(k/2) (k may be < 0)."""
    up = -((-k) // 2)
    down = k // 2
    return v_pos0 + up, v_neg0 - down


def balance_inputs(chip: Chip, core: int, *, v_pos_mV: int | None = None, v_neg_mV: int | None = None,
                   cols=None, rows=None, trials: int = 256, tol: float = 0.05, method: str = "bisect",
                   source: str = "bitserial", max_steps: int = 400, seed: int = 0) -> BalanceResult:
    """Find V_pos/V_neg (mV) for which random ±1 inputs give +1 outputs 50 % ± ``tol`` of the time.

    ``cols``: the output columns to count (default: all); ``rows``: the input lines driven with
    ±1 (default: all rows; the others get 0 — on the bit-serial path a 0 still drives one + and
    one − pulse). The same random inputs are used at every operating point, so the measured
    fraction is monotone in the bias step up to read noise. Starts from ``v_pos_mV``/``v_neg_mV``
    (default: what CORE_BIAS holds now). ``method="bisect"`` bisects the 1 mV ladder over
    ±``max_steps`` steps and ends on the ladder point nearest to 50 %; ``method="nudge"`` walks
    from the start 1 mV at a time and stops at the first point inside the band, as the original
    test software did. Leaves CORE_BIAS at the chosen point.
    """
    if v_pos_mV is None or v_neg_mV is None:
        f = chip.fields("CORE_BIAS", core)
        v_pos_mV = f["v_pos_mV"] if v_pos_mV is None else v_pos_mV
        v_neg_mV = f["v_neg_mV"] if v_neg_mV is None else v_neg_mV
    measure = _sign_trials(chip, core, cols, rows, trials, source, seed)

    history = []
    cache = {}

    def at(k):
        if k not in cache:
            vp, vn = _bias_at(k, v_pos_mV, v_neg_mV)
            if not (0 <= vp <= _V_FIELD_MAX and 0 <= vn <= _V_FIELD_MAX):
                return None
            chip.set_bias(core, vp, vn)
            pos = measure()
            cache[k] = (float(pos.mean()), pos.mean(axis=0))
            history.append((vp, vn, cache[k][0]))
        return cache[k][0]

    f0 = at(0)
    if method == "nudge":
        k = 0
        direction = -1 if f0 > 0.5 else 1
        while abs(at(k) - 0.5) > tol and abs(k) < max_steps:
            nxt = k + direction
            if at(nxt) is None:
                break
            k = nxt
            if (at(k) - 0.5) * direction > 0:        # overshot the middle: stop at the nearer point
                if abs(at(k - direction) - 0.5) < abs(at(k) - 0.5):
                    k -= direction
                break
    elif method == "bisect":
        if abs(f0 - 0.5) <= tol / 4:
            k = 0
        else:
            # bracket: lo has fraction <= 0.5, hi has fraction > 0.5 (fraction rises with k)
            step = 4
            if f0 > 0.5:
                hi, lo = 0, -step
                while at(lo) is not None and at(lo) > 0.5 and -lo < max_steps:
                    hi, lo = lo, lo * 2
                if at(lo) is None:
                    lo = hi
            else:
                lo, hi = 0, step
                while at(hi) is not None and at(hi) <= 0.5 and hi < max_steps:
                    lo, hi = hi, hi * 2
                if at(hi) is None:
                    hi = lo
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if at(mid) > 0.5:
                    hi = mid
                else:
                    lo = mid
            k = min((c for c in (lo, hi) if at(c) is not None), key=lambda c: abs(at(c) - 0.5))
    else:
        raise ValueError(f"method must be 'bisect' or 'nudge', not {method!r}")
    vp, vn = _bias_at(k, v_pos_mV, v_neg_mV)
    chip.set_bias(core, vp, vn)
    return BalanceResult(vp, vn, cache[k][0], cache[k][1], (v_pos_mV, v_neg_mV), f0, len(cache), history)


def _sign_trials(chip: Chip, core: int, cols, rows, trials: int, source: str, seed: int):
    """A function running the same ``trials`` random ±1 input vectors at the current CORE_BIAS and
    returning the comparator signs (trials, len(cols)), True for +1."""
    info = chip.config
    cols = np.arange(info.cols) if cols is None else np.asarray(cols)
    rows = np.arange(info.rows) if rows is None else np.asarray(rows)
    rng = np.random.default_rng(seed)
    signs = rng.choice(np.array([-1, 1], np.int64), size=(trials, rows.size))
    chip.ensure_enabled(core)
    if source == "bitserial":
        codes = np.zeros((trials, info.rows), np.int64)
        codes[:, rows] = signs
        mode = MvmSettings(input_bits=2, input_signed=True, conversion=R.Conversion.SIGN)

        def measure():
            return (chip.mvm(core, codes, mode)[:, cols] & 0x80) == 0
        return measure
    if source == "ternary":
        mode = MvmSettings(input_source=R.InputSource.TERNARY, conversion=R.Conversion.SIGN)
        zero = np.zeros((1, info.rows), np.int64)

        def measure():
            pos = np.empty((trials, cols.size), bool)
            t = np.zeros(info.rows, np.int64)
            for i in range(trials):
                t[rows] = signs[i]
                chip.write_ternary(core, "bl", t)
                pos[i] = (chip.mvm(core, zero, mode)[0, cols] & 0x80) == 0
            return pos
        return measure
    raise ValueError(f"source must be 'bitserial' or 'ternary', not {source!r}")


def sign_balance(chip: Chip, core: int, *, cols=None, rows=None, trials: int = 256, source: str = "bitserial",
                 seed: int = 0) -> tuple[float, np.ndarray]:
    """Fraction of +1 comparator outputs for random ±1 inputs at the current CORE_BIAS: (over all
    trials and columns, per column). Same inputs and options as :func:`balance_inputs`."""
    pos = _sign_trials(chip, core, cols, rows, trials, source, seed)()
    return float(pos.mean()), pos.mean(axis=0)


# ---------------------------------------------------------------------------------------------
# 2. per-column fit

@dataclass
class ColumnCalibration:
    """Per output column: y = (q − b_s)/a_s, s the sign of the chip output q.

    ``gain_pos``/``gain_neg`` (a±) are chip units per ideal unit, ``offset_pos``/``offset_neg``
    (b±) chip units; ``unit`` names the chip unit ("packet" from :func:`fit_columns`, "nV" in the
    runtime). ``fitted`` is False for columns the data could not fit (too few unsaturated samples
    or no spread); those keep the ``default_gain`` passed to the fit and offset 0. ``separate``
    is False for columns where one branch had fewer than ``min_branch`` samples: they get one
    gain for both branches.
    """
    cols: np.ndarray
    gain_pos: np.ndarray
    gain_neg: np.ndarray
    offset_pos: np.ndarray
    offset_neg: np.ndarray
    fitted: np.ndarray
    unit: str = "packet"
    n_samples: np.ndarray | None = None        # per column: (unsaturated) samples used
    rms_residual: np.ndarray | None = None     # per column, ideal units, on the calibration set
    separate: np.ndarray | None = None         # per column: both branch gains fitted (else one shared)

    def apply(self, q: np.ndarray) -> np.ndarray:
        """Chip outputs (N, C) in ``unit`` → calibrated outputs in ideal units."""
        q = np.asarray(q, np.float64)
        pos = q > 0
        return np.where(pos, (q - self.offset_pos) / self.gain_pos, (q - self.offset_neg) / self.gain_neg)

    @property
    def zero(self) -> np.ndarray:
        """Ideal value at which the chip output changes sign (−b/a, the same on both branches)."""
        return -self.offset_pos / self.gain_pos

    def scaled(self, factor: float, unit: str) -> "ColumnCalibration":
        """The same calibration for chip outputs expressed in another unit (q_new = factor·q)."""
        return ColumnCalibration(self.cols, self.gain_pos * factor, self.gain_neg * factor,
                                 self.offset_pos * factor, self.offset_neg * factor, self.fitted, unit,
                                 self.n_samples, self.rms_residual, self.separate)


def _fit_one(q: np.ndarray, y: np.ndarray, min_branch: int):
    """Least squares y ≈ α+ q⁺ + α− q⁻ + β; returns (α+, α−, β, rms, separate) or None."""
    if q.size < 3 or np.ptp(q) == 0:
        return None
    pos = q > 0
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    one = np.ones_like(q)
    separate = n_pos >= min_branch and n_neg >= min_branch
    if separate:
        X = np.stack([np.where(pos, q, 0.0), np.where(pos, 0.0, q), one], axis=1)
        coef, *_ = np.linalg.lstsq(X, y, rcond=None)
        ap, an, beta = coef
    else:                                       # one branch too thin: one shared slope
        X = np.stack([q, one], axis=1)
        (a, beta), *_ = np.linalg.lstsq(X, y, rcond=None)
        ap = an = a
    if not (ap > 0 and an > 0):
        return None
    rms = float(np.sqrt(np.mean((np.where(pos, ap * q, an * q) + beta - y) ** 2)))
    return ap, an, beta, rms, separate


def fit_from_data(q: np.ndarray, y: np.ndarray, valid: np.ndarray | None = None, *, cols=None,
                  min_branch: int = 20, default_gain=1.0, unit: str = "packet") -> ColumnCalibration:
    """The per-column fit of :func:`fit_columns` on measured chip outputs ``q`` and ideal ``y``
    (both (N, C)); ``valid`` marks the samples to use (default all)."""
    q = np.asarray(q, np.float64)
    y = np.asarray(y, np.float64)
    if q.shape != y.shape:
        raise ValueError(f"chip outputs {q.shape} and ideal outputs {y.shape} differ in shape")
    C = q.shape[1]
    valid = np.ones(q.shape, bool) if valid is None else np.asarray(valid, bool)
    default = np.broadcast_to(np.asarray(default_gain, np.float64), (C,))
    gp, gn = default.copy(), default.copy()
    bp, bn = np.zeros(C), np.zeros(C)
    fitted = np.zeros(C, bool)
    n = valid.sum(axis=0)
    rms = np.full(C, np.nan)
    separate = np.zeros(C, bool)
    for j in range(C):
        v = valid[:, j]
        r = _fit_one(q[v, j], y[v, j], min_branch)
        if r is None:
            continue
        ap, an, beta, rms[j], separate[j] = r
        gp[j], gn[j] = 1.0 / ap, 1.0 / an
        bp[j], bn[j] = -beta * gp[j], -beta * gn[j]
        fitted[j] = True
    return ColumnCalibration(np.arange(C) if cols is None else np.asarray(cols), gp, gn, bp, bn, fitted,
                             unit, n, rms, separate)


def fit_columns(chip: Chip, core: int, cols, ideal_fn, codes: np.ndarray, mode: MvmSettings, *,
                min_branch: int = 20, default_gain=1.0) -> ColumnCalibration:
    """Run ``codes`` through ``core`` and fit each output column in ``cols`` against the ideal.

    ``ideal_fn(codes)`` returns the ideal outputs (N, len(cols)) in any unit (that unit is what
    ``apply`` returns). Chip outputs are decoded to charge-packet units (:func:`neurram.spec.mvm.decode_output`);
    the current CORE_BIAS / CORE_NEURON / POLARITY / mask settings are used as they are.
    """
    cols = np.asarray(cols)
    codes = np.atleast_2d(np.asarray(codes))
    q, sat = decode_output(chip.mvm(core, codes, mode)[:, cols], mode)
    y = np.asarray(ideal_fn(codes), np.float64)
    return fit_from_data(q, y, ~sat, cols=cols, min_branch=min_branch, default_gain=default_gain)


# ---------------------------------------------------------------------------------------------
# 3. residual error

def relative_error(y_chip: np.ndarray, y_ideal: np.ndarray, per_column: bool = False) -> float:
    """RMS(y_chip − y_ideal) / std(y_ideal), over every vector and column (``per_column``: the
    same ratio within each column, averaged over the columns — the columns' different means then
    do not count in the standard deviation). NaN when the ideal output is constant."""
    y_chip, y_ideal = np.asarray(y_chip, np.float64), np.asarray(y_ideal, np.float64)
    if per_column:
        sd = np.std(y_ideal, axis=0)
        ok = sd > 0
        return float(np.mean(np.sqrt(np.mean((y_chip - y_ideal) ** 2, axis=0))[ok] / sd[ok]))
    sd = float(np.std(y_ideal))
    return float(np.sqrt(np.mean((y_chip - y_ideal) ** 2)) / sd) if sd > 0 else float("nan")


def mvm_error(chip: Chip, core: int, cols, ideal_fn, codes: np.ndarray, mode: MvmSettings,
              calibration: ColumnCalibration | None = None, *, gain=None, per_column: bool = False) -> float:
    """Residual MVM error of ``core`` as a fraction of the ideal output's standard deviation.

    With ``calibration``: outputs decoded by ``calibration.apply``. Without: y = q/``gain``
    (chip packet units per ideal unit, scalar or per column: the nominal, uncalibrated decoding,
    e.g. :func:`analytic_gain`); with neither, the single least-squares gain of the whole core.
    Use vectors that were not used for the fit. ``per_column``: see :func:`relative_error`.
    """
    cols = np.asarray(cols)
    codes = np.atleast_2d(np.asarray(codes))
    q, _ = decode_output(chip.mvm(core, codes, mode)[:, cols], mode)
    y = np.asarray(ideal_fn(codes), np.float64)
    if calibration is not None:
        y_chip = calibration.apply(q)
    else:
        if gain is None:
            gain = float(np.sum(q * q) / np.sum(q * y))
        y_chip = q / np.asarray(gain, np.float64)
    return relative_error(y_chip, y, per_column)


def analytic_gain(g_column_sum_uS: np.ndarray, *, w_unit_uS: float, v_pos_mV: float, v_neg_mV: float,
                  pulse_multiplier: int, packet_uV: float, neuron_gain: float = NEURON_GAIN) -> np.ndarray:
    """Nominal chip output (packets) per ideal unit for each column, from conductances alone: the
    charge per unit (:func:`neurram.spec.analog.charge_per_unit_nV`, the mapper's too) at the mean
    drive (V_pos + V_neg)/2, in packets. This is the uncalibrated decoding.
    """
    per_unit_nV = charge_per_unit_nV(g_column_sum_uS, w_unit_uS=w_unit_uS, v_mV=0.5 * (v_pos_mV + v_neg_mV),
                                      pulse_multiplier=pulse_multiplier, neuron_gain=neuron_gain)
    return per_unit_nV / (packet_uV * 1e3)


def choose_packet(chip: Chip, core: int, cols, codes: np.ndarray, mode: MvmSettings, *, probe_uV: int = 100,
                  headroom: float = 0.9, quantile: float = 99.9) -> int:
    """The charge packet (µV) that puts the ``quantile`` of |output| near ``headroom·max_steps``.

    Measured, not computed: one stream at a probe packet (grown ×4 while it saturates), then
    scaled. Sets CORE_NEURON and returns the packet.
    """
    cols = np.asarray(cols)
    packet = int(probe_uV)
    for _ in range(8):
        chip.set_packet(core, packet)
        q, sat = decode_output(chip.mvm(core, codes, mode)[:, cols], mode)
        if sat.mean() < 1e-3 or packet * 4 > PACKET_UV_MAX:
            break
        packet *= 4
    top = float(np.percentile(np.abs(q), quantile)) * packet
    new = int(np.clip(np.ceil(top / (headroom * mode.max_steps)), 1, PACKET_UV_MAX))
    chip.set_packet(core, new)
    return new


# ---------------------------------------------------------------------------------------------
# 4. the runtime

@dataclass(frozen=True)
class SegmentDecoder:
    """How the runtime turns one segment's integrator readings (nV) into partial sums, per output
    column: y = (q − offset_s) / scale_s, with s the sign of q (separate branches after a
    calibration that fitted them; one scale and no offset when nominal)."""

    scale_pos: np.ndarray
    offset_pos: np.ndarray
    scale_neg: np.ndarray
    offset_neg: np.ndarray

    @classmethod
    def nominal(cls, scale_nV_per_unit) -> "SegmentDecoder":
        """y = q / scale on both branches (from the conductances the chip reports back)."""
        scale = np.asarray(scale_nV_per_unit, np.float64)
        zero = np.zeros(scale.shape)
        return cls(scale, zero, scale.copy(), zero.copy())

    def __call__(self, q_nV: np.ndarray) -> np.ndarray:
        q = np.asarray(q_nV, np.float64)
        return np.where(q > 0, (q - self.offset_pos) / self.scale_pos, (q - self.offset_neg) / self.scale_neg)

    @property
    def separate(self) -> bool:
        """True when some column decodes its two branches differently."""
        return not (np.array_equal(self.scale_pos, self.scale_neg) and np.array_equal(self.offset_pos, self.offset_neg))

    def refit(self, cal: "ColumnCalibration", separate_branches: bool = True) -> "SegmentDecoder":
        """This decoder with the columns ``cal`` fitted replaced by the fit (in nV); with
        ``separate_branches`` False, the positive branch's fit serves both branches."""
        f = cal.fitted
        sp, op, sn, on = (np.array(v, np.float64) for v in
                          (self.scale_pos, self.offset_pos, self.scale_neg, self.offset_neg))
        sp[f], op[f] = cal.gain_pos[f], cal.offset_pos[f]
        if separate_branches:
            sn[f], on[f] = cal.gain_neg[f], cal.offset_neg[f]
        else:
            sn, on = sp.copy(), op.copy()
        return SegmentDecoder(sp, op, sn, on)


@dataclass
class RuntimeCalibration:
    """What :func:`calibrate_runtime` measured, per (layer, segment). The errors are
    :func:`relative_error` of the segment's partial sums on the calibration vectors themselves
    (in-sample), with the decode entry before and after."""
    columns: dict                      # (layer, segment) -> ColumnCalibration (nV)
    decoders: dict                     # (layer, segment) -> the SegmentDecoder to use from now on
    error_before: dict                 # (layer, segment) -> relative error with the old decode
    error_after: dict                  # (layer, segment) -> relative error with the new decode
    vectors: dict                      # layer -> vectors used
    separate_branches: bool
    seconds: float

    def summary(self) -> str:
        lines = [f"calibration ({'separate' if self.separate_branches else 'shared'} +/- gains, "
                 f"{self.seconds:.2f} s): residual error / std(ideal) per segment, before -> after"]
        for key in self.columns:
            c = self.columns[key]
            lines.append(f"  {key[0]:<8} seg {key[1]}: {self.error_before[key]:.3f} -> {self.error_after[key]:.3f} "
                         f"({int(c.fitted.sum())}/{c.fitted.size} columns fitted, "
                         f"{int(c.separate.sum()) if self.separate_branches else 0} with separate +/- gains, "
                         f"{self.vectors[key[0]]} vectors)")
        return "\n".join(lines)


def calibrate_runtime(runtime, images: np.ndarray | None = None, *, codes: np.ndarray | None = None,
                      max_vectors: int = 2048, min_branch: int = 20, separate_branches: bool | None = None,
                      seed: int = 0, layers=None) -> RuntimeCalibration:
    """Measure a decoder for every segment of a programmed runtime (``runtime.program()`` first);
    :meth:`Runtime.calibrate` installs the report's ``decoders``.

    ``images``: a few uint8 images (quantised with the network's input quantiser), or ``codes``:
    input codes directly. Each weight layer gets the input codes the *software model* produces on
    them (quantised activations of the previous layer, im2col patches for convolutions; at most
    ``max_vectors`` per layer, drawn at random), every segment runs them on the chip through the
    runtime (:meth:`Runtime.segment_charge_nV`), and each output column is fitted against the
    software partial sum of that segment (Σ code·weight over the segment's inputs plus its bias
    rows).

    ``separate_branches``: fit the positive and negative branches separately (default, None: yes)
    or one gain per column. Columns that cannot be fitted keep their previous decoder's values.
    ``layers``: names of the layers to calibrate (default: all); the others keep their decoders.
    """
    t0 = time.perf_counter()
    if separate_branches is None:
        separate_branches = True
    m = runtime.mapping
    net = m.net
    if codes is None:
        if images is None:
            raise ValueError("calibrate_runtime needs images or codes")
        codes = nn.quantize_input(np.asarray(images), net.input)
    h = np.asarray(codes, np.int64)
    h = h[:, None] if h.ndim == 3 else h
    layer_of = {ml.name: ml for ml in m.layers}
    rng = np.random.default_rng(seed)
    cols_cal, decoders, before, after, used = {}, {}, {}, {}, {}
    def calibrate_layer(spec, h):
        ml = layer_of[spec["name"]]
        x, reshape = nn.layer_inputs(spec, h)
        x = x.astype(np.int64)
        pick = x if x.shape[0] <= max_vectors else x[np.sort(rng.choice(x.shape[0], max_vectors, replace=False))]
        mode = runtime.layer_mode(ml)
        for s in (ml.segments if layers is None or ml.name in layers else ()):
            used[ml.name] = pick.shape[0]
            key = (ml.name, s.index)
            old = runtime.decoders[key]
            q_nV = runtime.segment_charge_nV(ml, s, pick, mode)
            y_ideal = s.ideal(ml, pick)
            steps = np.rint(np.abs(q_nV) / (s.packet_uV * 1e3) + 0.5)
            valid = steps < m.max_steps
            cal = fit_from_data(q_nV, y_ideal, valid, cols=np.arange(s.col0, s.col0 + s.n_out),
                                min_branch=min_branch if separate_branches else 10 ** 9,
                                default_gain=old.scale_pos, unit="nV")
            new = old.refit(cal, separate_branches)
            cols_cal[key], decoders[key] = cal, new
            before[key] = relative_error(old(q_nV), y_ideal)
            after[key] = relative_error(new(q_nV), y_ideal)
        # the software model's next activations, from all vectors
        y = reshape((x @ ml.weight.T) * ml.in_step + ml.bias)
        act = spec.get("act")
        return nn.quantize_act(y, act) if act is not None else y

    nn.walk(net, h, calibrate_layer, codes=True)
    return RuntimeCalibration(cols_cal, decoders, before, after, used, separate_branches, time.perf_counter() - t0)


def segment_residuals(runtime, images: np.ndarray, layers=None) -> dict:
    """The chip's own measurement on a calibrated runtime: for every segment of ``layers``
    (names; default all weight layers), the residual per output column, RMS(decoded − ideal
    partial sum) / std(ideal partial sum), over the real activations that ``images`` give (the
    software model's quantised activations, as :func:`calibrate_runtime` feeds them). Use images
    the calibration did not see. Returns {(layer, segment): per-column residuals}."""
    m = runtime.mapping
    net = m.net
    h = np.asarray(nn.quantize_input(np.asarray(images), net.input), np.int64)
    h = h[:, None] if h.ndim == 3 else h
    layer_of = {ml.name: ml for ml in m.layers}
    out = {}

    def visit(spec, h):
        ml = layer_of[spec["name"]]
        x, reshape = nn.layer_inputs(spec, h)
        x = x.astype(np.int64)
        if layers is None or ml.name in layers:
            mode = runtime.layer_mode(ml)
            for s in ml.segments:
                q_nV = runtime.segment_charge_nV(ml, s, x, mode)
                y = s.ideal(ml, x)
                err = np.sqrt(np.mean((runtime.decoders[(ml.name, s.index)](q_nV) - y) ** 2, axis=0))
                sd = y.std(axis=0)
                out[(ml.name, s.index)] = np.where(sd > 0, err / np.where(sd > 0, sd, 1), np.nan)
        y = reshape((x @ ml.weight.T) * ml.in_step + ml.bias)
        act = spec.get("act")
        return nn.quantize_act(y, act) if act is not None else y

    nn.walk(net, h, visit, codes=True)
    return out


# ---------------------------------------------------------------------------------------------
# the demonstration: python -m neurram.firmware.calibration

def random_differential_core(chip: Chip, core: int, rng: np.random.Generator, *, g_max_uS: float = 40.0,
                             percentile: float = 95.0):
    """Program random differential weights on a whole core (pairs of rows, G− rows inverted).

    Returns (w, report): w (rows/2, cols) the programmed weights in units of g_max (in [−1, 1]:
    normal weights scaled by their 95th percentile and clipped, as the mapper maps them).
    """
    rows, cols = chip.config.rows, chip.config.cols
    w = rng.standard_normal((rows // 2, cols))
    w = np.clip(w / np.percentile(np.abs(w), percentile), -1, 1)
    g = np.zeros((rows, cols))
    g[0::2] = np.maximum(w, 0) * g_max_uS
    g[1::2] = np.maximum(-w, 0) * g_max_uS
    report = chip.program(core, g)                 # enables the core too
    pol = np.zeros(chip.config.lines, bool)
    pol[1:rows:2] = True
    chip.set_polarity(core, pol)
    chip.set_mask(core, np.ones(chip.config.lines, bool))
    return w, report


def pair_codes(x: np.ndarray, rows: int) -> np.ndarray:
    """Logical input codes (N, rows/2) → physical row codes (N, rows): each code on both rows of
    its pair (the G− row's drive is inverted by POLARITY)."""
    out = np.zeros((x.shape[0], rows), np.int64)
    out[:, 0::2] = x
    out[:, 1::2] = x
    return out


def calibrate_random_core(chip: Chip, core: int, rng: np.random.Generator, *, bits: int = 3,
                          vectors: int = 1024, v0_mV: int = 100, log=None) -> dict:
    """The calibration flow on one core of random differential weights, measured.

    Programs the core (:func:`random_differential_core`), then runs ``vectors`` held-out random
    ``bits``-bit inputs before calibration (nominal decode from the read-back conductances at
    V_pos = V_neg = ``v0_mV``) and after it (:func:`balance_inputs`, :func:`choose_packet`,
    :func:`fit_columns`). Returns the ideal and decoded outputs, the residual errors
    (:func:`relative_error`, overall and per column) and the time of the last evaluation;
    ``log(line)`` hears each step.
    """
    log = log or (lambda line: None)
    t = time.perf_counter()
    rows, cols = chip.config.rows, chip.config.cols
    w, rep = random_differential_core(chip, core, rng)
    chip.set_bias(core, v0_mV, v0_mV)
    log(f"programmed {rows} x {cols} ({rows // 2} differential pairs): {len(rep.unconverged)} cells unconverged, "
        f"{time.perf_counter() - t:.2f} s")
    ideal = lambda c: c[:, 0::2] @ w                                  # noqa: E731 (codes on pairs)
    mode = MvmSettings(input_bits=bits, conversion=R.Conversion.DECREMENT, max_steps=100)
    xmax = (1 << bits) - 1
    x_cal = pair_codes(rng.integers(0, xmax + 1, (vectors, rows // 2)), rows)
    x_test = pair_codes(rng.integers(0, xmax + 1, (vectors, rows // 2)), rows)
    y_ideal = ideal(x_test)
    all_cols = np.arange(cols)
    g = np.zeros((rows, cols))
    g[rep.rows, rep.cols] = rep.final_g

    def decoded(decode):
        q, _ = decode_output(chip.mvm(core, x_test, mode), mode)
        return decode(q)

    t = time.perf_counter()
    packet0 = choose_packet(chip, core, all_cols, x_cal, mode)
    gain = analytic_gain(g.sum(0), w_unit_uS=40.0, v_pos_mV=v0_mV, v_neg_mV=v0_mV,
                         pulse_multiplier=mode.pulse_multiplier, packet_uV=packet0)
    before = decoded(lambda q: q / gain)
    log(f"before: V_pos/V_neg {v0_mV}/{v0_mV} mV, packet {packet0} uV (measured), nominal decode from the "
        f"read-back conductances  [{time.perf_counter() - t:.2f} s]")

    t = time.perf_counter()
    bal = balance_inputs(chip, core, v_pos_mV=v0_mV, v_neg_mV=v0_mV)
    log(f"balance_inputs: {bal.start[0]}/{bal.start[1]} mV ({100 * bal.start_fraction:.1f} % +1) -> "
        f"{bal.v_pos_mV}/{bal.v_neg_mV} mV ({100 * bal.fraction_positive:.1f} % +1), "
        f"{bal.evaluations} evaluations  [{time.perf_counter() - t:.2f} s]")
    t = time.perf_counter()
    packet = choose_packet(chip, core, all_cols, x_cal, mode)
    fit = fit_columns(chip, core, all_cols, ideal, x_cal, mode)
    log(f"fit_columns: {int(fit.fitted.sum())}/{cols} columns, {vectors} vectors, packet {packet} uV, "
        f"median a-/a+ {np.median(fit.gain_neg / fit.gain_pos):.3f}  [{time.perf_counter() - t:.2f} s]")
    t = time.perf_counter()
    after = decoded(fit.apply)
    return {"ideal": y_ideal, "before": before, "after": after,
            "error_before": relative_error(before, y_ideal),
            "error_before_per_column": relative_error(before, y_ideal, per_column=True),
            "error_after": relative_error(after, y_ideal),
            "error_after_per_column": relative_error(after, y_ideal, per_column=True),
            "seconds_evaluate": time.perf_counter() - t}
