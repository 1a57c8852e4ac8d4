"""Figures people look at (``neurram figures``): written as PNG files (matplotlib, optional).

* ``conductance.png``  histograms of one core's conductances at target, after write-verify, and
                       after relaxation (1 s, 1 day)
* ``mvm_vs_ideal.png`` chip MVM outputs against the ideal MVM, before and after calibration
* ``residual_bits.png`` residual MVM error after calibration against the input precision, per
                       column as the chip measured it, with the chip's published band (3-bit inputs)
* ``noise_accuracy.png`` MNIST CNN accuracy against inference weight-noise strength k (software
                       model with noise injected, as in docs/analog-model.md), with the chip's points
* ``rbm_random.png``, ``rbm_occlude.png``, ``rbm_error_steps.png`` RBM image recovery on the chip
                       and in software: corrupted, recovered and clean images; error per Gibbs step
                       (docs/rbm.md)

Each function returns the numbers it plotted, so tests and reports can use them without a plot.
"""

import time
from pathlib import Path

import numpy as np

from neurram.config import ChipConfig
from neurram.firmware import nn
from neurram.firmware.calibration import CHIP_MEASUREMENT_AGE_S, CHIP_RESIDUAL_PER_COLUMN, calibrate_random_core
from neurram.firmware.datasets import load_mnist, load_mnist_demo_subset
from neurram.firmware.runtime import optional_pyplot
from neurram.firmware.tasks.mnist import load_default_network
from neurram.firmware.tasks.rbm import rbm_figures
from neurram.firmware.writeverify import WriteVerifyConfig, write_verify
from neurram.models.device import RRAMArray, RRAMParams, layer_targets
from neurram.targets import open_chip

__all__ = ["conductance_figure", "mvm_figure", "noise_accuracy_figure", "residual_bits_figure", "write_all"]


_plt = optional_pyplot


def conductance_figure(path=None, *, seed: int = 0, relax_s=(1.0, 86400.0)) -> dict:
    """Program a core's worth of layer-like targets, then let them relax; histogram each stage."""
    chip = open_chip("model", config=ChipConfig(core_grid=(1, 1), rows=128, cols=128), seed=seed)
    chip.enable_cores([0])
    target = layer_targets(128, 128, seed=seed)
    report = chip.program(0, target)
    model = chip.link.chip.cores[0].model                     # the model's true conductances
    stages = {"target": target.copy(), "after write-verify": model.device.g_uS.copy()}
    elapsed = 0.0
    for t in relax_s:
        model.relax(t - elapsed)
        elapsed = t
        stages[f"after relaxation, {t:g} s"] = model.device.g_uS.copy()
    on = target > 1.0
    spread = {k: float(np.std((v - target)[on])) for k, v in stages.items() if k != "target"}
    plt = _plt()
    if path is not None and plt is not None:
        fig, ax = plt.subplots(figsize=(7, 4))
        bins = np.linspace(0, 45, 91)
        for k, v in stages.items():
            ax.hist(v[on].ravel(), bins=bins, histtype="step", label=k)
        ax.set_xlabel("conductance (µS)")
        ax.set_ylabel("cells")
        ax.set_title(f"128 x 128 core, write-verify ±1 µS; unconverged {report.unconverged_fraction:.2%}")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return {"spread_uS": spread, "unconverged_fraction": report.unconverged_fraction}


def mvm_figure(path=None, *, seed: int = 0) -> dict:
    """Chip MVM outputs against the ideal, before and after calibration (3-bit inputs)."""
    out = _mvm_scatter(seed)
    plt = _plt()
    if path is not None and plt is not None:
        fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharex=True, sharey=True)
        for ax, key, title in ((axes[0], "before", "before calibration"), (axes[1], "after", "after calibration")):
            y_ideal, y_chip = out["ideal"], out[key]
            ax.plot(y_ideal.ravel(), y_chip.ravel(), ".", ms=1, alpha=0.3)
            lim = [y_ideal.min(), y_ideal.max()]
            ax.plot(lim, lim, "k--", lw=0.8)
            ax.set_title(f"{title}: error {out['error_' + key]:.3f} σ")
            ax.set_xlabel("ideal MVM output")
        axes[0].set_ylabel("chip MVM output")
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return {"error_before": out["error_before"], "error_after": out["error_after"]}


def _mvm_scatter(seed: int, n: int = 128, vectors: int = 512, bits: int = 3) -> dict:
    """A core of random differential weights, calibrated (firmware.calibration): outputs before/after."""
    chip = open_chip("model", config=ChipConfig(core_grid=(1, 1), rows=n, cols=n), seed=seed)
    return calibrate_random_core(chip, 0, np.random.default_rng(seed), bits=bits, vectors=vectors)


def residual_bits_figure(path=None, *, bits=(1, 2, 3, 4, 5, 6), seed: int = 0, n: int = 256,
                         vectors: int = 1024, age_s: float = CHIP_MEASUREMENT_AGE_S) -> dict:
    """Residual MVM error after calibration against the input precision: one ``n x n`` core of
    random differential weights per precision (same seed), ``age_s`` after programming, calibrated
    and measured on held-out vectors (:func:`calibrate_random_core`). Returns per precision the
    error per column (the chip's measure) and over all outputs."""
    per_col, overall = {}, {}
    for b in bits:
        chip = open_chip(f"model:age={age_s:g}", config=ChipConfig(core_grid=(1, 1), rows=n, cols=n), seed=seed)
        r = calibrate_random_core(chip, 0, np.random.default_rng(seed), bits=b, vectors=vectors)
        per_col[int(b)], overall[int(b)] = r["error_after_per_column"], r["error_after"]
    plt = _plt()
    if path is not None and plt is not None:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(list(per_col), list(per_col.values()), "o-", label="model, per column (the chip's measure)")
        ax.plot(list(overall), list(overall.values()), "s--", label="model, over all outputs")
        lo, hi = CHIP_RESIDUAL_PER_COLUMN
        ax.errorbar([3], [(lo + hi) / 2], yerr=[[(hi - lo) / 2]], fmt="none", ecolor="k", capsize=5,
                    label="chip (Wan et al. 2022), 3-bit inputs")
        ax.set_xlabel("input bits")
        ax.set_ylabel("residual error / std(ideal)")
        ax.set_title(f"calibrated residual, {n} x {n} core, {age_s:g} s after programming")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return {"per_column": per_col, "overall": overall, "age_s": age_s}


def noise_accuracy_figure(path=None, *, images: int = 2000, ks=(0.0, 0.05, 0.1, 0.15, 0.2, 0.3),
                          seeds: int = 2, chip_points: dict | None = None, data_dir=None) -> dict:
    """MNIST CNN accuracy against inference weight-noise k = σ / max|W| (software model)."""

    net = load_default_network()
    try:
        x, y = load_mnist(data_dir, split="test")
        x, y = x[:images], y[:images]
    except Exception:
        x, y, _ = load_mnist_demo_subset()
    acc = {}
    for k in ks:
        vals = [nn.accuracy(net, x, y, weight_noise_k=k, rng=np.random.default_rng(s)) for s in range(seeds if k else 1)]
        acc[float(k)] = (float(np.mean(vals)), float(np.std(vals)))
    plt = _plt()
    if path is not None and plt is not None:
        fig, ax = plt.subplots(figsize=(6, 4))
        k_arr = np.array(list(acc))
        m = np.array([v[0] for v in acc.values()]) * 100
        e = np.array([v[1] for v in acc.values()]) * 100
        ax.errorbar(k_arr, m, yerr=e, marker="o", label=f"software model + weight noise ({len(x)} images)")
        for label, (k, a) in (chip_points or {}).items():
            ax.plot([k], [100 * a], "s", label=label)
        ax.set_xlabel("inference weight noise k (σ = k · max|W|)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title("MNIST CNN trained with k = 0.15")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return {"accuracy": acc, "images": len(x)}


def write_all(out_dir, **kw) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {
        "conductance": conductance_figure(out / "conductance.png"),
        "mvm": mvm_figure(out / "mvm_vs_ideal.png"),
        "residual_bits": residual_bits_figure(out / "residual_bits.png"),
        "noise_accuracy": noise_accuracy_figure(out / "noise_accuracy.png", **kw),
        # rbm_random.png, rbm_occlude.png, rbm_error_steps.png (docs/rbm.md)
        "rbm": rbm_figures(out, open_chip("model", seed=0), data_dir=kw.get("data_dir")),
    }


def device_array_statistics(rows: int = 256, cols: int = 256, *, seed: int = 0, params=None) -> dict:
    """Write-verify a fresh ``rows x cols`` array of the RRAM device model
    (:class:`neurram.models.device.RRAMArray`, this ``seed``, ``params`` default
    ``RRAMParams()``) to layer-like targets (:func:`neurram.models.device.layer_targets`, same
    seed) in one pass with the default write-verify configuration: the measurement of
    ``neurram device``.

    Returns ``{"report", "array", "targets", "seconds", "true_error_uS"}``: the
    write-verify report, the array after programming, the targets (µS), the wall time of
    the pass and |true G - target| (µS) of the converged cells."""

    params = RRAMParams() if params is None else params
    arr = RRAMArray(rows, cols, params, seed=seed)
    tgt = layer_targets(rows, cols, params.g_max_uS, seed=seed)
    rr, cc = np.indices(tgt.shape)
    t0 = time.perf_counter()
    rep = write_verify(arr.cell_access(), rr, cc, tgt)
    seconds = time.perf_counter() - t0
    true_err = np.abs(arr.g_uS[rr, cc] - tgt)[rep.converged.reshape(tgt.shape)]
    unconverged = ~rep.converged.reshape(tgt.shape)
    stuck = arr.stuck_off | arr.stuck_on
    return {"report": rep, "array": arr, "targets": tgt, "seconds": seconds, "true_error_uS": true_err,
            "stuck_unconverged": int((unconverged & stuck).sum()),
            "working_unconverged": int((unconverged & ~stuck).sum())}


def write_verify_budget_sweep(rows: int = 256, cols: int = 256, *, seed: int = 0, params=None,
                              rounds=(1, 2, 3, 4, 6, 8, 12, 16, 24, 40), top_pulses: int | None = None) -> list:
    """The write-verify budget against its result: one fresh array (this seed) per budget, the
    same layer-like targets, ``max_rounds`` = each of ``rounds`` (and ``max_pulses_per_round`` =
    ``top_pulses`` when given). Per budget: unconverged cells split into working and stuck cells,
    the mean and 99th percentile of pulses per cell, and the RMS |true G - target| of the
    converged cells (µS)."""
    params = RRAMParams() if params is None else params
    tgt = layer_targets(rows, cols, params.g_max_uS, seed=seed)
    rr, cc = np.indices(tgt.shape)
    out = []
    for n in rounds:
        kw = {"max_rounds": int(n)}
        if top_pulses is not None:
            kw["max_pulses_per_round"] = int(top_pulses)
        arr = RRAMArray(rows, cols, params, seed=seed)
        rep = write_verify(arr.cell_access(), rr, cc, tgt, WriteVerifyConfig(**kw))
        conv = rep.converged.reshape(tgt.shape)
        stuck = arr.stuck_off | arr.stuck_on
        err = (arr.g_uS - tgt)[conv]
        out.append({"max_rounds": int(n), "cells": int(tgt.size),
                    "working_unconverged": int((~conv & ~stuck).sum()),
                    "stuck_unconverged": int((~conv & stuck).sum()),
                    "pulses_mean": float(rep.pulses.mean()), "pulses_p99": float(np.percentile(rep.pulses, 99)),
                    "rms_error_uS": float(np.sqrt(np.mean(err ** 2))) if err.size else float("nan")})
    return out
