"""The numpy network format, reference inference, data loaders and the trained MNIST CNN.

numpy only (no torch).  The parts that need the shared data sets (../shared/datasets next to
the repository root, or $NEURRAM_DATA_DIR) are skipped where they are absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from neurram.firmware import datasets, nn

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO / "firmware" / "weights" / "mnist_cnn.npz"


def _shared_has(name: str) -> bool:
    try:
        datasets.find_file(name)
        return True
    except datasets.DataNotFoundError:
        return False


needs_mnist = pytest.mark.skipif(not _shared_has("mnist.npz"), reason="mnist.npz not available")


@pytest.fixture(scope="module")
def mnist_net():
    return nn.load_network(WEIGHTS)


# --------------------------------------------------------------------------------- primitives


def _direct_conv(x, w, b, stride, padding):
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho = (h + 2 * padding - kh) // stride + 1
    wo = (wd + 2 * padding - kw) // stride + 1
    y = np.zeros((n, o, ho, wo))
    for oy in range(ho):
        for ox in range(wo):
            patch = xp[:, :, oy * stride:oy * stride + kh, ox * stride:ox * stride + kw]
            y[:, :, oy, ox] = np.einsum("ncij,ocij->no", patch, w) + b
    return y


@pytest.mark.parametrize("stride,padding,kh,kw", [(1, 1, 3, 3), (1, 0, 3, 3), (2, 1, 3, 3),
                                                  (2, 0, 2, 3), (1, 2, 5, 5)])
def test_im2col_matches_direct_convolution(stride, padding, kh, kw):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4, 9, 8))
    w = rng.normal(size=(5, 4, kh, kw))
    b = rng.normal(size=5)
    ref = _direct_conv(x, w, b, stride, padding)
    cols = nn.im2col(x, kh, kw, stride, padding)
    n, ho, wo = 3, ref.shape[2], ref.shape[3]
    assert cols.shape == (n * ho * wo, 4 * kh * kw)
    y = (cols @ w.reshape(5, -1).T + b).reshape(n, ho, wo, 5).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(nn.conv2d(x, w, b, stride, padding), ref, rtol=1e-10, atol=1e-10)


def test_im2col_column_order_is_channel_major():
    x = np.arange(2 * 3 * 3, dtype=float).reshape(1, 2, 3, 3)
    cols = nn.im2col(x, 3, 3, 1, 0)
    assert cols.shape == (1, 18)
    np.testing.assert_array_equal(cols[0], x.reshape(-1))  # (c, dy, dx) order


def test_maxpool_ceil_mode():
    x = np.arange(49, dtype=float).reshape(1, 1, 7, 7)
    y = nn.maxpool2d(x, 2, ceil_mode=True)
    assert y.shape == (1, 1, 4, 4)
    assert y[0, 0, 3, 3] == 48 and y[0, 0, 0, 0] == 8 and y[0, 0, 3, 0] == 43
    assert nn.maxpool2d(x, 2).shape == (1, 1, 3, 3)


def test_quantize_input_range():
    px = np.arange(256, dtype=np.uint8)
    q = nn.quantize_input(px, {"bits": 3, "scale": 255 / 7})
    assert q.min() == 0 and q.max() == 7
    assert set(np.unique(q)) == set(range(8))
    assert np.all(np.diff(q) >= 0)
    assert q[0] == 0 and q[255] == 7
    np.testing.assert_array_equal(q, np.floor(px / (255 / 7) + 0.5))
    assert nn.quantize_input(px, bits=1).max() == 1


def test_quantize_act_codes():
    act = {"kind": "relu_q", "bits": 3, "clip": 1.4}
    y = np.array([-1.0, 0.0, 0.09, 0.11, 0.75, 1.39, 1.4, 5.0])
    q = nn.quantize_act(y, act)
    np.testing.assert_array_equal(q, [0, 0, 0, 1, 4, 7, 7, 7])
    assert nn.act_step(act) == pytest.approx(0.2)


# ------------------------------------------------------------------------------- file format


def _tiny_net(rng):
    layers = [
        {"type": "conv", "name": "c1", "weight": rng.normal(size=(2, 1, 3, 3)),
         "bias": rng.normal(size=2), "stride": 1, "padding": 1,
         "act": {"kind": "relu_q", "bits": 3, "clip": 1.5}},
        {"type": "maxpool", "kernel": 2, "ceil_mode": True},
        {"type": "flatten"},
        {"type": "dense", "name": "fc", "weight": rng.normal(size=(3, 2 * 3 * 3)),
         "bias": rng.normal(size=3), "act": None},
    ]
    return nn.Network(input={"bits": 3, "scale": 255 / 7, "step": 1 / 7}, layers=layers,
                      meta={"note": "tiny"})


def test_network_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    net = _tiny_net(rng)
    path = tmp_path / "tiny.npz"
    nn.save_network(path, net)
    back = nn.load_network(path)
    assert back.input == net.input and back.meta == net.meta
    assert len(back.layers) == len(net.layers)
    for a, b in zip(net.layers, back.layers):
        assert a.keys() == b.keys()
        for k in a:
            if k in ("weight", "bias"):
                assert b[k].dtype == np.float32 and b[k].shape == a[k].shape
                np.testing.assert_allclose(b[k], a[k].astype(np.float32))
            else:
                assert b[k] == a[k]
    # the layer-list form of save_network and the no-pickle spec entry
    nn.save_network(tmp_path / "tiny2.npz", net.layers, net.input)
    with np.load(tmp_path / "tiny2.npz", allow_pickle=False) as z:
        spec = json.loads(str(z["spec"][()]))
    assert spec["format"] == nn.FORMAT and spec["layers"][0]["weight"] == "c1.weight"
    x = rng.integers(0, 256, size=(4, 6, 6), dtype=np.uint8)
    np.testing.assert_allclose(nn.forward(back, x), nn.forward(net, x), rtol=1e-5, atol=1e-5)


def test_forward_is_the_quantised_model():
    """Hand-rolled forward of the tiny net: codes times steps, ceil-mode pooling, dense."""
    rng = np.random.default_rng(2)
    net = _tiny_net(rng)
    x = rng.integers(0, 256, size=(5, 6, 6), dtype=np.uint8)
    c1, fc = net.layers[0], net.layers[3]
    h = np.floor(x / (255 / 7) + 0.5)[:, None] / 7
    h = _direct_conv(h, c1["weight"], c1["bias"], 1, 1)
    h = np.floor(np.clip(h, 0, 1.5) / (1.5 / 7) + 0.5) * (1.5 / 7)
    pooled = np.zeros((5, 2, 3, 3))
    for i in range(3):
        for j in range(3):
            pooled[:, :, i, j] = h[:, :, 2 * i:2 * i + 2, 2 * j:2 * j + 2].max(axis=(2, 3))
    ref = pooled.reshape(5, -1) @ fc["weight"].T + fc["bias"]
    np.testing.assert_allclose(nn.forward(net, x), ref, rtol=1e-9, atol=1e-9)


def test_weight_noise_is_seeded_and_scaled():
    rng = np.random.default_rng(3)
    net = _tiny_net(rng)
    x = rng.integers(0, 256, size=(8, 6, 6), dtype=np.uint8)
    a = nn.forward(net, x, weight_noise_k=0.1, rng=np.random.default_rng(7))
    b = nn.forward(net, x, weight_noise_k=0.1, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, nn.forward(net, x))
    big = nn.Network(net.input, [{"type": "dense", "name": "d", "weight": np.ones((200, 300)),
                                  "bias": np.zeros(200), "act": None}])
    noisy = nn.noisy_layers(big, 0.1, np.random.default_rng(0)).layers[0]
    assert np.std(noisy["weight"] - 1.0) == pytest.approx(0.1, rel=0.02)


# ----------------------------------------------------------------------------- trained network


def test_mnist_network_structure(mnist_net):
    net = mnist_net
    assert net.input["bits"] == 3
    convs = [l for l in net.layers if l["type"] == "conv"]
    assert [l["weight"].shape for l in convs] == [(8, 1, 3, 3), (8, 8, 3, 3), (16, 8, 3, 3),
                                                  (16, 16, 3, 3), (32, 16, 3, 3),
                                                  (32, 32, 3, 3)]
    assert all(l["act"]["bits"] == 3 and l["act"]["clip"] > 0 for l in convs)
    assert all(l["padding"] == 1 and l["bias"].shape == (l["weight"].shape[0],) for l in convs)
    pools = [l for l in net.layers if l["type"] == "maxpool"]
    assert len(pools) == 3 and all(p["ceil_mode"] for p in pools)
    dense = net.layers[-1]
    assert dense["type"] == "dense" and dense["weight"].shape == (10, 512) and dense["act"] is None


def test_mnist_demo_subset_accuracy(mnist_net):
    x, y, index = datasets.load_mnist_demo_subset()
    assert x.shape == (500, 28, 28) and x.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(y, minlength=10), [50] * 10)
    assert np.all(np.diff(index) > 0) and index.min() >= 0 and index.max() < 10000
    acc = nn.accuracy(mnist_net, x, y)
    assert acc >= 0.98, acc


@needs_mnist
def test_mnist_demo_subset_is_the_first_50_per_class():
    x_te, y_te = datasets.load_mnist(split="test")
    x, y, index = datasets.load_mnist_demo_subset()
    expect = np.sort(np.concatenate([np.flatnonzero(y_te == c)[:50] for c in range(10)]))
    np.testing.assert_array_equal(index, expect)
    np.testing.assert_array_equal(x, x_te[index])
    np.testing.assert_array_equal(y, y_te[index])


@pytest.mark.slow
@needs_mnist
def test_mnist_full_test_set_accuracy(mnist_net):
    x, y = datasets.load_mnist(split="test")
    acc = nn.accuracy(mnist_net, x, y)
    assert acc >= 0.990, acc


# ------------------------------------------------------------------------------------ loaders


@needs_mnist
def test_load_mnist_official_shapes_and_counts():
    x, y = datasets.load_mnist(split="test")
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y),
                                  [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    x, y = datasets.load_mnist(split="train")
    assert x.shape == (60000, 28, 28) and x.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(y),
                                  [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949])


def _write_idx(path, arr, gz):
    import gzip
    arr = np.asarray(arr, dtype=np.uint8)
    head = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    data = head + arr.tobytes()
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        Path(path).write_bytes(data)


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_from_idx_files(tmp_path, monkeypatch, gz):
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, size=7)
    sfx = ".gz" if gz else ""
    _write_idx(tmp_path / f"t10k-images-idx3-ubyte{sfx}", x, gz)
    _write_idx(tmp_path / f"t10k-labels-idx1-ubyte{sfx}", y, gz)
    xl, yl = datasets.load_mnist(tmp_path, "test")
    np.testing.assert_array_equal(xl, x)
    np.testing.assert_array_equal(yl, y)
    assert yl.dtype == np.int64
    # $NEURRAM_DATA_DIR is searched too
    monkeypatch.setenv("NEURRAM_DATA_DIR", str(tmp_path))
    assert datasets.search_dirs()[0] == tmp_path


def test_load_mnist_npz_in_data_dir_and_clear_error(tmp_path, monkeypatch):
    x = np.zeros((3, 28, 28), np.uint8)
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=np.arange(3), x_test=x[:2],
             y_test=np.arange(2))
    xl, yl = datasets.load_mnist(tmp_path, "test")
    assert xl.shape == (2, 28, 28) and list(yl) == [0, 1]
    # nothing anywhere: the error names every directory searched
    monkeypatch.setattr(datasets, "REPO_ROOT", tmp_path / "nowhere" / "repo")
    monkeypatch.setenv("NEURRAM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("NEURRAM_DATA_DIR", raising=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(datasets.DataNotFoundError) as e:
        datasets.load_mnist(empty, "test")
    msg = str(e.value)
    assert str(empty) in msg and str(tmp_path / "cache") in msg and "shared" in msg


@pytest.mark.skipif(not _shared_has("cifar10_test_jpegq75.npz"), reason="CIFAR-10 not available")
def test_load_cifar10_test():
    x, y = datasets.load_cifar10_test()
    assert x.shape == (10000, 32, 32, 3) and x.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(y), [1000] * 10)


@pytest.mark.skipif(not (_shared_has("speech_commands_v0.02_test_part1of2.npz")
                         and _shared_has("speech_commands_v0.02_test_part2of2.npz")),
                    reason="Speech Commands not available")
def test_load_speech_commands_test():
    x, y = datasets.load_speech_commands_test()
    assert x.shape == (4890, 16000) and x.dtype == np.int16
    np.testing.assert_array_equal(np.bincount(y),
                                  [408, 408, 419, 405, 425, 406, 412, 396, 396, 402, 411, 402])
    assert np.all(np.diff(y) >= 0)  # the two parts interleave back into class order
