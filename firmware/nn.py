"""Quantised CNNs in plain numpy: a portable description and a reference inference.

A network is a :class:`Network`: an input quantiser plus an ordered list of layer dicts.
It is the hand-over format between training (``firmware/train``, PyTorch, optional) and
everything that runs without PyTorch: the chip mapper, the chip model and the tests.

Layer dicts
-----------
``{"type": "conv", "name": str, "weight": (O, I, kh, kw), "bias": (O,), "stride": int,
"padding": int, "act": ACT}``
    2-D cross-correlation (PyTorch ``Conv2d`` semantics), zero padding.
``{"type": "dense", "name": str, "weight": (O, I), "bias": (O,), "act": ACT}``
    ``y = x @ weight.T + bias``.
``{"type": "maxpool", "kernel": int, "stride": int (default = kernel), "ceil_mode": bool}``
    Max pooling without padding; with ``ceil_mode`` a partial window at the bottom/right
    edge still yields an output (7x7 -> 4x4 for kernel 2), like PyTorch.
``{"type": "flatten"}``
    (N, C, H, W) -> (N, C*H*W) in C-major order (PyTorch ``flatten(1)``).
``{"type": "batchnorm", "gamma": (O,), "beta": (O,), "mean": (O,), "var": (O,), "eps": float, "act": ACT}``
    Inference batch norm right after a conv or dense layer; :func:`fold_batchnorm` folds it into
    that layer's weights and bias (the mapper and :func:`forward` do so), its ``act`` moving there.
``{"type": "save", "name": str}``
    Keeps the current tensor under ``name`` (a residual block's input).
``{"type": "add", "name": str, "from": str, "act": ACT}``
    Residual add: the current tensor (the pre-activation of a linear conv) plus the saved tensor
    ``from``, then ``ACT``.  It runs on the host, as on the chip.
``{"type": "avgpool", "name": str, "act": ACT}``
    Global average pool (N, C, H, W) -> (N, C), then ``ACT`` (the next layer takes codes).

A weight layer may read a saved tensor instead of the current one (``"input": name``) and keep
its output under a new name instead of passing it on (``"output": name``): a projection
shortcut is ``{"type": "conv", ..., "input": "b1.in", "output": "b1.skip"}``.

``ACT`` is ``None`` (linear and unquantised: only for the logits), a clipped ReLU
``{"kind": "relu_q", "bits": n, "clip": c}`` or a linear hidden layer
``{"kind": "linear_q", "bits": n, "clip": c}``.  Either gives an integer *code* times a ``step``:

* ``relu_q``: ``q = floor(clip(y, 0, c) / step + 1/2)`` in ``0 .. 2**n - 1``,
  ``step = c / (2**n - 1)``; the next layer drives unsigned n-bit inputs.
* ``linear_q``: ``q = floor(clip(y, -c, c) / step + 1/2)`` in ``-(2**(n-1) - 1) .. 2**(n-1) - 1``,
  ``step = c / (2**(n-1) - 1)``; the next layer drives the chip's signed (sign-magnitude) n-bit
  inputs.

The chip produces the code; the ``step`` only scales what the next layer sees.

Input quantiser
---------------
``{"bits": n, "scale": s, "step": t}``: uint8 pixels ``p`` become integer codes
``q = clip(floor(p / s + 1/2), 0, 2**n - 1)`` (``s = 255 / (2**n - 1)`` maps 0..255 onto
0..2**n-1) and the first layer sees ``q * t`` (``t = 1 / (2**n - 1)``: values in [0, 1]).

Weight noise (NeuRRAM.md section 4)
-----------------------------------
``forward(..., weight_noise_k=k)`` draws ONE noisy copy of every weight layer, as a programmed
chip would hold it: ``W + N(0, sigma^2)`` and ``b + N(0, sigma^2)`` elementwise with
``sigma = k * max|W|`` (the maximum over that layer's weights, bias excluded).  Training uses
the same rule, with a fresh draw per mini-batch.

File format (``.npz``, no pickle)
---------------------------------
``spec``: a 0-d unicode array holding JSON ``{"format": "neurram-qnet", "version": 1,
"input": {...}, "layers": [...], "meta": {...}}`` in which every array of a layer is replaced
by the name of an npz entry (``"weight": "conv1.weight"``).  The arrays are stored as float32
under those names.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from typing import Any, Iterable, NamedTuple

import numpy as np

from . import validate

__all__ = [
    "Network",
    "FORMAT",
    "VERSION",
    "ACT_KINDS",
    "fold_batchnorm",
    "InputCodes",
    "act_code_max",
    "act_signed",
    "act_step",
    "narrow_codes",
    "input_step",
    "quantize_input",
    "quantize_act",
    "im2col",
    "conv2d",
    "maxpool2d",
    "load_network",
    "save_network",
    "noisy_layers",
    "walk",
    "layer_input_codes",
    "layer_inputs",
    "forward",
    "predict",
    "accuracy",
]

FORMAT = "neurram-qnet"
VERSION = 1
_ARRAY_KEYS = ("weight", "bias", "gamma", "beta", "mean", "var")
_WEIGHT_TYPES = ("conv", "dense")


@dataclass
class Network:
    """A quantised network: ``input`` quantiser, ``layers`` (list of dicts), free ``meta``."""

    input: dict
    layers: list[dict]
    meta: dict = field(default_factory=dict)

    def weight_layers(self) -> list[dict]:
        """The conv and dense layers, in order."""
        return [l for l in self.layers if l["type"] in _WEIGHT_TYPES]

    def __iter__(self):
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)


# ---------------------------------------------------------------------------------------------
# quantisers


ACT_KINDS = validate.ACT_KINDS


def act_code_max(act: dict) -> int:
    """The largest code of an activation: ``2**bits - 1`` (relu_q) or ``2**(bits-1) - 1`` (linear_q,
    whose codes are symmetric about 0)."""
    kind = act.get("kind")
    if kind not in ACT_KINDS:
        raise ValueError(f"unknown activation kind {kind!r}; the kinds are {', '.join(ACT_KINDS)}")
    return InputCodes(int(act["bits"]), 0.0, kind == "linear_q").code_max


def act_signed(act: dict | None) -> bool:
    """Whether an activation's codes are signed (the next layer drives signed inputs)."""
    return act is not None and act.get("kind") == "linear_q"


def act_step(act: dict) -> float:
    """Value of one activation code: ``clip / act_code_max(act)``."""
    return float(act["clip"]) / float(act_code_max(act))


def narrow_codes(q: np.ndarray, act: dict) -> np.ndarray:
    """Activation codes in the narrowest type that holds them (uint8, int8: im2col moves less)."""
    if int(act["bits"]) > 8:
        return q
    return q.astype(np.int8 if act_signed(act) else np.uint8)


def quantize_input(x: np.ndarray, quant: dict | None = None, *, bits: int = 3,
                   scale: float | None = None) -> np.ndarray:
    """uint8 pixels -> integer input codes ``0 .. 2**bits - 1`` (int64, same shape).

    ``quant`` is a network's input quantiser dict (``bits``, ``scale``); without it ``bits``
    and ``scale`` (default ``255 / (2**bits - 1)``) are used. NaN, values outside 0..255 and
    images scaled to [0, 1] raise :class:`~neurram.firmware.validate.InputError`.
    """
    x = validate.pixels(x)
    if quant is not None:
        bits = int(quant["bits"])
        scale = quant.get("scale")
    qmax = 2 ** int(bits) - 1
    if scale is None:
        scale = 255.0 / qmax
    codes = np.floor(np.asarray(x, dtype=np.float64) / float(scale) + 0.5)
    return np.clip(codes, 0, qmax).astype(np.int64)


def quantize_act(y: np.ndarray, act: dict) -> np.ndarray:
    """Pre-activations -> integer codes of a ``relu_q`` or ``linear_q`` activation (int64)."""
    qmax = act_code_max(act)
    qmin = -qmax if act_signed(act) else 0
    step = act_step(act)
    a = np.clip(y, qmin * step, float(act["clip"]))
    return np.clip(np.floor(a / step + 0.5), qmin, qmax).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# layer primitives


def _pair(v) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


def im2col(x: np.ndarray, kh: int, kw: int, stride=1, padding=0) -> np.ndarray:
    """Unfold (N, I, H, W) into patches: (N*H'*W', I*kh*kw).

    Rows are ordered (n, oy, ox); columns are channel-major (i, dy, dx), the order of
    ``weight.reshape(O, -1)``, so ``im2col(x) @ weight.reshape(O, -1).T`` is the convolution.
    """
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"im2col expects (N, C, H, W), got shape {x.shape}")
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    n, c, h, w = x.shape
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    ho = (h + 2 * ph - kh) // sh + 1
    wo = (w + 2 * pw - kw) // sw + 1
    if ho <= 0 or wo <= 0:
        raise ValueError("kernel larger than the padded input")
    cols = np.empty((n, ho, wo, c, kh, kw), dtype=x.dtype)
    for dy in range(kh):
        for dx in range(kw):
            patch = x[:, :, dy:dy + sh * (ho - 1) + 1:sh, dx:dx + sw * (wo - 1) + 1:sw]
            cols[:, :, :, :, dy, dx] = patch.transpose(0, 2, 3, 1)
    return cols.reshape(n * ho * wo, c * kh * kw)


def conv2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, stride=1,
           padding=0) -> np.ndarray:
    """(N, I, H, W) * (O, I, kh, kw) -> (N, O, H', W'), via :func:`im2col`."""
    n, _, h, w = x.shape
    o, i, kh, kw = weight.shape
    if x.shape[1] != i:
        raise ValueError(f"conv input has {x.shape[1]} channels, weight expects {i}")
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    ho = (h + 2 * ph - kh) // sh + 1
    wo = (w + 2 * pw - kw) // sw + 1
    y = im2col(x, kh, kw, stride, padding) @ weight.reshape(o, -1).T
    if bias is not None:
        y = y + bias
    return y.reshape(n, ho, wo, o).transpose(0, 3, 1, 2)


def maxpool2d(x: np.ndarray, kernel: int = 2, stride: int | None = None,
              ceil_mode: bool = False) -> np.ndarray:
    """Max pooling over (N, C, H, W), no padding; ``ceil_mode`` as in PyTorch."""
    k = int(kernel)
    s = k if stride is None else int(stride)
    n, c, h, w = x.shape

    def out_len(L: int) -> int:
        if ceil_mode:
            o = -(-(L - k) // s) + 1
            if (o - 1) * s >= L:  # the last window must start inside the input
                o -= 1
            return o
        return (L - k) // s + 1

    ho, wo = out_len(h), out_len(w)
    need_h, need_w = (ho - 1) * s + k, (wo - 1) * s + k
    if need_h > h or need_w > w:
        fill = -np.inf if np.issubdtype(x.dtype, np.floating) else np.iinfo(x.dtype).min
        x = np.pad(x, ((0, 0), (0, 0), (0, max(0, need_h - h)), (0, max(0, need_w - w))),
                   constant_values=fill)
    out = None
    for dy in range(k):
        for dx in range(k):
            v = x[:, :, dy:dy + s * (ho - 1) + 1:s, dx:dx + s * (wo - 1) + 1:s]
            out = v if out is None else np.maximum(out, v)
    return out


# ---------------------------------------------------------------------------------------------
# files


def _to_jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _to_jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_to_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def save_network(path, net: Network | Iterable[dict], input_quant: dict | None = None,
                 meta: dict | None = None) -> None:
    """Write a network to ``path`` (.npz, compressed).

    ``net`` is a :class:`Network`, or a list of layer dicts together with ``input_quant``
    (and optional ``meta``).
    """
    if not isinstance(net, Network):
        if input_quant is None:
            raise ValueError("save_network: a list of layers needs input_quant")
        net = Network(input=dict(input_quant), layers=list(net), meta=dict(meta or {}))
    elif meta is not None:
        net = Network(input=net.input, layers=net.layers, meta={**net.meta, **meta})
    arrays: dict[str, np.ndarray] = {}
    layers_json = []
    for idx, layer in enumerate(net.layers):
        entry = {}
        for key, val in layer.items():
            if key in _ARRAY_KEYS and val is not None:
                name = layer.get("name") or f"layer{idx}"
                aname = f"{name}.{key}"
                if aname in arrays:
                    raise ValueError(f"duplicate array name {aname!r}: give layers unique names")
                arrays[aname] = np.ascontiguousarray(np.asarray(val, dtype=np.float32))
                entry[key] = aname
            else:
                entry[key] = _to_jsonable(val)
        layers_json.append(entry)
    spec = {"format": FORMAT, "version": VERSION, "input": _to_jsonable(net.input),
            "layers": layers_json, "meta": _to_jsonable(net.meta)}
    if "spec" in arrays:
        raise ValueError("'spec' is reserved")
    path = os.fspath(path)
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    with open(path, "wb") as f:  # a file object keeps numpy from appending ".npz"
        np.savez_compressed(f, spec=np.array(json.dumps(spec, sort_keys=True)), **arrays)


def load_network(path) -> Network:
    """Read a network written by :func:`save_network` (no pickle needed); a corrupt or incomplete
    file raises :class:`~neurram.firmware.validate.InputError` naming the file and the fault."""
    try:
        net = _read_network(path)
    except validate.InputError:
        raise
    except (ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as e:
        raise validate.InputError(f"{path}: not a readable network file ({type(e).__name__}: {e}); "
                                  "write one with neurram.firmware.nn.save_network") from None
    return validate.network(net, os.fspath(path))


def _read_network(path) -> Network:
    with np.load(os.fspath(path), allow_pickle=False) as z:
        if "spec" not in z.files:
            raise ValueError(f"{path}: not a network file (no 'spec' entry)")
        spec = json.loads(str(z["spec"][()]))
        if spec.get("format") != FORMAT:
            raise ValueError(f"{path}: format {spec.get('format')!r}, expected {FORMAT!r}")
        if int(spec.get("version", 0)) > VERSION:
            raise ValueError(f"{path}: version {spec['version']} is newer than {VERSION}")
        layers = []
        for entry in spec["layers"]:
            layer = dict(entry)
            for key in _ARRAY_KEYS:
                if isinstance(layer.get(key), str):
                    layer[key] = z[layer[key]].copy()
            layers.append(layer)
    return Network(input=spec["input"], layers=layers, meta=spec.get("meta", {}))


# ---------------------------------------------------------------------------------------------
# inference


def noisy_layers(net: Network, k: float, rng: np.random.Generator | None = None) -> Network:
    """A copy of ``net`` whose weights and biases carry Gaussian noise ``k * max|W|``."""
    if rng is None:
        rng = np.random.default_rng()
    layers = []
    for layer in net.layers:
        layer = dict(layer)
        if layer["type"] in _WEIGHT_TYPES and k > 0:
            w = np.asarray(layer["weight"], dtype=np.float64)
            sigma = float(k) * float(np.max(np.abs(w)))
            layer["weight"] = w + rng.normal(0.0, sigma, size=w.shape)
            if layer.get("bias") is not None:
                b = np.asarray(layer["bias"], dtype=np.float64)
                layer["bias"] = b + rng.normal(0.0, sigma, size=b.shape)
        layers.append(layer)
    return Network(input=net.input, layers=layers, meta=net.meta)


def layer_inputs(spec: dict, h: np.ndarray):
    """The vectors a weight layer multiplies: im2col patches (conv) or rows (dense), and a function
    that puts the layer's outputs (vectors x O) back into shape."""
    if spec["type"] == "conv":
        kh, kw = np.asarray(spec["weight"]).shape[2:]
        n, _, H, W = h.shape
        pad, stride = spec.get("padding", 0), spec.get("stride", 1)
        Ho, Wo = (H + 2 * pad - kh) // stride + 1, (W + 2 * pad - kw) // stride + 1
        x = im2col(h, kh, kw, stride, pad)
        return x, lambda y: y.reshape(n, Ho, Wo, -1).transpose(0, 3, 1, 2)
    if h.ndim != 2:
        raise ValueError(f"dense layer {spec.get('name')!r} needs a flatten before it")
    return h, lambda y: y


def walk(net: Network, h: np.ndarray, weight_layer, *, codes: bool = False) -> np.ndarray:
    """Run ``h`` through ``net``: pooling, flatten, save and residual add here, each conv or dense
    layer through ``weight_layer(spec, h) -> h`` (so software, chip and calibration share one walk).

    With ``codes`` the tensors are integer activation codes, as the chip sees them (``h`` holds the
    input codes): the walk keeps each tensor's step so that a residual add or an average pool works
    on values and hands on codes; a linear layer's output (no ``act``) is a value.  Without it every
    tensor is a value (codes times their step)."""
    stash = {}
    step = input_step(net.input) if codes else None

    def value(t, s):
        return t * s if (codes and s is not None) else t

    def activate(v, act):
        if act is None:
            return v, None
        q = quantize_act(v, act)
        if not codes:
            return q * act_step(act), None
        return narrow_codes(q, act), act_step(act)

    for layer in net.layers:
        t = layer["type"]
        if t == "maxpool":
            h = maxpool2d(h, layer.get("kernel", 2), layer.get("stride"), bool(layer.get("ceil_mode", False)))
        elif t == "flatten":
            h = h.reshape(h.shape[0], -1)
        elif t == "save":
            stash[layer["name"]] = (h, step)
        elif t == "add":
            other, other_step = stash[layer["from"]]
            h, step = activate(value(h, step) + value(other, other_step), layer.get("act"))
        elif t == "avgpool":
            h, step = activate(value(h, step).mean(axis=(2, 3)), layer.get("act"))
        elif t in _WEIGHT_TYPES:
            src = stash[layer["input"]][0] if layer.get("input") else h
            out = weight_layer(layer, src)
            out_step = act_step(layer["act"]) if (codes and layer.get("act") is not None) else None
            if layer.get("output"):
                stash[layer["output"]] = (out, out_step)
            else:
                h, step = out, out_step
        elif t == "batchnorm":
            raise ValueError("walk takes a network without batch-norm layers: fold them first (nn.fold_batchnorm)")
        else:
            raise ValueError(f"unknown layer type {t!r}")
    return h


def fold_batchnorm(net: Network) -> Network:
    """Fold every ``{"type": "batchnorm", "gamma", "beta", "mean", "var", "eps"}`` layer into the
    conv or dense layer before it: W' = W·γ/√(var+ε) per output, b' = (b - mean)·γ/√(var+ε) + β.
    The activation moves from the batch-norm layer (if it has one) to the folded layer. A network
    without batch-norm layers comes back as it is."""
    if not any(layer["type"] == "batchnorm" for layer in net.layers):
        return net
    out = []
    for i, layer in enumerate(net.layers):
        if layer["type"] != "batchnorm":
            out.append(dict(layer))
            continue
        if not out or out[-1]["type"] not in ("conv", "dense"):
            raise ValueError(f"batchnorm layer {i}: it must follow a conv or dense layer (it folds into that layer)")
        prev = out[-1]
        scale = np.asarray(layer["gamma"], float) / np.sqrt(np.asarray(layer["var"], float) + layer.get("eps", 1e-5))
        w = np.asarray(prev["weight"], float)
        b = np.asarray(prev["bias"], float) if prev.get("bias") is not None else np.zeros(w.shape[0])
        prev["weight"] = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
        prev["bias"] = (b - np.asarray(layer["mean"], float)) * scale + np.asarray(layer["beta"], float)
        if layer.get("act") is not None:
            prev["act"] = layer["act"]
    return Network(net.input, out, dict(net.meta))


class InputCodes(NamedTuple):
    """The codes a weight layer takes: ``bits`` wide, ``step`` per code, ``signed`` (sign-magnitude,
    from a ``linear_q`` layer) or unsigned (the input quantiser, a ``relu_q`` activation)."""
    bits: int
    step: float
    signed: bool = False

    @property
    def code_max(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1


def layer_input_codes(net: Network) -> dict:
    """{weight layer name: :class:`InputCodes`} of the codes each weight layer takes: the input
    quantiser's, or the activation that produced its input (a conv, a residual add, a pool).
    A weight layer whose input is an unquantised output (no activation) raises ValueError: the
    chip takes integer codes, so a hidden layer needs an activation (``linear_q`` if it is linear)."""
    cur = InputCodes(int(net.input["bits"]), input_step(net.input))
    stash, out = {}, {}
    for layer in net.layers:
        t = layer["type"]
        act = layer.get("act")
        produced = InputCodes(int(act["bits"]), act_step(act), act_signed(act)) if act is not None else None
        if t == "save":
            stash[layer["name"]] = cur
        elif t in ("add", "avgpool"):
            cur = produced
        elif t in _WEIGHT_TYPES:
            src = stash[layer["input"]] if layer.get("input") else cur
            if src is None:
                raise ValueError(f"layer {layer['name']!r} takes an unquantised output; the chip takes integer "
                                 "codes: give the layer before it an act, {'kind': 'linear_q', 'bits': 4, "
                                 "'clip': ...} for a linear hidden layer (signed codes) or "
                                 "{'kind': 'relu_q', 'bits': 3, 'clip': ...}")
            out[layer["name"]] = src
            if layer.get("output"):
                stash[layer["output"]] = produced
            else:
                cur = produced
    return out


def input_step(q: dict) -> float:
    """The value of one input code step (``net.input``): its ``step``, or 1/(2^bits − 1)."""
    return float(q.get("step", 1.0 / (2 ** int(q["bits"]) - 1)))


def _forward_batch(net: Network, x_uint8: np.ndarray, dtype) -> np.ndarray:
    codes = quantize_input(x_uint8, net.input)
    h = codes.astype(dtype) * input_step(net.input)
    if h.ndim == 3:  # (N, H, W) -> (N, 1, H, W)
        h = h[:, None]

    def weight_layer(layer, h):
        w = np.asarray(layer["weight"], dtype=dtype)
        b = None if layer.get("bias") is None else np.asarray(layer["bias"], dtype=dtype)
        if layer["type"] == "conv":
            h = conv2d(h, w, b, layer.get("stride", 1), layer.get("padding", 0))
        else:
            if h.ndim != 2:
                raise ValueError(f"dense layer {layer.get('name')!r} needs a flatten before it")
            h = h @ w.T
            if b is not None:
                h = h + b
        act = layer.get("act")
        return quantize_act(h, act).astype(dtype) * act_step(act) if act is not None else h

    return walk(net, h, weight_layer).astype(dtype, copy=False)


def forward(net: Network, x_uint8: np.ndarray, weight_noise_k: float = 0.0,
            rng: np.random.Generator | None = None, batch_size: int = 64,
            dtype=np.float64) -> np.ndarray:
    """Logits (N, classes) of ``net`` on uint8 images (N, H, W) or (N, C, H, W).

    The quantised inference of the training model: 3-bit input codes, integer activation
    codes times their step, float weights.  With ``weight_noise_k > 0`` one noisy copy of the
    weights is drawn (from ``rng``) and used for the whole batch.
    """
    x_uint8 = np.asarray(x_uint8)
    net = fold_batchnorm(net)
    if weight_noise_k and weight_noise_k > 0:
        net = noisy_layers(net, weight_noise_k, rng)
    outs = [_forward_batch(net, x_uint8[i:i + batch_size], dtype)
            for i in range(0, len(x_uint8), batch_size)]
    return np.concatenate(outs, axis=0) if outs else np.zeros((0, 0), dtype=dtype)


def predict(net: Network, x_uint8: np.ndarray, **kw) -> np.ndarray:
    """Class index per image."""
    return np.argmax(forward(net, x_uint8, **kw), axis=1)


def accuracy(net: Network, x_uint8: np.ndarray, y: np.ndarray, **kw) -> float:
    """Top-1 accuracy in [0, 1]."""
    return float(np.mean(predict(net, x_uint8, **kw) == np.asarray(y)))
