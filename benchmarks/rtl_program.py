"""Write-verify on the Verilog: cells per second through the chip's engine over the byte protocol,
against the host's loop (one register command per pulse and read) on the same chip.

    python benchmarks/rtl_program.py                  # 8 rows of a 256 x 256 core by the engine, 1 row by the host loop
    python benchmarks/rtl_program.py --rows 16 --host-rows 0

Prints cells/s, pulses and reads per cell, and the time the MNIST network's 72,704 cells would
take at that rate. The RTL build is cached under build/cosim.
"""

import argparse
import time

import numpy as np

MNIST_CELLS = 72_704


def _program(chip, targets, row0, engine):
    rows, cols = np.indices(targets.shape)
    rows += row0
    c0 = chip.counters(0)
    t0 = time.perf_counter()
    rep = chip.program(0, targets, rows=rows, cols=cols, engine=engine)
    seconds = time.perf_counter() - t0
    c1 = chip.counters(0)
    return rep, seconds, c1["program"] - c0["program"], c1["read"] - c0["read"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=8, help="rows programmed by the engine (default 8)")
    ap.add_argument("--host-rows", type=int, default=1, help="rows programmed by the host loop (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from neurram.config import ChipConfig
    from neurram.models.device import layer_targets
    from neurram.targets import open_chip

    config = ChipConfig(core_grid=(1, 1), rows=256, cols=256)
    chip = open_chip("rtl", config=config, seed=args.seed)
    targets = layer_targets(256, 256, 40.0, seed=args.seed)
    print(f"{'path':<10} {'cells':>7} {'seconds':>8} {'cells/s':>8} {'pulses/cell':>12} {'reads/cell':>11} "
          f"{'unconverged':>12} {'MNIST network (72,704 cells)':>30}")
    try:
        row = 0
        for name, n_rows, engine in (("engine", args.rows, True), ("host loop", args.host_rows, False)):
            if n_rows <= 0:
                continue
            rep, s, pulses, reads = _program(chip, targets[row:row + n_rows], row, engine)
            row += n_rows
            n = rep.n_cells
            print(f"{name:<10} {n:>7} {s:>8.1f} {n / s:>8.1f} {pulses / n:>12.2f} {reads / n:>11.2f} "
                  f"{rep.n_unconverged:>12} {MNIST_CELLS / (n / s) / 60:>26.1f} min")
    finally:
        transport = getattr(chip.link, "transport", None)
        if transport is not None:
            transport.close()


if __name__ == "__main__":
    main()
