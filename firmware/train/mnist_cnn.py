"""Train the NeuRRAM MNIST CNN (docs/chip.md §5) with noise-resilient training (docs/chip.md §4).

Network: conv3x3 1->8, 8->8, maxpool2, 8->16, 16->16, maxpool2, 16->32, 32->32,
maxpool2 (ceil mode: 7x7 -> 4x4), dense 512->10.  Padding 1, every conv has a bias.
3-bit input (pixels -> codes 0..7) and 3-bit activations: a clipped ReLU with a trainable
clip, fake-quantised to codes 0..7 (steps of clip/7) with a straight-through estimator.
In every training forward pass each layer's weights and bias get Gaussian noise
sigma = k * max|W| (k = 0.15), ramped up from 0 over the first epoch.  After every optimiser step each layer's weights are
clipped to +-2 standard deviations: that keeps max|W| close to the bulk of the weights, so the
same k costs far less signal (3 epochs: 98.7 % instead of 97.8 % clean test accuracy).
Adam, linear warm-up then cosine decay, random +-2 px shifts.

The result is written with ``neurram.firmware.nn.save_network``; ``nn.forward`` (numpy)
reproduces the trained model's quantised inference.  Needs PyTorch (the optional ``train``
extra, ``torch==2.13.0``, CPU is enough); nothing else in the project does.

    python firmware/train/mnist_cnn.py --epochs 20 --out firmware/weights/mnist_cnn.npz
"""

from __future__ import annotations

import copy
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

try:
    import torch
    import torch.nn as tnn
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - only the training needs torch
    sys.exit("mnist_cnn.py needs PyTorch: pip install 'torch==2.13.0' (the 'train' extra)")

_HERE = Path(__file__).resolve()
try:  # installed package
    from neurram.firmware import datasets, nn as qnn
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, str(_HERE.parents[1]))
    import datasets  # type: ignore
    import nn as qnn  # type: ignore

IN_BITS = 3
ACT_BITS = 3
# (name, in, out) for the six conv layers; a maxpool follows conv2, conv4 and conv6.
CONVS = [("conv1", 1, 8), ("conv2", 8, 8), ("conv3", 8, 16), ("conv4", 16, 16),
         ("conv5", 16, 32), ("conv6", 32, 32)]
POOL_AFTER = {"conv2", "conv4", "conv6"}


# ---------------------------------------------------------------------------------------------
# model


def quantize_input_t(x_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> code / 7 (the values the first layer sees); same rule as nn.quantize_input."""
    qmax = 2 ** IN_BITS - 1
    codes = torch.clamp(torch.floor(x_uint8.float() / (255.0 / qmax) + 0.5), 0, qmax)
    return codes / qmax


class QReLU(tnn.Module):
    """Clipped ReLU with a trainable clip, fake-quantised to 2**bits codes (STE)."""

    def __init__(self, bits: int = ACT_BITS, clip: float = 2.0):
        super().__init__()
        self.bits = bits
        self.clip = tnn.Parameter(torch.tensor(float(clip)))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        qmax = 2 ** self.bits - 1
        clip = self.clip.abs() + 1e-4
        yc = torch.minimum(F.relu(y), clip)          # PACT: d/dclip = 1 where y > clip
        step = clip / qmax
        q = yc / step
        q = q + (torch.floor(q + 0.5) - q).detach()  # round half up, straight-through
        return q * step

    def export_clip(self) -> float:
        return float(self.clip.detach().abs() + 1e-4)


class _WeightNoise:
    """Weights and bias carry N(0, (k max|W|)^2) noise in training passes (k = ``noise_k``)."""

    noise_k = 0.0

    def noisy_parameters(self):
        w, b = self.weight, self.bias
        if self.training and self.noise_k > 0:
            sigma = self.noise_k * w.detach().abs().max()
            w = w + sigma * torch.randn_like(w)
            b = b + sigma * torch.randn_like(b)
        return w, b


class NoisyConv(_WeightNoise, tnn.Conv2d):
    def forward(self, x):
        return F.conv2d(x, *self.noisy_parameters(), self.stride, self.padding)


class NoisyLinear(_WeightNoise, tnn.Linear):
    def forward(self, x):
        return F.linear(x, *self.noisy_parameters())


class MnistCNN(tnn.Module):
    def __init__(self, noise_k: float = 0.15):
        super().__init__()
        self.convs = tnn.ModuleList([NoisyConv(i, o, 3, stride=1, padding=1, bias=True)
                                     for _, i, o in CONVS])
        self.acts = tnn.ModuleList([QReLU() for _ in CONVS])
        self.fc = NoisyLinear(512, 10, bias=True)
        for conv in self.convs:  # He init keeps the activation scale from layer to layer
            tnn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
            tnn.init.zeros_(conv.bias)
        self.set_noise(noise_k)

    def set_noise(self, k: float):
        for m in self.modules():
            if isinstance(m, _WeightNoise):
                m.noise_k = float(k)

    @torch.no_grad()
    def clip_weights(self, n_std: float):
        """Clip every layer's weights to +-n_std standard deviations of that layer."""
        for m in self.modules():
            if isinstance(m, _WeightNoise):
                c = n_std * float(m.weight.std())
                m.weight.clamp_(-c, c)

    def forward(self, x, upto_act: int | None = None):
        """``x``: (N, 1, 28, 28) quantised input values.  ``upto_act``: return the pre-activation
        of that conv (used to initialise the clips)."""
        h = x
        for i, ((name, _, _), conv, act) in enumerate(zip(CONVS, self.convs, self.acts)):
            h = conv(h)
            if upto_act == i:
                return h
            h = act(h)
            if name in POOL_AFTER:
                h = F.max_pool2d(h, 2, ceil_mode=True)
        return self.fc(h.flatten(1))

    def to_layers(self) -> list[dict]:
        layers: list[dict] = []
        for (name, _, _), conv, act in zip(CONVS, self.convs, self.acts):
            layers.append({"type": "conv", "name": name,
                           "weight": conv.weight.detach().numpy().copy(),
                           "bias": conv.bias.detach().numpy().copy(),
                           "stride": 1, "padding": 1,
                           "act": {"kind": "relu_q", "bits": ACT_BITS, "clip": act.export_clip()}})
            if name in POOL_AFTER:
                layers.append({"type": "maxpool", "kernel": 2, "ceil_mode": True})
        layers.append({"type": "flatten"})
        layers.append({"type": "dense", "name": "fc", "weight": self.fc.weight.detach().numpy().copy(),
                       "bias": self.fc.bias.detach().numpy().copy(), "act": None})
        return layers


INPUT_QUANT = {"bits": IN_BITS, "scale": 255.0 / (2 ** IN_BITS - 1),
               "step": 1.0 / (2 ** IN_BITS - 1)}


# ---------------------------------------------------------------------------------------------
# training


def random_shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Shift every (N, H, W) image by its own random (dy, dx) in [-max_shift, max_shift], zero fill."""
    if max_shift <= 0:
        return x
    n, h, w = x.shape
    p = max_shift
    xp = F.pad(x, (p, p, p, p))
    dy = torch.randint(0, 2 * p + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * p + 1, (n,), generator=gen)
    rows = (torch.arange(h)[None, :] + dy[:, None])[:, :, None]
    cols = (torch.arange(w)[None, :] + dx[:, None])[:, None, :]
    return xp[torch.arange(n)[:, None, None], rows, cols]


@torch.no_grad()
def init_clips(model: MnistCNN, x: torch.Tensor, pct: float = 99.7):
    """Set each clip, layer after layer, to a high percentile of its positive pre-activations."""
    model.eval()
    for i, act in enumerate(model.acts):
        y = model(x, upto_act=i)
        pos = y[y > 0]
        act.clip.fill_(float(torch.quantile(pos[:1_000_000], pct / 100)) if pos.numel() else 1.0)


@torch.no_grad()
def evaluate(model: MnistCNN, x_u8: torch.Tensor, y: torch.Tensor, bs: int = 1000) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(x_u8), bs):
        logits = model(quantize_input_t(x_u8[i:i + bs]).unsqueeze(1))
        correct += int((logits.argmax(1) == y[i:i + bs]).sum())
    return correct / len(x_u8)


def numpy_noise_eval(net, x, y, ks, seeds) -> dict:
    out = {}
    for k in ks:
        accs = [qnn.accuracy(net, x, y, weight_noise_k=k, rng=np.random.default_rng(s))
                for s in seeds]
        out[str(k)] = {"mean": float(np.mean(accs)), "std": float(np.std(accs)),
                       "runs": [float(a) for a in accs]}
    return out


def train(args) -> int:
    """Train, evaluate and write the network; ``args`` are the options of ``neurram train mnist``
    (neurram/cli.py, which defines them and their defaults)."""
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    x_tr, y_tr = datasets.load_mnist(args.data_dir, "train")
    x_te, y_te = datasets.load_mnist(args.data_dir, "test")
    if args.limit_train:
        x_tr, y_tr = x_tr[:args.limit_train], y_tr[:args.limit_train]
    xt_tr, yt_tr = torch.from_numpy(x_tr), torch.from_numpy(y_tr)
    xt_te, yt_te = torch.from_numpy(x_te), torch.from_numpy(y_te)
    print(f"train {tuple(x_tr.shape)}  test {tuple(x_te.shape)}  torch {torch.__version__} "
          f"threads {torch.get_num_threads()}", flush=True)

    model = MnistCNN(noise_k=args.noise_k)
    init_clips(model, quantize_input_t(xt_tr[:1000]).unsqueeze(1))
    ema = copy.deepcopy(model) if args.ema > 0 else None
    print("initial clips:", [round(a.export_clip(), 3) for a in model.acts], flush=True)

    steps_per_epoch = math.ceil(len(x_tr) / args.batch_size)
    total = steps_per_epoch * args.epochs
    warmup = min(200, total // 10)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if s < warmup
        else 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, total - warmup))))

    history = []
    t_start = time.time()
    for epoch in range(1, args.epochs + 1):
        model.train()
        t0 = time.time()
        perm = torch.randperm(len(x_tr), generator=gen)
        loss_sum, correct = 0.0, 0
        for i in range(0, len(x_tr), args.batch_size):
            if args.noise_warmup > 0:
                done = (epoch - 1) + i / len(x_tr)
                model.set_noise(args.noise_k * min(1.0, done / args.noise_warmup))
            idx = perm[i:i + args.batch_size]
            xb = random_shift(xt_tr[idx], args.shift, gen)
            xb = quantize_input_t(xb).unsqueeze(1)
            yb = yt_tr[idx]
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if args.weight_clip > 0:
                model.clip_weights(args.weight_clip)
            if ema is not None:
                with torch.no_grad():
                    for pe, pm in zip(ema.parameters(), model.parameters()):
                        pe.lerp_(pm, 1.0 - args.ema)
            loss_sum += loss.item() * len(idx)
            correct += int((logits.argmax(1) == yb).sum())
        t_epoch = time.time() - t0
        acc_raw = evaluate(model, xt_te, yt_te)
        acc_te = evaluate(ema, xt_te, yt_te) if ema is not None else acc_raw
        rec = {"epoch": epoch, "loss": loss_sum / len(x_tr), "train_acc": correct / len(x_tr),
               "test_acc": acc_te, "test_acc_raw": acc_raw, "epoch_s": t_epoch}
        history.append(rec)
        print(f"epoch {epoch:3d}/{args.epochs}  loss {rec['loss']:.4f}  "
              f"train(noisy) {100 * rec['train_acc']:.2f}%  test {100 * acc_te:.2f}%"
              + (f" (raw {100 * acc_raw:.2f}%)" if ema is not None else "")
              + f"  {t_epoch:.1f}s", flush=True)
    train_s = time.time() - t_start

    layers = (ema if ema is not None else model).to_layers()
    net = qnn.Network(input=dict(INPUT_QUANT), layers=layers)
    acc_np = qnn.accuracy(net, x_te, y_te)
    print(f"numpy reference forward, no noise: {100 * acc_np:.2f}%  "
          f"(torch eval {100 * history[-1]['test_acc']:.2f}%)", flush=True)
    ks = [float(k) for k in args.eval_noise.split(",") if k.strip()]
    noise = numpy_noise_eval(net, x_te, y_te, ks, range(args.eval_seeds)) if ks else {}
    for k, r in noise.items():
        print(f"numpy forward, inference noise k={k}: {100 * r['mean']:.2f}% "
              f"(std {100 * r['std']:.2f}, {args.eval_seeds} seeds)", flush=True)

    meta = {
        "model": "mnist_cnn", "task": "MNIST", "spec": "docs/chip.md §5",
        "train": {"epochs": args.epochs, "noise_k": args.noise_k, "seed": args.seed,
                  "noise_warmup_epochs": args.noise_warmup,
                  "batch_size": args.batch_size, "lr": args.lr, "optimizer": "Adam",
                  "schedule": f"linear warmup {warmup} steps + cosine",
                  "weight_decay": args.weight_decay, "weight_clip_std": args.weight_clip,
                  "ema_decay": args.ema, "shift_aug_px": args.shift,
                  "train_images": int(len(x_tr)), "torch": torch.__version__,
                  "threads": torch.get_num_threads(), "seconds": round(train_s, 1)},
        "history": history,
        "test_acc": {"numpy_no_noise": acc_np, "torch_no_noise": history[-1]["test_acc"],
                     "numpy_weight_noise": noise},
        "noise_rule": "sigma = k * max|W| per layer, added to weight and bias",
    }
    qnn.save_network(args.out, net, meta=meta)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes); training took {train_s:.0f}s",
          flush=True)
    print(json.dumps(meta["test_acc"]), flush=True)
    return 0
