/* Generated from neurram/spec/regmap.py by hdl/regmap_gen.py. Do not edit: run `neurram regmap --write`. */
/* Register map of the NeuRRAM chip. */
#ifndef NEURRAM_REGS_H
#define NEURRAM_REGS_H

#include <stdint.h>

/* Bus address: space in bits 31:28, core in bits 27:22, word offset in bits 21:0. */
#define NEURRAM_SPACE_SHIFT 28u
#define NEURRAM_CORE_SHIFT 22u
#define NEURRAM_OFFSET_BITS 22u
#define NEURRAM_BROADCAST_CORE 63u  /* every core in CORE_SELECT (buffer writes) */
#define NEURRAM_ADDRESS(space, core, offset) \
    ((((uint32_t)(space)) << NEURRAM_SPACE_SHIFT) | (((uint32_t)(core)) << NEURRAM_CORE_SHIFT) | \
     ((uint32_t)(offset) & ((1u << NEURRAM_OFFSET_BITS) - 1u)))
#define NEURRAM_CHIP_ID_MAGIC 0x4E524D31u  /* ASCII "NRM1" */
#define NEURRAM_VERSION_MAJOR 0u
#define NEURRAM_VERSION_MINOR 2u
#define NEURRAM_VERSION_PATCH 0u

/* Field helpers: F is a field prefix such as NEURRAM_MVM_CONFIG_DIRECTION. */
#define NEURRAM_FIELD_GET(F, word) ((((uint32_t)(word)) & F##_MASK) >> F##_SHIFT)
#define NEURRAM_FIELD_PREP(F, value) ((((uint32_t)(value)) << F##_SHIFT) & F##_MASK)

/* Address spaces. */
#define NEURRAM_SPACE_REGISTERS 0u
#define NEURRAM_SPACE_INPUT 1u  /* RW: Input vectors of a batch, as bit-planes. Words per core: batch_depth * input_planes * words_per_line_vector. */
#define NEURRAM_SPACE_OUTPUT 2u  /* RO: Neuron outputs of a batch, one byte per output line, as bit-planes. Words per core: batch_depth * 8 * words_per_line_vector. */
#define NEURRAM_SPACE_BL_REG 3u  /* RW: The bitline-side ternary register (drives BLs forward, latches BL neurons backward). Words per core: 2 * words_per_line_vector. */
#define NEURRAM_SPACE_SL_REG 4u  /* RW: The source-line-side ternary register (latches SL neurons forward, drives SLs backward). Words per core: 2 * words_per_line_vector. */
#define NEURRAM_SPACE_NEURON_MASK 5u  /* RW: Neurons tracked by the conversion; untracked neurons count as done from the start: they read 0 and their entry of the output-side register keeps its value. Words per core: words_per_line_vector. */
#define NEURRAM_SPACE_POLARITY 6u  /* RW: Input lines whose drive is inverted (the G- row of a differential pair is driven with -x). Words per core: words_per_line_vector. */
#define NEURRAM_SPACE_WV_CELLS 7u  /* RW: Per-cell targets of the write-verify engine; the engine replaces each with its result. Words per core: wv_rows * cols. */

/* Per-core register block: register k of core c is at CORE_BASE + CORE_STRIDE * c + k. */
#define NEURRAM_CORE_BASE 0x100u
#define NEURRAM_CORE_STRIDE 0x10u
#define NEURRAM_CORE_COUNT 64u

/* Direction: Which lines carry the inputs of an MVM (docs/chip.md §2, TNSA). */
#define NEURRAM_DIRECTION_FORWARD 0u  /* inputs on bitlines, outputs sensed on source lines (y = Wᵀx) */
#define NEURRAM_DIRECTION_BACKWARD 1u  /* inputs on source lines, outputs sensed on bitlines (y = Wx) */
#define NEURRAM_DIRECTION_RECURRENT 2u  /* forward, then each output written back as the core's next input */

/* InputSource: Where the sequencer takes the input vector from. */
#define NEURRAM_INPUT_SOURCE_BUFFER 0u  /* bit-serial from the core's input buffer (bit-planes) */
#define NEURRAM_INPUT_SOURCE_TERNARY 1u  /* the input-side ternary register as loaded, one phase */

/* Conversion: How a neuron converts its integrated charge to a digital output. */
#define NEURRAM_CONVERSION_SIGN 0u  /* comparator only: 1-bit output */
#define NEURRAM_CONVERSION_DECREMENT 1u  /* initial sign, then charge-decrement steps until the comparator flips */
#define NEURRAM_CONVERSION_SAR 2u  /* successive approximation, the charge step halved every bit */

/* Activation: Activation applied by the conversion. */
#define NEURRAM_ACTIVATION_NONE 0u  /* signed output */
#define NEURRAM_ACTIVATION_RELU 1u  /* negative outputs become 0 */
#define NEURRAM_ACTIVATION_CLIPPED_RELU 2u  /* ReLU, then magnitudes clipped at NEURON_CONFIG.clip */

/* PulsePolarity: Kind of programming pulse (docs/chip.md §3). */
#define NEURRAM_PULSE_POLARITY_SET 0u  /* bitline pulse, wordline at the compliance voltage: conductance rises */
#define NEURRAM_PULSE_POLARITY_RESET 1u  /* source-line pulse, wordline at 5 V: conductance falls */

/* WvStatus: Outcome of one cell in the on-chip write-verify engine (docs/chip.md §3). */
#define NEURRAM_WV_STATUS_NOT_RUN 0u  /* the cell was not marked for programming */
#define NEURRAM_WV_STATUS_CONVERGED 1u  /* confirmed inside its window */
#define NEURRAM_WV_STATUS_FAIL_ROUNDS 2u  /* failed: it would need more than the round budget */
#define NEURRAM_WV_STATUS_FAIL_TOP_PULSES 3u  /* failed: a round spent its top-amplitude pulses without crossing */

/* CHIP_ID (RO, 0x000): Identifies a NeuRRAM-compatible chip. */
#define NEURRAM_CHIP_ID_ADDR 0x000u
#define NEURRAM_CHIP_ID_RESET 0x4E524D31u
#define NEURRAM_CHIP_ID_MAGIC_SHIFT 0u  /* magic [31:0]: ASCII "NRM1". */
#define NEURRAM_CHIP_ID_MAGIC_WIDTH 32u
#define NEURRAM_CHIP_ID_MAGIC_MASK 0xFFFFFFFFu
#define NEURRAM_CHIP_ID_MAGIC_RESET 0x4E524D31u

/* VERSION (RO, 0x001): Version of the digital design. */
#define NEURRAM_VERSION_ADDR 0x001u
#define NEURRAM_VERSION_RESET 0x00000200u
#define NEURRAM_VERSION_PATCH_SHIFT 0u  /* patch [7:0]: Patch version. */
#define NEURRAM_VERSION_PATCH_WIDTH 8u
#define NEURRAM_VERSION_PATCH_MASK 0x000000FFu
#define NEURRAM_VERSION_PATCH_RESET 0u
#define NEURRAM_VERSION_MINOR_SHIFT 8u  /* minor [15:8]: Minor version. */
#define NEURRAM_VERSION_MINOR_WIDTH 8u
#define NEURRAM_VERSION_MINOR_MASK 0x0000FF00u
#define NEURRAM_VERSION_MINOR_RESET 2u
#define NEURRAM_VERSION_MAJOR_SHIFT 16u  /* major [23:16]: Major version. */
#define NEURRAM_VERSION_MAJOR_WIDTH 8u
#define NEURRAM_VERSION_MAJOR_MASK 0x00FF0000u
#define NEURRAM_VERSION_MAJOR_RESET 0u

/* GEOMETRY (RO, 0x002): Core grid and array size (set by the ChipConfig). */
#define NEURRAM_GEOMETRY_ADDR 0x002u
#define NEURRAM_GEOMETRY_RESET 0x10010068u
#define NEURRAM_GEOMETRY_CORE_ROWS_SHIFT 0u  /* core_rows [3:0] (cores): Core-rows in the grid. */
#define NEURRAM_GEOMETRY_CORE_ROWS_WIDTH 4u
#define NEURRAM_GEOMETRY_CORE_ROWS_MASK 0x0000000Fu
#define NEURRAM_GEOMETRY_CORE_ROWS_RESET 8u
#define NEURRAM_GEOMETRY_CORE_COLS_SHIFT 4u  /* core_cols [7:4] (cores): Core-columns in the grid. */
#define NEURRAM_GEOMETRY_CORE_COLS_WIDTH 4u
#define NEURRAM_GEOMETRY_CORE_COLS_MASK 0x000000F0u
#define NEURRAM_GEOMETRY_CORE_COLS_RESET 6u
#define NEURRAM_GEOMETRY_ROWS_SHIFT 8u  /* rows [19:8] (lines): Bitlines (wordlines) per core array. */
#define NEURRAM_GEOMETRY_ROWS_WIDTH 12u
#define NEURRAM_GEOMETRY_ROWS_MASK 0x000FFF00u
#define NEURRAM_GEOMETRY_ROWS_RESET 256u
#define NEURRAM_GEOMETRY_COLS_SHIFT 20u  /* cols [31:20] (lines): Source lines per core array. */
#define NEURRAM_GEOMETRY_COLS_WIDTH 12u
#define NEURRAM_GEOMETRY_COLS_MASK 0xFFF00000u
#define NEURRAM_GEOMETRY_COLS_RESET 256u

/* PRECISION (RO, 0x003): Precisions the neurons and sequencer support. */
#define NEURRAM_PRECISION_ADDR 0x003u
#define NEURRAM_PRECISION_RESET 0x00FF7F88u
#define NEURRAM_PRECISION_INPUT_BITS_MAX_SHIFT 0u  /* input_bits_max [3:0] (bits): Largest bit-serial input precision. */
#define NEURRAM_PRECISION_INPUT_BITS_MAX_WIDTH 4u
#define NEURRAM_PRECISION_INPUT_BITS_MAX_MASK 0x0000000Fu
#define NEURRAM_PRECISION_INPUT_BITS_MAX_RESET 8u
#define NEURRAM_PRECISION_OUTPUT_BITS_MAX_SHIFT 4u  /* output_bits_max [7:4] (bits): Largest SAR output precision, sign included. */
#define NEURRAM_PRECISION_OUTPUT_BITS_MAX_WIDTH 4u
#define NEURRAM_PRECISION_OUTPUT_BITS_MAX_MASK 0x000000F0u
#define NEURRAM_PRECISION_OUTPUT_BITS_MAX_RESET 8u
#define NEURRAM_PRECISION_MAX_STEPS_LIMIT_SHIFT 8u  /* max_steps_limit [14:8] (steps): Largest charge-decrement step count. */
#define NEURRAM_PRECISION_MAX_STEPS_LIMIT_WIDTH 7u
#define NEURRAM_PRECISION_MAX_STEPS_LIMIT_MASK 0x00007F00u
#define NEURRAM_PRECISION_MAX_STEPS_LIMIT_RESET 127u
#define NEURRAM_PRECISION_PULSE_MULTIPLIER_MAX_SHIFT 16u  /* pulse_multiplier_max [23:16] (pulses): Largest pulse multiplier. */
#define NEURRAM_PRECISION_PULSE_MULTIPLIER_MAX_WIDTH 8u
#define NEURRAM_PRECISION_PULSE_MULTIPLIER_MAX_MASK 0x00FF0000u
#define NEURRAM_PRECISION_PULSE_MULTIPLIER_MAX_RESET 255u

/* BUFFERS (RO, 0x004): Batch buffer sizes. */
#define NEURRAM_BUFFERS_ADDR 0x004u
#define NEURRAM_BUFFERS_RESET 0x00040010u
#define NEURRAM_BUFFERS_BATCH_DEPTH_SHIFT 0u  /* batch_depth [12:0] (vectors): Input and output buffer depth per core. */
#define NEURRAM_BUFFERS_BATCH_DEPTH_WIDTH 13u
#define NEURRAM_BUFFERS_BATCH_DEPTH_MASK 0x00001FFFu
#define NEURRAM_BUFFERS_BATCH_DEPTH_RESET 16u
#define NEURRAM_BUFFERS_WV_ROWS_SHIFT 16u  /* wv_rows [22:16] (rows): Rows of targets the write-verify buffer holds per core. */
#define NEURRAM_BUFFERS_WV_ROWS_WIDTH 7u
#define NEURRAM_BUFFERS_WV_ROWS_MASK 0x007F0000u
#define NEURRAM_BUFFERS_WV_ROWS_RESET 4u

/* FEATURES (RO, 0x005): Supported modes, one bit each. */
#define NEURRAM_FEATURES_ADDR 0x005u
#define NEURRAM_FEATURES_RESET 0x000005FFu
#define NEURRAM_FEATURES_CONV_SIGN_SHIFT 0u  /* conv_sign [0]: Sign conversion. */
#define NEURRAM_FEATURES_CONV_SIGN_WIDTH 1u
#define NEURRAM_FEATURES_CONV_SIGN_MASK 0x00000001u
#define NEURRAM_FEATURES_CONV_SIGN_RESET 1u
#define NEURRAM_FEATURES_CONV_DECREMENT_SHIFT 1u  /* conv_decrement [1]: Charge-decrement conversion. */
#define NEURRAM_FEATURES_CONV_DECREMENT_WIDTH 1u
#define NEURRAM_FEATURES_CONV_DECREMENT_MASK 0x00000002u
#define NEURRAM_FEATURES_CONV_DECREMENT_RESET 1u
#define NEURRAM_FEATURES_CONV_SAR_SHIFT 2u  /* conv_sar [2]: SAR conversion. */
#define NEURRAM_FEATURES_CONV_SAR_WIDTH 1u
#define NEURRAM_FEATURES_CONV_SAR_MASK 0x00000004u
#define NEURRAM_FEATURES_CONV_SAR_RESET 1u
#define NEURRAM_FEATURES_BACKWARD_SHIFT 3u  /* backward [3]: Backward MVMs (inputs on source lines). */
#define NEURRAM_FEATURES_BACKWARD_WIDTH 1u
#define NEURRAM_FEATURES_BACKWARD_MASK 0x00000008u
#define NEURRAM_FEATURES_BACKWARD_RESET 1u
#define NEURRAM_FEATURES_RECURRENT_SHIFT 4u  /* recurrent [4]: Recurrent MVMs (outputs fed back as inputs). */
#define NEURRAM_FEATURES_RECURRENT_WIDTH 1u
#define NEURRAM_FEATURES_RECURRENT_MASK 0x00000010u
#define NEURRAM_FEATURES_RECURRENT_RESET 1u
#define NEURRAM_FEATURES_STOCHASTIC_SHIFT 5u  /* stochastic [5]: LFSR-driven stochastic neurons (a chip without them has no LFSR_SEED and STOCHASTIC registers: they read 0). */
#define NEURRAM_FEATURES_STOCHASTIC_WIDTH 1u
#define NEURRAM_FEATURES_STOCHASTIC_MASK 0x00000020u
#define NEURRAM_FEATURES_STOCHASTIC_RESET 1u
#define NEURRAM_FEATURES_CLOCK_GATING_SHIFT 6u  /* clock_gating [6]: Idle cores have their clock gated. */
#define NEURRAM_FEATURES_CLOCK_GATING_WIDTH 1u
#define NEURRAM_FEATURES_CLOCK_GATING_MASK 0x00000040u
#define NEURRAM_FEATURES_CLOCK_GATING_RESET 1u
#define NEURRAM_FEATURES_CELL_ACCESS_SHIFT 7u  /* cell_access [7]: Single-cell program and read for write-verify. */
#define NEURRAM_FEATURES_CELL_ACCESS_WIDTH 1u
#define NEURRAM_FEATURES_CELL_ACCESS_MASK 0x00000080u
#define NEURRAM_FEATURES_CELL_ACCESS_RESET 1u
#define NEURRAM_FEATURES_WV_ENGINE_SHIFT 8u  /* wv_engine [8]: On-chip write-verify engine (CTRL.wv_start, WV_CELLS). A chip without it has no WV_* registers and no WV_CELLS buffer (they read 0) and refuses CTRL.wv_start; the host write-verifies over the cell registers. */
#define NEURRAM_FEATURES_WV_ENGINE_WIDTH 1u
#define NEURRAM_FEATURES_WV_ENGINE_MASK 0x00000100u
#define NEURRAM_FEATURES_WV_ENGINE_RESET 1u
#define NEURRAM_FEATURES_EMULATED_ARRAY_SHIFT 9u  /* emulated_array [9]: The analog arrays are a digital emulation (an FPGA prototype: exact integer MVMs on 10 nS codes, no noise). */
#define NEURRAM_FEATURES_EMULATED_ARRAY_WIDTH 1u
#define NEURRAM_FEATURES_EMULATED_ARRAY_MASK 0x00000200u
#define NEURRAM_FEATURES_EMULATED_ARRAY_RESET 0u
#define NEURRAM_FEATURES_EVENT_COUNTERS_SHIFT 10u  /* event_counters [10]: Per-core event counters (a chip without them has no COUNT_* registers: they read 0). */
#define NEURRAM_FEATURES_EVENT_COUNTERS_WIDTH 1u
#define NEURRAM_FEATURES_EVENT_COUNTERS_MASK 0x00000400u
#define NEURRAM_FEATURES_EVENT_COUNTERS_RESET 1u

/* CLOCK (RO, 0x006): Digital clock frequency. */
#define NEURRAM_CLOCK_ADDR 0x006u
#define NEURRAM_CLOCK_RESET 0x000186A0u
#define NEURRAM_CLOCK_FREQ_KHZ_SHIFT 0u  /* freq_kHz [31:0] (kHz): Clock frequency the design was built for. */
#define NEURRAM_CLOCK_FREQ_KHZ_WIDTH 32u
#define NEURRAM_CLOCK_FREQ_KHZ_MASK 0xFFFFFFFFu
#define NEURRAM_CLOCK_FREQ_KHZ_RESET 100000u

/* CTRL (WS, 0x008): Commands; each written 1 pulses once. */
#define NEURRAM_CTRL_ADDR 0x008u
#define NEURRAM_CTRL_RESET 0x00000000u
#define NEURRAM_CTRL_START_SHIFT 0u  /* start [0]: Run a batch of BATCH.count MVMs on every enabled core in CORE_SELECT. */
#define NEURRAM_CTRL_START_WIDTH 1u
#define NEURRAM_CTRL_START_MASK 0x00000001u
#define NEURRAM_CTRL_START_RESET 0u
#define NEURRAM_CTRL_ABORT_SHIFT 1u  /* abort [1]: Stop running batches after the MVM in progress. */
#define NEURRAM_CTRL_ABORT_WIDTH 1u
#define NEURRAM_CTRL_ABORT_MASK 0x00000002u
#define NEURRAM_CTRL_ABORT_RESET 0u
#define NEURRAM_CTRL_CLEAR_COUNTERS_SHIFT 2u  /* clear_counters [2]: Zero every core's event counters. */
#define NEURRAM_CTRL_CLEAR_COUNTERS_WIDTH 1u
#define NEURRAM_CTRL_CLEAR_COUNTERS_MASK 0x00000004u
#define NEURRAM_CTRL_CLEAR_COUNTERS_RESET 0u
#define NEURRAM_CTRL_CELL_PROGRAM_SHIFT 3u  /* cell_program [3]: Apply one CELL_PULSE to the cell at CELL_ADDR (its core must be enabled). */
#define NEURRAM_CTRL_CELL_PROGRAM_WIDTH 1u
#define NEURRAM_CTRL_CELL_PROGRAM_MASK 0x00000008u
#define NEURRAM_CTRL_CELL_PROGRAM_RESET 0u
#define NEURRAM_CTRL_CELL_READ_SHIFT 4u  /* cell_read [4]: Read the cell at CELL_ADDR into CELL_RESULT (its core must be enabled). */
#define NEURRAM_CTRL_CELL_READ_WIDTH 1u
#define NEURRAM_CTRL_CELL_READ_MASK 0x00000010u
#define NEURRAM_CTRL_CELL_READ_RESET 0u
#define NEURRAM_CTRL_WV_START_SHIFT 5u  /* wv_start [5]: Write-verify the cells of WV_CELLS on rows CELL_ADDR.row .. + WV_LIMITS.rows - 1 of the core in CELL_ADDR (it must be enabled and idle). */
#define NEURRAM_CTRL_WV_START_WIDTH 1u
#define NEURRAM_CTRL_WV_START_MASK 0x00000020u
#define NEURRAM_CTRL_WV_START_RESET 0u

/* STATUS (RO, 0x009): Chip status word. */
#define NEURRAM_STATUS_ADDR 0x009u
#define NEURRAM_STATUS_RESET 0x00000000u
#define NEURRAM_STATUS_BUSY_SHIFT 0u  /* busy [0]: A batch is running on at least one core. */
#define NEURRAM_STATUS_BUSY_WIDTH 1u
#define NEURRAM_STATUS_BUSY_MASK 0x00000001u
#define NEURRAM_STATUS_BUSY_RESET 0u
#define NEURRAM_STATUS_DONE_SHIFT 1u  /* done [1]: The last batch finished (cleared by CTRL.start). */
#define NEURRAM_STATUS_DONE_WIDTH 1u
#define NEURRAM_STATUS_DONE_MASK 0x00000002u
#define NEURRAM_STATUS_DONE_RESET 0u
#define NEURRAM_STATUS_CELL_BUSY_SHIFT 2u  /* cell_busy [2]: A cell program, read or write-verify operation is in progress. */
#define NEURRAM_STATUS_CELL_BUSY_WIDTH 1u
#define NEURRAM_STATUS_CELL_BUSY_MASK 0x00000004u
#define NEURRAM_STATUS_CELL_BUSY_RESET 0u
#define NEURRAM_STATUS_CELL_DONE_SHIFT 3u  /* cell_done [3]: The last cell operation finished (cleared by the next one). */
#define NEURRAM_STATUS_CELL_DONE_WIDTH 1u
#define NEURRAM_STATUS_CELL_DONE_MASK 0x00000008u
#define NEURRAM_STATUS_CELL_DONE_RESET 0u
#define NEURRAM_STATUS_CONFIG_ERROR_SHIFT 4u  /* config_error [4]: The last command was refused: CTRL.start with a bad MVM_CONFIG, BATCH or selection, a cell command to a disabled core, or a write-verify operation outside the array or buffer. */
#define NEURRAM_STATUS_CONFIG_ERROR_WIDTH 1u
#define NEURRAM_STATUS_CONFIG_ERROR_MASK 0x00000010u
#define NEURRAM_STATUS_CONFIG_ERROR_RESET 0u

/* CORE_ENABLE (RW, 0x00A + 0x1·word, 2 instances): Core enables (power gating), 32 cores per word. A disabled core ignores triggers, spends no events and keeps its state. */
#define NEURRAM_CORE_ENABLE_ADDR 0x00Au
#define NEURRAM_CORE_ENABLE_RESET 0x00000000u
#define NEURRAM_CORE_ENABLE_STRIDE 0x1u
#define NEURRAM_CORE_ENABLE_INSTANCES 2u
#define NEURRAM_CORE_ENABLE_ADDR_OF(i) (NEURRAM_CORE_ENABLE_ADDR + (uint32_t)(i) * NEURRAM_CORE_ENABLE_STRIDE)
#define NEURRAM_CORE_ENABLE_MASK_SHIFT 0u  /* mask [31:0] (cores): Bit i enables core 32·word + i. */
#define NEURRAM_CORE_ENABLE_MASK_WIDTH 32u
#define NEURRAM_CORE_ENABLE_MASK_MASK 0xFFFFFFFFu
#define NEURRAM_CORE_ENABLE_MASK_RESET 0u

/* CORE_SELECT (RW, 0x00C + 0x1·word, 2 instances): Cores that take the next CTRL.start and broadcast buffer writes, 32 per word. */
#define NEURRAM_CORE_SELECT_ADDR 0x00Cu
#define NEURRAM_CORE_SELECT_RESET 0x00000000u
#define NEURRAM_CORE_SELECT_STRIDE 0x1u
#define NEURRAM_CORE_SELECT_INSTANCES 2u
#define NEURRAM_CORE_SELECT_ADDR_OF(i) (NEURRAM_CORE_SELECT_ADDR + (uint32_t)(i) * NEURRAM_CORE_SELECT_STRIDE)
#define NEURRAM_CORE_SELECT_MASK_SHIFT 0u  /* mask [31:0] (cores): Bit i selects core 32·word + i. */
#define NEURRAM_CORE_SELECT_MASK_WIDTH 32u
#define NEURRAM_CORE_SELECT_MASK_MASK 0xFFFFFFFFu
#define NEURRAM_CORE_SELECT_MASK_RESET 0u

/* MVM_CONFIG (RW, 0x010): Operating mode of the next batch. */
#define NEURRAM_MVM_CONFIG_ADDR 0x010u
#define NEURRAM_MVM_CONFIG_RESET 0x00004010u
#define NEURRAM_MVM_CONFIG_DIRECTION_SHIFT 0u  /* direction [1:0]: Which lines carry the inputs. Values: Direction. */
#define NEURRAM_MVM_CONFIG_DIRECTION_WIDTH 2u
#define NEURRAM_MVM_CONFIG_DIRECTION_MASK 0x00000003u
#define NEURRAM_MVM_CONFIG_DIRECTION_RESET 0u
#define NEURRAM_MVM_CONFIG_INPUT_SOURCE_SHIFT 2u  /* input_source [3:2]: Input buffer (bit-serial) or ternary register. Values: InputSource. */
#define NEURRAM_MVM_CONFIG_INPUT_SOURCE_WIDTH 2u
#define NEURRAM_MVM_CONFIG_INPUT_SOURCE_MASK 0x0000000Cu
#define NEURRAM_MVM_CONFIG_INPUT_SOURCE_RESET 0u
#define NEURRAM_MVM_CONFIG_INPUT_BITS_SHIFT 4u  /* input_bits [7:4] (bits): Input precision: unsigned 1-8, signed 2-8. */
#define NEURRAM_MVM_CONFIG_INPUT_BITS_WIDTH 4u
#define NEURRAM_MVM_CONFIG_INPUT_BITS_MASK 0x000000F0u
#define NEURRAM_MVM_CONFIG_INPUT_BITS_RESET 1u
#define NEURRAM_MVM_CONFIG_INPUT_SIGNED_SHIFT 8u  /* input_signed [8]: Inputs are sign-magnitude. */
#define NEURRAM_MVM_CONFIG_INPUT_SIGNED_WIDTH 1u
#define NEURRAM_MVM_CONFIG_INPUT_SIGNED_MASK 0x00000100u
#define NEURRAM_MVM_CONFIG_INPUT_SIGNED_RESET 0u
#define NEURRAM_MVM_CONFIG_CONVERSION_SHIFT 9u  /* conversion [10:9]: Output conversion. Values: Conversion. */
#define NEURRAM_MVM_CONFIG_CONVERSION_WIDTH 2u
#define NEURRAM_MVM_CONFIG_CONVERSION_MASK 0x00000600u
#define NEURRAM_MVM_CONFIG_CONVERSION_RESET 0u
#define NEURRAM_MVM_CONFIG_OUTPUT_BITS_SHIFT 11u  /* output_bits [14:11] (bits): SAR precision including the sign, 1-8. */
#define NEURRAM_MVM_CONFIG_OUTPUT_BITS_WIDTH 4u
#define NEURRAM_MVM_CONFIG_OUTPUT_BITS_MASK 0x00007800u
#define NEURRAM_MVM_CONFIG_OUTPUT_BITS_RESET 8u
#define NEURRAM_MVM_CONFIG_ACTIVATION_SHIFT 15u  /* activation [16:15]: Activation applied by the conversion. Values: Activation. */
#define NEURRAM_MVM_CONFIG_ACTIVATION_WIDTH 2u
#define NEURRAM_MVM_CONFIG_ACTIVATION_MASK 0x00018000u
#define NEURRAM_MVM_CONFIG_ACTIVATION_RESET 0u
#define NEURRAM_MVM_CONFIG_STOCHASTIC_SHIFT 17u  /* stochastic [17]: Inject LFSR noise before every comparison. */
#define NEURRAM_MVM_CONFIG_STOCHASTIC_WIDTH 1u
#define NEURRAM_MVM_CONFIG_STOCHASTIC_MASK 0x00020000u
#define NEURRAM_MVM_CONFIG_STOCHASTIC_RESET 0u

/* MVM_TIMING (RW, 0x011): Integration timing. */
#define NEURRAM_MVM_TIMING_ADDR 0x011u
#define NEURRAM_MVM_TIMING_RESET 0x00000001u
#define NEURRAM_MVM_TIMING_PULSE_MULTIPLIER_SHIFT 0u  /* pulse_multiplier [7:0] (pulses): Integrations per unit of bit weight: bit k is integrated pulse_multiplier·2^k times. */
#define NEURRAM_MVM_TIMING_PULSE_MULTIPLIER_WIDTH 8u
#define NEURRAM_MVM_TIMING_PULSE_MULTIPLIER_MASK 0x000000FFu
#define NEURRAM_MVM_TIMING_PULSE_MULTIPLIER_RESET 1u

/* NEURON_CONFIG (RW, 0x012): Neuron conversion settings. */
#define NEURRAM_NEURON_CONFIG_ADDR 0x012u
#define NEURRAM_NEURON_CONFIG_RESET 0x00007F64u
#define NEURRAM_NEURON_CONFIG_MAX_STEPS_SHIFT 0u  /* max_steps [6:0] (steps): Charge-decrement steps at most (1-127). */
#define NEURRAM_NEURON_CONFIG_MAX_STEPS_WIDTH 7u
#define NEURRAM_NEURON_CONFIG_MAX_STEPS_MASK 0x0000007Fu
#define NEURRAM_NEURON_CONFIG_MAX_STEPS_RESET 100u
#define NEURRAM_NEURON_CONFIG_CLIP_SHIFT 8u  /* clip [14:8] (steps): Clipped-ReLU ceiling on the output magnitude. */
#define NEURRAM_NEURON_CONFIG_CLIP_WIDTH 7u
#define NEURRAM_NEURON_CONFIG_CLIP_MASK 0x00007F00u
#define NEURRAM_NEURON_CONFIG_CLIP_RESET 127u

/* BATCH (RW, 0x013): Batch size. */
#define NEURRAM_BATCH_ADDR 0x013u
#define NEURRAM_BATCH_RESET 0x00010001u
#define NEURRAM_BATCH_COUNT_SHIFT 0u  /* count [12:0] (vectors): MVMs per CTRL.start, 1..batch_depth. */
#define NEURRAM_BATCH_COUNT_WIDTH 13u
#define NEURRAM_BATCH_COUNT_MASK 0x00001FFFu
#define NEURRAM_BATCH_COUNT_RESET 1u
#define NEURRAM_BATCH_RECURRENT_STEPS_SHIFT 16u  /* recurrent_steps [23:16] (steps): Recurrent mode: MVMs chained per vector. */
#define NEURRAM_BATCH_RECURRENT_STEPS_WIDTH 8u
#define NEURRAM_BATCH_RECURRENT_STEPS_MASK 0x00FF0000u
#define NEURRAM_BATCH_RECURRENT_STEPS_RESET 1u

/* LFSR_SEED (RW, 0x018): Seed of the stochastic-neuron LFSRs (loaded on CTRL.start). */
#define NEURRAM_LFSR_SEED_ADDR 0x018u
#define NEURRAM_LFSR_SEED_RESET 0x0000ACE1u
#define NEURRAM_LFSR_SEED_SEED_SHIFT 0u  /* seed [31:0]: Non-zero seed; each core mixes in its index. */
#define NEURRAM_LFSR_SEED_SEED_WIDTH 32u
#define NEURRAM_LFSR_SEED_SEED_MASK 0xFFFFFFFFu
#define NEURRAM_LFSR_SEED_SEED_RESET 0xACE1u

/* STOCHASTIC (RW, 0x019): Stochastic-neuron noise. */
#define NEURRAM_STOCHASTIC_ADDR 0x019u
#define NEURRAM_STOCHASTIC_RESET 0x00000190u
#define NEURRAM_STOCHASTIC_NOISE_UV_SHIFT 0u  /* noise_uV [13:0] (µV): Largest injected noise charge, referred to the integrator. */
#define NEURRAM_STOCHASTIC_NOISE_UV_WIDTH 14u
#define NEURRAM_STOCHASTIC_NOISE_UV_MASK 0x00003FFFu
#define NEURRAM_STOCHASTIC_NOISE_UV_RESET 400u

/* CELL_ADDR (RW, 0x020): Cell for CTRL.cell_program and CTRL.cell_read. */
#define NEURRAM_CELL_ADDR_ADDR 0x020u
#define NEURRAM_CELL_ADDR_RESET 0x00000000u
#define NEURRAM_CELL_ADDR_CORE_SHIFT 0u  /* core [5:0] (core): Core index. */
#define NEURRAM_CELL_ADDR_CORE_WIDTH 6u
#define NEURRAM_CELL_ADDR_CORE_MASK 0x0000003Fu
#define NEURRAM_CELL_ADDR_CORE_RESET 0u
#define NEURRAM_CELL_ADDR_ROW_SHIFT 6u  /* row [17:6] (line): Bitline / wordline index. */
#define NEURRAM_CELL_ADDR_ROW_WIDTH 12u
#define NEURRAM_CELL_ADDR_ROW_MASK 0x0003FFC0u
#define NEURRAM_CELL_ADDR_ROW_RESET 0u
#define NEURRAM_CELL_ADDR_COL_SHIFT 18u  /* col [29:18] (line): Source line index. */
#define NEURRAM_CELL_ADDR_COL_WIDTH 12u
#define NEURRAM_CELL_ADDR_COL_MASK 0x3FFC0000u
#define NEURRAM_CELL_ADDR_COL_RESET 0u

/* CELL_PULSE (RW, 0x021): Programming pulse (docs/chip.md §3). */
#define NEURRAM_CELL_PULSE_ADDR 0x021u
#define NEURRAM_CELL_PULSE_RESET 0x09C44B00u
#define NEURRAM_CELL_PULSE_POLARITY_SHIFT 0u  /* polarity [0]: SET or RESET. Values: PulsePolarity. */
#define NEURRAM_CELL_PULSE_POLARITY_WIDTH 1u
#define NEURRAM_CELL_PULSE_POLARITY_MASK 0x00000001u
#define NEURRAM_CELL_PULSE_POLARITY_RESET 0u
#define NEURRAM_CELL_PULSE_AMPLITUDE_MV_SHIFT 4u  /* amplitude_mV [15:4] (mV): Pulse amplitude on the bitline (SET) or source line (RESET). */
#define NEURRAM_CELL_PULSE_AMPLITUDE_MV_WIDTH 12u
#define NEURRAM_CELL_PULSE_AMPLITUDE_MV_MASK 0x0000FFF0u
#define NEURRAM_CELL_PULSE_AMPLITUDE_MV_RESET 1200u
#define NEURRAM_CELL_PULSE_GATE_MV_SHIFT 16u  /* gate_mV [28:16] (mV): Wordline voltage: SET compliance, or 5 V for RESET. */
#define NEURRAM_CELL_PULSE_GATE_MV_WIDTH 13u
#define NEURRAM_CELL_PULSE_GATE_MV_MASK 0x1FFF0000u
#define NEURRAM_CELL_PULSE_GATE_MV_RESET 2500u

/* CELL_TIMING (RW, 0x022): Programming pulse width and read voltage. */
#define NEURRAM_CELL_TIMING_ADDR 0x022u
#define NEURRAM_CELL_TIMING_RESET 0x009603E8u
#define NEURRAM_CELL_TIMING_WIDTH_NS_SHIFT 0u  /* width_ns [15:0] (ns): Programming pulse width. */
#define NEURRAM_CELL_TIMING_WIDTH_NS_WIDTH 16u
#define NEURRAM_CELL_TIMING_WIDTH_NS_MASK 0x0000FFFFu
#define NEURRAM_CELL_TIMING_WIDTH_NS_RESET 1000u
#define NEURRAM_CELL_TIMING_READ_MV_SHIFT 16u  /* read_mV [27:16] (mV): Read voltage across the cell. */
#define NEURRAM_CELL_TIMING_READ_MV_WIDTH 12u
#define NEURRAM_CELL_TIMING_READ_MV_MASK 0x0FFF0000u
#define NEURRAM_CELL_TIMING_READ_MV_RESET 150u

/* CELL_RESULT (RO, 0x023): Result of the last CTRL.cell_read. */
#define NEURRAM_CELL_RESULT_ADDR 0x023u
#define NEURRAM_CELL_RESULT_RESET 0x00000000u
#define NEURRAM_CELL_RESULT_G_10NS_SHIFT 0u  /* g_10nS [15:0] (10 nS): Measured conductance, 10 nS per LSB (saturates at 655.35 µS). */
#define NEURRAM_CELL_RESULT_G_10NS_WIDTH 16u
#define NEURRAM_CELL_RESULT_G_10NS_MASK 0x0000FFFFu
#define NEURRAM_CELL_RESULT_G_10NS_RESET 0u
#define NEURRAM_CELL_RESULT_VALID_SHIFT 16u  /* valid [16]: A read has completed since reset. */
#define NEURRAM_CELL_RESULT_VALID_WIDTH 1u
#define NEURRAM_CELL_RESULT_VALID_MASK 0x00010000u
#define NEURRAM_CELL_RESULT_VALID_RESET 0u

/* WV_SET (RW, 0x024): SET ramp of the write-verify engine. */
#define NEURRAM_WV_SET_ADDR 0x024u
#define NEURRAM_WV_SET_RESET 0x64CE44B0u
#define NEURRAM_WV_SET_SET_START_MV_SHIFT 0u  /* set_start_mV [11:0] (mV): First SET amplitude of a round. */
#define NEURRAM_WV_SET_SET_START_MV_WIDTH 12u
#define NEURRAM_WV_SET_SET_START_MV_MASK 0x00000FFFu
#define NEURRAM_WV_SET_SET_START_MV_RESET 1200u
#define NEURRAM_WV_SET_SET_STOP_MV_SHIFT 12u  /* set_stop_mV [23:12] (mV): Top SET amplitude. */
#define NEURRAM_WV_SET_SET_STOP_MV_WIDTH 12u
#define NEURRAM_WV_SET_SET_STOP_MV_MASK 0x00FFF000u
#define NEURRAM_WV_SET_SET_STOP_MV_RESET 3300u
#define NEURRAM_WV_SET_STEP_MV_SHIFT 24u  /* step_mV [31:24] (mV): Amplitude increment per pulse within a round. */
#define NEURRAM_WV_SET_STEP_MV_WIDTH 8u
#define NEURRAM_WV_SET_STEP_MV_MASK 0xFF000000u
#define NEURRAM_WV_SET_STEP_MV_RESET 100u

/* WV_RESET (RW, 0x025): RESET ramp of the write-verify engine. */
#define NEURRAM_WV_RESET_ADDR 0x025u
#define NEURRAM_WV_RESET_RESET 0x00CE44B0u
#define NEURRAM_WV_RESET_RESET_START_MV_SHIFT 0u  /* reset_start_mV [11:0] (mV): First RESET amplitude of a round. */
#define NEURRAM_WV_RESET_RESET_START_MV_WIDTH 12u
#define NEURRAM_WV_RESET_RESET_START_MV_MASK 0x00000FFFu
#define NEURRAM_WV_RESET_RESET_START_MV_RESET 1200u
#define NEURRAM_WV_RESET_RESET_STOP_MV_SHIFT 12u  /* reset_stop_mV [23:12] (mV): Top RESET amplitude. */
#define NEURRAM_WV_RESET_RESET_STOP_MV_WIDTH 12u
#define NEURRAM_WV_RESET_RESET_STOP_MV_MASK 0x00FFF000u
#define NEURRAM_WV_RESET_RESET_STOP_MV_RESET 3300u

/* WV_GATE (RW, 0x026): Wordline voltages of the write-verify engine. */
#define NEURRAM_WV_GATE_ADDR 0x026u
#define NEURRAM_WV_GATE_RESET 0x027109C4u
#define NEURRAM_WV_GATE_SET_GATE_MV_SHIFT 0u  /* set_gate_mV [12:0] (mV): Wordline during SET (the compliance). */
#define NEURRAM_WV_GATE_SET_GATE_MV_WIDTH 13u
#define NEURRAM_WV_GATE_SET_GATE_MV_MASK 0x00001FFFu
#define NEURRAM_WV_GATE_SET_GATE_MV_RESET 2500u
#define NEURRAM_WV_GATE_RESET_GATE_MV_SHIFT 13u  /* reset_gate_mV [25:13] (mV): Wordline during RESET. */
#define NEURRAM_WV_GATE_RESET_GATE_MV_WIDTH 13u
#define NEURRAM_WV_GATE_RESET_GATE_MV_MASK 0x03FFE000u
#define NEURRAM_WV_GATE_RESET_GATE_MV_RESET 5000u

/* WV_LIMITS (RW, 0x027): Budgets and size of a write-verify operation. */
#define NEURRAM_WV_LIMITS_ADDR 0x027u
#define NEURRAM_WV_LIMITS_RESET 0x00121E28u
#define NEURRAM_WV_LIMITS_MAX_ROUNDS_SHIFT 0u  /* max_rounds [7:0] (rounds): SET or RESET rounds per cell at most. */
#define NEURRAM_WV_LIMITS_MAX_ROUNDS_WIDTH 8u
#define NEURRAM_WV_LIMITS_MAX_ROUNDS_MASK 0x000000FFu
#define NEURRAM_WV_LIMITS_MAX_ROUNDS_RESET 40u
#define NEURRAM_WV_LIMITS_MAX_TOP_PULSES_SHIFT 8u  /* max_top_pulses [15:8] (pulses): Pulses at the top amplitude after which a round fails its cell. */
#define NEURRAM_WV_LIMITS_MAX_TOP_PULSES_WIDTH 8u
#define NEURRAM_WV_LIMITS_MAX_TOP_PULSES_MASK 0x0000FF00u
#define NEURRAM_WV_LIMITS_MAX_TOP_PULSES_RESET 30u
#define NEURRAM_WV_LIMITS_CONFIRM_READS_SHIFT 16u  /* confirm_reads [19:16] (reads): Reads inside the window that accept a cell. */
#define NEURRAM_WV_LIMITS_CONFIRM_READS_WIDTH 4u
#define NEURRAM_WV_LIMITS_CONFIRM_READS_MASK 0x000F0000u
#define NEURRAM_WV_LIMITS_CONFIRM_READS_RESET 2u
#define NEURRAM_WV_LIMITS_ROWS_SHIFT 20u  /* rows [26:20] (rows): Rows of one operation, from CELL_ADDR.row (1..BUFFERS.wv_rows). */
#define NEURRAM_WV_LIMITS_ROWS_WIDTH 7u
#define NEURRAM_WV_LIMITS_ROWS_MASK 0x07F00000u
#define NEURRAM_WV_LIMITS_ROWS_RESET 1u

/* WV_OFF (RW, 0x028): Write-verify of "off" cells (targets below g_off). */
#define NEURRAM_WV_OFF_ADDR 0x028u
#define NEURRAM_WV_OFF_RESET 0x000649C4u
#define NEURRAM_WV_OFF_OFF_START_MV_SHIFT 0u  /* off_start_mV [11:0] (mV): First RESET amplitude for off targets. */
#define NEURRAM_WV_OFF_OFF_START_MV_WIDTH 12u
#define NEURRAM_WV_OFF_OFF_START_MV_MASK 0x00000FFFu
#define NEURRAM_WV_OFF_OFF_START_MV_RESET 2500u
#define NEURRAM_WV_OFF_G_OFF_10NS_SHIFT 12u  /* g_off_10nS [27:12] (10 nS): Targets below this are off: accepted when a read is at most this. */
#define NEURRAM_WV_OFF_G_OFF_10NS_WIDTH 16u
#define NEURRAM_WV_OFF_G_OFF_10NS_MASK 0x0FFFF000u
#define NEURRAM_WV_OFF_G_OFF_10NS_RESET 100u

/* CORE_BIAS (RW, 0x100 + 0x10·core, 64 instances): Input-driver amplitudes of one core (calibrated per core). */
#define NEURRAM_CORE_BIAS_ADDR 0x100u
#define NEURRAM_CORE_BIAS_RESET 0x00019064u
#define NEURRAM_CORE_BIAS_STRIDE 0x10u
#define NEURRAM_CORE_BIAS_INSTANCES 64u
#define NEURRAM_CORE_BIAS_ADDR_OF(i) (NEURRAM_CORE_BIAS_ADDR + (uint32_t)(i) * NEURRAM_CORE_BIAS_STRIDE)
#define NEURRAM_CORE_BIAS_V_POS_MV_SHIFT 0u  /* v_pos_mV [9:0] (mV): Input line voltage above V_ref for a +1 pulse. */
#define NEURRAM_CORE_BIAS_V_POS_MV_WIDTH 10u
#define NEURRAM_CORE_BIAS_V_POS_MV_MASK 0x000003FFu
#define NEURRAM_CORE_BIAS_V_POS_MV_RESET 100u
#define NEURRAM_CORE_BIAS_V_NEG_MV_SHIFT 10u  /* v_neg_mV [19:10] (mV): Input line voltage below V_ref for a -1 pulse. */
#define NEURRAM_CORE_BIAS_V_NEG_MV_WIDTH 10u
#define NEURRAM_CORE_BIAS_V_NEG_MV_MASK 0x000FFC00u
#define NEURRAM_CORE_BIAS_V_NEG_MV_RESET 100u

/* CORE_NEURON (RW, 0x101 + 0x10·core, 64 instances): Neuron charge packet of one core. */
#define NEURRAM_CORE_NEURON_ADDR 0x101u
#define NEURRAM_CORE_NEURON_RESET 0x00000064u
#define NEURRAM_CORE_NEURON_STRIDE 0x10u
#define NEURRAM_CORE_NEURON_INSTANCES 64u
#define NEURRAM_CORE_NEURON_ADDR_OF(i) (NEURRAM_CORE_NEURON_ADDR + (uint32_t)(i) * NEURRAM_CORE_NEURON_STRIDE)
#define NEURRAM_CORE_NEURON_PACKET_UV_SHIFT 0u  /* packet_uV [13:0] (µV): Charge-decrement packet, referred to the integrator voltage. */
#define NEURRAM_CORE_NEURON_PACKET_UV_WIDTH 14u
#define NEURRAM_CORE_NEURON_PACKET_UV_MASK 0x00003FFFu
#define NEURRAM_CORE_NEURON_PACKET_UV_RESET 100u

/* CORE_STATUS (RO, 0x102 + 0x10·core, 64 instances): State of one core. */
#define NEURRAM_CORE_STATUS_ADDR 0x102u
#define NEURRAM_CORE_STATUS_RESET 0x00000000u
#define NEURRAM_CORE_STATUS_STRIDE 0x10u
#define NEURRAM_CORE_STATUS_INSTANCES 64u
#define NEURRAM_CORE_STATUS_ADDR_OF(i) (NEURRAM_CORE_STATUS_ADDR + (uint32_t)(i) * NEURRAM_CORE_STATUS_STRIDE)
#define NEURRAM_CORE_STATUS_BUSY_SHIFT 0u  /* busy [0]: Running a batch. */
#define NEURRAM_CORE_STATUS_BUSY_WIDTH 1u
#define NEURRAM_CORE_STATUS_BUSY_MASK 0x00000001u
#define NEURRAM_CORE_STATUS_BUSY_RESET 0u
#define NEURRAM_CORE_STATUS_ENABLED_SHIFT 1u  /* enabled [1]: Enabled in CORE_ENABLE. */
#define NEURRAM_CORE_STATUS_ENABLED_WIDTH 1u
#define NEURRAM_CORE_STATUS_ENABLED_MASK 0x00000002u
#define NEURRAM_CORE_STATUS_ENABLED_RESET 0u
#define NEURRAM_CORE_STATUS_BATCH_INDEX_SHIFT 16u  /* batch_index [28:16]: Vector of the batch in progress (or the count when done). */
#define NEURRAM_CORE_STATUS_BATCH_INDEX_WIDTH 13u
#define NEURRAM_CORE_STATUS_BATCH_INDEX_MASK 0x1FFF0000u
#define NEURRAM_CORE_STATUS_BATCH_INDEX_RESET 0u

/* COUNT_MVM (RO, 0x108 + 0x10·core, 64 instances): MVMs completed. */
#define NEURRAM_COUNT_MVM_ADDR 0x108u
#define NEURRAM_COUNT_MVM_RESET 0x00000000u
#define NEURRAM_COUNT_MVM_STRIDE 0x10u
#define NEURRAM_COUNT_MVM_INSTANCES 64u
#define NEURRAM_COUNT_MVM_ADDR_OF(i) (NEURRAM_COUNT_MVM_ADDR + (uint32_t)(i) * NEURRAM_COUNT_MVM_STRIDE)
#define NEURRAM_COUNT_MVM_COUNT_SHIFT 0u  /* count [31:0] (MVMs): Wraps at 2^32. */
#define NEURRAM_COUNT_MVM_COUNT_WIDTH 32u
#define NEURRAM_COUNT_MVM_COUNT_MASK 0xFFFFFFFFu
#define NEURRAM_COUNT_MVM_COUNT_RESET 0u

/* COUNT_PULSE (RO, 0x109 + 0x10·core, 64 instances): Input pulses integrated (each drives every input line once). */
#define NEURRAM_COUNT_PULSE_ADDR 0x109u
#define NEURRAM_COUNT_PULSE_RESET 0x00000000u
#define NEURRAM_COUNT_PULSE_STRIDE 0x10u
#define NEURRAM_COUNT_PULSE_INSTANCES 64u
#define NEURRAM_COUNT_PULSE_ADDR_OF(i) (NEURRAM_COUNT_PULSE_ADDR + (uint32_t)(i) * NEURRAM_COUNT_PULSE_STRIDE)
#define NEURRAM_COUNT_PULSE_COUNT_SHIFT 0u  /* count [31:0] (pulses): Wraps at 2^32. */
#define NEURRAM_COUNT_PULSE_COUNT_WIDTH 32u
#define NEURRAM_COUNT_PULSE_COUNT_MASK 0xFFFFFFFFu
#define NEURRAM_COUNT_PULSE_COUNT_RESET 0u

/* COUNT_COMPARE (RO, 0x10A + 0x10·core, 64 instances): Neuron comparisons (all output neurons at once). */
#define NEURRAM_COUNT_COMPARE_ADDR 0x10Au
#define NEURRAM_COUNT_COMPARE_RESET 0x00000000u
#define NEURRAM_COUNT_COMPARE_STRIDE 0x10u
#define NEURRAM_COUNT_COMPARE_INSTANCES 64u
#define NEURRAM_COUNT_COMPARE_ADDR_OF(i) (NEURRAM_COUNT_COMPARE_ADDR + (uint32_t)(i) * NEURRAM_COUNT_COMPARE_STRIDE)
#define NEURRAM_COUNT_COMPARE_COUNT_SHIFT 0u  /* count [31:0] (compares): Wraps at 2^32. */
#define NEURRAM_COUNT_COMPARE_COUNT_WIDTH 32u
#define NEURRAM_COUNT_COMPARE_COUNT_MASK 0xFFFFFFFFu
#define NEURRAM_COUNT_COMPARE_COUNT_RESET 0u

/* COUNT_STEP (RO, 0x10B + 0x10·core, 64 instances): Charge-decrement or SAR steps (all active neurons at once). */
#define NEURRAM_COUNT_STEP_ADDR 0x10Bu
#define NEURRAM_COUNT_STEP_RESET 0x00000000u
#define NEURRAM_COUNT_STEP_STRIDE 0x10u
#define NEURRAM_COUNT_STEP_INSTANCES 64u
#define NEURRAM_COUNT_STEP_ADDR_OF(i) (NEURRAM_COUNT_STEP_ADDR + (uint32_t)(i) * NEURRAM_COUNT_STEP_STRIDE)
#define NEURRAM_COUNT_STEP_COUNT_SHIFT 0u  /* count [31:0] (steps): Wraps at 2^32. */
#define NEURRAM_COUNT_STEP_COUNT_WIDTH 32u
#define NEURRAM_COUNT_STEP_COUNT_MASK 0xFFFFFFFFu
#define NEURRAM_COUNT_STEP_COUNT_RESET 0u

/* COUNT_PROGRAM (RO, 0x10C + 0x10·core, 64 instances): SET and RESET pulses applied. */
#define NEURRAM_COUNT_PROGRAM_ADDR 0x10Cu
#define NEURRAM_COUNT_PROGRAM_RESET 0x00000000u
#define NEURRAM_COUNT_PROGRAM_STRIDE 0x10u
#define NEURRAM_COUNT_PROGRAM_INSTANCES 64u
#define NEURRAM_COUNT_PROGRAM_ADDR_OF(i) (NEURRAM_COUNT_PROGRAM_ADDR + (uint32_t)(i) * NEURRAM_COUNT_PROGRAM_STRIDE)
#define NEURRAM_COUNT_PROGRAM_COUNT_SHIFT 0u  /* count [31:0] (pulses): Wraps at 2^32. */
#define NEURRAM_COUNT_PROGRAM_COUNT_WIDTH 32u
#define NEURRAM_COUNT_PROGRAM_COUNT_MASK 0xFFFFFFFFu
#define NEURRAM_COUNT_PROGRAM_COUNT_RESET 0u

/* COUNT_READ (RO, 0x10D + 0x10·core, 64 instances): Single-cell reads. */
#define NEURRAM_COUNT_READ_ADDR 0x10Du
#define NEURRAM_COUNT_READ_RESET 0x00000000u
#define NEURRAM_COUNT_READ_STRIDE 0x10u
#define NEURRAM_COUNT_READ_INSTANCES 64u
#define NEURRAM_COUNT_READ_ADDR_OF(i) (NEURRAM_COUNT_READ_ADDR + (uint32_t)(i) * NEURRAM_COUNT_READ_STRIDE)
#define NEURRAM_COUNT_READ_COUNT_SHIFT 0u  /* count [31:0] (reads): Wraps at 2^32. */
#define NEURRAM_COUNT_READ_COUNT_WIDTH 32u
#define NEURRAM_COUNT_READ_COUNT_MASK 0xFFFFFFFFu
#define NEURRAM_COUNT_READ_COUNT_RESET 0u

/* COUNT_BUSY (RO, 0x10E + 0x10·core, 64 instances): Clock cycles spent running batches. */
#define NEURRAM_COUNT_BUSY_ADDR 0x10Eu
#define NEURRAM_COUNT_BUSY_RESET 0x00000000u
#define NEURRAM_COUNT_BUSY_STRIDE 0x10u
#define NEURRAM_COUNT_BUSY_INSTANCES 64u
#define NEURRAM_COUNT_BUSY_ADDR_OF(i) (NEURRAM_COUNT_BUSY_ADDR + (uint32_t)(i) * NEURRAM_COUNT_BUSY_STRIDE)
#define NEURRAM_COUNT_BUSY_COUNT_SHIFT 0u  /* count [31:0] (cycles): Wraps at 2^32. */
#define NEURRAM_COUNT_BUSY_COUNT_WIDTH 32u
#define NEURRAM_COUNT_BUSY_COUNT_MASK 0xFFFFFFFFu
#define NEURRAM_COUNT_BUSY_COUNT_RESET 0u

#endif /* NEURRAM_REGS_H */
