"""Chip-level co-simulation: parallel cores, broadcast, power gating; small grid and full size."""

import pytest

from neurram.config import ChipConfig

from .conftest import run_cocotb

pytestmark = pytest.mark.cosim


def test_chip_2x2_of_16x16(cosim_build, tmp_path):
    assert run_cocotb(cosim_build(ChipConfig.small(cores=(2, 2))), "cocotb_chip", tmp_path) == 2


def test_full_size_chip_parallel_mvm(cosim_build, tmp_path):
    """The 48-core chip of 256 x 256 cores: a parallel MVM on five enabled cores."""
    assert run_cocotb(cosim_build(ChipConfig()), "cocotb_chip", tmp_path,
                      testcase="parallel_cores_and_broadcast") == 1
