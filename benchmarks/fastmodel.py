#!/usr/bin/env python
"""Speed of the fast chip model next to a digital numpy baseline and IBM aihwkit.

One run prints, on the same first ``--images`` MNIST test images and the same network (the
bundled CNN, ``neurram.firmware.tasks.mnist.load_default_network()``), the median over
``--repeats`` runs of:

1. **fast chip model** (``neurram.targets.open_chip("model")``):
   *end to end* = open the chip, ``map_network``, ``Runtime.program`` (write-verify),
   ``Runtime.calibrate`` on the first 64 MNIST *training* images, ``Runtime.forward``;
   *inference* = ``Runtime.forward`` alone; and the chip's accuracy.  ``--workers N`` is passed
   to ``Runtime.forward(workers=N)`` when that keyword exists (it is checked with ``inspect``).
2. **numpy float32**: ``neurram.firmware.nn.forward(net, x, dtype=np.float32)``, the same
   quantised network computed digitally, on ONE thread (this script sets OPENBLAS_NUM_THREADS,
   OMP_NUM_THREADS, MKL_NUM_THREADS, ... to 1 before numpy is imported).
3. **aihwkit** (only when ``import aihwkit`` succeeds; it is never a dependency of neurram):
   the same network as ``AnalogConv2d`` / ``AnalogLinear`` layers with
   ``InferenceRPUConfig()`` and ``noise_model = ReRamWan2022NoiseModel()``, the bundled
   weights and biases, the same input quantiser and clipped-ReLU activation quantisers as
   ``firmware/nn.py`` (applied digitally between the analog layers), max-pools with
   ``ceil_mode``; ``model.eval()``, ``program_analog_weights()``, ``drift_analog_weights(1.0)``,
   ``torch.set_num_threads(1)``, batches of 128.
4. the ratios fast-model inference / aihwkit and fast-model inference / numpy.
5. a **ResNet-20-shaped** network with random weights: the 19 3x3 convolutions of ResNet-20
   v1 for CIFAR-10 (16/32/64 filters, stride 2 at the two stage changes, padding 1) and the
   dense 64 -> 10 layer, with 3-bit clipped-ReLU activations and 4-bit inputs, on random uint8
   images of shape (N, 3, 32, 32).  ``firmware/nn.py`` has neither residual additions nor
   average pooling, so it is a *plain sequential stack of the same convolution shapes* (no
   shortcuts) and the global 8 x 8 average pool is *replaced by a max-pool of kernel 8*.
   Weights are He-initialised; each layer's clip is the 99th percentile of its positive
   pre-activations on a few images, so activations are neither all clipped nor all zero (the
   table shows the fractions).  Its logits on random images carry no meaning; only speed is
   measured.
   It is mapped with ``map_network`` onto ``ChipConfig()`` (48 cores); when that raises
   ``MappingError`` with the mapper's default segment size (100 inputs), smaller segments are
   tried (several per core pack tighter), then a larger core grid (8 x 7); what was used is
   printed.  Programmed without bad-row repair (a packing that just fits has no spare rows),
   then ``Runtime.forward`` on ``--resnet-images`` images: inference images/s, MVMs per image
   and cores used.

The table at the end holds every figure, the machine's load average, the Python, numpy and
aihwkit versions, and the targets (fast >= 2x aihwkit, >= 0.3x numpy, >= 1000 images/s
inference on MNIST, ResNet-20-shaped >= 150 images/s) marked PASS or MISS; they are targets,
not assertions: the script exits 0 either way.

    python benchmarks/fastmodel.py --images 2000 --repeats 3 [--workers N] [--json out.json]
"""

import os

# One thread for every BLAS / OpenMP pool: set before numpy (and torch) are imported.
_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "BLIS_NUM_THREADS")
for _v in _THREAD_VARS:
    os.environ[_v] = "1"

import argparse  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

import numpy as np  # noqa: E402

from neurram.config import ChipConfig  # noqa: E402
from neurram.firmware import nn  # noqa: E402
from neurram.firmware.datasets import load_mnist  # noqa: E402
from neurram.firmware.mapper import MappingError, map_network  # noqa: E402
from neurram.firmware.runtime import Runtime  # noqa: E402
from neurram.firmware.tasks.mnist import load_default_network  # noqa: E402
from neurram.targets import open_chip  # noqa: E402

CAL_IMAGES = 64          # training images for map_network's ranges and Runtime.calibrate
AIHWKIT_BATCH = 128

TARGET_VS_AIHWKIT = 2.0
TARGET_VS_NUMPY = 0.3
TARGET_MNIST_IPS = 1000.0
TARGET_RESNET_IPS = 150.0


def median(values):
    return float(statistics.median(values)) if values else float("nan")


def forward_kwargs(workers):
    """``workers=`` for Runtime.forward when given and supported; a note when it is not."""
    if workers is None:
        return {}, ""
    if "workers" in inspect.signature(Runtime.forward).parameters:
        return {"workers": workers}, ""
    return {}, f"--workers {workers} ignored: Runtime.forward has no workers= keyword yet"


# ---------------------------------------------------------------------------------------------
# 1. the fast chip model


def bench_fast(net, x, y, x_cal, repeats, fw_kw, chip_target):
    e2e, inf, setup, accs = [], [], [], []
    mvms = cores = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        chip = open_chip(chip_target)
        mapping = map_network(net, chip.config, x_cal=x_cal)
        rt = Runtime(chip, mapping)
        rt.program(progress=False)
        rt.calibrate(x_cal)
        t1 = time.perf_counter()
        res = rt.forward(x, progress=False, **fw_kw)
        t2 = time.perf_counter()
        setup.append(t1 - t0)
        e2e.append(len(x) / (t2 - t0))
        inf.append(len(x) / (t2 - t1))
        accs.append(res.accuracy(y))
        mvms = sum(l.mvms for l in res.layers) / len(x)
        cores = len(rt.mapping.cores_used)
    return {"end_to_end_ips": median(e2e), "inference_ips": median(inf), "accuracy": median(accs),
            "setup_s": median(setup), "mvms_per_image": mvms, "cores_used": cores,
            "inference_ips_runs": inf}


# ---------------------------------------------------------------------------------------------
# 2. numpy float32


def bench_numpy(net, x, y, repeats):
    ips, accs = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        logits = nn.forward(net, x, dtype=np.float32)
        dt = time.perf_counter() - t0
        ips.append(len(x) / dt)
        accs.append(float(np.mean(logits.argmax(1) == y)))
    return {"inference_ips": median(ips), "accuracy": median(accs), "inference_ips_runs": ips}


# ---------------------------------------------------------------------------------------------
# 3. aihwkit


def aihwkit_available():
    try:
        import aihwkit  # noqa: F401
        return True, getattr(aihwkit, "__version__", "?")
    except Exception as exc:  # ImportError, or a broken torch / rpu_base build
        return False, f"{type(exc).__name__}: {exc}"


def build_aihwkit_model(net, g_max=None, perfect=False):
    """``net`` (firmware/nn.py format) as an AnalogSequential of aihwkit analog layers.

    The input quantiser and every clipped-ReLU quantiser are the formulas of firmware/nn.py,
    run digitally in torch; conv and dense layers are AnalogConv2d / AnalogLinear holding the
    bundled float weights and biases (aihwkit's InferenceRPUConfig keeps biases digital).
    ``perfect``: ideal forward pass (no DAC/ADC, no noise): the logits of nn.forward, a check
    of the translation."""
    import torch
    from aihwkit.inference import ReRamWan2022NoiseModel
    from aihwkit.nn import AnalogConv2d, AnalogLinear, AnalogSequential
    from aihwkit.simulator.configs import InferenceRPUConfig

    class InputQuant(torch.nn.Module):
        """uint8 pixels -> clip(floor(p / scale + 1/2), 0, 2^bits - 1) * step (nn.quantize_input)."""

        def __init__(self, q):
            super().__init__()
            self.bits = int(q["bits"])
            self.qmax = float(2 ** self.bits - 1)
            self.scale = float(q.get("scale") or 255.0 / self.qmax)
            self.step = nn.input_step(q)

        def forward(self, x):
            x = x.to(torch.float64)           # nn.quantize_input rounds in float64
            codes = torch.clamp(torch.floor(x / self.scale + 0.5), 0.0, self.qmax)
            codes = codes.to(torch.float32) * self.step
            return codes[:, None] if codes.dim() == 3 else codes

    class ActQuant(torch.nn.Module):
        """Clipped ReLU quantised to 2^bits levels (nn.quantize_act), times its step."""

        def __init__(self, act):
            super().__init__()
            self.clip = float(act["clip"])
            self.qmax = float(2 ** int(act["bits"]) - 1)
            self.step = nn.act_step(act)

        def forward(self, y):
            a = torch.clamp(y, 0.0, self.clip)
            return torch.clamp(torch.floor(a / self.step + 0.5), 0.0, self.qmax) * self.step

    def rpu_config():
        cfg = InferenceRPUConfig()
        cfg.noise_model = ReRamWan2022NoiseModel() if g_max is None else ReRamWan2022NoiseModel(g_max=g_max)
        cfg.forward.is_perfect = bool(perfect)
        return cfg

    mods = [InputQuant(net.input)]
    for layer in net.layers:
        t = layer["type"]
        if t in ("conv", "dense"):
            w = torch.tensor(np.asarray(layer["weight"], np.float32))
            b = layer.get("bias")
            b = None if b is None else torch.tensor(np.asarray(b, np.float32))
            if t == "conv":
                o, i, kh, kw = w.shape
                m = AnalogConv2d(i, o, (kh, kw), stride=int(layer.get("stride", 1)),
                                 padding=int(layer.get("padding", 0)), bias=b is not None,
                                 rpu_config=rpu_config())
            else:
                o, i = w.shape
                m = AnalogLinear(i, o, bias=b is not None, rpu_config=rpu_config())
            m.set_weights(w, b)
            mods.append(m)
            if layer.get("act") is not None:
                mods.append(ActQuant(layer["act"]))
        elif t == "maxpool":
            k = int(layer.get("kernel", 2))
            s = layer.get("stride")
            mods.append(torch.nn.MaxPool2d(k, k if s is None else int(s),
                                           ceil_mode=bool(layer.get("ceil_mode", False))))
        elif t == "flatten":
            mods.append(torch.nn.Flatten(1))
        else:
            raise ValueError(f"unknown layer type {t!r}")
    return AnalogSequential(*mods)


def bench_aihwkit(net, x, y, repeats, g_max=None, seed=0):
    import torch
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass                                   # already set (or parallel work started)
    torch.manual_seed(seed)
    model = build_aihwkit_model(net, g_max)
    model.eval()
    model.program_analog_weights()             # programming noise (the rpu_config's noise model)
    model.drift_analog_weights(1.0)            # conductances 1 s after programming
    xt = torch.from_numpy(np.ascontiguousarray(x))
    # Check of the translation (not timed): an ideal forward pass must give nn.forward's argmax.
    ideal = build_aihwkit_model(net, g_max, perfect=True).eval()
    with torch.inference_mode():
        ideal_pred = torch.cat([ideal(xt[i:i + AIHWKIT_BATCH]) for i in range(0, len(xt), AIHWKIT_BATCH)]).argmax(1).numpy()
    agree = float(np.mean(ideal_pred == nn.predict(net, x)))
    ips, accs = [], []
    with torch.inference_mode():
        for _ in range(repeats):
            t0 = time.perf_counter()
            logits = torch.cat([model(xt[i:i + AIHWKIT_BATCH]) for i in range(0, len(xt), AIHWKIT_BATCH)])
            dt = time.perf_counter() - t0
            ips.append(len(x) / dt)
            accs.append(float((logits.argmax(1).numpy() == y).mean()))
    return {"inference_ips": median(ips), "accuracy": median(accs), "inference_ips_runs": ips,
            "ideal_agreement_with_numpy": agree, "torch": torch.__version__}


# ---------------------------------------------------------------------------------------------
# 5. ResNet-20-shaped network


def resnet20_shaped(seed=0, n_cal=32, act_bits=3, in_bits=4, percentile=99.0):
    """The 19 convolutions of ResNet-20 v1 (CIFAR-10) as a plain stack, max-pool 8, dense 64->10.

    No residual additions and no global *average* pool (firmware/nn.py has neither): the
    8 x 8 average pool is replaced by a max-pool of kernel 8.  He-initialised random weights,
    small random biases; each clip is the ``percentile`` of that layer's positive
    pre-activations on ``n_cal`` random images (quantised activations of the layers before)."""
    rng = np.random.default_rng(seed)
    shapes = [(3, 16, 1)]                                   # (in, out, stride)
    for stage, width in enumerate((16, 32, 64)):
        for k in range(6):
            cin = shapes[-1][1]
            shapes.append((cin, width, 2 if (stage > 0 and k == 0) else 1))
    assert len(shapes) == 19
    qin = {"bits": in_bits, "scale": 255.0 / (2 ** in_bits - 1), "step": 1.0 / (2 ** in_bits - 1)}
    x_cal = rng.integers(0, 256, size=(n_cal, 3, 32, 32), dtype=np.uint8)
    h = nn.quantize_input(x_cal, qin).astype(np.float64) * nn.input_step(qin)
    layers, zero, sat = [], [], []
    for idx, (cin, cout, stride) in enumerate(shapes):
        w = rng.normal(0.0, np.sqrt(2.0 / (cin * 9)), size=(cout, cin, 3, 3))
        b = rng.normal(0.0, 0.05, size=cout)
        y = nn.conv2d(h, w, b, stride, 1)
        pos = y[y > 0]
        clip = float(np.percentile(pos, percentile)) if pos.size else 1.0
        act = {"kind": "relu_q", "bits": act_bits, "clip": clip}
        layers.append({"type": "conv", "name": f"conv{idx + 1}", "weight": w.astype(np.float32),
                       "bias": b.astype(np.float32), "stride": stride, "padding": 1, "act": act})
        q = nn.quantize_act(y, act)
        zero.append(float(np.mean(q == 0)))
        sat.append(float(np.mean(q == 2 ** act_bits - 1)))
        h = q * nn.act_step(act)
    layers.append({"type": "maxpool", "kernel": 8, "stride": 8, "ceil_mode": False})
    layers.append({"type": "flatten"})
    w = rng.normal(0.0, np.sqrt(1.0 / 64), size=(10, 64))
    layers.append({"type": "dense", "name": "fc", "weight": w.astype(np.float32),
                   "bias": np.zeros(10, np.float32), "act": None})
    meta = {"model": "resnet20-shaped, random weights", "act_zero": float(np.mean(zero)),
            "act_saturated": float(np.mean(sat))}
    return nn.Network(input=qin, layers=layers, meta=meta), x_cal


def fit_resnet(net, grids, segment_inputs):
    """The first (ChipConfig, max_segment_inputs) on which ``map_network`` places ``net``.

    For each core grid in order (the NeuRRAM 8 x 6 first), the mapper's default segment size
    (100 logical inputs) first, then smaller ones: block-diagonal packing puts one segment of
    ~200 rows per 256-row core, so smaller segments (several per core) can fit where the
    default does not.  Returns (config, max_segment_inputs, notes on what did not fit)."""
    notes = []
    for grid in grids:
        cfg = ChipConfig(core_grid=tuple(grid))
        tries = [segment_inputs] if segment_inputs else [100] + list(range(96, 15, -1))
        for msi in tries:
            try:
                map_network(net, cfg, max_segment_inputs=msi)   # packing only: no x_cal needed
                return cfg, msi, notes
            except MappingError as exc:
                if msi in (100, segment_inputs):
                    notes.append(f"core_grid {cfg.core_grid} with max_segment_inputs={msi}: {exc}")
        if not segment_inputs:
            notes.append(f"core_grid {cfg.core_grid}: no max_segment_inputs in 16..100 fits")
    raise MappingError("; ".join(notes))


def bench_resnet(n_images, repeats, fw_kw, seed=0, grid=None, segment_inputs=None):
    net, x_cal = resnet20_shaped(seed)
    rng = np.random.default_rng(seed + 1)
    x = rng.integers(0, 256, size=(n_images, 3, 32, 32), dtype=np.uint8)
    grids = [grid] if grid else [ChipConfig().core_grid, (8, 7)]
    cfg, msi, notes = fit_resnet(net, grids, segment_inputs)
    default = cfg.core_grid == ChipConfig().core_grid
    chip_note = (f"ChipConfig({'' if default else f'core_grid={cfg.core_grid}'}) ({cfg.n_cores} cores), "
                 f"map_network(max_segment_inputs={msi})")
    ips, setup = [], []
    mvms = cores = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        chip = open_chip("model", config=cfg)
        rt = Runtime(chip, map_network(net, chip.config, x_cal=x_cal, max_segment_inputs=msi))
        # No bad-row repair: a packing that just fits has no spare rows to swap in; the few
        # cells that miss their target stay in the weights (counted below).
        rt.program(progress=False, repair=False)
        bad = sum(len(r) for r in rt.bad_rows().values())
        t1 = time.perf_counter()
        res = rt.forward(x, progress=False, **fw_kw)
        t2 = time.perf_counter()
        setup.append(t1 - t0)
        ips.append(len(x) / (t2 - t1))
        mvms = sum(l.mvms for l in res.layers) / len(x)
        cores = len(rt.mapping.cores_used)
    return {"inference_ips": median(ips), "mvms_per_image": mvms, "cores_used": cores,
            "chip": chip_note, "core_grid": list(cfg.core_grid), "max_segment_inputs": msi,
            "mapping_notes": notes, "setup_s": median(setup), "act_zero": net.meta["act_zero"],
            "act_saturated": net.meta["act_saturated"],
            "unrepaired_bad_rows": bad, "unconverged_cells": rt.unconverged_cells(),
            "programmed_cells": int(sum(len(r.targets) for r in rt.reports.values())),
            "images": n_images, "inference_ips_runs": ips}


# ---------------------------------------------------------------------------------------------


def fmt(v, spec=",.0f", unit=""):
    if v is None or (isinstance(v, float) and v != v):
        return "n/a"
    return f"{v:{spec}}{unit}"


def verdict(value, target):
    if value is None or value != value:
        return "n/a"
    return "PASS" if value >= target else "MISS"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=2000, help="first N MNIST test images (default 2000)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per figure; the median is reported")
    ap.add_argument("--workers", type=int, default=None,
                    help="worker processes for Runtime.forward(workers=N), when it has that keyword")
    ap.add_argument("--data-dir", default=None, help="directory holding MNIST (default: the usual search)")
    ap.add_argument("--json", default=None, metavar="OUT", help="also write every figure to OUT as JSON")
    ap.add_argument("--chip", default="model", help="fast-model target for MNIST (default: model)")
    ap.add_argument("--resnet-images", type=int, default=128, help="images through the ResNet-20-shaped net")
    ap.add_argument("--resnet-grid", default=None, metavar="RxC",
                    help="core grid for the ResNet-20-shaped net (default: 8x6, else 8x7)")
    ap.add_argument("--resnet-segment-inputs", type=int, default=None, metavar="N",
                    help="map_network max_segment_inputs for it (default: 100, else the largest that fits)")
    ap.add_argument("--aihwkit-g-max", type=float, default=None,
                    help="g_max (µS) for ReRamWan2022NoiseModel (default: aihwkit's own default)")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: fast,numpy,aihwkit,resnet")
    args = ap.parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    x_test, y_test = load_mnist(args.data_dir, "test")
    x_train, _ = load_mnist(args.data_dir, "train")
    x, y = x_test[:args.images], y_test[:args.images]
    x_cal = x_train[:CAL_IMAGES]
    net = load_default_network()
    fw_kw, fw_note = forward_kwargs(args.workers)
    have_aihwkit, aihwkit_version = aihwkit_available()

    print(f"MNIST: first {len(x)} test images, {CAL_IMAGES} training images for calibration; "
          f"{args.repeats} repeats, medians; BLAS/OpenMP threads = 1")
    if fw_note:
        print(fw_note)
    results = {"images": len(x), "repeats": args.repeats, "workers": args.workers,
               "forward_kwargs": fw_kw}
    errors = {}

    def part(name, fn):
        if name in skip:
            return None
        print(f"... {name}", flush=True)
        try:
            r = fn()
        except Exception as exc:   # report and go on: the other figures still mean something
            traceback.print_exc()
            errors[name] = f"{type(exc).__name__}: {exc}"
            return None
        results[name] = r
        return r

    fast = part("fast", lambda: bench_fast(net, x, y, x_cal, args.repeats, fw_kw, args.chip))
    npy = part("numpy", lambda: bench_numpy(net, x, y, args.repeats))
    aih = None
    if have_aihwkit:
        aih = part("aihwkit", lambda: bench_aihwkit(net, x, y, args.repeats, args.aihwkit_g_max))
    grid = tuple(int(v) for v in args.resnet_grid.lower().split("x")) if args.resnet_grid else None
    res = part("resnet", lambda: bench_resnet(args.resnet_images, args.repeats, fw_kw, grid=grid,
                                              segment_inputs=args.resnet_segment_inputs))

    fast_ips = fast["inference_ips"] if fast else None
    r_aih = fast_ips / aih["inference_ips"] if (fast and aih) else None
    r_np = fast_ips / npy["inference_ips"] if (fast and npy) else None
    results["ratio_fast_vs_aihwkit"] = r_aih
    results["ratio_fast_vs_numpy"] = r_np
    load = os.getloadavg()
    env = {"python": platform.python_version(), "numpy": np.__version__,
           "aihwkit": aihwkit_version if have_aihwkit else None, "loadavg": load,
           "cpus": os.cpu_count(), "machine": platform.machine()}
    if aih:
        env["torch"] = aih.get("torch")
    results["env"] = env
    results["errors"] = errors

    rows = []
    if fast:
        rows += [("fast model, end to end (open+map+program+calibrate+forward)", fmt(fast["end_to_end_ips"], ",.1f", " images/s")),
                 ("fast model, program + calibrate", fmt(fast["setup_s"], ".2f", " s")),
                 ("fast model, inference (Runtime.forward)", fmt(fast_ips, ",.1f", " images/s")),
                 ("fast model, accuracy", fmt(100 * fast["accuracy"], ".2f", " %")),
                 ("fast model, MVMs per image / cores used", f"{fast['mvms_per_image']:,.0f} / {fast['cores_used']}")]
    if npy:
        rows += [("numpy float32 (1 thread), inference", fmt(npy["inference_ips"], ",.1f", " images/s")),
                 ("numpy float32, accuracy", fmt(100 * npy["accuracy"], ".2f", " %"))]
    if aih:
        rows += [("aihwkit (1 thread, batch 128), inference", fmt(aih["inference_ips"], ",.1f", " images/s")),
                 ("aihwkit, accuracy", fmt(100 * aih["accuracy"], ".2f", " %")),
                 ("aihwkit ideal forward, argmax agreement with numpy", fmt(100 * aih["ideal_agreement_with_numpy"], ".2f", " %"))]
    elif not have_aihwkit:
        rows += [("aihwkit", "not installed (" + aihwkit_version.split(":")[0] + ")")]
    rows += [("ratio fast inference / aihwkit", fmt(r_aih, ".2f", "x")),
             ("ratio fast inference / numpy", fmt(r_np, ".2f", "x"))]
    if res:
        for note in res["mapping_notes"]:
            print(f"ResNet-20-shaped mapping: did not fit: {note}")
        rows += [("ResNet-20-shaped chip", res["chip"]),
                 (f"ResNet-20-shaped, inference ({res['images']} images)", fmt(res["inference_ips"], ",.1f", " images/s")),
                 ("ResNet-20-shaped, program (write-verify, no repair)", fmt(res["setup_s"], ".2f", " s")
                  + f"; {res['unconverged_cells']:,} of {res['programmed_cells']:,} cells unconverged,"
                  f" {res['unrepaired_bad_rows']} bad rows left"),
                 ("ResNet-20-shaped, MVMs per image", fmt(res["mvms_per_image"], ",.0f")),
                 ("ResNet-20-shaped, cores used", str(res["cores_used"])),
                 ("ResNet-20-shaped, activation codes (numpy, calibration images)",
                  f"{100 * res['act_zero']:.0f} % zero, {100 * res['act_saturated']:.1f} % at the clip")]
    rows += [("workers", str(fw_kw.get("workers", "- (not passed)"))),
             ("load average (1, 5, 15 min)", ", ".join(f"{v:.2f}" for v in load) + f" on {env['cpus']} CPUs"),
             ("Python / numpy", f"{env['python']} / {env['numpy']}"),
             ("aihwkit / torch", f"{aihwkit_version} / {env.get('torch', '-')}" if have_aihwkit else "-")]
    for name, err in errors.items():
        rows.append((f"{name} FAILED", err[:100]))

    print()
    if res:
        print("ResNet-20-shaped: 19 ResNet-20 v1 conv shapes as a plain stack (no residual adds), "
              "global average pool replaced by max-pool 8, random He weights, random images.")
    w = max(len(r[0]) for r in rows)
    print("-" * (w + 30))
    for name, val in rows:
        print(f"{name:<{w}}  {val}")
    print("-" * (w + 30))
    mnist_ips = fast_ips
    targets = [(f"fast >= {TARGET_VS_AIHWKIT:g}x aihwkit", verdict(r_aih, TARGET_VS_AIHWKIT)),
               (f"fast >= {TARGET_VS_NUMPY:g}x numpy", verdict(r_np, TARGET_VS_NUMPY)),
               (f"MNIST inference >= {TARGET_MNIST_IPS:,.0f} images/s", verdict(mnist_ips, TARGET_MNIST_IPS)),
               (f"ResNet-20-shaped >= {TARGET_RESNET_IPS:g} images/s",
                verdict(res["inference_ips"] if res else None, TARGET_RESNET_IPS))]
    results["targets"] = dict(targets)
    print("targets (not asserted): " + "; ".join(f"{t}: {v}" for t, v in targets))

    if args.json:
        d = os.path.dirname(args.json)
        if d:
            os.makedirs(d, exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2, default=float)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
