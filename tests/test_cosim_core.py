"""Co-simulation of one core: the generated Verilog under Verilator, the analog array in Python."""

import pytest

from neurram.config import ChipConfig

from .conftest import run_cocotb

pytestmark = pytest.mark.cosim


def test_core_16x16(cosim_build, tmp_path):
    """Registers, sequencer pulse counts, exact forward/backward MVMs, decrement, cell access."""
    assert run_cocotb(cosim_build(ChipConfig.small()), "cocotb_core", tmp_path) == 5
