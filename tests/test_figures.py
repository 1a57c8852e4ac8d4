"""The figures' numbers (plots are written when matplotlib is installed)."""

import importlib.util

import pytest

from neurram import figures

HAS_MPL = importlib.util.find_spec("matplotlib") is not None


def test_conductance_spread_grows_with_relaxation(tmp_path):
    out = figures.conductance_figure(tmp_path / "c.png" if HAS_MPL else None)
    s = out["spread_uS"]
    assert s["after write-verify"] < s["after relaxation, 1 s"] < s["after relaxation, 86400 s"]
    assert out["unconverged_fraction"] < 0.01
    if HAS_MPL:
        assert (tmp_path / "c.png").stat().st_size > 10_000


def test_mvm_error_falls_with_calibration(tmp_path):
    out = figures.mvm_figure(tmp_path / "m.png" if HAS_MPL else None)
    assert out["error_after"] < 0.75 * out["error_before"]


def test_residual_against_input_bits(tmp_path):
    """The figure's 3-bit point is the chip's measurement: inside its published band per column;
    every precision leaves a residual (the weights' errors do not shrink with more input bits)."""
    from neurram.firmware.calibration import CHIP_RESIDUAL_PER_COLUMN
    out = figures.residual_bits_figure(tmp_path / "r.png" if HAS_MPL else None, bits=(1, 3, 6))
    lo, hi = CHIP_RESIDUAL_PER_COLUMN
    assert lo <= out["per_column"][3] <= hi, out
    assert all(v > 0.1 for v in out["per_column"].values()), out
    assert all(out["overall"][b] < out["per_column"][b] for b in out["overall"]), out
    if HAS_MPL:
        assert (tmp_path / "r.png").stat().st_size > 10_000


def test_accuracy_against_weight_noise():
    out = figures.noise_accuracy_figure(None, images=500, ks=(0.0, 0.15, 0.4), seeds=1)
    acc = {k: v[0] for k, v in out["accuracy"].items()}
    assert acc[0.0] >= 0.98 and acc[0.15] >= 0.97          # trained with k = 0.15: robust there
    assert acc[0.4] < acc[0.0] - 0.05                       # and it does break eventually


@pytest.mark.skipif(not HAS_MPL, reason="matplotlib not installed (pip install 'neurram[plot]')")
def test_cli_figures_writes_pngs(tmp_path, capsys):
    from neurram.cli import main
    assert main(["figures", "--out", str(tmp_path), "--images", "200"]) == 0
    for name in ("conductance.png", "mvm_vs_ideal.png", "residual_bits.png", "noise_accuracy.png"):
        assert (tmp_path / name).stat().st_size > 10_000
    assert "MVM error" in capsys.readouterr().out
