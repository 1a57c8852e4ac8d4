"""Generators for the files derived from :mod:`neurram.spec.regmap` for readers that cannot import it.

Each ``gen_*`` function returns the full text of one committed file (deterministic: no dates, no
paths of the machine it runs on). :func:`write_all` writes them into a checkout, :func:`check_all`
lists the stale ones; the command line is ``neurram regmap --write`` / ``--check`` /
``--format {md,c,json}``.

This module imports nothing from Amaranth, so the command line stays fast.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from neurram.spec import regmap as rm
from neurram.spec.regmap import ID_SOURCES

__all__ = ["gen_c", "gen_markdown", "gen_json",
           "OUTPUTS", "FORMATS", "generate", "write_all", "check_all", "repo_root"]

_NOTICE = "Generated from neurram/spec/regmap.py by hdl/regmap_gen.py. Do not edit: run `neurram regmap --write`."

# -- helpers -----------------------------------------------------------------------------------

def snake(name: str) -> str:
    """InputSource -> INPUT_SOURCE."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).upper()


def _hex(v: int, digits: int = 8) -> str:
    return f"0x{v:0{digits}X}"


def _num(f: rm.Field) -> str:
    """A field's reset as Python/C literal text: hex for wide unit-less fields (magic, seeds)."""
    return _hex(f.reset, 0) if f.width >= 16 and not f.unit and f.reset > 9 else str(f.reset)


def _span(msb: int, lsb: int) -> str:
    return str(lsb) if msb == lsb else f"{msb}:{lsb}"


def _bits(f: rm.Field) -> str:
    return _span(f.msb, f.lsb)


def _enum_member(e: type, value: int):
    for v in e:
        if v.value == value:
            return v
    raise ValueError(f"enum {e.__name__} has no member with value {value}")


def _word_mask(r: rm.Register) -> int:
    return sum(f.mask for f in r.fields)


def _reg_title(r: rm.Register) -> str:
    where = f"{_hex(r.offset, 3)}"
    if r.count > 1:
        where += f" + {r.stride:#x}·{r.index}, {r.count} instances"
    return f"{r.name} ({r.access}, {where}): {r.doc}"


# -- firmware/include/neurram_regs.h -----------------------------------------------------------

def _c_comment(text: str) -> str:
    return text.replace("*/", "* /")


def gen_c() -> str:
    base, stride, count = rm.CORE_BASE, rm.CORE_STRIDE, rm.CORE_COUNT
    L = []
    a = L.append
    seen = set()

    def d(name, value, comment=""):
        name = "NEURRAM_" + name.upper()
        assert name not in seen, f"duplicate macro {name}"
        seen.add(name)
        c = f"  /* {_c_comment(comment)} */" if comment else ""
        a(f"#define {name} {value}{c}")

    a(f"/* {_NOTICE} */")
    a("/* Register map of the NeuRRAM chip. */")
    a("#ifndef NEURRAM_REGS_H")
    a("#define NEURRAM_REGS_H")
    a("")
    a("#include <stdint.h>")
    a("")
    a("/* Bus address: space in bits 31:28, core in bits 27:22, word offset in bits 21:0. */")
    d("SPACE_SHIFT", f"{rm.SPACE_SHIFT}u")
    d("CORE_SHIFT", f"{rm.CORE_SHIFT}u")
    d("OFFSET_BITS", f"{rm.OFFSET_BITS}u")
    d("BROADCAST_CORE", f"{rm.BROADCAST_CORE}u", "every core in CORE_SELECT (buffer writes)")
    a("#define NEURRAM_ADDRESS(space, core, offset) \\")
    a("    ((((uint32_t)(space)) << NEURRAM_SPACE_SHIFT) | (((uint32_t)(core)) << NEURRAM_CORE_SHIFT) | \\")
    a("     ((uint32_t)(offset) & ((1u << NEURRAM_OFFSET_BITS) - 1u)))")
    seen.add("NEURRAM_ADDRESS")
    d("CHIP_ID_MAGIC", f"{_hex(rm.CHIP_ID_MAGIC)}u", 'ASCII "NRM1"')
    d("VERSION_MAJOR", f"{rm.VERSION[0]}u")
    d("VERSION_MINOR", f"{rm.VERSION[1]}u")
    d("VERSION_PATCH", f"{rm.VERSION[2]}u")
    a("")
    a("/* Field helpers: F is a field prefix such as NEURRAM_MVM_CONFIG_DIRECTION. */")
    a("#define NEURRAM_FIELD_GET(F, word) ((((uint32_t)(word)) & F##_MASK) >> F##_SHIFT)")
    a("#define NEURRAM_FIELD_PREP(F, value) ((((uint32_t)(value)) << F##_SHIFT) & F##_MASK)")
    seen.update({"NEURRAM_FIELD_GET", "NEURRAM_FIELD_PREP"})
    a("")
    a("/* Address spaces. */")
    d("SPACE_REGISTERS", "0u")
    for b in rm.BUFFERS.values():
        d(f"SPACE_{b.name}", f"{b.space}u", f"{b.access}: {b.doc} Words per core: {b.words}.")
    a("")
    a("/* Per-core register block: register k of core c is at CORE_BASE + CORE_STRIDE * c + k. */")
    d("CORE_BASE", f"{_hex(base, 3)}u")
    d("CORE_STRIDE", f"{stride:#x}u")
    d("CORE_COUNT", f"{count}u")
    for e in rm.ENUMS:
        a("")
        a(f"/* {e.__name__}: {_c_comment(e.__doc__)} */")
        for v in e:
            d(f"{snake(e.__name__)}_{v.name}", f"{v.value}u", v.doc)
    for r in rm.REGISTERS.values():
        a("")
        a(f"/* {_c_comment(_reg_title(r))} */")
        d(f"{r.name}_ADDR", f"{_hex(r.offset, 3)}u")
        d(f"{r.name}_RESET", f"{_hex(r.reset)}u")
        if r.count > 1:
            d(f"{r.name}_STRIDE", f"{r.stride:#x}u")
            d(f"{r.name}_INSTANCES", f"{r.count}u")
            name = f"NEURRAM_{r.name}_ADDR_OF"
            assert name not in seen
            seen.add(name)
            a(f"#define {name}(i) (NEURRAM_{r.name}_ADDR + (uint32_t)(i) * NEURRAM_{r.name}_STRIDE)")
        for f in r.fields:
            p = f"{r.name}_{f.name}"
            d(f"{p}_SHIFT", f"{f.lsb}u", f"{f.name} [{_bits(f)}]" + (f" ({f.unit})" if f.unit else "")
              + f": {f.doc}" + (f" Values: {f.enum.__name__}." if f.enum else ""))
            d(f"{p}_WIDTH", f"{f.width}u")
            d(f"{p}_MASK", f"{_hex(f.mask)}u")
            d(f"{p}_RESET", f"{_num(f)}u")
    a("")
    a("#endif /* NEURRAM_REGS_H */")
    return "\n".join(L) + "\n"


# -- docs/registers.md -------------------------------------------------------------------------

def _md(text: str) -> str:
    return str(text).replace("|", "\\|")


def _reset_md(f: rm.Field) -> str:
    if f.enum:
        return f"{f.reset} ({_enum_member(f.enum, f.reset).name})"
    if f.reset >= 1000:
        return f"{f.reset} ({_hex(f.reset, 0)})"
    return str(f.reset)


def _where_md(r: rm.Register) -> str:
    if r.count == 1:
        return f"`{_hex(r.offset, 3)}`"
    return f"`{_hex(r.offset, 3)}` + `{r.stride:#x}`·{r.index} ({r.count})"


def gen_markdown() -> str:
    base, stride, count = rm.CORE_BASE, rm.CORE_STRIDE, rm.CORE_COUNT
    L = []
    a = L.append
    a(f"<!-- {_NOTICE} -->")
    a("")
    a("# NeuRRAM register map")
    a("")
    a("## Addressing")
    a("")
    a("The chip's internal bus carries 32-bit words at 32-bit word addresses:")
    a("")
    a("| bits | name | meaning |")
    a("|---|---|---|")
    a(f"| 31:{rm.SPACE_SHIFT} | space | 0 = registers, otherwise one of the [buffer spaces](#buffer-spaces) |")
    a(f"| {rm.SPACE_SHIFT - 1}:{rm.CORE_SHIFT} | core | core index for buffer spaces; "
      f"{rm.BROADCAST_CORE} = every core in CORE_SELECT (writes) |")
    a(f"| {rm.OFFSET_BITS - 1}:0 | offset | word offset inside the register space or inside one core's buffer |")
    a("")
    a("Register addresses are word offsets in space 0 (the register block decodes the low 16 bits).")
    a(f"Per-core registers repeat every `{stride:#x}` words from `{_hex(base, 3)}`: register k of core c "
      f"is at `{_hex(base, 3)} + {stride:#x}·c + k`, for the cores the chip has (at most {count}); "
      "addresses of absent cores read 0. Reads of unmapped addresses return 0; writes to RO "
      "registers are ignored.")
    a("")
    a("Access: **RO** read-only (driven by the hardware), **RW** read-write, **WS** write-strobe "
      "(writing 1 pulses the field for one cycle; reads return 0).")
    a("")
    a("The identification registers (" + ", ".join(ID_SOURCES) + ") report the chip's "
      "configuration (`ChipConfig`); the resets below are those of the default configuration.")
    a("")
    a(f"`CHIP_ID` reads `{_hex(rm.CHIP_ID_MAGIC)}` (ASCII \"NRM1\"); this is version "
      f"{'.'.join(map(str, rm.VERSION))} of the design.")
    a("")
    a("## Registers")
    a("")
    a("| address | name | access | reset | description |")
    a("|---|---|---|---|---|")
    for r in rm.REGISTERS.values():
        a(f"| {_where_md(r)} | [{r.name}](#{r.name.lower()}) | {r.access} | `{_hex(r.reset)}` | {_md(r.doc)} |")
    for r in rm.REGISTERS.values():
        a("")
        a(f"### {r.name}")
        a("")
        a(f"{_md(r.doc)}")
        a("")
        a(f"Address {_where_md(r)}, access {r.access}, reset `{_hex(r.reset)}`.")
        if r.index == "word":
            a("Word i covers cores 32·i .. 32·i + 31; bits of absent cores read 0 and cannot be set.")
        a("")
        a("| bits | field | access | reset | unit | description |")
        a("|---|---|---|---|---|---|")
        src = ID_SOURCES.get(r.name, {})
        for f in sorted(r.fields, key=lambda f: -f.lsb):
            doc = _md(f.doc)
            if f.name in src:
                doc += f" Reports `{src[f.name]}`."
            if f.enum:
                e = f.enum
                doc += f" [{e.__name__}](#{e.__name__.lower()}): " + ", ".join(f"{v.value} = {v.name}" for v in e)
            a(f"| {_bits(f)} | {f.name} | {r.access} | {_reset_md(f)} | {_md(f.unit)} | {doc} |")
    a("")
    a("## Enums")
    for e in rm.ENUMS:
        a("")
        a(f"### {e.__name__}")
        a("")
        a(f"{_md(e.__doc__)} ({e.width} bits)")
        a("")
        a("| value | name | description |")
        a("|---|---|---|")
        for v in e:
            a(f"| {v.value} | {v.name} | {_md(v.doc)} |")
    a("")
    a("## Buffer spaces")
    a("")
    a("Each core has these buffers; word w of core c's buffer in space s is at bus address "
      f"`(s << {rm.SPACE_SHIFT}) | (c << {rm.CORE_SHIFT}) | w`.")
    a("")
    a("| space | name | access | words per core | description |")
    a("|---|---|---|---|---|")
    for b in rm.BUFFERS.values():
        a(f"| {b.space} | [{b.name}](#{b.name.lower()}) | {b.access} | `{b.words}` | {_md(b.doc)} |")
    for b in rm.BUFFERS.values():
        a("")
        a(f"### {b.name}")
        a("")
        a(f"Space {b.space}, {b.access}, `{b.words}` words per core. {_md(b.doc)}")
        a("")
        a(f"Layout: {_md(b.layout)}")
    return "\n".join(L) + "\n"


# -- docs/registers.json -----------------------------------------------------------------------

def export() -> dict:
    """The description as plain data."""
    base, stride, count = rm.CORE_BASE, rm.CORE_STRIDE, rm.CORE_COUNT
    return {
        "generated_from": "hdl/regmap.py",
        "addressing": {
            "space_shift": rm.SPACE_SHIFT,
            "core_shift": rm.CORE_SHIFT,
            "offset_bits": rm.OFFSET_BITS,
            "broadcast_core": rm.BROADCAST_CORE,
            "register_space": 0,
            "register_bus_bits": 16,
            "core_base": base,
            "core_stride": stride,
            "core_count": count,
        },
        "chip_id_magic": rm.CHIP_ID_MAGIC,
        "version": list(rm.VERSION),
        "identification_registers": list(ID_SOURCES),
        "enums": [{
            "name": e.__name__, "width": e.width, "doc": e.__doc__,
            "values": [{"name": v.name, "value": v.value, "doc": v.doc} for v in e],
        } for e in rm.ENUMS],
        "registers": [{
            "name": r.name, "offset": r.offset, "access": r.access, "doc": r.doc,
            "count": r.count, "stride": r.stride, "index": r.index,
            "reset": r.reset, "mask": _word_mask(r),
            "fields": [{
                "name": f.name, "lsb": f.lsb, "width": f.width, "msb": f.msb, "mask": f.mask,
                "reset": f.reset, "unit": f.unit, "doc": f.doc, "enum": f.enum.__name__ if f.enum else None,
            } for f in r.fields],
        } for r in rm.REGISTERS.values()],
        "buffers": [{
            "name": b.name, "space": b.space, "access": b.access, "doc": b.doc,
            "layout": b.layout, "words": b.words,
        } for b in rm.BUFFERS.values()],
    }


def gen_json() -> str:
    return json.dumps(export(), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


# -- driver ------------------------------------------------------------------------------------

#: Committed outputs: path relative to the repository root -> generator.
OUTPUTS = {
    "firmware/include/neurram_regs.h": gen_c,
    "docs/registers.md": gen_markdown,
    "docs/registers.json": gen_json,
}

#: ``neurram regmap --format`` names -> generator.
FORMATS = {
    "md": gen_markdown,
    "c": gen_c,
    "json": gen_json,
}


def repo_root() -> Path:
    """The checkout this package lives in: the parent of the ``hdl`` directory."""
    return Path(__file__).resolve().parent.parent


def generate() -> dict[str, str]:
    """Every output: path -> text."""
    return {path: gen() for path, gen in OUTPUTS.items()}


def write_all(root=None) -> list[str]:
    """Writes every output under ``root``; returns the paths whose content changed."""
    root = Path(root) if root is not None else repo_root()
    changed = []
    for path, text in generate().items():
        p = root / path
        old = p.read_text(encoding="utf-8") if p.exists() else None
        if old != text:
            p.parent.mkdir(parents=True, exist_ok=True)
            with open(p, "w", encoding="utf-8", newline="\n") as fh:
                fh.write(text)
            changed.append(path)
    return changed


def check_all(root=None) -> list[str]:
    """Paths of the outputs under ``root`` that are missing or differ from the generated text."""
    root = Path(root) if root is not None else repo_root()
    stale = []
    for path, text in generate().items():
        p = root / path
        if not p.exists() or p.read_text(encoding="utf-8") != text:
            stale.append(path)
    return stale
