"""Conformance: the fast chip model and the RTL co-simulation agree, operation for operation.

Each test drives the RTL (through the chip bus) and a FastChip (same configuration, same seed)
with the same writes, and compares every read: registers, counters, output buffers, latched
ternary registers. Run by tests/test_conformance.py.
"""


import cocotb
import numpy as np
from cocotb.triggers import ClockCycles

from neurram.spec import layout
from neurram.spec import regmap as R
from neurram.spec.enums import Activation, Conversion, Direction, InputSource, PulsePolarity
from neurram.models.core import AnalogParams
from neurram.sim.cosim.harness import ChipHarness
from neurram.sim.fastmodel import FastChip

COUNTERS = ("COUNT_MVM", "COUNT_PULSE", "COUNT_COMPARE", "COUNT_STEP", "COUNT_BUSY")


class Both:
    """Apply the same bus operations to the RTL and to a FastChip; compare reads."""

    def __init__(self, h: ChipHarness, fast: FastChip):
        self.h, self.fast = h, fast

    async def write(self, addr, data):
        await self.h.write(addr, data)
        self.fast.write(addr, data)

    async def write_reg(self, name, value, i=0):
        await self.write(R.REGISTERS[name].address(i), value)

    async def write_buffer(self, space, core, words, offset=0):
        words = np.asarray(words, np.uint32)
        await self.h.write_buffer(space, core, offset, words)
        self.fast.write_buffer(space, core, offset, words)

    async def read(self, addr):
        a, b = await self.h.read(addr), self.fast.read(addr)
        assert a == b, f"address {addr:#010x}: RTL {a:#x} != fast model {b:#x}"
        return a

    async def read_buffer(self, space, core, n, offset=0):
        rtl = np.asarray(await self.h.read_buffer(space, core, offset, n), np.uint32)
        fast = self.fast.read_buffer(space, core, offset, n)
        assert np.array_equal(rtl, fast), f"buffer {space} core {core}: RTL {rtl} != fast {fast}"
        return rtl

    async def start_and_wait(self):
        await self.write_reg("CTRL", R.pack("CTRL", start=1))
        await ClockCycles(self.h.dut.clk, 4)
        await self.h.wait_idle(poll_cycles=32)

    async def compare_state(self, cores):
        cfg = self.h.config
        for name in ("STATUS",):
            await self.read(R.REGISTERS[name].address())
        for i in cores:
            for name in COUNTERS:
                await self.read(R.REGISTERS[name].address(i))
            await self.read_buffer(R.Space.SL_REG, i, cfg.words_per_ternary_vector)
            await self.read_buffer(R.Space.BL_REG, i, cfg.words_per_ternary_vector)


async def setup(dut, params):
    h = ChipHarness(dut, params=params, seed=5)
    await h.start()
    fast = FastChip(h.config, params=params, seed=5)
    both = Both(h, fast)
    cfg = h.config
    rng = np.random.default_rng(11)
    for i in range(cfg.n_cores):
        g = rng.uniform(0, 40, (cfg.rows, cfg.cols))
        h.models[i].set_conductance(g)
        fast.cores[i].model.set_conductance(g)
    pol = np.zeros(cfg.lines, bool)
    pol[1::2] = True
    for i in range(cfg.n_cores):
        await both.write_buffer(R.Space.POLARITY, i, layout.bits_to_words(pol, cfg.words_per_line_vector))
    await both.write_reg("CORE_ENABLE", (1 << cfg.n_cores) - 1)
    await both.write_reg("CORE_SELECT", 1)
    return both, rng


async def run_modes(both, rng, modes, cores=(0,)):
    cfg = both.h.config
    sel = sum(1 << i for i in cores)
    await both.write_reg("CORE_SELECT", sel)
    for mode in modes:
        bits, signed = mode["bits"], mode.get("signed", False)
        batch = mode.get("batch", 3)
        for i in cores:
            top = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
            codes = rng.integers(-top if signed else 0, top + 1, (batch, cfg.lines))
            await both.write_buffer(R.Space.INPUT, i, layout.input_words(codes, cfg, signed))
            await both.write_reg("CORE_NEURON", R.pack("CORE_NEURON", packet_uV=mode.get("packet", 40 << bits)), i)
        await both.write_reg("MVM_CONFIG", R.pack(
            "MVM_CONFIG", direction=mode.get("direction", Direction.FORWARD), input_bits=bits,
            input_signed=int(signed), conversion=mode["conversion"], output_bits=mode.get("output_bits", 8),
            activation=mode.get("activation", Activation.NONE), input_source=mode.get("source", InputSource.BUFFER),
            stochastic=int(mode.get("stochastic", False))))
        await both.write_reg("LFSR_SEED", R.pack("LFSR_SEED", seed=mode.get("seed", 0xACE1)))
        await both.write_reg("STOCHASTIC", R.pack("STOCHASTIC", noise_uV=mode.get("noise_uV", 400)))
        await both.write_reg("MVM_TIMING", R.pack("MVM_TIMING", pulse_multiplier=mode.get("multiplier", 1)))
        await both.write_reg("NEURON_CONFIG", R.pack("NEURON_CONFIG", max_steps=mode.get("max_steps", 100),
                                                       clip=mode.get("clip", 127)))
        await both.write_reg("BATCH", R.pack("BATCH", count=batch, recurrent_steps=mode.get("steps", 1)))
        await both.start_and_wait()
        for i in cores:
            await both.read_buffer(R.Space.INPUT, i, cfg.batch_depth * cfg.input_planes * cfg.words_per_line_vector)
            words = await both.read_buffer(R.Space.OUTPUT, i, batch * 8 * cfg.words_per_line_vector)
            outs = layout.output_bytes_from_words(words, cfg, batch)
            if (mode["conversion"] in (Conversion.DECREMENT, Conversion.SAR)
                    and mode.get("activation", Activation.NONE) == Activation.NONE and mode.get("output_bits", 8) > 2):
                assert len(np.unique(outs)) > 4, f"degenerate test outputs for {mode}: {outs}"
        await both.compare_state(cores)


MODES = [
    dict(bits=1, conversion=Conversion.SIGN),
    dict(bits=3, conversion=Conversion.DECREMENT),
    dict(bits=4, conversion=Conversion.DECREMENT, direction=Direction.BACKWARD),
    dict(bits=4, signed=True, conversion=Conversion.DECREMENT),
    dict(bits=8, conversion=Conversion.DECREMENT, packet=3000),
    dict(bits=2, conversion=Conversion.DECREMENT, multiplier=4, max_steps=20),
    dict(bits=3, conversion=Conversion.DECREMENT, activation=Activation.RELU),
    dict(bits=3, conversion=Conversion.DECREMENT, activation=Activation.CLIPPED_RELU, clip=9),
    dict(bits=1, conversion=Conversion.SIGN, source=InputSource.TERNARY),
    dict(bits=3, conversion=Conversion.SAR, output_bits=5, packet=2000),
    dict(bits=4, conversion=Conversion.SAR, output_bits=8, direction=Direction.BACKWARD, packet=500),
    dict(bits=2, conversion=Conversion.SAR, output_bits=1),
    dict(bits=3, signed=True, conversion=Conversion.SAR, output_bits=4, packet=1500),
    dict(bits=3, conversion=Conversion.SIGN, stochastic=True, noise_uV=3000, seed=0x1234),
    dict(bits=3, conversion=Conversion.DECREMENT, stochastic=True, noise_uV=800, seed=77),
    dict(bits=3, conversion=Conversion.DECREMENT, direction=Direction.RECURRENT, steps=3, activation=Activation.RELU),
    dict(bits=4, signed=True, conversion=Conversion.DECREMENT, direction=Direction.RECURRENT, steps=2, packet=500),
]


@cocotb.test()
async def noise_free_every_mode(dut):
    both, rng = await setup(dut, AnalogParams.ideal())
    await run_modes(both, rng, MODES)


@cocotb.test()
async def with_noise_same_seed(dut):
    """With the calibrated noise model on, the two backends draw the same noise: identical."""
    both, rng = await setup(dut, AnalogParams())
    await run_modes(both, rng, MODES[:5])


@cocotb.test()
async def registers_and_cells(dut):
    """Register file semantics and cell program/read agree."""
    params = AnalogParams()
    both, rng = await setup(dut, params)
    cfg = both.h.config
    for reg in R.REGISTERS.values():
        n = cfg.n_cores if reg.index == "core" else reg.count
        for i in range(n):
            await both.read(reg.address(i))
    for name in ("MVM_CONFIG", "BATCH", "CORE_BIAS", "CORE_ENABLE", "CORE_SELECT"):
        reg = R.REGISTERS[name]
        await both.write(reg.address(), 0xFFFFFFFF)
        await both.read(reg.address())
        await both.write(reg.address(), reg.reset)
    await both.write_reg("CORE_ENABLE", 1)
    for k in range(4):
        await both.write_reg("CELL_ADDR", R.pack("CELL_ADDR", core=0, row=k, col=2 * k))
        polarity = (PulsePolarity.SET, PulsePolarity.RESET)[k % 2]
        await both.write_reg("CELL_PULSE", R.pack("CELL_PULSE", polarity=polarity, amplitude_mV=1500 + 300 * k))
        await both.write_reg("CTRL", R.pack("CTRL", cell_program=1))
        await ClockCycles(both.h.dut.clk, 110)
        await both.write_reg("CTRL", R.pack("CTRL", cell_read=1))
        await ClockCycles(both.h.dut.clk, 8)
        await both.read(R.REGISTERS["CELL_RESULT"].address())
    for name in ("COUNT_PROGRAM", "COUNT_READ", "STATUS"):
        await both.read(R.REGISTERS[name].address())
    # A start with an invalid configuration is refused the same way.
    await both.write_reg("MVM_CONFIG", R.pack("MVM_CONFIG", input_bits=0))
    await both.write_reg("CTRL", R.pack("CTRL", start=1))
    await ClockCycles(both.h.dut.clk, 4)
    status = await both.read(R.REGISTERS["STATUS"].address())
    assert R.unpack("STATUS", status)["config_error"] == 1
