"""Stochastic neurons: firing probability is a sigmoid of the pre-activation; seeds repeat; the
noise automaton's planes are independent on every core size, and the RTL's equals the model's."""

import numpy as np
import pytest

from neurram.config import ChipConfig
from neurram.spec.mvm import MvmSettings
from neurram.spec.enums import Conversion
from neurram.targets import open_chip


def _setup(noise="off", lines=32):
    """A core of ``lines`` lines; rows 0..31 carry the sweep (rows beyond 32 stay at 0 µS)."""
    chip = open_chip(f"model:noise={noise}", config=ChipConfig(core_grid=(1, 1), rows=lines, cols=lines))
    chip.enable_cores([0])
    g = np.zeros((lines, lines))
    g[:16, :] = 20.0          # rows 0..15 add positive charge
    g[16:32, :] = 20.0        # rows 16..31 are the negative half (inverted drive)
    chip.link.chip.cores[0].model.set_conductance(g)
    pol = np.zeros(lines, bool)
    pol[16:32] = True
    chip.set_polarity(0, pol)
    return chip


def _inputs(k, lines=32):
    """k positive rows on, the rest balanced: pre-activation grows with k."""
    x = np.zeros(lines, int)
    x[:k] = 1
    x[16:32 - k] = 0
    x[16:16 + (16 - k)] = 1
    return x


@pytest.mark.parametrize("lines", [32, 256])
def test_firing_probability_is_a_sigmoid_and_seeds_repeat(capsys, lines):
    """On a 256-line core too: the seed expansion repeating every 1024 cells of the 3072-cell ring
    made the noise take 5 levels there and the curve a staircase (max fit deviation 0.12)."""
    chip = _setup(lines=lines)
    ks = np.arange(4, 13)
    X = np.stack([_inputs(k, lines) for k in ks])
    # Pre-activation of each input (in packets): charge-decrement, no noise.
    chip.set_packet(0, 100)
    dec = chip.mvm(0, X, MvmSettings(input_bits=1, conversion=Conversion.DECREMENT))[:, 0].astype(int)
    pre = np.where(dec & 0x80, -1, 1) * ((dec & 0x7F) - 0.5)
    assert np.all(np.diff(pre) > 0)                       # the sweep crosses zero monotonically
    assert pre[0] < 0 < pre[-1]
    stoch = MvmSettings(input_bits=1, conversion=Conversion.SIGN, stochastic=True)
    fires = np.zeros(len(ks))
    trials = 60
    for t in range(trials):
        chip.set_stochastic(seed=1000 + t, noise_uV=3000)
        out = chip.mvm(0, X, stoch)[:, :lines]
        fires += (out & 0x80 == 0).mean(axis=1)          # every line is a neuron of the sweep
    p = fires / trials
    assert p[0] < 0.2 and p[-1] > 0.8 and np.all(np.diff(p) > -0.05)
    # Fit P = sigmoid(a·(pre - b)) through the logit of the interior points.
    inner = (p > 0.02) & (p < 0.98)
    a, c = np.polyfit(pre[inner], np.log(p[inner] / (1 - p[inner])), 1)
    fit = 1 / (1 + np.exp(-(a * pre + c)))
    assert np.abs(fit - p).max() < 0.08                   # a sigmoid describes the curve
    with capsys.disabled():
        print(f"\nstochastic neuron ({lines}-line core): fitted slope {a:.3f} per packet (100 µV packets, noise 3000 µV), "
              f"max |fit - measured| {np.abs(fit - p).max():.3f}")
    # Equal seeds repeat exactly; other seeds differ.
    chip.set_stochastic(seed=7, noise_uV=1500)
    a1 = chip.mvm(0, X, stoch)
    a2 = chip.mvm(0, X, stoch)
    chip.set_stochastic(seed=8, noise_uV=1500)
    a3 = chip.mvm(0, X, stoch)
    assert np.array_equal(a1, a2) and not np.array_equal(a1, a3)


@pytest.mark.parametrize("lines", [32, 64, 256])
def test_noise_planes_are_independent_on_every_core_size(lines):
    """After warm-up no plane is a copy of another, and each neuron's noise value (four 3-bit
    values summed) takes all 29 levels with near-binomial-sum weights. The old expansion
    (bit (k + k >> 5) mod 32 for cell k) repeats every 1024 cells, a third of a 256-line core's
    ring, so planes p and p + 4 stayed equal and the sum took 5 levels."""
    from neurram.sim.fastcore import NoiseAutomaton
    a = NoiseAutomaton(lines)
    w = np.array([1, 2, 4] * 4)
    sums = []
    for seed in (1, 12345, 0xDEADBEEF):
        a.seed(seed, 3)
        for _ in range(100):
            planes = a.planes()
            assert len({p.tobytes() for p in planes}) == len(planes)
            sums.append(w @ planes.astype(int))
            a.step()
    sums = np.concatenate(sums)
    counts = np.bincount(sums, minlength=29) / sums.size
    assert np.count_nonzero(counts) == 29
    assert counts[[0, 7, 14, 21, 28]].sum() < 0.2          # independent values: about 0.14
    assert abs(sums.mean() - 14) < 0.3 and abs(sums.std() - 4.58) < 0.2


@pytest.mark.parametrize("lines", [32, 64])
def test_rtl_noise_source_equals_the_model(lines):
    """hdl/noise.py and the fast model's NoiseAutomaton load, warm up and step to the same bits
    (both take each cell's seed bit from ``seed_taps``). Amaranth's Python simulator cannot
    compile a 3072-cell ring; tests/test_conformance.py checks 256-line cores under Verilator."""
    from amaranth.sim import Simulator

    from neurram.hdl.noise import NoiseSource
    from neurram.sim.fastcore import NoiseAutomaton
    from neurram.spec.analog import NOISE_PLANES, WARMUP_STEPS

    seed, core = 0x1234ABCD, 5
    dut = NoiseSource(lines)
    model = NoiseAutomaton(lines)
    model.seed(seed, core)
    expect = [model.state.copy()]
    for _ in range(3):
        model.step()
        expect.append(model.state.copy())
    got = []

    async def bench(ctx):
        ctx.set(dut.seed, seed)
        ctx.set(dut.core_index, core)
        ctx.set(dut.load, 1)
        await ctx.tick()
        ctx.set(dut.load, 0)
        ctx.set(dut.warm, 1)
        for i in range(WARMUP_STEPS):
            assert ctx.get(dut.warm_last) == (i == WARMUP_STEPS - 1)
            await ctx.tick()
        ctx.set(dut.warm, 0)
        ctx.set(dut.step, 1)
        for _ in range(4):
            got.append(ctx.get(dut.noise))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    n = NOISE_PLANES * lines
    for g, e in zip(got, expect):
        assert np.array_equal(np.array([(g >> k) & 1 for k in range(n)], bool), e)
