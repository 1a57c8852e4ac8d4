"""The ``neurram`` command line: the model measurements and training are subcommands, the module
command lines are its subcommands, and pyproject.toml lists every
package folder."""

import ast
import importlib.util
import re
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path

import pytest

from neurram.cli import main

ROOT = Path(__file__).resolve().parent.parent

REPO = Path(__file__).resolve().parents[1]


def _float(pattern: str, text: str) -> float:
    m = re.search(pattern, text)
    assert m, f"{pattern!r} not in output:\n{text}"
    return float(m.group(1))


# -- --help of every subcommand ----------------------------------------------------------------

@pytest.mark.parametrize("argv, options", [
    (["device"], ["--rows", "--cols", "--seeds", "--ideal", "--refit"]),
    (["irdrop"], ["--size", "--vectors", "--seed"]),
    (["calibration"], ["--chip", "--vectors", "--bits", "--mismatch"]),
    (["train", "mnist"], ["--epochs", "--noise-k", "--out", "--data-dir"]),
])
def test_subcommand_help(argv, options, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv + ["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: neurram {' '.join(argv)}")
    for option in options:
        assert option in out


def test_top_level_help_lists_the_subcommands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in ("device", "irdrop", "calibration", "train"):
        assert re.search(rf"^\s+{name}\b", out, re.M), name


def test_train_needs_a_network():
    with pytest.raises(SystemExit) as e:
        main(["train"])
    assert e.value.code == 2


# -- the measurements, on small sizes ----------------------------------------------------------

def test_device_small_array(capsys):
    assert main(["device", "--rows", "32", "--cols", "32", "--seeds", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("== seed ") == 2 and "32 x 32 array" in out
    unconverged = _float(r"unconverged fraction per seed \(%\): .*; mean ([\d.]+) %", out)
    assert 0.0 <= unconverged < 5.0                 # only bad cells fail (about 0.2 % at full size)
    pulses = _float(r"mean ([\d.]+) per cell", out)
    assert 2.0 < pulses < 20.0                      # 7.8 at full size
    error = _float(r"\|true G - target\| mean ([\d.]+) µS", out)
    assert 0.05 < error < 2.0                       # about 0.54 µS (the accept window)


def test_device_ideal_converges_everywhere(capsys):
    assert main(["device", "--rows", "16", "--cols", "16", "--ideal"]) == 0
    out = capsys.readouterr().out
    assert "256 cells, 256 converged, 0 unconverged" in out


@pytest.mark.parametrize("argv", [["device", "--rows", "0"], ["irdrop", "--size", "-1"],
                                  ["calibration", "--vectors", "x"]])
def test_bad_sizes_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert "error" in capsys.readouterr().err


def test_irdrop_small_array(capsys):
    assert main(["irdrop", "--size", "32", "--vectors", "50"]) == 0
    out = capsys.readouterr().out
    for wire in ("defaults (start)", "driver_position=corelet", "r_driver_ohm=0"):
        assert out.count(f"{wire}: eps") == 1
    eps = _float(r"defaults \(start\): eps ([\d.]+)", out)
    assert 0.0 < eps < 1.0
    dk = _float(r"approx max\|dK\|/maxK ([\d.]+) %", out)
    bound = _float(r"stated bound ([\d.]+) %", out)
    assert dk <= bound + 0.01


def test_calibration_small_core(capsys):
    assert main(["calibration", "--chip", "model:cores=1x1,rows=32,cols=32", "--vectors", "64"]) == 0
    out = capsys.readouterr().out
    before = _float(r"before calibration\s+([\d.]+) \|", out)
    after = _float(r"after calibration\s+([\d.]+) \|", out)
    assert 0.0 < after < before < 2.0


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="PyTorch is installed")
@pytest.mark.parametrize("argv", [["train", "mnist", "--epochs", "1"], ["train", "cifar10", "--epochs", "1"]])
def test_train_without_torch_says_how_to_get_it(argv, capsys):
    assert main(argv) == 1
    assert "pip install 'neurram[train]'" in capsys.readouterr().err


def test_run_your_own_network_file(tmp_path, capsys):
    """neurram run model: a network file and a data file of your own, end to end on the chip."""
    import numpy as np

    from neurram.firmware import nn

    rng = np.random.default_rng(0)
    w1 = rng.normal(0, 0.3, (24, 36))
    net = nn.Network({"bits": 3, "scale": 255 / 7, "step": 1 / 7}, [
        {"type": "flatten"},
        {"type": "dense", "name": "hidden", "weight": w1, "bias": np.zeros(24), "act": {"kind": "relu_q", "bits": 3, "clip": 1.0}},
        {"type": "dense", "name": "out", "weight": rng.normal(0, 0.3, (4, 24)), "bias": np.zeros(4), "act": None}])
    x = rng.integers(0, 256, (120, 6, 6), dtype=np.uint8)
    nn.save_network(tmp_path / "net.npz", net)
    np.savez(tmp_path / "data.npz", x=x, y=nn.predict(net, x))
    assert main(["run", "model", "--model", str(tmp_path / "net.npz"), "--data", str(tmp_path / "data.npz"),
                 "--chip", "model:cores=1x2", "--workers", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert _float(r"images\s+(\d+)", out) == 56                   # the first 64 calibrate, the rest are scored
    assert _float(r"software \(same images\)\s+([\d.]+) %", out) == 100.0
    assert _float(r"chip accuracy\s+([\d.]+) %", out) >= 80.0
    assert "energy" in out.lower()
    assert re.search(r"^hidden\s+0\s", out, re.M)                   # the energy table names each layer's cores


# -- packaging ----------------------------------------------------------------------------------

def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")          # Python 3.11+
    with open(ROOT / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)["tool"]["setuptools"]


def _repo_files() -> list[str]:
    """Tracked files and untracked ones git does not ignore (a new folder counts before its commit)."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    return [f for f in out.stdout.splitlines() if (ROOT / f).is_file()]


def test_pyproject_lists_every_package_and_its_data():
    """Every folder of the mapped trees (neurram/, hdl/, models/, sim/, firmware/) that holds a file
    is in ``packages`` (setuptools cannot discover them under the package-dir mapping and would
    silently leave them out of a wheel), and every data file there matches a package-data glob."""
    st = _pyproject()
    dirs = {d.rstrip("/"): pkg for pkg, d in st["package-dir"].items()}
    listed = set(st["packages"])
    globs = st.get("package-data", {})
    missing, unshipped = set(), []
    for f in _repo_files():
        parts = Path(f).parts
        if parts[0] not in dirs:
            continue
        package = ".".join([dirs[parts[0]], *parts[1:-1]])
        if package not in listed:
            missing.add(package)
        elif not f.endswith((".py", ".md")) and not any(fnmatch(parts[-1], g) for g in globs.get(package, [])):
            unshipped.append(f)
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"
    assert not unshipped, f"add to [tool.setuptools.package-data] in pyproject.toml: {unshipped}"
