"""ONNX models imported into the chip's network format (firmware/onnx_import.py), without PyTorch:
graphs built with onnx.helper, checked against a numpy float computation of the same graph written
here; and, where PyTorch is installed, a ResNet exported by torch.onnx against from_torch."""

import re
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from numpy.lib.stride_tricks import sliding_window_view  # noqa: E402

from neurram.firmware import nn  # noqa: E402
from neurram.firmware.mapper import map_network  # noqa: E402
from neurram.firmware.onnx_import import OnnxImportError, from_onnx  # noqa: E402
from neurram.firmware.runtime import Runtime  # noqa: E402
from neurram.targets import open_chip  # noqa: E402

Q = {"bits": 4, "scale": 255.0 / 15, "step": 1.0 / 15}


class Graph:
    """An ONNX graph under construction: random weights kept in ``w`` for the numpy reference."""

    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.w, self.extra_inits = [], {}, []

    def weight(self, name, shape, scale=None):
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        self.w[name] = (self.rng.normal(0, scale or 1.0 / np.sqrt(fan_in), shape)).astype(np.float32)
        return name

    def bn(self, name, c):
        self.w[f"{name}.g"] = self.rng.uniform(0.5, 1.5, c).astype(np.float32)
        self.w[f"{name}.b"] = self.rng.uniform(-0.2, 0.2, c).astype(np.float32)
        self.w[f"{name}.m"] = self.rng.uniform(-0.2, 0.2, c).astype(np.float32)
        self.w[f"{name}.v"] = self.rng.uniform(0.5, 1.5, c).astype(np.float32)
        return [f"{name}.{k}" for k in "gbmv"]

    def const(self, name, value):
        self.extra_inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op, inputs, name, **attrs):
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def model(self, out, in_shape=(None, 1, 8, 8), opset=13):
        g = helper.make_graph(
            self.nodes, "test_graph",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
            [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
            initializer=[numpy_helper.from_array(v, k) for k, v in self.w.items()] + self.extra_inits)
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


# -- an independent numpy float computation -------------------------------------------------------

def conv(x, w, b=None, stride=1, pad=0):
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = sliding_window_view(x, w.shape[2:], axis=(2, 3))[:, :, ::stride, ::stride]
    y = np.einsum("nchwij,ocij->nohw", win, w.astype(np.float64))
    return y if b is None else y + b[None, :, None, None]


def bn(v, g, b, m, var, eps=1e-5):
    s = (1, -1) + (1,) * (v.ndim - 2)
    return (v - m.reshape(s)) / np.sqrt(var.reshape(s) + eps) * g.reshape(s) + b.reshape(s)


def relu(v, clip=np.inf):
    return np.clip(v, 0, clip)


def maxpool(v, k):
    return sliding_window_view(v, (k, k), axis=(2, 3))[:, :, ::k, ::k].max(axis=(-1, -2))


def images(n, shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n,) + shape, dtype=np.uint8)


def seen(x):
    """What the model sees: the network's input codes times their step, (N, C, H, W)."""
    v = nn.quantize_input(x, Q) * nn.input_step(Q)
    return v[:, None] if v.ndim == 3 else v


# -- the test models: (onnx model, numpy reference, image shape, expected layer types) ---------------

def mlp_gemm():
    g = Graph(1)
    w1, b1 = g.weight("fc1.weight", (32, 64)), g.weight("fc1.bias", (32,), 0.1)
    w2, b2 = g.weight("fc2.weight", (10, 32)), g.weight("fc2.bias", (10,), 0.1)
    h = g.node("Flatten", ["x"], "flat", axis=1)
    h = g.node("Gemm", [h, w1, b1], "fc1", transB=1)
    h = g.node("Relu", [h], "relu1")
    h = g.node("Gemm", [h, w2, b2], "fc2", transB=1)
    W = g.w

    def ref(x):
        v = seen(x).reshape(len(x), -1)
        return relu(v @ W[w1].T + W[b1]) @ W[w2].T + W[b2]

    return g.model(h), ref, (8, 8), ["flatten", "dense", "dense"]


def mlp_matmul():
    """MatMul + Add (a bias), Clip(0, 1.5) with min and max as inputs, a Gemm with alpha, beta and
    transB 0, a flat (N, 64) graph input, Identity and Dropout."""
    g = Graph(2)
    w1, b1 = g.weight("w1", (64, 24)), g.weight("b1", (24,), 0.1)
    w2, b2 = g.weight("w2", (24, 10)), g.weight("b2", (10,), 0.1)
    lo, hi = g.const("lo", np.float32(0.0)), g.const("hi", np.float32(1.5))
    h = g.node("MatMul", ["x", w1], "mm1")
    h = g.node("Add", [b1, h], "bias1")
    h = g.node("Clip", [h, lo, hi], "clip1")
    h = g.node("Dropout", [h], "drop")
    h = g.node("Gemm", [h, w2, b2], "fc2", alpha=0.5, beta=2.0)
    h = g.node("Identity", [h], "out")
    W = g.w

    def ref(x):
        v = seen(x).reshape(len(x), -1)
        return 0.5 * relu(v @ W[w1] + W[b1], 1.5) @ W[w2] + 2.0 * W[b2]

    return g.model(h, in_shape=(None, 64)), ref, (8, 8), ["flatten", "dense", "dense"]


def cnn():
    """Opset 10: Conv + BatchNormalization + Relu + MaxPool, Conv + Clip(0, 2) as attributes,
    GlobalAveragePool, Flatten, Gemm."""
    g = Graph(3)
    c1, c2 = g.weight("c1.weight", (8, 1, 3, 3)), g.weight("c2.weight", (16, 8, 3, 3))
    c2b, fc, fcb = g.weight("c2.bias", (16,), 0.1), g.weight("fc.weight", (10, 16)), g.weight("fc.bias", (10,), 0.1)
    b1 = g.bn("bn1", 8)
    h = g.node("Conv", ["x", c1], "conv1", pads=[1, 1, 1, 1], kernel_shape=[3, 3])
    h = g.node("BatchNormalization", [h, *b1], "bn1")
    h = g.node("Relu", [h], "relu1")
    h = g.node("MaxPool", [h], "pool1", kernel_shape=[2, 2], strides=[2, 2])
    h = g.node("Conv", [h, c2, c2b], "conv2", pads=[1, 1, 1, 1], strides=[2, 2])
    h = g.node("Clip", [h], "clip2", min=0.0, max=2.0)
    h = g.node("GlobalAveragePool", [h], "gap")
    h = g.node("Flatten", [h], "flat")
    h = g.node("Gemm", [h, fc, fcb], "fc", transB=1)
    W = g.w

    def ref(x):
        v = relu(bn(conv(seen(x), W[c1], pad=1), *(W[k] for k in b1)))
        v = relu(conv(maxpool(v, 2), W[c2], W[c2b], stride=2, pad=1), 2.0)
        return v.mean(axis=(2, 3)) @ W[fc].T + W[fcb]

    return g.model(h, opset=10), ref, (1, 16, 16), ["conv", "maxpool", "conv", "avgpool", "flatten", "dense"]


def residual(projection):
    """A stem and one basic block: conv-BN-relu-conv-BN plus the block's input (identity) or a
    strided 1x1 conv-BN of it (projection), then relu, average pool, dense. With the projection:
    opset 18 (ReduceMean's axes as an input) and a Reshape to (N, -1)."""
    g = Graph(4 + projection)
    c_out, stride = (16, 2) if projection else (8, 1)
    s = g.weight("stem.weight", (8, 3, 3, 3))
    sb = g.weight("stem.bias", (8,), 0.1)
    k1, k2 = g.weight("b.c1.weight", (c_out, 8, 3, 3)), g.weight("b.c2.weight", (c_out, c_out, 3, 3))
    n1, n2 = g.bn("b.bn1", c_out), g.bn("b.bn2", c_out)
    fc, fcb = g.weight("fc.weight", (10, c_out)), g.weight("fc.bias", (10,), 0.1)
    x0 = g.node("Relu", [g.node("Conv", ["x", s, sb], "stem", pads=[1, 1, 1, 1])], "stem_relu")
    h = g.node("Conv", [x0, k1], "b.c1", pads=[1, 1, 1, 1], strides=[stride, stride])
    h = g.node("Relu", [g.node("BatchNormalization", [h, *n1], "b.bn1")], "b.relu1")
    h = g.node("BatchNormalization", [g.node("Conv", [h, k2], "b.c2", pads=[1, 1, 1, 1]), *n2], "b.bn2")
    W = g.w
    if projection:
        kd, nd = g.weight("b.down.weight", (c_out, 8, 1, 1)), g.bn("b.down_bn", c_out)
        short = g.node("BatchNormalization", [g.node("Conv", [x0, kd], "b.down", strides=[2, 2]), *nd], "b.down_bn")
    else:
        short = x0
    h = g.node("Relu", [g.node("Add", [h, short], "b.add")], "b.relu2")
    if projection:
        h = g.node("ReduceMean", [h, g.const("axes", np.array([2, 3], np.int64))], "gap", keepdims=1)
        h = g.node("Reshape", [h, g.const("flat_shape", np.array([0, -1], np.int64))], "flat")
    else:
        h = g.node("Flatten", [g.node("GlobalAveragePool", [h], "gap")], "flat")
    h = g.node("Gemm", [h, fc, fcb], "fc", transB=1)

    def ref(x):
        v0 = relu(conv(seen(x), W[s], W[sb], pad=1))
        v = relu(bn(conv(v0, W[k1], stride=stride, pad=1), *(W[k] for k in n1)))
        v = bn(conv(v, W[k2], pad=1), *(W[k] for k in n2))
        sc = bn(conv(v0, W[kd], stride=2), *(W[k] for k in nd)) if projection else v0
        return relu(v + sc).mean(axis=(2, 3)) @ W[fc].T + W[fcb]

    types = ["conv", "save", "conv", "conv"] + (["conv"] if projection else []) + ["add", "avgpool", "flatten", "dense"]
    return g.model(h, in_shape=(None, 3, 16, 16), opset=18 if projection else 13), ref, (3, 16, 16), types


MODELS = {"mlp_gemm": mlp_gemm, "mlp_matmul": mlp_matmul, "cnn": cnn,
          "residual_identity": lambda: residual(False), "residual_projection": lambda: residual(True)}


@pytest.mark.parametrize("which", list(MODELS))
def test_imported_network_computes_what_the_graph_computes(which):
    """With 8-bit activations the imported network's logits are the graph's float logits."""
    model, ref, shape, types = MODELS[which]()
    x = images(60, shape)
    net = from_onnx(model, x[:20], input_quant=Q, act_bits=8, clip_percentile=100)
    assert [l["type"] for l in net.layers] == types
    assert net.meta["imported_from"] == "onnx"
    ours, want = nn.forward(net, x[20:]), ref(x[20:])
    assert ours.shape == want.shape
    assert np.corrcoef(ours.ravel(), want.ravel())[0, 1] > 0.99
    assert np.mean(ours.argmax(1) == want.argmax(1)) >= 0.9


def test_residual_structure_and_folded_weights():
    """The projection block: the stem is saved, the shortcut conv reads it and keeps its output,
    the add takes it; the batch norms are folded into the convs."""
    model, _, shape, _ = residual(True)
    net = from_onnx(model, images(16, shape), input_quant=Q)
    layers = {l.get("name"): l for l in net.layers}
    saves = [l["name"] for l in net.layers if l["type"] == "save"]
    down = layers["b.down"]
    assert down["input"] == saves[0] and down["output"]
    assert layers["b.add"]["from"] == down["output"]
    assert layers["b.add"]["act"]["kind"] == "relu_q" and layers["stem"]["act"]["kind"] == "relu_q"
    w = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    g, b, m, v = (w[f"b.down_bn.{k}"] for k in "gbmv")
    scale = g / np.sqrt(v + 1e-5)
    assert np.allclose(down["weight"], w["b.down.weight"] * scale[:, None, None, None], rtol=1e-5)
    assert np.allclose(down["bias"], b - m * scale, rtol=1e-5, atol=1e-7)


def test_clips_come_from_the_graph_or_the_calibration_images():
    model, ref, shape, _ = cnn()
    x = images(30, shape)
    net = from_onnx(model, x, input_quant=Q, act_bits=4, clip_percentile=99)
    convs = [l for l in net.layers if l["type"] == "conv"]
    assert convs[1]["act"] == {"kind": "relu_q", "bits": 4, "clip": 2.0}              # Clip(0, 2)
    pre = bn(conv(seen(x), model_weight(model, "c1.weight"), pad=1), *(model_weight(model, f"bn1.{k}") for k in "gbmv"))
    assert convs[0]["act"]["clip"] == pytest.approx(np.percentile(pre[pre > 0], 99), rel=1e-4)   # Relu


def model_weight(model, name):
    return next(numpy_helper.to_array(i) for i in model.graph.initializer if i.name == name)


def linear_hidden(kind):
    """A linear hidden layer (no activation) read by the next weight layer: dense or conv."""
    g = Graph(7)
    if kind == "dense":
        w1, w2, w3 = g.weight("fc1.weight", (24, 64)), g.weight("fc2.weight", (16, 24)), g.weight("fc3.weight", (10, 16))
        h = g.node("Gemm", [g.node("Flatten", ["x"], "flat"), w1], "fc1", transB=1)     # linear
        h = g.node("Relu", [g.node("Gemm", [h, w2], "fc2", transB=1)], "relu2")
        h = g.node("Gemm", [h, w3], "fc3", transB=1)

        def hidden(x):
            return seen(x).reshape(len(x), -1) @ g.w[w1].T

        def ref(x):
            return relu(hidden(x) @ g.w[w2].T) @ g.w[w3].T
        return g.model(h), ref, hidden, (8, 8), "fc1"
    k1, k2, fc = g.weight("c1.weight", (8, 1, 3, 3)), g.weight("c2.weight", (8, 8, 3, 3)), g.weight("fc.weight", (10, 128))
    h = g.node("MaxPool", [g.node("Conv", ["x", k1], "c1", pads=[1, 1, 1, 1])], "pool", kernel_shape=[2, 2], strides=[2, 2])
    h = g.node("Relu", [g.node("Conv", [h, k2], "c2", pads=[1, 1, 1, 1])], "relu2")
    h = g.node("Gemm", [g.node("Flatten", [h], "flat"), fc], "fc", transB=1)

    def hidden(x):
        return conv(seen(x), g.w[k1], pad=1)

    def ref(x):
        return relu(conv(maxpool(hidden(x), 2), g.w[k2], pad=1)).reshape(len(x), -1) @ g.w[fc].T
    return g.model(h), ref, hidden, (1, 8, 8), "c1"


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_linear_hidden_layer_gets_signed_codes(kind):
    """A weight layer without activation whose output the next weight layer reads gets
    linear_q with act_bits + 1 bits and the clip_percentile of |y|; the output layer stays linear."""
    model, ref, hidden, shape, name = linear_hidden(kind)
    x = images(60, shape, seed=3)
    net = from_onnx(model, x[:20], input_quant=Q, act_bits=7, clip_percentile=99.5)
    layers = {l.get("name"): l for l in net.layers}
    act = layers[name]["act"]
    assert act["kind"] == "linear_q" and act["bits"] == 8
    assert act["clip"] == pytest.approx(np.percentile(np.abs(hidden(x[:20])), 99.5), rel=1e-4)
    assert net.weight_layers()[-1]["act"] is None
    ours, want = nn.forward(net, x[20:]), ref(x[20:])
    assert np.corrcoef(ours.ravel(), want.ravel())[0, 1] > 0.99


def chip_logits(net, x, cal, cores):
    """``net``'s logits on a noise-free fast-model chip of ``cores`` ("RxC"), calibrated on ``cal``."""
    chip = open_chip(f"model:cores={cores},noise=off")
    runtime = Runtime(chip, map_network(net, chip.config, x_cal=cal))
    runtime.program(progress=False)
    runtime.calibrate(cal)
    return runtime.forward(x, progress=False).logits


def test_imported_network_runs_on_the_chip(tmp_path):
    """The projection block, imported from a file, on a 2 x 2 chip: its logits follow software."""
    model, _, shape, _ = residual(True)
    path = tmp_path / "block.onnx"
    onnx.save(model, str(path))
    x = images(30, shape, seed=5)
    net = from_onnx(str(path), x[:16], input_quant=Q)
    assert np.corrcoef(chip_logits(net, x, x[:16], "2x2").ravel(), nn.forward(net, x).ravel())[0, 1] > 0.95


def test_linear_hidden_network_runs_on_the_chip():
    """The linear_q layer's signed codes drive the next layer on the chip as in software."""
    model, _, _, shape, _ = linear_hidden("dense")
    x = images(30, shape, seed=6)
    net = from_onnx(model, x[:16], input_quant=Q)
    assert net.weight_layers()[0]["act"]["kind"] == "linear_q"
    assert np.corrcoef(chip_logits(net, x, x[:16], "1x2").ravel(), nn.forward(net, x).ravel())[0, 1] > 0.95


def test_unsupported_pieces_are_named():
    g = Graph(8)
    w1, w2 = g.weight("fc1.weight", (8, 16)), g.weight("fc2.weight", (2, 8))
    h = g.node("Sigmoid", [g.node("Gemm", [g.node("Flatten", ["x"], "flat"), w1], "fc1", transB=1)], "squash")
    g.node("Gemm", [h, w2], "fc2", transB=1)
    with pytest.raises(OnnxImportError, match=r"^squash \(Sigmoid\): not supported; supported: Conv, Gemm"):
        from_onnx(g.model("fc2", in_shape=(None, 1, 4, 4)), images(4, (4, 4)))
    g = Graph(9)
    h = g.node("Gemm", [g.node("Flatten", ["x"], "flat"), "fc.weight"], "fc", transB=1)   # no such initializer
    with pytest.raises(OnnxImportError, match=r"^fc \(Gemm\): input 'fc.weight' is no initializer"):
        from_onnx(g.model(h, in_shape=(None, 1, 4, 4)), images(4, (4, 4)))
    g = Graph(10)
    h = g.node("Conv", ["x", g.weight("c.weight", (4, 1, 3, 3))], "c", pads=[0, 0, 1, 1])
    with pytest.raises(OnnxImportError, match=r"^c \(Conv\): a Conv's padding must be the same"):
        from_onnx(g.model(h), images(4, (8, 8)))
    model, _, _, _ = residual(False)                 # a 3-channel model given 1-channel images
    with pytest.raises(OnnxImportError, match=r"^stem \(Conv\): does not compute on the calibration images of shape"):
        from_onnx(model, images(4, (16, 16)))
    with pytest.raises(OnnxImportError, match="not a readable ONNX model"):
        from_onnx("/nonexistent/model.onnx", images(4, (8, 8)))


def test_maxpool_stride_defaults_to_one():
    """ONNX's MaxPool without strides slides by 1 (not by its kernel, as PyTorch's would)."""
    g = Graph(12)
    fc = g.weight("fc.weight", (10, 49))
    h = g.node("Gemm", [g.node("Flatten", [g.node("MaxPool", ["x"], "pool", kernel_shape=[2, 2])], "flat"), fc], "fc", transB=1)
    x = images(30, (8, 8), seed=12)
    net = from_onnx(g.model(h), x, input_quant=Q, act_bits=8)
    assert [(l["kernel"], l["stride"]) for l in net.layers if l["type"] == "maxpool"] == [(2, 1)]
    want = sliding_window_view(seen(x), (2, 2), axis=(2, 3)).max(axis=(-1, -2)).reshape(30, -1) @ g.w[fc].T
    assert np.allclose(nn.forward(net, x), want)


def test_missing_onnx_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(OnnxImportError, match=r"pip install 'neurram\[onnx\]'"):
        from_onnx("model.onnx", images(4, (8, 8)))


def test_user_guide_onnx_block_runs(tmp_path, monkeypatch):
    """docs/user-guide.md's ONNX block runs as written, and the chip follows the software model."""
    guide = Path(__file__).resolve().parent.parent / "docs" / "user-guide.md"
    blocks = re.findall(r"```python onnx\n(.*?)```", guide.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(blocks[0], str(guide), "exec"), ns)
    assert ns["r"] > 0.9


def test_torch_export_imports_like_from_torch(tmp_path):
    """A small ResNet exported by torch.onnx.export imports to the layers and weights from_torch
    gives for the module itself."""
    torch = pytest.importorskip("torch")
    from neurram.firmware.torch_import import from_torch
    from tests.test_torch_import import TinyResNet, _randomise_bn

    torch.manual_seed(0)
    model = _randomise_bn(TinyResNet())
    path = tmp_path / "resnet.onnx"
    try:
        torch.onnx.export(model, torch.zeros(1, 3, 16, 16), str(path), dynamo=False,
                          input_names=["x"], output_names=["logits"])
    except Exception as e:                          # noqa: BLE001 - an exporter missing in this torch build
        pytest.skip(f"torch.onnx.export unavailable: {type(e).__name__}: {e}")
    x = images(20, (3, 16, 16), seed=7)
    ours, theirs = from_onnx(str(path), x, input_quant=Q), from_torch(model, x, input_quant=Q)
    assert [l["type"] for l in ours.layers] == [l["type"] for l in theirs.layers]
    assert [l["name"] for l in ours.weight_layers()] == [l["name"] for l in theirs.weight_layers()]
    for a, b in zip(ours.layers, theirs.layers):
        for key in ("weight", "bias"):
            if key in b:
                np.testing.assert_allclose(a[key], b[key], rtol=1e-4, atol=1e-5)
        for key in ("stride", "padding", "kernel"):
            assert a.get(key) == b.get(key)
        if b.get("act") is not None:
            assert a["act"]["kind"] == b["act"]["kind"] and a["act"]["bits"] == b["act"]["bits"]
            assert a["act"]["clip"] == pytest.approx(b["act"]["clip"], rel=1e-3)
        else:
            assert a.get("act") is None
    np.testing.assert_allclose(nn.forward(ours, x), nn.forward(theirs, x), rtol=1e-3, atol=1e-3)


def test_run_model_takes_an_onnx_file(tmp_path, capsys, monkeypatch):
    """neurram run model --model FILE.onnx: imported with the data's calibration images, scored on
    the chip next to software; without onnx a one-line error names the extra."""
    from neurram.cli import main

    model, _, _, shape, _ = linear_hidden("dense")
    onnx.save(model, str(tmp_path / "net.onnx"))
    x = images(100, shape, seed=11)
    net = from_onnx(model, x[:64])                  # what the command imports: the first 64 images calibrate
    np.savez(tmp_path / "data.npz", x=x, y=nn.predict(net, x))
    argv = ["run", "model", "--model", str(tmp_path / "net.onnx"), "--data", str(tmp_path / "data.npz"),
            "--chip", "model:cores=1x2", "--workers", "1", "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert re.search(r"images\s+36\b", out)
    assert float(re.search(r"software \(same images\)\s+([\d.]+) %", out).group(1)) == 100.0
    assert re.search(r"^fc1\s", out, re.M)
    monkeypatch.setitem(sys.modules, "onnx", None)
    assert main(argv) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'neurram[onnx]'" in err[0]
