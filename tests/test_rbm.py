"""The RBM image-recovery task (docs/rbm.md): weights, corruptions, the software sampler, the
mapping onto the TNSA (forward and backward through the same cells), the stochastic neurons'
calibration and recovery on a chip."""

import numpy as np
import pytest

from neurram.config import ChipConfig
from neurram.firmware.datasets import load_mnist_demo_subset
from neurram.firmware.tasks import TASKS
from neurram.firmware.tasks.rbm import (CORRUPTIONS, PIXELS, RBM, ChipGibbs, calibrate_rbm, corrupt, gibbs_software,
                                        load_rbm, map_rbm, program_rbm, run_rbm, save_rbm, with_labels)
from neurram.spec.enums import Direction
from neurram.targets import open_chip


def _random_rbm(V=40, H=12, seed=0):
    rng = np.random.default_rng(seed)
    return RBM(rng.normal(0, 0.5, (V, H)), rng.normal(-1, 1, V), rng.normal(0, 0.5, H))


def _small_chip(noise="off", rows=64, cols=64, grid=(1, 2), seed=0):
    return open_chip(f"model:noise={noise}", config=ChipConfig(core_grid=grid, rows=rows, cols=cols), seed=seed)


# -- weights and data -------------------------------------------------------------------------

def test_rbm_file_round_trip_and_errors_name_the_arrays(tmp_path):
    rbm = _random_rbm()
    save_rbm(tmp_path / "r.npz", rbm)
    back = load_rbm(tmp_path / "r.npz")
    assert np.allclose(back.W, rbm.W, atol=1e-6) and np.allclose(back.b, rbm.b, atol=1e-6)
    np.savez(tmp_path / "bad.npz", W=rbm.W, b=rbm.b)
    with pytest.raises(ValueError, match="lacks array"):
        load_rbm(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="visible x hidden"):
        RBM(rbm.W, rbm.b[:-1], rbm.a)


def test_committed_weights_shape():
    rbm = load_rbm()
    assert rbm.W.shape == (794, 120) and rbm.b.shape == (794,) and rbm.a.shape == (120,)


def test_corruptions():
    rng = np.random.default_rng(0)
    x = rng.random((50, PIXELS))
    xc, mask = corrupt(x, "random", rng)
    assert 0.17 < mask.mean() < 0.23
    assert np.array_equal(xc[mask], (x[mask] < 0.7).astype(float)) and np.array_equal(xc[~mask], x[~mask])
    xo, mo = corrupt(x, "occlude", rng)
    img = mo.reshape(50, 28, 28)
    assert img[:, 18:].all() and not img[:, :18].any()
    assert np.allclose(xo[mo], x.mean()) and np.array_equal(xo[~mo], x[~mo])
    with pytest.raises(ValueError, match="random, occlude"):
        corrupt(x, "blur", rng)


def test_software_sampler_with_a_known_posterior():
    """W = 0: every visible unit is independent, p = sigmoid(b); recovered pixels equal it exactly
    and the known pixels stay clamped."""
    x = np.zeros((3, PIXELS))
    x[:, ::3] = 1.0
    target = np.full(PIXELS + 10, 0.25)
    rbm = RBM(np.zeros((794, 5)), np.log(target / (1 - target)), np.zeros(5))
    res = gibbs_software(rbm, x, np.array([1, 2, 3]), "random", steps=3, seed=1)
    xc, mask = corrupt(x, "random", np.random.default_rng(2))
    assert np.allclose(res.recovered[mask], 0.25) and np.array_equal(res.recovered[~mask], x[~mask])
    expected = np.sqrt(((0.25 - x) ** 2 * mask).sum(1)).mean()
    assert res.errors == pytest.approx([expected] * 3)


def test_training_learns_to_recover():
    """A few epochs of CD on the 500 embedded images cut the random-corruption error well below
    that of the untrained RBM (whose visible biases already hold the pixel means)."""
    from neurram.firmware.train.rbm import train_rbm
    x, y = load_mnist_demo_subset()[:2]
    xf = x.reshape(len(x), -1) / 255.0
    untrained = train_rbm(x, y, epochs=0, progress=False)
    trained = train_rbm(x, y, epochs=20, lr=0.01, progress=False)
    r0 = gibbs_software(untrained, xf[:100], y[:100], "random", steps=5)
    r1 = gibbs_software(trained, xf[:100], y[:100], "random", steps=5)
    assert r1.error_after < 0.85 * r0.error_after


# -- the chip -----------------------------------------------------------------------------------

def test_mapping_places_2x2_cells_per_weight():
    rbm = _random_rbm()
    m = map_rbm(rbm, ChipConfig(core_grid=(1, 2), rows=64, cols=64))
    assert len(m.blocks) == 2 and sorted(np.concatenate([b.visible for b in m.blocks])) == list(range(40))
    blk = m.blocks[0]
    g = blk.g_target
    w = rbm.W[blk.visible[0], 3] / m.w_max * 40.0
    gp, gm = max(w, 0), max(-w, 0)
    assert np.allclose(g[0:2, 6:8], [[gp, gm], [gm, gp]])


def test_mapping_refuses_an_rbm_that_does_not_fit():
    with pytest.raises(ValueError, match="hidden units"):
        map_rbm(_random_rbm(H=40), ChipConfig(core_grid=(1, 2), rows=64, cols=64))
    with pytest.raises(ValueError, match="more cores or rows"):
        map_rbm(_random_rbm(V=200), ChipConfig(core_grid=(1, 2), rows=64, cols=64))


def _probe(g: ChipGibbs, rbm: RBM):
    """Forward responses to unit visible vectors and backward responses to unit hidden vectors,
    each minus the all-zero response (the biases)."""
    V, H = rbm.W.shape
    F = g.hidden_preactivation(np.vstack([np.zeros((1, V), np.int64), np.eye(V, dtype=np.int64)]))
    B = g.visible_preactivation(np.vstack([np.zeros((1, H), np.int64), np.eye(H, dtype=np.int64)]))
    return F[1:] - F[0], B[1:] - B[0], F[0], B[0]


@pytest.mark.parametrize("noise", ["off", "on"])
def test_forward_and_backward_are_transposes_on_the_same_cells(noise):
    """The forward MVM (inputs on bitlines) and the backward MVM (inputs on source lines) of the
    same programmed cells give W and Wᵀ: probing with unit vectors gives matrices F (visible x
    hidden) and B (hidden x visible) with F = Bᵀ = W up to the conversion's resolution (and the
    analog non-idealities with noise on), and the biases a and b. Changing one weight's cells
    after programming moves that weight in both directions."""
    rbm = _random_rbm()
    chip = _small_chip(noise)
    m = map_rbm(rbm, chip.config, max_steps=127)
    program_rbm(chip, m, progress=False)
    rng = np.random.default_rng(0)
    v_cal = rng.random((128, rbm.visible))
    calibrate_rbm(chip, m, v_cal, repeats=1, progress=False)
    F, B, a0, b0 = _probe(ChipGibbs(chip, m), rbm)
    scale = np.abs(rbm.W).max()
    if noise == "off":
        assert np.corrcoef(F.ravel(), B.T.ravel())[0, 1] > 0.99              # exact up to the charge-decrement resolution (two readings)
        assert np.abs(F - B.T).max() < 0.1 * scale
        assert np.abs(F - rbm.W).max() < 0.08 * scale and np.abs(B.T - rbm.W).max() < 0.08 * scale
        assert np.abs(a0 - rbm.a).max() < 0.15 * scale and np.abs(b0 - rbm.b).max() < 0.15 * scale
    else:                           # both directions read the pair's four cells (two per line); read
        # noise, conversion, calibration and the odd stuck cell differ (a wrong orientation gives ~0.5)
        assert np.median(np.abs(F - B.T)) < 0.1 * scale and np.mean(np.abs(F - B.T) < 0.3 * scale) > 0.9
        assert np.median(np.abs(F - rbm.W)) < 0.09 * scale and np.median(np.abs(B.T - rbm.W)) < 0.09 * scale
    # the cells are one set: a weight changed after programming shows in both directions
    blk = m.blocks[0]
    core = chip.link.chip.cores[blk.core].model
    gnow = core.device.g_uS.copy()
    gnow[0:2, 0:2] = [[0.0, 40.0], [40.0, 0.0]]                     # W[v0, h0] -> -w_max
    core.set_conductance(gnow)
    F2, B2, _, _ = _probe(ChipGibbs(chip, m), rbm)
    v0 = blk.visible[0]
    assert F2[v0, 0] < F[v0, 0] - 0.5 * scale and B2[0, v0] < B[0, v0] - 0.5 * scale


def test_stochastic_neurons_fire_with_a_sigmoid_of_slope_one():
    """After calibration the measured firing probability against the ideal pre-activation is a
    sigmoid of slope close to 1 (checked on fresh hidden vectors and seeds)."""
    rbm = _random_rbm(V=40, H=12, seed=3)
    chip = _small_chip("on")
    m = map_rbm(rbm, chip.config)
    program_rbm(chip, m, progress=False)
    rng = np.random.default_rng(1)
    cal = calibrate_rbm(chip, m, rng.random((128, rbm.visible)), repeats=2, corrections=1, progress=False)
    assert 0.8 < cal.slope_after < 1.25 and abs(cal.slope_after - 1) < abs(cal.slope_before - 1) + 0.05
    h = (rng.random((128, rbm.hidden)) < 0.5).astype(np.int64)
    u = h @ rbm.W.T + rbm.b
    g = ChipGibbs(chip, m)
    p = np.mean([g.sample_visible(h, seed=100 + r) for r in range(12)], axis=0)
    for lo, hi in ((-3, -1.5), (-0.5, 0.5), (1.5, 3)):
        sel = (u >= lo) & (u < hi)
        expected = np.mean(1 / (1 + np.exp(-u[sel])))
        assert abs(p[sel].mean() - expected) < 0.1, (lo, hi, p[sel].mean(), expected)


def test_noise_automaton_of_a_256_line_core_is_near_gaussian():
    """The injected charge of a 256-line core is a sum of four independent 3-bit values, not
    7·Binomial(4, 1/2) as when the seed pattern repeated every 4·256 cells of the 12·256-cell ring
    (planes p and p + 4 equal; docs/rbm.md, 'The stochastic neurons')."""
    from neurram.sim.fastcore import NoiseAutomaton
    a = NoiseAutomaton(256)
    a.seed(12345, 3)
    w = np.array([1, 2, 4] * 4)
    s = []
    for _ in range(200):
        s.append(w @ a.planes().astype(int))
        a.step()
    counts = np.bincount(np.concatenate(s), minlength=29) / (200 * 256)
    assert counts[[0, 7, 14, 21, 28]].sum() < 0.3           # independent values: about 0.18


def test_recovery_on_the_chip_with_the_committed_rbm():
    """The committed RBM on 7 full cores recovers a few embedded test images on the chip about as
    well as the software sampler does on the same corrupted images."""
    x, y = load_mnist_demo_subset()[:2]
    rbm = load_rbm()
    chip = open_chip("model:cores=2x4", seed=0)
    rep = run_rbm(rbm.W, rbm.b, rbm.a, chip, x[:20], y[:20], x_cal_uint8=x[100:148], y_cal=y[100:148],
                  steps=4, progress=False, calibration_repeats=2, calibration_corrections=1)
    assert rep.cores == list(range(7))
    for kind in CORRUPTIONS:
        c, s = rep.chip[kind], rep.software[kind]
        assert c.error_after < c.error_before and s.error_after < s.error_before
        assert abs(c.reduction - s.reduction) < 0.1, (kind, c.reduction, s.reduction)
    assert rep.chip["random"].reduction > 0.7
    assert 0.7 < rep.stochastic.slope_after < 1.4


def test_task_is_registered():
    assert TASKS["rbm"][0] == "rbm"
    from neurram.cli import main
    with pytest.raises(SystemExit):
        main(["run", "rbm", "--help"])
