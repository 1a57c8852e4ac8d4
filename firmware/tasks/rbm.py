"""Bayesian image recovery with a restricted Boltzmann machine (docs/rbm.md, docs/chip.md §5).

The paper's fourth benchmark (Wan et al., Nature 608, 2022): an RBM of 794 visible units (784
MNIST pixels scaled to [0, 1] and 10 one-hot label units) and 120 binary hidden units recovers
corrupted images by Gibbs sampling, visible -> hidden in the forward direction and hidden ->
visible in the backward direction through the same RRAM cells (the TNSA), the stochastic
neurons sampling the visible units.

    RBM, load_rbm(path), save_rbm(path, rbm)    weights W (visible x hidden), biases b, a
    corrupt(x, kind, rng)                       "random" (20 % of the pixels flipped) or "occlude"
    gibbs_software(rbm, ...)                    the reference sampler, numpy
    map_rbm(rbm, chip) -> RbmMapping            weights onto cores (2 x 2 cells per weight)
    run_rbm(W, b, a, chip, x, labels)           map, program, calibrate, recover: any RBM
    ChipGibbs(chip, mapping).recover(...)       the sampler on the chip

The arrays of an RBM file (``neurram run rbm --weights FILE.npz``): ``W`` (visible x hidden),
``b`` (visible biases), ``a`` (hidden biases), all float; the first 784 visible units are the
pixels of a 28 x 28 image (row-major), the last 10 the one-hot label.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neurram.spec.analog import charge_per_unit_nV
from neurram.spec.enums import Conversion, Direction
from neurram.spec.link import SegmentDrive
from neurram.spec.mvm import PACKET_UV_MAX, MvmSettings, decode_output
from neurram.spec.regmap import REGISTERS

from ..calibration import ColumnCalibration, fit_from_data
from ..driver import Chip
from ..mapper import G_MAX_uS, MappingError
from ..runtime import join_worker, optional_pyplot, progress_bar
from ..writeverify import WriteVerifyConfig

__all__ = ["RBM", "load_rbm", "save_rbm", "DEFAULT_WEIGHTS", "with_labels", "corrupt", "CORRUPTIONS",
           "gibbs_software", "RecoveryResult", "PIXELS", "LABELS", "OCCLUDED_ROWS", "FLIP_FRACTION",
           "RbmBlock", "RbmMapping", "map_rbm", "program_rbm", "calibrate_rbm", "StochasticCalibration",
           "ChipGibbs", "run_rbm", "RbmReport", "rbm_figures", "add_run_arguments", "run_cli",
           "NOISE_SIGMA_PER_FULL_SCALE", "LOGISTIC_PROBIT"]

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "rbm.npz"

#: Visible units: 784 pixels, then 10 label units.
PIXELS, LABELS = 784, 10
#: The occlusion: image rows 18..27 (the bottom third, as the paper's notebook cut it).
OCCLUDED_ROWS = (18, 28)
#: The random corruption: this fraction of pixels flipped (x < 0.7 -> 1, else -> 0).
FLIP_FRACTION = 0.2
FLIP_THRESHOLD = 0.7
CORRUPTIONS = ("random", "occlude")


@dataclass
class RBM:
    """W (visible x hidden), b (visible biases), a (hidden biases)."""
    W: np.ndarray
    b: np.ndarray
    a: np.ndarray
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.W = np.asarray(self.W, np.float64)
        self.b = np.asarray(self.b, np.float64).reshape(-1)
        self.a = np.asarray(self.a, np.float64).reshape(-1)
        if self.W.ndim != 2 or self.W.shape != (self.b.size, self.a.size):
            raise ValueError(f"RBM arrays do not agree: W {self.W.shape}, b {self.b.shape}, a {self.a.shape}; "
                             f"W must be visible x hidden with b of length visible and a of length hidden")
        if not (np.isfinite(self.W).all() and np.isfinite(self.b).all() and np.isfinite(self.a).all()):
            raise ValueError("RBM arrays contain NaN or infinity: retrain or fix the weight file")

    @property
    def visible(self) -> int:
        return self.W.shape[0]

    @property
    def hidden(self) -> int:
        return self.W.shape[1]


def save_rbm(path, rbm: RBM) -> None:
    np.savez_compressed(path, W=rbm.W.astype(np.float32), b=rbm.b.astype(np.float32),
                        a=rbm.a.astype(np.float32), meta=json.dumps(rbm.meta))


def load_rbm(path=None) -> RBM:
    """An RBM file (arrays W, b, a; see the module docstring); the committed one by default."""
    p = Path(path) if path else DEFAULT_WEIGHTS
    if not p.is_file():
        raise FileNotFoundError(f"RBM weights not found at {p}: train them with "
                                f"`python firmware/train/rbm.py --out {p}`")
    with np.load(p, allow_pickle=False) as f:
        missing = [k for k in ("W", "b", "a") if k not in f.files]
        if missing:
            raise ValueError(f"{p} lacks array(s) {', '.join(missing)}: an RBM file holds W (visible x hidden), "
                             f"b (visible) and a (hidden)")
        meta = json.loads(str(f["meta"])) if "meta" in f.files else {}
        return RBM(f["W"], f["b"], f["a"], meta)


def with_labels(x_uint8: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Visible vectors (N, 794): pixels scaled to [0, 1], then the one-hot label."""
    x = np.asarray(x_uint8).reshape(len(x_uint8), -1).astype(np.float64) / 255.0
    return np.concatenate([x, _onehot(labels)], axis=1)


def corrupt(x: np.ndarray, kind: str, rng: np.random.Generator):
    """Corrupt clean pixels x (N, 784) in [0, 1]: returns (corrupted, mask of corrupted pixels).

    ``random``: each pixel flipped with probability 0.2 (below 0.7 -> 1, else -> 0);
    ``occlude``: image rows 18-27 set to a constant grey, the mean pixel value of ``x``."""
    x = np.asarray(x, np.float64)
    if kind == "random":
        mask = rng.random(x.shape) < FLIP_FRACTION
        xc = np.where(mask, (x < FLIP_THRESHOLD).astype(np.float64), x)
    elif kind == "occlude":
        mask = np.zeros(x.shape, bool)
        mask[:, OCCLUDED_ROWS[0] * 28:OCCLUDED_ROWS[1] * 28] = True
        xc = np.where(mask, float(x.mean()), x)
    else:
        raise ValueError(f"unknown corruption {kind!r}: choose one of {', '.join(CORRUPTIONS)}")
    return xc, mask


def _sigmoid(u):
    return 1.0 / (1.0 + np.exp(-np.clip(u, -60, 60)))


def l2_errors(v: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Per-image L2 distance between recovered pixels and clean pixels."""
    return np.sqrt(((v[:, :PIXELS] - x[:, :PIXELS]) ** 2).sum(1))


@dataclass
class RecoveryResult:
    """Mean L2 error against the clean images before recovery and after every Gibbs step."""
    corruption: str
    images: int
    error_before: float
    errors: np.ndarray                    # (steps,) mean L2 error after each step
    recovered: np.ndarray                 # (N, 784) the visible probabilities after the last step
    corrupted: np.ndarray                 # (N, 784)
    seconds: float = 0.0

    @property
    def error_after(self) -> float:
        return float(self.errors[-1])

    @property
    def reduction(self) -> float:
        """Fraction by which the recovery cut the mean L2 error."""
        return 1.0 - self.error_after / self.error_before if self.error_before else 0.0


def gibbs_software(rbm: RBM, x: np.ndarray, labels: np.ndarray, kind: str, *, steps: int = 10,
                   seed: int = 0, corrupted=None) -> RecoveryResult:
    """The reference sampler, as the paper's notebook ran it, in float64 numpy.

    ``x`` (N, 784) clean pixels in [0, 1]. Per step: the visible units are sampled (binary), the
    hidden units sampled from sigmoid(vW + a), the visible probabilities computed as
    sigmoid(hWᵀ + b); the known pixels and the label units are clamped to their values, only the
    corrupted pixels keep the new probabilities. The error is measured on the probabilities.
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    xc, mask = corrupted if corrupted is not None else corrupt(x, kind, np.random.default_rng(seed + 1))
    v = np.concatenate([xc, _onehot(labels)], axis=1)
    clamp = np.concatenate([mask, np.zeros((len(x), LABELS), bool)], axis=1)
    known = np.concatenate([x, _onehot(labels)], axis=1)
    errors = []
    for _ in range(steps):
        vs = (rng.random(v.shape) < v).astype(np.float64)
        h = (rng.random((len(v), rbm.hidden)) < _sigmoid(vs @ rbm.W + rbm.a)).astype(np.float64)
        p = _sigmoid(h @ rbm.W.T + rbm.b)
        v = np.where(clamp, p, known)
        errors.append(l2_errors(v, x).mean())
    return RecoveryResult(kind, len(x), float(l2_errors(xc, x).mean()), np.asarray(errors), v[:, :PIXELS],
                          xc, time.perf_counter() - t0)


def _onehot(labels) -> np.ndarray:
    labels = np.asarray(labels, np.int64)
    out = np.zeros((labels.size, LABELS))
    out[np.arange(labels.size), labels] = 1.0
    return out


# =============================================================================================
# The RBM on the chip
# =============================================================================================
#
# Layout (docs/rbm.md): every weight takes 2 x 2 cells, so that both directions see a signed
# weight on one neuron. Visible unit i owns the row pair (2r, 2r+1) of its core, hidden unit j the
# column pair (2j, 2j+1) of every core; G+ = max(W, 0)·G_max/w_max sits on (2r, 2j) and
# (2r+1, 2j+1), G- = max(-W, 0)·G_max/w_max on (2r, 2j+1) and (2r+1, 2j). POLARITY inverts every
# odd line, which means the G- row of each pair in the forward direction (inputs on bitlines) and
# the G- column of each pair in the backward direction (inputs on source lines):
#   forward  (v -> h): source line 2j integrates  Σ_r v_r (G+ - G-)  = the hidden pre-activation
#   backward (h -> v): bitline 2r integrates     Σ_j h_j (G+ - G-)  = the visible pre-activation
# with the same cells. Hidden biases a sit on extra row pairs of every core (input held at 1,
# a / cores each), visible biases b on extra column pairs (input held at 1).

#: σ of a stochastic neuron's injected charge per unit of STOCHASTIC.noise_uV: the charge is
#: (s − 14)/14 · noise_uV with s the sum of four uniform 3-bit values (docs/chip.md §2), whose σ is
#: √(4 · 63/12) = 4.58, so σ = 0.327 · noise_uV.
NOISE_SIGMA_PER_FULL_SCALE = float(np.sqrt(4 * 63 / 12) / 14)
#: A Gaussian threshold of σ fires with Φ(q/σ) ≈ sigmoid(1.702 · q/σ).
LOGISTIC_PROBIT = 1.702


@dataclass
class RbmBlock:
    """The part of the RBM on one core: visible units ``visible`` on row pairs 0, 1, ..., the hidden
    biases on ``hbias_pairs`` row pairs after them; every hidden unit and ``vbias_pairs`` visible-bias
    column pairs on columns 0 .. 2·(hidden + vbias_pairs) − 1."""
    core: int
    visible: np.ndarray
    hbias_pairs: int
    g_target: np.ndarray                      # (rows used, cols used) µS
    fwd_scale_nV: np.ndarray | None = None    # charge per unit weight of source lines 0 .. 2·hidden − 1
    bwd_scale_nV: np.ndarray | None = None    # of bitlines 0 .. 2·visible − 1 (read back)
    fwd_packet_uV: int = 100
    bwd_packet_uV: int = 100
    fwd_cal: ColumnCalibration | None = None
    bwd_cal: ColumnCalibration | None = None

    @property
    def n_rows(self) -> int:
        return self.g_target.shape[0]

    @property
    def n_cols(self) -> int:
        return self.g_target.shape[1]


@dataclass
class RbmMapping:
    rbm: RBM
    w_max: float
    blocks: list
    vbias_pairs: int
    v_mV: int = 100
    pulse_multiplier: int = 1
    max_steps: int = 100
    noise_uV: int = 0                          # STOCHASTIC.noise_uV after calibration
    unconverged_cells: int = 0
    programmed_cells: int = 0

    @property
    def cores(self) -> list:
        return [b.core for b in self.blocks]

    @property
    def w_unit_uS(self) -> float:
        return G_MAX_uS / self.w_max

    def mode(self, direction: Direction, stochastic: bool = False) -> MvmSettings:
        """1-bit inputs (binary units); charge-decrement outputs, or stochastic sign outputs."""
        return MvmSettings(direction=direction, input_bits=1,
                           conversion=Conversion.SIGN if stochastic else Conversion.DECREMENT,
                           stochastic=stochastic, max_steps=self.max_steps, pulse_multiplier=self.pulse_multiplier)

    def forward_drive(self, blk: RbmBlock) -> SegmentDrive:
        """Visible units on the row pairs, hidden biases at 1; both source lines of every hidden
        pair sensed (line 2j integrates +u, line 2j+1 −u through the pair's other two cells)."""
        nv, H = len(blk.visible), self.rbm.hidden
        src = np.concatenate([np.arange(nv), np.full(blk.hbias_pairs, -1)])
        return SegmentDrive(lines=np.arange(2 * len(src)), source=np.repeat(src, 2), constant=1,
                            outputs=np.arange(2 * H))

    def backward_drive(self, blk: RbmBlock, *, both: bool = True) -> SegmentDrive:
        """Hidden units on the column pairs, visible biases at 1; both bitlines of every visible
        pair sensed, or (``both`` False: the stochastic neurons) the even one only."""
        H, nv = self.rbm.hidden, len(blk.visible)
        src = np.concatenate([np.arange(H), np.full(self.vbias_pairs, -1)])
        return SegmentDrive(lines=np.arange(2 * len(src)), source=np.repeat(src, 2), constant=1,
                            outputs=np.arange(2 * nv) if both else 2 * np.arange(nv))

    def summary(self) -> str:
        lines = [f"RBM {self.rbm.visible} visible x {self.rbm.hidden} hidden on {len(self.blocks)} cores, "
                 f"2 x 2 cells per weight, w_max {self.w_max:.3f} -> {G_MAX_uS:g} µS, "
                 f"{self.vbias_pairs} visible-bias column pair(s); drive {self.v_mV} mV x {self.pulse_multiplier} pulses"]
        for b in self.blocks:
            lines.append(f"  core {b.core}: visible {b.visible[0]}-{b.visible[-1]} on rows 0-{b.n_rows - 1} "
                         f"({b.hbias_pairs} hidden-bias pair(s)), cols 0-{b.n_cols - 1}")
        return "\n".join(lines)


def _quad(w: np.ndarray, w_max: float) -> np.ndarray:
    """(2R, 2C) conductances (µS) of weights w (R, C): 2 x 2 cells per weight (see above)."""
    gp = np.clip(w, 0, w_max) / w_max * G_MAX_uS
    gm = np.clip(-w, 0, w_max) / w_max * G_MAX_uS
    g = np.zeros((2 * w.shape[0], 2 * w.shape[1]))
    g[0::2, 0::2] = gp
    g[1::2, 1::2] = gp
    g[0::2, 1::2] = gm
    g[1::2, 0::2] = gm
    return g


def map_rbm(rbm: RBM, info, *, percentile: float = 100.0, v_mV: int = 100, max_steps: int = 100,
            pulse_multiplier: int | None = None, first_core: int = 0) -> RbmMapping:
    """Place ``rbm`` on the cores of a chip described by ``info`` (``chip.config``).

    w_max is the ``percentile`` of |W| (larger weights saturate at G_max); biases larger than
    w_max are spread over several row or column pairs. ``pulse_multiplier`` None: chosen so that
    a stochastic neuron's noise can reach a sigmoid of slope 1 (:func:`calibrate_rbm`)."""
    V, H = rbm.W.shape
    R, C = info.rows, info.cols
    w_max = float(np.percentile(np.abs(rbm.W), percentile)) or 1.0
    free_col_pairs = C // 2 - H
    if free_col_pairs < 1:
        raise MappingError(f"{H} hidden units need {2 * (H + 1)} source lines per core (2 per unit and a "
                           f"visible-bias pair); this chip has {C}: use an RBM with at most {C // 2 - 1} hidden units")
    vbias = int(np.clip(np.ceil(np.abs(rbm.b).max() / w_max), 1, free_col_pairs))
    hbias = 1
    for _ in range(3):                              # cores and hidden-bias rows depend on each other
        per_core = R // 2 - hbias
        n = -(-V // per_core)
        hbias = int(np.clip(np.ceil(np.abs(rbm.a).max() / (n * w_max)), 1, max(1, R // 2 - -(-V // n))))
    per_core = R // 2 - hbias
    n = -(-V // per_core)
    if first_core + n > info.n_cores:
        raise MappingError(f"{V} visible units need {n} cores of {R} rows (2 rows per unit); this chip has "
                           f"{info.n_cores - first_core} from core {first_core}: use a chip with more cores or rows")
    blocks = []
    for k, vis in enumerate(np.array_split(np.arange(V), n)):
        w = np.zeros((len(vis) + hbias, H + vbias))
        w[:len(vis), :H] = rbm.W[vis]
        w[len(vis):, :H] = rbm.a / (n * hbias)
        w[:len(vis), H:] = (rbm.b[vis] / vbias)[:, None]
        blocks.append(RbmBlock(first_core + k, vis, hbias, _quad(w, w_max)))
    m = RbmMapping(rbm, w_max, blocks, vbias, v_mV=v_mV, max_steps=max_steps)
    m.pulse_multiplier = pulse_multiplier or _auto_pulse_multiplier(m, info)
    return m


def _row_scale(m: RbmMapping, g: np.ndarray, pulse_multiplier: int, axis: int) -> np.ndarray:
    """Charge per unit weight (nV) of the lines of a block: the source lines (axis 0 sums over
    rows: forward) or the bitlines (axis 1: backward)."""
    s = g.sum(axis=axis)
    return charge_per_unit_nV(s, w_unit_uS=m.w_unit_uS, v_mV=m.v_mV, pulse_multiplier=pulse_multiplier)


def _auto_pulse_multiplier(m: RbmMapping, info) -> int:
    """The pulse multiplier putting the median visible unit's charge per unit weight where the
    noise register can give it a slope-1 sigmoid with 50 % headroom."""
    c1 = np.median(np.concatenate([_row_scale(m, b.g_target, 1, 1)[0:2 * len(b.visible):2] for b in m.blocks]))
    target_nV = _noise_max_uV() * 1e3 * NOISE_SIGMA_PER_FULL_SCALE / LOGISTIC_PROBIT / 1.5
    return int(np.clip(np.floor(target_nV / c1), 1, info.pulse_multiplier_max))


def _noise_max_uV() -> int:
    return REGISTERS.STOCHASTIC["noise_uV"].max


def program_rbm(chip: Chip, m: RbmMapping, *, progress: bool = True, write_verify_config=None) -> RbmMapping:
    """Write-verify every block's cells (through the chip's cell registers, or the link's declared
    test access); decode scales from the conductances read back; POLARITY on the odd lines."""
    chip.enable_cores(m.cores)
    cfg = write_verify_config or WriteVerifyConfig()
    bar = progress_bar(len(m.blocks), "programming RBM cores", progress)
    m.unconverged_cells = m.programmed_cells = 0
    lines = max(chip.config.rows, chip.config.cols)
    for blk in m.blocks:
        rows, cols = np.indices(blk.g_target.shape)
        rows, cols, target = rows.reshape(-1), cols.reshape(-1), blk.g_target.reshape(-1)
        test_access = chip.link.capabilities.test_access_program
        if test_access is not None:                # a simulated chip opened with test access (README)
            rep = test_access(blk.core, rows, cols, target, cfg)
        else:
            rep = chip.program(blk.core, target, rows=rows, cols=cols, config=cfg)
        g = np.asarray(rep.final_g, np.float64).reshape(blk.g_target.shape)
        blk.fwd_scale_nV = _row_scale(m, g, m.pulse_multiplier, 0)[:2 * m.rbm.hidden]
        blk.bwd_scale_nV = _row_scale(m, g, m.pulse_multiplier, 1)[:2 * len(blk.visible)]
        m.unconverged_cells += len(rep.unconverged)
        m.programmed_cells += target.size
        chip.set_polarity(blk.core, np.arange(lines) % 2 == 1)
        chip.set_bias(blk.core, m.v_mV, m.v_mV)
        bar(1)
    bar.close()
    return m


def _packet_for(range_units: np.ndarray, scale_nV: np.ndarray, max_steps: int) -> int:
    """Packet (µV) putting the largest output near max_steps (10 % headroom)."""
    q_max = float(np.max(np.abs(range_units) * scale_nV))
    return int(np.clip(np.ceil(q_max / (0.9 * max_steps) / 1000.0), 1, PACKET_UV_MAX))


def _charge_nV(out_bytes: np.ndarray, mode: MvmSettings, packet_uV: int):
    q, sat = decode_output(out_bytes, mode)
    return q * packet_uV * 1e3, sat


@dataclass
class StochasticCalibration:
    """How the stochastic neurons' noise was set: nominal from the weights' scale, then corrected
    by a fitted sigmoid slope (firing probability against the ideal pre-activation)."""
    noise_uV_nominal: int
    noise_uV: int
    slope_before: float                 # fitted slope (per unit of pre-activation) at the nominal noise
    slope_after: float                  # at the calibrated noise (target 1)
    offset_after: float                 # fitted intercept: sigmoid(slope·u + offset)
    unit_offset_rms_before: float = float("nan")   # RMS of the units' own offsets (weight units)
    unit_offset_rms_after: float = float("nan")    # after the visible biases were corrected

    def summary(self) -> str:
        text = (f"stochastic neurons: noise {self.noise_uV_nominal} µV from the weights' scale (slope "
                f"{self.slope_before:.3f}), calibrated to {self.noise_uV} µV: sigmoid slope {self.slope_after:.3f} "
                f"per unit of pre-activation (target 1), offset {self.offset_after:+.3f}")
        if np.isfinite(self.unit_offset_rms_before):
            text += (f"; offsets of the units {self.unit_offset_rms_before:.3f} RMS, "
                     f"{self.unit_offset_rms_after:.3f} after correcting the visible biases on the chip")
        return text


def calibrate_rbm(chip: Chip, m: RbmMapping, v_cal: np.ndarray, *, seed: int = 0, repeats: int = 4,
                  corrections: int = 2, correct_biases: bool = True, progress: bool = True) -> StochasticCalibration:
    """Operating points and decoders from calibration vectors ``v_cal`` (N, visible) in [0, 1].

    1. visible samples v ~ Bernoulli(v_cal) and hidden samples h ~ p(h | v) (software RBM) are the
       inputs; each block's ideal partial sums are computed on the host;
    2. per core and direction, the charge packet that puts the largest output near max_steps, and
       a per-column fit of the charge-decrement readings against the ideal sums
       (:func:`neurram.firmware.calibration.fit_from_data`, separate gains for the two branches);
    3. the stochastic neurons' noise: nominally σ_noise = 1.702 · (charge per unit weight) of the
       median visible unit, which gives P(fire) = sigmoid(u) for a pre-activation u in weight units;
       then the slope of the measured firing probability against u is fitted over every visible
       unit and ``repeats`` seeds, the noise scaled by it and the slope measured again
       (``corrections`` times);
    4. with ``correct_biases``, each visible unit's own offset δ (its comparator offset and its
       line's errors shift its sigmoid: P = sigmoid(s·(u + δ))) is fitted from the same firing
       counts, and its bias cells are programmed again for b − δ (chip in the loop); the
       charge-decrement readout is then fitted again.
    """
    rng = np.random.default_rng([seed, 0xCA1])         # a stream of its own (not the caller's)
    rbm = m.rbm
    v = (rng.random(v_cal.shape) < v_cal).astype(np.int64)
    h = (rng.random((len(v), rbm.hidden)) < _sigmoid(v @ rbm.W + rbm.a)).astype(np.int64)
    n = len(m.blocks)
    fwd = m.mode(Direction.FORWARD)
    bar = progress_bar(n + corrections + 1 + 2 * int(correct_biases), "calibrating the RBM", progress)
    for blk in m.blocks:
        y_f = v[:, blk.visible] @ rbm.W[blk.visible] + rbm.a / n
        y_f = _both_lines(y_f)
        blk.fwd_packet_uV = _packet_for(y_f, blk.fwd_scale_nV, m.max_steps)
        chip.set_packet(blk.core, blk.fwd_packet_uV)
        q, sat = _charge_nV(chip.mvm_segment(blk.core, v[:, blk.visible], m.forward_drive(blk), fwd), fwd,
                            blk.fwd_packet_uV)
        blk.fwd_cal = fit_from_data(q, y_f, ~sat, default_gain=blk.fwd_scale_nV, unit="nV")
        _fit_backward(chip, m, blk, h, packet=True)
        bar(1)
    # the stochastic neurons
    pixels = np.concatenate([blk.bwd_scale_nV[0::2][blk.visible < PIXELS] for blk in m.blocks])
    noise0 = int(np.clip(round(LOGISTIC_PROBIT * float(np.median(pixels)) / NOISE_SIGMA_PER_FULL_SCALE / 1e3),
                         1, _noise_max_uV()))
    sampler = ChipGibbs(chip, m)
    u = np.concatenate([h @ rbm.W[blk.visible].T + rbm.b[blk.visible] for blk in m.blocks], axis=1)

    def measure(noise_uV):
        m.noise_uV = noise_uV
        fires = np.zeros(u.shape)
        for r in range(repeats):
            fires += sampler.sample_visible(h, seed=seed * 7919 + r + 1, all_units=True)
        bar(1)
        return _fit_logistic(u, fires, repeats), fires

    (s0, c), fires = measure(noise0)
    noise, s = noise0, s0
    for _ in range(corrections):              # slope ∝ 1/noise, up to offsets and read noise
        noise = int(np.clip(round(noise * s), 1, _noise_max_uV()))
        (s, c), fires = measure(noise)
    result = StochasticCalibration(noise0, noise, s0, s, c)
    if correct_biases:
        # Each unit fires with sigmoid(s·(u + δ)): its comparator offset and the line's own errors
        # shift it by δ. Program its visible bias as b − δ (the bias cells only), then fit the
        # charge-decrement readout again against the unshifted ideal sums.
        delta = _unit_offsets(u, fires, repeats, s)
        k = 0
        for blk in m.blocks:
            d = delta[k:k + len(blk.visible)]
            k += len(blk.visible)
            _program_visible_bias(chip, m, blk, rbm.b[blk.visible] - d)
            _fit_backward(chip, m, blk, h, packet=False)
        (s, c), fires = measure(noise)
        noise = int(np.clip(round(noise * s), 1, _noise_max_uV()))     # the slope moved a little
        (s, c), fires = measure(noise)
        result = StochasticCalibration(noise0, noise, s0, s, c, float(np.sqrt(np.mean(delta ** 2))),
                                       float(np.sqrt(np.mean(_unit_offsets(u, fires, repeats, s) ** 2))))
    bar.close()
    return result


def _fit_backward(chip: Chip, m: RbmMapping, blk: RbmBlock, h: np.ndarray, *, packet: bool) -> None:
    """The backward charge-decrement packet (``packet``) and per-line fit of one block against
    the ideal visible pre-activations hWᵀ + b of the RBM."""
    rbm = m.rbm
    mode = m.mode(Direction.BACKWARD)
    y_b = _both_lines(h @ rbm.W[blk.visible].T + rbm.b[blk.visible])
    if packet:
        blk.bwd_packet_uV = _packet_for(y_b, blk.bwd_scale_nV, m.max_steps)
    chip.set_packet(blk.core, blk.bwd_packet_uV)
    q, sat = _charge_nV(chip.mvm_segment(blk.core, h, m.backward_drive(blk), mode), mode, blk.bwd_packet_uV)
    blk.bwd_cal = fit_from_data(q, y_b, ~sat, default_gain=blk.bwd_scale_nV, unit="nV")


def _both_lines(y: np.ndarray) -> np.ndarray:
    """Ideal outputs of both lines of each pair: +y on the even line, −y on the odd one."""
    out = np.empty((y.shape[0], 2 * y.shape[1]))
    out[:, 0::2], out[:, 1::2] = y, -y
    return out


def _difference(y2: np.ndarray) -> np.ndarray:
    """Each pair's value from both lines' calibrated outputs: (even − odd) / 2, which averages
    the pair's four cells, two reads and two conversions."""
    return 0.5 * (y2[:, 0::2] - y2[:, 1::2])


def _unit_offsets(u: np.ndarray, fires: np.ndarray, trials: int, slope: float, prior_sd: float = 1.0,
                  iterations: int = 30) -> np.ndarray:
    """Per unit (column) δ with P(fire) = sigmoid(slope·(u + δ)), maximum a posteriori with a
    N(0, prior_sd²) prior (units that never or always fire keep δ near 0)."""
    c = np.zeros(u.shape[1])
    for _ in range(iterations):
        p = _sigmoid(slope * u + c)
        g = (fires - trials * p).sum(0) - c / prior_sd ** 2
        hess = (trials * p * (1 - p)).sum(0) + 1 / prior_sd ** 2
        c += g / hess
    return c / slope


def _program_visible_bias(chip: Chip, m: RbmMapping, blk: RbmBlock, b_new: np.ndarray) -> None:
    """Write-verify the visible-bias cells of a block again for the biases ``b_new``."""
    H, nv, vb = m.rbm.hidden, len(blk.visible), m.vbias_pairs
    w = np.repeat((b_new / vb)[:, None], vb, axis=1)
    g = _quad(w, m.w_max)                                   # (2·nv, 2·vb)
    blk.g_target[:2 * nv, 2 * H:2 * (H + vb)] = g
    rows, cols = np.indices(g.shape)
    rows, cols = rows.reshape(-1), cols.reshape(-1) + 2 * H
    cfg = WriteVerifyConfig()
    test_access = chip.link.capabilities.test_access_program
    if test_access is not None:
        test_access(blk.core, rows, cols, g.reshape(-1), cfg)
    else:
        chip.program(blk.core, g.reshape(-1), rows=rows, cols=cols, config=cfg)


def _fit_logistic(u: np.ndarray, fires: np.ndarray, trials: int, iterations: int = 50):
    """Slope and intercept of P(fire) = sigmoid(s·u + c), maximum likelihood over every unit and
    vector (binomial counts ``fires`` of ``trials``): Newton's method with step halving."""
    x, k = u.reshape(-1), fires.reshape(-1)
    keep = np.abs(x) < 8                           # saturated units carry no slope information
    x, k = x[keep], k[keep]

    def loglik(s, c):
        z = s * x + c
        return float(np.sum(k * z - trials * np.logaddexp(0.0, z)))

    s, c = 1.0, 0.0
    ll = loglik(s, c)
    for _ in range(iterations):
        p = _sigmoid(s * x + c)
        g = np.array([np.sum((k - trials * p) * x), np.sum(k - trials * p)])
        wgt = trials * p * (1 - p)
        Hm = np.array([[np.sum(wgt * x * x), np.sum(wgt * x)], [np.sum(wgt * x), np.sum(wgt)]])
        step = np.linalg.solve(Hm + 1e-9 * np.eye(2), g)
        t = 1.0
        while t > 1e-4 and loglik(s + t * step[0], c + t * step[1]) < ll:
            t /= 2
        s, c = s + t * step[0], c + t * step[1]
        new = loglik(s, c)
        if abs(new - ll) < 1e-9 * max(1.0, abs(ll)):
            break
        ll = new
    return float(s), float(c)


class ChipGibbs:
    """Gibbs sampling of a mapped, programmed and calibrated RBM on the chip.

    Per step: forward (v -> h) on every core, charge-decrement outputs on both lines of each
    hidden pair, partial sums added on the host and the hidden units sampled there (a stochastic
    neuron sees only its own core's partial sum); backward (h -> v) on every core, each giving its
    visible units whole: the stochastic neurons on the even bitlines fire with
    P = sigmoid(pre-activation) (the next step's visible sample), and a charge-decrement pass on
    both bitlines gives the pre-activation itself, whose sigmoid is the recovered image.
    """

    def __init__(self, chip: Chip, mapping: RbmMapping):
        self.chip, self.m = chip, mapping

    def hidden_preactivation(self, v: np.ndarray) -> np.ndarray:
        """Σ over cores of the calibrated forward partial sums: vW + a, (N, hidden)."""
        m = self.m
        mode = m.mode(Direction.FORWARD)
        u = np.zeros((len(v), m.rbm.hidden))
        for blk in m.blocks:
            self.chip.set_packet(blk.core, blk.fwd_packet_uV)
            q, _ = _charge_nV(self.chip.mvm_segment(blk.core, v[:, blk.visible], m.forward_drive(blk), mode),
                              mode, blk.fwd_packet_uV)
            u += _difference(blk.fwd_cal.apply(q) if blk.fwd_cal is not None else q / blk.fwd_scale_nV)
        return u

    def visible_preactivation(self, h: np.ndarray) -> np.ndarray:
        """hWᵀ + b from the calibrated backward outputs of every core, (N, visible)."""
        m = self.m
        mode = m.mode(Direction.BACKWARD)
        u = np.zeros((len(h), m.rbm.visible))
        for blk in m.blocks:
            self.chip.set_packet(blk.core, blk.bwd_packet_uV)
            q, _ = _charge_nV(self.chip.mvm_segment(blk.core, h, m.backward_drive(blk), mode), mode,
                              blk.bwd_packet_uV)
            u[:, blk.visible] = _difference(blk.bwd_cal.apply(q) if blk.bwd_cal is not None else q / blk.bwd_scale_nV)
        return u

    def sample_visible(self, h: np.ndarray, *, seed: int, all_units: bool = False, needed=None) -> np.ndarray:
        """Binary visible samples from the stochastic neurons (backward, SIGN conversion with
        noise), (N, visible) or, with ``all_units``, in block order (N, Σ block sizes). The
        automaton is reseeded at every hardware batch, so each batch gets a seed of its own.
        ``needed`` (visible,) bool: only the cores holding such units run (the others read 0)."""
        m = self.m
        mode = m.mode(Direction.BACKWARD, stochastic=True)
        depth = self.chip.config.batch_depth
        outs = []
        for blk in m.blocks:
            fired = np.zeros((len(h), len(blk.visible)))
            if needed is None or np.any(needed[blk.visible]):
                drive = m.backward_drive(blk, both=False)
                for i0 in range(0, len(h), depth):
                    self.chip.set_stochastic(_batch_seed(seed, blk.core, i0), m.noise_uV)
                    out = self.chip.mvm_segment(blk.core, h[i0:i0 + depth], drive, mode)
                    fired[i0:i0 + depth] = (out & 0x80) == 0
            outs.append(fired)
        if all_units:
            return np.concatenate(outs, axis=1)
        v = np.zeros((len(h), m.rbm.visible))
        for blk, f in zip(m.blocks, outs):
            v[:, blk.visible] = f
        return v

    def recover(self, x: np.ndarray, labels: np.ndarray, kind: str, *, steps: int = 10, seed: int = 0,
                corrupted=None, batch: int = 500, progress: bool = True, workers: int = 1) -> RecoveryResult:
        """Recover corrupted images (clean pixels ``x`` (N, 784) in [0, 1]) as
        :func:`gibbs_software` does, the MVMs and the visible sampling on the chip.

        Images run in batches of ``batch``; every batch draws from its own seeds (host sampling and
        LFSR seeds), so ``workers`` > 1 (forked copies of a simulated chip, each a share of the
        batches) gives the same samples; only the read noise, counted per MVM on each copy, differs."""
        t0 = time.perf_counter()
        xc, mask = corrupted if corrupted is not None else corrupt(x, kind, np.random.default_rng(seed + 1))
        N = len(x)
        starts = list(range(0, N, batch))
        workers = max(1, min(int(workers), len(starts)))
        shares = [starts[round(w * len(starts) / workers):round((w + 1) * len(starts) / workers)]
                  for w in range(workers)]
        args = (x, labels, xc, mask, kind, steps, seed, batch)
        children = [_fork(self._recover_batches, *args, share, False) for share in shares[:-1]]
        errors, recovered = self._recover_batches(*args, shares[-1], progress)
        for child in children:
            e, r = _join(child)
            errors += e
            recovered += r
        return RecoveryResult(kind, N, float(l2_errors(xc, x).mean()), errors / N, recovered, xc,
                              time.perf_counter() - t0)

    def _recover_batches(self, x, labels, xc, mask, kind, steps, seed, batch, starts, progress):
        """(Σ errors per step, recovered pixels with zeros outside ``starts``) for those batches."""
        errors = np.zeros(steps)
        recovered = np.zeros((len(x), PIXELS))
        total = sum(len(x[i0:i0 + batch]) for i0 in starts) * steps
        bar = progress_bar(total, f"Gibbs sampling on the chip ({kind})", progress)
        for i0 in starts:
            sl = slice(i0, i0 + batch)
            rng = np.random.default_rng([seed, i0])
            known = np.concatenate([x[sl], _onehot(labels[sl])], axis=1)
            clamp = np.concatenate([mask[sl], np.zeros((len(known), LABELS), bool)], axis=1)
            needed = clamp.any(axis=0)
            v = np.concatenate([xc[sl], _onehot(labels[sl])], axis=1)
            vs = rng.random(v.shape) < v                # the first visible sample: from the corrupted image
            for t in range(steps):
                u_h = self.hidden_preactivation(vs.astype(np.int64))
                h = (rng.random(u_h.shape) < _sigmoid(u_h)).astype(np.int64)
                p = _sigmoid(self.visible_preactivation(h))
                v = np.where(clamp, p, known)
                errors[t] += l2_errors(v, known).sum()
                if t < steps - 1:
                    fired = self.sample_visible(h, seed=seed * 1_000_003 + i0 * 16 + t + 1, needed=needed)
                    vs = np.where(clamp, fired, rng.random(v.shape) < known)
                bar(len(known))
            recovered[sl] = v[:, :PIXELS]
        bar.close()
        return errors, recovered


def _fork(fn, *args):
    """Run fn(*args) in a forked process (a copy of this one, simulated chip included)."""
    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)

    def child():
        try:
            send.send(("ok", fn(*args)))
        except BaseException as e:          # the parent reports it; a worker must never hang it
            send.send(("error", f"{type(e).__name__}: {e}"))
        finally:
            send.close()
            os._exit(0)

    p = ctx.Process(target=child, daemon=True)
    p.start()
    send.close()
    return p, recv


def _join(child):
    return join_worker(child, "an RBM recovery worker")


def _batch_seed(seed: int, core: int, index: int) -> int:
    """A nonzero 32-bit LFSR seed for one hardware batch (SplitMix64-style mix)."""
    z = (seed * 0x9E3779B97F4A7C15 + core * 0xBF58476D1CE4E5B9 + index * 0x94D049BB133111EB + 1) & (2**64 - 1)
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & (2**64 - 1)
    return int((z ^ (z >> 31)) & 0xFFFFFFFF) or 1


# -- the whole task ---------------------------------------------------------------------------

@dataclass
class RbmReport:
    mapping_summary: str
    stochastic: StochasticCalibration
    chip: dict                        # corruption -> RecoveryResult on the chip
    software: dict                    # corruption -> RecoveryResult of the software sampler
    seconds_programming: float
    seconds_calibration: float
    unconverged_cells: int
    programmed_cells: int
    cores: list

    def table(self) -> str:
        lines = [self.mapping_summary, self.stochastic.summary(),
                 f"programming: {self.programmed_cells:,} cells, {self.unconverged_cells} unconverged, "
                 f"{self.seconds_programming:.1f} s; calibration {self.seconds_calibration:.1f} s",
                 f"{'corruption':<11}{'images':>7}{'before':>9}{'software':>10}{'(cut)':>8}{'chip':>9}{'(cut)':>8}{'chip s':>8}"]
        for k, c in self.chip.items():
            s = self.software[k]
            lines.append(f"{k:<11}{c.images:>7}{c.error_before:>9.3f}{s.error_after:>10.3f}{100 * s.reduction:>7.1f}%"
                         f"{c.error_after:>9.3f}{100 * c.reduction:>7.1f}%{c.seconds:>8.1f}")
        lines.append("error: mean L2 distance to the clean image over the images (pixels in [0, 1]); "
                     "cut: 1 - after/before")
        return "\n".join(lines)

    def to_json(self) -> dict:
        out = {"cores": self.cores, "unconverged_cells": self.unconverged_cells,
               "programmed_cells": self.programmed_cells, "noise_uV": self.stochastic.noise_uV,
               "sigmoid_slope": self.stochastic.slope_after}
        for k in self.chip:
            c, s = self.chip[k], self.software[k]
            out[k] = {"images": c.images, "error_before": c.error_before,
                      "chip_errors": [float(e) for e in c.errors], "software_errors": [float(e) for e in s.errors],
                      "chip_reduction": c.reduction, "software_reduction": s.reduction, "chip_seconds": c.seconds}
        return out


def run_rbm(W, b, a, chip: Chip, x_uint8: np.ndarray, labels: np.ndarray, *, x_cal_uint8=None, y_cal=None,
            corruptions=CORRUPTIONS, steps: int = 10, seed: int = 0, batch: int = 500, progress: bool = True,
            percentile: float = 100.0, workers: int = 1, calibration_repeats: int = 4,
            calibration_corrections: int = 2) -> RbmReport:
    """Recover corrupted images with any RBM on a chip: map W (visible x hidden), b (visible) and a
    (hidden) onto the chip, program, calibrate (on ``x_cal_uint8``, default the first 256 of the
    images), then run :meth:`ChipGibbs.recover` and, on the same corrupted images,
    :func:`gibbs_software` for each corruption. The RBM's visible units must be 784 pixels
    (28 x 28, row-major) followed by 10 one-hot label units."""
    rbm = RBM(W, b, a)
    if rbm.visible != PIXELS + LABELS:
        raise ValueError(f"the RBM has {rbm.visible} visible units; image recovery needs {PIXELS + LABELS} "
                         f"(784 pixels, then 10 label units)")
    x = np.asarray(x_uint8).reshape(len(x_uint8), -1).astype(np.float64) / 255.0
    if x_cal_uint8 is None:
        x_cal_uint8, y_cal = x_uint8[:256], labels[:256]
    m = map_rbm(rbm, chip.config, percentile=percentile)
    t0 = time.perf_counter()
    program_rbm(chip, m, progress=progress)
    t_prog = time.perf_counter() - t0
    t0 = time.perf_counter()
    stoch = calibrate_rbm(chip, m, with_labels(x_cal_uint8, y_cal), seed=seed, repeats=calibration_repeats,
                          corrections=calibration_corrections, progress=progress)
    t_cal = time.perf_counter() - t0
    sampler = ChipGibbs(chip, m)
    chip_res, sw_res = {}, {}
    for i, kind in enumerate(corruptions):
        corrupted = corrupt(x, kind, np.random.default_rng([seed, 1, i]))
        chip_res[kind] = sampler.recover(x, labels, kind, steps=steps, seed=seed, corrupted=corrupted,
                                         batch=batch, progress=progress, workers=workers)
        sw_res[kind] = gibbs_software(rbm, x, labels, kind, steps=steps, seed=seed, corrupted=corrupted)
    return RbmReport(m.summary(), stoch, chip_res, sw_res, t_prog, t_cal, m.unconverged_cells,
                     m.programmed_cells, m.cores)


# -- neurram run rbm --------------------------------------------------------------------------

def add_run_arguments(p) -> None:
    p.add_argument("--data-dir", help="folder with mnist.npz or the MNIST idx files "
                                      "(default: $NEURRAM_DATA_DIR, ../shared/datasets, ~/.cache/neurram)")
    p.add_argument("--weights", help="an RBM file: arrays W (visible x hidden), b (visible), a (hidden); "
                                     "default: the committed firmware/weights/rbm.npz")
    p.add_argument("--steps", type=int, default=10, help="Gibbs steps (default 10)")
    p.add_argument("--corruption", choices=CORRUPTIONS + ("both",), default="both",
                   help="20 %% of the pixels flipped (random), rows 18-27 grey (occlude), or both (default)")
    p.add_argument("--demo", action="store_true", help="use the 500 embedded test images instead of MNIST "
                                                       "(calibration on the last 256 of them)")


def run_cli(args, chip: Chip) -> dict:
    from ..datasets import load_mnist, load_mnist_demo_subset

    rbm = load_rbm(args.weights)
    if args.steps < 1:
        raise ValueError(f"--steps {args.steps}: give at least 1 Gibbs step")
    if args.demo:
        x, y = load_mnist_demo_subset()[:2]
        x_cal, y_cal = x[-256:], y[-256:]          # calibration: the last 256 embedded images
    else:
        x, y = load_mnist(args.data_dir, split="test")
        x_cal, y_cal = load_mnist(args.data_dir, split="train")
        x_cal, y_cal = x_cal[:256], y_cal[:256]
    if args.limit:
        x, y = x[:args.limit], y[:args.limit]
    kinds = CORRUPTIONS if args.corruption == "both" else (args.corruption,)
    report = run_rbm(rbm.W, rbm.b, rbm.a, chip, x, y, x_cal_uint8=x_cal, y_cal=y_cal, corruptions=kinds,
                     steps=args.steps, seed=args.seed, progress=not args.quiet, workers=args.workers)
    print(report.table())
    return report.to_json()


# -- pictures (neurram figures) ---------------------------------------------------------------

def rbm_figures(out_dir, chip: Chip, *, images: int = 40, seed: int = 0, data_dir=None, steps: int = 10,
                progress: bool = False) -> dict:
    """Recover ``images`` test images (MNIST from ``data_dir``, else the embedded subset) with the
    committed RBM on ``chip`` (7 cores of 256 x 256) and in software, and write ``rbm_random.png`` and ``rbm_occlude.png``
    (rows: corrupted, recovered on the chip, recovered in software, clean; 10 images) and
    ``rbm_error_steps.png`` (mean L2 error against the Gibbs step). Needs matplotlib for the
    files (without it only the numbers are returned: ``{corruption: {"chip": errors,
    "software": errors, "before": error}}``)."""
    from neurram.firmware.datasets import load_mnist, load_mnist_demo_subset
    try:
        x, y = load_mnist(data_dir, split="test")
    except Exception:
        x, y = load_mnist_demo_subset()[:2]
    x, y = x[:images], y[:images]
    rbm = load_rbm()
    rep = run_rbm(rbm.W, rbm.b, rbm.a, chip, x, y, x_cal_uint8=x[:min(64, len(x))], y_cal=y[:min(64, len(y))],
                  steps=steps, seed=seed, progress=progress, calibration_repeats=4)
    out = {k: {"chip": rep.chip[k].errors, "software": rep.software[k].errors, "before": rep.chip[k].error_before}
           for k in rep.chip}
    plt = _plt()
    if plt is None or out_dir is None:
        return out
    out_dir = Path(out_dir)
    clean = x.reshape(len(x), -1) / 255.0
    for kind in rep.chip:
        c, s = rep.chip[kind], rep.software[kind]
        rows = [("corrupted", c.corrupted), ("chip", c.recovered), ("software", s.recovered), ("clean", clean)]
        n = min(10, len(x))
        fig, axes = plt.subplots(len(rows), n, figsize=(n * 0.9, len(rows) * 0.95))
        axes = np.atleast_2d(axes)
        for r, (name, imgs) in enumerate(rows):
            for i in range(n):
                ax = axes[r, i]
                ax.imshow(imgs[i].reshape(28, 28), cmap="gray", vmin=0, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
            axes[r, 0].set_ylabel(name, fontsize=8)
        fig.suptitle(f"RBM recovery, {kind}: error {c.error_before:.2f} -> chip {c.error_after:.2f}, "
                     f"software {s.error_after:.2f} ({len(x)} images)", fontsize=9)
        fig.tight_layout()
        fig.savefig(out_dir / f"rbm_{kind}.png", dpi=120)
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, d in out.items():
        t = np.arange(len(d["chip"]) + 1)
        line, = ax.plot(t, np.r_[d["before"], d["chip"]], "o-", label=f"{kind}, chip")
        ax.plot(t, np.r_[d["before"], d["software"]], "s--", color=line.get_color(), label=f"{kind}, software")
    ax.set_xlabel("Gibbs step")
    ax.set_ylabel("mean L2 error to the clean image")
    ax.set_title(f"RBM image recovery ({len(x)} images)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "rbm_error_steps.png", dpi=120)
    plt.close(fig)
    return out


_plt = optional_pyplot
