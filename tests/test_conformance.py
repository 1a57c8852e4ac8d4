"""Conformance between the fast chip model and the RTL co-simulation (docs/architecture.md, contract 6)."""

import pytest

from neurram.config import ChipConfig

from .conftest import run_cocotb

pytestmark = pytest.mark.cosim

#: The cocotb tests of tests/cosim/cocotb_conformance.py for the small configuration.
SMALL_TESTS = ["noise_free_every_mode", "with_noise_same_seed", "registers_and_cells"]

#: Full size: two cores of 256 x 256 (each core its own read-noise stream and noise automaton).
FULL_SIZE = ChipConfig(core_grid=(2, 1), rows=256, cols=256)


def test_fast_model_matches_rtl(cosim_build, tmp_path):
    """Every mode, noise off and on, registers and cell access, on one 16 x 16 core."""
    assert run_cocotb(cosim_build(ChipConfig.small()), "cocotb_conformance", tmp_path, testcase=SMALL_TESTS) == 3


def test_full_size_every_mode_noise_on(cosim_build, tmp_path):
    """Every mode with noise on, on two 256 x 256 cores: RTL == fast model, and noise on changes
    the outputs against noise off (and against no fresh read noise)."""
    assert run_cocotb(cosim_build(FULL_SIZE), "cocotb_conformance", tmp_path,
                      testcase="full_size_every_mode_noise_on") == 1
