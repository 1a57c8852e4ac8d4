# Generated from hdl/regmap.py by hdl/regmap_gen.py. Do not edit: run `neurram regmap --write`.
"""The register block of the NeuRRAM chip: enums, register layouts, addresses, ``RegisterFile``.

Register addresses are 32-bit word offsets in bus space 0; the register bus carries the low 16
bits of the chip bus address. Per-core registers sit at ``0x100 + 0x10·core + k``.
"""

# No `from __future__ import annotations`: data.Struct needs the annotations evaluated.

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out

from neurram.config import ChipConfig

__all__ = [
    "SPACE_SHIFT", "CORE_SHIFT", "OFFSET_BITS", "BROADCAST_CORE", "CHIP_ID_MAGIC", "VERSION",
    "CORE_BASE", "CORE_STRIDE", "CORE_COUNT", "Space", "Direction", "InputSource", "Conversion",
    "Activation", "PulsePolarity", "ChipId", "Version", "Geometry", "Precision", "Buffers",
    "Features", "Clock", "Ctrl", "Status", "CoreEnable", "CoreSelect", "MvmConfig", "MvmTiming",
    "NeuronConfig", "Batch", "LfsrSeed", "Stochastic", "CellAddr", "CellPulse", "CellTiming",
    "CellResult", "CoreBias", "CoreNeuron", "CoreStatus", "CountMvm", "CountPulse", "CountCompare",
    "CountStep", "CountProgram", "CountRead", "CountBusy", "identification", "RegisterBus",
    "RegisterFile",
]

SPACE_SHIFT = 28
CORE_SHIFT = 22
OFFSET_BITS = 22
BROADCAST_CORE = 63
CHIP_ID_MAGIC = 0x4E524D31
VERSION = (0, 1, 0)

#: Per-core register block: register k of core c is at CORE_BASE + CORE_STRIDE·c + k.
CORE_BASE = 0x100
CORE_STRIDE = 0x10
CORE_COUNT = 64


class Space(enum.Enum, shape=4):
    """Address space of a bus address (bits 31:28)."""

    REGISTERS = 0
    INPUT = 1
    OUTPUT = 2
    BL_REG = 3
    SL_REG = 4
    NEURON_MASK = 5
    POLARITY = 6


class Direction(enum.Enum, shape=2):
    """Which lines carry the inputs of an MVM (NEURRAM.md §2, TNSA)."""

    #: inputs on bitlines, outputs sensed on source lines (y = Wᵀx)
    FORWARD = 0

    #: inputs on source lines, outputs sensed on bitlines (y = Wx)
    BACKWARD = 1

    #: forward, then each output written back as the core's next input
    RECURRENT = 2


class InputSource(enum.Enum, shape=2):
    """Where the sequencer takes the input vector from."""

    #: bit-serial from the core's input buffer (bit-planes)
    BUFFER = 0

    #: the input-side ternary register as loaded, one phase
    TERNARY = 1


class Conversion(enum.Enum, shape=2):
    """How a neuron converts its integrated charge to a digital output."""

    #: comparator only: 1-bit output
    SIGN = 0

    #: initial sign, then charge-decrement steps until the comparator flips
    DECREMENT = 1

    #: successive approximation, the charge step halved every bit
    SAR = 2


class Activation(enum.Enum, shape=2):
    """Activation applied by the conversion."""

    #: signed output
    NONE = 0

    #: negative outputs become 0
    RELU = 1

    #: ReLU, then magnitudes clipped at NEURON_CONFIG.clip
    CLIPPED_RELU = 2


class PulsePolarity(enum.Enum, shape=1):
    """Kind of programming pulse (NEURRAM.md §3)."""

    #: bitline pulse, wordline at the compliance voltage: conductance rises
    SET = 0

    #: source-line pulse, wordline at 5 V: conductance falls
    RESET = 1


class ChipId(data.Struct):
    """CHIP_ID (RO, 0x000): Identifies a NeuRRAM-compatible chip."""

    magic: unsigned(32) = 0x4E524D31  # [31:0] ASCII "NRM1".


class Version(data.Struct):
    """VERSION (RO, 0x001): Version of the digital design."""

    patch: unsigned(8)      # [7:0] Patch version.
    minor: unsigned(8) = 1  # [15:8] Minor version.
    major: unsigned(8)      # [23:16] Major version.
    _pad24: unsigned(8)     # [31:24] reserved


class Geometry(data.Struct):
    """GEOMETRY (RO, 0x002): Core grid and array size (set by the ChipConfig)."""

    core_rows: unsigned(4) = 8  # [3:0] (cores) Core-rows in the grid.
    core_cols: unsigned(4) = 6  # [7:4] (cores) Core-columns in the grid.
    rows: unsigned(12) = 256    # [19:8] (lines) Bitlines (wordlines) per core array.
    cols: unsigned(12) = 256    # [31:20] (lines) Source lines per core array.


class Precision(data.Struct):
    """PRECISION (RO, 0x003): Precisions the neurons and sequencer support."""

    input_bits_max: unsigned(4) = 8          # [3:0] (bits) Largest bit-serial input precision.
    output_bits_max: unsigned(4) = 8         # [7:4] (bits) Largest SAR output precision, sign included.
    max_steps_limit: unsigned(7) = 127       # [14:8] (steps) Largest charge-decrement step count.
    _pad15: unsigned(1)                      # [15] reserved
    pulse_multiplier_max: unsigned(8) = 255  # [23:16] (pulses) Largest pulse multiplier.
    _pad24: unsigned(8)                      # [31:24] reserved


class Buffers(data.Struct):
    """BUFFERS (RO, 0x004): Batch buffer sizes."""

    batch_depth: unsigned(13) = 16  # [12:0] (vectors) Input and output buffer depth per core.
    _pad13: unsigned(19)            # [31:13] reserved


class Features(data.Struct):
    """FEATURES (RO, 0x005): Supported modes, one bit each."""

    conv_sign: unsigned(1) = 1       # [0] Sign conversion.
    conv_decrement: unsigned(1) = 1  # [1] Charge-decrement conversion.
    conv_sar: unsigned(1) = 1        # [2] SAR conversion.
    backward: unsigned(1) = 1        # [3] Backward MVMs (inputs on source lines).
    recurrent: unsigned(1) = 1       # [4] Recurrent MVMs (outputs fed back as inputs).
    stochastic: unsigned(1) = 1      # [5] LFSR-driven stochastic neurons.
    clock_gating: unsigned(1) = 1    # [6] Idle cores have their clock gated.
    cell_access: unsigned(1) = 1     # [7] Single-cell program and read for write-verify.
    _pad8: unsigned(24)              # [31:8] reserved


class Clock(data.Struct):
    """CLOCK (RO, 0x006): Digital clock frequency."""

    freq_kHz: unsigned(32) = 100000  # [31:0] (kHz) Clock frequency the design was built for.


class Ctrl(data.Struct):
    """CTRL (WS, 0x008): Commands; each written 1 pulses once."""

    start: unsigned(1)           # [0] Run a batch of BATCH.count MVMs on every enabled core in CORE_SELECT.
    abort: unsigned(1)           # [1] Stop running batches after the MVM in progress.
    clear_counters: unsigned(1)  # [2] Zero every core's event counters.
    cell_program: unsigned(1)    # [3] Apply one CELL_PULSE to the cell at CELL_ADDR (its core must be enabled).
    cell_read: unsigned(1)       # [4] Read the cell at CELL_ADDR into CELL_RESULT (its core must be enabled).
    _pad5: unsigned(27)          # [31:5] reserved


class Status(data.Struct):
    """STATUS (RO, 0x009): Chip status word."""

    busy: unsigned(1)          # [0] A batch is running on at least one core.
    done: unsigned(1)          # [1] The last batch finished (cleared by CTRL.start).
    cell_busy: unsigned(1)     # [2] A cell program or read is in progress.
    cell_done: unsigned(1)     # [3] The last cell operation finished (cleared by the next one).
    config_error: unsigned(1)  # [4] The last command was refused: CTRL.start with a bad MVM_CONFIG, BATCH or selection, or a cell command to a disabled core.
    _pad5: unsigned(27)        # [31:5] reserved


class CoreEnable(data.Struct):
    """CORE_ENABLE (RW, 0x00A + 0x1·word, 2 instances): Core enables (power gating), 32 cores per
    word. A disabled core ignores triggers, spends no events and keeps its state.
    """

    mask: unsigned(32)  # [31:0] (cores) Bit i enables core 32·word + i.


class CoreSelect(data.Struct):
    """CORE_SELECT (RW, 0x00C + 0x1·word, 2 instances): Cores that take the next CTRL.start and
    broadcast buffer writes, 32 per word.
    """

    mask: unsigned(32)  # [31:0] (cores) Bit i selects core 32·word + i.


class MvmConfig(data.Struct):
    """MVM_CONFIG (RW, 0x010): Operating mode of the next batch."""

    direction: Direction = Direction.FORWARD        # [1:0] Which lines carry the inputs.
    input_source: InputSource = InputSource.BUFFER  # [3:2] Input buffer (bit-serial) or ternary register.
    input_bits: unsigned(4) = 1                     # [7:4] (bits) Input precision: unsigned 1-8, signed 2-8.
    input_signed: unsigned(1)                       # [8] Inputs are sign-magnitude.
    conversion: Conversion = Conversion.SIGN        # [10:9] Output conversion.
    output_bits: unsigned(4) = 8                    # [14:11] (bits) SAR precision including the sign, 1-8.
    activation: Activation = Activation.NONE        # [16:15] Activation applied by the conversion.
    stochastic: unsigned(1)                         # [17] Inject LFSR noise before every comparison.
    _pad18: unsigned(14)                            # [31:18] reserved


class MvmTiming(data.Struct):
    """MVM_TIMING (RW, 0x011): Integration timing."""

    pulse_multiplier: unsigned(8) = 1  # [7:0] (pulses) Integrations per unit of bit weight: bit k is integrated pulse_multiplier·2^k times.
    _pad8: unsigned(24)                # [31:8] reserved


class NeuronConfig(data.Struct):
    """NEURON_CONFIG (RW, 0x012): Neuron conversion settings."""

    max_steps: unsigned(7) = 100  # [6:0] (steps) Charge-decrement steps at most (1-127).
    _pad7: unsigned(1)            # [7] reserved
    clip: unsigned(7) = 127       # [14:8] (steps) Clipped-ReLU ceiling on the output magnitude.
    _pad15: unsigned(17)          # [31:15] reserved


class Batch(data.Struct):
    """BATCH (RW, 0x013): Batch size."""

    count: unsigned(13) = 1           # [12:0] (vectors) MVMs per CTRL.start, 1..batch_depth.
    _pad13: unsigned(3)               # [15:13] reserved
    recurrent_steps: unsigned(8) = 1  # [23:16] (steps) Recurrent mode: MVMs chained per vector.
    _pad24: unsigned(8)               # [31:24] reserved


class LfsrSeed(data.Struct):
    """LFSR_SEED (RW, 0x018): Seed of the stochastic-neuron LFSRs (loaded on CTRL.start)."""

    seed: unsigned(32) = 0xACE1  # [31:0] Non-zero seed; each core mixes in its index.


class Stochastic(data.Struct):
    """STOCHASTIC (RW, 0x019): Stochastic-neuron noise."""

    noise_uV: unsigned(14) = 400  # [13:0] (µV) Largest injected noise charge, referred to the integrator.
    _pad14: unsigned(18)          # [31:14] reserved


class CellAddr(data.Struct):
    """CELL_ADDR (RW, 0x020): Cell for CTRL.cell_program and CTRL.cell_read."""

    core: unsigned(6)    # [5:0] (core) Core index.
    row: unsigned(12)    # [17:6] (line) Bitline / wordline index.
    col: unsigned(12)    # [29:18] (line) Source line index.
    _pad30: unsigned(2)  # [31:30] reserved


class CellPulse(data.Struct):
    """CELL_PULSE (RW, 0x021): Programming pulse (NEURRAM.md §3)."""

    polarity: PulsePolarity = PulsePolarity.SET  # [0] SET or RESET.
    _pad1: unsigned(3)                           # [3:1] reserved
    amplitude_mV: unsigned(12) = 1200            # [15:4] (mV) Pulse amplitude on the bitline (SET) or source line (RESET).
    gate_mV: unsigned(13) = 2500                 # [28:16] (mV) Wordline voltage: SET compliance, or 5 V for RESET.
    _pad29: unsigned(3)                          # [31:29] reserved


class CellTiming(data.Struct):
    """CELL_TIMING (RW, 0x022): Programming pulse width and read voltage."""

    width_ns: unsigned(16) = 1000  # [15:0] (ns) Programming pulse width.
    read_mV: unsigned(12) = 150    # [27:16] (mV) Read voltage across the cell.
    _pad28: unsigned(4)            # [31:28] reserved


class CellResult(data.Struct):
    """CELL_RESULT (RO, 0x023): Result of the last CTRL.cell_read."""

    g_10nS: unsigned(16)  # [15:0] (10 nS) Measured conductance, 10 nS per LSB (saturates at 655.35 µS).
    valid: unsigned(1)    # [16] A read has completed since reset.
    _pad17: unsigned(15)  # [31:17] reserved


class CoreBias(data.Struct):
    """CORE_BIAS (RW, 0x100 + 0x10·core, 64 instances): Input-driver amplitudes of one core
    (calibrated per core).
    """

    v_pos_mV: unsigned(10) = 100  # [9:0] (mV) Input line voltage above V_ref for a +1 pulse.
    v_neg_mV: unsigned(10) = 100  # [19:10] (mV) Input line voltage below V_ref for a -1 pulse.
    _pad20: unsigned(12)          # [31:20] reserved


class CoreNeuron(data.Struct):
    """CORE_NEURON (RW, 0x101 + 0x10·core, 64 instances): Neuron charge packet of one core."""

    packet_uV: unsigned(14) = 100  # [13:0] (µV) Charge-decrement packet, referred to the integrator voltage.
    _pad14: unsigned(18)           # [31:14] reserved


class CoreStatus(data.Struct):
    """CORE_STATUS (RO, 0x102 + 0x10·core, 64 instances): State of one core."""

    busy: unsigned(1)          # [0] Running a batch.
    enabled: unsigned(1)       # [1] Enabled in CORE_ENABLE.
    _pad2: unsigned(14)        # [15:2] reserved
    batch_index: unsigned(13)  # [28:16] Vector of the batch in progress (or the count when done).
    _pad29: unsigned(3)        # [31:29] reserved


class CountMvm(data.Struct):
    """COUNT_MVM (RO, 0x108 + 0x10·core, 64 instances): MVMs completed."""

    count: unsigned(32)  # [31:0] (MVMs) Wraps at 2^32.


class CountPulse(data.Struct):
    """COUNT_PULSE (RO, 0x109 + 0x10·core, 64 instances): Input pulses integrated (each drives
    every input line once).
    """

    count: unsigned(32)  # [31:0] (pulses) Wraps at 2^32.


class CountCompare(data.Struct):
    """COUNT_COMPARE (RO, 0x10A + 0x10·core, 64 instances): Neuron comparisons (all output
    neurons at once).
    """

    count: unsigned(32)  # [31:0] (compares) Wraps at 2^32.


class CountStep(data.Struct):
    """COUNT_STEP (RO, 0x10B + 0x10·core, 64 instances): Charge-decrement or SAR steps (all
    active neurons at once).
    """

    count: unsigned(32)  # [31:0] (steps) Wraps at 2^32.


class CountProgram(data.Struct):
    """COUNT_PROGRAM (RO, 0x10C + 0x10·core, 64 instances): SET and RESET pulses applied."""

    count: unsigned(32)  # [31:0] (pulses) Wraps at 2^32.


class CountRead(data.Struct):
    """COUNT_READ (RO, 0x10D + 0x10·core, 64 instances): Single-cell reads."""

    count: unsigned(32)  # [31:0] (reads) Wraps at 2^32.


class CountBusy(data.Struct):
    """COUNT_BUSY (RO, 0x10E + 0x10·core, 64 instances): Clock cycles spent running batches."""

    count: unsigned(32)  # [31:0] (cycles) Wraps at 2^32.


# -- addresses, masks of the defined bits, instance counts ----------------------------------------

CHIP_ID_ADDR = 0x000
CHIP_ID_MASK = 0xFFFFFFFF
VERSION_ADDR = 0x001
VERSION_MASK = 0x00FFFFFF
GEOMETRY_ADDR = 0x002
GEOMETRY_MASK = 0xFFFFFFFF
PRECISION_ADDR = 0x003
PRECISION_MASK = 0x00FF7FFF
BUFFERS_ADDR = 0x004
BUFFERS_MASK = 0x00001FFF
FEATURES_ADDR = 0x005
FEATURES_MASK = 0x000000FF
CLOCK_ADDR = 0x006
CLOCK_MASK = 0xFFFFFFFF
CTRL_ADDR = 0x008
CTRL_MASK = 0x0000001F
STATUS_ADDR = 0x009
STATUS_MASK = 0x0000001F
CORE_ENABLE_ADDR = 0x00A
CORE_ENABLE_MASK = 0xFFFFFFFF
CORE_ENABLE_STRIDE = 0x1
CORE_ENABLE_COUNT = 2
CORE_SELECT_ADDR = 0x00C
CORE_SELECT_MASK = 0xFFFFFFFF
CORE_SELECT_STRIDE = 0x1
CORE_SELECT_COUNT = 2
MVM_CONFIG_ADDR = 0x010
MVM_CONFIG_MASK = 0x0003FFFF
MVM_TIMING_ADDR = 0x011
MVM_TIMING_MASK = 0x000000FF
NEURON_CONFIG_ADDR = 0x012
NEURON_CONFIG_MASK = 0x00007F7F
BATCH_ADDR = 0x013
BATCH_MASK = 0x00FF1FFF
LFSR_SEED_ADDR = 0x018
LFSR_SEED_MASK = 0xFFFFFFFF
STOCHASTIC_ADDR = 0x019
STOCHASTIC_MASK = 0x00003FFF
CELL_ADDR_ADDR = 0x020
CELL_ADDR_MASK = 0x3FFFFFFF
CELL_PULSE_ADDR = 0x021
CELL_PULSE_MASK = 0x1FFFFFF1
CELL_TIMING_ADDR = 0x022
CELL_TIMING_MASK = 0x0FFFFFFF
CELL_RESULT_ADDR = 0x023
CELL_RESULT_MASK = 0x0001FFFF
CORE_BIAS_ADDR = 0x100
CORE_BIAS_MASK = 0x000FFFFF
CORE_BIAS_STRIDE = 0x10
CORE_BIAS_COUNT = 64
CORE_NEURON_ADDR = 0x101
CORE_NEURON_MASK = 0x00003FFF
CORE_NEURON_STRIDE = 0x10
CORE_NEURON_COUNT = 64
CORE_STATUS_ADDR = 0x102
CORE_STATUS_MASK = 0x1FFF0003
CORE_STATUS_STRIDE = 0x10
CORE_STATUS_COUNT = 64
COUNT_MVM_ADDR = 0x108
COUNT_MVM_MASK = 0xFFFFFFFF
COUNT_MVM_STRIDE = 0x10
COUNT_MVM_COUNT = 64
COUNT_PULSE_ADDR = 0x109
COUNT_PULSE_MASK = 0xFFFFFFFF
COUNT_PULSE_STRIDE = 0x10
COUNT_PULSE_COUNT = 64
COUNT_COMPARE_ADDR = 0x10A
COUNT_COMPARE_MASK = 0xFFFFFFFF
COUNT_COMPARE_STRIDE = 0x10
COUNT_COMPARE_COUNT = 64
COUNT_STEP_ADDR = 0x10B
COUNT_STEP_MASK = 0xFFFFFFFF
COUNT_STEP_STRIDE = 0x10
COUNT_STEP_COUNT = 64
COUNT_PROGRAM_ADDR = 0x10C
COUNT_PROGRAM_MASK = 0xFFFFFFFF
COUNT_PROGRAM_STRIDE = 0x10
COUNT_PROGRAM_COUNT = 64
COUNT_READ_ADDR = 0x10D
COUNT_READ_MASK = 0xFFFFFFFF
COUNT_READ_STRIDE = 0x10
COUNT_READ_COUNT = 64
COUNT_BUSY_ADDR = 0x10E
COUNT_BUSY_MASK = 0xFFFFFFFF
COUNT_BUSY_STRIDE = 0x10
COUNT_BUSY_COUNT = 64


def _pack(layout, fields):
    """The 32-bit value of ``layout`` with ``fields`` set (others at their reset value)."""
    for name, value in fields.items():
        width = data.Layout.cast(layout)[name].width
        if not 0 <= value < (1 << width):
            raise ValueError(f"{layout.__name__}.{name} = {value} does not fit {width} bits")
    return layout.const(fields).as_bits()


def identification(config: ChipConfig) -> dict[str, int]:
    """Values of the identification registers for a configuration (register name -> word)."""
    return {
        "CHIP_ID": _pack(ChipId, {}),
        "VERSION": _pack(Version, {}),
        "GEOMETRY": _pack(Geometry, {
            "core_rows": config.core_grid[0],
            "core_cols": config.core_grid[1],
            "rows": config.rows,
            "cols": config.cols,
        }),
        "PRECISION": _pack(Precision, {
            "input_bits_max": config.input_bits_max,
            "output_bits_max": config.output_bits_max,
            "max_steps_limit": config.max_steps_limit,
            "pulse_multiplier_max": config.pulse_multiplier_max,
        }),
        "BUFFERS": _pack(Buffers, {
            "batch_depth": config.batch_depth,
        }),
        "FEATURES": _pack(Features, {
            "conv_sign": int("sign" in config.conversions),
            "conv_decrement": int("decrement" in config.conversions),
            "conv_sar": int("sar" in config.conversions),
            "backward": 1,
            "recurrent": 1,
            "stochastic": int(config.stochastic_neurons),
            "clock_gating": int(config.clock_gating),
            "cell_access": 1,
        }),
        "CLOCK": _pack(Clock, {
            "freq_kHz": round(config.clock_hz / 1000),
        }),
    }


def _word_mask(n_cores: int, word: int) -> int:
    """Bits of a 32-core word register that stand for existing cores."""
    return (1 << max(0, min(32, n_cores - 32 * word))) - 1


#: The register bus, from the master's side. A write happens in the cycle ``w_en`` is high;
#: read data appears on ``r_data`` in the cycle after ``r_en`` (and is 0 after a cycle without).
RegisterBus = wiring.Signature({
    "addr": Out(16),
    "w_data": Out(32),
    "w_en": Out(1),
    "r_en": Out(1),
    "r_data": In(32),
})


class RegisterFile(wiring.Component):
    """The chip's register block.

    ``bus`` is a :data:`RegisterBus` slave. Every register has a port named after it in lower
    case, except the identification registers (CHIP_ID, VERSION, GEOMETRY, PRECISION, BUFFERS,
    FEATURES, CLOCK), whose values are constants computed from ``config``:

    * RW: ``Out(Layout)`` holding the register value (reset value from the description);
    * RO: ``In(Layout)`` driven by the hardware; bus writes are ignored;
    * WS: ``Out(Layout)`` holding the written bits for exactly the cycle after the write, else 0;
      reads return 0.

    Per-core registers are ``data.ArrayLayout(Layout, config.n_cores)``; addresses of cores
    beyond ``n_cores`` read 0. CORE_ENABLE and CORE_SELECT are ``data.ArrayLayout(Layout, 2)``
    (32 cores per word); bits of cores beyond ``n_cores`` read 0 and cannot be set. Reads of
    unmapped addresses return 0.
    """

    def __init__(self, config: ChipConfig):
        self.config = config
        n = config.n_cores
        super().__init__({
            "bus": In(RegisterBus),
            "ctrl": Out(Ctrl),
            "status": In(Status),
            "core_enable": Out(data.ArrayLayout(CoreEnable, 2)),
            "core_select": Out(data.ArrayLayout(CoreSelect, 2)),
            "mvm_config": Out(MvmConfig),
            "mvm_timing": Out(MvmTiming),
            "neuron_config": Out(NeuronConfig),
            "batch": Out(Batch),
            "lfsr_seed": Out(LfsrSeed),
            "stochastic": Out(Stochastic),
            "cell_addr": Out(CellAddr),
            "cell_pulse": Out(CellPulse),
            "cell_timing": Out(CellTiming),
            "cell_result": In(CellResult),
            "core_bias": Out(data.ArrayLayout(CoreBias, n), init=[CoreBias.const(None)] * n),
            "core_neuron": Out(data.ArrayLayout(CoreNeuron, n), init=[CoreNeuron.const(None)] * n),
            "core_status": In(data.ArrayLayout(CoreStatus, n)),
            "count_mvm": In(data.ArrayLayout(CountMvm, n)),
            "count_pulse": In(data.ArrayLayout(CountPulse, n)),
            "count_compare": In(data.ArrayLayout(CountCompare, n)),
            "count_step": In(data.ArrayLayout(CountStep, n)),
            "count_program": In(data.ArrayLayout(CountProgram, n)),
            "count_read": In(data.ArrayLayout(CountRead, n)),
            "count_busy": In(data.ArrayLayout(CountBusy, n)),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.config.n_cores
        bus = self.bus
        ident = identification(self.config)

        # Per-core block: one range check, the core number, then the register in the low bits.
        in_cores = Signal()
        core = Signal(range(CORE_COUNT))
        m.d.comb += [
            in_cores.eq((bus.addr >= CORE_BASE) & (bus.addr < CORE_BASE + n * CORE_STRIDE)),
            core.eq(bus.addr[4:] - (CORE_BASE >> 4)),
        ]
        reg = bus.addr[:4]

        # Write-strobe registers pulse for the one cycle after their write.
        m.d.sync += self.ctrl.eq(0)

        with m.If(bus.w_en):
            with m.Switch(bus.addr):
                with m.Case(CTRL_ADDR):
                    m.d.sync += self.ctrl.eq(bus.w_data & CTRL_MASK)
                for i in range(CORE_ENABLE_COUNT):
                    with m.Case(CORE_ENABLE_ADDR + i * CORE_ENABLE_STRIDE):
                        m.d.sync += self.core_enable[i].eq(bus.w_data & CORE_ENABLE_MASK & _word_mask(n, i))
                for i in range(CORE_SELECT_COUNT):
                    with m.Case(CORE_SELECT_ADDR + i * CORE_SELECT_STRIDE):
                        m.d.sync += self.core_select[i].eq(bus.w_data & CORE_SELECT_MASK & _word_mask(n, i))
                with m.Case(MVM_CONFIG_ADDR):
                    m.d.sync += self.mvm_config.eq(bus.w_data & MVM_CONFIG_MASK)
                with m.Case(MVM_TIMING_ADDR):
                    m.d.sync += self.mvm_timing.eq(bus.w_data & MVM_TIMING_MASK)
                with m.Case(NEURON_CONFIG_ADDR):
                    m.d.sync += self.neuron_config.eq(bus.w_data & NEURON_CONFIG_MASK)
                with m.Case(BATCH_ADDR):
                    m.d.sync += self.batch.eq(bus.w_data & BATCH_MASK)
                with m.Case(LFSR_SEED_ADDR):
                    m.d.sync += self.lfsr_seed.eq(bus.w_data & LFSR_SEED_MASK)
                with m.Case(STOCHASTIC_ADDR):
                    m.d.sync += self.stochastic.eq(bus.w_data & STOCHASTIC_MASK)
                with m.Case(CELL_ADDR_ADDR):
                    m.d.sync += self.cell_addr.eq(bus.w_data & CELL_ADDR_MASK)
                with m.Case(CELL_PULSE_ADDR):
                    m.d.sync += self.cell_pulse.eq(bus.w_data & CELL_PULSE_MASK)
                with m.Case(CELL_TIMING_ADDR):
                    m.d.sync += self.cell_timing.eq(bus.w_data & CELL_TIMING_MASK)
                with m.Default():
                    with m.If(in_cores):
                        with m.Switch(reg):
                            with m.Case(CORE_BIAS_ADDR % CORE_STRIDE):
                                m.d.sync += self.core_bias[core].eq(bus.w_data & CORE_BIAS_MASK)
                            with m.Case(CORE_NEURON_ADDR % CORE_STRIDE):
                                m.d.sync += self.core_neuron[core].eq(bus.w_data & CORE_NEURON_MASK)

        # Reads: registered; 0 for unmapped addresses, write-strobe registers and idle cycles.
        m.d.sync += bus.r_data.eq(0)
        with m.If(bus.r_en):
            with m.Switch(bus.addr):
                with m.Case(CHIP_ID_ADDR):
                    m.d.sync += bus.r_data.eq(ident["CHIP_ID"])
                with m.Case(VERSION_ADDR):
                    m.d.sync += bus.r_data.eq(ident["VERSION"])
                with m.Case(GEOMETRY_ADDR):
                    m.d.sync += bus.r_data.eq(ident["GEOMETRY"])
                with m.Case(PRECISION_ADDR):
                    m.d.sync += bus.r_data.eq(ident["PRECISION"])
                with m.Case(BUFFERS_ADDR):
                    m.d.sync += bus.r_data.eq(ident["BUFFERS"])
                with m.Case(FEATURES_ADDR):
                    m.d.sync += bus.r_data.eq(ident["FEATURES"])
                with m.Case(CLOCK_ADDR):
                    m.d.sync += bus.r_data.eq(ident["CLOCK"])
                with m.Case(STATUS_ADDR):
                    m.d.sync += bus.r_data.eq(self.status.as_value() & STATUS_MASK)
                for i in range(CORE_ENABLE_COUNT):
                    with m.Case(CORE_ENABLE_ADDR + i * CORE_ENABLE_STRIDE):
                        m.d.sync += bus.r_data.eq(self.core_enable[i])
                for i in range(CORE_SELECT_COUNT):
                    with m.Case(CORE_SELECT_ADDR + i * CORE_SELECT_STRIDE):
                        m.d.sync += bus.r_data.eq(self.core_select[i])
                with m.Case(MVM_CONFIG_ADDR):
                    m.d.sync += bus.r_data.eq(self.mvm_config)
                with m.Case(MVM_TIMING_ADDR):
                    m.d.sync += bus.r_data.eq(self.mvm_timing)
                with m.Case(NEURON_CONFIG_ADDR):
                    m.d.sync += bus.r_data.eq(self.neuron_config)
                with m.Case(BATCH_ADDR):
                    m.d.sync += bus.r_data.eq(self.batch)
                with m.Case(LFSR_SEED_ADDR):
                    m.d.sync += bus.r_data.eq(self.lfsr_seed)
                with m.Case(STOCHASTIC_ADDR):
                    m.d.sync += bus.r_data.eq(self.stochastic)
                with m.Case(CELL_ADDR_ADDR):
                    m.d.sync += bus.r_data.eq(self.cell_addr)
                with m.Case(CELL_PULSE_ADDR):
                    m.d.sync += bus.r_data.eq(self.cell_pulse)
                with m.Case(CELL_TIMING_ADDR):
                    m.d.sync += bus.r_data.eq(self.cell_timing)
                with m.Case(CELL_RESULT_ADDR):
                    m.d.sync += bus.r_data.eq(self.cell_result.as_value() & CELL_RESULT_MASK)
                with m.Default():
                    with m.If(in_cores):
                        with m.Switch(reg):
                            with m.Case(CORE_BIAS_ADDR % CORE_STRIDE):
                                m.d.sync += bus.r_data.eq(self.core_bias[core])
                            with m.Case(CORE_NEURON_ADDR % CORE_STRIDE):
                                m.d.sync += bus.r_data.eq(self.core_neuron[core])
                            with m.Case(CORE_STATUS_ADDR % CORE_STRIDE):
                                m.d.sync += bus.r_data.eq(self.core_status[core].as_value() & CORE_STATUS_MASK)
                            with m.Case(COUNT_MVM_ADDR % CORE_STRIDE):
                                m.d.sync += bus.r_data.eq(self.count_mvm[core])
                            with m.Case(COUNT_PULSE_ADDR % CORE_STRIDE):
                                m.d.sync += bus.r_data.eq(self.count_pulse[core])
                            with m.Case(COUNT_COMPARE_ADDR % CORE_STRIDE):
                                m.d.sync += bus.r_data.eq(self.count_compare[core])
                            with m.Case(COUNT_STEP_ADDR % CORE_STRIDE):
                                m.d.sync += bus.r_data.eq(self.count_step[core])
                            with m.Case(COUNT_PROGRAM_ADDR % CORE_STRIDE):
                                m.d.sync += bus.r_data.eq(self.count_program[core])
                            with m.Case(COUNT_READ_ADDR % CORE_STRIDE):
                                m.d.sync += bus.r_data.eq(self.count_read[core])
                            with m.Case(COUNT_BUSY_ADDR % CORE_STRIDE):
                                m.d.sync += bus.r_data.eq(self.count_busy[core])

        return m
