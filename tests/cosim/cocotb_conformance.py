"""Conformance: the fast chip model and the RTL co-simulation agree, operation for operation.

Each test drives the RTL (through the chip bus) and a FastChip (same configuration, same seed)
with the same writes, and compares every read: registers, counters, output buffers, latched
ternary registers, neuron masks. Run by tests/test_conformance.py: the first three tests on the
small configuration, :func:`full_size_every_mode_noise_on` on 256 x 256 cores.

Twins: FastChips with other analog parameters (noise off, ...) can follow the same bus writes;
their outputs are recorded, not compared, so that a test can check that noise changes outputs.
"""


import cocotb
import numpy as np
from cocotb.triggers import ClockCycles

from neurram.spec import layout
from neurram.spec import regmap as R
from neurram.spec.enums import Activation, Conversion, Direction, InputSource, PulsePolarity
from neurram.models.core import AnalogParams
from neurram.models.crossbar import CrossbarParams
from neurram.sim.cosim.harness import ChipHarness
from neurram.sim.fastmodel import FastChip

COUNTERS = ("COUNT_MVM", "COUNT_PULSE", "COUNT_COMPARE", "COUNT_STEP", "COUNT_BUSY")
#: Per-core registers compared after every batch.
CORE_REGISTERS = ("CORE_STATUS", *COUNTERS)


class Both:
    """Apply the same bus operations to the RTL and to a FastChip; compare reads.

    ``twins``: name -> FastChip that receives every write too; reads are not compared with it.
    """

    def __init__(self, h: ChipHarness, fast: FastChip, twins: dict | None = None):
        self.h, self.fast = h, fast
        self.twins = dict(twins or {})
        #: One record per mode and core run: (mode, core, tracked mask, outputs, {twin: outputs}).
        self.records = []

    async def write(self, addr, data):
        await self.h.write(addr, data)
        self.fast.write(addr, data)
        for twin in self.twins.values():
            twin.write(addr, data)

    async def write_reg(self, name, value, i=0):
        await self.write(R.REGISTERS[name].address(i), value)

    async def write_buffer(self, space, core, words, offset=0):
        words = np.asarray(words, np.uint32)
        await self.h.write_buffer(space, core, offset, words)
        self.fast.write_buffer(space, core, offset, words)
        for twin in self.twins.values():
            twin.write_buffer(space, core, offset, words)

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
            for name in CORE_REGISTERS:
                await self.read(R.REGISTERS[name].address(i))
            await self.read_buffer(R.Space.SL_REG, i, cfg.words_per_ternary_vector)
            await self.read_buffer(R.Space.BL_REG, i, cfg.words_per_ternary_vector)
            await self.read_buffer(R.Space.NEURON_MASK, i, cfg.words_per_line_vector)


async def setup(dut, params, twins=None):
    """RTL and FastChip with ``params`` (and ``twins``: name -> AnalogParams), seed 5, random
    conductances, every other line inverted, every core enabled."""
    h = ChipHarness(dut, params=params, seed=5)
    await h.start()
    fast = FastChip(h.config, params=params, seed=5)
    both = Both(h, fast, {name: FastChip(h.config, params=p, seed=5) for name, p in (twins or {}).items()})
    cfg = h.config
    rng = np.random.default_rng(11)
    for i in range(cfg.n_cores):
        g = rng.uniform(0, 40, (cfg.rows, cfg.cols))
        h.models[i].set_conductance(g)
        fast.cores[i].model.set_conductance(g)
        for twin in both.twins.values():
            twin.cores[i].model.set_conductance(g)
    pol = np.zeros(cfg.lines, bool)
    pol[1::2] = True
    for i in range(cfg.n_cores):
        await both.write_buffer(R.Space.POLARITY, i, layout.bits_to_words(pol, cfg.words_per_line_vector))
    await both.write_reg("CORE_ENABLE", (1 << cfg.n_cores) - 1)
    await both.write_reg("CORE_SELECT", 1)
    return both, rng


def multi_level(mode) -> bool:
    """Modes whose outputs take many values (charge decrement or SAR, no activation, > 2 bits)."""
    return (mode["conversion"] in (Conversion.DECREMENT, Conversion.SAR)
            and mode.get("activation", Activation.NONE) == Activation.NONE and mode.get("output_bits", 8) > 2)


async def run_modes(both, rng, modes, cores=(0,), packet_scale=1.0, tracked=None, vectors=3):
    """Run each mode as one batch of ``vectors`` vectors (unless the mode says) on ``cores``:
    full-range random codes on every line, the packet of the mode times ``packet_scale``;
    ``tracked``: fraction of output neurons a fresh random NEURON_MASK tracks in each mode (None:
    the mask is left as it is)."""
    cfg = both.h.config
    sel = sum(1 << i for i in cores)
    await both.write_reg("CORE_SELECT", sel)
    for mode in modes:
        bits, signed = mode["bits"], mode.get("signed", False)
        batch = mode.get("batch", vectors)
        masks = {}
        for i in cores:
            top = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
            codes = rng.integers(-top if signed else 0, top + 1, (batch, cfg.lines))
            await both.write_buffer(R.Space.INPUT, i, layout.input_words(codes, cfg, signed))
            packet = max(1, round(mode.get("packet", 40 << bits) * packet_scale))
            await both.write_reg("CORE_NEURON", R.pack("CORE_NEURON", packet_uV=packet), i)
            if tracked is not None:
                masks[i] = rng.random(cfg.lines) < tracked
                words = layout.bits_to_words(masks[i], cfg.words_per_line_vector)
                await both.write_buffer(R.Space.NEURON_MASK, i, words)
            else:
                words = both.fast.read_buffer(R.Space.NEURON_MASK, i, 0, cfg.words_per_line_vector)
                masks[i] = layout.words_to_bits(words, cfg.lines).astype(bool)
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
            n_words = batch * 8 * cfg.words_per_line_vector
            words = await both.read_buffer(R.Space.OUTPUT, i, n_words)
            outs = layout.output_bytes_from_words(words, cfg, batch)
            if multi_level(mode):
                assert len(np.unique(outs[:, masks[i]])) > 4, f"degenerate test outputs for {mode}: {outs}"
            twins = {name: layout.output_bytes_from_words(twin.read_buffer(R.Space.OUTPUT, i, 0, n_words),
                                                          cfg, batch)
                     for name, twin in both.twins.items()}
            both.records.append((mode, i, masks[i], outs, twins))
        await both.compare_state(cores)


def differing(both, twin: str):
    """Per record: (description, mode, fraction of tracked output bytes that differ from the
    twin's, their count)."""
    rows = []
    for mode, core, mask, outs, twins in both.records:
        diff = outs[:, mask] != twins[twin][:, mask]
        rows.append((f"core {core}: " + describe(mode), mode, float(diff.mean()), diff.size))
    return rows


def describe(mode) -> str:
    return ", ".join(f"{k}={v.name if hasattr(v, 'name') else v}" for k, v in mode.items())


MODES = [
    dict(bits=1, conversion=Conversion.SIGN),
    dict(bits=3, conversion=Conversion.DECREMENT),
    dict(bits=4, conversion=Conversion.DECREMENT, direction=Direction.BACKWARD),
    dict(bits=4, signed=True, conversion=Conversion.DECREMENT),
    dict(bits=8, conversion=Conversion.DECREMENT, packet=3000),
    dict(bits=2, conversion=Conversion.DECREMENT, multiplier=4, max_steps=20, packet=640),
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
    await run_modes(both, rng, MODES)


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


#: Twins of the full-size test: every non-ideality off, and everything on but fresh read noise.
NOISE_OFF, NO_READ_NOISE = "noise off", "no read noise"


@cocotb.test()
async def full_size_every_mode_noise_on(dut):
    """Every mode with the calibrated noise model on, on every core of a full-size configuration:
    full-range random codes on all lines, a fresh random mask tracking ~85 % of the neurons per
    mode; RTL and fast model identical. Noise must matter: the same writes on a noise-off
    FastChip give different output bytes (most of them in the multi-level modes), and so do they
    on a FastChip without fresh read noise (the per-MVM draws reach the outputs)."""
    both, rng = await setup(dut, AnalogParams(), twins={
        NOISE_OFF: AnalogParams.ideal(), NO_READ_NOISE: AnalogParams(crossbar=CrossbarParams(read_noise=False))})
    cfg = both.h.config
    # Output lines average 256 inputs instead of 16: signals are ~4x smaller than on the small
    # core, so the packets are halved to keep the multi-level outputs spread over many codes.
    scale = 0.5 if cfg.lines >= 128 else 1.0
    await run_modes(both, rng, MODES, cores=tuple(range(cfg.n_cores)), packet_scale=scale, tracked=0.85,
                    vectors=cfg.batch_depth)

    off, no_read = differing(both, NOISE_OFF), differing(both, NO_READ_NOISE)
    for (what, _, f_off, n), (_, _, f_read, _) in zip(off, no_read):
        dut._log.info(f"differ from noise off {f_off:6.1%}, from no read noise {f_read:6.1%} "
                      f"of {n} tracked outputs; {what}")
    # Every mode on every core, even the 1-bit ones, has outputs that noise moves.
    for what, _, f, n in off:
        assert f > 0, f"noise on gives the same {n} outputs as noise off; {what}"
    # The multi-level modes: a good part of the outputs move.
    for what, mode, f, n in off:
        if multi_level(mode):
            assert f >= 0.3, f"only {f:.1%} of {n} outputs differ from noise off; {what}"
    total = sum(f * n for _, _, f, n in off) / sum(n for _, _, _, n in off)
    assert total >= 0.5, f"only {total:.1%} of all outputs differ from noise off"
    read = [(f, n) for _, mode, f, n in no_read if multi_level(mode)]
    read_total = sum(f * n for f, n in read) / sum(n for _, n in read)
    assert read_total >= 0.05, f"fresh read noise changes only {read_total:.1%} of the multi-level outputs"
