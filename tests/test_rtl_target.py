"""The RTL target end to end: a network mapped, programmed, calibrated and run on the generated
Verilog over the byte protocol gives the same logits as the fast model, programmed cell by cell
through the protocol (the default) and through the test-access shortcut (README, "Test access")."""

import numpy as np
import pytest

from neurram.config import ChipConfig
from neurram.firmware.mapper import map_network
from neurram.firmware.runtime import Runtime
from neurram.targets import open_chip

from .test_mapper import small_net

pytestmark = pytest.mark.cosim


def _run(target, config, net, x):
    chip = open_chip(target, config=config)
    try:
        rt = Runtime(chip, map_network(net, chip.config, x_cal=x))
        rt.program(progress=False)
        rt.calibrate(x[:4], max_vectors=48)
        return rt.forward(x, progress=False), chip.counters(0)
    finally:
        transport = getattr(chip.link, "transport", None)
        if transport is not None:
            transport.close()


def test_rtl_and_fast_model_give_the_same_logits():
    rng = np.random.default_rng(4)
    net = small_net(rng, n_in=48, hidden=12, n_out=4)
    x = rng.integers(0, 256, (3, 6, 8)).astype(np.uint8)
    config = ChipConfig(core_grid=(1, 3), rows=64, cols=64)
    fast, fast_counts = _run("model", config, net, x)
    events = ("mvm", "pulse", "compare", "step", "busy")
    # Default: write-verify by the Verilog's engine over the byte protocol, every cell pulse and
    # read on the Verilog; the same pulses and reads as the fast model's engine.
    rtl, rtl_counts = _run("rtl", config, net, x)
    assert np.array_equal(rtl.logits, fast.logits)
    assert rtl_counts == fast_counts
    assert rtl_counts["mvm"] > 0 and rtl_counts["program"] > 0 and rtl_counts["read"] > 0
    # Test access: the cells are loaded by the simulator; no program/read events on the RTL.
    loaded, loaded_counts = _run("rtl:program=test-access", config, net, x)
    assert np.array_equal(loaded.logits, fast.logits)
    assert {k: loaded_counts[k] for k in events} == {k: fast_counts[k] for k in events}
    assert loaded_counts["program"] == 0 < fast_counts["program"]
