# Generated from hdl/regmap.py by hdl/regmap_gen.py. Do not edit: run `neurram regmap --write`.
"""Register map of the NeuRRAM chip for the host driver: addresses, fields, enums, buffers.

Plain Python (no Amaranth). Registers are in :data:`REGISTERS` (``REGISTERS.MVM_CONFIG`` or
``REGISTERS["MVM_CONFIG"]``); :func:`pack` and :func:`unpack` convert between field values and
words. Bus address: space in bits 31:28, core in bits 27:22, word offset in bits 21:0.
"""

from __future__ import annotations

import enum as _enum
import re
from dataclasses import dataclass

__all__ = [
    "SPACE_SHIFT", "CORE_SHIFT", "OFFSET_BITS", "BROADCAST_CORE", "CHIP_ID_MAGIC", "VERSION",
    "CORE_BASE", "CORE_STRIDE", "CORE_COUNT", "Space", "Direction", "InputSource", "Conversion",
    "Activation", "PulsePolarity", "Field", "Register", "Buffer", "REGISTERS", "BUFFERS",
    "address", "pack", "unpack",
]

SPACE_SHIFT = 28
CORE_SHIFT = 22
OFFSET_BITS = 22
#: Core index that addresses every core selected in CORE_SELECT (buffer writes only).
BROADCAST_CORE = 63
#: Value of CHIP_ID: ASCII "NRM1".
CHIP_ID_MAGIC = 0x4E524D31
#: Version of the digital design (major, minor, patch), as in register VERSION.
VERSION = (0, 1, 0)
#: Per-core register block: register k of core c is at CORE_BASE + CORE_STRIDE·c + k.
CORE_BASE = 0x100
CORE_STRIDE = 0x10
CORE_COUNT = 64


class Space(_enum.IntEnum):
    """Address spaces (bus address bits 31:28)."""

    REGISTERS = 0
    INPUT = 1
    OUTPUT = 2
    BL_REG = 3
    SL_REG = 4
    NEURON_MASK = 5
    POLARITY = 6


class Direction(_enum.IntEnum):
    """Which lines carry the inputs of an MVM (NEURRAM.md §2, TNSA)."""

    FORWARD = 0  #: inputs on bitlines, outputs sensed on source lines (y = Wᵀx)
    BACKWARD = 1  #: inputs on source lines, outputs sensed on bitlines (y = Wx)
    RECURRENT = 2  #: forward, then each output written back as the core's next input


class InputSource(_enum.IntEnum):
    """Where the sequencer takes the input vector from."""

    BUFFER = 0  #: bit-serial from the core's input buffer (bit-planes)
    TERNARY = 1  #: the input-side ternary register as loaded, one phase


class Conversion(_enum.IntEnum):
    """How a neuron converts its integrated charge to a digital output."""

    SIGN = 0  #: comparator only: 1-bit output
    DECREMENT = 1  #: initial sign, then charge-decrement steps until the comparator flips
    SAR = 2  #: successive approximation, the charge step halved every bit


class Activation(_enum.IntEnum):
    """Activation applied by the conversion."""

    NONE = 0  #: signed output
    RELU = 1  #: negative outputs become 0
    CLIPPED_RELU = 2  #: ReLU, then magnitudes clipped at NEURON_CONFIG.clip


class PulsePolarity(_enum.IntEnum):
    """Kind of programming pulse (NEURRAM.md §3)."""

    SET = 0  #: bitline pulse, wordline at the compliance voltage: conductance rises
    RESET = 1  #: source-line pulse, wordline at 5 V: conductance falls


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
        env = {k: getattr(config, k) for k in re.findall(r"[A-Za-z_]\w*", self.words)}
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


REGISTERS = Table((r.name, r) for r in (
    # Identifies a NeuRRAM-compatible chip.
    Register("CHIP_ID", 0x000, "RO", (
        Field("magic", 0, 32, 0x4E524D31),
    )),
    # Version of the digital design.
    Register("VERSION", 0x001, "RO", (
        Field("patch", 0, 8, 0),
        Field("minor", 8, 8, 1),
        Field("major", 16, 8, 0),
    )),
    # Core grid and array size (set by the ChipConfig).
    Register("GEOMETRY", 0x002, "RO", (
        Field("core_rows", 0, 4, 8, "cores"),
        Field("core_cols", 4, 4, 6, "cores"),
        Field("rows", 8, 12, 256, "lines"),
        Field("cols", 20, 12, 256, "lines"),
    )),
    # Precisions the neurons and sequencer support.
    Register("PRECISION", 0x003, "RO", (
        Field("input_bits_max", 0, 4, 8, "bits"),
        Field("output_bits_max", 4, 4, 8, "bits"),
        Field("max_steps_limit", 8, 7, 127, "steps"),
        Field("pulse_multiplier_max", 16, 8, 255, "pulses"),
    )),
    # Batch buffer sizes.
    Register("BUFFERS", 0x004, "RO", (
        Field("batch_depth", 0, 13, 16, "vectors"),
    )),
    # Supported modes, one bit each.
    Register("FEATURES", 0x005, "RO", (
        Field("conv_sign", 0, 1, 1),
        Field("conv_decrement", 1, 1, 1),
        Field("conv_sar", 2, 1, 1),
        Field("backward", 3, 1, 1),
        Field("recurrent", 4, 1, 1),
        Field("stochastic", 5, 1, 1),
        Field("clock_gating", 6, 1, 1),
        Field("cell_access", 7, 1, 1),
    )),
    # Digital clock frequency.
    Register("CLOCK", 0x006, "RO", (
        Field("freq_kHz", 0, 32, 100000, "kHz"),
    )),
    # Commands; each written 1 pulses once.
    Register("CTRL", 0x008, "WS", (
        Field("start", 0, 1, 0),
        Field("abort", 1, 1, 0),
        Field("clear_counters", 2, 1, 0),
        Field("cell_program", 3, 1, 0),
        Field("cell_read", 4, 1, 0),
    )),
    # Chip status word.
    Register("STATUS", 0x009, "RO", (
        Field("busy", 0, 1, 0),
        Field("done", 1, 1, 0),
        Field("cell_busy", 2, 1, 0),
        Field("cell_done", 3, 1, 0),
        Field("config_error", 4, 1, 0),
    )),
    # Core enables (power gating), 32 cores per word. A disabled core ignores triggers, spends no events and keeps its state.
    Register("CORE_ENABLE", 0x00A, "RW", (
        Field("mask", 0, 32, 0, "cores"),
    ), count=2, stride=0x1, index="word"),
    # Cores that take the next CTRL.start and broadcast buffer writes, 32 per word.
    Register("CORE_SELECT", 0x00C, "RW", (
        Field("mask", 0, 32, 0, "cores"),
    ), count=2, stride=0x1, index="word"),
    # Operating mode of the next batch.
    Register("MVM_CONFIG", 0x010, "RW", (
        Field("direction", 0, 2, 0, "", Direction),
        Field("input_source", 2, 2, 0, "", InputSource),
        Field("input_bits", 4, 4, 1, "bits"),
        Field("input_signed", 8, 1, 0),
        Field("conversion", 9, 2, 0, "", Conversion),
        Field("output_bits", 11, 4, 8, "bits"),
        Field("activation", 15, 2, 0, "", Activation),
        Field("stochastic", 17, 1, 0),
    )),
    # Integration timing.
    Register("MVM_TIMING", 0x011, "RW", (
        Field("pulse_multiplier", 0, 8, 1, "pulses"),
    )),
    # Neuron conversion settings.
    Register("NEURON_CONFIG", 0x012, "RW", (
        Field("max_steps", 0, 7, 100, "steps"),
        Field("clip", 8, 7, 127, "steps"),
    )),
    # Batch size.
    Register("BATCH", 0x013, "RW", (
        Field("count", 0, 13, 1, "vectors"),
        Field("recurrent_steps", 16, 8, 1, "steps"),
    )),
    # Seed of the stochastic-neuron LFSRs (loaded on CTRL.start).
    Register("LFSR_SEED", 0x018, "RW", (
        Field("seed", 0, 32, 0xACE1),
    )),
    # Stochastic-neuron noise.
    Register("STOCHASTIC", 0x019, "RW", (
        Field("noise_uV", 0, 14, 400, "µV"),
    )),
    # Cell for CTRL.cell_program and CTRL.cell_read.
    Register("CELL_ADDR", 0x020, "RW", (
        Field("core", 0, 6, 0, "core"),
        Field("row", 6, 12, 0, "line"),
        Field("col", 18, 12, 0, "line"),
    )),
    # Programming pulse (NEURRAM.md §3).
    Register("CELL_PULSE", 0x021, "RW", (
        Field("polarity", 0, 1, 0, "", PulsePolarity),
        Field("amplitude_mV", 4, 12, 1200, "mV"),
        Field("gate_mV", 16, 13, 2500, "mV"),
    )),
    # Programming pulse width and read voltage.
    Register("CELL_TIMING", 0x022, "RW", (
        Field("width_ns", 0, 16, 1000, "ns"),
        Field("read_mV", 16, 12, 150, "mV"),
    )),
    # Result of the last CTRL.cell_read.
    Register("CELL_RESULT", 0x023, "RO", (
        Field("g_10nS", 0, 16, 0, "10 nS"),
        Field("valid", 16, 1, 0),
    )),
    # Input-driver amplitudes of one core (calibrated per core).
    Register("CORE_BIAS", 0x100, "RW", (
        Field("v_pos_mV", 0, 10, 100, "mV"),
        Field("v_neg_mV", 10, 10, 100, "mV"),
    ), count=64, stride=0x10, index="core"),
    # Neuron charge packet of one core.
    Register("CORE_NEURON", 0x101, "RW", (
        Field("packet_uV", 0, 14, 100, "µV"),
    ), count=64, stride=0x10, index="core"),
    # State of one core.
    Register("CORE_STATUS", 0x102, "RO", (
        Field("busy", 0, 1, 0),
        Field("enabled", 1, 1, 0),
        Field("batch_index", 16, 13, 0),
    ), count=64, stride=0x10, index="core"),
    # MVMs completed.
    Register("COUNT_MVM", 0x108, "RO", (
        Field("count", 0, 32, 0, "MVMs"),
    ), count=64, stride=0x10, index="core"),
    # Input pulses integrated (each drives every input line once).
    Register("COUNT_PULSE", 0x109, "RO", (
        Field("count", 0, 32, 0, "pulses"),
    ), count=64, stride=0x10, index="core"),
    # Neuron comparisons (all output neurons at once).
    Register("COUNT_COMPARE", 0x10A, "RO", (
        Field("count", 0, 32, 0, "compares"),
    ), count=64, stride=0x10, index="core"),
    # Charge-decrement or SAR steps (all active neurons at once).
    Register("COUNT_STEP", 0x10B, "RO", (
        Field("count", 0, 32, 0, "steps"),
    ), count=64, stride=0x10, index="core"),
    # SET and RESET pulses applied.
    Register("COUNT_PROGRAM", 0x10C, "RO", (
        Field("count", 0, 32, 0, "pulses"),
    ), count=64, stride=0x10, index="core"),
    # Single-cell reads.
    Register("COUNT_READ", 0x10D, "RO", (
        Field("count", 0, 32, 0, "reads"),
    ), count=64, stride=0x10, index="core"),
    # Clock cycles spent running batches.
    Register("COUNT_BUSY", 0x10E, "RO", (
        Field("count", 0, 32, 0, "cycles"),
    ), count=64, stride=0x10, index="core"),
))

BUFFERS = Table((b.name, b) for b in (
    Buffer("INPUT", 1, "RW", "batch_depth * input_planes * words_per_line_vector"),
    Buffer("OUTPUT", 2, "RO", "batch_depth * 8 * words_per_line_vector"),
    Buffer("BL_REG", 3, "RW", "2 * words_per_line_vector"),
    Buffer("SL_REG", 4, "RW", "2 * words_per_line_vector"),
    Buffer("NEURON_MASK", 5, "RW", "words_per_line_vector"),
    Buffer("POLARITY", 6, "RW", "words_per_line_vector"),
))

# Flat word addresses (instance 0 of arrays).
CHIP_ID_ADDR = 0x000
VERSION_ADDR = 0x001
GEOMETRY_ADDR = 0x002
PRECISION_ADDR = 0x003
BUFFERS_ADDR = 0x004
FEATURES_ADDR = 0x005
CLOCK_ADDR = 0x006
CTRL_ADDR = 0x008
STATUS_ADDR = 0x009
CORE_ENABLE_ADDR = 0x00A
CORE_SELECT_ADDR = 0x00C
MVM_CONFIG_ADDR = 0x010
MVM_TIMING_ADDR = 0x011
NEURON_CONFIG_ADDR = 0x012
BATCH_ADDR = 0x013
LFSR_SEED_ADDR = 0x018
STOCHASTIC_ADDR = 0x019
CELL_ADDR_ADDR = 0x020
CELL_PULSE_ADDR = 0x021
CELL_TIMING_ADDR = 0x022
CELL_RESULT_ADDR = 0x023
CORE_BIAS_ADDR = 0x100
CORE_NEURON_ADDR = 0x101
CORE_STATUS_ADDR = 0x102
COUNT_MVM_ADDR = 0x108
COUNT_PULSE_ADDR = 0x109
COUNT_COMPARE_ADDR = 0x10A
COUNT_STEP_ADDR = 0x10B
COUNT_PROGRAM_ADDR = 0x10C
COUNT_READ_ADDR = 0x10D
COUNT_BUSY_ADDR = 0x10E
