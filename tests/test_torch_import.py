"""The PyTorch parts (skipped without PyTorch): modules imported into the chip's network format,
and chip-in-the-loop progressive fine-tuning."""

import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
tnn = torch.nn

from neurram.config import ChipConfig  # noqa: E402
from neurram.firmware import nn  # noqa: E402
from neurram.firmware.mapper import map_network  # noqa: E402
from neurram.firmware.runtime import Runtime  # noqa: E402
from neurram.firmware.torch_import import TorchImportError, from_torch  # noqa: E402
from neurram.targets import open_chip  # noqa: E402

Q = {"bits": 4, "scale": 255.0 / 15, "step": 1.0 / 15}


def _quantised(x):
    return torch.from_numpy((nn.quantize_input(x, Q) * nn.input_step(Q)).astype(np.float32))


class Block(tnn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.c1, self.b1 = tnn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), tnn.BatchNorm2d(c_out)
        self.c2, self.b2 = tnn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), tnn.BatchNorm2d(c_out)
        self.down = tnn.Sequential(tnn.Conv2d(c_in, c_out, 1, stride), tnn.BatchNorm2d(c_out)) if stride != 1 else None

    def forward(self, x):
        identity = x if self.down is None else self.down(x)
        out = self.b2(self.c2(torch.relu(self.b1(self.c1(x)))))
        out += identity
        return torch.relu(out)


class TinyResNet(tnn.Module):
    def __init__(self):
        super().__init__()
        self.stem = tnn.Sequential(tnn.Conv2d(3, 8, 3, 1, 1), tnn.BatchNorm2d(8), tnn.ReLU())
        self.b1, self.b2 = Block(8, 8, 1), Block(8, 16, 2)
        self.pool = tnn.AdaptiveAvgPool2d(1)
        self.fc = tnn.Linear(16, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.b2(self.b1(self.stem(x)))), 1))


def _randomise_bn(model):
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, tnn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 0.4 - 0.2)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


@pytest.mark.parametrize("make,shape", [
    (lambda: tnn.Sequential(tnn.Flatten(), tnn.Linear(64, 32), tnn.ReLU6(), tnn.Linear(32, 10)), (8, 8)),
    (lambda: tnn.Sequential(tnn.Conv2d(1, 8, 3, padding=1), tnn.BatchNorm2d(8), tnn.ReLU(), tnn.MaxPool2d(2),
                            tnn.Conv2d(8, 16, 3, padding=1), tnn.Hardtanh(0, 2), tnn.MaxPool2d(2),
                            tnn.Flatten(), tnn.Linear(16 * 16, 10)), (1, 16, 16)),
    (TinyResNet, (3, 16, 16)),
])
def test_imported_network_computes_what_the_module_computes(make, shape):
    """An MLP, a CNN with batch norm and pools, and a ResNet with identity and projection
    shortcuts: with 8-bit activations the imported network's logits are the module's."""
    torch.manual_seed(0)
    model = _randomise_bn(make())
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40,) + shape, dtype=np.uint8)
    net = from_torch(model, x[:20], input_quant=Q, act_bits=8, clip_percentile=100)
    with torch.no_grad():
        ref = model(_quantised(x) if len(shape) == 3 else _quantised(x)[:, None]).numpy()
    ours = nn.forward(net, x)
    assert np.corrcoef(ours.ravel(), ref.ravel())[0, 1] > 0.99
    assert np.mean(ours.argmax(1) == ref.argmax(1)) >= 0.9


def test_linear_hidden_layers_get_signed_codes():
    """A Linear or Conv2d without activation whose output the next weight layer reads gets linear_q
    (act_bits + 1 bits, clip the clip_percentile of |y|); the conv before a residual add and the
    logits stay linear."""
    torch.manual_seed(1)
    model = tnn.Sequential(tnn.Conv2d(1, 4, 3, padding=1), tnn.BatchNorm2d(4), tnn.MaxPool2d(2),
                           tnn.Conv2d(4, 4, 3, padding=1), tnn.ReLU(), tnn.Flatten(),
                           tnn.Linear(64, 24), tnn.Linear(24, 16), tnn.ReLU(), tnn.Linear(16, 10))
    model = _randomise_bn(model)
    x = np.random.default_rng(2).integers(0, 256, (40, 8, 8), dtype=np.uint8)
    net = from_torch(model, x[:20], input_quant=Q, act_bits=7, clip_percentile=99.5)
    acts = {l["name"]: l["act"] for l in net.weight_layers()}
    with torch.no_grad():
        xq = _quantised(x[:20])[:, None]
        conv_y = model[1](model[0](xq)).numpy()
        fc_y = model[6](model[5](model[4](model[3](model[2](model[1](model[0](xq))))))).numpy()
    for name, y in (("0", conv_y), ("6", fc_y)):
        assert acts[name]["kind"] == "linear_q" and acts[name]["bits"] == 8
        assert acts[name]["clip"] == pytest.approx(np.percentile(np.abs(y), 99.5), rel=1e-4)
    assert acts["3"]["kind"] == acts["7"]["kind"] == "relu_q" and acts["9"] is None
    assert all(l["act"] is None or l["act"]["kind"] == "relu_q"
               for l in from_torch(_randomise_bn(TinyResNet()), x[:4, None].repeat(3, 1)).weight_layers())
    with torch.no_grad():
        ref = model(_quantised(x[20:])[:, None]).numpy()
    assert np.corrcoef(nn.forward(net, x[20:]).ravel(), ref.ravel())[0, 1] > 0.99


def test_imported_resnet_runs_on_the_chip():
    model = _randomise_bn(TinyResNet())
    x = np.random.default_rng(1).integers(0, 256, (30, 3, 16, 16), dtype=np.uint8)
    net = from_torch(model, x[:16], input_quant=Q)
    assert [l["type"] for l in net.layers].count("add") == 2
    chip = open_chip("model:noise=off", config=ChipConfig(core_grid=(2, 2)))
    rt = Runtime(chip, map_network(net, chip.config, x_cal=x[:16]))
    rt.program(progress=False)
    rt.calibrate(x[:16])
    res = rt.forward(x, progress=False)
    assert np.corrcoef(res.logits.ravel(), nn.forward(net, x).ravel())[0, 1] > 0.95


def test_unsupported_pieces_are_named():
    model = tnn.Sequential(tnn.Flatten(), tnn.Linear(16, 8), tnn.Sigmoid(), tnn.Linear(8, 2))
    with pytest.raises(TorchImportError, match="Sigmoid.*not supported.*supported: Conv2d"):
        from_torch(model, np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(TorchImportError, match="groups 1"):
        from_torch(tnn.Sequential(tnn.Conv2d(4, 4, 3, groups=2)), np.zeros((2, 4, 8, 8), np.uint8))


def test_progressive_fine_tuning_on_the_chip():
    """Chip-in-the-loop progressive fine-tuning: each step measures the chip's codes at a boundary,
    fine-tunes the layers after it on them (training accuracy on those codes does not drop) and
    programs the changed layers; the earlier layers keep their cells."""
    from neurram.firmware.tasks import cifar10
    from neurram.firmware.train.chip_finetune import progressive_finetune

    net = cifar10.random_resnet(seed=2, stages=(8, 16, 16), blocks=1)
    rng = np.random.default_rng(9)
    x = rng.integers(0, 256, (80, 3, 32, 32), dtype=np.uint8)
    y = nn.predict(net, x)
    chip = open_chip("model", config=ChipConfig(core_grid=(2, 4)))
    rt = Runtime(chip, map_network(net, chip.config, x_cal=x[:16]))
    rt.program(progress=False)
    rt.calibrate(x[:16])
    stem = {c: (r.final_g.copy(), r.converged.copy()) for c, r in rt.reports.items()}
    log = progressive_finetune(rt, x, y, ["s2b1.in", "fc"], epochs=3, progress=False)
    assert len(log) == 2
    for line in log:
        before, after = map(float, re.findall(r"([0-9.]+) % ", line)[:2])
        assert after >= before - 2.5
    w_new = {l["name"]: l["weight"] for l in rt.mapping.net.weight_layers()}
    w_old = {l["name"]: l["weight"] for l in net.weight_layers()}
    assert np.array_equal(w_new["conv1"], w_old["conv1"]) and np.array_equal(w_new["s1b1.conv2"], w_old["s1b1.conv2"])
    assert not np.array_equal(w_new["s2b1.conv1"], w_old["s2b1.conv1"])
    core0 = rt.mapping.layers[0].segments[0].core       # the stem's core: its verified cells were not touched
    assert all(ml.name.startswith(("conv1", "s1b1")) for ml in rt.mapping.layers for s in ml.segments if s.core == core0)
    g0, ok0 = stem[core0]
    assert ok0.mean() > 0.99 and np.array_equal(rt.reports[core0].final_g[ok0], g0[ok0])


def test_cifar10_task_progressive_mode():
    """run_cifar10(finetune_mode="progressive"): a step per stage boundary, then the dense refit."""
    from neurram.firmware.tasks import cifar10

    net = cifar10.random_resnet(seed=2, stages=(8, 16, 16), blocks=1)
    x = np.random.default_rng(8).integers(0, 256, (90, 32, 32, 3), dtype=np.uint8)
    y = nn.predict(net, x.transpose(0, 3, 1, 2))
    chip = open_chip("model", config=ChipConfig(core_grid=(2, 4)))
    rep = cifar10.run_cifar10(chip, x[60:], y[60:], net=net, x_cal=x[:16], finetune=(x[:60], y[:60]),
                              finetune_mode="progressive", progress=False)
    assert [n.split()[0] for n in rep.notes] == ["fine-tuned", "fine-tuned", "last-layer"]
    assert "after s2b1.in" in rep.notes[0] and "after s3b1.in" in rep.notes[1]
    assert rep.accuracy >= 0.8
