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
5. **ResNet-20 on all 48 cores**, as ``neurram run cifar10`` runs it (residual adds, projection
   shortcuts, global average pool; ``firmware/tasks/cifar10.py``): the shipped trained network when
   it exists (else random weights of the same shape) on CIFAR-10 test images (else random images),
   mapped with ``map_network`` onto ``ChipConfig()``, programmed by write-verify with spare-row
   repair, then ``Runtime.forward`` on ``--resnet-images`` images with every non-ideality on:
   inference images/s, MVMs per image, cores and segments used.

The table at the end holds every figure, the machine's load average, the Python, numpy and
aihwkit versions, and the targets (fast >= 2x aihwkit, >= 0.3x numpy, >= 1000 images/s
inference on MNIST, ResNet-20 >= 150 images/s) marked PASS or MISS; they are targets,
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

from neurram.firmware import nn  # noqa: E402
from neurram.firmware.datasets import load_cifar10_test, load_cifar10_train_subset, load_mnist  # noqa: E402
from neurram.firmware.mapper import map_network  # noqa: E402
from neurram.firmware.tasks import cifar10  # noqa: E402
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
# 5. ResNet-20 on all 48 cores


def resnet20(seed=0):
    """ResNet-20 v1 (residual adds, projection shortcuts, global average pool) as the CIFAR-10 task
    runs it: the shipped trained network when it exists, else random weights of the same shape."""
    if cifar10.DEFAULT_WEIGHTS.is_file():
        return cifar10.load_default_network(), "trained (firmware/weights/cifar10_resnet20.npz)"
    return cifar10.random_resnet(seed), "random weights"


def bench_resnet(n_images, repeats, fw_kw, data_dir=None, seed=0):
    net, kind = resnet20(seed)
    try:
        x = np.ascontiguousarray(load_cifar10_test(data_dir)[0][::max(1, 10000 // n_images)][:n_images]
                                 .transpose(0, 3, 1, 2))
        x_cal = np.ascontiguousarray(load_cifar10_train_subset(data_dir)[0][:32].transpose(0, 3, 1, 2))
        images = "CIFAR-10 test images (JPEG copy)"
    except Exception:                      # no data set: random images exercise the same MVMs
        rng = np.random.default_rng(seed + 1)
        x = rng.integers(0, 256, size=(n_images, 3, 32, 32), dtype=np.uint8)
        x_cal, images = x[:32], "random images"
    ips, setup = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        chip = open_chip("model")
        rt = Runtime(chip, map_network(net, chip.config, x_cal=x_cal))
        rt.program(progress=False)
        t1 = time.perf_counter()
        res = rt.forward(x, progress=False, **fw_kw)
        t2 = time.perf_counter()
        setup.append(t1 - t0)
        ips.append(len(x) / (t2 - t1))
    m = rt.mapping
    return {"inference_ips": median(ips), "mvms_per_image": sum(l.mvms for l in res.layers) / len(x),
            "cores_used": len(m.cores_used), "segments": sum(len(l.segments) for l in m.layers),
            "network": kind, "images_kind": images, "setup_s": median(setup),
            "unconverged_cells": rt.unconverged_cells(),
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
    ap.add_argument("--resnet-images", type=int, default=128, help="images through ResNet-20 on 48 cores")
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
    res = part("resnet", lambda: bench_resnet(args.resnet_images, args.repeats, fw_kw, args.data_dir))

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
        rows += [("ResNet-20 network", f"{res['network']}, {res['images_kind']}"),
                 (f"ResNet-20, inference ({res['images']} images, every non-ideality)",
                  fmt(res["inference_ips"], ",.1f", " images/s")),
                 ("ResNet-20, program (write-verify with spare-row repair)", fmt(res["setup_s"], ".2f", " s")
                  + f"; {res['unconverged_cells']:,} of {res['programmed_cells']:,} cells unconverged"),
                 ("ResNet-20, MVMs per image", fmt(res["mvms_per_image"], ",.0f")),
                 ("ResNet-20, cores used / segments", f"{res['cores_used']} of 48 / {res['segments']}")]
    rows += [("workers", str(fw_kw.get("workers", "- (not passed)"))),
             ("load average (1, 5, 15 min)", ", ".join(f"{v:.2f}" for v in load) + f" on {env['cpus']} CPUs"),
             ("Python / numpy", f"{env['python']} / {env['numpy']}"),
             ("aihwkit / torch", f"{aihwkit_version} / {env.get('torch', '-')}" if have_aihwkit else "-")]
    for name, err in errors.items():
        rows.append((f"{name} FAILED", err[:100]))

    print()
    if res:
        print("ResNet-20: 19 ResNet-20 v1 conv shapes as a plain stack (no residual adds), "
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
               (f"ResNet-20 >= {TARGET_RESNET_IPS:g} images/s",
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
