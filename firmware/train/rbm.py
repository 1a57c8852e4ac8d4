"""Train the image-recovery RBM (docs/rbm.md) in numpy: 794 visible units (784 MNIST pixels
scaled to [0, 1] and 10 one-hot label units) x 120 binary hidden units.

Contrastive divergence (CD-k) with momentum and weight decay, as the chip's authors trained
theirs (Wan et al., Nature 608, 2022): in every step the positive and negative phases run on
noisy weights W + N(0, (k·w_clip)²) (weight-noise injection, docs/chip.md §4), the gradient
updates the clean weights, which are clipped to ±w_clip so that the largest weight maps to
G_max on the chip. The negative phase uses visible probabilities (no visible sampling).

    python firmware/train/rbm.py --data-dir DATA --out firmware/weights/rbm.npz

The defaults (20 epochs of CD-5, minibatches of 32, learning rate 0.002, k = 0.15, seed 0) are
those of the committed weights (the default command reproduced that file bit for bit with
OPENBLAS_NUM_THREADS=1); about 2 minutes on one CPU.

numpy only; the file holds the arrays :func:`neurram.firmware.tasks.rbm.load_rbm` reads.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

_HERE = Path(__file__).resolve()
try:  # installed package
    from neurram.firmware import datasets
    from neurram.firmware.tasks.rbm import RBM, save_rbm, with_labels
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, str(_HERE.parents[3]))
    from neurram.firmware import datasets  # type: ignore
    from neurram.firmware.tasks.rbm import RBM, save_rbm, with_labels  # type: ignore

__all__ = ["train_rbm"]


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


def train_rbm(x_uint8: np.ndarray, labels: np.ndarray, *, hidden: int = 120, epochs: int = 20,
              batch: int = 32, lr: float = 0.002, momentum: float = 0.9, weight_decay: float = 1e-4,
              cd_steps: int = 5, w_clip: float = 1.0, noise_k: float = 0.15, seed: int = 0,
              progress: bool = True) -> RBM:
    """CD-``cd_steps`` training on uint8 images (N, 28, 28) and their labels; returns the RBM."""
    rng = np.random.default_rng(seed)
    v_all = with_labels(x_uint8, labels).astype(np.float32)
    n, nv = v_all.shape
    W = (rng.standard_normal((nv, hidden)) * 0.01).astype(np.float32)
    a = np.zeros(hidden, np.float32)
    p = np.clip(0.8 * v_all.mean(0) + 0.1, 1e-3, 1 - 1e-3)
    b = np.log(p / (1 - p)).astype(np.float32)                  # visible biases from the pixel means
    dW, da, db = np.zeros_like(W), np.zeros_like(a), np.zeros_like(b)
    steps = n // batch
    for e in range(epochs):
        t0 = time.perf_counter()
        order = rng.permutation(n)
        mom = 0.5 if e == 0 else momentum
        err = 0.0
        for s in range(steps):
            v0 = v_all[order[s * batch:(s + 1) * batch]]
            Wn = W + rng.standard_normal(W.shape).astype(np.float32) * (noise_k * w_clip)
            h0 = _sigmoid(v0 @ Wn + a)
            v = v0
            for _ in range(cd_steps):
                h = (rng.random(h0.shape, dtype=np.float32) < _sigmoid(v @ Wn + a)).astype(np.float32)
                v = _sigmoid(h @ Wn.T + b)
            h1 = _sigmoid(v @ Wn + a)
            err += float(np.sqrt(((v - v0)[:, :784] ** 2).sum(1)).mean())
            gW = (v0.T @ h0 - v.T @ h1) / batch - weight_decay * W
            dW = mom * dW + lr * gW
            da = mom * da + lr * (h0 - h1).mean(0)
            db = mom * db + lr * (v0 - v).mean(0)
            W = np.clip(W + dW, -w_clip, w_clip)
            a += da
            b += db
        if progress:
            print(f"epoch {e + 1}/{epochs}: reconstruction error {err / steps:.3f} "
                  f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    return RBM(W.astype(np.float64), b.astype(np.float64), a.astype(np.float64),
               meta={"epochs": epochs, "batch": batch, "lr": lr, "momentum": momentum,
                     "weight_decay": weight_decay, "cd_steps": cd_steps, "w_clip": w_clip,
                     "noise_k": noise_k, "seed": seed})


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", help="folder with mnist.npz (see firmware/datasets.py)")
    p.add_argument("--out", default=str(_HERE.parents[1] / "weights" / "rbm.npz"))
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--cd-steps", type=int, default=5)
    p.add_argument("--noise-k", type=float, default=0.15)
    p.add_argument("--lr", type=float, default=0.002)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    x, y = datasets.load_mnist(args.data_dir, split="train")
    rbm = train_rbm(x, y, epochs=args.epochs, cd_steps=args.cd_steps, noise_k=args.noise_k,
                    lr=args.lr, seed=args.seed)
    save_rbm(args.out, rbm)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
