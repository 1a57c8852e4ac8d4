"""The register map, described once.

Everything else is generated from this file and committed (``neurram regmap --write``):

* ``hdl/registers.py``            the Amaranth register block (layouts, enums, ``RegisterFile``)
* ``firmware/regs.py``            the host driver's constants
* ``firmware/include/neurram_regs.h``  a C header
* ``docs/registers.md``           the Markdown reference
* ``docs/registers.json``         a machine-readable export

A test regenerates each file and fails when a committed copy is stale.

Addressing. The chip's internal bus carries 32-bit words at 32-bit word addresses::

    address[31:28]  space   0 = registers, otherwise one of the buffers in BUFFERS
    address[27:22]  core    core index for buffer spaces; 63 = every core in CORE_SELECT (writes)
    address[21:0]   offset  word offset inside the register space or inside one core's buffer

Register addresses below are word offsets in space 0. Per-core registers repeat with a stride.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Access", "EnumValue", "Enum", "Field", "Register", "Buffer",
    "ENUMS", "REGISTERS", "BUFFERS", "SPACE_SHIFT", "CORE_SHIFT", "OFFSET_BITS",
    "BROADCAST_CORE", "CHIP_ID_MAGIC", "VERSION", "register", "buffer", "address",
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
VERSION = (0, 1, 0)


class Access:
    RO = "RO"  # read-only: the hardware drives it
    RW = "RW"  # read-write: configuration held in a register
    WS = "WS"  # write-strobe: writing 1 pulses the field for one cycle; reads return 0


@dataclass(frozen=True)
class EnumValue:
    name: str
    value: int
    doc: str


@dataclass(frozen=True)
class Enum:
    name: str
    width: int
    values: tuple[EnumValue, ...]
    doc: str


@dataclass(frozen=True)
class Field:
    name: str
    lsb: int
    width: int
    reset: int = 0
    unit: str = ""
    doc: str = ""
    enum: str | None = None  # name of an Enum in ENUMS

    @property
    def msb(self) -> int:
        return self.lsb + self.width - 1

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.lsb


@dataclass(frozen=True)
class Register:
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
        v = 0
        for f in self.fields:
            v |= (f.reset << f.lsb)
        return v

    def address(self, i: int = 0) -> int:
        if not 0 <= i < self.count:
            raise IndexError(f"{self.name}[{i}] out of range 0..{self.count - 1}")
        return self.offset + i * self.stride


@dataclass(frozen=True)
class Buffer:
    name: str
    space: int
    access: str
    doc: str
    layout: str
    #: Words per core as a formula over ChipConfig attributes (evaluated by ``buffer_words``).
    words: str


def _e(name, width, doc, *values):
    return Enum(name, width, tuple(EnumValue(*v) for v in values), doc)


ENUMS: tuple[Enum, ...] = (
    _e("Direction", 2, "Which lines carry the inputs of an MVM (NEURRAM.md §2, TNSA).",
       ("FORWARD", 0, "inputs on bitlines, outputs sensed on source lines (y = Wᵀx)"),
       ("BACKWARD", 1, "inputs on source lines, outputs sensed on bitlines (y = Wx)"),
       ("RECURRENT", 2, "forward, then each output written back as the core's next input")),
    _e("InputSource", 2, "Where the sequencer takes the input vector from.",
       ("BUFFER", 0, "bit-serial from the core's input buffer (bit-planes)"),
       ("TERNARY", 1, "the input-side ternary register as loaded, one phase")),
    _e("Conversion", 2, "How a neuron converts its integrated charge to a digital output.",
       ("SIGN", 0, "comparator only: 1-bit output"),
       ("DECREMENT", 1, "initial sign, then charge-decrement steps until the comparator flips"),
       ("SAR", 2, "successive approximation, the charge step halved every bit")),
    _e("Activation", 2, "Activation applied by the conversion.",
       ("NONE", 0, "signed output"),
       ("RELU", 1, "negative outputs become 0"),
       ("CLIPPED_RELU", 2, "ReLU, then magnitudes clipped at NEURON_CONFIG.clip")),
    _e("PulsePolarity", 1, "Kind of programming pulse (NEURRAM.md §3).",
       ("SET", 0, "bitline pulse, wordline at the compliance voltage: conductance rises"),
       ("RESET", 1, "source-line pulse, wordline at 5 V: conductance falls")),
)

_ENUMS_BY_NAME = {e.name: e for e in ENUMS}


def _f(name, lsb, width, reset=0, unit="", doc="", enum=None):
    return Field(name, lsb, width, reset, unit, doc, enum)


A = Access

REGISTERS: tuple[Register, ...] = (
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
        _f("batch_depth", 0, 13, 16, "vectors", "Input and output buffer depth per core."),)),
    Register("FEATURES", 0x005, A.RO, "Supported modes, one bit each.", (
        _f("conv_sign", 0, 1, 1, doc="Sign conversion."),
        _f("conv_decrement", 1, 1, 1, doc="Charge-decrement conversion."),
        _f("conv_sar", 2, 1, 1, doc="SAR conversion."),
        _f("backward", 3, 1, 1, doc="Backward MVMs (inputs on source lines)."),
        _f("recurrent", 4, 1, 1, doc="Recurrent MVMs (outputs fed back as inputs)."),
        _f("stochastic", 5, 1, 1, doc="LFSR-driven stochastic neurons."),
        _f("clock_gating", 6, 1, 1, doc="Idle cores have their clock gated."),
        _f("cell_access", 7, 1, 1, doc="Single-cell program and read for write-verify."))),
    Register("CLOCK", 0x006, A.RO, "Digital clock frequency.", (
        _f("freq_kHz", 0, 32, 100000, "kHz", "Clock frequency the design was built for."),)),

    # -- control and status --------------------------------------------------------------------
    Register("CTRL", 0x008, A.WS, "Commands; each written 1 pulses once.", (
        _f("start", 0, 1, doc="Run a batch of BATCH.count MVMs on every enabled core in CORE_SELECT."),
        _f("abort", 1, 1, doc="Stop running batches after the MVM in progress."),
        _f("clear_counters", 2, 1, doc="Zero every core's event counters."),
        _f("cell_program", 3, 1, doc="Apply one CELL_PULSE to the cell at CELL_ADDR (its core must be enabled)."),
        _f("cell_read", 4, 1, doc="Read the cell at CELL_ADDR into CELL_RESULT (its core must be enabled)."))),
    Register("STATUS", 0x009, A.RO, "Chip status word.", (
        _f("busy", 0, 1, doc="A batch is running on at least one core."),
        _f("done", 1, 1, doc="The last batch finished (cleared by CTRL.start)."),
        _f("cell_busy", 2, 1, doc="A cell program or read is in progress."),
        _f("cell_done", 3, 1, doc="The last cell operation finished (cleared by the next one)."),
        _f("config_error", 4, 1, doc="The last command was refused: CTRL.start with a bad MVM_CONFIG, "
                                     "BATCH or selection, or a cell command to a disabled core."))),
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
        _f("direction", 0, 2, 0, doc="Which lines carry the inputs.", enum="Direction"),
        _f("input_source", 2, 2, 0, doc="Input buffer (bit-serial) or ternary register.", enum="InputSource"),
        _f("input_bits", 4, 4, 1, "bits", "Input precision: unsigned 1-8, signed 2-8."),
        _f("input_signed", 8, 1, 0, doc="Inputs are sign-magnitude."),
        _f("conversion", 9, 2, 0, doc="Output conversion.", enum="Conversion"),
        _f("output_bits", 11, 4, 8, "bits", "SAR precision including the sign, 1-8."),
        _f("activation", 15, 2, 0, doc="Activation applied by the conversion.", enum="Activation"),
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
    Register("CELL_PULSE", 0x021, A.RW, "Programming pulse (NEURRAM.md §3).", (
        _f("polarity", 0, 1, 0, doc="SET or RESET.", enum="PulsePolarity"),
        _f("amplitude_mV", 4, 12, 1200, "mV", "Pulse amplitude on the bitline (SET) or source line (RESET)."),
        _f("gate_mV", 16, 13, 2500, "mV", "Wordline voltage: SET compliance, or 5 V for RESET."))),
    Register("CELL_TIMING", 0x022, A.RW, "Programming pulse width and read voltage.", (
        _f("width_ns", 0, 16, 1000, "ns", "Programming pulse width."),
        _f("read_mV", 16, 12, 150, "mV", "Read voltage across the cell."))),
    Register("CELL_RESULT", 0x023, A.RO, "Result of the last CTRL.cell_read.", (
        _f("g_10nS", 0, 16, 0, "10 nS", "Measured conductance, 10 nS per LSB (saturates at 655.35 µS)."),
        _f("valid", 16, 1, 0, doc="A read has completed since reset."))),

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
)

BUFFERS: tuple[Buffer, ...] = (
    Buffer("INPUT", 1, A.RW,
           "Input vectors of a batch, as bit-planes.",
           "word ((p·batch_depth) + v)·words_per_line_vector + w holds bit p of the input codes of lines "
           "32w..32w+31 of vector v (bit i of the word = line 32w+i): plane-major, so a batch of "
           "b-bit inputs is b bursts. Planes 0..input_bits_max-1 are the magnitude bits, least "
           "significant first; plane input_bits_max is the sign (1 = negative).",
           "batch_depth * input_planes * words_per_line_vector"),
    Buffer("OUTPUT", 2, A.RO,
           "Neuron outputs of a batch, one byte per output line, as bit-planes.",
           "word ((v·8) + k)·words_per_line_vector + w holds bit k of the output bytes of lines "
           "32w..32w+31 of vector v (bit i of the word = line 32w+i). DECREMENT byte: bit 7 sign "
           "(1 = negative), bits 6:0 steps; value (steps - 1/2)·(±1) packets. SAR byte: offset binary "
           "code c of output_bits bits; value (c - (2^n - 1)/2) packets. SIGN byte: bit 7 only. "
           "With ReLU, negative outputs read 0.",
           "batch_depth * 8 * words_per_line_vector"),
    Buffer("BL_REG", 3, A.RW,
           "The bitline-side ternary register (drives BLs forward, latches BL neurons backward).",
           "two bit-planes of words_per_line_vector words each: words 0.. hold the non-zero plane, "
           "words words_per_line_vector.. the negative plane (bit i of word w is line 32w+i); "
           "entry = non-zero ? (negative ? -1 : +1) : 0.",
           "2 * words_per_line_vector"),
    Buffer("SL_REG", 4, A.RW,
           "The source-line-side ternary register (latches SL neurons forward, drives SLs backward).",
           "As BL_REG.",
           "2 * words_per_line_vector"),
    Buffer("NEURON_MASK", 5, A.RW,
           "Neurons tracked by the conversion; untracked neurons count as done from the start: they "
           "read 0 and their entry of the output-side register keeps its value.",
           "bit i of word w is output line 32w+i; reset: all tracked.",
           "words_per_line_vector"),
    Buffer("POLARITY", 6, A.RW,
           "Input lines whose drive is inverted (the G- row of a differential pair is driven with -x).",
           "bit i of word w is input line 32w+i; reset: none inverted.",
           "words_per_line_vector"),
)


def register(name: str) -> Register:
    for r in REGISTERS:
        if r.name == name:
            return r
    raise KeyError(f"no register named {name!r}")


def buffer(name: str) -> Buffer:
    for b in BUFFERS:
        if b.name == name:
            return b
    raise KeyError(f"no buffer named {name!r}")


def enum(name: str) -> Enum:
    return _ENUMS_BY_NAME[name]


def buffer_words(buf: Buffer, config) -> int:
    """Words per core of a buffer for a given ChipConfig."""
    env = {k: getattr(config, k) for k in (
        "batch_depth", "input_planes", "words_per_line_vector", "words_per_ternary_vector",
        )}
    return int(eval(buf.words, {"__builtins__": {}}, env))


def address(space: int, core: int, offset: int) -> int:
    """Bus address of a word: space, core and offset packed as described in the module doc."""
    if not 0 <= space < 16:
        raise ValueError(f"space {space} out of range 0..15")
    if not 0 <= core < 64:
        raise ValueError(f"core {core} out of range 0..63")
    if not 0 <= offset < (1 << OFFSET_BITS):
        raise ValueError(f"offset {offset} out of range")
    return (space << SPACE_SHIFT) | (core << CORE_SHIFT) | offset


def _check():
    # Fields must fit in 32 bits and not overlap; register addresses must not collide.
    seen = {}
    for r in REGISTERS:
        used = 0
        for f in r.fields:
            assert f.msb < 32, (r.name, f.name)
            assert not (used & f.mask), (r.name, f.name)
            assert f.reset < (1 << f.width), (r.name, f.name)
            if f.enum:
                assert f.enum in _ENUMS_BY_NAME, f.enum
            used |= f.mask
        for i in range(r.count):
            a = r.address(i)
            assert a not in seen, (r.name, i, seen.get(a))
            seen[a] = (r.name, i)


_check()
