"""cocotb test of a full-size 256 x 256 core (run by tests/test_cosim_core.py)."""

import cocotb
import numpy as np

from neurram.spec import layout
from neurram.spec import regmap as R
from neurram.spec.enums import Direction
from neurram.sim.cosim.harness import ChipHarness

from cocotb_core import packet_for, reference, run_mvm_batch


@cocotb.test()
async def full_size_mvm(dut):
    """A 4-bit forward MVM on a 256 x 256 core equals the model's noise-free expectation."""
    h = ChipHarness(dut)
    await h.start()
    cfg = h.config
    assert (cfg.rows, cfg.cols) == (256, 256)
    rng = np.random.default_rng(7)
    g = rng.uniform(0.0, 40.0, (cfg.rows, cfg.cols))
    h.models[0].set_conductance(g)
    polarity = np.zeros(cfg.lines, bool)
    polarity[1::2] = True
    await h.write_buffer(R.Space.POLARITY, 0, 0, layout.bits_to_words(polarity, cfg.words_per_line_vector))
    codes = rng.integers(0, 16, (2, cfg.rows))
    packet = packet_for(h, g, codes, bits=4, signed=False, direction=Direction.FORWARD, polarity=polarity)
    await h.write_reg("CORE_NEURON", R.pack("CORE_NEURON", packet_uV=packet))
    got = await run_mvm_batch(h, codes, bits=4)
    exp = reference(h, g, codes, bits=4, packet=packet, polarity=polarity)
    assert np.array_equal(got, exp.outputs)
    steps = exp.outputs & 0x7F
    assert steps.max() > 20 and len(np.unique(exp.outputs)) > 30
