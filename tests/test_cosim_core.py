"""Co-simulation of one core: the generated Verilog under Verilator, the analog array in Python."""

import pytest

from neurram.config import ChipConfig

from .conftest import run_cocotb

pytestmark = pytest.mark.cosim


def test_core_16x16(cosim_build, tmp_path):
    """Registers, sequencer pulse counts, exact forward/backward MVMs, decrement, cell access."""
    assert run_cocotb(cosim_build(ChipConfig.small()), "cocotb_core", tmp_path) == 5


def test_core_256x256(cosim_build, tmp_path):
    """One MVM on a full-size 256 x 256 core."""
    assert run_cocotb(cosim_build(ChipConfig(core_grid=(1, 1))), "cocotb_full_core", tmp_path) == 1
