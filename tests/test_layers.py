"""The layers import one way (docs/architecture.md).

    spec   <- models, hdl            (spec imports only neurram.config)
    hdl/fpga <- hdl, models, spec    (the FPGA prototype: its emulated array takes the analog
                                      models' noise-free numbers, so both have one source)
    sim    <- models, hdl, spec
    firmware <- spec                 (it reaches a chip only through the link it is given)
    neurram/ top level (cli, targets, figures, report) joins them all

Every import in every module counts, function-local ones included.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Folder -> (package name, packages it may import).
LAYERS = {
    "neurram/spec": ("neurram.spec", {"neurram.spec", "neurram.config"}),
    "models": ("neurram.models", {"neurram.models", "neurram.spec", "neurram.config"}),
    "hdl": ("neurram.hdl", {"neurram.hdl", "neurram.spec", "neurram.config"}),
    "hdl/fpga": ("neurram.hdl.fpga", {"neurram.hdl", "neurram.models", "neurram.spec", "neurram.config"}),
    "sim": ("neurram.sim", {"neurram.sim", "neurram.models", "neurram.hdl", "neurram.spec", "neurram.config",
                            "neurram"}),
    "firmware": ("neurram.firmware", {"neurram.firmware", "neurram.spec", "neurram.config"}),
}


def _module_name(folder: str, package: str, path: Path) -> list[str]:
    rel = path.relative_to(ROOT / folder).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return package.split(".") + parts, path.name == "__init__.py"


def _neurram_imports(folder, package, path):
    parts, is_pkg = _module_name(folder, package, path)
    here = parts if is_pkg else parts[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((mod, node.lineno))
    return [(m, line) for m, line in out if m == "neurram" or m.startswith("neurram.")]


def _allowed(mod: str, allowed: set) -> bool:
    if mod == "neurram":
        return "neurram" in allowed
    return any(mod == a or mod.startswith(a + ".") for a in allowed if a != "neurram")


@pytest.mark.parametrize("folder", sorted(LAYERS))
def test_layer_imports_only_what_is_below_it(folder):
    package, allowed = LAYERS[folder]
    bad = []
    inner = [ROOT / f for f in LAYERS if f != folder and f.startswith(folder + "/")]   # a layer of its own
    for path in sorted((ROOT / folder).rglob("*.py")):
        if any(d in path.parents for d in inner):
            continue
        for mod, line in _neurram_imports(folder, package, path):
            if not _allowed(mod, allowed):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {mod}")
    assert not bad, "imports against the layering (docs/architecture.md):\n" + "\n".join(bad)


def test_the_rules_see_relative_imports():
    """The checker resolves ``from ..x import y`` as Python does (guards the test itself)."""
    path = ROOT / "sim" / "cosim" / "server.py"
    mods = {m for m, _ in _neurram_imports("sim", "neurram.sim", path)}
    assert "neurram.sim.cosim.harness" in mods
