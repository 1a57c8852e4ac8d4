"""Bring your own network: an ONNX model as a chip network (``firmware/nn.py``).

    net = from_onnx("my_net.onnx", x_cal)   # an nn.Network, ready for map_network / Runtime
    nn.save_network("my_net.npz", net)       # or: neurram run model --model my_net.onnx ...

The graph's nodes are read in order (ONNX keeps them topologically sorted); these are understood:

* ``Conv`` (group 1, dilation 1, the same stride both ways, symmetric explicit pads or ``auto_pad``
  NOTSET/VALID), ``Gemm`` (``alpha``, ``beta``, ``transB``; the data input not transposed) and
  ``MatMul`` by a constant, a following ``Add`` of a constant being its bias;
* ``BatchNormalization`` right after one of those (folded into its weights and bias);
* ``Relu`` and ``Clip(0, c)`` (``min``/``max`` as inputs or attributes): the chip's clipped ReLU,
  quantised to ``act_bits``; the clip is the Clip's ``c``, else the ``clip_percentile`` of the
  positive pre-activations on the calibration images;
* ``MaxPool`` (no pads, dilation 1), ``GlobalAveragePool`` / ``ReduceMean`` over axes (2, 3) (a
  global average pool, quantised again like an activation: the next layer takes codes),
  ``Flatten`` (axis 1) and ``Reshape`` to (N, -1);
* ``Add`` of two tensors: a residual add, the other input a saved earlier tensor or a single conv
  (a projection shortcut); a Relu after the add becomes the add's activation;
* ``Identity`` and ``Dropout`` (passed through).

A conv or dense layer without an activation whose output another weight layer reads (a linear
hidden layer, not the network's output) gets ``{"kind": "linear_q", "bits": act_bits + 1, "clip":
c}``, ``c`` the ``clip_percentile`` of ``|y|`` on the calibration images: signed codes, which the
chip takes as signed inputs.

Weights are the graph's initializers and ``Constant`` nodes. The calibration values come from a
small numpy evaluator of exactly these operators (no ONNX runtime needed). The lowering itself is
shared with the PyTorch importer (``firmware/graph_import.py``). Anything else raises
:class:`OnnxImportError` naming the node, its operator and what is supported. The model's input
is the network's quantised input: ``input_quant`` (default 4 bits, values code/15 in [0, 1]) maps
uint8 pixels onto what the model was trained to see. Needs the ``onnx`` package (the ``onnx``
extra).
"""

from __future__ import annotations

import os

import numpy as np

from . import graph_import, nn, validate

__all__ = ["from_onnx", "OnnxImportError", "SUPPORTED"]

SUPPORTED = ("Conv", "Gemm", "MatMul", "Add", "BatchNormalization", "Relu", "Clip", "MaxPool",
             "GlobalAveragePool", "ReduceMean", "Flatten", "Reshape", "Identity", "Dropout", "Constant")


class OnnxImportError(validate.InputError):
    """The model holds a piece the chip network format cannot express (the message says which)."""


def _onnx():
    try:
        import onnx
        import onnx.numpy_helper
    except ImportError:
        raise OnnxImportError("from_onnx needs the onnx package: pip install 'neurram[onnx]'") from None
    return onnx


def _load(onnx, model):
    if isinstance(model, (str, os.PathLike)):
        try:
            return onnx.load(os.fspath(model))
        except Exception as e:                     # noqa: BLE001 - onnx raises several kinds
            raise OnnxImportError(f"{os.fspath(model)}: not a readable ONNX model ({type(e).__name__}: {e})") from None
    if not hasattr(model, "graph"):
        raise OnnxImportError(f"from_onnx: {type(model).__name__} is not an ONNX ModelProto or a path to one")
    return model


def _attrs(onnx, node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _constant(onnx, node, attrs):
    """The value of a Constant node."""
    if "value" in attrs:
        return onnx.numpy_helper.to_array(attrs["value"])
    for key in ("value_float", "value_floats", "value_int", "value_ints"):
        if key in attrs:
            return np.asarray(attrs[key])
    raise graph_import.Refused(f"a Constant needs value, value_float(s) or value_int(s); it has {', '.join(attrs)}")


def _explicit_pads(attrs, what) -> bool:
    """True for ``auto_pad`` NOTSET (the ``pads`` apply), False for VALID (no padding)."""
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
    if auto_pad not in ("NOTSET", "VALID"):
        raise graph_import.Refused(f"{what} needs explicit pads (auto_pad NOTSET or VALID, got {auto_pad})")
    return auto_pad == "NOTSET"


def _same(values, what):
    values = [int(v) for v in values]
    if len(set(values)) > 1:
        raise graph_import.Refused(f"{what} must be the same in every direction, got {values}")
    return values[0] if values else None


def from_onnx(model_or_path, x_cal: np.ndarray, *, input_quant: dict | None = None, act_bits: int = 3,
              clip_percentile: float = 99.9, name: str | None = None) -> nn.Network:
    """The chip network of an ONNX model (a ``ModelProto`` or a ``.onnx`` path) with activation
    clips set on ``x_cal`` (uint8 calibration images, (N, H, W) or (N, C, H, W))."""
    onnx = _onnx()
    model = _load(onnx, model_or_path)
    graph = model.graph
    q = dict(input_quant or graph_import.DEFAULT_INPUT_QUANT)
    consts = {}                                    # initializers and Constant outputs: weights, shapes, clips
    for t in graph.initializer:
        a = onnx.numpy_helper.to_array(t)
        consts[t.name] = a.astype(np.float64) if a.dtype.kind == "f" else a
    inputs = [i for i in graph.input if i.name not in consts]
    if len(inputs) != 1:
        raise OnnxImportError(f"from_onnx: the graph has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); "
                              "a chip network takes one image input")
    x_in = inputs[0]
    x = graph_import.calibration_input(x_cal, q).astype(np.float64)
    rank = len(x_in.type.tensor_type.shape.dim)
    users: dict = {}
    for node in graph.node:
        for t in node.input:
            if t:
                users[t] = users.get(t, 0) + 1
    for o in graph.output:
        users[o.name] = users.get(o.name, 0) + 1
    values: dict = {}
    low = graph_import.Lowering(users, values, act_bits=act_bits, clip_percentile=clip_percentile)
    aliases = {}                                   # graph input -> the flattened images an MLP reads
    if rank == 2:                                  # an MLP taking flat vectors: flatten the images first
        flat = aliases[x_in.name] = x_in.name + ".flat"
        users[flat], users[x_in.name] = users.get(x_in.name, 0), 1
    low.input(x_in.name, name=x_in.name)
    values[x_in.name] = x
    if rank == 2:
        low.flatten(flat, x_in.name, name=flat)
        values[flat] = x.reshape(len(x), -1)
    layer_names: set = set()
    for i, node in enumerate(graph.node):
        label = _label(node, i)
        try:
            _lower(onnx, node, label, low, values, consts, aliases, layer_names)
        except graph_import.Refused as e:
            raise OnnxImportError(f"{label} ({node.op_type}): {e}; supported: {', '.join(SUPPORTED)} "
                                  "(firmware/onnx_import.py)") from None
        except ValueError as e:                    # shapes that do not fit: the evaluator's numpy says which
            raise OnnxImportError(f"{label} ({node.op_type}): does not compute on the calibration images of shape "
                                  f"{x.shape} ({e}); give images the model takes") from None
    if len(graph.output) != 1:
        raise OnnxImportError(f"from_onnx: the graph has {len(graph.output)} outputs; a chip network has one")
    try:
        low.output(aliases.get(graph.output[0].name, graph.output[0].name))
    except graph_import.Refused as e:
        raise OnnxImportError(f"{graph.output[0].name} (graph output): {e}") from None
    meta = {"model": name or graph.name or "onnx", "imported_from": "onnx"}
    return low.network(q, meta, "from_onnx")


def _module_path(node) -> list[str]:
    """The scopes of a PyTorch export's node name: ``/b2/down/down.0/Conv`` -> [b2, down.0, Conv]."""
    segs: list[str] = []
    for seg in (node.name or "").split("/"):
        if seg and segs and seg.startswith(segs[-1] + "."):
            segs[-1] = seg
        elif seg:
            segs.append(seg)
    return segs


def _label(node, i) -> str:
    """A node's name in the network: ``/b2/down/down.0/Conv`` (PyTorch's exporter) is ``b2.down.0.Conv``."""
    return ".".join(_module_path(node)) or (node.output[0] if node.output else f"node{i}")


def _layer_name(node, label, weight_name, taken) -> str:
    """A layer's name: its weight's (``stem.0`` for ``stem.0.weight``), else the module of a
    PyTorch export (``b2.down.0`` for ``/b2/down/down.0/Conv``), else the node's."""
    path = _module_path(node)
    if weight_name.endswith(".weight"):
        base = weight_name[:-len(".weight")]
    elif len(path) >= 2 and path[-1].split("_")[0] == node.op_type:
        base = ".".join(path[:-1])
    else:
        base = label
    name, k = base, 1
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    taken.add(name)
    return name


def _lower(onnx, node, label, low, values, consts, aliases, layer_names):
    """Evaluates ``node`` on the calibration values and hands it to the lowering."""
    op, attrs = node.op_type, _attrs(onnx, node)
    if op not in SUPPORTED:
        raise graph_import.Refused("not supported")
    if op == "Constant":
        consts[node.output[0]] = _constant(onnx, node, attrs)
        return
    names = [aliases.get(t, t) for t in node.input]

    def tensor(j):
        """Input ``j``: a tensor computed by an earlier node (or the graph input)."""
        t = names[j]
        if t in values:
            return t, values[t]
        if t in consts:
            raise graph_import.Refused(f"input {t!r} is a constant where a computed tensor is expected")
        raise graph_import.Refused(f"input {t!r} is no initializer, Constant or earlier node's output")

    def const(j, default=None):
        """Input ``j``: an initializer or Constant (``default`` when the input is absent)."""
        if j >= len(names) or not names[j]:
            return default
        t = names[j]
        if t in consts:
            return consts[t]
        if t in values:
            raise graph_import.Refused(f"input {t!r} must be an initializer or Constant (a weight), it is computed")
        raise graph_import.Refused(f"input {t!r} is no initializer, Constant or earlier node's output")

    out = node.output[0]
    if op == "Conv":
        src, v = tensor(0)
        w, b = const(1), const(2)
        if int(attrs.get("group", 1)) != 1 or any(int(d) != 1 for d in attrs.get("dilations", [])):
            raise graph_import.Refused("a Conv needs group 1 and dilation 1")
        pad = _same(attrs.get("pads", [0]) if _explicit_pads(attrs, "a Conv") else [0], "a Conv's padding")
        stride = _same(attrs.get("strides", [1]), "a Conv's stride")
        if w.ndim != 4:
            raise graph_import.Refused(f"a Conv needs a 2-D kernel (weight shape {w.shape})")
        values[out] = nn.conv2d(v, w, b, stride, pad)
        low.weight(out, src, kind="conv", name=_layer_name(node, label, names[1], layer_names), weight=w, bias=b,
                   stride=stride, padding=pad)
    elif op in ("Gemm", "MatMul"):
        src, v = tensor(0)
        if v.ndim != 2:
            raise graph_import.Refused(f"a {op} needs a flattened (N, features) input, got shape {v.shape}")
        wt = const(1)
        if op == "Gemm":
            if int(attrs.get("transA", 0)):
                raise graph_import.Refused("a Gemm with transA 1 transposes the batch; export without it")
            w = (wt if int(attrs.get("transB", 0)) else wt.T) * float(attrs.get("alpha", 1.0))
            c = const(2)
            if c is not None and c.size not in (1, w.shape[0]):
                raise graph_import.Refused(f"a Gemm's C must hold one bias per output ({w.shape[0]}), got shape {c.shape}")
            b = None if c is None else np.broadcast_to(float(attrs.get("beta", 1.0)) * c.reshape(-1), (w.shape[0],))
        else:
            if wt.ndim != 2:
                raise graph_import.Refused(f"a MatMul needs a 2-D constant weight, got shape {wt.shape}")
            w, b = wt.T, None
        values[out] = v @ w.T + (0 if b is None else b)
        low.weight(out, src, kind="dense", name=_layer_name(node, label, names[1], layer_names), weight=w, bias=b)
    elif op == "BatchNormalization":
        src, v = tensor(0)
        gamma, beta, mean, var = const(1), const(2), const(3), const(4)
        scale = gamma / np.sqrt(var + float(attrs.get("epsilon", 1e-5)))
        shift = beta - mean * scale
        shape = (1, -1) + (1,) * (v.ndim - 2)
        values[out] = v * scale.reshape(shape) + shift.reshape(shape)
        low.fold(out, src, scale, shift, name=label)
    elif op == "Add":
        if any(t in consts for t in names):        # a bias after a MatMul (or a conv)
            j = 0 if names[1] in consts else 1
            src, v = tensor(j)
            c = const(1 - j)
            channels = v.shape[1]
            if c.size != channels:
                raise graph_import.Refused(f"an Add of a constant needs one value per channel ({channels}), "
                                           f"got shape {c.shape}")
            shift = c.reshape(-1)
            values[out] = v + shift.reshape((1, -1) + (1,) * (v.ndim - 2))
            low.fold(out, src, np.ones(channels), shift, name=label, what="an Add of a constant (a bias)")
        else:
            (a, va), (b, vb) = tensor(0), tensor(1)
            if va.shape != vb.shape:
                raise graph_import.Refused(f"a residual Add needs equal shapes, got {va.shape} and {vb.shape}")
            values[out] = va + vb
            low.add(out, a, b, name=label)
    elif op in ("Relu", "Clip"):
        src, v = tensor(0)
        lo, hi = 0.0, None
        if op == "Clip":
            lo = const(1, attrs.get("min", -np.inf))
            hi = const(2, attrs.get("max", np.inf))
            lo, hi = float(np.asarray(lo)), float(np.asarray(hi))
            if lo != 0:
                raise graph_import.Refused(f"Clip({lo}, {hi}) is not a clipped ReLU (min 0)")
            hi = hi if np.isfinite(hi) else None
        values[out] = np.clip(v, 0.0, np.inf if hi is None else hi)
        low.relu(out, src, hi, name=label)
    elif op == "MaxPool":
        src, v = tensor(0)
        kernel = _same(attrs.get("kernel_shape", []), "a MaxPool's kernel")
        stride = _same(attrs.get("strides", [1]), "a MaxPool's stride")      # ONNX's default: 1
        if any(int(p) for p in attrs.get("pads", [])) or any(int(d) != 1 for d in attrs.get("dilations", [])):
            raise graph_import.Refused("a MaxPool needs pads 0 and dilation 1")
        _explicit_pads(attrs, "a MaxPool")
        ceil = bool(attrs.get("ceil_mode", 0))
        values[out] = nn.maxpool2d(v, kernel, stride, ceil)
        low.maxpool(out, src, kernel=kernel, stride=stride, ceil_mode=ceil, name=label)
    elif op in ("GlobalAveragePool", "ReduceMean"):
        src, v = tensor(0)
        keep = True
        if op == "ReduceMean":
            axes = const(1, attrs.get("axes"))
            axes = sorted(int(a) % v.ndim for a in np.atleast_1d(axes)) if axes is not None else None
            if v.ndim != 4 or axes != [2, 3]:
                raise graph_import.Refused(f"a ReduceMean must average axes (2, 3) of (N, C, H, W), got axes {axes}")
            keep = bool(attrs.get("keepdims", 1))
        values[out] = v.mean(axis=(2, 3), keepdims=keep)
        low.avgpool(out, src, name=label)
    elif op in ("Flatten", "Reshape"):
        src, v = tensor(0)
        if op == "Flatten":
            if int(attrs.get("axis", 1)) != 1:
                raise graph_import.Refused("a Flatten needs axis 1")
            y = v.reshape(len(v), -1)
        else:
            shape = [int(s) for s in np.atleast_1d(const(1))]
            shape = [v.shape[k] if (s == 0 and k < v.ndim) else s for k, s in enumerate(shape)]
            try:
                y = v.reshape(shape)
            except ValueError as e:
                raise graph_import.Refused(f"a Reshape to {shape} does not fit shape {v.shape} ({e})") from None
            if y.shape != (len(v), int(np.prod(v.shape[1:]))):
                raise graph_import.Refused(f"only a Reshape to (N, -1) (a flatten) is supported, got {shape}")
        values[out] = y
        low.flatten(out, src, name=label)
    else:                                          # Identity, Dropout (inference: the input)
        src, v = tensor(0)
        values[out] = v
        low.alias(out, src, name=label)
