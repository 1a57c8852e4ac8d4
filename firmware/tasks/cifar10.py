"""CIFAR-10 on the chip: ResNet-20 v1 with 4-bit inputs and 3-bit activations on all 48 cores
(docs/cifar10.md).

    run_cifar10(chip, x, y)        map, program (write-verify), calibrate, fine-tune on the chip's
                                   own measurements, infer; returns a ClassifierReport

The trained network ships in ``firmware/weights/cifar10_resnet20.npz`` (trained by
``firmware/train/cifar10_resnet.py`` on the JPEG quality-75 training copy with weight-noise
injection k = 0.20); the software baseline is the same quantised network in ``firmware/nn.py`` on
the same images.
"""

from pathlib import Path

import numpy as np

from .. import nn, validate
from ..driver import Chip
from .classify import ClassifierReport, load_weights, run_classifier

__all__ = ["DEFAULT_WEIGHTS", "STAGES", "resnet_layers", "random_resnet", "load_default_network",
           "finetune_dense", "run_cifar10", "PROGRESSIVE_BOUNDARIES", "add_run_arguments", "run_cli"]

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "cifar10_resnet20.npz"
#: ResNet-20 v1: filters per stage; three basic blocks per stage.
STAGES = (16, 32, 64)


def resnet_layers(conv, act, stages=STAGES, blocks: int = 3, classes: int = 10) -> list:
    """The layer dicts (firmware/nn.py) of a CIFAR ResNet v1: a 3x3 stem, ``blocks`` basic blocks
    per stage (stride 2 and a 1x1 projection shortcut with bias where the shape changes), a global
    average pool and a dense layer. ``conv(name, c_out, c_in, k) -> (weight, bias)`` gives the
    parameters and ``act(name)`` the activation of each named layer (None for linear layers)."""
    def layer(name, c_out, c_in, k, stride, **kw):
        w, b = conv(name, c_out, c_in, k)
        return {"type": "conv", "name": name, "weight": w, "bias": b, "stride": stride, "padding": k // 2,
                "act": act(name), **kw}

    layers = [layer("conv1", stages[0], 3, 3, 1)]
    c_in = stages[0]
    for s, width in enumerate(stages):
        for b in range(blocks):
            tag, stride = f"s{s + 1}b{b + 1}", (2 if (s > 0 and b == 0) else 1)
            layers += [{"type": "save", "name": f"{tag}.in"},
                       layer(f"{tag}.conv1", width, c_in, 3, stride),
                       layer(f"{tag}.conv2", width, width, 3, 1)]
            skip = f"{tag}.in"
            if stride != 1 or c_in != width:
                layers.append(layer(f"{tag}.proj", width, c_in, 1, stride, input=skip, output=f"{tag}.skip"))
                skip = f"{tag}.skip"
            layers.append({"type": "add", "name": f"{tag}.add", "from": skip, "act": act(f"{tag}.add")})
            c_in = width
    layers.append({"type": "avgpool", "name": "pool", "act": act("pool")})
    w, b = conv("fc", classes, stages[-1], None)
    layers.append({"type": "dense", "name": "fc", "weight": w, "bias": b, "act": None})
    return layers


def input_quant(bits: int = 4, clip: float = 0.95) -> dict:
    """The chip's CIFAR-10 input: pixel/255 clipped to ``clip`` and quantised to 2**bits levels."""
    qmax = 2 ** bits - 1
    return {"bits": bits, "scale": 255.0 * clip / qmax, "step": clip / qmax}


def random_resnet(seed: int = 0, stages=STAGES, blocks: int = 3, act_bits: int = 3, clip: float = 1.5) -> nn.Network:
    """A ResNet of the trained network's shape with He-initialised random weights (tests, benchmarks).
    Convolutions feeding an add are scaled down so that the residual stream keeps its size."""
    rng = np.random.default_rng(seed)

    def conv(name, c_out, c_in, k):
        fan_in = c_in * (k * k if k else 1)
        gain = 0.5 if name.endswith((".conv2", ".proj")) else 1.0
        shape = (c_out, c_in, k, k) if k else (c_out, c_in)
        return (rng.normal(0, gain * np.sqrt(2.0 / fan_in), shape).astype(np.float32),
                rng.normal(0, 0.05, c_out).astype(np.float32))

    def act(name):
        linear = name.endswith((".conv2", ".proj")) or name == "fc"
        return None if linear else {"kind": "relu_q", "bits": act_bits, "clip": clip}

    return nn.Network(input_quant(), resnet_layers(conv, act, stages, blocks),
                      {"model": f"random ResNet {stages} x {blocks} blocks (seed {seed})"})


def load_default_network(path=None) -> nn.Network:
    return load_weights(path, DEFAULT_WEIGHTS, "CIFAR-10", "cifar10_resnet.py")


def _nchw(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if x.ndim == 4 and x.shape[-1] == 3 else x


def finetune_dense(w: np.ndarray, b: np.ndarray, features: np.ndarray, labels: np.ndarray, *,
                   steps: int = 300, lr: float = 0.5, l2: float = 1e-3) -> tuple:
    """Softmax regression of a dense layer (w (O, I), b) on the features the chip measured,
    starting from the trained weights and pulled towards them by ``l2`` (full-batch gradient
    descent with momentum; plain numpy). Returns the new (w, b)."""
    w0, b0 = np.asarray(w, np.float64), np.asarray(b, np.float64)
    w1, b1 = w0.copy(), b0.copy()
    vw, vb = np.zeros_like(w1), np.zeros_like(b1)
    f = np.asarray(features, np.float64)
    onehot = np.eye(w0.shape[0])[np.asarray(labels)]
    for _ in range(steps):
        z = f @ w1.T + b1
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        g = (p - onehot) / len(f)
        gw = g.T @ f + l2 * (w1 - w0)
        gb = g.sum(0) + l2 * (b1 - b0)
        vw, vb = 0.9 * vw - lr * gw, 0.9 * vb - lr * gb
        w1, b1 = w1 + vw, b1 + vb
    return w1, b1


def _finetune_last_layer(rt, x_ft, y_ft, progress: bool) -> str:
    """The paper's final fine-tuning step, on the last (dense) layer: measure the chip's own input
    codes of that layer on training images, refit the layer on them in software, program the
    changed cells and calibrate it again. Returns a one-line log."""
    net = rt.mapping.net
    last = net.weight_layers()[-1]
    if last["type"] != "dense":
        return "fine-tuning skipped: the last weight layer is not dense"
    before = rt.forward(x_ft, progress=False, capture=last["name"])
    codes = before.captured.astype(np.float64)
    step = nn.layer_input_codes(net)[last["name"]][1]
    acc0 = before.accuracy(y_ft)
    w, b = finetune_dense(last["weight"], last["bias"], codes * step, y_ft)
    layers = [dict(l, weight=w.astype(np.float32), bias=b.astype(np.float32)) if l is last else l for l in net.layers]
    rt.update_network(nn.Network(net.input, layers, dict(net.meta)), [last["name"]], progress=progress)
    after = rt.forward(x_ft, progress=False)
    return (f"last-layer fine-tuning on {len(x_ft)} training images (chip-measured features): training-image "
            f"accuracy {100 * acc0:.2f} % -> {100 * after.accuracy(y_ft):.2f} %")


#: Where progressive fine-tuning measures the chip and retrains what follows (PyTorch): the inputs of
#: stages 2 and 3; the dense layer is then refitted on the chip's features as in "last".
PROGRESSIVE_BOUNDARIES = ("s2b1.in", "s3b1.in")


def run_cifar10(chip: Chip, x: np.ndarray, y: np.ndarray, *, x_cal: np.ndarray, net: nn.Network | None = None,
                finetune: tuple | None = None, finetune_mode: str = "last",
                progress: bool = True, batch_images: int = 50, calibration_vectors: int = 2048,
                workers: int = 1) -> ClassifierReport:
    """ResNet-20 on ``chip`` for images x (N, 32, 32, 3) or (N, 3, 32, 32), calibrated on the training
    images ``x_cal`` (never the scored ones). ``finetune``: (images,
    labels) of training images for chip-in-the-loop fine-tuning (None: none); ``finetune_mode``
    "last" refits the dense layer on the chip's features (numpy), "progressive" first fine-tunes
    every layer after each of :data:`PROGRESSIVE_BOUNDARIES` on the chip's measured codes (PyTorch,
    ``firmware/train/chip_finetune.py``), then refits the dense layer as "last" does."""
    net = net or load_default_network()
    validate.choice(finetune_mode, ("last", "progressive"), "run_cifar10: finetune_mode")
    hook = None
    if finetune is not None:
        x_ft, y_ft = _nchw(finetune[0]), np.asarray(finetune[1])
        if finetune_mode == "last":
            hook = lambda rt: [_finetune_last_layer(rt, x_ft, y_ft, progress)]  # noqa: E731
        else:
            try:
                from ..train.chip_finetune import progressive_finetune
            except ImportError as e:
                raise validate.InputError(f"progressive fine-tuning needs PyTorch ({e}): pip install 'neurram[train]'")
            bounds = [b for b in PROGRESSIVE_BOUNDARIES if any(l.get("name") == b for l in net.layers)]
            hook = lambda rt: (progressive_finetune(rt, x_ft, y_ft, bounds, progress=progress)  # noqa: E731
                               + [_finetune_last_layer(rt, x_ft, y_ft, progress)])
    return run_classifier(chip, net, _nchw(x), y, x_cal=_nchw(x_cal), progress=progress, batch_images=batch_images,
                          calibration_vectors=calibration_vectors, workers=workers, after_calibration=hook)


# -- neurram run cifar10 -----------------------------------------------------------------------

def add_run_arguments(p) -> None:
    p.add_argument("--data-dir", help="folder with cifar10_test_jpegq75.npz and cifar10_train_lossless_first4000.npz "
                                      "(default: $NEURRAM_DATA_DIR, ../shared/datasets, ~/.cache/neurram)")
    p.add_argument("--weights", help=f"network file (default: {DEFAULT_WEIGHTS.name}, shipped)")
    p.add_argument("--finetune-images", type=int, default=2000,
                   help="training images for the chip-in-the-loop fine-tuning (0: skip; default 2000)")
    p.add_argument("--finetune", choices=("last", "progressive"), default="last",
                   help="last: refit the dense layer on the chip's features (numpy, default); progressive: "
                        "fine-tune the layers after each stage on the chip's measured codes (needs PyTorch)")


def run_cli(args, chip: Chip) -> dict:
    from ..datasets import load_cifar10_test, load_cifar10_train_subset

    x, y = load_cifar10_test(args.data_dir)
    x_tr, y_tr = load_cifar10_train_subset(args.data_dir)
    if args.limit:                          # the test set is sorted by class: take every k-th image
        pick = np.linspace(0, len(x) - 1, min(args.limit, len(x))).astype(int)
        x, y = x[pick], y[pick]
    net = load_default_network(args.weights)
    rtl = args.chip.startswith("rtl")
    n_ft = min(args.finetune_images, len(x_tr) - 64)
    report = run_cifar10(chip, x, y, net=net, x_cal=x_tr[:64],
                         finetune=(x_tr[64:64 + n_ft], y_tr[64:64 + n_ft]) if n_ft > 0 else None,
                         finetune_mode=args.finetune,
                         progress=not args.quiet, calibration_vectors=96 if rtl else 2048,
                         batch_images=1 if rtl else 50, workers=args.workers)
    print(report.mapping_summary)
    print(report.table())
    return report.summary()
