"""cocotb tests of one core (run by tests/test_cosim_core.py under Verilator).

The analog array of each core is the Python model from neurram.models (noise-free here); the
expected outputs come from neurram.sim.fastcore, which computes the same MVMs in closed form.
"""


import cocotb
import numpy as np
from cocotb.triggers import ClockCycles

from neurram.spec import layout
from neurram.spec import regmap as R
from neurram.spec.enums import Activation, Conversion, Direction, InputSource, PulsePolarity
from neurram.models.core import AnalogCore, pulse_counts
from neurram.sim.cosim.harness import ChipHarness
from neurram.sim.fastcore import run_batch
from neurram.spec.mvm import MvmSettings

IDENT = {"CHIP_ID", "VERSION", "GEOMETRY", "PRECISION", "BUFFERS", "FEATURES", "CLOCK"}


async def configure(h, core=0, *, bits=1, signed=False, conversion=Conversion.DECREMENT,
                    direction=Direction.FORWARD, multiplier=1, max_steps=100, batch=1,
                    source=InputSource.BUFFER, output_bits=8, activation=Activation.NONE, clip=127):
    await h.write_reg("CORE_ENABLE", 1 << core)
    await h.write_reg("CORE_SELECT", 1 << core)
    await h.write_reg("MVM_CONFIG", R.pack("MVM_CONFIG", direction=direction, input_source=source,
                                           input_bits=bits, input_signed=int(signed), conversion=conversion,
                                           output_bits=output_bits, activation=activation))
    await h.write_reg("MVM_TIMING", R.pack("MVM_TIMING", pulse_multiplier=multiplier))
    await h.write_reg("NEURON_CONFIG", R.pack("NEURON_CONFIG", max_steps=max_steps, clip=clip))
    await h.write_reg("BATCH", R.pack("BATCH", count=batch))


async def run_mvm_batch(h, codes, *, core=0, signed=False, **kw):
    """Load a batch of input codes, run it, return the output bytes (B, lines)."""
    cfg = h.config
    codes = np.atleast_2d(codes)
    await configure(h, core, signed=signed, batch=codes.shape[0], **kw)
    full = np.zeros((codes.shape[0], cfg.lines), np.int64)
    full[:, :codes.shape[1]] = codes
    await h.write_buffer(R.Space.INPUT, core, 0, layout.input_words(full, cfg, signed))
    await h.write_reg("CTRL", R.pack("CTRL", start=1))
    await ClockCycles(h.dut.clk, 4)
    await h.wait_idle(poll_cycles=16)
    n = codes.shape[0] * 8 * cfg.words_per_line_vector
    words = await h.read_buffer(R.Space.OUTPUT, core, 0, n)
    return layout.output_bytes_from_words(words, cfg, codes.shape[0])


def reference(h, g, codes, *, signed=False, bits=1, conversion=Conversion.DECREMENT, direction=Direction.FORWARD,
              multiplier=1, max_steps=100, mask=None, polarity=None, output_bits=8, activation=Activation.NONE,
              clip=127, v_pos=100, v_neg=100, packet=100):
    """Expected output bytes from a fresh model with the same seed and conductances."""
    cfg = h.config
    ref = AnalogCore(cfg.rows, cfg.cols, h.params, seed=h.core_seed(0))
    ref.set_conductance(g)
    n_in = cfg.rows if direction == Direction.FORWARD else cfg.cols
    full = np.zeros((np.atleast_2d(codes).shape[0], n_in), np.int64)
    full[:, :np.atleast_2d(codes).shape[1]] = codes
    s = MvmSettings(direction=direction, input_bits=bits, input_signed=signed, conversion=conversion,
                    pulse_multiplier=multiplier, max_steps=max_steps, output_bits=output_bits,
                    activation=activation, clip=clip)
    mask = np.ones(cfg.lines, bool) if mask is None else mask
    polarity = np.zeros(cfg.lines, bool) if polarity is None else polarity
    return run_batch(ref, s, codes=full, mask=mask, polarity=polarity,
                     v_pos_mV=v_pos, v_neg_mV=v_neg, packet_uV=packet)


def packet_for(h, g, codes, *, bits, signed, direction, polarity, steps=60):
    """A charge packet that spreads the largest output of this batch over about ``steps`` steps."""
    cfg = h.config
    ref = AnalogCore(cfg.rows, cfg.cols, h.params, seed=h.core_seed(0))
    ref.set_conductance(g)
    n_in = codes.shape[1]
    n_plus, n_minus = pulse_counts(codes, bits, signed, 1, negate=polarity[:n_in])
    q = ref.mvm_charge(direction, n_plus, n_minus, 100, 100)
    return int(min(16383, max(1, np.ceil(np.abs(q).max() / steps / 1000))))


def random_conductances(cfg, rng):
    """A differential-looking weight matrix in µS: about half the cells near 0, the rest spread."""
    g = rng.uniform(0, 40, (cfg.rows, cfg.cols))
    g[rng.random(g.shape) < 0.5] = rng.uniform(0, 1, (cfg.rows, cfg.cols))[rng.random(g.shape) < 0.5].mean()
    return g


@cocotb.test()
async def registers_reset_and_read_write(dut):
    """Every register reads its reset (ID registers the configuration); RW registers hold writes."""
    h = ChipHarness(dut)
    await h.start()
    cfg = h.config
    geometry = R.unpack("GEOMETRY", await h.read_reg("GEOMETRY"))
    assert (geometry["core_rows"], geometry["core_cols"]) == cfg.core_grid
    assert (geometry["rows"], geometry["cols"]) == (cfg.rows, cfg.cols)
    assert await h.read_reg("CHIP_ID") == R.CHIP_ID_MAGIC
    prec = R.unpack("PRECISION", await h.read_reg("PRECISION"))
    assert prec["input_bits_max"] == cfg.input_bits_max and prec["max_steps_limit"] == cfg.max_steps_limit
    assert R.unpack("BUFFERS", await h.read_reg("BUFFERS"))["batch_depth"] == cfg.batch_depth
    for reg in R.REGISTERS.values():
        if reg.name in IDENT or reg.access == "WS":
            continue
        for i in range(min(reg.count, cfg.n_cores if reg.index == "core" else reg.count)):
            value = await h.read(reg.address(i))
            if reg.access == "RW":
                assert value == reg.reset, f"{reg.name}[{i}] reset {value:#x} != {reg.reset:#x}"
    rng = np.random.default_rng(1)
    for name in ("MVM_CONFIG", "MVM_TIMING", "NEURON_CONFIG", "BATCH", "LFSR_SEED", "CELL_ADDR",
                 "CELL_PULSE", "CELL_TIMING", "CORE_BIAS", "CORE_NEURON"):
        reg = R.REGISTERS[name]
        value = int(rng.integers(0, 1 << 32)) & reg.mask
        await h.write_reg(name, value)
        assert await h.read_reg(name) == value, name
        await h.write_reg(name, reg.reset)
    # RO registers ignore writes; WS registers read 0.
    await h.write_reg("COUNT_MVM", 0x1234)
    assert await h.read_reg("COUNT_MVM") == 0
    assert await h.read_reg("CTRL") == 0


@cocotb.test()
async def sequencer_pulse_counts(dut):
    """For every bit width and both encodings the sequencer drives the paper's two-phase pulses."""
    h = ChipHarness(dut)
    await h.start()
    cfg = h.config
    rng = np.random.default_rng(2)
    h.models[0].set_conductance(np.full((cfg.rows, cfg.cols), 10.0))
    cases = [(b, False) for b in range(1, cfg.input_bits_max + 1)] + \
            [(b, True) for b in range(2, cfg.input_bits_max + 1)]
    for bits, signed in cases:
        for multiplier in (1, 3):
            if signed:
                top = (1 << (bits - 1)) - 1
                codes = rng.integers(-top, top + 1, cfg.rows)
            else:
                codes = rng.integers(0, 1 << bits, cfg.rows)
            before = await h.read_reg("COUNT_PULSE")
            await run_mvm_batch(h, codes, bits=bits, signed=signed, conversion=Conversion.SIGN, multiplier=multiplier)
            after = await h.read_reg("COUNT_PULSE")
            magnitude_bits = bits - 1 if signed else bits
            assert after - before == 2 * multiplier * ((1 << magnitude_bits) - 1), (bits, signed, after - before)
            direction, n_plus, n_minus = h.drivers[0].last_counts
            exp_plus, exp_minus = pulse_counts(codes, bits, signed, multiplier)
            assert direction == Direction.FORWARD
            assert np.array_equal(n_plus, exp_plus), (bits, signed)
            assert np.array_equal(n_minus, exp_minus), (bits, signed)


@cocotb.test()
async def mvm_forward_backward_exact(dut):
    """Forward and backward MVMs, unsigned and signed 1-8 bits: outputs equal the model exactly."""
    h = ChipHarness(dut)
    await h.start()
    cfg = h.config
    rng = np.random.default_rng(3)
    g = rng.uniform(0.0, 40.0, (cfg.rows, cfg.cols))
    h.models[0].set_conductance(g)
    # Differential drive: odd lines carry -x, as the G- rows of weight pairs do.
    polarity = np.zeros(cfg.lines, bool)
    polarity[1::2] = True
    await h.write_buffer(R.Space.POLARITY, 0, 0, layout.bits_to_words(polarity, cfg.words_per_line_vector))
    for direction in (Direction.FORWARD, Direction.BACKWARD):
        n_in = cfg.rows if direction == Direction.FORWARD else cfg.cols
        for bits, signed in [(1, False), (2, False), (3, False), (4, False), (8, False),
                             (2, True), (3, True), (5, True), (8, True)]:
            batch = 2
            if signed:
                top = (1 << (bits - 1)) - 1
                codes = rng.integers(-top, top + 1, (batch, n_in))
            else:
                codes = rng.integers(0, 1 << bits, (batch, n_in))
            packet = packet_for(h, g, codes, bits=bits, signed=signed, direction=direction, polarity=polarity)
            await h.write_reg("CORE_NEURON", R.pack("CORE_NEURON", packet_uV=packet))
            got = await run_mvm_batch(h, codes, bits=bits, signed=signed, direction=direction)
            exp = reference(h, g, codes, bits=bits, signed=signed, direction=direction, packet=packet,
                            polarity=polarity)
            n_out = cfg.cols if direction == Direction.FORWARD else cfg.rows
            assert np.array_equal(got[:, :n_out], exp.outputs[:, :n_out]), \
                f"dir={direction} bits={bits} signed={signed}\n{got[:, :n_out]}\n{exp.outputs[:, :n_out]}"
            # The test is only meaningful if outputs spread over several steps and both signs.
            out = exp.outputs[:, :n_out]
            assert (out & 0x7F).max() > 20 and (out >> 7).any() and not (out >> 7).all(), out


@cocotb.test()
async def decrement_saturates_and_honours_mask(dut):
    """Outputs saturate at max_steps; untracked neurons report no steps; counters count."""
    h = ChipHarness(dut)
    await h.start()
    cfg = h.config
    g = np.zeros((cfg.rows, cfg.cols))
    g[:, : cfg.cols // 2] = 30.0          # these columns see the full input: large outputs
    g[:, cfg.cols // 2:] = 1.0
    h.models[0].set_conductance(g)
    codes = np.full(cfg.rows, 7)
    mask = np.ones(cfg.lines, bool)
    mask[1::3] = False
    await h.write_buffer(R.Space.NEURON_MASK, 0, 0, layout.bits_to_words(mask, cfg.words_per_line_vector))
    max_steps = 9
    steps_before = await h.read_reg("COUNT_STEP")
    got = await run_mvm_batch(h, codes, bits=3, max_steps=max_steps, conversion=Conversion.DECREMENT)
    exp = reference(h, g, codes, bits=3, max_steps=max_steps, mask=mask)
    assert np.array_equal(got, exp.outputs)
    steps = got[0, :cfg.cols] & 0x7F
    assert (steps[mask[:cfg.cols]] == max_steps).all(), steps          # every tracked neuron saturates
    assert (steps[~mask[:cfg.cols]] == 0).all(), steps                  # untracked: sign only
    assert await h.read_reg("COUNT_STEP") - steps_before == max_steps
    # A smaller input: outputs below saturation, so the loop ends early when all flipped.
    before = await h.read_reg("COUNT_STEP")
    got = await run_mvm_batch(h, np.full(cfg.rows, 1), bits=3, max_steps=100, conversion=Conversion.DECREMENT)
    exp = reference(h, g, np.full(cfg.rows, 1), bits=3, max_steps=100, mask=mask)
    assert np.array_equal(got, exp.outputs)
    assert await h.read_reg("COUNT_STEP") - before == int((exp.outputs[0, :cfg.cols] & 0x7F).max())


@cocotb.test()
async def cell_program_and_read(dut):
    """CELL_PULSE reaches the model's cell; CELL_RESULT reports the model's read."""
    h = ChipHarness(dut)
    await h.start()
    cfg = h.config
    model = h.models[0]
    model.set_conductance(np.full((cfg.rows, cfg.cols), 5.0))
    row, col = cfg.rows - 1, 3
    # A disabled (power-gated) core refuses cell commands.
    await h.write_reg("CTRL", R.pack("CTRL", cell_read=1))
    await ClockCycles(h.dut.clk, 8)
    assert R.unpack("STATUS", await h.read_reg("STATUS"))["config_error"] == 1
    assert await h.read_reg("COUNT_READ") == 0
    await h.write_reg("CORE_ENABLE", 1)
    await h.write_reg("CELL_ADDR", R.pack("CELL_ADDR", core=0, row=row, col=col))
    await h.write_reg("CELL_PULSE", R.pack("CELL_PULSE", polarity=PulsePolarity.SET, amplitude_mV=2000,
                                                         gate_mV=2800))
    await h.write_reg("CELL_TIMING", R.pack("CELL_TIMING", width_ns=1000, read_mV=150))
    before = model.device.g_uS[row, col]
    for _ in range(5):
        await h.write_reg("CTRL", R.pack("CTRL", cell_program=1))
        await ClockCycles(h.dut.clk, 120)
    after = model.device.g_uS[row, col]
    assert after > before + 0.5, (before, after)                  # SET pulses raised the conductance
    untouched = np.delete(model.device.g_uS.reshape(-1), row * cfg.cols + col)
    assert np.all(untouched == 5.0)
    await h.write_reg("CTRL", R.pack("CTRL", cell_read=1))
    await ClockCycles(h.dut.clk, 8)
    result = R.unpack("CELL_RESULT", await h.read_reg("CELL_RESULT"))
    assert result["valid"] == 1
    assert abs(result["g_10nS"] * 0.01 - after) <= 0.01, (result, after)
    assert await h.read_reg("COUNT_PROGRAM") == 5
    assert await h.read_reg("COUNT_READ") == 1
