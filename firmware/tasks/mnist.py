"""MNIST on the chip: the paper's 7-layer CNN with 3-bit inputs and activations (docs/chip.md §5).

    run_mnist(chip, x, y)          map, program (write-verify), infer; returns a MnistReport

The trained network ships in ``firmware/weights/mnist_cnn.npz`` (trained by
``firmware/train/mnist_cnn.py`` with weight-noise injection k = 0.15); a software baseline on
the same images comes from ``firmware/nn.py``.
"""

from pathlib import Path

import numpy as np

from .. import nn
from ..driver import Chip
from .classify import ClassifierReport, load_weights, run_classifier

__all__ = ["DEFAULT_WEIGHTS", "CALIBRATION_SUBSET", "MnistReport", "run_mnist", "load_default_network",
           "load_calibration_subset", "add_run_arguments", "run_cli"]

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "mnist_cnn.npz"
#: 64 MNIST *training* images that ship with the package (firmware/data/README.md): what the
#: chip calibrates on when no calibration images are given, never the images it is scored on.
CALIBRATION_SUBSET = Path(__file__).resolve().parents[1] / "data" / "mnist_train_subset.npz"


def load_calibration_subset(path=None) -> np.ndarray:
    """The embedded calibration images: uint8 (64, 28, 28), the first 64 MNIST training images
    (the ones ``neurram run mnist`` calibrates on)."""
    p = Path(path) if path else CALIBRATION_SUBSET
    with np.load(p) as z:
        x = np.asarray(z["x"])
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28):
        raise ValueError(f"{p}: expected uint8 images of 28 x 28, found {x.dtype} {x.shape}")
    return x


def load_default_network(path=None) -> nn.Network:
    return load_weights(path, DEFAULT_WEIGHTS, "MNIST", "mnist_cnn.py")


#: The MNIST task's report (the common classifier report).
MnistReport = ClassifierReport


def run_mnist(chip: Chip, x: np.ndarray, y: np.ndarray, *, net: nn.Network | None = None,
              x_cal: np.ndarray | None = None, progress: bool = True, batch_images: int = 50,
              calibrate: bool = True, calibration_vectors: int = 2048, workers: int = 1) -> MnistReport:
    net = net or load_default_network()
    if x_cal is None:                   # training images, never the test images being scored
        x_cal = load_calibration_subset()
    return run_classifier(chip, net, x, y, x_cal=x_cal, progress=progress, batch_images=batch_images,
                          calibrate=calibrate, calibration_vectors=calibration_vectors, workers=workers)


# -- neurram run mnist -----------------------------------------------------------------------

def add_run_arguments(p) -> None:
    p.add_argument("--data-dir", help="folder with mnist.npz or the MNIST idx files "
                                      "(default: $NEURRAM_DATA_DIR, ../shared/datasets, ~/.cache/neurram)")
    p.add_argument("--download", action="store_true", help="download MNIST (with checksums) if not found")


def run_cli(args, chip: Chip) -> dict:
    from ..datasets import load_mnist

    kw = {"download": True} if args.download else {}
    x, y = load_mnist(args.data_dir, split="test", **kw)
    x_cal, _ = load_mnist(args.data_dir, split="train", **kw)
    if args.limit:
        x, y = x[:args.limit], y[:args.limit]
    rtl = args.chip.startswith("rtl")
    # The RTL simulation runs thousands of times slower: calibrate on fewer vectors there.
    report = run_mnist(chip, x, y, x_cal=x_cal[:64], progress=not args.quiet,
                       calibration_vectors=96 if rtl else 2048, batch_images=1 if rtl else 50,
                       workers=args.workers)
    print(report.mapping_summary)
    print(report.table())
    return report.summary()
