"""The CIFAR-10 weight-noise table: training noise k against inference noise k (docs/cifar10.md).

Software-simulated weight noise as in the paper (Wan et al., Nature 2022, Extended Data): every
weight and bias of every conv and dense layer gets Gaussian noise sigma = k * max|W| of its layer
(``firmware/nn.py`` ``noisy_layers``, on the batch-norm-folded weights the chip holds), one noisy
copy per seed over the whole test set; accuracy is the mean over seeds. Each network's row is set
next to the paper's row for the same training k, as absolute values and as drops from the row's
no-noise cell (our test copy is JPEG quality 75, so absolute values sit a few points lower).

    python benchmarks/cifar10_noise.py --data-dir ../shared/datasets \\
        --net 0.20=firmware/weights/cifar10_resnet20.npz [--net 0.10=OTHER.npz ...] [--plot noise.png]
"""

import argparse
import sys
import time

import numpy as np

from neurram.firmware import nn
from neurram.firmware.datasets import load_cifar10_test
from neurram.firmware.tasks.cifar10 import DEFAULT_WEIGHTS

#: The paper's table: training k -> accuracy (%) at inference k = 0, 0.05, 0.10, 0.15.
PAPER = {0.0: (87.25, 69.28, 25.68, 12.21), 0.10: (88.19, 87.08, 83.83, 77.23),
         0.20: (87.56, 86.97, 85.61, 83.26), 0.30: (85.95, 85.90, 84.98, 83.55)}
TEST_K = (0.0, 0.05, 0.10, 0.15)


def noise_row(net, x, y, ks=TEST_K, seeds=8, batch_size=250):
    """(mean accuracy %, standard error of that mean %) over ``seeds`` noisy copies for each
    inference k (k = 0: one exact run, error 0). One copy's accuracy varies by about 2 points
    from draw to draw (a draw that hits a sensitive weight costs more), so a cell needs several."""
    row = []
    for k in ks:
        accs = [100 * nn.accuracy(net, x, y, weight_noise_k=k, rng=np.random.default_rng(seed), batch_size=batch_size,
                                  dtype=np.float32) for seed in range(1 if k == 0 else seeds)]
        row.append((float(np.mean(accs)), float(np.std(accs, ddof=1) / np.sqrt(len(accs))) if len(accs) > 1 else 0.0))
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir")
    ap.add_argument("--net", action="append", metavar="K=PATH",
                    help=f"a network trained with noise k (default: 0.20={DEFAULT_WEIGHTS.name}, shipped)")
    ap.add_argument("--seeds", type=int, default=8, help="noisy copies per cell (default 8; one copy's accuracy "
                                                         "varies by about 2 points)")
    ap.add_argument("--images", type=int, default=10000, help="test images (every k-th of the sorted set)")
    ap.add_argument("--plot", help="write a figure of both tables to this PNG (needs matplotlib)")
    args = ap.parse_args(argv)
    nets = {}
    for item in args.net or [f"0.20={DEFAULT_WEIGHTS}"]:
        k, _, path = item.partition("=")
        nets[float(k)] = nn.load_network(path)
    x, y = load_cifar10_test(args.data_dir)
    pick = np.linspace(0, len(x) - 1, min(args.images, len(x))).astype(int)
    x, y = np.ascontiguousarray(x[pick].transpose(0, 3, 1, 2)), y[pick]
    print(f"{len(x)} CIFAR-10 test images (JPEG copy), {args.seeds} noisy copies per cell; accuracy %, "
          "ours ± standard error of the mean over the copies (paper, original CIFAR-10); drop = the row's "
          "no-noise cell minus this cell")
    head = "train k \\ test k | " + " | ".join(f"{k:g}" for k in TEST_K)
    print(head)
    rows = {}
    for k_train, net in sorted(nets.items()):
        t0 = time.perf_counter()
        row = noise_row(net, x, y, seeds=args.seeds)
        rows[k_train] = ours = [m for m, _ in row]
        paper = PAPER.get(round(k_train, 2))
        cells = [f"{m:.2f} ± {e:.2f}" + (f" ({p:.2f})" if p is not None else "")
                 for (m, e), p in zip(row, paper or [None] * len(row))]
        print(f"{k_train:g} | " + " | ".join(cells) + f"   ({time.perf_counter() - t0:.0f} s)")
        if paper:
            drops = [f"{ours[0] - o:.2f} ({paper[0] - p:.2f}): {'within' if abs((ours[0] - o) - (paper[0] - p)) <= 1.5 else 'OUTSIDE'} 1.5"
                     for o, p in zip(ours[1:], paper[1:])]
            print(f"  drops {k_train:g}: " + " ; ".join(drops))
    if args.plot:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("--plot needs matplotlib: pip install 'neurram[plot]'", file=sys.stderr)
            return 1
        fig, ax = plt.subplots(figsize=(6, 4))
        for i, (k_train, ours) in enumerate(sorted(rows.items())):
            c = f"C{i}"
            ax.plot(TEST_K, ours, "o-", color=c, label=f"ours, train k={k_train:g} (JPEG copy)")
            if round(k_train, 2) in PAPER:
                ax.plot(TEST_K, PAPER[round(k_train, 2)], "s--", color=c, alpha=0.6, label=f"paper, train k={k_train:g}")
        ax.set_xlabel("inference weight noise k (sigma = k max|W|)")
        ax.set_ylabel("CIFAR-10 test accuracy (%)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
