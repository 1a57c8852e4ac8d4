"""Bring your own network: a PyTorch ``nn.Module`` as a chip network (``firmware/nn.py``).

    net = from_torch(model, x_cal)          # an nn.Network, ready for map_network / Runtime
    nn.save_network("my_net.npz", net)       # then: neurram run model --model my_net.npz ...

The module is traced with ``torch.fx``; these pieces are understood:

* ``Conv2d`` (groups 1, dilation 1, zero padding, square or not) and ``Linear``, each with or
  without bias;
* ``BatchNorm2d`` / ``BatchNorm1d`` right after one of those (folded into its weights and bias);
* ``ReLU``, ``ReLU6``, ``Hardtanh(0, c)`` and ``F.relu`` / ``torch.relu`` (module or function):
  the chip's clipped ReLU, quantised to ``act_bits``; the clip is the ReLU6's 6 or the Hardtanh's
  ``c``, else the ``clip_percentile`` of the positive pre-activations on the calibration images;
* ``MaxPool2d`` (no padding), ``AdaptiveAvgPool2d(1)`` / ``torch.mean(x, (2, 3))`` (a global
  average pool, whose output is quantised again like an activation: the next layer takes codes),
  ``Flatten`` / ``torch.flatten(x, 1)``;
* residual adds (``+``, ``torch.add``) of two tensors, one of them from a saved earlier tensor or
  from a single conv (a projection shortcut); a ReLU after the add becomes the add's activation.

Anything else raises :class:`ImportError_` naming the node and what is supported. The module's
input is the network's quantised input: ``input_quant`` (default 4 bits, values code/15 in [0, 1])
maps uint8 pixels onto what the module was trained to see. Needs PyTorch (the ``train`` extra).
"""

from __future__ import annotations

import operator

import numpy as np

from . import nn, validate

__all__ = ["from_torch", "TorchImportError"]


class TorchImportError(validate.InputError):
    """The module holds a piece the chip network format cannot express (the message says which)."""


def _torch():
    try:
        import torch
        import torch.fx
    except ImportError:
        raise TorchImportError("from_torch needs PyTorch: pip install 'neurram[train]'") from None
    return torch


def from_torch(model, x_cal: np.ndarray, *, input_quant: dict | None = None, act_bits: int = 3,
               clip_percentile: float = 99.9, name: str | None = None) -> nn.Network:
    """The chip network of ``model`` (a ``torch.nn.Module`` in eval mode) with activation clips
    set on ``x_cal`` (uint8 calibration images, (N, H, W) or (N, C, H, W))."""
    torch = _torch()
    tnn, F = torch.nn, torch.nn.functional
    q = dict(input_quant or {"bits": 4, "scale": 255.0 / 15, "step": 1.0 / 15})
    model = model.eval()
    gm = torch.fx.symbolic_trace(model)
    mods = dict(gm.named_modules())
    x = nn.quantize_input(np.asarray(x_cal), q).astype(np.float32) * nn.input_step(q)
    if x.ndim == 3:
        x = x[:, None]
    values = {}                                    # node -> float tensor on the calibration images

    class Recorder(torch.fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            values[n] = out
            return out

    with torch.no_grad():
        Recorder(gm).run(torch.from_numpy(x))
    nodes = [n for n in gm.graph.nodes]
    users = {n: len(n.users) for n in nodes}

    def kind(n):
        if n.op == "call_module":
            return type(mods[n.target])
        if n.op in ("call_function", "call_method"):
            return n.target
        return n.op

    def relu_clip(n) -> float | None:
        """The clip of an activation node, None when it is not one."""
        k = kind(n)
        if k is tnn.ReLU6:
            return 6.0
        if k is tnn.Hardtanh:
            m = mods[n.target]
            if m.min_val != 0:
                raise TorchImportError(f"{n.name}: Hardtanh({m.min_val}, {m.max_val}) is not a clipped ReLU (min 0)")
            return float(m.max_val)
        if k in (tnn.ReLU, F.relu, torch.relu, "relu"):
            v = values[n.args[0]].numpy()
            pos = v[v > 0]
            return float(np.percentile(pos, clip_percentile)) if pos.size else 1.0
        return None

    layers, names = [], {}                         # node -> the name its tensor is saved or produced under
    producer = {}                                  # node -> the layer dict whose act a ReLU would set
    current = None
    saved = set()

    def fail(n, what):
        target = type(mods[n.target]).__name__ if n.op == "call_module" else getattr(n.target, "__name__", n.target)
        raise TorchImportError(f"{n.name} ({target}): {what}; "
                               "supported: Conv2d, Linear, BatchNorm after them, ReLU/ReLU6/Hardtanh(0, c), "
                               "MaxPool2d, global average pool, Flatten, residual add (firmware/torch_import.py)")

    def source(n, arg):
        """How a layer reads ``arg``: None when it is the current tensor, else its saved name."""
        if arg is current:
            return None
        if arg in saved:
            return names[arg]
        fail(n, "reads a tensor that is neither the current one nor saved")

    def follow(n, prev, spec):
        """Node ``n`` changes ``prev``'s layer in place (a folded batch norm, an activation): it
        stands where ``prev`` stood, as the current tensor or under ``prev``'s saved name."""
        nonlocal current
        producer[n] = spec
        if prev is current:
            current = n
        else:
            names[n] = names[prev]
            saved.add(n)

    def emit_save_if_shared(n):
        if users.get(n, 0) > 1 and n not in saved:
            names[n] = f"{n.name}.saved"
            layers.append({"type": "save", "name": names[n]})
            saved.add(n)

    for n in nodes:
        k = kind(n)
        if n.op == "placeholder":
            current = n
            emit_save_if_shared(n)
            continue
        if n.op == "output":
            if n.args[0] is not current:
                fail(n, "the network's output is not the last layer's")
            break
        if n.op == "get_attr":
            fail(n, "parameters used outside a layer")
        if k in (tnn.Conv2d, tnn.Linear):
            m = mods[n.target]
            w = m.weight.detach().double().numpy()
            b = m.bias.detach().double().numpy() if m.bias is not None else np.zeros(w.shape[0])
            lname = n.target
            spec = {"name": lname, "weight": w, "bias": b, "act": None}
            if k is tnn.Conv2d:
                if m.groups != 1 or tuple(m.dilation) != (1, 1) or m.padding_mode != "zeros" or isinstance(m.padding, str):
                    fail(n, "a Conv2d needs groups 1, dilation 1 and numeric zero padding")
                if m.stride[0] != m.stride[1] or m.padding[0] != m.padding[1]:
                    fail(n, "a Conv2d needs the same stride and padding in both directions")
                spec.update(type="conv", stride=int(m.stride[0]), padding=int(m.padding[0]))
            else:
                spec["type"] = "dense"
            src = source(n, n.args[0])
            if src is not None:                    # a side branch: one layer from a saved tensor
                spec.update(input=src, output=f"{lname}.out")
                names[n] = spec["output"]
                saved.add(n)
            else:
                current = n
            layers.append(spec)
            producer[n] = spec
        elif k in (tnn.BatchNorm2d, tnn.BatchNorm1d):
            prev = n.args[0]
            spec = producer.get(prev)
            if spec is None or spec["type"] not in ("conv", "dense") or users[prev] != 1:
                fail(n, "a batch norm must follow a Conv2d or Linear that nothing else reads")
            m = mods[n.target]
            scale = (m.weight.detach().double() / torch.sqrt(m.running_var.double() + m.eps)).numpy()
            spec["weight"] = spec["weight"] * scale.reshape((-1,) + (1,) * (spec["weight"].ndim - 1))
            spec["bias"] = (spec["bias"] - m.running_mean.double().numpy()) * scale + m.bias.detach().double().numpy()
            follow(n, prev, spec)
        elif relu_clip(n) is not None:
            prev = n.args[0]
            spec = producer.get(prev)
            if spec is None or spec.get("act") is not None or users[prev] != 1:
                fail(n, "an activation must follow a layer, an add or a pool that nothing else reads")
            spec["act"] = {"kind": "relu_q", "bits": int(act_bits), "clip": relu_clip(n)}
            follow(n, prev, spec)
        elif k in (operator.add, operator.iadd, torch.add, "add"):
            a, b = n.args[:2]
            if a is current:
                other = b
            elif b is current:
                other = a
            else:
                fail(n, "an add needs the current tensor as one of its two inputs")
            if other not in saved:
                fail(n, "an add's other input must be a saved tensor or a one-layer shortcut")
            spec = {"type": "add", "name": n.name, "from": names[other], "act": None}
            layers.append(spec)
            producer[n] = spec
            current = n
        elif k is tnn.MaxPool2d:
            m = mods[n.target]
            if m.padding not in (0, (0, 0)) or m.dilation not in (1, (1, 1)):
                fail(n, "a MaxPool2d needs padding 0 and dilation 1")
            layers.append({"type": "maxpool", "kernel": int(np.atleast_1d(m.kernel_size)[0]),
                           "stride": int(np.atleast_1d(m.stride or m.kernel_size)[0]), "ceil_mode": bool(m.ceil_mode)})
            current = n
        elif k is tnn.AdaptiveAvgPool2d or (k in (torch.mean, "mean") and tuple(n.args[1:2]) in (((2, 3),), ([2, 3],))):
            if k is tnn.AdaptiveAvgPool2d and mods[n.target].output_size not in (1, (1, 1)):
                fail(n, "only a global average pool (output size 1) is supported")
            v = values[n].numpy()
            pos = v[v > 0]
            spec = {"type": "avgpool", "name": n.name,
                    "act": {"kind": "relu_q", "bits": int(act_bits),
                            "clip": float(np.percentile(pos, clip_percentile)) if pos.size else 1.0}}
            layers.append(spec)
            producer[n] = spec
            current = n
        elif k in (tnn.Flatten, torch.flatten, "flatten"):
            layers.append({"type": "flatten"})
            producer[n] = producer.get(n.args[0])
            current = n
        else:
            fail(n, "not supported")
        emit_save_if_shared(n)
    net = nn.Network(q, layers, {"model": name or type(model).__name__, "imported_from": "torch"})
    return validate.network(net, "from_torch")
