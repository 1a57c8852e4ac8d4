"""The CIFAR-10 trainer's noise (skipped without PyTorch): training adds the chip's error where the
chip has it, on the batch-norm-folded weights, sigma = k * max|W'| alike for every output channel."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from neurram.firmware.train.cifar10_resnet import ConvBN, ResNet20  # noqa: E402


def _layer(scales):
    """A 1x1 ConvBN with unit running variance and these per-channel batch-norm gains."""
    torch.manual_seed(0)
    m = ConvBN(8, len(scales), 1, 1)
    with torch.no_grad():
        m.bn.weight.copy_(torch.tensor(scales))
        m.bn.running_var.fill_(1.0 - m.bn.eps)
    return m


def test_training_noise_is_the_folded_weights_noise():
    """Channels whose batch-norm gain differs 20x get the same output noise: sqrt(2) sigma for one
    unit input (one weight and the bias), sigma = k * max|W * s|."""
    scales = [0.1, 2.0, 1.0]
    m = _layer(scales)
    m.train()
    m.noise_k = 0.2
    x = torch.zeros(256, 8, 1, 1)
    x[:, 3] = 1.0                                     # one unit input: the output sees one weight
    m.bn.momentum = 0.0                               # keep the running statistics fixed
    with torch.no_grad():
        clean = m.bn(m.conv(x))
        diffs = torch.stack([(m(x) - clean)[0, :, 0, 0] for _ in range(2000)])
    sigma = 0.2 * float((m.conv.weight.detach() * torch.tensor(scales)[:, None, None, None]).abs().max())
    measured = diffs.std(0).numpy()
    np.testing.assert_allclose(measured, np.sqrt(2) * sigma, rtol=0.06)
    m.eval()
    with torch.no_grad():
        assert torch.equal(m(x), m(x))               # no noise at inference


def test_clipping_acts_on_the_folded_weights():
    m = _layer([0.1, 2.0, 1.0])
    with torch.no_grad():
        m.conv.weight.copy_(torch.randn_like(m.conv.weight) * 3)
    before = m.conv.weight.detach().clone()
    m.clip_folded(1.0)
    s = m.scale()[:, None, None, None]
    wf = m.conv.weight.detach() * s
    assert float(wf.abs().max()) <= float((before * s).std()) * 1.0001
    # the channel with the small gain keeps its weights; the one with the large gain is clipped
    assert torch.equal(m.conv.weight[0], before[0])
    assert float(m.conv.weight[1].abs().max()) < float(before[1].abs().max())


def test_set_noise_reaches_every_weight_layer():
    net = ResNet20()
    net.set_noise(0.15)
    layers = [mod for mod in net.modules() if isinstance(mod, ConvBN)]
    assert len(layers) == 21                          # 19 convolutions and 2 projections (+ the dense layer)
    assert all(mod.noise_k == 0.15 for mod in layers) and net.fc.noise_k == 0.15
