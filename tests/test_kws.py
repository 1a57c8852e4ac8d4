"""Keyword spotting (docs/kws.md): the MFCC front end, the torch-free checkpoint loader, the
software LSTM and the LSTM on the chip.

Tests that need the published checkpoint or the Speech Commands test files read them from
../shared (next to the repository) and skip when they are absent; nothing derived from the
checkpoint is stored here.
"""

import math
import struct
import zipfile

import numpy as np
import pytest

from neurram.firmware import speech
from neurram.firmware.tasks import kws
from neurram.spec import regmap as R
from neurram.targets import open_chip

from .conftest import shared_path

CHECKPOINT = shared_path("checkpoints", "neurram_kws_lstm", "hidden_108_msb_4.pkl")
DATA = shared_path("datasets")


def _need_checkpoint():
    if not CHECKPOINT.is_file():
        pytest.skip(f"the published KWS checkpoint is not at {CHECKPOINT}")


def _need_data():
    if not (DATA / "speech_commands_v0.02_test_part1of2.npz").is_file():
        pytest.skip(f"the Speech Commands test files are not in {DATA}")


# -- the MFCC front end ----------------------------------------------------------------------------

def _htk_mel(f):
    return 2595.0 * math.log10(1.0 + f / 700.0)


def _htk_hz(m):
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def _expected_tone_mfcc(k0: int, amplitude: float) -> np.ndarray:
    """Closed form, scalar arithmetic: the MFCCs of a frame of a pure tone of exactly k0 periods per
    641 samples. The periodic Hann window's DFT is N/2 at bin 0, -N/4 at bins ±1 and 0 elsewhere,
    so the power spectrum holds (A N/4)^2 at bin k0, (A N/8)^2 at k0 ± 1 and nothing else. Bins sit
    at 25 Hz steps (linspace(0, 8000, 321)); 160 triangular HTK filters over 20-4000 Hz."""
    N = 641
    power = {k0: (amplitude * N / 4) ** 2, k0 - 1: (amplitude * N / 8) ** 2, k0 + 1: (amplitude * N / 8) ** 2}
    m_lo, m_hi = _htk_mel(20.0), _htk_mel(4000.0)
    edges = [_htk_hz(m_lo + (m_hi - m_lo) * i / 161) for i in range(162)]
    log_mel = []
    for m in range(160):
        lo, c, hi = edges[m], edges[m + 1], edges[m + 2]
        e = 0.0
        for k, p in power.items():
            f = 25.0 * k
            w = max(0.0, min((f - lo) / (c - lo), (hi - f) / (hi - c)))
            e += p * w
        log_mel.append(math.log(e + 1e-6))
    out = []
    for j in range(40):
        s = sum(log_mel[m] * math.cos(math.pi * j * (m + 0.5) / 160) for m in range(160))
        out.append(s * math.sqrt((1.0 if j else 0.5) * 2.0 / 160))
    return np.array(out), np.array(log_mel)


@pytest.mark.parametrize("k0", [17, 60, 120])
def test_mfcc_of_a_pure_tone_matches_the_closed_form(k0):
    amplitude = 0.5
    n = np.arange(16000)
    tone = amplitude * np.sin(2 * np.pi * k0 * n / 641 + 0.3)
    feats = speech.mfcc(tone[None])[0]
    assert feats.shape == (50, 40)
    expected, log_mel = _expected_tone_mfcc(k0, amplitude)
    for t in (1, 25, 48):            # frames clear of the reflect-padded ends
        np.testing.assert_allclose(feats[t], expected, rtol=1e-7, atol=1e-6)
    # the loudest mel band is the one whose centre lies nearest the tone (25 Hz per bin)
    centres = [_htk_hz(_htk_mel(20.0) + (_htk_mel(4000.0) - _htk_mel(20.0)) * (i + 1) / 161) for i in range(160)]
    nearest = int(np.argmin([abs(c - 25.0 * k0) for c in centres]))
    assert abs(int(np.argmax(log_mel)) - nearest) <= 1


def test_mfcc_of_silence_and_of_int16_input():
    z = speech.mfcc(np.zeros((2, 16000), np.int16))
    np.testing.assert_allclose(z[..., 0], math.sqrt(160) * math.log(1e-6))     # c0 of digital silence
    np.testing.assert_allclose(z[..., 1:], 0.0, atol=1e-9)
    x = (np.random.default_rng(0).standard_normal(16000) * 3000).astype(np.int16)
    np.testing.assert_allclose(speech.mfcc(x[None]), speech.mfcc((x / 32768.0)[None]))
    short = speech.mfcc(x[None, :15000].astype(np.float64) / 32768.0)     # centre zero padding
    padded = np.zeros(16000)
    padded[500:15500] = x[:15000] / 32768.0
    np.testing.assert_allclose(short, speech.mfcc(padded[None]))


def test_labels_are_remapped_to_the_model_order():
    y = speech.labels_from_dataset([0, 1, 2, 11])
    assert [speech.LABELS[k] for k in y] == ["silence", "unknown", "yes", "go"]


# -- the checkpoint loader -------------------------------------------------------------------------

def _s(text: str) -> bytes:               # BINUNICODE
    b = text.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def _i(v: int) -> bytes:                  # BININT
    return b"J" + struct.pack("<i", v)


def _tensor_pickle(key: str, numel: int, size, stride) -> bytes:
    """Protocol-2 opcodes of {'w': tensor} as torch.save writes them, by hand (no torch)."""
    storage = b"(" + _s("storage") + b"ctorch\nFloatStorage\n" + _s(key) + _s("cpu") + _i(numel) + b"tQ"
    tup = lambda vals: b"(" + b"".join(_i(v) for v in vals) + b"t"   # noqa: E731
    tensor = (b"ctorch._utils\n_rebuild_tensor_v2\n(" + storage + _i(0) + tup(size) + tup(stride) + b"\x89"
              + b"ccollections\nOrderedDict\n)R" + b"tR")
    return b"\x80\x02ccollections\nOrderedDict\n)R" + _s("w") + tensor + b"s."


def _write_checkpoint(path, pkl: bytes, storages: dict):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/version", "3\n")
        for key, arr in storages.items():
            z.writestr(f"archive/data/{key}", np.asarray(arr, "<f4").tobytes())


def test_loader_reads_a_torch_zip_checkpoint_with_strides(tmp_path):
    p = tmp_path / "ok.pkl"
    _write_checkpoint(p, _tensor_pickle("0", 6, (2, 3), (1, 2)), {"0": np.arange(6)})
    w = speech.load_checkpoint(p)["w"]
    np.testing.assert_array_equal(w, np.arange(6, dtype=np.float32).reshape(3, 2).T)   # column-major view


def test_loader_refuses_a_malicious_pickle(tmp_path):
    marker = tmp_path / "pwned"
    evil = (b"\x80\x02cos\nsystem\n(" + _s(f"touch {marker}") + b"tR.")
    p = tmp_path / "evil.pkl"
    _write_checkpoint(p, evil, {})
    with pytest.raises(speech.UnsafeCheckpointError, match="os.system"):
        speech.load_checkpoint(p)
    assert not marker.exists()
    builtin = b"\x80\x02cbuiltins\neval\n(" + _s("1+1") + b"tR."
    _write_checkpoint(p, builtin, {})
    with pytest.raises(speech.UnsafeCheckpointError, match="builtins.eval"):
        speech.load_checkpoint(p)


def test_loader_names_the_fix_for_a_missing_or_foreign_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="--checkpoint PATH"):
        speech.load_checkpoint(tmp_path / "absent.pkl")
    (tmp_path / "plain.pkl").write_bytes(b"\x80\x02}.")
    with pytest.raises(speech.CheckpointError, match="not a PyTorch zip checkpoint"):
        speech.load_checkpoint(tmp_path / "plain.pkl")


# -- the LSTM against a plain numpy cell -----------------------------------------------------------

def _random_model(rng, blocks=2, n_in=6, hidden=5, a_out=1.0):
    a = {k: rng.uniform(0.9, 1.1, blocks) for k in range(1, 15)}
    a[1] = rng.uniform(3.0, 4.0, blocks)
    a[7], a[9] = rng.uniform(3, 4, blocks), rng.uniform(3, 4, blocks)
    a[12], a[13], a[14] = rng.uniform(1, 1.5, blocks), rng.uniform(0.6, 1, blocks), rng.uniform(1.5, 2, blocks)
    return speech.KwsModel(
        w_ih=speech.clip(rng.normal(0, 0.1, (blocks, n_in, 4 * hidden)), 0.1),
        w_hh=speech.clip(rng.normal(0, 0.1, (blocks, hidden, 4 * hidden)), 0.1),
        b_ih=rng.normal(0, 0.05, (blocks, 4 * hidden)), b_hh=rng.normal(0, 0.05, (blocks, 4 * hidden)),
        w_fc=speech.clip(rng.normal(0, 0.1, (blocks, hidden, 12)), 0.1), b_fc=rng.normal(0, 0.01, (blocks, 12)),
        a=a, fa1=rng.uniform(0.9, 1.0, blocks), fa2=rng.uniform(0.2, 0.4, blocks), a_out=a_out)


def _plain_q(v, bits, a):
    """Q(v, bits, a) of one number: round(clamp(v/a, ±(1 - 1/s))·s)·a/s, half to even."""
    s = 2 ** (bits - 1)
    return round(min(max(v / a, -1 + 1 / s), 1 - 1 / s) * s) * a / s


def _plain_forward(m, x):
    """One clip through the model, element by element in plain Python floats."""
    clip = lambda v, a: max(-a, min(a, v))                 # noqa: E731
    sig = lambda v: 1.0 / (1.0 + math.exp(-v))              # noqa: E731
    H, n_in = m.w_hh.shape[1], m.w_ih.shape[1]
    total = [0.0] * 12
    for b in range(m.blocks):
        a = {k: float(v[b]) for k, v in m.a.items()}
        h, c = [0.0] * H, [0.0] * H
        for t in range(x.shape[0]):
            xq = [_plain_q(clip(float(x[t, i]), a[1]), 4, a[1]) for i in range(n_in)]
            hq = [_plain_q(clip(h[i], a[11]), 4, a[11]) for i in range(H)]
            g = []
            for col in range(4 * H):
                p1 = sum(xq[i] * m.w_ih[b, i, col] for i in range(n_in)) + m.b_ih[b, col]
                p2 = sum(hq[i] * m.w_hh[b, i, col] for i in range(H)) + m.b_hh[b, col]
                g.append(clip(clip(p1, a[12]) + clip(p2, a[13]), a[14]))
            for u in range(H):
                i_, j_, f_, o_ = g[u], g[H + u], g[2 * H + u], g[3 * H + u]
                c[u] = clip(clip(c[u] * clip(sig(f_), a[3]), a[7]) + clip(clip(sig(i_), a[4]) * clip(math.tanh(j_), a[5]), a[8]), a[9])
                h[u] = clip(clip(math.tanh(c[u]), a[10]) * clip(sig(o_), a[6]), a[11])
        fa1, fa2 = float(m.fa1[b]), float(m.fa2[b])
        hq = [_plain_q(clip(v, fa1), 4, fa1) for v in h]
        for k in range(12):
            y = sum(hq[i] * m.w_fc[b, i, k] for i in range(H)) + m.b_fc[b, k]
            total[k] += _plain_q(clip(y, fa2), 6, fa2)
    return np.array([_plain_q(clip(v, m.a_out), 8, m.a_out) for v in total])


def test_software_lstm_matches_a_plain_cell():
    rng = np.random.default_rng(3)
    m = _random_model(rng)
    x = rng.normal(0, 1.5, (4, 7, 6))
    z = m.forward(x)
    for n in range(len(x)):
        np.testing.assert_allclose(z[n], _plain_forward(m, x[n]), atol=1e-12)


# -- the LSTM on the chip --------------------------------------------------------------------------

def test_each_mapped_layer_on_a_noise_free_chip_is_its_matrix_to_one_output_step():
    rng = np.random.default_rng(1)
    m = _random_model(rng)
    chip = open_chip("model:noise=off,cores=4x4,rows=32,cols=32", seed=0)
    mapping = kws.map_kws(m, chip.config, ih_copies=2)          # each W_ih pair on two pairs of rows
    assert len(mapping.layers) == 2 * (4 + 4) + 2
    assert all(len(ml.segments[0].inputs) == 2 * 6 for ml in mapping.layers if ".ih." in ml.name)
    rt = kws.KwsRuntime(chip, mapping, m)
    rt.program(progress=False)
    for ml in rt.mapping.layers:
        s = ml.segments[0]
        codes = rng.integers(-7, 8, (64, s.inputs.max() + 1))
        ideal = codes[:, s.inputs] @ ml.weight.T + ml.bias + rt.mapping.host_bias[ml.name]
        # independent of the mapper: the layer's matrix straight from the model
        b, kind = int(ml.name[1]), ml.name.split(".")[1]
        H = m.hidden
        if kind == "fc":
            ref = codes * m.fc_step(b) @ m.w_fc[b] + m.b_fc[b]
        else:
            k = kws.GATES.index(ml.name.split(".")[2])
            w, bias, step = ((m.w_ih[b], m.b_ih[b], m.input_step(b)) if kind == "ih"
                             else (m.w_hh[b], m.b_hh[b], m.hidden_step(b)))
            ref = codes * step @ w[:, k * H:(k + 1) * H] + bias[k * H:(k + 1) * H]
        np.testing.assert_allclose(ideal, ref, atol=1e-12)
        # the weights the cells hold (read back after write-verify: within ±1 µS of their targets)
        rep = rt.reports[s.core]
        g = np.zeros((chip.config.rows, chip.config.cols))
        g[rep.rows, rep.cols] = rep.final_g
        cols = slice(s.col0, s.col0 + s.n_out)
        w_held = (g[s.plus_rows, cols] - g[s.minus_rows, cols]) / kws.G_MAX_uS * ml.w_max
        held = np.concatenate([codes[:, s.inputs], np.full((len(codes), s.bias_rows), 7)], axis=1) @ w_held
        held += rt.mapping.host_bias[ml.name]
        assert np.abs(held - ref).max() < 0.1 * np.abs(ref).max()
        clip = rt.mapping.clip[ml.name]
        y = np.clip(rt.run_layer(ml.name, codes), -clip, clip)
        # one output step of each column: a packet over the column's charge per unit (its gain)
        lsb = s.packet_uV * 1e3 / rt.decoders[(ml.name, 0)].scale_pos
        err = np.abs(y - np.clip(held, -clip, clip)) / lsb
        assert err.max() < 0.75, f"{ml.name}: error {err.max():.2f} output steps"


def test_a_few_clips_end_to_end_on_a_small_noise_free_chip():
    rng = np.random.default_rng(2)
    m = _random_model(rng, n_in=16, hidden=8, a_out=0.5)
    x = rng.normal(0, 2.0, (12, 8, 16))
    z_sw = m.forward(x)
    chip = open_chip("model:noise=off,cores=3x3,rows=64,cols=64", seed=0)
    rt = kws.KwsRuntime(chip, kws.map_kws(m, chip.config, ih_copies=1), m)
    rt.program(progress=False)
    rt.calibrate(kws.calibration_codes(m, x[:4]))
    z = kws.chip_forward(rt, x, progress=False)
    # 6-bit MVM outputs instead of exact partial sums: the outputs follow the software's (two
    # clips' outputs differ by about one standard deviation)
    assert np.corrcoef(z.ravel(), z_sw.ravel())[0, 1] > 0.9
    assert np.mean(np.abs(z - z_sw)) < 0.3 * np.std(z_sw)
    # the whole task on the same chip: report, counters and confusion matrix
    labels = z_sw.argmax(1)
    rep = kws.run_kws(open_chip("model:noise=off,cores=3x3,rows=64,cols=64", seed=0), x, labels, m,
                      progress=False, calibration_features=x[:4], ih_copies=1)
    assert rep.software_accuracy == 1.0 and rep.confusion.sum() == 12
    assert rep.confusion.trace() == round(rep.accuracy * 12)
    assert len(rep.cores_used) <= 9 and rep.mvms == 12 * 2 * (8 * 8 + 1)
    assert {l.name for l in rep.layers} == {"ih", "hh", "fc"}
    assert sum(l.counters["mvm"] for l in rep.layers) == rep.mvms


def test_the_lstm_does_not_fit_a_tiny_chip_and_says_why():
    m = _random_model(np.random.default_rng(0))
    chip = open_chip("model:noise=off,cores=1x1,rows=32,cols=32", seed=0)
    with pytest.raises(kws.MappingError, match="finds no room"):
        kws.map_kws(m, chip.config)


# -- the published checkpoint ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def published():
    _need_checkpoint()
    _need_data()
    from neurram.firmware.datasets import load_speech_commands_test
    model = speech.KwsModel.from_checkpoint(CHECKPOINT)
    x, y = load_speech_commands_test(DATA)
    return model, speech.mfcc(x), speech.labels_from_dataset(y)


def test_published_checkpoint_loads_without_torch():
    _need_checkpoint()
    m = speech.KwsModel.from_checkpoint(CHECKPOINT)
    assert m.w_ih.shape == (4, 40, 432) and m.w_hh.shape == (4, 108, 432) and m.w_fc.shape == (4, 108, 12)
    assert np.abs(m.w_hh).max() == pytest.approx(0.1) and m.a_out == 64.0


def test_software_reference_scores_8448_on_the_canonical_test_set(published):
    model, feats, labels = published
    assert feats.shape == (4890, 50, 40)
    pred = model.predict(feats)
    # 84.48 % measured independently (a float64 re-implementation of the published semantics)
    assert int(np.sum(pred == labels)) == pytest.approx(4131, abs=3)


def test_published_lstm_on_the_chip_a_few_clips(published):
    model, feats, labels = published
    pick = np.linspace(0, len(feats) - 1, 48).round().astype(int)
    chip = open_chip("model", seed=0)
    # one copy of W_ih: 8 cores (two gates a core) + 16 (W_hh) + 4 (dense); two copies: 16 + 16 + 4
    assert len(kws.map_kws(model, chip.config, ih_copies=1).cores_used) == 28
    mapping = kws.map_kws(model, chip.config, ih_copies=2)
    assert len(mapping.cores_used) == 36
    rt = kws.KwsRuntime(chip, mapping, model)
    rt.program(progress=False, repair=False)
    rt.balance_drivers()
    rt.calibrate(kws.calibration_codes(model, feats[pick[::3] + 1]))
    z = kws.chip_forward(rt, feats[pick], progress=False)
    sw = model.predict(feats[pick])
    agree = np.mean(z.argmax(1) == sw)
    assert agree >= 0.85, f"chip and software agree on {100 * agree:.0f} % of the clips"
    assert np.mean(z.argmax(1) == labels[pick]) >= np.mean(sw == labels[pick]) - 0.15


def test_repair_swaps_spare_rows_in_for_bad_rows_only():
    m = _random_model(np.random.default_rng(0))
    cfg = open_chip("model:noise=off,cores=4x4,rows=32,cols=32", seed=0).config
    first = kws.map_kws(m, cfg, ih_copies=1)
    seg = first.layer("b0.hh.i").segments[0]
    core_rows = {int(r) for ml in first.layers if ml.segments[0].core == seg.core for r in ml.segments[0].rows}
    bad = {seg.core: {int(seg.rows[0]), int(seg.rows[5])}}
    keep = {ml.name: ml.segments[0].rows for ml in first.layers}
    place = {ml.name: (ml.segments[0].core, ml.segments[0].col0) for ml in first.layers}
    again = kws.map_kws(m, cfg, ih_copies=1, bad_rows=bad, placement=place, keep_rows=keep)
    new = again.layer("b0.hh.i").segments[0]
    assert (new.core, new.col0) == (seg.core, seg.col0)
    changed = np.flatnonzero(new.rows != seg.rows)
    assert list(changed) == [0, 5]                                   # only the bad rows moved ...
    assert not ({int(r) for r in new.rows[changed]} & (core_rows | bad[seg.core]))   # ... onto spare rows
    for ml in again.layers:                                          # every other segment as it was
        if ml.name != "b0.hh.i":
            np.testing.assert_array_equal(ml.segments[0].rows, keep[ml.name])


def test_driver_balance_makes_a_zero_code_drive_nothing():
    from neurram.spec.mvm import MvmSettings
    m = _random_model(np.random.default_rng(4))
    chip = open_chip("model:cores=4x4,rows=32,cols=32", seed=3)          # noise on: driver mismatch
    rt = kws.KwsRuntime(chip, kws.map_kws(m, chip.config, ih_copies=1), m)
    rt.program(progress=False, repair=False)
    mode = MvmSettings(input_bits=4, input_signed=True, conversion=R.Conversion.SIGN, pulse_multiplier=255)

    def positive(core, bias):
        ml = next(l for l in rt.mapping.layers if l.segments[0].core == core)
        s = ml.segments[0]
        chip.set_bias(core, *bias)
        zero = np.zeros((32, int(s.inputs.max()) + 1), np.int8)
        return float(np.mean(rt.segment_bytes(ml, s, zero, mode) < 0x80))

    v = rt.mapping.v_mV
    before = {c: positive(c, (v, v)) for c in rt.mapping.cores_used}
    chosen = rt.balance_drivers()
    assert set(chosen) == set(rt.mapping.cores_used)
    after = {}
    for c, (vp, vn) in chosen.items():
        assert abs(vp + vn - 2 * v) <= 1                                 # the sum is kept
        after[c] = positive(c, (vp, vn))
        assert abs(after[c] - 0.5) <= abs(before[c] - 0.5)
    # mismatched drivers lean to one side at equal settings; balanced, much less
    lean = lambda d: np.mean([abs(f - 0.5) for f in d.values()])        # noqa: E731
    assert lean(after) < 0.5 * lean(before)
    assert any(chosen[c] != (v, v) for c in chosen)
