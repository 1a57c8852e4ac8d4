"""Shared pytest fixtures: co-simulation builds are cached per configuration."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
COSIM_TESTS = Path(__file__).resolve().parent / "cosim"


def shared_path(*parts) -> Path:
    return SHARED.joinpath(*parts)


@pytest.fixture(scope="session")
def cosim_build():
    """Build (or reuse) the Verilator model of a configuration: cosim_build(config)."""
    from neurram.sim.cosim.toolchain import build

    cache = {}

    def get(config):
        if config not in cache:
            cache[config] = build(config)
        return cache[config]

    return get


def run_cocotb(build, module: str, tmp_path, **kw):
    """Run a cocotb test module from tests/cosim against a build; failures fail the test."""
    from neurram.sim.cosim.toolchain import run_tests

    env = dict(kw.pop("env", {}) or {})
    env["PYTHONPATH"] = str(COSIM_TESTS)
    results = run_tests(build, module, test_dir=tmp_path, env=env, **kw)
    from cocotb_tools.check_results import get_results
    total, failed = get_results(results)
    assert total > 0, "no cocotb tests ran"
    assert failed == 0, f"{failed} of {total} cocotb tests failed (see output above)"
    return total
