"""``neurram sweep``: the grid, the model's noise_scale option, and a tiny sweep on a two-worker
Dask cluster (skipped when Dask is not installed: pip install -e .[sweep])."""

import csv
import dataclasses
import json
import sys

import numpy as np
import pytest

from neurram.cli import main
from neurram.models.core import AnalogParams
from neurram.models.neuron import NeuronParams
from neurram.spec.mvm import MvmSettings
from neurram.sweep import Grid, run_point, target_string, write_results
from neurram.targets import DEVICE_NOISE_FIELDS, NEURON_NOISE_FIELDS, open_chip, scale_noise

SMALL = "model:cores=1x1,rows=32,cols=32"


# -- the noise_scale target option ---------------------------------------------------------------

def test_noise_scale_zero_is_noise_off_and_one_the_default():
    default = AnalogParams()
    assert scale_noise(default, 1) is default
    zero = scale_noise(default, 0)
    assert zero.neuron == NeuronParams.ideal()
    assert zero.driver_mismatch_sigma == AnalogParams.ideal().driver_mismatch_sigma == 0
    assert zero.crossbar.read_noise is False and zero.crossbar.wire == default.crossbar.wire  # IR drop stays
    assert zero.device.ideal is True
    assert all(getattr(zero.device, f) == 0 for f in DEVICE_NOISE_FIELDS)
    two = scale_noise(default, 2)
    dev = default.device_params()
    for f in DEVICE_NOISE_FIELDS:
        assert getattr(two.device, f) == 2 * getattr(dev, f), f
    for f in NEURON_NOISE_FIELDS:
        assert getattr(two.neuron, f) == 2 * getattr(default.neuron, f), f
    assert two.neuron.packet_neg_gain == pytest.approx(1 - 2 * (1 - default.neuron.packet_neg_gain))
    assert two.driver_mismatch_sigma == 2 * default.driver_mismatch_sigma and not two.device.ideal


def _program_and_run(chip):
    target = np.random.default_rng(0).uniform(2, 38, (32, 32))
    chip.enable_cores([0])
    chip.program(0, target)
    pol = np.zeros(32, bool)
    pol[1::2] = True
    chip.set_polarity(0, pol)
    codes = np.random.default_rng(1).integers(0, 8, (16, 32))
    return chip.mvm(0, codes, MvmSettings(input_bits=3)), chip.link.chip.cores[0].model.device.g_uS.copy()


def test_noise_scale_zero_chip_equals_the_noise_off_chip_with_the_same_wires():
    ideal_same_wires = dataclasses.replace(
        AnalogParams.ideal(), crossbar=dataclasses.replace(AnalogParams().crossbar, read_noise=False))
    out0, g0 = _program_and_run(open_chip(SMALL + ",noise_scale=0,age=86400,seed=5"))
    out_off, g_off = _program_and_run(open_chip(SMALL + ",age=86400,seed=5", params=ideal_same_wires))
    assert np.array_equal(out0, out_off) and np.array_equal(g0, g_off)
    out2, g2 = _program_and_run(open_chip(SMALL + ",noise_scale=2,seed=5"))
    out1, g1 = _program_and_run(open_chip(SMALL + ",noise_scale=1,seed=5"))
    out_default, g_default = _program_and_run(open_chip(SMALL + ",seed=5"))
    assert np.array_equal(out1, out_default) and np.array_equal(g1, g_default)
    assert not np.array_equal(g2, g1)


@pytest.mark.parametrize("target, words", [
    ("model:noise_scale=abc", ["noise_scale='abc'", "noise_scale"]),
    ("model:noise_scale=-1", ["noise_scale='-1'"]),
    ("model:noise_scale=nan", ["noise_scale='nan'"]),
    ("model:age=soon", ["age='soon'"]),
    ("model:noise_scal=1", ["unknown option 'noise_scal'", "noise_scale"]),
    ("rtl:noise_scale=1", ["unknown option 'noise_scale'", "program"]),
    ("model:noise=off,noise_scale=1", ["contradict"]),
])
def test_bad_target_options_are_one_line_errors(target, words):
    with pytest.raises(ValueError) as e:
        open_chip(target)
    msg = str(e.value)
    assert "\n" not in msg and "noise_scale" in msg       # every message names the valid options
    for w in words:
        assert w in msg


# -- the grid ----------------------------------------------------------------------------------

def test_grid_points_in_order_and_checked():
    g = Grid(seed=[0, 1], noise_scale=[0, 2], age_s=3600, limit=20)
    assert len(g) == 4 and g.swept() == ["seed", "noise_scale"]
    pts = g.points()
    assert [(p["seed"], p["noise_scale"]) for p in pts] == [(0, 0.0), (0, 2.0), (1, 0.0), (1, 2.0)]
    assert all(p["task"] == "mnist" and p["age_s"] == 3600 and p["limit"] == 20 for p in pts)
    assert target_string(pts[1]) == "model:seed=0,noise_scale=2,age=3600"
    assert target_string(dict(pts[1], chip="model:cores=4x4", noise_scale=0.125)) == \
        "model:cores=4x4,seed=0,noise_scale=0.125,age=3600"
    for kw, word in ((dict(sed=[1]), "parameters are task"), (dict(task="cifar"), "tasks are mnist"),
                     (dict(seed=[1.5]), "seed"), (dict(noise_scale=[-1]), "noise_scale"),
                     (dict(limit=[0]), "limit"), (dict(chip="model:seed=3"), "from the grid"),
                     (dict(chip="rtl"), "model target"), (dict(age_s=[]), "no values")):
        with pytest.raises(ValueError, match=word):
            Grid(**kw)


def test_missing_dask_names_the_fix(monkeypatch):
    from neurram import sweep
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    with pytest.raises(RuntimeError, match=r"pip install -e \.\[sweep\]"):
        sweep.run_sweep(Grid(limit=1))


def test_sweep_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["sweep", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for option in ("--task", "--seeds", "--noise-scale", "--age", "--limit", "--scheduler", "--workers", "--out"):
        assert option in out


# -- a tiny sweep on a two-worker local cluster ------------------------------------------------

_TIMING = ("seconds", "images_per_s")


def test_sweep_on_a_local_cluster(tmp_path, capsys):
    pytest.importorskip("dask.distributed", reason="Dask distributed is not installed: pip install -e .[sweep]")
    from neurram.sweep import run_sweep

    grid = Grid(seed=[0, 1], noise_scale=[0, 2], limit=20)
    results = run_sweep(grid, n_workers=2, progress=True)
    assert "4/4 points" in capsys.readouterr().err

    # Grid order, the right parameters and sane results.
    assert [(r["seed"], r["noise_scale"]) for r in results] == [(0, 0.0), (0, 2.0), (1, 0.0), (1, 2.0)]
    for r, p in zip(results, grid.points()):
        assert {k: r[k] for k in p} == p
        assert r["images"] == 20 and 0.5 <= r["accuracy"] <= 1 and r["software_accuracy"] > 0.5
        assert r["seconds"] > 0 and r["images_per_s"] > 0 and r["target"] == target_string(p)

    # Determinism: the same point in this process gives the same numbers as on a worker.
    local = run_point(grid.points()[1])
    assert {k: v for k, v in local.items() if k not in _TIMING} == \
        {k: v for k, v in results[1].items() if k not in _TIMING}

    # noise_scale changes the result (programming error and the neurons' conversions) for the same seed.
    for seed in (0, 1):
        quiet, noisy = (r for r in results if r["seed"] == seed)
        assert quiet["unconverged_cells"] == 0 < noisy["unconverged_cells"]
        assert quiet["events_compare"] != noisy["events_compare"]

    # One row per point in the CSV and the JSON.
    paths = write_results(results, tmp_path / "sub" / "sweep")
    with open(tmp_path / "sub" / "sweep.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and [int(r["seed"]) for r in rows] == [0, 0, 1, 1]
    assert float(rows[1]["noise_scale"]) == 2 and float(rows[1]["accuracy"]) == results[1]["accuracy"]
    assert json.loads((tmp_path / "sub" / "sweep.json").read_text()) == results
    png = tmp_path / "sub" / "sweep.png"
    assert (png in paths and png.stat().st_size > 0) or "pip install -e .[plot]" in capsys.readouterr().err
