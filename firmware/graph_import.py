"""The graph lowering shared by the importers (:mod:`.torch_import`, :mod:`.onnx_import`).

An importer walks its framework's graph in order, evaluates it on the calibration images and
hands each node to a :class:`Lowering` as one of a few framework-neutral operations:

* :meth:`~Lowering.weight`: a conv or dense layer (weight (O, I[, kh, kw]), bias, stride, padding);
* :meth:`~Lowering.fold`: a per-output-channel ``y * scale + shift`` folded into the weight layer
  before it (a batch norm, a bias added after a MatMul);
* :meth:`~Lowering.relu`: the chip's clipped ReLU, quantised to ``act_bits``; the clip is the
  model's (ReLU6, Hardtanh(0, c), Clip(0, c)) or the ``clip_percentile`` of the positive
  pre-activations on the calibration images;
* :meth:`~Lowering.add`: a residual add of the current tensor and a saved one (a block's input
  or a one-layer projection shortcut); a ReLU after it becomes the add's activation;
* :meth:`~Lowering.maxpool`, :meth:`~Lowering.avgpool` (global, quantised again like an
  activation: the next layer takes codes), :meth:`~Lowering.flatten`, :meth:`~Lowering.alias`
  (a tensor passed through unchanged).

A tensor read by more than one node is kept with a ``save`` layer; a weight layer that reads a
saved tensor (not the current one) becomes a side branch with ``input``/``output`` names.

Linear hidden layers: a conv or dense layer left without an activation whose output another
weight layer reads (it is not the network's output, nor only a residual add's input) gets
``{"kind": "linear_q", "bits": act_bits + 1, "clip": c}``, ``c`` the ``clip_percentile`` of
``|y|`` (after folding) on the calibration images: signed codes, which the chip takes as signed
inputs.

An operation the format cannot express raises :class:`Refused`; the importer turns it into its
own error naming the node and what is supported.
"""

from __future__ import annotations

import numpy as np

from . import nn, validate

__all__ = ["Lowering", "Refused", "DEFAULT_INPUT_QUANT", "calibration_input"]

#: 4-bit input codes, values code/15 in [0, 1]: what the importers assume without ``input_quant``.
DEFAULT_INPUT_QUANT = {"bits": 4, "scale": 255.0 / 15, "step": 1.0 / 15}


class Refused(Exception):
    """A node the chip network format cannot express; the message says why (no node name)."""


def calibration_input(x_cal, input_quant: dict) -> np.ndarray:
    """The float tensor (N, C, H, W) the imported model sees for uint8 images ``x_cal``: their
    input codes times the input step, as the network's first layer will see them."""
    x = nn.quantize_input(np.asarray(x_cal), input_quant).astype(np.float32) * nn.input_step(input_quant)
    return x[:, None] if x.ndim == 3 else x


def _percentile_clip(v: np.ndarray, percentile: float) -> float:
    """The ``percentile`` of the non-zero entries of ``v`` (>= 0), 1.0 when there are none."""
    v = v[v > 0]
    return float(np.percentile(v, percentile)) if v.size else 1.0


class Lowering:
    """Builds the layer list of an :class:`nn.Network` from neutral operations.

    Tensors are any hashable keys (a torch.fx node, an ONNX tensor name); ``users`` says how many
    nodes (and graph outputs) read each, ``values`` holds each one's float value on the
    calibration images (only those the lowering asks for: ReLU inputs, pools, weight outputs)."""

    def __init__(self, users, values, *, act_bits: int = 3, clip_percentile: float = 99.9):
        self.users, self.values = users, values
        self.act_bits, self.clip_percentile = int(act_bits), float(clip_percentile)
        self.layers: list[dict] = []
        self.names: dict = {}                      # tensor -> the name it is saved or produced under
        self.producer: dict = {}                   # tensor -> the layer whose act a ReLU would set
        self.saved: set = set()
        self.current = None
        self._linear_values: dict = {}             # id(weight layer) -> its output on the calibration images

    # -- bookkeeping --------------------------------------------------------------------------

    def _source(self, t):
        """How a layer reads ``t``: None when it is the current tensor, else its saved name."""
        if t == self.current:
            return None
        if t in self.saved:
            return self.names[t]
        raise Refused("reads a tensor that is neither the current one nor saved")

    def _follow(self, t, prev, spec):
        """``t`` changes ``prev``'s layer in place (a fold, an activation): it stands where ``prev``
        stood, as the current tensor or under ``prev``'s saved name."""
        self.producer[t] = spec
        if prev == self.current:
            self.current = t
        else:
            self.names[t] = self.names[prev]
            self.saved.add(t)

    def _done(self, t, name):
        """Keeps ``t`` with a save layer when more than one node reads it."""
        if self.users.get(t, 0) > 1 and t not in self.saved:
            self.names[t] = f"{name}.saved"
            self.layers.append({"type": "save", "name": self.names[t]})
            self.saved.add(t)

    def _produce(self, t, spec, name):
        """A layer on the main path whose activation a following ReLU sets."""
        self.layers.append(spec)
        self.producer[t] = spec
        self.current = t
        self._done(t, name)

    def _main_path(self, src, what):
        if src != self.current:
            raise Refused(f"{what} must read the last layer's output")

    # -- operations ---------------------------------------------------------------------------

    def input(self, t, *, name: str):
        """The network's (quantised) input."""
        self.current = t
        self._done(t, name)

    def weight(self, t, src, *, kind: str, name: str, weight, bias=None, stride: int = 1, padding: int = 0):
        """A conv (``kind="conv"``, weight (O, I, kh, kw)) or dense (weight (O, I)) layer."""
        w = np.asarray(weight, dtype=np.float64)
        b = np.zeros(w.shape[0]) if bias is None else np.asarray(bias, dtype=np.float64).reshape(-1)
        spec = {"type": kind, "name": name, "weight": w, "bias": b, "act": None}
        if kind == "conv":
            spec.update(stride=int(stride), padding=int(padding))
        where = self._source(src)
        if where is not None:                      # a side branch: one layer from a saved tensor
            spec.update(input=where, output=f"{name}.out")
            self.names[t] = spec["output"]
            self.saved.add(t)
        else:
            self.current = t
        self.layers.append(spec)
        self.producer[t] = spec
        self._linear_values[id(spec)] = self.values.get(t)
        self._done(t, name)

    def fold(self, t, src, scale, shift, *, name: str, what: str = "a batch norm"):
        """``t = src * scale + shift`` per output channel, folded into the weight layer before."""
        spec = self.producer.get(src)
        if spec is None or spec["type"] not in ("conv", "dense") or self.users.get(src, 0) != 1:
            raise Refused(f"{what} must follow a conv or dense layer that nothing else reads")
        w = spec["weight"]
        scale = np.broadcast_to(np.asarray(scale, dtype=np.float64).reshape(-1), (w.shape[0],))
        shift = np.broadcast_to(np.asarray(shift, dtype=np.float64).reshape(-1), (w.shape[0],))
        spec["weight"] = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
        spec["bias"] = spec["bias"] * scale + shift
        self._linear_values[id(spec)] = self.values.get(t)
        self._follow(t, src, spec)
        self._done(t, name)

    def relu(self, t, src, clip: float | None = None, *, name: str):
        """A clipped ReLU on ``src``: clip ``clip``, else the percentile of its positive values."""
        spec = self.producer.get(src)
        if spec is None or spec.get("act") is not None or self.users.get(src, 0) != 1:
            raise Refused("an activation must follow a layer, an add or a pool that nothing else reads")
        if clip is None:
            clip = _percentile_clip(np.asarray(self.values[src]), self.clip_percentile)
        spec["act"] = {"kind": "relu_q", "bits": self.act_bits, "clip": float(clip)}
        self._follow(t, src, spec)
        self._done(t, name)

    def add(self, t, a, b, *, name: str):
        """A residual add: one input is the current tensor, the other a saved one."""
        if a == self.current:
            other = b
        elif b == self.current:
            other = a
        else:
            raise Refused("an add needs the current tensor as one of its two inputs")
        if other not in self.saved:
            raise Refused("an add's other input must be a saved tensor or a one-layer shortcut")
        self._produce(t, {"type": "add", "name": name, "from": self.names[other], "act": None}, name)

    def maxpool(self, t, src, *, kernel: int, stride: int | None = None, ceil_mode: bool = False, name: str):
        self._main_path(src, "a max pool")
        self.layers.append({"type": "maxpool", "kernel": int(kernel), "stride": int(stride or kernel),
                            "ceil_mode": bool(ceil_mode)})
        self.current = t
        self._done(t, name)

    def avgpool(self, t, src, *, name: str):
        """A global average pool, its output quantised like a ReLU's (clip from ``values[t]``)."""
        self._main_path(src, "a global average pool")
        clip = _percentile_clip(np.asarray(self.values[t]), self.clip_percentile)
        self._produce(t, {"type": "avgpool", "name": name, "act": {"kind": "relu_q", "bits": self.act_bits, "clip": clip}},
                      name)

    def flatten(self, t, src, *, name: str):
        self._main_path(src, "a flatten")
        self.layers.append({"type": "flatten"})
        self.producer[t] = self.producer.get(src)
        self.current = t
        self._done(t, name)

    def alias(self, t, src, *, name: str):
        """``t`` is ``src`` unchanged (an Identity, a Dropout at inference)."""
        if src == self.current:
            self.current = t
        elif src in self.saved:
            self.names[t] = self.names[src]
            self.saved.add(t)
        else:
            raise Refused("reads a tensor that is neither the current one nor saved")
        if src in self.producer:
            self.producer[t] = self.producer[src]
        self._done(t, name)

    def output(self, t):
        if t != self.current:
            raise Refused("the network's output is not the last layer's")

    # -- the network --------------------------------------------------------------------------

    def _linear_hidden(self):
        """Gives every weight layer without an activation whose output another weight layer reads
        a ``linear_q`` activation (module docstring)."""
        cur, stash = None, {}
        for spec in self.layers:
            kind = spec["type"]
            if kind == "save":
                stash[spec["name"]] = cur
            elif kind in ("add", "avgpool"):
                cur = spec
            elif kind in ("conv", "dense"):
                src = stash.get(spec["input"]) if spec.get("input") else cur
                if src is not None and src["type"] in ("conv", "dense") and src["act"] is None:
                    y = self._linear_values.get(id(src))
                    clip = _percentile_clip(np.abs(np.asarray(y)), self.clip_percentile) if y is not None else 1.0
                    src["act"] = {"kind": "linear_q", "bits": self.act_bits + 1, "clip": clip}
                if spec.get("output"):
                    stash[spec["output"]] = spec
                else:
                    cur = spec

    def network(self, input_quant: dict, meta: dict, what: str) -> nn.Network:
        """The checked network (``what`` names it in errors)."""
        self._linear_hidden()
        return validate.network(nn.Network(dict(input_quant), self.layers, dict(meta)), what)
