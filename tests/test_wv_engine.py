"""The on-chip write-verify engine (CTRL.wv_start, WV_CELLS) on the fast model: the byte protocol's
operations, the in-process bulk transaction and the host's loop over the same procedure agree cell
for cell at full core size with noise on; refusals; the driver uses the engine by default.
(The RTL's engine against the fast model: tests/test_cosim_core.py.)"""

import numpy as np
import pytest

from neurram.config import ChipConfig
from neurram.firmware.driver import Chip
from neurram.firmware.protocol import Link, LoopbackTransport
from neurram.firmware.writeverify import WriteVerifyConfig
from neurram.models.device import layer_targets
from neurram.sim.fastlink import FastLink
from neurram.sim.fastmodel import FastChip
from neurram.spec import regmap as R
from neurram.spec import writeverify as wv
from neurram.spec.enums import WvStatus
from neurram.spec.errors import ChipError

FULL = ChipConfig(core_grid=(1, 2), rows=256, cols=256)


def _pair(config=FULL, seed=5):
    """Two chips of the same seed: one over the byte protocol, one in process."""
    a, b = FastChip(config, seed=seed), FastChip(config, seed=seed)
    return (a, Chip(Link(LoopbackTransport(a.handle_bytes)))), (b, Chip(FastLink(b)))


def _targets(rows=256, cols=256, seed=0):
    return layer_targets(rows, cols, 40.0, seed=seed)


def test_engine_over_the_protocol_equals_the_bulk_transaction_full_core():
    """Rows 16-27 of a 256 x 256 core (three operations of wv_rows = 4), every cell, noise on:
    identical results, conductances, counters and registers."""
    (fa, ca), (fb, cb) = _pair()
    t = _targets()[16:28]
    rows, cols = np.indices(t.shape)
    rows += 16
    ra = ca.program(1, t, rows=rows, cols=cols)
    rb = cb.program(1, t, rows=rows, cols=cols)
    assert ra.iterations == 3                                     # operations run
    for name in ("final_g", "converged", "pulses", "fail_reason"):
        np.testing.assert_array_equal(getattr(ra, name), getattr(rb, name), err_msg=name)
    assert ra.reads == rb.reads > 2 * t.size
    np.testing.assert_array_equal(fa.cores[1].model.device.g_uS, fb.cores[1].model.device.g_uS)
    np.testing.assert_array_equal(fa.cores[1].wv_words, fb.cores[1].wv_words)
    assert fa.cores[1].counters == fb.cores[1].counters
    for name in ("CELL_ADDR", "WV_LIMITS", "CELL_RESULT", "STATUS"):
        assert ca.read_reg(name) == cb.read_reg(name), name
    # Noise on: the engine programs to the published figure (docs/chip.md §3: a few cells per
    # thousand unconverged) and the cells land near their targets.
    assert ra.converged.mean() > 0.99
    g = fa.cores[1].model.device.g_uS[rows, cols]
    ok = ra.converged.reshape(t.shape)
    assert np.percentile(np.abs(g[ok] - t[ok]), 95) < 1.5
    assert 3 < ra.pulses.mean() < 60


def test_engine_follows_the_specified_procedure_cell_for_cell():
    """The chip's engine gives exactly what the spec's procedure on 10 nS codes gives when run
    by the host on a twin chip, one pulse and one read per register command."""
    config = ChipConfig.small(32, cores=(1, 1), wv_rows=2)
    (fa, ca), (fb, _) = _pair(config, seed=9)
    t = _targets(32, 32, seed=4)[6:8]
    rows, cols = np.indices(t.shape)
    rows += 6
    cfg = WriteVerifyConfig(g_tol_uS=0.5, max_rounds=6)
    rep = ca.program(0, t, rows=rows, cols=cols, config=cfg)

    class Cells:        # the twin's cells, reads as codes
        def read_cells(self, r, c):
            return fb.cores[0].model.read_cell(r, c, 150).astype(float)

        def pulse_cells(self, r, c, pol, amp, width, gate):
            fb.cores[0].model.program_pulse(r, c, pol, amp, width, gate)

    ref = wv.write_verify_codes(Cells(), rows.ravel(), cols.ravel(), wv.uS_to_code(t.ravel()), 50, cfg)
    np.testing.assert_array_equal(rep.final_g, ref.final_g * wv.G_LSB_uS)
    np.testing.assert_array_equal(rep.pulses, ref.pulses)
    np.testing.assert_array_equal(rep.converged, ref.converged)
    assert rep.reads == ref.reads
    np.testing.assert_array_equal(fa.cores[0].model.device.g_uS, fb.cores[0].model.device.g_uS)


def test_words_without_the_pending_bit_are_left_alone_and_statuses_name_the_failure():
    fast = FastChip(ChipConfig.small(16), seed=2)
    chip = Chip(Link(LoopbackTransport(fast.handle_bytes)))
    chip.enable_cores([0])
    words = np.zeros(16, np.uint32)
    words[3] = 0x1234                                             # not pending: untouched
    words[5] = wv.target_word(2500, 100)                          # 25 µS ± 1 µS
    words[6] = wv.target_word(2500, 100)
    chip._buffer_write(R.Space.WV_CELLS, 0, words)
    # A budget of one round with one top-amplitude pulse cannot reach 25 µS from ~0.5 µS.
    chip.write_reg("WV_LIMITS", R.pack("WV_LIMITS", **{**chip.fields("WV_LIMITS"), "rows": 1,
                                                        "max_rounds": 1, "max_top_pulses": 1}))
    chip.write_reg("WV_SET", R.pack("WV_SET", **{**chip.fields("WV_SET"), "set_stop_mV": 1300}))
    chip.write_reg("CELL_ADDR", R.pack("CELL_ADDR", core=0, row=3, col=0))
    chip.write_reg("CTRL", R.pack("CTRL", wv_start=1))
    assert not chip.fields("STATUS")["config_error"]
    out = chip._buffer_read(R.Space.WV_CELLS, 0, 16)
    assert out[3] == 0x1234 and out[0] == 0
    res = wv.unpack_result(out[5:7])
    assert list(res["status"]) == [WvStatus.FAIL_TOP_PULSES] * 2
    assert list(res["pulses"]) == [2, 2]                         # 1.2 V, then 1.3 V at the top
    assert fast.cores[0].counters["program"] == 4


@pytest.mark.parametrize("bad", [{"rows": 0}, {"rows": 5}, {"row": 14, "rows": 3}, {"step_mV": 0},
                                 {"confirm_reads": 0}, {"set_stop_mV": 1000}, {"core_enabled": False}])
def test_impossible_operations_are_refused_and_change_nothing(bad):
    fast = FastChip(ChipConfig.small(16), seed=2)
    chip = Chip(Link(LoopbackTransport(fast.handle_bytes)))
    chip.enable_cores([0] if bad.get("core_enabled", True) else [])
    chip._buffer_write(R.Space.WV_CELLS, 0, wv.target_word(np.full(16, 2000), 100))
    for name in ("WV_LIMITS", "WV_SET", "WV_RESET"):
        f = chip.fields(name)
        chip.write_reg(name, R.pack(name, **{**f, **{k: v for k, v in bad.items() if k in f},
                                             **({"rows": bad.get("rows", 1)} if name == "WV_LIMITS" else {})}))
    g0 = fast.cores[0].model.device.g_uS.copy()
    chip.write_reg("CELL_ADDR", R.pack("CELL_ADDR", core=0, row=bad.get("row", 0), col=0))
    chip.write_reg("CTRL", R.pack("CTRL", wv_start=1))
    assert chip.fields("STATUS")["config_error"] == 1
    assert wv.unpack_targets(chip._buffer_read(R.Space.WV_CELLS, 0, 16))["pending"].all()
    np.testing.assert_array_equal(fast.cores[0].model.device.g_uS, g0)


def test_driver_uses_the_engine_by_default_and_the_host_loop_on_request():
    fast = FastChip(ChipConfig.small(16), seed=3)
    chip = Chip(FastLink(fast))
    assert chip.has_engine()
    t = _targets(16, 16)
    rep = chip.program(0, t)
    assert rep.rounds is None and rep.n_cells == 256                # the engine's report
    host = chip.program(0, t, engine=False)
    assert host.rounds is not None
    assert "unconverged" in rep.summary() and "SET" not in rep.summary().split("\n")[1]
    with pytest.raises(ChipError, match="tolerances"):
        chip.program(0, t, config=WriteVerifyConfig(g_tol_uS=3.0))


@pytest.mark.cosim
def test_rtl_engine_equals_the_fast_model_cell_for_cell():
    """The Verilog's engine, driven over the byte protocol, against the fast model's: the same
    per-cell results (last read, pulses, status), the same conductances (every cell read back
    through the protocol), the same program and read counts. Noise on, a 32 x 32 core, two
    operations of wv_rows = 4 rows, off targets included, a tight budget so that some cells fail."""
    from neurram.targets import open_chip

    config = ChipConfig(core_grid=(1, 1), rows=32, cols=32, wv_rows=4)
    t = _targets(32, 32, seed=6)[8:16]
    rows, cols = np.indices(t.shape)
    rows += 8
    cfg = WriteVerifyConfig(g_tol_uS=0.5, max_rounds=4, max_pulses_per_round=6)
    reports, readback, counters = [], [], []
    for target in ("rtl", "model"):
        chip = open_chip(target, config=config, seed=4)
        try:
            reports.append(chip.program(0, t, rows=rows, cols=cols, config=cfg))
            readback.append(chip.cell_access(0).read_cells(rows.ravel(), cols.ravel()))
            counters.append(chip.counters(0))
        finally:
            transport = getattr(chip.link, "transport", None)
            if transport is not None:
                transport.close()
    rtl, fast = reports
    for name in ("final_g", "pulses", "converged", "fail_reason"):
        np.testing.assert_array_equal(getattr(rtl, name), getattr(fast, name), err_msg=name)
    np.testing.assert_array_equal(readback[0], readback[1])
    assert counters[0]["program"] == counters[1]["program"] == int(fast.pulses.sum()) > 0
    assert counters[0]["read"] == counters[1]["read"]
    assert rtl.reads == fast.reads
    # The tight budget leaves some cells unconverged, on both chips alike.
    assert 0 < (~fast.converged).sum() < fast.n_cells
