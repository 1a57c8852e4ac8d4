"""Generators for every file derived from :mod:`neurram.hdl.regmap`.

Each ``gen_*`` function returns the full text of one committed file (deterministic: no dates, no
paths of the machine it runs on). :func:`write_all` writes them into a checkout, :func:`check_all`
lists the stale ones; the command line is ``neurram regmap --write`` / ``--check`` /
``--format {md,c,json,py,amaranth}``.

This module imports nothing from Amaranth, so the command line stays fast.
"""

from __future__ import annotations

import json
import keyword
import re
import textwrap
from pathlib import Path

from . import regmap as rm
from .regmap import Access

__all__ = ["gen_amaranth", "gen_python", "gen_c", "gen_markdown", "gen_json",
           "OUTPUTS", "FORMATS", "generate", "write_all", "check_all", "repo_root"]

_NOTICE = "Generated from hdl/regmap.py by hdl/regmap_gen.py. Do not edit: run `neurram regmap --write`."

#: Identification registers: no port, their value is a constant computed from the ChipConfig.
#: Maps register -> field -> Python expression over ``config`` (fields not listed keep the reset
#: value of the description; for the registers listed with fields, every field must be listed).
ID_SOURCES: dict[str, dict[str, str]] = {
    "CHIP_ID": {},
    "VERSION": {},
    "GEOMETRY": {
        "core_rows": "config.core_grid[0]",
        "core_cols": "config.core_grid[1]",
        "rows": "config.rows",
        "cols": "config.cols",
    },
    "PRECISION": {
        "input_bits_max": "config.input_bits_max",
        "output_bits_max": "config.output_bits_max",
        "max_steps_limit": "config.max_steps_limit",
        "pulse_multiplier_max": "config.pulse_multiplier_max",
    },
    "BUFFERS": {
        "batch_depth": "config.batch_depth",
    },
    "FEATURES": {
        "conv_sign": 'int("sign" in config.conversions)',
        "conv_decrement": 'int("decrement" in config.conversions)',
        "conv_sar": 'int("sar" in config.conversions)',
        "backward": "1",
        "recurrent": "1",
        "stochastic": "int(config.stochastic_neurons)",
        "clock_gating": "int(config.clock_gating)",
        "cell_access": "1",
    },
    "CLOCK": {
        "freq_kHz": "round(config.clock_hz / 1000)",
    },
}

#: Names an Amaranth view reserves; a field cannot use them.
_VIEW_RESERVED = {"as_value", "as_bits", "shape", "eq", "format"}


# -- helpers -----------------------------------------------------------------------------------

def camel(name: str) -> str:
    """CTRL -> Ctrl, MVM_CONFIG -> MvmConfig."""
    return "".join(part.capitalize() for part in name.split("_"))


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


def _is_id(r: rm.Register) -> bool:
    return r.name in ID_SOURCES


def _core_regs() -> list[rm.Register]:
    return [r for r in rm.REGISTERS if r.index == "core"]


def _word_regs() -> list[rm.Register]:
    return [r for r in rm.REGISTERS if r.index == "word"]


def _core_block() -> tuple[int, int, int]:
    """(base, stride, count) of the per-core register block."""
    regs = _core_regs()
    stride = regs[0].stride
    count = regs[0].count
    base = regs[0].offset & ~(stride - 1)
    return base, stride, count


def _enum_member(e: rm.Enum, value: int) -> rm.EnumValue:
    for v in e.values:
        if v.value == value:
            return v
    raise ValueError(f"enum {e.name} has no member with value {value}")


def _word_mask(r: rm.Register) -> int:
    return sum(f.mask for f in r.fields)


def validate() -> None:
    """Checks that what the generators assume of the description holds."""
    names = set()
    for e in rm.ENUMS:
        names.add(e.name)
        for v in e.values:
            assert 0 <= v.value < (1 << e.width), (e.name, v.name)
    assert "Space" not in names
    for r in rm.REGISTERS:
        assert r.access in (Access.RO, Access.RW, Access.WS), r.name
        cls = camel(r.name)
        assert cls not in names, f"class name {cls} of {r.name} collides"
        names.add(cls)
        for f in r.fields:
            assert f.name.isidentifier() and not keyword.iskeyword(f.name), (r.name, f.name)
            assert not f.name.startswith("_") and f.name not in _VIEW_RESERVED, (r.name, f.name)
            if f.enum:
                e = rm.enum(f.enum)
                assert e.width == f.width, (r.name, f.name, "enum width")
                _enum_member(e, f.reset)
        if r.count > 1:
            assert r.index in ("core", "word"), r.name
        if r.index == "word":
            assert r.count * 32 >= 64 and r.stride == 1, r.name
        if _is_id(r):
            assert r.access == Access.RO and r.count == 1, r.name
            src = ID_SOURCES[r.name]
            if src:
                assert set(src) == {f.name for f in r.fields}, f"ID_SOURCES[{r.name!r}] misses fields"
    for name in ID_SOURCES:
        rm.register(name)
    base, stride, count = _core_block()
    assert stride and stride & (stride - 1) == 0, "per-core stride must be a power of two"
    assert base % stride == 0
    for r in _core_regs():
        assert (r.stride, r.count) == (stride, count), r.name
        assert 0 <= r.offset - base < stride, r.name
    assert count == 64
    for r in rm.REGISTERS:
        if r.index != "core":
            for i in range(r.count):
                assert r.address(i) < base, f"{r.name} overlaps the per-core block"
    assert base + stride * count <= 1 << 16, "registers must fit the 16-bit register bus"


# -- hdl/registers.py --------------------------------------------------------------------------

def _pad(lsb: int, width: int) -> str:
    return f"    _pad{lsb}: unsigned({width})"


def _struct_lines(r: rm.Register) -> list[str]:
    out = []
    pos = 0
    rows = []
    for f in sorted(r.fields, key=lambda f: f.lsb):
        if f.lsb > pos:
            rows.append((_pad(pos, f.lsb - pos), f"[{_span(f.lsb - 1, pos)}] reserved"))
        if f.enum:
            decl = f"    {f.name}: {f.enum} = {f.enum}.{_enum_member(rm.enum(f.enum), f.reset).name}"
        else:
            decl = f"    {f.name}: unsigned({f.width})"
            if f.reset:
                decl += f" = {_num(f)}"
        unit = f" ({f.unit})" if f.unit else ""
        rows.append((decl, f"[{_bits(f)}]{unit} {f.doc}".rstrip()))
        pos = f.msb + 1
    if pos < 32:
        rows.append((_pad(pos, 32 - pos), f"[{_span(31, pos)}] reserved"))
    col = max(len(d) for d, _ in rows) + 2
    for decl, comment in rows:
        out.append(f"{decl.ljust(col)}# {comment}")
    return out


def _docstring(a, text: str, indent: str) -> None:
    lines = textwrap.wrap(text, 100 - len(indent) - 6)
    if len(lines) == 1:
        a(f'{indent}"""{lines[0]}"""')
    else:
        a(f'{indent}"""{lines[0]}')
        for line in lines[1:]:
            a(f"{indent}{line}")
        a(f'{indent}"""')


def _reg_title(r: rm.Register) -> str:
    where = f"{_hex(r.offset, 3)}"
    if r.count > 1:
        where += f" + {r.stride:#x}·{r.index}, {r.count} instances"
    return f"{r.name} ({r.access}, {where}): {r.doc}"


def gen_amaranth() -> str:
    validate()
    base, stride, count = _core_block()
    L = []
    a = L.append
    a(f"# {_NOTICE}")
    a('"""The register block of the NeuRRAM chip: enums, register layouts, addresses, ``RegisterFile``.')
    a("")
    a("Register addresses are 32-bit word offsets in bus space 0; the register bus carries the low 16")
    a(f"bits of the chip bus address. Per-core registers sit at ``{_hex(base, 3)} + {stride:#x}·core + k``.")
    a('"""')
    a("")
    a("# No `from __future__ import annotations`: data.Struct needs the annotations evaluated.")
    a("")
    a("from amaranth.hdl import Module, Signal, unsigned")
    a("from amaranth.lib import data, enum, wiring")
    a("from amaranth.lib.wiring import In, Out")
    a("")
    a("from neurram.config import ChipConfig")
    a("")
    exported = (["SPACE_SHIFT", "CORE_SHIFT", "OFFSET_BITS", "BROADCAST_CORE", "CHIP_ID_MAGIC",
                 "VERSION", "CORE_BASE", "CORE_STRIDE", "CORE_COUNT", "Space"]
                + [e.name for e in rm.ENUMS] + [camel(r.name) for r in rm.REGISTERS]
                + ["identification", "RegisterBus", "RegisterFile"])
    a("__all__ = [")
    line = "   "
    for name in exported:
        item = f' "{name}",'
        if len(line) + len(item) > 99:
            a(line)
            line = "   "
        line += item
    a(line)
    a("]")
    a("")
    a(f"SPACE_SHIFT = {rm.SPACE_SHIFT}")
    a(f"CORE_SHIFT = {rm.CORE_SHIFT}")
    a(f"OFFSET_BITS = {rm.OFFSET_BITS}")
    a(f"BROADCAST_CORE = {rm.BROADCAST_CORE}")
    a(f"CHIP_ID_MAGIC = {_hex(rm.CHIP_ID_MAGIC)}")
    a(f"VERSION = {tuple(rm.VERSION)!r}")
    a("")
    a("#: Per-core register block: register k of core c is at CORE_BASE + CORE_STRIDE·c + k.")
    a(f"CORE_BASE = {_hex(base, 3)}")
    a(f"CORE_STRIDE = {stride:#x}")
    a(f"CORE_COUNT = {count}")
    a("")
    a("")
    # enums
    a("class Space(enum.Enum, shape=4):")
    a('    """Address space of a bus address (bits 31:28)."""')
    a("")
    a("    REGISTERS = 0")
    for b in rm.BUFFERS:
        a(f"    {b.name} = {b.space}")
    for e in rm.ENUMS:
        a("")
        a("")
        a(f"class {e.name}(enum.Enum, shape={e.width}):")
        _docstring(a, e.doc, "    ")
        for v in e.values:
            a("")
            a(f"    #: {v.doc}")
            a(f"    {v.name} = {v.value}")
    # layouts
    for r in rm.REGISTERS:
        a("")
        a("")
        a(f"class {camel(r.name)}(data.Struct):")
        _docstring(a, _reg_title(r), "    ")
        a("")
        L.extend(_struct_lines(r))
    a("")
    a("")
    # addresses
    a("# -- addresses, masks of the defined bits, instance counts " + "-" * 40)
    a("")
    for r in rm.REGISTERS:
        a(f"{r.name}_ADDR = {_hex(r.offset, 3)}")
        a(f"{r.name}_MASK = {_hex(_word_mask(r))}")
        if r.count > 1:
            a(f"{r.name}_STRIDE = {r.stride:#x}")
            a(f"{r.name}_COUNT = {r.count}")
    a("")
    a("")
    # identification
    a("def _pack(layout, fields):")
    a('    """The 32-bit value of ``layout`` with ``fields`` set (others at their reset value)."""')
    a("    for name, value in fields.items():")
    a("        width = data.Layout.cast(layout)[name].width")
    a("        if not 0 <= value < (1 << width):")
    a('            raise ValueError(f"{layout.__name__}.{name} = {value} does not fit {width} bits")')
    a("    return layout.const(fields).as_bits()")
    a("")
    a("")
    a("def identification(config: ChipConfig) -> dict[str, int]:")
    a('    """Values of the identification registers for a configuration (register name -> word)."""')
    a("    return {")
    for name, src in ID_SOURCES.items():
        if not src:
            a(f'        "{name}": _pack({camel(name)}, {{}}),')
            continue
        a(f'        "{name}": _pack({camel(name)}, {{')
        for fname, expr in src.items():
            a(f'            "{fname}": {expr},')
        a("        }),")
    a("    }")
    a("")
    a("")
    a("def _word_mask(n_cores: int, word: int) -> int:")
    a('    """Bits of a 32-core word register that stand for existing cores."""')
    a("    return (1 << max(0, min(32, n_cores - 32 * word))) - 1")
    a("")
    a("")
    a("#: The register bus, from the master's side. A write happens in the cycle ``w_en`` is high;")
    a("#: read data appears on ``r_data`` in the cycle after ``r_en`` (and is 0 after a cycle without).")
    a("RegisterBus = wiring.Signature({")
    a('    "addr": Out(16),')
    a('    "w_data": Out(32),')
    a('    "w_en": Out(1),')
    a('    "r_en": Out(1),')
    a('    "r_data": In(32),')
    a("})")
    a("")
    a("")
    # RegisterFile
    ports_doc = []
    for r in rm.REGISTERS:
        if _is_id(r):
            continue
        ports_doc.append(f"    ``{r.name.lower()}`` {r.access}")
    a("class RegisterFile(wiring.Component):")
    a('    """The chip\'s register block.')
    a("")
    a("    ``bus`` is a :data:`RegisterBus` slave. Every register has a port named after it in lower")
    a("    case, except the identification registers (CHIP_ID, VERSION, GEOMETRY, PRECISION, BUFFERS,")
    a("    FEATURES, CLOCK), whose values are constants computed from ``config``:")
    a("")
    a("    * RW: ``Out(Layout)`` holding the register value (reset value from the description);")
    a("    * RO: ``In(Layout)`` driven by the hardware; bus writes are ignored;")
    a("    * WS: ``Out(Layout)`` holding the written bits for exactly the cycle after the write, else 0;")
    a("      reads return 0.")
    a("")
    a("    Per-core registers are ``data.ArrayLayout(Layout, config.n_cores)``; addresses of cores")
    a("    beyond ``n_cores`` read 0. CORE_ENABLE and CORE_SELECT are ``data.ArrayLayout(Layout, 2)``")
    a("    (32 cores per word); bits of cores beyond ``n_cores`` read 0 and cannot be set. Reads of")
    a("    unmapped addresses return 0.")
    a('    """')
    a("")
    a("    def __init__(self, config: ChipConfig):")
    a("        self.config = config")
    a("        n = config.n_cores")
    a("        super().__init__({")
    a('            "bus": In(RegisterBus),')
    for r in rm.REGISTERS:
        if _is_id(r):
            continue
        cls = camel(r.name)
        d = "Out" if r.access in (Access.RW, Access.WS) else "In"
        if r.index == "core":
            shape = f"data.ArrayLayout({cls}, n)"
            init = f", init=[{cls}.const(None)] * n" if r.access == Access.RW and r.reset else ""
        elif r.index == "word":
            shape = f"data.ArrayLayout({cls}, {r.count})"
            init = ""
            assert r.reset == 0, r.name
        else:
            shape = cls
            init = ""
        a(f'            "{r.name.lower()}": {d}({shape}{init}),')
    a("        })")
    a("")
    a("    def elaborate(self, platform):")
    a("        m = Module()")
    a("        n = self.config.n_cores")
    a("        bus = self.bus")
    a("        ident = identification(self.config)")
    a("")
    a("        # Per-core block: one range check, the core number, then the register in the low bits.")
    a("        in_cores = Signal()")
    a("        core = Signal(range(CORE_COUNT))")
    sb = stride.bit_length() - 1
    a("        m.d.comb += [")
    a("            in_cores.eq((bus.addr >= CORE_BASE) & (bus.addr < CORE_BASE + n * CORE_STRIDE)),")
    a(f"            core.eq(bus.addr[{sb}:] - (CORE_BASE >> {sb})),")
    a("        ]")
    a(f"        reg = bus.addr[:{sb}]")
    a("")
    ws = [r for r in rm.REGISTERS if r.access == Access.WS]
    a("        # Write-strobe registers pulse for the one cycle after their write.")
    for r in ws:
        assert r.count == 1, r.name
        a(f"        m.d.sync += self.{r.name.lower()}.eq(0)")
    a("")
    a("        with m.If(bus.w_en):")
    a("            with m.Switch(bus.addr):")
    for r in rm.REGISTERS:
        if r.access == Access.RO or r.index == "core":
            continue
        p = r.name.lower()
        if r.index == "word":
            a(f"                for i in range({r.name}_COUNT):")
            a(f"                    with m.Case({r.name}_ADDR + i * {r.name}_STRIDE):")
            a(f"                        m.d.sync += self.{p}[i].eq(bus.w_data & {r.name}_MASK & _word_mask(n, i))")
        else:
            a(f"                with m.Case({r.name}_ADDR):")
            a(f"                    m.d.sync += self.{p}.eq(bus.w_data & {r.name}_MASK)")
    a("                with m.Default():")
    a("                    with m.If(in_cores):")
    a("                        with m.Switch(reg):")
    for r in _core_regs():
        if r.access == Access.RO:
            continue
        assert r.access == Access.RW, r.name
        a(f"                            with m.Case({r.name}_ADDR % CORE_STRIDE):")
        a(f"                                m.d.sync += self.{r.name.lower()}[core].eq(bus.w_data & {r.name}_MASK)")
    a("")
    a("        # Reads: registered; 0 for unmapped addresses, write-strobe registers and idle cycles.")
    a("        m.d.sync += bus.r_data.eq(0)")
    a("        with m.If(bus.r_en):")
    a("            with m.Switch(bus.addr):")
    for r in rm.REGISTERS:
        if r.access == Access.WS or r.index == "core":
            continue
        p = r.name.lower()
        full = _word_mask(r) == 0xFFFFFFFF
        if _is_id(r):
            a(f"                with m.Case({r.name}_ADDR):")
            a(f'                    m.d.sync += bus.r_data.eq(ident["{r.name}"])')
        elif r.index == "word":
            a(f"                for i in range({r.name}_COUNT):")
            a(f"                    with m.Case({r.name}_ADDR + i * {r.name}_STRIDE):")
            a(f"                        m.d.sync += bus.r_data.eq(self.{p}[i])")
        elif r.access == Access.RO and not full:
            a(f"                with m.Case({r.name}_ADDR):")
            a(f"                    m.d.sync += bus.r_data.eq(self.{p}.as_value() & {r.name}_MASK)")
        else:
            a(f"                with m.Case({r.name}_ADDR):")
            a(f"                    m.d.sync += bus.r_data.eq(self.{p})")
    a("                with m.Default():")
    a("                    with m.If(in_cores):")
    a("                        with m.Switch(reg):")
    for r in _core_regs():
        p = r.name.lower()
        full = _word_mask(r) == 0xFFFFFFFF
        a(f"                            with m.Case({r.name}_ADDR % CORE_STRIDE):")
        if r.access == Access.RO and not full:
            a(f"                                m.d.sync += bus.r_data.eq(self.{p}[core].as_value() & {r.name}_MASK)")
        else:
            a(f"                                m.d.sync += bus.r_data.eq(self.{p}[core])")
    a("")
    a("        return m")
    return "\n".join(L) + "\n"


# -- firmware/regs.py --------------------------------------------------------------------------

_PY_RUNTIME = '''

# -- description classes and helpers (generated verbatim) --------------------------------------

@dataclass(frozen=True)
class Field:
    """A field of a register: bits lsb .. lsb + width - 1."""

    name: str
    lsb: int
    width: int
    reset: int = 0
    unit: str = ""
    #: IntEnum class of the field's values, if any.
    enum: type | None = None

    @property
    def msb(self) -> int:
        return self.lsb + self.width - 1

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.lsb

    def get(self, word: int) -> int:
        """The field's value in a register word."""
        return (word >> self.lsb) & ((1 << self.width) - 1)

    def put(self, value: int) -> int:
        """``value`` shifted into place (ValueError when it does not fit)."""
        value = int(value)
        if not 0 <= value < (1 << self.width):
            raise ValueError(f"{self.name} = {value} does not fit {self.width} bits")
        return value << self.lsb


@dataclass(frozen=True)
class Register:
    """A register, or an array of them (``count`` instances ``stride`` words apart)."""

    name: str
    offset: int
    access: str
    fields: tuple[Field, ...]
    count: int = 1
    stride: int = 0
    #: What an instance stands for when count > 1: "core" or "word".
    index: str = ""

    @property
    def reset(self) -> int:
        return sum(f.reset << f.lsb for f in self.fields)

    @property
    def mask(self) -> int:
        return sum(f.mask for f in self.fields)

    def address(self, i: int = 0) -> int:
        """Word address of instance ``i`` in the register space."""
        if not 0 <= i < self.count:
            raise IndexError(f"{self.name}[{i}] out of range 0..{self.count - 1}")
        return self.offset + i * self.stride

    def __getitem__(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"register {self.name} has no field {name!r}")


@dataclass(frozen=True)
class Buffer:
    """A per-core buffer: bus space ``space``; ``words`` is a formula over ChipConfig attributes."""

    name: str
    space: int
    access: str
    words: str

    def words_per_core(self, config) -> int:
        """Words per core for a ChipConfig (any object with the attributes the formula uses)."""
        env = {k: getattr(config, k) for k in re.findall(r"[A-Za-z_]\\w*", self.words)}
        return int(eval(self.words, {"__builtins__": {}}, env))


class Table(dict):
    """A dict whose entries are also attributes: ``REGISTERS.CTRL`` is ``REGISTERS["CTRL"]``."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def address(space: int, core: int, offset: int) -> int:
    """Bus address of a word: space, core and offset packed."""
    if not 0 <= space < 16:
        raise ValueError(f"space {space} out of range 0..15")
    if not 0 <= core < 64:
        raise ValueError(f"core {core} out of range 0..63")
    if not 0 <= offset < (1 << OFFSET_BITS):
        raise ValueError(f"offset {offset} out of range")
    return (int(space) << SPACE_SHIFT) | (core << CORE_SHIFT) | offset


def _reg(reg) -> Register:
    return reg if isinstance(reg, Register) else REGISTERS[reg]


def pack(reg_name, **fields) -> int:
    """The word of register ``reg_name`` with ``fields`` set; fields not given keep their reset."""
    reg = _reg(reg_name)
    word = reg.reset
    for name, value in fields.items():
        f = reg[name]
        word = (word & ~f.mask) | f.put(value)
    return word


def unpack(reg_name, value: int) -> dict:
    """The fields of a word of register ``reg_name`` (enum fields as their IntEnum when valid)."""
    reg = _reg(reg_name)
    out = {}
    for f in reg.fields:
        v = f.get(value)
        if f.enum is not None:
            try:
                v = f.enum(v)
            except ValueError:
                pass
        out[f.name] = v
    return out
'''


def gen_python() -> str:
    validate()
    L = []
    a = L.append
    a(f"# {_NOTICE}")
    a('"""Register map of the NeuRRAM chip for the host driver: addresses, fields, enums, buffers.')
    a("")
    a("Plain Python (no Amaranth). Registers are in :data:`REGISTERS` (``REGISTERS.MVM_CONFIG`` or")
    a('``REGISTERS["MVM_CONFIG"]``); :func:`pack` and :func:`unpack` convert between field values and')
    a("words. Bus address: space in bits 31:28, core in bits 27:22, word offset in bits 21:0.")
    a('"""')
    a("")
    a("from __future__ import annotations")
    a("")
    a("import enum as _enum")
    a("import re")
    a("from dataclasses import dataclass")
    a("")
    exported = (["SPACE_SHIFT", "CORE_SHIFT", "OFFSET_BITS", "BROADCAST_CORE", "CHIP_ID_MAGIC",
                 "VERSION", "CORE_BASE", "CORE_STRIDE", "CORE_COUNT", "Space"]
                + [e.name for e in rm.ENUMS]
                + ["Field", "Register", "Buffer", "REGISTERS", "BUFFERS", "address", "pack", "unpack"])
    a("__all__ = [")
    line = "   "
    for name in exported:
        item = f' "{name}",'
        if len(line) + len(item) > 99:
            a(line)
            line = "   "
        line += item
    a(line)
    a("]")
    a("")
    base, stride, count = _core_block()
    a(f"SPACE_SHIFT = {rm.SPACE_SHIFT}")
    a(f"CORE_SHIFT = {rm.CORE_SHIFT}")
    a(f"OFFSET_BITS = {rm.OFFSET_BITS}")
    a("#: Core index that addresses every core selected in CORE_SELECT (buffer writes only).")
    a(f"BROADCAST_CORE = {rm.BROADCAST_CORE}")
    a("#: Value of CHIP_ID: ASCII \"NRM1\".")
    a(f"CHIP_ID_MAGIC = {_hex(rm.CHIP_ID_MAGIC)}")
    a("#: Version of the digital design (major, minor, patch), as in register VERSION.")
    a(f"VERSION = {tuple(rm.VERSION)!r}")
    a("#: Per-core register block: register k of core c is at CORE_BASE + CORE_STRIDE·c + k.")
    a(f"CORE_BASE = {_hex(base, 3)}")
    a(f"CORE_STRIDE = {stride:#x}")
    a(f"CORE_COUNT = {count}")
    a("")
    a("")
    a("class Space(_enum.IntEnum):")
    a('    """Address spaces (bus address bits 31:28)."""')
    a("")
    a("    REGISTERS = 0")
    for b in rm.BUFFERS:
        a(f"    {b.name} = {b.space}")
    for e in rm.ENUMS:
        a("")
        a("")
        a(f"class {e.name}(_enum.IntEnum):")
        a(f'    """{e.doc}"""')
        a("")
        for v in e.values:
            a(f"    {v.name} = {v.value}  #: {v.doc}")
    L.append(_PY_RUNTIME.rstrip("\n"))
    a("")
    a("")
    a("REGISTERS = Table((r.name, r) for r in (")
    for r in rm.REGISTERS:
        a(f'    # {r.doc}')
        a(f'    Register("{r.name}", {_hex(r.offset, 3)}, "{r.access}", (')
        for f in r.fields:
            args = [f'"{f.name}"', str(f.lsb), str(f.width)]
            args.append(_num(f))
            if f.unit:
                args.append(f'"{f.unit}"')
            if f.enum:
                if not f.unit:
                    args.append('""')
                args.append(f.enum)
            a(f"        Field({', '.join(args)}),")
        if r.count > 1:
            a(f'    ), count={r.count}, stride={r.stride:#x}, index="{r.index}"),')
        else:
            a("    )),")
    a("))")
    a("")
    a("BUFFERS = Table((b.name, b) for b in (")
    for b in rm.BUFFERS:
        a(f'    Buffer("{b.name}", {b.space}, "{b.access}", "{b.words}"),')
    a("))")
    a("")
    a("# Flat word addresses (instance 0 of arrays).")
    for r in rm.REGISTERS:
        a(f"{r.name}_ADDR = {_hex(r.offset, 3)}")
    return "\n".join(L) + "\n"


# -- firmware/include/neurram_regs.h -----------------------------------------------------------

def _c_comment(text: str) -> str:
    return text.replace("*/", "* /")


def gen_c() -> str:
    validate()
    base, stride, count = _core_block()
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
    for b in rm.BUFFERS:
        d(f"SPACE_{b.name}", f"{b.space}u", f"{b.access}: {b.doc} Words per core: {b.words}.")
    a("")
    a("/* Per-core register block: register k of core c is at CORE_BASE + CORE_STRIDE * c + k. */")
    d("CORE_BASE", f"{_hex(base, 3)}u")
    d("CORE_STRIDE", f"{stride:#x}u")
    d("CORE_COUNT", f"{count}u")
    for e in rm.ENUMS:
        a("")
        a(f"/* {e.name}: {_c_comment(e.doc)} */")
        for v in e.values:
            d(f"{snake(e.name)}_{v.name}", f"{v.value}u", v.doc)
    for r in rm.REGISTERS:
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
              + f": {f.doc}" + (f" Values: {f.enum}." if f.enum else ""))
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
        return f"{f.reset} ({_enum_member(rm.enum(f.enum), f.reset).name})"
    if f.reset >= 1000:
        return f"{f.reset} ({_hex(f.reset, 0)})"
    return str(f.reset)


def _where_md(r: rm.Register) -> str:
    if r.count == 1:
        return f"`{_hex(r.offset, 3)}`"
    return f"`{_hex(r.offset, 3)}` + `{r.stride:#x}`·{r.index} ({r.count})"


def gen_markdown() -> str:
    validate()
    base, stride, count = _core_block()
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
    for r in rm.REGISTERS:
        a(f"| {_where_md(r)} | [{r.name}](#{r.name.lower()}) | {r.access} | `{_hex(r.reset)}` | {_md(r.doc)} |")
    for r in rm.REGISTERS:
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
                e = rm.enum(f.enum)
                doc += f" [{e.name}](#{e.name.lower()}): " + ", ".join(f"{v.value} = {v.name}" for v in e.values)
            a(f"| {_bits(f)} | {f.name} | {r.access} | {_reset_md(f)} | {_md(f.unit)} | {doc} |")
    a("")
    a("## Enums")
    for e in rm.ENUMS:
        a("")
        a(f"### {e.name}")
        a("")
        a(f"{_md(e.doc)} ({e.width} bits)")
        a("")
        a("| value | name | description |")
        a("|---|---|---|")
        for v in e.values:
            a(f"| {v.value} | {v.name} | {_md(v.doc)} |")
    a("")
    a("## Buffer spaces")
    a("")
    a("Each core has these buffers; word w of core c's buffer in space s is at bus address "
      f"`(s << {rm.SPACE_SHIFT}) | (c << {rm.CORE_SHIFT}) | w`.")
    a("")
    a("| space | name | access | words per core | description |")
    a("|---|---|---|---|---|")
    for b in rm.BUFFERS:
        a(f"| {b.space} | [{b.name}](#{b.name.lower()}) | {b.access} | `{b.words}` | {_md(b.doc)} |")
    for b in rm.BUFFERS:
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
    base, stride, count = _core_block()
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
            "name": e.name, "width": e.width, "doc": e.doc,
            "values": [{"name": v.name, "value": v.value, "doc": v.doc} for v in e.values],
        } for e in rm.ENUMS],
        "registers": [{
            "name": r.name, "offset": r.offset, "access": r.access, "doc": r.doc,
            "count": r.count, "stride": r.stride, "index": r.index,
            "reset": r.reset, "mask": _word_mask(r),
            "fields": [{
                "name": f.name, "lsb": f.lsb, "width": f.width, "msb": f.msb, "mask": f.mask,
                "reset": f.reset, "unit": f.unit, "doc": f.doc, "enum": f.enum,
            } for f in r.fields],
        } for r in rm.REGISTERS],
        "buffers": [{
            "name": b.name, "space": b.space, "access": b.access, "doc": b.doc,
            "layout": b.layout, "words": b.words,
        } for b in rm.BUFFERS],
    }


def gen_json() -> str:
    validate()
    return json.dumps(export(), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


# -- driver ------------------------------------------------------------------------------------

#: Committed outputs: path relative to the repository root -> generator.
OUTPUTS = {
    "hdl/registers.py": gen_amaranth,
    "firmware/regs.py": gen_python,
    "firmware/include/neurram_regs.h": gen_c,
    "docs/registers.md": gen_markdown,
    "docs/registers.json": gen_json,
}

#: ``neurram regmap --format`` names -> generator.
FORMATS = {
    "md": gen_markdown,
    "c": gen_c,
    "json": gen_json,
    "py": gen_python,
    "amaranth": gen_amaranth,
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
