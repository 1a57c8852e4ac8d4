"""Your own network on the chip: ``neurram run model --model FILE`` (docs/user-guide.md).

FILE is a network written by ``neurram.firmware.nn.save_network`` (by hand, by a training script
or by :func:`neurram.firmware.torch_import.from_torch`), or an ONNX model (``.onnx``, needs the
``onnx`` extra) imported by :func:`neurram.firmware.onnx_import.from_onnx` with its activation clips
set on the calibration images below (default input quantiser: 4-bit codes, values in [0, 1]). The
images come from one of the embedded
data sets (``--dataset mnist`` or ``cifar10``, test split scored, training images calibrate) or
from your own ``.npz`` (``--data FILE`` with arrays ``x`` uint8 images and ``y`` labels, and
optionally ``x_cal`` calibration images; without ``x_cal`` the first 64 images of ``x`` calibrate
and are not scored).
"""

import numpy as np

from .. import nn, validate
from ..driver import Chip
from .classify import run_classifier

__all__ = ["add_run_arguments", "run_cli", "load_images"]


def add_run_arguments(p) -> None:
    p.add_argument("--model", required=True,
                   help="network file (neurram.firmware.nn.save_network) or an ONNX model (.onnx)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", choices=("mnist", "cifar10"), help="score on this data set's test split")
    src.add_argument("--data", help=".npz with x (uint8 images), y (labels) and optionally x_cal")
    p.add_argument("--data-dir", help="folder with the data sets (for --dataset)")


def load_images(args):
    """(x, y, x_cal) for ``--dataset`` or ``--data``; images as (N, H, W) or (N, C, H, W)."""
    if args.dataset == "mnist":
        from ..datasets import load_mnist
        x, y = load_mnist(args.data_dir, split="test")
        return x, y, load_mnist(args.data_dir, split="train")[0][:64]
    if args.dataset == "cifar10":
        from ..datasets import load_cifar10_test, load_cifar10_train_subset
        x, y = load_cifar10_test(args.data_dir)
        return x.transpose(0, 3, 1, 2), y, load_cifar10_train_subset(args.data_dir)[0][:64].transpose(0, 3, 1, 2)
    try:
        with np.load(args.data, allow_pickle=False) as z:
            if "x" not in z.files or "y" not in z.files:
                raise validate.InputError(f"{args.data}: needs arrays 'x' (uint8 images) and 'y' (labels); "
                                          f"found {', '.join(z.files) or 'none'}")
            x, y = validate.pixels(z["x"]), np.asarray(z["y"])
            x_cal = validate.pixels(z["x_cal"]) if "x_cal" in z.files else None
    except (OSError, ValueError) as e:
        raise validate.InputError(f"{args.data}: not a readable .npz ({e})") from None
    if len(x) != len(y):
        raise validate.InputError(f"{args.data}: {len(x)} images but {len(y)} labels")
    if x_cal is None:
        if len(x) <= 64:
            raise validate.InputError(f"{args.data}: no x_cal and only {len(x)} images; give x_cal or more images")
        x_cal, x, y = x[:64], x[64:], y[64:]
    return x, y, x_cal


def run_cli(args, chip: Chip) -> dict:
    onnx_model = str(args.model).lower().endswith(".onnx")
    net = None if onnx_model else nn.load_network(args.model)
    x, y, x_cal = load_images(args)
    if onnx_model:                                 # imported with its clips set on the calibration images
        from ..onnx_import import from_onnx
        net = from_onnx(args.model, x_cal)
    if args.limit:
        x, y = x[:args.limit], y[:args.limit]
    rtl = args.chip.startswith("rtl")
    report = run_classifier(chip, net, x, y, x_cal=x_cal, progress=not args.quiet,
                            calibration_vectors=96 if rtl else 2048, batch_images=1 if rtl else 50,
                            workers=args.workers)
    print(report.mapping_summary)
    print(report.table())
    return report.summary()
