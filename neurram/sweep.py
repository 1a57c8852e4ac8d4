"""Sweeps: a grid of chip runs (seeds x noise scales x ages x ...) on Dask distributed.

    grid = Grid(seed=[0, 1, 2], noise_scale=[0.5, 1, 2], age_s=[0, 3600], limit=500)
    results = run_sweep(grid)                       # a local cluster of 2 worker processes
    results = run_sweep(grid, scheduler="tcp://10.0.0.5:8786")      # a cluster already running
    write_results(results, "build/sweep/noise")     # noise.csv, noise.json (+ noise.png)
    print(format_table(results))

Every point opens its own chip from its own seed (``neurram.targets.open_chip``), programs it,
calibrates it on the first MNIST *training* images and classifies the first ``limit`` test
images, so a point's result does not depend on the worker, the order or the other points: the
same point run in this process (:func:`run_point`) gives the same numbers.

Dask is optional (``pip install -e .[sweep]``): only :func:`run_sweep` imports it. The plot needs
matplotlib (``pip install -e .[plot]``). See docs/sweep.md.
"""

from __future__ import annotations

import csv
import functools
import itertools
import json
import math
import sys
import time
from pathlib import Path

__all__ = ["Grid", "PARAMETERS", "require_dask", "run_point", "run_sweep", "target_string", "write_results",
           "plot_results", "format_table"]

#: The grid's parameters and their defaults, in the order points are enumerated (the last one
#: varies fastest). ``chip`` is the base target the point's options are added to (a ``model``
#: target); ``limit`` is the number of test images (None: the whole test set).
PARAMETERS = {
    "task": "mnist",
    "chip": "model",
    "seed": 0,
    "noise_scale": 1.0,
    "age_s": 0.0,
    "limit": None,
}

#: Test images the MNIST task calibrates on: the first ones of the *training* split.
CALIBRATION_IMAGES = 64

_TASKS = ("mnist",)
_NUMERIC = {"seed": int, "noise_scale": float, "age_s": float}


def require_dask():
    """dask.distributed's Client, LocalCluster and as_completed, or a one-line error naming the fix."""
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise RuntimeError("Dask distributed is not installed: pip install -e .[sweep]") from None
    return Client, LocalCluster, as_completed


class Grid:
    """The cartesian product of named parameter lists (see :data:`PARAMETERS`).

    Each keyword is a list of values or a single value; parameters not given take their default.
    ``points()`` lists every combination as a dict, the first parameter of :data:`PARAMETERS`
    varying slowest.
    """

    def __init__(self, **values):
        unknown = sorted(set(values) - set(PARAMETERS))
        if unknown:
            raise ValueError(f"unknown sweep parameter(s) {', '.join(unknown)}: "
                             f"the parameters are {', '.join(PARAMETERS)}")
        self.values = {}
        for name, default in PARAMETERS.items():
            v = values.get(name, default)
            v = list(v) if isinstance(v, (list, tuple, range)) else [v]
            if not v:
                raise ValueError(f"sweep parameter {name} has no values")
            self.values[name] = [self._check(name, x) for x in v]

    @staticmethod
    def _check(name, value):
        if name == "task":
            if value not in _TASKS:
                raise ValueError(f"unknown task {value!r}: tasks are {', '.join(_TASKS)}")
            return value
        if name == "chip":
            from neurram.targets import parse_target
            kind, _, opts = parse_target(value)
            if kind != "model" or {"seed", "noise_scale", "age", "noise"} & set(opts):
                raise ValueError(f"sweep chip {value!r}: a model target without seed, noise, noise_scale "
                                 f"and age options (those come from the grid)")
            return value
        if name == "limit":
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"limit must be a positive number of images or None, not {value!r}")
            return int(value)
        try:
            x = _NUMERIC[name](value)
        except (TypeError, ValueError):
            x = math.nan
        if not (math.isfinite(x) and x >= 0 and x == value):
            raise ValueError(f"sweep parameter {name} must be a finite number >= 0"
                             f"{' (an integer)' if name == 'seed' else ''}, not {value!r}")
        return x

    def points(self) -> list[dict]:
        names = list(self.values)
        return [dict(zip(names, combo)) for combo in itertools.product(*self.values.values())]

    def swept(self) -> list[str]:
        """The parameters with more than one value."""
        return [n for n, v in self.values.items() if len(v) > 1]

    def __len__(self) -> int:
        return math.prod(len(v) for v in self.values.values())

    def __repr__(self) -> str:
        return "Grid(" + ", ".join(f"{n}={v!r}" for n, v in self.values.items()) + ")"


def _number(x: float) -> str:
    """``x`` exactly, without a trailing ``.0`` (3600.0 -> 3600, 0.1 -> 0.1)."""
    r = repr(float(x))
    return r[:-2] if r.endswith(".0") else r


def target_string(point: dict) -> str:
    """The chip target of one point: its base ``chip`` plus seed, noise_scale and age."""
    base = point.get("chip", "model")
    opts = f"seed={int(point['seed'])},noise_scale={_number(point['noise_scale'])},age={_number(point['age_s'])}"
    return f"{base}{',' if ':' in base else ':'}{opts}"


@functools.lru_cache(maxsize=2)
def _mnist(data_dir):
    from neurram.firmware.datasets import load_mnist

    x, y = load_mnist(data_dir, split="test")
    x_cal, _ = load_mnist(data_dir, split="train")
    x_cal = x_cal[:CALIBRATION_IMAGES].copy()
    for a in (x, y, x_cal):
        a.setflags(write=False)
    return x, y, x_cal


def run_point(point: dict, *, data_dir=None) -> dict:
    """Run one grid point in this process: a flat dict of the point's parameters and its results.

    Results: ``accuracy`` and ``software_accuracy`` (fractions), ``images``, ``seconds`` (the whole
    point: chip, programming, calibration, inference), ``images_per_s`` (inference),
    ``unconverged_cells``, ``programmed_cells``, ``mvms`` and the chip's event counts
    (``events_<name>``, all cores); ``target`` is the chip target the point opened.
    """
    from neurram.firmware.tasks.mnist import run_mnist
    from neurram.targets import open_chip

    p = {name: point.get(name, default) for name, default in PARAMETERS.items()}
    p = {name: Grid._check(name, v) for name, v in p.items()}
    t0 = time.perf_counter()
    x, y, x_cal = _mnist(None if data_dir is None else str(data_dir))
    if p["limit"] is not None:
        x, y = x[:p["limit"]], y[:p["limit"]]
    target = target_string(p)
    chip = open_chip(target)
    report = run_mnist(chip, x, y, x_cal=x_cal, progress=False)
    return {
        **p,
        "target": target,
        "accuracy": float(report.accuracy),
        "software_accuracy": float(report.software_accuracy),
        "images": int(report.images),
        "seconds": time.perf_counter() - t0,
        "images_per_s": float(report.images_per_s),
        "unconverged_cells": int(report.unconverged_cells),
        "programmed_cells": int(report.programmed_cells),
        "mvms": int(report.mvms),
        **{f"events_{k}": int(v) for k, v in report.events.items()},
    }


def _bar(done: int, total: int, t0: float, width: int = 30) -> str:
    filled = width * done // max(total, 1)
    return (f"\rsweep [{'#' * filled}{'.' * (width - filled)}] {done}/{total} points, "
            f"{time.perf_counter() - t0:.1f} s")


def run_sweep(grid: Grid, scheduler: str | None = None, n_workers: int = 2, threads_per_worker: int = 1,
              progress: bool = True, *, data_dir=None) -> list[dict]:
    """Run every point of ``grid`` on Dask distributed; the results (:func:`run_point`) in grid order.

    ``scheduler``: the address of a running scheduler (``dask scheduler``, workers started with
    ``dask worker ADDRESS`` where neurram is installed); None starts a local cluster of
    ``n_workers`` processes with ``threads_per_worker`` threads each for this sweep. ``progress``
    draws a text bar on stderr as points finish. ``data_dir`` is where workers look for MNIST
    (default: their own search path, see ``neurram run --help``).
    """
    Client, LocalCluster, as_completed = require_dask()
    points = grid.points() if isinstance(grid, Grid) else [dict(p) for p in grid]
    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True,
                               dashboard_address=":0")
        client = Client(cluster)
    t0 = time.perf_counter()
    try:
        futures = [client.submit(run_point, p, data_dir=data_dir, pure=False) for p in points]
        index = {f.key: i for i, f in enumerate(futures)}
        results = [None] * len(points)
        if progress:
            sys.stderr.write(_bar(0, len(points), t0))
            sys.stderr.flush()
        for done, future in enumerate(as_completed(futures), 1):
            i = index[future.key]
            try:
                results[i] = future.result()
            except Exception as e:
                for f in futures:
                    f.cancel()
                raise RuntimeError(f"sweep point {i} {points[i]} failed: {type(e).__name__}: {e}") from e
            finally:
                if progress:
                    sys.stderr.write(_bar(done, len(points), t0))
                    sys.stderr.flush()
        return results
    finally:
        if progress:
            sys.stderr.write("\n")
        client.close()
        if cluster is not None:
            cluster.close()


# -- output -----------------------------------------------------------------------------------

def _swept(results: list[dict]) -> list[str]:
    return [n for n in PARAMETERS if len({repr(r.get(n)) for r in results}) > 1]


def format_table(results: list[dict]) -> str:
    """A text table: the swept parameters (all of them when nothing varies), then the results."""
    params = _swept(results) or [n for n in PARAMETERS if n != "chip"]
    cols = [(n, n, lambda v: "all" if v is None else f"{v:g}" if isinstance(v, float) else str(v))
            for n in params]
    cols += [("accuracy", "chip %", lambda v: f"{100 * v:.2f}"),
             ("software_accuracy", "software %", lambda v: f"{100 * v:.2f}"),
             ("images", "images", str),
             ("unconverged_cells", "unconverged", str),
             ("images_per_s", "images/s", lambda v: f"{v:.1f}"),
             ("seconds", "seconds", lambda v: f"{v:.1f}")]
    rows = [[fmt(r.get(key)) for key, _, fmt in cols] for r in results]
    heads = [h for _, h, _ in cols]
    widths = [max([len(h)] + [len(row[j]) for row in rows]) for j, h in enumerate(heads)]
    line = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths))
    return "\n".join([line(heads), line(["-" * w for w in widths])] + [line(r) for r in rows])


def write_results(results: list[dict], path_prefix, *, plot: bool = True) -> list[Path]:
    """Write ``PREFIX.csv`` (one row per point), ``PREFIX.json`` (a list of the result dicts) and,
    with ``plot`` and matplotlib installed, ``PREFIX.png`` (:func:`plot_results`). Returns the
    paths written; without matplotlib it prints one line saying how to get it."""
    prefix = Path(path_prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    fields = list(dict.fromkeys(k for r in results for k in r))
    paths = [prefix.with_name(prefix.name + ".csv"), prefix.with_name(prefix.name + ".json")]
    with open(paths[0], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in results:
            w.writerow({k: "" if r.get(k) is None else r.get(k) for k in fields})
    with open(paths[1], "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    if plot:
        png = plot_results(results, prefix.with_name(prefix.name + ".png"))
        if png is not None:
            paths.append(png)
    return paths


def plot_results(results: list[dict], path) -> Path | None:
    """Chip accuracy against each swept parameter (one panel each), one line per combination of
    the other swept parameters (their mean and range when there are more than 8). Returns the
    path, or None when nothing is swept or matplotlib is missing (then prints how to get it)."""
    from neurram.figures import _plt

    swept = [n for n in _swept(results) if n not in ("task", "chip")] or None
    if swept is None:
        return None
    plt = _plt()
    if plt is None:
        print("plot skipped: matplotlib is not installed (pip install -e .[plot])", file=sys.stderr)
        return None
    key = lambda v: (v is None, v if v is not None else 0)
    fig, axes = plt.subplots(1, len(swept), figsize=(4.5 * len(swept), 3.6), squeeze=False)
    for ax, name in zip(axes[0], swept):
        others = [n for n in _swept(results) if n != name]
        xs = sorted({r[name] for r in results}, key=key)
        xpos = {x: (x if x is not None else max(v for v in xs if v is not None) * 2) for x in xs}
        groups = {}
        for r in results:
            groups.setdefault(tuple(r[n] for n in others), {}).setdefault(r[name], []).append(100 * r["accuracy"])
        if len(groups) <= 8:
            for combo, ys in sorted(groups.items(), key=lambda kv: [key(v) for v in kv[0]]):
                label = ", ".join(f"{n}={v:g}" if isinstance(v, float) else f"{n}={v}" for n, v in zip(others, combo))
                xv = [x for x in xs if x in ys]
                ax.plot([xpos[x] for x in xv], [sum(ys[x]) / len(ys[x]) for x in xv], marker="o",
                        label=label or None)
        else:
            per_x = {x: [100 * r["accuracy"] for r in results if r[name] == x] for x in xs}
            xp = [xpos[x] for x in xs]
            ax.fill_between(xp, [min(per_x[x]) for x in xs], [max(per_x[x]) for x in xs], alpha=0.25,
                            label="range")
            ax.plot(xp, [sum(per_x[x]) / len(per_x[x]) for x in xs], marker="o",
                    label=f"mean over {len(groups)} combinations of {', '.join(others)}")
        positive = [xpos[x] for x in xs if xpos[x] > 0]
        if name == "seed":
            from matplotlib.ticker import MaxNLocator
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if name == "age_s" and positive and max(positive) / min(positive) > 100:
            ax.set_xscale("symlog", linthresh=min(positive))
        ax.set_xlabel(name)
        ax.set_ylabel("chip accuracy (%)")
        if any(h.get_label() and not h.get_label().startswith("_") for h in ax.get_lines()):
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{results[0]['task']}: chip accuracy, {results[0]['images']} images per point", fontsize=10)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
