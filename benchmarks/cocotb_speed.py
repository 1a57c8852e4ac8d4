"""cocotb side of benchmarks/cosim_speed.py: measures, writes JSON to $NEURRAM_BENCH_OUT."""

import json
import os
import time

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, Timer

from neurram.spec import layout
from neurram.spec import regmap as R
from neurram.spec.enums import Conversion
from neurram.sim.cosim.harness import CLOCK_PERIOD_NS, ChipHarness


def _record(**values):
    """Merge ``values`` into the JSON file the benchmark driver reads."""
    path = os.environ["NEURRAM_BENCH_OUT"]
    data = {}
    if os.path.exists(path):
        with open(path) as f:
            data = json.load(f)
    data.update(values)
    with open(path, "w") as f:
        json.dump(data, f, indent=2)


@cocotb.test()
async def idle_clock(dut):
    """Cycles per second of the whole chip with every core idle (clock-gated)."""
    h = ChipHarness(dut)
    await h.start()
    n = int(os.environ.get("NEURRAM_BENCH_CYCLES", "200000"))
    t0 = time.perf_counter()
    await Timer(n * CLOCK_PERIOD_NS, unit="ns")
    dt = time.perf_counter() - t0
    _record(idle_cycles_per_s=n / dt)


@cocotb.test()
async def mvm_rate(dut):
    """MVMs per second on core 0: 4-bit inputs, charge-decrement outputs, batches of depth."""
    h = ChipHarness(dut)
    await h.start()
    cfg = h.config
    rng = np.random.default_rng(0)
    h.models[0].set_conductance(rng.uniform(0, 40, (cfg.rows, cfg.cols)))
    pol = np.zeros(cfg.lines, bool)
    pol[1::2] = True
    await h.write_buffer(R.Space.POLARITY, 0, 0, layout.bits_to_words(pol, cfg.words_per_line_vector))
    batch = cfg.batch_depth
    codes = rng.integers(0, 16, (batch, cfg.lines))
    await h.write_buffer(R.Space.INPUT, 0, 0, layout.input_words(codes, cfg, False))
    await h.write_reg("CORE_ENABLE", 1)
    await h.write_reg("CORE_SELECT", 1)
    await h.write_reg("MVM_CONFIG", R.pack("MVM_CONFIG", input_bits=4, conversion=Conversion.DECREMENT))
    await h.write_reg("BATCH", R.pack("BATCH", count=batch))
    await h.write_reg("CORE_NEURON", R.pack("CORE_NEURON", packet_uV=int(os.environ.get("NEURRAM_BENCH_PACKET", "200"))))
    repeats = int(os.environ.get("NEURRAM_BENCH_REPEATS", "4"))
    t0 = time.perf_counter()
    c0 = await h.read_reg("COUNT_BUSY")
    events0 = h.drivers[0].events
    for _ in range(repeats):
        await h.write_reg("CTRL", R.pack("CTRL", start=1))
        await ClockCycles(dut.clk, 4)
        await h.wait_idle(poll_cycles=256)
    dt = time.perf_counter() - t0
    busy = await h.read_reg("COUNT_BUSY") - c0
    steps = await h.read_reg("COUNT_STEP")
    mvms = await h.read_reg("COUNT_MVM")
    _record(mvms_per_s=mvms / dt, busy_cycles_per_mvm=busy / mvms, steps_per_mvm=steps / mvms,
            model_events_per_mvm=(h.drivers[0].events - events0) / mvms, busy_cycles_per_s=busy / dt)
