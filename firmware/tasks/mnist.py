"""MNIST on the chip: the paper's 7-layer CNN with 3-bit inputs and activations (docs/chip.md §5).

    run_mnist(chip, x, y)          map, program (write-verify), infer; returns a MnistReport

The trained network ships in ``firmware/weights/mnist_cnn.npz`` (trained by
``firmware/train/mnist_cnn.py`` with weight-noise injection k = 0.15); a software baseline on
the same images comes from ``firmware/nn.py``.
"""

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import nn
from ..driver import Chip
from ..mapper import map_network
from ..runtime import Runtime

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
    p = Path(path) if path else DEFAULT_WEIGHTS
    if not p.is_file():
        raise FileNotFoundError(f"MNIST weights not found at {p}: train them with "
                                f"`python firmware/train/mnist_cnn.py --out {p}` (needs the train extra)")
    return nn.load_network(p)


@dataclass
class MnistReport:
    images: int
    accuracy: float
    software_accuracy: float
    seconds_inference: float
    seconds_programming: float
    cores_used: list
    unconverged_cells: int
    programmed_cells: int
    events: dict
    mvms: int
    chip_cycles: int | None
    layers: list = field(default_factory=list)
    mapping_summary: str = ""
    calibration: str = ""
    seconds_calibration: float = 0.0

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds_inference if self.seconds_inference else 0.0

    def table(self) -> str:
        lines = [
            f"images                 {self.images}",
            f"chip accuracy          {100 * self.accuracy:.2f} %",
            f"software (same images) {100 * self.software_accuracy:.2f} %",
            f"throughput             {self.images_per_s:,.3g} images/s ({self.seconds_inference:.1f} s, {self.seconds_inference / max(self.images, 1):.3g} s per image)",
            f"cores used             {len(self.cores_used)}: {self.cores_used}",
            f"programming            {self.programmed_cells:,} cells, {self.unconverged_cells} unconverged "
            f"({100 * self.unconverged_cells / max(self.programmed_cells, 1):.3f} %), {self.seconds_programming:.1f} s",
            f"calibration            {self.seconds_calibration:.1f} s (per-column gains and offsets on calibration images)",
            f"MVMs                   {self.mvms:,} ({self.mvms / max(self.images, 1):,.0f} per image)",
        ]
        if self.chip_cycles is not None:
            lines.append(f"chip busy cycles       {self.chip_cycles:,} (core-parallel time, longest core per batch)")
        ev = ", ".join(f"{k} {v:,}" for k, v in self.events.items())
        lines.append(f"events (all cores)     {ev}")
        return "\n".join(lines)


def run_mnist(chip: Chip, x: np.ndarray, y: np.ndarray, *, net: nn.Network | None = None,
              x_cal: np.ndarray | None = None, progress: bool = True, batch_images: int = 50,
              calibrate: bool = True, calibration_vectors: int = 2048, workers: int = 1) -> MnistReport:
    net = net or load_default_network()
    if x_cal is None:                   # training images, never the test images being scored
        x_cal = load_calibration_subset()
    mapping = map_network(net, chip.config, x_cal=x_cal)
    rt = Runtime(chip, mapping)
    t0 = time.perf_counter()
    rt.program(progress=progress)
    t_prog = time.perf_counter() - t0
    t0 = time.perf_counter()
    cal = rt.calibrate(x_cal, max_vectors=calibration_vectors) if calibrate else None
    t_cal = time.perf_counter() - t0
    chip.clear_counters()
    result = rt.forward(x, batch_images=batch_images, progress=progress, workers=workers)
    mapping = rt.mapping                    # the repaired mapping when program() swapped in spare rows
    events = rt.core_counters(mapping.cores_used)
    sw = nn.predict(net, x)
    return MnistReport(
        images=len(x), accuracy=result.accuracy(y), software_accuracy=float(np.mean(sw == y)),
        seconds_inference=result.seconds, seconds_programming=t_prog, cores_used=mapping.cores_used,
        unconverged_cells=rt.unconverged_cells(),
        programmed_cells=int(sum(len(r.targets) for r in rt.reports.values())),
        events=events, mvms=sum(l.mvms for l in result.layers), chip_cycles=result.chip_cycles,
        layers=result.layers, mapping_summary=mapping.summary(),
        calibration=cal.summary() if cal is not None else "", seconds_calibration=t_cal)


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
    return {"images": report.images, "accuracy": report.accuracy,
            "software_accuracy": report.software_accuracy, "images_per_s": report.images_per_s,
            "cores_used": report.cores_used, "unconverged_cells": report.unconverged_cells,
            "events": report.events}
