"""CIFAR-10 ResNet-20: residual layers, packing onto all 48 cores, spare-row repair, output
splitting, the last-layer fine-tuning on chip features, and chip against software."""

import re

import numpy as np
import pytest

from neurram.config import ChipConfig
from neurram.firmware import nn
from neurram.firmware.mapper import G_MAX_uS, MappingError, map_network
from neurram.firmware.runtime import Runtime
from neurram.firmware.tasks import cifar10
from neurram.targets import open_chip

ACT = {"kind": "relu_q", "bits": 3, "clip": 1.5}


def _q(v, act=ACT):
    return nn.quantize_act(v, act) * nn.act_step(act)


def test_residual_walk_is_a_resnet_block():
    """save / projection shortcut / add / average pool compute what a ResNet block computes."""
    rng = np.random.default_rng(0)
    net = cifar10.random_resnet(seed=3, stages=(4, 8), blocks=1)
    x = rng.integers(0, 256, (6, 3, 12, 12), dtype=np.uint8)
    L = {l.get("name"): l for l in net.layers}

    def conv(h, name):
        l = L[name]
        return nn.conv2d(h, np.asarray(l["weight"], float), np.asarray(l["bias"], float), l["stride"], l["padding"])

    h = nn.quantize_input(x, net.input) * nn.input_step(net.input)
    h = _q(conv(h, "conv1"))
    h = _q(conv(_q(conv(h, "s1b1.conv1")), "s1b1.conv2") + h)                       # identity shortcut
    h = _q(conv(_q(conv(h, "s2b1.conv1")), "s2b1.conv2") + conv(h, "s2b1.proj"))    # projection
    h = _q(h.mean(axis=(2, 3)))
    logits = h @ np.asarray(L["fc"]["weight"], float).T + np.asarray(L["fc"]["bias"], float)
    assert np.allclose(nn.forward(net, x), logits)
    # the walk in code mode (the chip's view) hands the same values on as integer codes
    assert nn.layer_input_codes(net)["fc"] == (3, nn.act_step(ACT), False)


def test_resnet20_fits_one_48_core_chip():
    """ResNet-20 (22 weight layers, ~271 k weights) on the NeuRRAM chip: every layer's inputs and
    outputs covered once, no two segments share a row or a column of a core, G+ - G- encodes W."""
    net = cifar10.random_resnet()
    assert len(net.weight_layers()) == 22
    assert sum(np.asarray(l["weight"]).size for l in net.weight_layers()) == pytest.approx(271e3, rel=0.01)
    cfg = ChipConfig()
    m = map_network(net, cfg)
    assert len(m.cores_used) <= cfg.n_cores == 48
    used_rows = sum(r for r, _, _ in m.utilisation().values())
    assert used_rows > 0.9 * cfg.n_cores * cfg.rows           # the packing uses the rows, not just the cores
    for ml in m.layers:
        O, I = ml.weight.shape
        seen = np.zeros((O, I), int)
        for s in ml.segments:
            assert len(s.inputs) <= 100
            seen[np.ix_(s.out, s.inputs)] += 1
            pairs = m.targets(s.core)[s.rows, s.col0:s.col0 + s.n_out]
            w = np.concatenate([ml.weight[np.ix_(s.out, s.inputs)].T,
                                np.repeat(ml.bias_row_weight[None, s.out], s.bias_rows, 0)])
            assert np.allclose(pairs[0::2] - pairs[1::2], np.clip(w, -ml.w_max, ml.w_max) / ml.w_max * G_MAX_uS)
        assert (seen == 1).all(), ml.name
        assert sum(s.bias_rows for s in ml.segments) == ml.bias_rows_total
    for core in m.cores_used:
        rows = np.zeros(cfg.rows, int)
        cols = np.zeros(cfg.cols, int)
        for ml in m.layers:
            for s in ml.segments:
                if s.core == core:
                    rows[s.rows] += 1
                    cols[s.col0:s.col0 + s.n_out] += 1
        assert rows.max() <= 1 and cols.max() <= 1
        assert not rows[cfg.rows - m.options["spare_rows"]:].any()      # spare rows stay free
    text = m.summary(per_core=True)
    assert "rows used" in text and len(text.splitlines()) > 22 + len(m.cores_used)


def test_a_network_too_large_names_the_fix():
    with pytest.raises(MappingError, match="physical rows.*more cores"):
        map_network(cifar10.random_resnet(), ChipConfig(core_grid=(6, 7)))


def test_bad_rows_are_swapped_for_spare_rows_of_the_same_core():
    """A bad row moves only its own cells, to a spare row of its core; nothing else moves."""
    net = cifar10.random_resnet(seed=1, stages=(8, 16, 16), blocks=1)
    cfg = ChipConfig(core_grid=(2, 4))
    m0 = map_network(net, cfg)
    bad = {1: {int(m0.layers[2].segments[-1].rows[5]), 17}}
    m1 = map_network(net, cfg, bad_rows=bad)
    for core in m0.cores_used:
        g0, g1 = m0.targets(core), m1.targets(core)
        changed = np.flatnonzero((g0 != g1).any(axis=1))
        if core != 1:
            assert changed.size == 0
        else:
            spares = set(range(cfg.rows - m0.options["spare_rows"], cfg.rows))
            assert set(changed) <= bad[1] | spares and bad[1] <= set(changed)
            assert not g1[sorted(bad[1])].any()
    # more bad rows than spares: the core offers fewer rows and the packing moves on
    m2 = map_network(net, cfg, bad_rows={0: set(range(0, 40, 2))})
    assert all(not (set(s.rows) & set(range(0, 40, 2))) for ml in m2.layers for s in ml.segments if s.core == 0)


def test_outputs_beyond_a_core_are_split_over_column_groups():
    rng = np.random.default_rng(4)
    net = nn.Network({"bits": 3, "scale": 255 / 7, "step": 1 / 7}, [
        {"type": "flatten"},
        {"type": "dense", "name": "wide", "weight": rng.normal(0, 0.15, (150, 40)), "bias": rng.normal(0, 0.1, 150),
         "act": ACT},
        {"type": "dense", "name": "out", "weight": rng.normal(0, 0.1, (5, 150)), "bias": np.zeros(5), "act": None}])
    chip = open_chip("model:noise=off", config=ChipConfig(core_grid=(1, 8), rows=128, cols=64))
    x = rng.integers(0, 256, (30, 5, 8), dtype=np.uint8)
    m = map_network(net, chip.config, x_cal=x[:10])
    wide = m.layers[0]
    assert sorted(np.concatenate([s.out for s in wide.segments]).tolist()) == list(range(150))
    assert max(s.n_out for s in wide.segments) <= 64
    rt = Runtime(chip, m)
    rt.program(progress=False)
    rt.calibrate(x[:10])
    res = rt.forward(x, progress=False)
    sw = nn.forward(net, x)
    assert np.corrcoef(res.logits.ravel(), sw.ravel())[0, 1] > 0.97


def test_finetune_dense_fits_the_measured_features():
    rng = np.random.default_rng(6)
    f = rng.normal(size=(400, 16))
    w_true = rng.normal(size=(4, 16))
    y = (f @ w_true.T).argmax(1)
    w0 = w_true + rng.normal(0, 1.5, w_true.shape)          # a layer trained on other features
    acc = lambda w, b: np.mean((f @ w.T + b).argmax(1) == y)  # noqa: E731
    w1, b1 = cifar10.finetune_dense(w0, np.zeros(4), f, y)
    assert acc(w1, b1) > acc(w0, np.zeros(4)) + 0.1 and acc(w1, b1) > 0.9


@pytest.mark.parametrize("target", ["model:noise=off", "model"])
def test_reduced_resnet_on_the_chip_follows_software(target):
    """A reduced ResNet (residual adds, projection shortcuts, average pool) on the fast model: the
    chip's pooled features (the dense layer's input codes) are the software's within one code, and
    its logits follow the software's. (A random network's class margins are too small for argmax
    agreement to mean much; the trained network's accuracy is in docs/cifar10.md.)"""
    net = cifar10.random_resnet(seed=2, stages=(8, 16, 16), blocks=2)
    rng = np.random.default_rng(7)
    x = rng.integers(0, 256, (60, 3, 32, 32), dtype=np.uint8)
    chip = open_chip(target, config=ChipConfig(core_grid=(3, 4)))
    rt = Runtime(chip, map_network(net, chip.config, x_cal=x[:16]))
    rt.program(progress=False)
    rt.calibrate(x[:16])
    res = rt.forward(x[16:], progress=False, capture="fc")
    pooled = nn.forward(nn.Network(net.input, net.layers[:-1]), x[16:]) / nn.act_step(net.layers[-2]["act"])
    diff = np.abs(np.rint(pooled) - res.captured)
    assert np.mean(diff == 0) >= 0.85 and np.mean(diff <= 1) >= 0.99
    assert np.corrcoef(res.logits.ravel(), nn.forward(net, x[16:]).ravel())[0, 1] > 0.95


def test_cifar10_task_end_to_end_with_last_layer_fine_tuning():
    """run_cifar10: map, program, calibrate, fine-tune the dense layer on chip-measured features
    (training accuracy on those images does not drop), infer, report counters per layer."""
    net = cifar10.random_resnet(seed=2, stages=(8, 16, 16), blocks=1)
    rng = np.random.default_rng(8)
    x = rng.integers(0, 256, (90, 32, 32, 3), dtype=np.uint8)
    y = nn.predict(net, x.transpose(0, 3, 1, 2))
    chip = open_chip("model:noise=off", config=ChipConfig(core_grid=(2, 4)))
    rep = cifar10.run_cifar10(chip, x[60:], y[60:], net=net, x_cal=x[:16], finetune=(x[:60], y[:60]), progress=False)
    assert rep.software_accuracy == 1.0 and rep.images == 30
    before, after = map(float, re.findall(r"([0-9.]+) %", rep.notes[0]))
    assert after >= before
    summary = rep.summary()
    assert set(summary["layer_counters"]) == {l["name"] for l in net.weight_layers()}
    assert all(c["mvms"] > 0 and c["counters"]["mvm"] > 0 for c in summary["layer_counters"].values())


def test_a_bias_beyond_the_bias_rows_is_added_on_the_host():
    """Batch-norm-folded biases can need more than max_bias_rows pairs: the pairs hold what they
    can (never beyond w_max, i.e. G_max) and the host adds the rest, so the chip still computes
    the layer."""
    rng = np.random.default_rng(11)
    net = nn.Network({"bits": 3, "scale": 255 / 7, "step": 1 / 7}, [
        {"type": "flatten"},
        {"type": "dense", "name": "big_bias", "weight": rng.normal(0, 0.1, (12, 30)),
         "bias": rng.normal(0, 3.0, 12), "act": None}])
    chip = open_chip("model:noise=off", config=ChipConfig(core_grid=(1, 1), rows=128, cols=32))
    x = rng.integers(0, 256, (40, 5, 6), dtype=np.uint8)
    m = map_network(net, chip.config, x_cal=x[:10])
    ml = m.layers[0]
    assert ml.n_bias == 6 and np.abs(ml.bias_row_weight).max() <= ml.w_max and np.abs(ml.host_bias).max() > 1
    assert np.allclose(ml.n_bias * ml.bias_row_weight * ml.x_max * ml.in_step + ml.host_bias, ml.bias)
    rt = Runtime(chip, m)
    rt.program(progress=False)
    rt.calibrate(x[:10])
    err = rt.forward(x, progress=False).logits - nn.forward(net, x)
    assert np.sqrt(np.mean(err ** 2)) < 0.1 * np.std(nn.forward(net, x))
