"""cocotb tests of the chip level: parallel cores, broadcast, power gating (tests/test_cosim_chip.py).

Every read is compared with a FastChip driven with the same writes (cocotb_conformance.Both).
"""

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles

from neurram.spec import layout
from neurram.spec import regmap as R
from neurram.spec.enums import Conversion
from neurram.models.core import AnalogParams
from neurram.sim.cosim.harness import ChipHarness
from neurram.sim.fastmodel import FastChip

from cocotb_conformance import Both


async def _setup(dut, cores):
    params = AnalogParams()
    h = ChipHarness(dut, params=params, seed=9)
    await h.start()
    fast = FastChip(h.config, params=params, seed=9)
    both = Both(h, fast)
    cfg = h.config
    rng = np.random.default_rng(5)
    pol = np.zeros(cfg.lines, bool)
    pol[1::2] = True
    for i in cores:
        g = rng.uniform(0, 40, (cfg.rows, cfg.cols))
        h.models[i].set_conductance(g)
        fast.cores[i].model.set_conductance(g)
        await both.write_buffer(R.Space.POLARITY, i, layout.bits_to_words(pol, cfg.words_per_line_vector))
        await both.write_reg("CORE_NEURON", R.pack("CORE_NEURON", packet_uV=200), i)
    await both.write_reg("MVM_CONFIG", R.pack("MVM_CONFIG", input_bits=3, conversion=Conversion.DECREMENT))
    return h, fast, both, rng


def _sel(cores):
    bits = sum(1 << c for c in cores)
    return bits & 0xFFFFFFFF, bits >> 32


async def _select(both, name, cores):
    lo, hi = _sel(cores)
    await both.write_reg(name, lo, 0)
    if both.h.config.n_cores > 32:
        await both.write_reg(name, hi, 1)


@cocotb.test()
async def parallel_cores_and_broadcast(dut):
    """Model-parallel cores with their own inputs, data-parallel cores sharing a broadcast input,
    all on one trigger; the batch takes about as long as one core's share."""
    cfg_cores = ChipHarness(dut).config.n_cores
    cores = sorted({0, 1, cfg_cores // 2, cfg_cores - 1} if cfg_cores > 4 else {0, 1, cfg_cores - 1})
    h, fast, both, rng = await _setup(dut, cores)
    cfg = h.config
    batch = 4
    await _select(both, "CORE_ENABLE", cores)
    await both.write_reg("BATCH", R.pack("BATCH", count=batch))
    own, shared = cores[:-2], cores[-2:]
    for c in own:                       # model-parallel: each core its own segment of inputs
        codes = rng.integers(0, 8, (batch, cfg.lines))
        await both.write_buffer(R.Space.INPUT, c, layout.input_words(codes, cfg, False))
    await _select(both, "CORE_SELECT", shared)     # data-parallel: one broadcast write, two cores
    codes = rng.integers(0, 8, (batch, cfg.lines))
    await both.write_buffer(R.Space.INPUT, R.BROADCAST_CORE, layout.input_words(codes, cfg, False))
    await _select(both, "CORE_SELECT", cores)
    t0 = cocotb.utils.get_sim_time("ns")
    await both.start_and_wait()
    elapsed_cycles = (cocotb.utils.get_sim_time("ns") - t0) / 10
    n = batch * 8 * cfg.words_per_line_vector
    outs = {}
    for c in cores:
        outs[c] = await both.read_buffer(R.Space.OUTPUT, c, n)
        await both.read(R.REGISTERS["COUNT_BUSY"].address(c))
        await both.read(R.REGISTERS["COUNT_MVM"].address(c))
    # The broadcast reached both data-parallel cores (same inputs, different arrays).
    a = await both.read_buffer(R.Space.INPUT, shared[0], cfg.batch_depth * cfg.input_planes * cfg.words_per_line_vector)
    b = await both.read_buffer(R.Space.INPUT, shared[1], cfg.batch_depth * cfg.input_planes * cfg.words_per_line_vector)
    assert np.array_equal(a, b)
    assert not np.array_equal(outs[shared[0]], outs[shared[1]])
    # Parallel: the whole batch took about the longest core's busy time, not the sum.
    busy = [await h.read_reg("COUNT_BUSY", c) for c in cores]
    assert elapsed_cycles < 0.6 * sum(busy), (elapsed_cycles, busy)
    # Cores that were not selected did nothing.
    idle = next(i for i in range(cfg.n_cores) if i not in cores)
    assert await both.read(R.REGISTERS["COUNT_MVM"].address(idle)) == 0


@cocotb.test()
async def power_gating_keeps_state_and_resumes(dut):
    """Disabling a core mid-batch freezes it (no events, state kept); enabling it resumes."""
    h, fast, both, rng = await _setup(dut, [0, 1])
    cfg = h.config
    batch = cfg.batch_depth
    await _select(both, "CORE_ENABLE", [0, 1])
    await _select(both, "CORE_SELECT", [0, 1])
    await both.write_reg("BATCH", R.pack("BATCH", count=batch))
    for c in (0, 1):
        codes = rng.integers(0, 8, (batch, cfg.lines))
        await both.write_buffer(R.Space.INPUT, c, layout.input_words(codes, cfg, False))
    await both.write_reg("CTRL", R.pack("CTRL", start=1))
    await ClockCycles(dut.clk, 600)
    await h.write_reg("CORE_ENABLE", 1)               # core 1 power-gated mid-batch (RTL only)
    frozen = [await h.read_reg(name, 1) for name in ("COUNT_MVM", "COUNT_PULSE", "COUNT_STEP", "COUNT_BUSY")]
    status = R.unpack("CORE_STATUS", await h.read_reg("CORE_STATUS", 1))
    assert status["busy"] == 1 and status["enabled"] == 0
    await ClockCycles(dut.clk, 3000)
    again = [await h.read_reg(name, 1) for name in ("COUNT_MVM", "COUNT_PULSE", "COUNT_STEP", "COUNT_BUSY")]
    assert again == frozen, (frozen, again)          # no events while gated
    assert frozen[0] < batch                          # it stopped part-way
    await h.write_reg("CORE_ENABLE", 3)               # power up again: it resumes
    await h.wait_idle(poll_cycles=64)
    n = batch * 8 * cfg.words_per_line_vector
    for c in (0, 1):
        await both.read_buffer(R.Space.OUTPUT, c, n)  # equal to the uninterrupted fast model
        await both.read(R.REGISTERS["COUNT_MVM"].address(c))
