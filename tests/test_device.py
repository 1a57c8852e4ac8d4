"""Tests of the RRAM device model (models/device.py): calibration against the published fits,
relaxation statistics, read noise, programming response, bad cells, determinism."""

import numpy as np
import pytest

from neurram.models.device import (
    AIHWKIT_WAN2022_COEFFS, CROSSSIM_WAN_G_MAX_uS, RESET, SET, RRAMArray, RRAMParams,
    aihwkit_wan2022_sigma_uS, crosssim_wan_sigma_uS, layer_targets, relaxation_sigma_uS,
)

DAY = 86400.0
CLEAN = dict(p_stuck_off=0.0, p_stuck_on=0.0)


# -- calibration of σ(g, t) ------------------------------------------------------------------------

def test_aihwkit_coefficients_transcribed():
    # Hand evaluation of aihwkit's 1-s polynomial at g = 20 µS (x = 0.5) and of the 1-day one at
    # g = 40 µS (x = 1): guards against a transcription or ordering error.
    assert aihwkit_wan2022_sigma_uS(20.0, 1.0) == pytest.approx(
        0.348 + 16.030 * 0.5 - 43.853 * 0.25 + 45.393 * 0.125 - 16.815 * 0.0625, abs=1e-12)
    assert aihwkit_wan2022_sigma_uS(40.0, DAY) == pytest.approx(
        0.701 + 22.086 - 50.773 + 47.095 - 16.458, abs=1e-12)
    assert set(AIHWKIT_WAN2022_COEFFS) == {1.0, DAY, 2 * DAY}
    with pytest.raises(ValueError):
        aihwkit_wan2022_sigma_uS(10.0, 3600.0)


@pytest.mark.parametrize("seconds, tol_uS", [(1.0, 0.01), (DAY, 0.05), (2 * DAY, 0.05)])
def test_fit_matches_aihwkit(seconds, tol_uS):
    """The fitted σ(g, t) reproduces aihwkit's polynomials: within 0.01 µS at 1 s and 0.05 µS at 1
    and 2 days (where the two published curves cross each other at low g)."""
    g = np.linspace(0.0, 40.0, 41)
    err = np.abs(relaxation_sigma_uS(g, seconds) - aihwkit_wan2022_sigma_uS(g, seconds))
    assert err.max() <= tol_uS, (g[err.argmax()], err.max())


def test_fit_close_to_crosssim_at_1s():
    """CrossSim's independent cubic fit to the same figure: within 20 % over 5-35 µS, within 0.75 µS
    everywhere on its range (the two published fits differ most near 0 µS)."""
    g = np.linspace(0.0, CROSSSIM_WAN_G_MAX_uS, 80)
    ours, cs = relaxation_sigma_uS(g, 1.0), crosssim_wan_sigma_uS(g)
    assert np.abs(ours - cs).max() <= 0.75
    mid = (g >= 5) & (g <= 35)
    assert (np.abs(ours - cs)[mid] / cs[mid]).max() <= 0.20


def test_sigma_curve_shape():
    g = np.array([2.0, 10.0, 20.0, 35.0])
    times = [0.0, 0.01, 1.0, 60.0, 3600.0, DAY, 2 * DAY, np.inf]
    s = np.array([relaxation_sigma_uS(g, t) for t in times])
    assert np.all(s[0] == 0)                       # nothing right after programming
    assert np.all(np.diff(s, axis=0) >= -1e-12)    # never shrinks with time
    assert np.all(s[2] < s[5])                     # 1 s spread < 1 day spread
    assert np.all(s[1] < 0.5 * s[2])               # "fast at first": most of it within 1 s
    # Above g_max the value at g_max is used.
    assert relaxation_sigma_uS(60.0, DAY) == pytest.approx(relaxation_sigma_uS(40.0, DAY))


# -- relax() -----------------------------------------------------------------------------------------

def _programmed(g_values, n_per, seed, **kw):
    arr = RRAMArray(len(g_values), n_per, RRAMParams(**CLEAN, **kw), seed=seed)
    arr.set_conductance(np.repeat(np.asarray(g_values, float)[:, None], n_per, axis=1))
    return arr


@pytest.mark.parametrize("seconds", [1.0, DAY, 2 * DAY])
def test_relax_spread_matches_sigma(seconds):
    """Many cells set to the same g: after relax(t) their spread is σ(g, t) (N = 20000 per state,
    std sampling error 0.5 %; tolerance 3 %), their mean stays at g."""
    g = np.array([15.0, 25.0, 35.0])
    n = 20000
    arr = _programmed(g, n, seed=1)
    arr.relax(seconds)
    sd = arr.g_uS.std(axis=1)
    expect = relaxation_sigma_uS(g, seconds)
    np.testing.assert_allclose(sd, expect, rtol=0.03)
    np.testing.assert_allclose(arr.g_uS.mean(axis=1), g, atol=5 * expect.max() / np.sqrt(n))
    np.testing.assert_array_equal(arr.seconds_since_programming, seconds)


def test_relax_in_increments_equals_one_relax():
    g = np.array([10.0, 30.0])
    n = 20000
    a = _programmed(g, n, seed=2)
    b = _programmed(g, n, seed=3)
    a.relax(1.0)
    a.relax(DAY - 1.0)
    for _ in range(4):
        b.relax(DAY / 4)
    c = _programmed(g, n, seed=4)
    c.relax(DAY)
    for arr in (a, b):
        np.testing.assert_allclose(arr.g_uS.std(axis=1), c.g_uS.std(axis=1), rtol=0.04)
        np.testing.assert_allclose(arr.g_uS.std(axis=1), relaxation_sigma_uS(g, DAY), rtol=0.03)
        np.testing.assert_array_equal(arr.seconds_since_programming, DAY)


def test_relax_is_state_dependent_and_reset_by_programming():
    arr = _programmed([5.0, 20.0], 4000, seed=5)
    arr.relax(DAY)
    sd = arr.g_uS.std(axis=1)
    assert sd[1] > 1.2 * sd[0]                          # σ(20 µS) ≈ 3.9 > σ(5 µS) ≈ 2.7
    before = arr.g_uS.copy()
    arr.relax(0.0)
    np.testing.assert_array_equal(arr.g_uS, before)
    # Re-programming restarts the clock: 1 s later the spread is the 1-s spread again.
    arr.set_conductance(20.0)
    arr.relax(1.0)
    assert arr.g_uS.std() == pytest.approx(float(relaxation_sigma_uS(20.0, 1.0)), rel=0.05)
    with pytest.raises(ValueError):
        arr.relax(-1.0)
    with pytest.raises(ValueError):
        arr.relax(float("nan"))


def test_never_programmed_cells_do_not_relax():
    arr = RRAMArray(8, 8, RRAMParams(**CLEAN), seed=0)
    before = arr.g_uS.copy()
    arr.relax(DAY)
    np.testing.assert_array_equal(arr.g_uS, before)


# -- reads ---------------------------------------------------------------------------------------------

def test_read_noise_statistics():
    arr = RRAMArray(1, 4, RRAMParams(**CLEAN), seed=6)
    arr.set_conductance(np.array([[2.0, 10.0, 20.0, 40.0]]))
    n = 4000
    rows = np.zeros((n, 4), int)
    cols = np.broadcast_to(np.arange(4), (n, 4))
    reads = arr.read(rows, cols)                     # n fresh reads of each of the four cells
    sigma = arr.read_noise_sigma_uS(arr.g_uS[0])
    np.testing.assert_allclose(reads.std(axis=0), sigma, rtol=0.06)
    np.testing.assert_allclose(reads.mean(axis=0), arr.g_uS[0], atol=4 * sigma.max() / np.sqrt(n))
    # A few % of g or below 1 µS everywhere in the used range.
    g = np.linspace(0, 40, 81)
    s = arr.read_noise_sigma_uS(g)
    assert s.max() < 1.0
    assert np.all(s[g >= 5] / g[g >= 5] <= 0.03)
    # Lower read voltage: noisier floor.
    assert arr.read_noise_sigma_uS(1.0, read_V=0.1) > arr.read_noise_sigma_uS(1.0, read_V=0.2)
    # Reads never disturb the state.
    assert np.array_equal(arr.g_uS[0], [2.0, 10.0, 20.0, 40.0])


def test_read_shapes_and_errors():
    arr = RRAMArray(4, 6, RRAMParams(**CLEAN), seed=0)
    assert arr.read(np.arange(4)[:, None], np.arange(6)[None, :]).shape == (4, 6)
    assert arr.read(1, 2).shape == ()
    with pytest.raises(IndexError):
        arr.read(4, 0)
    with pytest.raises(IndexError):
        arr.read(-1, 0)
    with pytest.raises(ValueError):
        arr.read(0, 0, read_V=0.0)


# -- programming response ----------------------------------------------------------------------------

def _ideal(rows=1, cols=1, seed=0, **kw):
    return RRAMArray(rows, cols, RRAMParams.noise_free(**kw), seed=seed)


def test_set_raises_reset_lowers_and_depends_on_pulse():
    a = _ideal(1, 5)
    a.set_conductance(10.0)
    a.apply_pulses(0, np.arange(5), SET, [1.6, 1.9, 2.2, 2.2, 2.2], [1000, 1000, 1000, 100, 1000],
                   [2.5, 2.5, 2.5, 2.5, 3.0])
    g = a.g_uS[0]
    assert np.all(g > 10.0)
    assert g[0] < g[1] < g[2]            # higher amplitude: bigger step
    assert g[3] < g[2]                   # shorter pulse: smaller step
    assert g[4] > g[2]                   # higher gate: higher compliance, bigger step
    b = _ideal(1, 3)
    b.set_conductance(30.0)
    b.apply_pulses(0, np.arange(3), RESET, [1.6, 1.9, 2.2], 1000, 5.0)
    assert np.all(b.g_uS[0] < 30.0) and b.g_uS[0, 0] > b.g_uS[0, 1] > b.g_uS[0, 2]


def test_compliance_and_bounds():
    p = RRAMParams.noise_free()
    a = RRAMArray(1, 3, p)
    a.set_conductance(0.0)
    for _ in range(200):    # saturate: SET at the top amplitude with three gate voltages
        a.apply_pulses(0, np.arange(3), SET, 3.3, 1000, [2.0, 2.5, 3.0])
    gcc = p.set_gcc_ref_uS * ((np.array([2.0, 2.5, 3.0]) - p.vt_V) / (p.set_gate_ref_V - p.vt_V)) ** 2
    np.testing.assert_allclose(a.g_uS[0], np.minimum(gcc, p.g_ceiling_uS), rtol=1e-6)
    assert a.g_uS[0, 1] > p.g_max_uS     # 40 µS is reachable at a 2.5 V SET gate
    for _ in range(200):
        a.apply_pulses(0, np.arange(3), RESET, 3.3, 1000, 5.0)
    np.testing.assert_allclose(a.g_uS[0], p.g_floor_uS, rtol=1e-6)
    # RESET with a low gate is limited by the access transistor (source follower): no switching.
    a.set_conductance(20.0)
    a.apply_pulses(0, 0, RESET, 3.3, 1000, 0.5)
    assert a.g_uS[0, 0] == 20.0
    # Noisy cells stay inside [0, g_ceiling] whatever the pulses.
    n = RRAMArray(16, 16, RRAMParams(), seed=3)
    r, c = np.indices((16, 16))
    rng = np.random.default_rng(0)
    for _ in range(50):
        n.apply_pulses(r, c, rng.integers(0, 2, (16, 16)), rng.uniform(0, 4, (16, 16)), 1000,
                       rng.uniform(0, 5, (16, 16)))
        assert n.g_uS.min() >= 0 and n.g_uS.max() <= n.params.g_ceiling_uS


def test_pulse_noise_is_stochastic_with_mean_near_ideal():
    p = RRAMParams(**CLEAN, set_v0_sigma_V=0.0, set_gcc_sigma_ln=0.0, reset_v0_sigma_V=0.0)
    a = RRAMArray(100, 100, p, seed=7)
    a.set_conductance(10.0)
    r, c = np.indices((100, 100))
    a.apply_pulses(r, c, SET, 1.9, 1000, 2.5)
    ideal = RRAMArray(1, 1, RRAMParams.noise_free())
    ideal.set_conductance(10.0)
    ideal.apply_pulses(0, 0, SET, 1.9, 1000, 2.5)
    steps = a.g_uS - 10.0
    assert steps.std() > 0.2 * steps.mean()                                # cycle-to-cycle noise
    assert steps.mean() == pytest.approx(ideal.g_uS[0, 0] - 10.0, rel=0.05)  # mean-one factor


def test_pulse_argument_errors():
    a = RRAMArray(4, 4, RRAMParams(**CLEAN), seed=0)
    with pytest.raises(ValueError):
        a.apply_pulses(0, 0, 2, 2.0, 1000, 2.5)                  # 2: no such PulsePolarity
    with pytest.raises(ValueError):
        a.apply_pulses([0, 0], [1, 1], SET, 2.0, 1000, 2.5)      # same cell twice
    with pytest.raises(ValueError):
        a.apply_pulses(0, 0, SET, np.nan, 1000, 2.5)
    with pytest.raises(IndexError):
        a.apply_pulses(0, 4, SET, 2.0, 1000, 2.5)
    with pytest.raises(ValueError):
        a.set_conductance(np.full((4, 4), np.nan))
    with pytest.raises(ValueError):
        a.set_conductance(np.zeros((3, 4)))
    with pytest.raises(ValueError):
        a.g_uS[0, 0] = 1.0                                      # read-only view
    with pytest.raises(ValueError):
        RRAMParams(p_stuck_off=-0.1)


def test_cell_access_converts_units():
    a, b = _ideal(2, 2), _ideal(2, 2)
    a.set_conductance(5.0)
    b.set_conductance(5.0)
    a.apply_pulses([0, 1], [1, 0], [SET, RESET], [2.1, 2.3], 1000, [2.5, 5.0])
    b.cell_access().pulse_cells(np.array([0, 1]), np.array([1, 0]), np.array([SET, RESET]),
                                np.array([2100, 2300]), np.array([1000, 1000]), np.array([2500, 5000]))
    np.testing.assert_array_equal(a.g_uS, b.g_uS)
    np.testing.assert_array_equal(b.cell_access().read_cells(np.array([0, 1]), np.array([1, 0])),
                                  b.g_uS[[0, 1], [1, 0]])


# -- noise-free mode ----------------------------------------------------------------------------------

def test_noise_free_is_deterministic_and_exact():
    a, b = _ideal(8, 8, seed=1), _ideal(8, 8, seed=999)
    assert not a.stuck_off.any() and not a.stuck_on.any()
    r, c = np.indices((8, 8))
    rng = np.random.default_rng(0)
    for _ in range(20):
        pol, amp, gate = rng.integers(0, 2, (8, 8)), rng.uniform(1.2, 3.3, (8, 8)), rng.uniform(2.5, 5, (8, 8))
        a.apply_pulses(r, c, pol, amp, 1000, gate)
        b.apply_pulses(r, c, pol, amp, 1000, gate)
    np.testing.assert_array_equal(a.g_uS, b.g_uS)
    np.testing.assert_array_equal(a.read(r, c), a.g_uS)
    before = a.g_uS.copy()
    a.relax(2 * DAY)
    np.testing.assert_array_equal(a.g_uS, before)
    assert np.all(a.read_noise_sigma_uS(a.g_uS) == 0)
    assert np.all(a.relaxation_sigma_uS(20.0, DAY) == 0)


# -- bad cells ----------------------------------------------------------------------------------------

def test_stuck_cells_ignore_pulses_relaxation_and_set():
    p = RRAMParams(p_stuck_off=0.15, p_stuck_on=0.15)
    a = RRAMArray(32, 32, p, seed=8)
    assert 0.08 < a.stuck_off.mean() < 0.22 and 0.08 < a.stuck_on.mean() < 0.22
    assert not (a.stuck_off & a.stuck_on).any()
    r, c = np.indices((32, 32))
    a.set_conductance(20.0)
    for _ in range(60):
        a.apply_pulses(r, c, SET, 3.3, 1000, 3.0)
    assert a.g_uS[a.stuck_off].max() < 1.0
    for _ in range(60):
        a.apply_pulses(r, c, RESET, 3.3, 1000, 5.0)
    assert a.g_uS[a.stuck_on].min() >= p.stuck_on_min_uS
    assert a.g_uS[a.stuck_on].min() > p.g_max_uS
    stuck_vals = a.g_uS[a.stuck_off | a.stuck_on].copy()
    a.set_conductance(20.0)
    a.relax(DAY)
    np.testing.assert_array_equal(a.g_uS[a.stuck_off | a.stuck_on], stuck_vals)
    ok = ~(a.stuck_off | a.stuck_on)
    assert a.g_uS[ok].std() > 1.0           # the good cells did relax


# -- determinism -------------------------------------------------------------------------------------

def _session(seed):
    a = RRAMArray(16, 16, RRAMParams(p_stuck_off=0.02, p_stuck_on=0.02), seed=seed)
    r, c = np.indices((16, 16))
    out = [a.read(r, c)]
    a.apply_pulses(r, c, (r + c) % 2, 1.5 + 0.1 * (c % 10), 1000, np.where((r + c) % 2, 5.0, 2.5))
    out.append(a.read(r, c))
    a.relax(10.0)
    a.relax(DAY)
    out.append(a.read(r[:4], c[:4]))
    out.append(a.g_uS.copy())
    return out


def test_same_seed_bit_identical():
    x, y, z = _session(11), _session(11), _session(12)
    for u, v in zip(x, y):
        assert np.array_equal(u, v)
    assert not np.array_equal(x[-1], z[-1])
    g = np.random.default_rng(5)
    a = RRAMArray(4, 4, RRAMParams(), seed=np.random.default_rng(5))
    b = RRAMArray(4, 4, RRAMParams(), seed=g)
    assert np.array_equal(a.g_uS, b.g_uS)


def test_layer_targets_mapping():
    t = layer_targets(256, 64, seed=0)
    assert t.shape == (256, 64)
    assert t.min() == 0 and t.max() == 40.0
    assert np.all(np.minimum(t[0::2], t[1::2]) == 0)          # one side of each pair is 0
    assert 0.04 < (np.maximum(t[0::2], t[1::2]) == 40.0).mean() < 0.06   # 5 % clipped at w_max


# -- cycle-to-cycle defect steps, telegraph noise, write-verify budget -----------------------------

def test_defect_steps_add_poisson_spread_to_every_pulse():
    """A pulse's step has σ = sqrt(g_defect · |Δg|) on top of the mean response (rate c2c off)."""
    kw = dict(CLEAN, set_v0_sigma_V=0.0, set_gcc_sigma_ln=0.0, c2c_sigma_ln=0.0)
    a = RRAMArray(100, 100, RRAMParams(**kw), seed=7)
    a.set_conductance(10.0)
    r, c = np.indices((100, 100))
    a.apply_pulses(r, c, SET, 1.9, 1000, 2.5)
    ideal = RRAMArray(1, 1, RRAMParams.noise_free())
    ideal.set_conductance(10.0)
    ideal.apply_pulses(0, 0, SET, 1.9, 1000, 2.5)
    mean_step = ideal.g_uS[0, 0] - 10.0
    steps = a.g_uS - 10.0
    assert steps.mean() == pytest.approx(mean_step, rel=0.05)
    assert steps.std() == pytest.approx(np.sqrt(2.0 * mean_step), rel=0.05)        # g_defect_uS = 2
    off = RRAMArray(100, 100, RRAMParams(**kw, g_defect_uS=0.0), seed=7)
    off.set_conductance(10.0)
    off.apply_pulses(r, c, SET, 1.9, 1000, 2.5)
    assert np.allclose(off.g_uS, ideal.g_uS[0, 0])


def test_telegraph_noise_two_levels_in_reads_and_variance_in_mvms():
    p = RRAMParams(**CLEAN, read_rel=0.0, read_floor_uS=0.0, rtn_fraction=0.2)
    a = RRAMArray(64, 64, p, seed=4)
    rel = a.rtn_rel
    assert 0.15 < (rel > 0).mean() < 0.25 and np.median(rel[rel > 0]) == pytest.approx(0.05, rel=0.15)
    a.set_conductance(20.0)
    r, c = np.indices((64, 64))
    reads = np.stack([a.read(r, c) for _ in range(40)])
    quiet = rel == 0
    assert np.all(reads[:, quiet] == 20.0)                                    # exact reads elsewhere
    levels = 20.0 * (1 + np.array([-0.5, 0.5])[:, None] * rel[~quiet])
    hit = np.isclose(reads[:, ~quiet][:, None, :], levels[None], rtol=1e-12).any(axis=1)
    assert hit.all()                                                          # one of two levels
    up = reads[:, ~quiet] > 20.0
    assert 0.4 < up.mean() < 0.6
    sig = a.array_read_sigma_uS(a.g_uS)
    assert np.allclose(sig, 0.5 * rel * 20.0)
    assert np.array_equal(a.array_read_sigma_uS(np.full((3, 3), 20.0)), np.zeros((3, 3)))
    ideal = RRAMArray(8, 8, RRAMParams.noise_free())
    assert not ideal.rtn_rel.any()


def test_write_verify_budget_trades_pulses_for_working_cell_failures():
    """Working cells fail from their dynamics when the round budget is cut; the stuck cells fail
    at any budget (a separate share)."""
    from neurram.figures import write_verify_budget_sweep
    rows = write_verify_budget_sweep(64, 64, seed=1, rounds=(1, 4, 40))
    by = {r["max_rounds"]: r for r in rows}
    assert by[1]["working_unconverged"] > 10 * by[4]["working_unconverged"] > 0
    assert by[40]["working_unconverged"] <= 0.001 * by[40]["cells"]
    assert by[1]["stuck_unconverged"] == by[4]["stuck_unconverged"] == by[40]["stuck_unconverged"] > 0
    assert by[1]["pulses_mean"] < by[4]["pulses_mean"] <= by[40]["pulses_mean"]


@pytest.mark.parametrize("params", [RRAMParams(), RRAMParams(p_stuck_off=0.05, p_stuck_on=0.05),
                                    RRAMParams.noise_free()], ids=["default", "stuck", "ideal"])
def test_one_cell_pulses_give_the_bits_of_the_array_path(params):
    """A pulse on one cell (the co-simulated engine's case) takes a scalar path; it must leave
    every cell exactly as the array path does: SET and RESET, at every amplitude of the ramps."""
    a, b = RRAMArray(16, 16, params, seed=3), RRAMArray(16, 16, params, seed=3)
    rng = np.random.default_rng(0)
    for _ in range(12):
        rows, cols = rng.integers(0, 16, 40), rng.integers(0, 16, 40)
        keep = np.unique(rows * 16 + cols, return_index=True)[1]
        rows, cols = rows[keep], cols[keep]
        pol = rng.integers(0, 2, rows.size)
        amp = rng.choice(np.arange(1.2, 3.4, 0.1), rows.size)
        gate = np.where(pol == 0, 2.5, 5.0)
        a.apply_pulses(rows, cols, pol, amp, 1000, gate)
        for k in range(rows.size):
            b.apply_pulses(int(rows[k]), int(cols[k]), SET if pol[k] == 0 else RESET, float(amp[k]), 1000,
                           float(gate[k]))
        np.testing.assert_array_equal(a.g_uS, b.g_uS)
    np.testing.assert_array_equal(a.pulse_count, b.pulse_count)
    assert a.pulse_count.sum() > 300
