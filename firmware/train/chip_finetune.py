"""Chip-in-the-loop progressive fine-tuning (Wan et al., Nature 2022: how the CIFAR-10 and MNIST
networks were run on the chip), for any network in ``firmware/nn.py``'s format.

At each step the layers before a boundary are already programmed: the chip runs training images
up to that boundary, the codes it produced there are measured, and the layers after the boundary
are fine-tuned in software on those measured codes (so they learn the chip's own errors, with
weight noise k·max|W| injected as in training); then the fine-tuned layers are programmed (only
the cells whose targets changed) and calibrated, and the next step starts one boundary further.

    log = progressive_finetune(runtime, x_train, y_train, boundaries=["s2b1.in", "s3b1.in", "fc"])

A boundary is a ``save`` layer's name (the input of a residual block) or a weight layer's name.
Needs PyTorch (the ``train`` extra); the network's clips stay fixed (they set the chip's packets).
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from neurram.firmware import nn

__all__ = ["TorchTail", "progressive_finetune"]


def _fake_quant(y, act):
    qmax = 2 ** int(act["bits"]) - 1
    step = float(act["clip"]) / qmax
    q = torch.clamp(y, 0.0, float(act["clip"])) / step
    return (q + (torch.floor(q + 0.5) - q).detach()) * step


class TorchTail(torch.nn.Module):
    """``net.layers[start:]`` as a trainable module: values (codes x step) in, logits out; the
    activations fake-quantised as ``nn.forward`` quantises them (straight-through gradients)."""

    def __init__(self, net: nn.Network, start: int, noise_k: float = 0.0):
        super().__init__()
        self.layers = [dict(l) for l in net.layers[start:]]
        self.noise_k = noise_k
        self.w = torch.nn.ParameterDict()
        self.b = torch.nn.ParameterDict()
        for l in self.layers:
            if l["type"] in ("conv", "dense"):
                key = l["name"].replace(".", "_")
                self.w[key] = torch.nn.Parameter(torch.tensor(np.asarray(l["weight"], np.float32)))
                self.b[key] = torch.nn.Parameter(torch.tensor(np.asarray(l["bias"], np.float32)))

    def forward(self, h):
        stash = {}
        for l in self.layers:
            t = l["type"]
            if t == "save":
                stash[l["name"]] = h
            elif t in ("conv", "dense"):
                key = l["name"].replace(".", "_")
                w, b = self.w[key], self.b[key]
                if self.training and self.noise_k > 0:
                    sigma = self.noise_k * w.detach().abs().max()
                    w, b = w + torch.randn_like(w) * sigma, b + torch.randn_like(b) * sigma
                src = stash[l["input"]] if l.get("input") else h
                out = (F.conv2d(src, w, b, l.get("stride", 1), l.get("padding", 0)) if t == "conv"
                       else F.linear(src, w, b))
                if l.get("act") is not None:
                    out = _fake_quant(out, l["act"])
                if l.get("output"):
                    stash[l["output"]] = out
                else:
                    h = out
            elif t == "add":
                h = h + stash[l["from"]]
                h = _fake_quant(h, l["act"]) if l.get("act") is not None else h
            elif t == "avgpool":
                h = h.mean(dim=(2, 3))
                h = _fake_quant(h, l["act"]) if l.get("act") is not None else h
            elif t == "maxpool":
                h = F.max_pool2d(h, l.get("kernel", 2), l.get("stride") or l.get("kernel", 2),
                                 ceil_mode=bool(l.get("ceil_mode", False)))
            elif t == "flatten":
                h = h.flatten(1)
        return h

    def export(self) -> list:
        """The layer dicts with the fine-tuned weights."""
        out = []
        for l in self.layers:
            l = dict(l)
            if l["type"] in ("conv", "dense"):
                key = l["name"].replace(".", "_")
                l["weight"] = self.w[key].detach().numpy().copy()
                l["bias"] = self.b[key].detach().numpy().copy()
            out.append(l)
        return out


def _start_of(net: nn.Network, boundary: str) -> tuple:
    """(index where the tail starts, the weight layer whose input codes the chip measures there)."""
    for i, l in enumerate(net.layers):
        if l.get("name") == boundary:
            for later in net.layers[i:]:
                if later["type"] in ("conv", "dense") and not later.get("input"):
                    return i, later["name"]
    raise ValueError(f"boundary {boundary!r} is no save or weight layer of the network")


def _accuracy(model, h, y, batch=500) -> float:
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(h[i:i + batch]).argmax(1) for i in range(0, len(h), batch)])
    return float((pred.numpy() == y).mean())


def progressive_finetune(rt, x: np.ndarray, y: np.ndarray, boundaries, *, epochs: int = 2, lr: float = 2e-3,
                         noise_k: float = 0.10, batch: int = 128, seed: int = 0, progress: bool = True) -> list:
    """Fine-tune ``rt``'s network step by step on the chip's measured codes (module docstring);
    returns one log line per step (accuracy of the tail on the measured codes before and after).

    ``lr`` is relative to each layer's largest weight (Adam moves every weight by about its
    learning rate per step, whatever its size; batch-norm-folded layers differ 20-fold in scale):
    a layer's learning rate is ``lr * max|W|``."""
    torch.manual_seed(seed)
    y = np.asarray(y)
    log = []
    for boundary in boundaries:
        t0 = time.perf_counter()
        net = rt.mapping.net
        start, measured = _start_of(net, boundary)
        res = rt.forward(x, progress=progress, capture=measured, stop_at_capture=True)
        step = nn.layer_input_codes(net)[measured][1]
        h = torch.tensor(res.captured.astype(np.float32) * np.float32(step))
        tail = TorchTail(net, start, noise_k)
        before = _accuracy(tail, h, y)
        opt = torch.optim.Adam([{"params": [tail.w[k], tail.b[k]], "lr": lr * float(tail.w[k].detach().abs().max())}
                                for k in tail.w])
        yt = torch.tensor(y)
        for _ in range(epochs):
            tail.train()
            for idx in torch.randperm(len(h)).split(batch):
                loss = F.cross_entropy(tail(h[idx]), yt[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        after = _accuracy(tail, h, y)
        layers = net.layers[:start] + tail.export()
        changed = [l["name"] for l in tail.layers if l["type"] in ("conv", "dense")]
        rt.update_network(nn.Network(net.input, layers, dict(net.meta)), changed, progress=progress)
        log.append(f"fine-tuned {len(changed)} layers after {boundary} on the chip's codes of {len(x)} training "
                   f"images: {100 * before:.2f} % -> {100 * after:.2f} % on them ({time.perf_counter() - t0:.0f} s)")
        if progress:
            print(log[-1], flush=True)
    return log
