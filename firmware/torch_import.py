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

A ``Conv2d`` or ``Linear`` without an activation whose output another weight layer reads (a linear
hidden layer, not the network's output) gets ``{"kind": "linear_q", "bits": act_bits + 1, "clip":
c}``, ``c`` the ``clip_percentile`` of ``|y|`` on the calibration images: signed codes, which the
chip takes as signed inputs. The graph lowering is shared with the ONNX importer
(``firmware/graph_import.py``).

Anything else raises :class:`TorchImportError` naming the node and what is supported. The module's
input is the network's quantised input: ``input_quant`` (default 4 bits, values code/15 in [0, 1])
maps uint8 pixels onto what the module was trained to see. Needs PyTorch (the ``train`` extra).
"""

from __future__ import annotations

import operator

import numpy as np

from . import graph_import, nn, validate

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
    q = dict(input_quant or graph_import.DEFAULT_INPUT_QUANT)
    model = model.eval()
    gm = torch.fx.symbolic_trace(model)
    mods = dict(gm.named_modules())
    values = {}                                    # node -> numpy value on the calibration images

    class Recorder(torch.fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            values[n] = out.numpy() if isinstance(out, torch.Tensor) else out
            return out

    with torch.no_grad():
        Recorder(gm).run(torch.from_numpy(graph_import.calibration_input(x_cal, q)))
    nodes = list(gm.graph.nodes)
    low = graph_import.Lowering({n: len(n.users) for n in nodes}, values,
                                act_bits=act_bits, clip_percentile=clip_percentile)

    def kind(n):
        if n.op == "call_module":
            return type(mods[n.target])
        if n.op in ("call_function", "call_method"):
            return n.target
        return n.op

    def fail(n, what):
        target = type(mods[n.target]).__name__ if n.op == "call_module" else getattr(n.target, "__name__", n.target)
        raise TorchImportError(f"{n.name} ({target}): {what}; "
                               "supported: Conv2d, Linear, BatchNorm after them, ReLU/ReLU6/Hardtanh(0, c), "
                               "MaxPool2d, global average pool, Flatten, residual add (firmware/torch_import.py)") from None

    def lower(n) -> bool:
        """Hands fx node ``n`` to the lowering; True at the graph's output."""
        k = kind(n)
        if n.op == "placeholder":
            low.input(n, name=n.name)
        elif n.op == "output":
            low.output(n.args[0])
            return True
        elif n.op == "get_attr":
            raise graph_import.Refused("parameters used outside a layer")
        elif k in (tnn.Conv2d, tnn.Linear):
            m = mods[n.target]
            w = m.weight.detach().double().numpy()
            b = m.bias.detach().double().numpy() if m.bias is not None else None
            if k is tnn.Conv2d:
                if m.groups != 1 or tuple(m.dilation) != (1, 1) or m.padding_mode != "zeros" or isinstance(m.padding, str):
                    raise graph_import.Refused("a Conv2d needs groups 1, dilation 1 and numeric zero padding")
                if m.stride[0] != m.stride[1] or m.padding[0] != m.padding[1]:
                    raise graph_import.Refused("a Conv2d needs the same stride and padding in both directions")
                low.weight(n, n.args[0], kind="conv", name=n.target, weight=w, bias=b,
                           stride=int(m.stride[0]), padding=int(m.padding[0]))
            else:
                low.weight(n, n.args[0], kind="dense", name=n.target, weight=w, bias=b)
        elif k in (tnn.BatchNorm2d, tnn.BatchNorm1d):
            m = mods[n.target]
            scale = (m.weight.detach().double() / torch.sqrt(m.running_var.double() + m.eps)).numpy()
            shift = m.bias.detach().double().numpy() - m.running_mean.double().numpy() * scale
            low.fold(n, n.args[0], scale, shift, name=n.name)
        elif k is tnn.ReLU6:
            low.relu(n, n.args[0], 6.0, name=n.name)
        elif k is tnn.Hardtanh:
            m = mods[n.target]
            if m.min_val != 0:
                raise graph_import.Refused(f"Hardtanh({m.min_val}, {m.max_val}) is not a clipped ReLU (min 0)")
            low.relu(n, n.args[0], float(m.max_val), name=n.name)
        elif k in (tnn.ReLU, F.relu, torch.relu, "relu"):
            low.relu(n, n.args[0], name=n.name)
        elif k in (operator.add, operator.iadd, torch.add, "add"):
            low.add(n, *n.args[:2], name=n.name)
        elif k is tnn.MaxPool2d:
            m = mods[n.target]
            if m.padding not in (0, (0, 0)) or m.dilation not in (1, (1, 1)):
                raise graph_import.Refused("a MaxPool2d needs padding 0 and dilation 1")
            low.maxpool(n, n.args[0], kernel=int(np.atleast_1d(m.kernel_size)[0]),
                        stride=int(np.atleast_1d(m.stride or m.kernel_size)[0]), ceil_mode=bool(m.ceil_mode), name=n.name)
        elif k is tnn.AdaptiveAvgPool2d or (k in (torch.mean, "mean") and tuple(n.args[1:2]) in (((2, 3),), ([2, 3],))):
            if k is tnn.AdaptiveAvgPool2d and mods[n.target].output_size not in (1, (1, 1)):
                raise graph_import.Refused("only a global average pool (output size 1) is supported")
            low.avgpool(n, n.args[0], name=n.name)
        elif k in (tnn.Flatten, torch.flatten, "flatten"):
            low.flatten(n, n.args[0], name=n.name)
        else:
            raise graph_import.Refused("not supported")
        return False

    for n in nodes:
        try:
            if lower(n):
                break
        except graph_import.Refused as e:
            fail(n, str(e))
    return low.network(q, {"model": name or type(model).__name__, "imported_from": "torch"}, "from_torch")
