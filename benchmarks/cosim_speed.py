"""Co-simulation speed: cycles/s of an idle chip and MVMs/s of one busy core.

    python benchmarks/cosim_speed.py                 # 16x16 core, 256x256 core, full 48-core chip
    python benchmarks/cosim_speed.py --only small

Prints a table; each configuration is built once with Verilator (cached under build/cosim).
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

CONFIGS = {
    "small": dict(core_grid=(1, 1), rows=16, cols=16),
    "core256": dict(core_grid=(1, 1), rows=256, cols=256),
    "chip48": dict(core_grid=(8, 6), rows=256, cols=256),
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=sorted(CONFIGS), action="append")
    ap.add_argument("--cycles", type=int, default=200_000, help="idle cycles to simulate")
    args = ap.parse_args(argv)
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    from neurram.config import ChipConfig
    from neurram.sim.cosim.toolchain import build, run_tests

    rows = []
    for name in args.only or list(CONFIGS):
        cfg = ChipConfig(**CONFIGS[name])
        b = build(cfg)
        out = Path(tempfile.mkdtemp()) / "bench.json"
        env = {"NEURRAM_BENCH_OUT": str(out), "NEURRAM_BENCH_CYCLES": str(args.cycles),
               "PYTHONPATH": str(HERE), "COCOTB_LOG_LEVEL": "WARNING"}
        run_tests(b, "cocotb_speed", test_dir=out.parent, env=env)
        r = json.loads(out.read_text())
        r.update(name=name, config=cfg.describe(), build_s=b.build_seconds, generate_s=b.generate_seconds)
        rows.append(r)
        print(json.dumps(r, indent=1), file=sys.stderr)
    print(f"\n{'configuration':<10} {'idle cycles/s':>14} {'MVMs/s':>8} {'cycles/MVM':>11} {'busy cycles/s':>14} "
          f"{'model events/MVM':>17} {'Verilator build s':>18}")
    for r in rows:
        print(f"{r['name']:<10} {r['idle_cycles_per_s']:>14,.0f} {r['mvms_per_s']:>8.1f} {r['busy_cycles_per_mvm']:>11.0f} "
              f"{r['busy_cycles_per_s']:>14,.0f} {r['model_events_per_mvm']:>17.1f} {r['build_s']:>18.1f}")
    return rows


if __name__ == "__main__":
    main()
