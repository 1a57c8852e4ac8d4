"""Long fuzz runs and a memory soak (issue 16, item 5); the unit tests run the same generators briefly.

    python benchmarks/fuzz.py                      # everything: 100,000 frames, 10,000 RTL frames, 1 M MVMs
    python benchmarks/fuzz.py --frames 100000 --rtl-frames 0 --mvms 0     # one part

1. **Python chip end**: random request streams (good frames to random registers, CTRL commands
   and buffers, corrupt CRCs, unknown ops, wrong lengths, oversize, cut-off frames, garbage) into
   the fast model's protocol engine as ``neurram serve`` runs it: every request must get exactly
   one reply; faults inside the model are counted by kind (they are answered and logged).
2. **RTL engine against the Python end**: the same streams into the Amaranth simulation of the
   RTL protocol engine and into the Python chip end: identical reply bytes after every stream
   (timeouts included) and identical bus writes.
3. **Soak**: a million MVMs through the driver on the in-process fast model (noise on) in
   batches, resident memory sampled along the way: it must not grow after the warm-up.

Prints one line per part with its figures; exits 1 when a property fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))        # the tests' generators

import numpy as np  # noqa: E402


def rss_MiB() -> float:
    """Resident memory of this process (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


def python_fuzz(frames: int, seed: int) -> bool:
    from tests.test_fuzz import KNOWN_FAULTS, run_python_fuzz

    t0 = time.perf_counter()
    statuses, faults = run_python_fuzz(frames, seed)
    dt = time.perf_counter() - t0
    n = sum(statuses.values())
    kinds: dict = {}
    for f in faults:
        key = next((k for k in KNOWN_FAULTS if k in f), f.split(": ", 2)[-1][:60])
        kinds[key] = kinds.get(key, 0) + 1
    print(f"python chip end: {n:,} requests, {n:,} replies (one each) in {dt:.1f} s ({n / dt:,.0f} frames/s); "
          f"by status: {', '.join(f'{s.name} {c:,}' for s, c in sorted(statuses.items()))}; "
          f"model faults answered: {len(faults):,}" + (f" ({'; '.join(f'{k}: {c}' for k, c in kinds.items())})"
                                                       if faults else ""), flush=True)
    unknown = [f for f in faults if not any(k in f for k in KNOWN_FAULTS)]
    for f in unknown[:5]:
        print(f"  NEW FAULT: {f}")
    return not unknown


def rtl_fuzz(frames: int, seed: int) -> bool:
    from tests.test_fuzz import rtl_differential

    t0 = time.perf_counter()
    statuses = rtl_differential(frames, seed)
    dt = time.perf_counter() - t0
    n = sum(statuses.values())
    print(f"RTL engine vs Python chip end: {n:,} requests, identical reply bytes and bus writes, in {dt:.1f} s "
          f"({n / dt:,.0f} frames/s); by status: {', '.join(f'{s.name} {c:,}' for s, c in sorted(statuses.items()))}",
          flush=True)
    return True


def soak(mvms: int, seed: int, batch: int, size: int) -> bool:
    from neurram.config import ChipConfig
    from neurram.spec.mvm import MvmSettings
    from neurram.targets import open_chip

    chip = open_chip("model", config=ChipConfig(core_grid=(1, 1), rows=size, cols=size), seed=seed)
    rng = np.random.default_rng(seed)
    chip.enable_cores([0])
    chip.program(0, rng.uniform(0, 40, (size, size)))
    pol = np.zeros(chip.config.lines, bool)
    pol[1::2] = True
    chip.set_polarity(0, pol)
    mode = MvmSettings(input_bits=4)
    codes = rng.integers(0, 16, (batch, size))
    samples, done, t0 = [], 0, time.perf_counter()
    checkpoints = max(1, mvms // batch // 20)
    calls = 0
    while done < mvms:
        out = chip.mvm(0, codes, mode)
        done += out.shape[0]
        calls += 1
        if calls % checkpoints == 0:
            samples.append((done, rss_MiB()))
    dt = time.perf_counter() - t0
    mvm_count = chip.counters(0)["mvm"]
    warm = [m for d, m in samples if d >= mvms // 5] or [samples[-1][1]]
    growth = max(warm) - min(warm)
    print(f"soak: {done:,} MVMs ({size} x {size}, 4-bit inputs, noise on, {batch} vectors per call) in {dt:.1f} s "
          f"({done / dt:,.0f} MVMs/s); COUNT_MVM {mvm_count:,}; resident memory {samples[0][1]:.1f} MiB at "
          f"{samples[0][0]:,} MVMs, {samples[-1][1]:.1f} MiB at the end, {growth:.2f} MiB spread after the first "
          f"fifth", flush=True)
    return growth < 8 and mvm_count == done % 2**32


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=100_000, help="requests into the Python chip end (default 100000)")
    p.add_argument("--rtl-frames", type=int, default=10_000, help="requests into the RTL engine (default 10000)")
    p.add_argument("--mvms", type=int, default=1_000_000, help="MVMs of the soak (default 1000000)")
    p.add_argument("--batch", type=int, default=1000, help="vectors per driver call in the soak (default 1000)")
    p.add_argument("--size", type=int, default=256, help="array rows and columns in the soak (default 256)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    ok = True
    if args.frames:
        ok &= python_fuzz(args.frames, args.seed)
    if args.rtl_frames:
        ok &= rtl_fuzz(args.rtl_frames, args.seed)
    if args.mvms:
        ok &= soak(args.mvms, args.seed, args.batch, args.size)
    print("load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
