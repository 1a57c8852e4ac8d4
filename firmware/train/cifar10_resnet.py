"""Train the NeuRRAM CIFAR-10 ResNet-20 (docs/cifar10.md) with noise-resilient training.

ResNet-20 v1: a 3x3 conv 3->16, three stages of three basic blocks (16, 32, 64 filters; the first
block of stages 2 and 3 has stride 2 and a 1x1 stride-2 projection shortcut with bias), global
average pool, dense 64->10: 22 weight layers.  Input x/255 clipped to [0, 0.95] and quantised to
4 bits (16 levels, no mean subtraction); 3-bit activations (clipped ReLU with a trainable clip,
fake-quantised, also after each residual add and after the average pool, whose output the chip
takes as input codes of the dense layer).  Batch norm during training, folded into the weights
and biases on export.  Every training forward pass adds Gaussian noise sigma = k * max|W'| to each
layer's weights and biases as the chip holds them, batch norm folded (W' = W * gamma / sqrt(var +
eps); k = 0.20 by default, as for the chip), ramped up over the first epoch; after every step each
layer's folded weights are clipped to +-2 standard deviations, so that max|W'| (and the noise)
stays near the bulk of the weights.
SGD with Nesterov momentum, one-cycle learning rate, random crops (4 px padding) and flips.

Data: ``cifar10_train_jpegq75_bytes.npz`` (the 50,000 training images as JPEG quality-75 files,
decoded once with Pillow and cached as ``.npy`` next to the checkpoint) and the JPEG test copy.
A checkpoint is written after every epoch; run the same command again to resume.

    python firmware/train/cifar10_resnet.py --data-dir ../shared/datasets --epochs 30 \\
        --out firmware/weights/cifar10_resnet20.npz

Needs PyTorch and Pillow (the optional ``train`` extra); nothing else in the project does.
"""

from __future__ import annotations

import argparse
import io
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
    sys.exit("cifar10_resnet.py needs PyTorch: pip install 'neurram[train]'")

from neurram.firmware import datasets, nn as qnn   # the package: pip install -e '.[train]'
from neurram.firmware.tasks.cifar10 import STAGES, input_quant, resnet_layers

ACT_BITS = 3
BLOCKS = 3


def quantize_input_t(x_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> the values the first layer sees (the rule of nn.quantize_input)."""
    q = input_quant()
    codes = torch.clamp(torch.floor(x_uint8.float() / q["scale"] + 0.5), 0, 2 ** q["bits"] - 1)
    return codes * q["step"]


class QReLU(tnn.Module):
    """Clipped ReLU with a trainable clip, fake-quantised to 2**bits codes (round half up, STE)."""

    def __init__(self, clip: float = 2.0):
        super().__init__()
        self.clip = tnn.Parameter(torch.tensor(float(clip)))

    def forward(self, y):
        qmax = 2 ** ACT_BITS - 1
        clip = self.clip.abs() + 1e-4
        yc = torch.minimum(F.relu(y), clip)
        q = yc / (clip / qmax)
        q = q + (torch.floor(q + 0.5) - q).detach()
        return q * (clip / qmax)

    def act(self) -> dict:
        return {"kind": "relu_q", "bits": ACT_BITS, "clip": float(self.clip.detach().abs() + 1e-4)}


class NoisyLinear(tnn.Linear):
    noise_k = 0.0

    def forward(self, x):
        w, b = self.weight, self.bias
        if self.training and self.noise_k > 0:
            sigma = self.noise_k * w.detach().abs().max()
            w = w + torch.randn_like(w) * sigma
            b = b + torch.randn_like(b) * sigma
        return F.linear(x, w, b)


class ConvBN(tnn.Module):
    """A convolution and its batch norm: one layer of the chip once folded (W' = W * s, b' = (b - mean)
    * s + beta, s = gamma / sqrt(var + eps)).

    The chip holds W', so its weight error is sigma = k * max|W'| on every folded weight and bias,
    the same for all output channels; that is also how the noise table applies noise
    (``firmware/nn.py`` ``noisy_layers``). Training adds exactly that: the output change a folded
    weight noise N(0, sigma^2) would make, conv(x, N) + N_bias, after the batch norm. (Noise on the
    unfolded W with k * max|W| would differ by each channel's scale s: too little on channels whose
    s is small, which the chip's uniform error then swamps.)"""

    noise_k = 0.0

    def __init__(self, cin, cout, k, stride, bias=False):
        super().__init__()
        self.conv = tnn.Conv2d(cin, cout, k, stride, k // 2, bias=bias)
        self.bn = tnn.BatchNorm2d(cout)

    def scale(self) -> torch.Tensor:
        """s per output channel (detached), from the running statistics the export folds with."""
        bn = self.bn
        return (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()

    def forward(self, x):
        y = self.bn(self.conv(x))
        if self.training and self.noise_k > 0:
            w = self.conv.weight
            sigma = self.noise_k * (w.detach() * self.scale()[:, None, None, None]).abs().max()
            y = y + F.conv2d(x, torch.randn_like(w) * sigma, None, self.conv.stride, self.conv.padding)
            y = y + (torch.randn(w.shape[0]) * sigma)[None, :, None, None]
        return y

    @torch.no_grad()
    def clip_folded(self, n_std: float):
        """Clip the folded weights W * s to +-n_std of their standard deviation (through W)."""
        s = self.scale()[:, None, None, None]
        c = n_std * float((self.conv.weight * s).std())
        lim = c / s.abs().clamp_min(1e-12)
        self.conv.weight.copy_(torch.maximum(torch.minimum(self.conv.weight, lim), -lim))

    def folded(self):
        """(weight, bias) with the batch norm folded in (numpy, float64)."""
        w = self.conv.weight.detach().double()
        b = self.conv.bias.detach().double() if self.conv.bias is not None else torch.zeros(w.shape[0]).double()
        bn = self.bn
        scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
        return ((w * scale[:, None, None, None]).numpy(),
                ((b - bn.running_mean.double()) * scale + bn.bias.detach().double()).numpy())


class Block(tnn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = ConvBN(cin, cout, 3, stride)
        self.a1 = QReLU()
        self.c2 = ConvBN(cout, cout, 3, 1)
        self.proj = ConvBN(cin, cout, 1, stride, bias=True) if (stride != 1 or cin != cout) else None
        self.a2 = QReLU()

    def forward(self, x):
        y = self.c2(self.a1(self.c1(x)))
        return self.a2(y + (self.proj(x) if self.proj is not None else x))


class ResNet20(tnn.Module):
    def __init__(self):
        super().__init__()
        self.stem = ConvBN(3, STAGES[0], 3, 1)
        self.a0 = QReLU()
        blocks, cin = [], STAGES[0]
        for s, width in enumerate(STAGES):
            for b in range(BLOCKS):
                blocks.append(Block(cin, width, 2 if (s > 0 and b == 0) else 1))
                cin = width
        self.blocks = tnn.Sequential(*blocks)
        self.pool_act = QReLU()
        self.fc = NoisyLinear(STAGES[-1], 10)

    @torch.no_grad()
    def clip_weights(self, n_std: float):
        """Clip every layer's weights, as the chip holds them (batch norm folded), to +-n_std
        standard deviations: that keeps max|W'| near the bulk of the weights, so the noise
        k * max|W'| costs far less signal."""
        for m in self.modules():
            if isinstance(m, ConvBN):
                m.clip_folded(n_std)
        c = n_std * float(self.fc.weight.std())
        self.fc.weight.clamp_(-c, c)

    def set_noise(self, k: float):
        for m in self.modules():
            if isinstance(m, (ConvBN, NoisyLinear)):
                m.noise_k = float(k)

    def forward(self, x_uint8):
        h = self.a0(self.stem(quantize_input_t(x_uint8)))
        h = self.blocks(h)
        h = self.pool_act(h.mean(dim=(2, 3)))
        return self.fc(h)

    # -- export to firmware/nn.py --------------------------------------------------------------
    def to_network(self, meta: dict) -> qnn.Network:
        """The quantised network as ``firmware/nn.py`` layers (batch norm folded), in the layout of
        :func:`neurram.firmware.tasks.cifar10.resnet_layers`."""
        convs, acts = {"conv1": self.stem}, {"conv1": self.a0, "pool": self.pool_act}
        for i, blk in enumerate(self.blocks):
            tag = f"s{i // BLOCKS + 1}b{i % BLOCKS + 1}"
            convs.update({f"{tag}.conv1": blk.c1, f"{tag}.conv2": blk.c2, f"{tag}.proj": blk.proj})
            acts.update({f"{tag}.conv1": blk.a1, f"{tag}.add": blk.a2})

        def conv(name, c_out, c_in, k):
            if name == "fc":
                return (self.fc.weight.detach().numpy().astype(np.float32),
                        self.fc.bias.detach().numpy().astype(np.float32))
            w, b = convs[name].folded()
            assert w.shape == (c_out, c_in, k, k), (name, w.shape)
            return w.astype(np.float32), b.astype(np.float32)

        def act(name):
            return acts[name].act() if name in acts else None

        return qnn.Network(input=input_quant(), layers=resnet_layers(conv, act, STAGES, BLOCKS), meta=meta)


# ---------------------------------------------------------------------------------------------
# data


def load_train(data_dir, cache: Path):
    """(x uint8 (N, 3, 32, 32), y) of the JPEG training set, decoded once and cached."""
    if cache.exists():
        z = np.load(cache)
        return z["x"], z["y"]
    from PIL import Image
    path = datasets.find_file("cifar10_train_jpegq75_bytes.npz", data_dir, "CIFAR-10 training set")
    z = np.load(path)
    raw, off, y = z["jpeg_bytes"], z["offsets"], z["y_train"]
    x = np.empty((len(y), 32, 32, 3), np.uint8)
    for i in range(len(y)):
        x[i] = np.asarray(Image.open(io.BytesIO(raw[off[i]:off[i + 1]].tobytes())).convert("RGB"))
    x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, x=x, y=y)
    return x, y


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random 32x32 crops of the 4-px zero-padded images and random horizontal flips."""
    n = x.shape[0]
    xp = F.pad(x, (4, 4, 4, 4))
    dy = torch.randint(0, 9, (n,), generator=gen)
    dx = torch.randint(0, 9, (n,), generator=gen)
    idx_y = (dy[:, None] + torch.arange(32)[None, :])                  # (n, 32)
    idx_x = (dx[:, None] + torch.arange(32)[None, :])
    out = xp[torch.arange(n)[:, None, None, None], torch.arange(3)[None, :, None, None],
             idx_y[:, None, :, None], idx_x[:, None, None, :]]
    flip = torch.rand(n, generator=gen) < 0.5
    out[flip] = out[flip].flip(-1)
    return out


def evaluate(model, x_u8: np.ndarray, y: np.ndarray, bs: int = 500) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x_u8), bs):
            logits = model(torch.from_numpy(x_u8[i:i + bs]))
            correct += int((logits.argmax(1).numpy() == y[i:i + bs]).sum())
    return correct / len(x_u8)


# ---------------------------------------------------------------------------------------------
# training


def train(args) -> int:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    ckpt_dir = Path(args.checkpoint_dir)
    tag = f"_from_{Path(args.init).stem}" if args.init else ""
    ckpt = ckpt_dir / f"resnet20_k{args.noise_k:.2f}_seed{args.seed}{tag}.pt"
    x_tr, y_tr = load_train(args.data_dir, ckpt_dir / "cifar10_train_jpegq75_decoded.npz")
    x_te, y_te = datasets.load_cifar10_test(args.data_dir)
    x_te = np.ascontiguousarray(np.asarray(x_te).transpose(0, 3, 1, 2))
    if args.train_limit:                  # a random subset: the training copy is sorted by class
        pick = np.sort(np.random.default_rng(args.seed).permutation(len(x_tr))[:args.train_limit])
        x_tr, y_tr = x_tr[pick], y_tr[pick]
    model = ResNet20()
    steps_per_epoch = len(x_tr) // args.batch
    opt = torch.optim.SGD([{"params": [p for n, p in model.named_parameters() if not n.endswith("clip")],
                            "weight_decay": args.weight_decay},
                           {"params": [p for n, p in model.named_parameters() if n.endswith("clip")],
                            "weight_decay": 0.0}], lr=args.lr, momentum=0.9, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch,
                                                pct_start=0.15, div_factor=10, final_div_factor=100)
    start, log = 0, []
    if args.init:                 # a new schedule from another run's weights (e.g. to anneal it sooner)
        init = torch.load(args.init, weights_only=False)
        model.load_state_dict(init["model"])
        log = [dict(e, run=str(args.init)) for e in init["log"]]
    if ckpt.exists() and not args.restart:
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        start, log = state["epoch"], state["log"]
        print(f"resuming {ckpt} after epoch {start}", flush=True)
    gen = torch.Generator().manual_seed(args.seed * 1000 + start)
    xt, yt = torch.from_numpy(x_tr), torch.from_numpy(y_tr)
    for epoch in range(start, args.epochs):
        model.train()
        t0 = time.perf_counter()
        perm = torch.randperm(len(x_tr), generator=gen)
        loss_sum = 0.0
        for step in range(steps_per_epoch):
            frac = 1.0 if args.init else min(1.0, (epoch * steps_per_epoch + step) / max(1, steps_per_epoch))
            model.set_noise(args.noise_k * frac)              # ramp the noise up over the first epoch
            idx = perm[step * args.batch:(step + 1) * args.batch]
            logits = model(augment(xt[idx], gen))
            loss = F.cross_entropy(logits, yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if args.weight_clip > 0:
                model.clip_weights(args.weight_clip)
            loss_sum += float(loss.detach())
            if args.progress and step % 20 == 0:
                sys.stderr.write(f"\repoch {epoch + 1} step {step}/{steps_per_epoch} loss {loss_sum / (step + 1):.3f}")
        every = max(1, len(x_te) // max(1, args.eval_limit))      # the test set is sorted by class
        acc = evaluate(model, x_te[::every][:args.eval_limit], y_te[::every][:args.eval_limit])
        log.append({"epoch": epoch + 1, "loss": loss_sum / steps_per_epoch, "test_acc": acc,
                    "seconds": time.perf_counter() - t0})
        print(f"\nepoch {epoch + 1}/{args.epochs}: loss {log[-1]['loss']:.3f}, test accuracy "
              f"{100 * acc:.2f} % ({args.eval_limit} images), {log[-1]['seconds']:.0f} s", flush=True)
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        tmp = ckpt.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                    "epoch": epoch + 1, "log": log, "args": vars(args)}, tmp)
        os.replace(tmp, ckpt)
    model.eval()
    meta = {"model": "ResNet-20 v1, CIFAR-10 (JPEG q75 training copy)", "train_noise_k": args.noise_k,
            "epochs": len(log), "seed": args.seed, "train_images": len(x_tr), "log": log}
    net = model.to_network(meta)
    sw = qnn.accuracy(net, x_te, y_te, batch_size=250)
    net.meta["software_test_acc_jpeg"] = sw
    print(f"numpy quantised network (batch norm folded): {100 * sw:.2f} % on the 10,000 JPEG test images")
    qnn.save_network(args.out, net)
    print(f"wrote {args.out}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=None, help="folder with the CIFAR-10 .npz files")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.2)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--noise-k", type=float, default=0.20, help="training weight noise, sigma = k * max|W|")
    ap.add_argument("--weight-clip", type=float, default=2.0,
                    help="after every step clip each layer's weights to +-C std (0 = off; default 2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 1)))
    ap.add_argument("--train-limit", type=int, default=0, help="train on N images drawn at random (a shorter schedule)")
    ap.add_argument("--eval-limit", type=int, default=2000, help="test images scored after each epoch (every k-th)")
    ap.add_argument("--checkpoint-dir", default="build/train/cifar10")
    ap.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    ap.add_argument("--init", help="start from this checkpoint's weights with a new schedule of --epochs")
    ap.add_argument("--no-progress", dest="progress", action="store_false")
    ap.add_argument("--out", default="firmware/weights/cifar10_resnet20.npz")
    return train(ap.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
