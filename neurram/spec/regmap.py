"""The register map, described once.

This description is the chip's register map: the Amaranth register block
(``neurram.hdl.registers.RegisterFile``) is built from it when the RTL elaborates, the fast model
and the host driver use its :class:`Register` objects directly (:func:`pack`, :func:`unpack`,
:meth:`Register.address`), and ``neurram regmap --write`` generates the files for what cannot
import Python: a C header (``firmware/include/neurram_regs.h``), ``docs/registers.md`` and
``docs/registers.json``. A test fails when one of those is stale.

Addressing. The chip's internal bus carries 32-bit words at 32-bit word addresses::

    address[31:28]  space   0 = registers, otherwise one of the buffers in BUFFERS
    address[27:22]  core    core index for buffer spaces; 63 = every core in CORE_SELECT (writes)
    address[21:0]   offset  word offset inside the register space or inside one core's buffer

Register addresses below are word offsets in space 0. Per-core registers repeat with a stride:
register k of core c is at ``CORE_BASE + CORE_STRIDE·c + k``.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass

from neurram.config import ChipConfig

from .enums import ENUMS, Activation, Conversion, Direction, InputSource, PulsePolarity, Space
from .writeverify import WriteVerifyConfig

#: Reset values of the write-verify engine's registers: the chip's published procedure.
_WV = WriteVerifyConfig()

__all__ = [
    "Access", "Field", "Register", "Buffer", "Table", "ENUMS", "REGISTERS", "BUFFERS",
    "SPACE_SHIFT", "CORE_SHIFT", "OFFSET_BITS", "BROADCAST_CORE", "CHIP_ID_MAGIC", "VERSION",
    "CORE_BASE", "CORE_STRIDE", "CORE_COUNT", "ID_SOURCES", "ID_REGISTERS", "FEATURE_REGISTERS", "absent_registers",
    "Space", "Direction", "InputSource", "Conversion", "Activation", "PulsePolarity",
    "register", "buffer", "address", "split_address", "pack", "unpack", "identification",
    "config_from_identification",
]

#: Bit position of the address-space field in a bus address.
SPACE_SHIFT = 28
#: Bit position of the core field in a bus address.
CORE_SHIFT = 22
#: Width of the offset field in a bus address.
OFFSET_BITS = 22
#: Core index that addresses every core selected in CORE_SELECT (buffer writes only).
BROADCAST_CORE = 63
#: Value of CHIP_ID: ASCII "NRM1".
CHIP_ID_MAGIC = 0x4E524D31
#: Chip version reported in VERSION (major, minor, patch).
VERSION = (0, 2, 0)
#: Per-core register block: register k of core c is at CORE_BASE + CORE_STRIDE·c + k.
CORE_BASE = 0x100
CORE_STRIDE = 0x10
#: Instances of every per-core register (the 6-bit core index).
CORE_COUNT = 64


class Access:
    RO = "RO"  # read-only: the hardware drives it
    RW = "RW"  # read-write: configuration held in a register
    WS = "WS"  # write-strobe: writing 1 pulses the field for one cycle; reads return 0


@dataclass(frozen=True)
class Field:
    """A field of a register: bits lsb .. lsb + width - 1."""

    name: str
    lsb: int
    width: int
    reset: int = 0
    unit: str = ""
    doc: str = ""
    #: The field's enumeration (a class from :mod:`neurram.spec.enums`), if any.
    enum: type | None = None

    @property
    def msb(self) -> int:
        return self.lsb + self.width - 1

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.lsb

    @property
    def max(self) -> int:
        """The largest value the field holds."""
        return (1 << self.width) - 1

    def get(self, word: int) -> int:
        """The field's value in a register word."""
        return (int(word) >> self.lsb) & self.max

    def put(self, value: int) -> int:
        """``value`` shifted into place (ValueError when it does not fit)."""
        value = int(value)
        if not 0 <= value <= self.max:
            raise ValueError(f"{self.name} = {value} does not fit {self.width} bits")
        return value << self.lsb


@dataclass(frozen=True)
class Register:
    """A register, or an array of them (``count`` instances ``stride`` words apart)."""

    name: str
    offset: int
    access: str
    doc: str
    fields: tuple[Field, ...]
    #: Number of instances (per-core registers: one per core, up to 64).
    count: int = 1
    #: Address step between instances.
    stride: int = 0
    #: What one instance stands for when count > 1 ("core" or "word").
    index: str = ""

    @property
    def reset(self) -> int:
        return sum(f.reset << f.lsb for f in self.fields)

    @property
    def mask(self) -> int:
        return sum(f.mask for f in self.fields)

    @property
    def per_core(self) -> bool:
        return self.index == "core"

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
    """A per-core buffer in bus space ``space``; ``words`` is a formula over ChipConfig attributes."""

    name: str
    space: Space
    access: str
    doc: str
    layout: str
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


def _f(name, lsb, width, reset=0, unit="", doc="", enum=None):
    return Field(name, lsb, width, reset, unit, doc, enum)


A = Access

REGISTERS = Table((r.name, r) for r in (
    # -- identification and configuration block --------------------------------------------
    Register("CHIP_ID", 0x000, A.RO, "Identifies a NeuRRAM-compatible chip.", (
        _f("magic", 0, 32, CHIP_ID_MAGIC, doc='ASCII "NRM1".'),)),
    Register("VERSION", 0x001, A.RO, "Version of the digital design.", (
        _f("patch", 0, 8, VERSION[2], doc="Patch version."),
        _f("minor", 8, 8, VERSION[1], doc="Minor version."),
        _f("major", 16, 8, VERSION[0], doc="Major version."))),
    Register("GEOMETRY", 0x002, A.RO, "Core grid and array size (set by the ChipConfig).", (
        _f("core_rows", 0, 4, 8, "cores", "Core-rows in the grid."),
        _f("core_cols", 4, 4, 6, "cores", "Core-columns in the grid."),
        _f("rows", 8, 12, 256, "lines", "Bitlines (wordlines) per core array."),
        _f("cols", 20, 12, 256, "lines", "Source lines per core array."))),
    Register("PRECISION", 0x003, A.RO, "Precisions the neurons and sequencer support.", (
        _f("input_bits_max", 0, 4, 8, "bits", "Largest bit-serial input precision."),
        _f("output_bits_max", 4, 4, 8, "bits", "Largest SAR output precision, sign included."),
        _f("max_steps_limit", 8, 7, 127, "steps", "Largest charge-decrement step count."),
        _f("pulse_multiplier_max", 16, 8, 255, "pulses", "Largest pulse multiplier."))),
    Register("BUFFERS", 0x004, A.RO, "Batch buffer sizes.", (
        _f("batch_depth", 0, 13, 16, "vectors", "Input and output buffer depth per core."),
        _f("wv_rows", 16, 7, 4, "rows", "Rows of targets the write-verify buffer holds per core."))),
    Register("FEATURES", 0x005, A.RO, "Supported modes, one bit each.", (
        _f("conv_sign", 0, 1, 1, doc="Sign conversion."),
        _f("conv_decrement", 1, 1, 1, doc="Charge-decrement conversion."),
        _f("conv_sar", 2, 1, 1, doc="SAR conversion."),
        _f("backward", 3, 1, 1, doc="Backward MVMs (inputs on source lines)."),
        _f("recurrent", 4, 1, 1, doc="Recurrent MVMs (outputs fed back as inputs)."),
        _f("stochastic", 5, 1, 1, doc="LFSR-driven stochastic neurons (a chip without them has no "
                                        "LFSR_SEED and STOCHASTIC registers: they read 0)."),
        _f("clock_gating", 6, 1, 1, doc="Idle cores have their clock gated."),
        _f("cell_access", 7, 1, 1, doc="Single-cell program and read for write-verify."),
        _f("wv_engine", 8, 1, 1, doc="On-chip write-verify engine (CTRL.wv_start, WV_CELLS). A chip without "
                                       "it has no WV_* registers and no WV_CELLS buffer (they read 0) and "
                                       "refuses CTRL.wv_start; the host write-verifies over the cell registers."),
        _f("emulated_array", 9, 1, 0, doc="The analog arrays are a digital emulation (an FPGA prototype: "
                                         "exact integer MVMs on 10 nS codes, no noise)."),
        _f("event_counters", 10, 1, 1, doc="Per-core event counters (a chip without them has no COUNT_* "
                                          "registers: they read 0)."))),
    Register("CLOCK", 0x006, A.RO, "Digital clock frequency.", (
        _f("freq_kHz", 0, 32, 100000, "kHz", "Clock frequency the design was built for."),)),

    # -- control and status --------------------------------------------------------------------
    Register("CTRL", 0x008, A.WS, "Commands; each written 1 pulses once.", (
        _f("start", 0, 1, doc="Run a batch of BATCH.count MVMs on every enabled core in CORE_SELECT."),
        _f("abort", 1, 1, doc="Stop running batches after the MVM in progress."),
        _f("clear_counters", 2, 1, doc="Zero every core's event counters."),
        _f("cell_program", 3, 1, doc="Apply one CELL_PULSE to the cell at CELL_ADDR (its core must be enabled)."),
        _f("cell_read", 4, 1, doc="Read the cell at CELL_ADDR into CELL_RESULT (its core must be enabled)."),
        _f("wv_start", 5, 1, doc="Write-verify the cells of WV_CELLS on rows CELL_ADDR.row .. + WV_LIMITS.rows - 1 "
                                 "of the core in CELL_ADDR (it must be enabled and idle)."))),
    Register("STATUS", 0x009, A.RO, "Chip status word.", (
        _f("busy", 0, 1, doc="A batch is running on at least one core."),
        _f("done", 1, 1, doc="The last batch finished (cleared by CTRL.start)."),
        _f("cell_busy", 2, 1, doc="A cell program, read or write-verify operation is in progress."),
        _f("cell_done", 3, 1, doc="The last cell operation finished (cleared by the next one)."),
        _f("config_error", 4, 1, doc="The last command was refused: CTRL.start with a bad MVM_CONFIG, "
                                     "BATCH or selection, a cell command to a disabled core, or a "
                                     "write-verify operation outside the array or buffer."))),
    Register("CORE_ENABLE", 0x00A, A.RW,
             "Core enables (power gating), 32 cores per word. A disabled core ignores triggers, "
             "spends no events and keeps its state.", (
                 _f("mask", 0, 32, 0, "cores", "Bit i enables core 32·word + i."),),
             count=2, stride=1, index="word"),
    Register("CORE_SELECT", 0x00C, A.RW,
             "Cores that take the next CTRL.start and broadcast buffer writes, 32 per word.", (
                 _f("mask", 0, 32, 0, "cores", "Bit i selects core 32·word + i."),),
             count=2, stride=1, index="word"),

    # -- MVM operation --------------------------------------------------------------------------
    Register("MVM_CONFIG", 0x010, A.RW, "Operating mode of the next batch.", (
        _f("direction", 0, 2, 0, doc="Which lines carry the inputs.", enum=Direction),
        _f("input_source", 2, 2, 0, doc="Input buffer (bit-serial) or ternary register.", enum=InputSource),
        _f("input_bits", 4, 4, 1, "bits", "Input precision: unsigned 1-8, signed 2-8."),
        _f("input_signed", 8, 1, 0, doc="Inputs are sign-magnitude."),
        _f("conversion", 9, 2, 0, doc="Output conversion.", enum=Conversion),
        _f("output_bits", 11, 4, 8, "bits", "SAR precision including the sign, 1-8."),
        _f("activation", 15, 2, 0, doc="Activation applied by the conversion.", enum=Activation),
        _f("stochastic", 17, 1, 0, doc="Inject LFSR noise before every comparison."))),
    Register("MVM_TIMING", 0x011, A.RW, "Integration timing.", (
        _f("pulse_multiplier", 0, 8, 1, "pulses",
           "Integrations per unit of bit weight: bit k is integrated pulse_multiplier·2^k times."),)),
    Register("NEURON_CONFIG", 0x012, A.RW, "Neuron conversion settings.", (
        _f("max_steps", 0, 7, 100, "steps", "Charge-decrement steps at most (1-127)."),
        _f("clip", 8, 7, 127, "steps", "Clipped-ReLU ceiling on the output magnitude."))),
    Register("BATCH", 0x013, A.RW, "Batch size.", (
        _f("count", 0, 13, 1, "vectors", "MVMs per CTRL.start, 1..batch_depth."),
        _f("recurrent_steps", 16, 8, 1, "steps", "Recurrent mode: MVMs chained per vector."))),
    Register("LFSR_SEED", 0x018, A.RW, "Seed of the stochastic-neuron LFSRs (loaded on CTRL.start).", (
        _f("seed", 0, 32, 0xACE1, doc="Non-zero seed; each core mixes in its index."),)),
    Register("STOCHASTIC", 0x019, A.RW, "Stochastic-neuron noise.", (
        _f("noise_uV", 0, 14, 400, "µV", "Largest injected noise charge, referred to the integrator."),)),

    # -- single-cell access (write-verify) -------------------------------------------------------
    Register("CELL_ADDR", 0x020, A.RW, "Cell for CTRL.cell_program and CTRL.cell_read.", (
        _f("core", 0, 6, 0, "core", "Core index."),
        _f("row", 6, 12, 0, "line", "Bitline / wordline index."),
        _f("col", 18, 12, 0, "line", "Source line index."))),
    Register("CELL_PULSE", 0x021, A.RW, "Programming pulse (docs/chip.md §3).", (
        _f("polarity", 0, 1, 0, doc="SET or RESET.", enum=PulsePolarity),
        _f("amplitude_mV", 4, 12, 1200, "mV", "Pulse amplitude on the bitline (SET) or source line (RESET)."),
        _f("gate_mV", 16, 13, 2500, "mV", "Wordline voltage: SET compliance, or 5 V for RESET."))),
    Register("CELL_TIMING", 0x022, A.RW, "Programming pulse width and read voltage.", (
        _f("width_ns", 0, 16, 1000, "ns", "Programming pulse width."),
        _f("read_mV", 16, 12, 150, "mV", "Read voltage across the cell."))),
    Register("CELL_RESULT", 0x023, A.RO, "Result of the last CTRL.cell_read.", (
        _f("g_10nS", 0, 16, 0, "10 nS", "Measured conductance, 10 nS per LSB (saturates at 655.35 µS)."),
        _f("valid", 16, 1, 0, doc="A read has completed since reset."))),

    # -- the on-chip write-verify engine (docs/chip.md §3) ---------------------------------------
    Register("WV_SET", 0x024, A.RW, "SET ramp of the write-verify engine.", (
        _f("set_start_mV", 0, 12, _WV.mV(_WV.set_start_V), "mV", "First SET amplitude of a round."),
        _f("set_stop_mV", 12, 12, _WV.mV(_WV.set_stop_V), "mV", "Top SET amplitude."),
        _f("step_mV", 24, 8, _WV.mV(_WV.step_V), "mV", "Amplitude increment per pulse within a round."))),
    Register("WV_RESET", 0x025, A.RW, "RESET ramp of the write-verify engine.", (
        _f("reset_start_mV", 0, 12, _WV.mV(_WV.reset_start_V), "mV", "First RESET amplitude of a round."),
        _f("reset_stop_mV", 12, 12, _WV.mV(_WV.reset_stop_V), "mV", "Top RESET amplitude."))),
    Register("WV_GATE", 0x026, A.RW, "Wordline voltages of the write-verify engine.", (
        _f("set_gate_mV", 0, 13, _WV.mV(_WV.set_gate_V), "mV", "Wordline during SET (the compliance)."),
        _f("reset_gate_mV", 13, 13, _WV.mV(_WV.reset_gate_V), "mV", "Wordline during RESET."))),
    Register("WV_LIMITS", 0x027, A.RW, "Budgets and size of a write-verify operation.", (
        _f("max_rounds", 0, 8, _WV.max_rounds, "rounds", "SET or RESET rounds per cell at most."),
        _f("max_top_pulses", 8, 8, _WV.max_pulses_per_round, "pulses",
           "Pulses at the top amplitude after which a round fails its cell."),
        _f("confirm_reads", 16, 4, _WV.confirm_reads, "reads", "Reads inside the window that accept a cell."),
        _f("rows", 20, 7, 1, "rows", "Rows of one operation, from CELL_ADDR.row (1..BUFFERS.wv_rows)."))),
    Register("WV_OFF", 0x028, A.RW, "Write-verify of \"off\" cells (targets below g_off).", (
        _f("off_start_mV", 0, 12, _WV.mV(_WV.off_reset_start_V), "mV", "First RESET amplitude for off targets."),
        _f("g_off_10nS", 12, 16, round(_WV.g_off_uS * 100), "10 nS",
           "Targets below this are off: accepted when a read is at most this."))),

    # -- per-core registers ---------------------------------------------------------------------
    Register("CORE_BIAS", 0x100, A.RW, "Input-driver amplitudes of one core (calibrated per core).", (
        _f("v_pos_mV", 0, 10, 100, "mV", "Input line voltage above V_ref for a +1 pulse."),
        _f("v_neg_mV", 10, 10, 100, "mV", "Input line voltage below V_ref for a -1 pulse."))
        , count=64, stride=0x10, index="core"),
    Register("CORE_NEURON", 0x101, A.RW, "Neuron charge packet of one core.", (
        _f("packet_uV", 0, 14, 100, "µV", "Charge-decrement packet, referred to the integrator voltage."),),
        count=64, stride=0x10, index="core"),
    Register("CORE_STATUS", 0x102, A.RO, "State of one core.", (
        _f("busy", 0, 1, doc="Running a batch."),
        _f("enabled", 1, 1, doc="Enabled in CORE_ENABLE."),
        _f("batch_index", 16, 13, doc="Vector of the batch in progress (or the count when done)."))
        , count=64, stride=0x10, index="core"),
    Register("COUNT_MVM", 0x108, A.RO, "MVMs completed.", (
        _f("count", 0, 32, 0, "MVMs", "Wraps at 2^32."),), count=64, stride=0x10, index="core"),
    Register("COUNT_PULSE", 0x109, A.RO, "Input pulses integrated (each drives every input line once).", (
        _f("count", 0, 32, 0, "pulses", "Wraps at 2^32."),), count=64, stride=0x10, index="core"),
    Register("COUNT_COMPARE", 0x10A, A.RO, "Neuron comparisons (all output neurons at once).", (
        _f("count", 0, 32, 0, "compares", "Wraps at 2^32."),), count=64, stride=0x10, index="core"),
    Register("COUNT_STEP", 0x10B, A.RO, "Charge-decrement or SAR steps (all active neurons at once).", (
        _f("count", 0, 32, 0, "steps", "Wraps at 2^32."),), count=64, stride=0x10, index="core"),
    Register("COUNT_PROGRAM", 0x10C, A.RO, "SET and RESET pulses applied.", (
        _f("count", 0, 32, 0, "pulses", "Wraps at 2^32."),), count=64, stride=0x10, index="core"),
    Register("COUNT_READ", 0x10D, A.RO, "Single-cell reads.", (
        _f("count", 0, 32, 0, "reads", "Wraps at 2^32."),), count=64, stride=0x10, index="core"),
    Register("COUNT_BUSY", 0x10E, A.RO, "Clock cycles spent running batches.", (
        _f("count", 0, 32, 0, "cycles", "Wraps at 2^32."),), count=64, stride=0x10, index="core"),
))

BUFFERS = Table((b.name, b) for b in (
    Buffer("INPUT", Space.INPUT, A.RW,
           "Input vectors of a batch, as bit-planes.",
           "word ((p·batch_depth) + v)·words_per_line_vector + w holds bit p of the input codes of lines "
           "32w..32w+31 of vector v (bit i of the word = line 32w+i): plane-major, so a batch of "
           "b-bit inputs is b bursts. Planes 0..input_bits_max-1 are the magnitude bits, least "
           "significant first; plane input_bits_max is the sign (1 = negative).",
           "batch_depth * input_planes * words_per_line_vector"),
    Buffer("OUTPUT", Space.OUTPUT, A.RO,
           "Neuron outputs of a batch, one byte per output line, as bit-planes.",
           "word ((v·8) + k)·words_per_line_vector + w holds bit k of the output bytes of lines "
           "32w..32w+31 of vector v (bit i of the word = line 32w+i). DECREMENT byte: bit 7 sign "
           "(1 = negative), bits 6:0 steps; value (steps - 1/2)·(±1) packets. SAR byte: offset binary "
           "code c of output_bits bits; value (c - (2^n - 1)/2) packets. SIGN byte: bit 7 only. "
           "With ReLU, negative outputs read 0.",
           "batch_depth * 8 * words_per_line_vector"),
    Buffer("BL_REG", Space.BL_REG, A.RW,
           "The bitline-side ternary register (drives BLs forward, latches BL neurons backward).",
           "two bit-planes of words_per_line_vector words each: words 0.. hold the non-zero plane, "
           "words words_per_line_vector.. the negative plane (bit i of word w is line 32w+i); "
           "entry = non-zero ? (negative ? -1 : +1) : 0.",
           "2 * words_per_line_vector"),
    Buffer("SL_REG", Space.SL_REG, A.RW,
           "The source-line-side ternary register (latches SL neurons forward, drives SLs backward).",
           "As BL_REG.",
           "2 * words_per_line_vector"),
    Buffer("NEURON_MASK", Space.NEURON_MASK, A.RW,
           "Neurons tracked by the conversion; untracked neurons count as done from the start: they "
           "read 0 and their entry of the output-side register keeps its value.",
           "bit i of word w is output line 32w+i; reset: all tracked.",
           "words_per_line_vector"),
    Buffer("POLARITY", Space.POLARITY, A.RW,
           "Input lines whose drive is inverted (the G- row of a differential pair is driven with -x).",
           "bit i of word w is input line 32w+i; reset: none inverted.",
           "words_per_line_vector"),
    Buffer("WV_CELLS", Space.WV_CELLS, A.RW,
           "Per-cell targets of the write-verify engine; the engine replaces each with its result.",
           "word r·cols + c is cell (CELL_ADDR.row + r, c). Written by the host, a target: bits 15:0 "
           "g_10nS, bits 23:16 tol_10nS (window g ± tol, or [0, WV_OFF.g_off_10nS] below g_off), "
           "bit 31 pending (1 = program this cell). After CTRL.wv_start, each pending word becomes "
           "a result: bits 15:0 the last read (10 nS), bits 27:16 pulses applied (saturating), "
           "bits 29:28 a WvStatus, bit 31 = 0. Words without bit 31 are left as they are.",
           "wv_rows * cols"),
))


#: The identification block: read-only registers whose fields are computed from the ChipConfig.
#: Register -> field -> Python expression over ``config`` (a register listed without fields
#: reads its reset value; a register listed with fields lists every one of them).
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
        "wv_rows": "config.wv_rows",
    },
    "FEATURES": {
        "conv_sign": 'int("sign" in config.conversions)',
        "conv_decrement": 'int("decrement" in config.conversions)',
        "conv_sar": 'int("sar" in config.conversions)',
        "backward": "int(config.backward)",
        "recurrent": "int(config.recurrent)",
        "stochastic": "int(config.stochastic_neurons)",
        "clock_gating": "int(config.clock_gating)",
        "cell_access": "1",
        "wv_engine": "int(config.wv_engine)",
        "emulated_array": "int(config.emulated_array)",
        "event_counters": "int(config.event_counters)",
    },
    "CLOCK": {
        "freq_kHz": "round(config.clock_hz / 1000)",
    },
}
ID_REGISTERS = tuple(ID_SOURCES)

#: Registers that only a chip with the FEATURES bit has: a chip built without it (ChipConfig)
#: has no such register (it reads 0 and ignores writes).
FEATURE_REGISTERS = {
    "stochastic": ("LFSR_SEED", "STOCHASTIC"),
    "wv_engine": ("WV_SET", "WV_RESET", "WV_GATE", "WV_LIMITS", "WV_OFF"),
    "event_counters": ("COUNT_MVM", "COUNT_PULSE", "COUNT_COMPARE", "COUNT_STEP", "COUNT_PROGRAM", "COUNT_READ",
                       "COUNT_BUSY"),
}


def absent_registers(config) -> frozenset:
    """The registers a chip built from ``config`` lacks (FEATURE_REGISTERS of its 0 features)."""
    feat = unpack("FEATURES", identification(config)["FEATURES"])
    return frozenset(r for f, names in FEATURE_REGISTERS.items() if not feat[f] for r in names)


def register(name: str) -> Register:
    try:
        return REGISTERS[name]
    except KeyError:
        raise KeyError(f"no register named {name!r}") from None


def buffer(name: str) -> Buffer:
    try:
        return BUFFERS[name]
    except KeyError:
        raise KeyError(f"no buffer named {name!r}") from None


def address(space: int, core: int, offset: int) -> int:
    """Bus address of a word: space, core and offset packed as described in the module doc."""
    if not 0 <= space < 16:
        raise ValueError(f"space {space} out of range 0..15")
    if not 0 <= core < 64:
        raise ValueError(f"core {core} out of range 0..63")
    if not 0 <= offset < (1 << OFFSET_BITS):
        raise ValueError(f"offset {offset} out of range")
    return (int(space) << SPACE_SHIFT) | (int(core) << CORE_SHIFT) | int(offset)


def split_address(addr: int) -> tuple[int, int, int]:
    """(space, core, offset) of a bus address: the inverse of :func:`address`."""
    addr = int(addr)
    return ((addr >> SPACE_SHIFT) & 0xF, (addr >> CORE_SHIFT) & 0x3F, addr & ((1 << OFFSET_BITS) - 1))


def _reg(reg) -> Register:
    return reg if isinstance(reg, Register) else register(reg)


def pack(reg_name, **fields) -> int:
    """The word of register ``reg_name`` with ``fields`` set; fields not given keep their reset."""
    reg = _reg(reg_name)
    word = reg.reset
    for name, value in fields.items():
        f = reg[name]
        word = (word & ~f.mask) | f.put(value)
    return word


def unpack(reg_name, value: int) -> dict:
    """The fields of a word of register ``reg_name`` (enum fields as their enum when valid)."""
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


def identification(config) -> dict[str, int]:
    """The identification registers' words for a ChipConfig (register name -> word)."""
    env = {"__builtins__": {"int": int, "round": round}}
    return {name: pack(name, **{f: eval(expr, env, {"config": config}) for f, expr in src.items()})
            for name, src in ID_SOURCES.items()}


def config_from_identification(words: dict[str, int]):
    """The ChipConfig that identification words describe (the inverse of :func:`identification`).

    Raises ValueError when CHIP_ID is not a NeuRRAM chip's or the major version differs.
    """
    magic = words["CHIP_ID"]
    if magic != CHIP_ID_MAGIC:
        raise ValueError(f"not a NeuRRAM chip: CHIP_ID reads 0x{magic:08x}, expected 0x{CHIP_ID_MAGIC:08x}")
    ver = unpack("VERSION", words["VERSION"])
    if ver["major"] != VERSION[0]:
        raise ValueError(f"chip version {ver['major']}.{ver['minor']}.{ver['patch']} is not supported by "
                         f"this software (major version {VERSION[0]})")
    geo, prec = unpack("GEOMETRY", words["GEOMETRY"]), unpack("PRECISION", words["PRECISION"])
    feat = unpack("FEATURES", words["FEATURES"])
    return ChipConfig(
        core_grid=(geo["core_rows"], geo["core_cols"]), rows=geo["rows"], cols=geo["cols"],
        input_bits_max=prec["input_bits_max"], output_bits_max=prec["output_bits_max"],
        max_steps_limit=prec["max_steps_limit"], pulse_multiplier_max=prec["pulse_multiplier_max"],
        batch_depth=unpack("BUFFERS", words["BUFFERS"])["batch_depth"],
        wv_rows=max(1, unpack("BUFFERS", words["BUFFERS"])["wv_rows"]),
        conversions=tuple(c for c in ("sign", "decrement", "sar") if feat[f"conv_{c}"]),
        stochastic_neurons=bool(feat["stochastic"]), clock_gating=bool(feat["clock_gating"]),
        backward=bool(feat["backward"]), recurrent=bool(feat["recurrent"]), wv_engine=bool(feat["wv_engine"]),
        event_counters=bool(feat["event_counters"]),
        emulated_array=bool(feat["emulated_array"]),
        clock_hz=unpack("CLOCK", words["CLOCK"])["freq_kHz"] * 1000.0)


#: Names an Amaranth view reserves: a field cannot use them (the RTL accesses fields by name).
_VIEW_RESERVED = {"as_value", "as_bits", "shape", "eq", "format"}


def _check():
    """The invariants the register block, the fast model and the generators rely on."""
    assert CORE_STRIDE & (CORE_STRIDE - 1) == 0 and CORE_BASE % CORE_STRIDE == 0
    assert CORE_BASE + CORE_STRIDE * CORE_COUNT <= 1 << 16, "registers must fit the 16-bit register bus"
    seen = {}
    for r in REGISTERS.values():
        assert r.access in (Access.RO, Access.RW, Access.WS), r.name
        used = 0
        for f in r.fields:
            # Fields fit in 32 bits, do not overlap, reset to a value they hold (a member of their enum).
            assert f.name.isidentifier() and not keyword.iskeyword(f.name), (r.name, f.name)
            assert not f.name.startswith("_") and f.name not in _VIEW_RESERVED, (r.name, f.name)
            assert f.msb < 32 and not (used & f.mask) and f.reset <= f.max, (r.name, f.name)
            if f.enum is not None:
                assert f.enum in ENUMS and f.enum.width == f.width, (r.name, f.name)
                f.enum(f.reset)
            used |= f.mask
        for i in range(r.count):               # addresses do not collide
            a = r.address(i)
            assert a not in seen, (r.name, i, seen.get(a))
            seen[a] = (r.name, i)
        if r.per_core:
            assert r.count == CORE_COUNT and r.stride == CORE_STRIDE
            assert CORE_BASE <= r.offset < CORE_BASE + CORE_STRIDE, r.name
        else:
            assert r.address(r.count - 1) < CORE_BASE, f"{r.name} overlaps the per-core block"
            assert r.index == ("word" if r.count > 1 else ""), r.name
            assert r.index != "word" or (r.count * 32 >= 64 and r.stride == 1), r.name
        if r.name in ID_SOURCES:
            assert r.access == Access.RO and r.count == 1, r.name
            assert not ID_SOURCES[r.name] or set(ID_SOURCES[r.name]) == {f.name for f in r.fields}, r.name
    for b in BUFFERS.values():
        assert b.name == b.space.name, b.name


_check()
