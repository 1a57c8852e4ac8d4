"""Tests of the write-verify algorithm (firmware/writeverify.py), alone over scripted fake cells
and together with the RRAM device model."""

import numpy as np
import pytest

from neurram.firmware.writeverify import (
    FAIL_NONE, FAIL_ROUNDS, FAIL_TOP_PULSES, RESET, SET, CellAccess, WriteVerifyConfig,
    write_verify,
)
from neurram.models.device import RRAMArray, RRAMParams, layer_targets


# -- the algorithm over scripted cells ------------------------------------------------------------

class FakeCells:
    """Exact reads; a pulse applies ``response(g, polarity, amplitude_mV)`` to each cell. Records
    every pulse call."""

    def __init__(self, g, response):
        self.g = np.array(g, dtype=float)
        self.response = response
        self.calls = []
        self.reads = 0

    def read_cells(self, rows, cols):
        self.reads += len(rows)
        return self.g[cols].copy()

    def pulse_cells(self, rows, cols, polarity, amplitude_mV, width_ns, gate_mV):
        self.calls.append((cols.copy(), polarity.copy(), amplitude_mV.copy(), width_ns.copy(), gate_mV.copy()))
        self.g[cols] = self.response(self.g[cols], polarity, amplitude_mV)


def _run(g0, targets, response, config=WriteVerifyConfig()):
    cells = FakeCells(g0, response)
    n = len(g0)
    rep = write_verify(cells, np.zeros(n, int), np.arange(n), targets, config)
    return cells, rep


def test_protocol_is_satisfied():
    assert isinstance(FakeCells([0.0], None), CellAccess)
    assert isinstance(RRAMArray(2, 2).cell_access(), CellAccess)


def test_in_window_cell_needs_no_pulse_and_two_reads():
    cells, rep = _run([10.3], [10.0], lambda g, p, a: g)
    assert rep.converged.all() and rep.pulses[0] == 0 and rep.rounds[0] == 0
    assert cells.reads == 2 and rep.reads == 2       # first read + confirming read
    assert rep.fail_reason[0] == FAIL_NONE


def test_ramp_amplitudes_gates_and_width():
    # A cell that only moves at >= 2.0 V SET: the loop ramps 1.2, 1.3, ... V.
    def resp(g, p, a):
        return np.where((p == SET) & (a >= 2000), g + 3.0, g)
    cells, rep = _run([5.0], [12.0], resp)
    amps = [int(c[2][0]) for c in cells.calls]
    assert amps[:9] == [1200, 1300, 1400, 1500, 1600, 1700, 1800, 1900, 2000]
    assert all(int(c[1][0]) == SET and int(c[4][0]) == 2500 and int(c[3][0]) == 1000 for c in cells.calls)
    # 5 -> 8 (2.0 V) -> 11 (2.1 V): inside 12 ± 1 after the 10th pulse.
    assert rep.converged[0] and rep.pulses[0] == 10 and rep.rounds[0] == 1
    assert rep.final_g[0] == pytest.approx(11.0)


def test_overshoot_then_reset_round():
    # SET jumps +8 µS at >= 1.5 V (overshoots 10 ± 1 from 5); RESET lowers 2.5 µS at >= 1.4 V.
    def resp(g, p, a):
        return np.where(p == SET, np.where(a >= 1500, g + 8.0, g), np.where(a >= 1400, g - 2.5, g))
    cells, rep = _run([5.0], [10.0], resp)
    pol = [int(c[1][0]) for c in cells.calls]
    amps = [int(c[2][0]) for c in cells.calls]
    assert pol == [SET] * 4 + [RESET] * 3
    assert amps == [1200, 1300, 1400, 1500, 1200, 1300, 1400]
    assert rep.rounds[0] == 2 and rep.converged[0]
    assert rep.set_pulses[0] == 4 and rep.reset_pulses[0] == 3
    assert rep.final_g[0] == pytest.approx(10.5)


def test_unresponsive_cell_fails_after_ramp_plus_top_pulses():
    cells, rep = _run([0.2], [20.0], lambda g, p, a: g)
    amps = [int(c[2][0]) for c in cells.calls]
    assert len(amps) == 21 + 30                  # 1.2..3.2 V ramp, then 30 pulses at 3.3 V
    assert amps[20] == 3200 and amps[21:] == [3300] * 30
    assert not rep.converged[0] and rep.fail_reason[0] == FAIL_TOP_PULSES
    assert rep.unconverged == [(0, 0, 20.0, pytest.approx(0.2))]


def test_oscillating_cell_fails_after_max_rounds():
    # Every pulse jumps across the window: SET to 15, RESET to 5, target 10 ± 1.
    def resp(g, p, a):
        return np.where(p == SET, 15.0, 5.0)
    cfg = WriteVerifyConfig(max_rounds=7)
    cells, rep = _run([5.0], [10.0], resp, cfg)
    assert not rep.converged[0] and rep.fail_reason[0] == FAIL_ROUNDS
    assert rep.rounds[0] == 7 and rep.pulses[0] == 7
    assert [int(c[1][0]) for c in cells.calls] == [SET, RESET] * 3 + [SET]


def test_off_targets_accept_below_g_off_and_reset_from_2v5():
    def resp(g, p, a):
        return np.where(p == RESET, g * 0.5, g)
    cells, rep = _run([5.0, 0.5, 1.4], [0.0, 0.0, 0.6], resp)
    assert rep.converged.all()
    assert rep.pulses.tolist() == [3, 0, 1]      # 5 -> 2.5 -> 1.25 -> 0.625; 0.5 ok; 1.4 -> 0.7
    first = cells.calls[0]
    assert first[1].tolist() == [RESET, RESET] and first[2].tolist() == [2500, 2500]
    # Disabled: target 0.6 uses the ordinary ±1 µS window, so 1.4 is accepted without a pulse.
    _, rep2 = _run([1.4], [0.6], resp, WriteVerifyConfig(g_off_uS=0.0))
    assert rep2.pulses[0] == 0 and rep2.converged[0]


def test_confirm_read_failure_continues_programming():
    class Flaky(FakeCells):
        """Reads 10.0 first (in window), then the truth (8.0)."""
        def read_cells(self, rows, cols):
            self.reads += len(rows)
            return np.array([10.0]) if self.reads == 1 else self.g[cols].copy()
    cells = Flaky([8.0], lambda g, p, a: np.where((p == SET) & (a >= 1300), g + 1.5, g))
    rep = write_verify(cells, [0], [0], [10.0])
    assert rep.converged[0] and rep.pulses[0] == 2   # 1.2 V nothing, 1.3 V: 8 -> 9.5
    assert rep.final_g[0] == pytest.approx(9.5)


def test_many_cells_advance_together():
    n = 50
    def resp(g, p, a):
        return np.where(p == SET, g + 0.001 * np.maximum(a - 1500, 0), g - 0.001 * np.maximum(a - 1500, 0))
    cells, rep = _run(np.linspace(0, 30, n), np.linspace(30, 0, n), resp)
    assert rep.converged.all()
    assert max(len(c[0]) for c in cells.calls) == np.sum(np.abs(np.linspace(0, 30, n) - np.linspace(30, 0, n)) > 1)
    for c in cells.calls:                 # one call carries each cell at most once
        assert len(np.unique(c[0])) == len(c[0])


def test_input_validation():
    cells = FakeCells([0.0, 0.0], lambda g, p, a: g)
    with pytest.raises(ValueError, match="cell \\(0, 1\\)"):
        write_verify(cells, [0, 0], [0, 1], [1.0, np.nan])
    with pytest.raises(ValueError, match="negative"):
        write_verify(cells, [0, 0], [0, 1], [1.0, -2.0])
    with pytest.raises(ValueError, match="more than once"):
        write_verify(cells, [0, 0], [1, 1], [1.0, 2.0])
    with pytest.raises(ValueError):
        WriteVerifyConfig(set_stop_V=1.0)
    with pytest.raises(ValueError):
        WriteVerifyConfig(max_rounds=0)
    assert cells.calls == [] and cells.reads == 0         # nothing touched


def test_report_summary_histogram_and_progress():
    seen = []
    arr = RRAMArray(16, 16, RRAMParams(), seed=0)
    r, c = np.indices((16, 16))
    rep = write_verify(arr.cell_access(), r, c, layer_targets(16, 16, seed=0),
                       progress=lambda it, done, total: seen.append((it, done, total)))
    counts, edges = rep.pulse_histogram()
    assert counts.sum() == 256 and edges[0] == 0
    text = rep.summary()
    assert "256 cells" in text and "unconverged" in text and "histogram" in text
    assert [s[0] for s in seen] == list(range(1, rep.iterations + 1))
    assert all(a[1] <= b[1] for a, b in zip(seen, seen[1:])) and seen[-1][1:] == (256, 256)
    assert rep.pulses.sum() == rep.set_pulses.sum() + rep.reset_pulses.sum()


# -- with the device model -----------------------------------------------------------------------------

def _wv(rows, cols, seed, params=RRAMParams(), targets=None):
    arr = RRAMArray(rows, cols, params, seed=seed)
    tgt = layer_targets(rows, cols, params.g_max_uS, seed=seed) if targets is None else targets
    r, c = np.indices(tgt.shape)
    return arr, tgt, write_verify(arr.cell_access(), r, c, tgt)


def test_64x64_converges_and_true_conductance_is_in_window():
    arr, tgt, rep = _wv(64, 64, seed=3)
    assert rep.converged.mean() >= 0.995
    conv = rep.converged.reshape(tgt.shape)
    cfg = rep.config
    # Window: target ± g_tol, or [0, g_off] for off targets; plus 4 σ of read noise (two reads
    # inside the window can still come from a cell a little outside it).
    # A cell with random telegraph noise can also have been read in its other level.
    margin = (4 * arr.read_noise_sigma_uS(np.maximum(tgt, cfg.g_off_uS))
              + 0.5 * arr.rtn_rel * (np.maximum(tgt, cfg.g_off_uS) + cfg.g_tol_uS))
    lo = np.where(tgt < cfg.g_off_uS, 0.0, tgt - cfg.g_tol_uS) - margin
    hi = np.where(tgt < cfg.g_off_uS, cfg.g_off_uS, tgt + cfg.g_tol_uS) + margin
    g = arr.g_uS
    assert np.all((g[conv] >= lo[conv]) & (g[conv] <= hi[conv]))
    # And most converged cells are strictly inside the nominal window: two reads with ~1 % noise
    # accept a few cells just outside it (seeds 0-5: 96.6-97.4 % inside).
    inside = (g >= lo + margin) & (g <= hi - margin)
    assert inside[conv].mean() > 0.95


def test_full_array_unconverged_fraction_near_chip():
    """One pass over a 256 x 256 array: the chip left 3 of 1,660 cells (0.18 %) unconverged.
    Over seeds 0-9 the model gives 0.16-0.21 % (mean 0.18 %); accepted band 0.10-0.30 %."""
    arr, tgt, rep = _wv(256, 256, seed=0)
    assert 0.0010 <= rep.unconverged_fraction <= 0.0030
    # Every stuck-on cell fails; stuck-off cells fail unless their target is "off".
    assert not rep.converged.reshape(tgt.shape)[arr.stuck_on].any()
    so = arr.stuck_off & (tgt > 1.0 + 0.3 + 1.0)
    assert not rep.converged.reshape(tgt.shape)[so].any()
    # Pulse statistics stay within the loop's bounds.
    assert rep.pulses.max() <= rep.config.max_rounds * (21 + rep.config.max_pulses_per_round)
    assert 2 < rep.pulses.mean() < 30


def test_stuck_cells_reported_unconverged():
    p = RRAMParams(p_stuck_off=0.05, p_stuck_on=0.05)
    rng = np.random.default_rng(1)
    tgt = rng.uniform(5.0, 35.0, (32, 32))
    arr, tgt, rep = _wv(32, 32, seed=4, params=p, targets=tgt)
    conv = rep.converged.reshape(tgt.shape)
    stuck = arr.stuck_off | arr.stuck_on
    assert stuck.sum() > 50
    assert not conv[stuck].any()
    assert conv[~stuck].mean() >= 0.995
    listed = {(r, c) for r, c, _, _ in rep.unconverged}
    assert set(zip(*np.nonzero(stuck))) <= listed
    assert np.all(arr.g_uS[arr.stuck_off] < 1.0) and np.all(arr.g_uS[arr.stuck_on] > p.g_max_uS)


def test_noise_free_write_verify_deterministic_and_exact():
    p = RRAMParams.noise_free()
    a, tgt, ra = _wv(32, 32, seed=1, params=p, targets=layer_targets(32, 32, seed=5))
    b, _, rb = _wv(32, 32, seed=2, params=p, targets=tgt)
    assert ra.converged.all()
    np.testing.assert_array_equal(ra.pulses, rb.pulses)
    np.testing.assert_array_equal(a.g_uS, b.g_uS)
    np.testing.assert_array_equal(ra.final_g, a.g_uS.ravel())     # reads are exact
    off = tgt < ra.config.g_off_uS
    assert np.all(np.abs(a.g_uS - tgt)[~off] <= ra.config.g_tol_uS)
    assert np.all(a.g_uS[off] <= ra.config.g_off_uS)


def test_same_seed_bit_identical_write_verify():
    a, _, ra = _wv(32, 32, seed=7)
    b, _, rb = _wv(32, 32, seed=7)
    c, _, rc = _wv(32, 32, seed=8)
    for f in ("final_g", "pulses", "rounds", "converged", "set_pulses", "reset_pulses"):
        assert np.array_equal(getattr(ra, f), getattr(rb, f))
    assert np.array_equal(a.g_uS, b.g_uS)
    assert not np.array_equal(a.g_uS, c.g_uS)
