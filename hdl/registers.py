"""The chip's register block, built from the register map when the RTL elaborates.

Nothing here is generated: :func:`layout` turns each :class:`neurram.spec.regmap.Register` into
an Amaranth ``data`` layout (fields at their bit positions, enum fields typed with
:func:`hdl_enum`), and :class:`RegisterFile` decodes the register bus from the same
descriptions, as amaranth-soc builds a bridge from its register objects.

Register addresses are 32-bit word offsets in bus space 0; the register bus carries the low 16
bits of the chip bus address. Per-core registers sit at ``CORE_BASE + CORE_STRIDE·core + k``.
"""

import types
from functools import cache

from amaranth.hdl import Module, Signal
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out

from neurram.spec import enums as spec_enums
from neurram.spec import regmap
from neurram.spec.mvm import SETTINGS_FIELDS
from neurram.spec.regmap import Access

__all__ = ["hdl_enum", "layout", "field_shape", "CoreSettings", "Space", "Direction", "InputSource", "Conversion", "Activation",
           "PulsePolarity", "RegisterBus", "RegisterFile"]


@cache
def hdl_enum(spec_enum: type) -> type:
    """The Amaranth ``lib.enum`` twin of a spec enumeration: same members, same width.

    Members keep their names and values, so a value the RTL stores is the spec's number.
    """
    def body(ns):
        ns.update({"__doc__": spec_enum.__doc__, "__module__": __name__, "__qualname__": spec_enum.__name__})
        for member in spec_enum:
            ns[member.name] = member.value

    return types.new_class(spec_enum.__name__, (enum.Enum,), {"shape": spec_enum.width}, body)


Space = hdl_enum(spec_enums.Space)
Direction = hdl_enum(spec_enums.Direction)
InputSource = hdl_enum(spec_enums.InputSource)
Conversion = hdl_enum(spec_enums.Conversion)
Activation = hdl_enum(spec_enums.Activation)
PulsePolarity = hdl_enum(spec_enums.PulsePolarity)


def field_shape(f: regmap.Field):
    return hdl_enum(f.enum) if f.enum is not None else f.width


@cache
def layout(name: str) -> data.FlexibleLayout:
    """The 32-bit layout of a register: every field at its bit position, enums typed."""
    r = regmap.register(name)
    return data.FlexibleLayout(32, {f.name: data.Field(field_shape(f), f.lsb) for f in r.fields})


def _reset(name: str):
    r = regmap.register(name)
    return layout(name).const({f.name: f.reset for f in r.fields})


#: The register bus, from the master's side. A write happens in the cycle ``w_en`` is high;
#: read data appears on ``r_data`` in the cycle after ``r_en`` (and is 0 after a cycle without).
RegisterBus = wiring.Signature({
    "addr": Out(16),
    "w_data": Out(32),
    "w_en": Out(1),
    "r_en": Out(1),
    "r_data": In(32),
})


def _word_mask(n_cores: int, word: int) -> int:
    """Bits of a 32-core word register that stand for existing cores."""
    return (1 << max(0, min(32, n_cores - 32 * word))) - 1


def _instances(r: regmap.Register, n_cores: int) -> int:
    return n_cores if r.per_core else r.count


class RegisterFile(wiring.Component):
    """The chip's register block.

    ``bus`` is a :data:`RegisterBus` slave. Every register has a port named after it in lower
    case, except the identification registers (``regmap.ID_REGISTERS``), whose values are
    constants computed from ``config``:

    * RW: ``Out(layout)`` holding the register value (reset value from the description);
    * RO: ``In(layout)`` driven by the hardware; bus writes are ignored;
    * WS: ``Out(layout)`` holding the written bits for exactly the cycle after the write, else 0;
      reads return 0.

    Registers of features the configuration lacks (``regmap.absent_registers``) are not built:
    they have no port and read 0. Per-core registers are ``data.ArrayLayout(layout, config.n_cores)``; addresses of cores
    beyond ``n_cores`` read 0. CORE_ENABLE and CORE_SELECT are ``data.ArrayLayout(layout, 2)``
    (32 cores per word); bits of cores beyond ``n_cores`` read 0 and cannot be set. Reads of
    unmapped addresses return 0.
    """

    def __init__(self, config):
        self.config = config
        members = {"bus": In(RegisterBus)}
        for r in self._registers():
            shape = layout(r.name)
            k = _instances(r, config.n_cores)
            if r.access == Access.RO:
                members[r.name.lower()] = In(shape if r.count == 1 else data.ArrayLayout(shape, k))
            elif r.count == 1:
                members[r.name.lower()] = Out(shape, init=_reset(r.name) if r.access == Access.RW else None)
            else:
                members[r.name.lower()] = Out(data.ArrayLayout(shape, k), init=[_reset(r.name)] * k)
        super().__init__(members)

    def _registers(self):
        # A reduced chip has no registers for the features it lacks (they read 0).
        absent = regmap.absent_registers(self.config)
        return [r for r in regmap.REGISTERS.values() if r.name not in regmap.ID_REGISTERS and r.name not in absent]

    def elaborate(self, platform):
        m = Module()
        n = self.config.n_cores
        bus = self.bus
        # Per-core block: one range check, the core number, then the register in the low bits.
        in_cores = Signal()
        core = Signal(range(regmap.CORE_COUNT))
        base, stride = regmap.CORE_BASE, regmap.CORE_STRIDE
        m.d.comb += [in_cores.eq((bus.addr >= base) & (bus.addr < base + n * stride)),
                     core.eq(bus.addr[stride.bit_length() - 1:] - (base // stride))]
        reg = bus.addr[:stride.bit_length() - 1]
        flat = [r for r in self._registers() if not r.per_core]
        per_core = [r for r in self._registers() if r.per_core]

        # Write-strobe registers pulse for the one cycle after their write.
        for r in flat:
            if r.access == Access.WS:
                m.d.sync += getattr(self, r.name.lower()).eq(0)
        with m.If(bus.w_en):
            with m.Switch(bus.addr):
                for r in flat:
                    if r.access == Access.RO:
                        continue
                    port = getattr(self, r.name.lower())
                    for i in range(r.count):
                        with m.Case(r.address(i)):
                            bits = r.mask & (_word_mask(n, i) if r.index == "word" else 0xFFFFFFFF)
                            m.d.sync += (port[i] if r.count > 1 else port).eq(bus.w_data & bits)
                with m.Default():
                    with m.If(in_cores):
                        with m.Switch(reg):
                            for r in per_core:
                                if r.access == Access.RW:
                                    with m.Case(r.offset % stride):
                                        m.d.sync += getattr(self, r.name.lower())[core].eq(bus.w_data & r.mask)

        # Reads: registered; 0 for unmapped addresses, write-strobe registers and idle cycles.
        ident = regmap.identification(self.config)
        m.d.sync += bus.r_data.eq(0)
        with m.If(bus.r_en):
            with m.Switch(bus.addr):
                for name in regmap.ID_REGISTERS:
                    with m.Case(regmap.register(name).address()):
                        m.d.sync += bus.r_data.eq(ident[name])
                for r in flat:
                    if r.access == Access.WS:
                        continue
                    port = getattr(self, r.name.lower())
                    for i in range(r.count):
                        with m.Case(r.address(i)):
                            m.d.sync += bus.r_data.eq(self._read_value(r, port[i] if r.count > 1 else port))
                with m.Default():
                    with m.If(in_cores):
                        with m.Switch(reg):
                            for r in per_core:
                                with m.Case(r.offset % stride):
                                    port = getattr(self, r.name.lower())[core]
                                    m.d.sync += bus.r_data.eq(self._read_value(r, port))
        return m

    @staticmethod
    def _read_value(r, view):
        # RO registers are driven by the hardware: only their fields' bits read back.
        value = view.as_value()
        return value & r.mask if r.access == Access.RO and r.mask != 0xFFFFFFFF else value


def _settings_layout() -> data.StructLayout:
    """The settings of a batch as the core latches them: every field of
    :class:`neurram.spec.mvm.MvmSettings` with its register field's shape (modes typed with their
    enums), and the batch count, in the order of ``SETTINGS_FIELDS``."""
    fields = {}
    for name, reg in SETTINGS_FIELDS:
        if name == "recurrent_steps":
            fields["batch_count"] = regmap.register("BATCH")["count"].width
        fields[name] = field_shape(regmap.register(reg)[name])
    return data.StructLayout(fields)


#: Operating mode of a batch, latched by the core at start (from MVM_CONFIG & co).
CoreSettings = _settings_layout()
