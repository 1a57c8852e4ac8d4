"""Conformance between the fast chip model and the RTL co-simulation (docs/architecture.md, contract 6)."""

import pytest

from neurram.config import ChipConfig

from .conftest import run_cocotb

pytestmark = pytest.mark.cosim


def test_fast_model_matches_rtl(cosim_build, tmp_path):
    assert run_cocotb(cosim_build(ChipConfig.small()), "cocotb_conformance", tmp_path) == 3
