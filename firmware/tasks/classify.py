"""Image classification on a chip, end to end: the common body of the MNIST and CIFAR-10 tasks.

    run_classifier(chip, net, x, y)   map, program (write-verify), calibrate, infer; returns a
                                      ClassifierReport with the software accuracy on the same images
"""

import time
from dataclasses import dataclass, field

import numpy as np

from .. import nn
from ..driver import Chip
from ..mapper import map_network
from ..runtime import Runtime

__all__ = ["ClassifierReport", "run_classifier", "load_weights"]


def load_weights(path, default, what: str, trainer: str) -> nn.Network:
    """A task's network from ``path`` (default: the shipped ``default``), or a one-line error
    that says how to train it."""
    from pathlib import Path

    p = Path(path) if path else Path(default)
    if not p.is_file():
        raise FileNotFoundError(f"{what} weights not found at {p}: train them with "
                                f"`python firmware/train/{trainer} --out {p}` (needs the train extra)")
    return nn.load_network(p)


@dataclass
class ClassifierReport:
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
    notes: list = field(default_factory=list)      # steps such as fine-tuning, one line each

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
        lines += [f"note                   {n}" for n in self.notes]
        return "\n".join(lines)

    def summary(self) -> dict:
        """The JSON-able summary ``neurram run --json`` writes (with per-layer counters, from which
        the command line prints energy and latency per inference)."""
        return {"images": self.images, "accuracy": self.accuracy, "software_accuracy": self.software_accuracy,
                "images_per_s": self.images_per_s, "cores_used": self.cores_used,
                "unconverged_cells": self.unconverged_cells, "events": self.events, "notes": self.notes,
                "inferences": self.images, "chip_cycles": self.chip_cycles,
                "layer_counters": {l.name: {"mvms": l.mvms, "cores": list(l.cores), "counters": l.counters}
                                   for l in self.layers}}


def run_classifier(chip: Chip, net: nn.Network, x: np.ndarray, y: np.ndarray, *, x_cal: np.ndarray,
                   progress: bool = True, batch_images: int = 50, calibrate: bool = True,
                   calibration_vectors: int = 2048, workers: int = 1, after_calibration=None) -> ClassifierReport:
    """Map ``net`` onto ``chip``, program it, calibrate on ``x_cal`` (training images, never the
    scored ones), run ``after_calibration(runtime) -> [notes]`` if given (fine-tuning steps), score
    ``x`` against ``y`` and the software model on the same images."""
    mapping = map_network(net, chip.config, x_cal=x_cal)
    rt = Runtime(chip, mapping)
    t0 = time.perf_counter()
    rt.program(progress=progress)
    t_prog = time.perf_counter() - t0
    t0 = time.perf_counter()
    cal = rt.calibrate(x_cal, max_vectors=calibration_vectors) if calibrate else None
    t_cal = time.perf_counter() - t0
    notes = list(after_calibration(rt)) if after_calibration is not None else []
    chip.clear_counters()
    result = rt.forward(x, batch_images=batch_images, progress=progress, workers=workers)
    mapping = rt.mapping                    # the repaired mapping when program() swapped in spare rows
    events = rt.core_counters(mapping.cores_used)
    sw = nn.predict(net, x)
    return ClassifierReport(
        images=len(x), accuracy=result.accuracy(y), software_accuracy=float(np.mean(sw == y)),
        seconds_inference=result.seconds, seconds_programming=t_prog, cores_used=mapping.cores_used,
        unconverged_cells=rt.unconverged_cells(),
        programmed_cells=int(sum(len(r.targets) for r in rt.reports.values())),
        events=events, mvms=sum(l.mvms for l in result.layers), chip_cycles=result.chip_cycles,
        layers=result.layers, mapping_summary=mapping.summary(per_core=len(mapping.cores_used) > 8),
        calibration=cal.summary() if cal is not None else "", seconds_calibration=t_cal, notes=notes)
