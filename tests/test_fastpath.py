"""The fast model's compact paths give the bits of the full ones: the segment path (a SegmentDrive
instead of full line vectors) against the byte protocol at full core size with noise on, worker
processes against one process, and cores built only when touched."""

import numpy as np
import pytest

from neurram.config import ChipConfig
from neurram.firmware.driver import Chip
from neurram.firmware.protocol import Link, LoopbackTransport
from neurram.models.core import AnalogParams
from neurram.models.crossbar import CrossbarParams
from neurram.sim.fastlink import FastLink
from neurram.sim.fastmodel import FastChip
from neurram.spec import regmap as R
from neurram.spec.enums import Activation, Conversion, Direction
from neurram.spec.errors import ChipError
from neurram.spec.link import SegmentDrive
from neurram.spec.mvm import MvmSettings

FULL = ChipConfig(core_grid=(1, 1), rows=256, cols=256, batch_depth=16)


def _chip(params, byte_level: bool, seed: int = 7):
    fast = FastChip(FULL, params=params, seed=seed)
    rng = np.random.default_rng(11)
    fast.cores[0].model.set_conductance(rng.uniform(0, 40, (FULL.rows, FULL.cols)))   # test setup
    chip = Chip(Link(LoopbackTransport(fast.handle_bytes)) if byte_level else FastLink(fast))
    chip.enable_cores([0])
    pol = np.zeros(FULL.lines, bool)
    pol[1::2] = True                                     # differential pairs: odd rows inverted
    chip.set_polarity(0, pol)
    chip.set_packet(0, 120)
    chip.set_stochastic(seed=0x2545F491, noise_uV=900)
    return fast, chip


def _drive(rng, n_sources: int, constant: int):
    """A segment as the mapper lays one out: sources on row pairs (the same code on both rows of
    a pair), two bias pairs at a constant, rows in a scattered order, a block of tracked columns
    and a few stray ones."""
    pairs = rng.permutation(FULL.rows // 2)[: n_sources + 2]
    lines = np.concatenate([2 * pairs, 2 * pairs + 1])
    source = np.concatenate([rng.permutation(n_sources), [-1, -1]])
    outputs = np.unique(np.concatenate([np.arange(40, 72), rng.choice(FULL.cols, 9, replace=False)]))
    return SegmentDrive(lines=lines, source=np.concatenate([source, source]), constant=constant, outputs=outputs)


MODES = [
    MvmSettings(input_bits=3),
    MvmSettings(input_bits=4, input_signed=True),
    MvmSettings(input_bits=3, pulse_multiplier=2, max_steps=60),
    MvmSettings(input_bits=2, conversion=Conversion.SIGN),
    MvmSettings(input_bits=4, conversion=Conversion.SAR, output_bits=6),
    MvmSettings(input_bits=3, activation=Activation.RELU),
    MvmSettings(input_bits=3, activation=Activation.CLIPPED_RELU, clip=20),
    MvmSettings(input_bits=3, direction=Direction.BACKWARD),
    MvmSettings(input_bits=3, stochastic=True, conversion=Conversion.SIGN),
    MvmSettings(input_bits=3, direction=Direction.RECURRENT, recurrent_steps=2, max_steps=7),
]


@pytest.mark.parametrize("mode", MODES, ids=lambda m: f"{m.conversion.name}-{m.input_bits}b-{m.direction.name}"
                         f"{'-signed' if m.input_signed else ''}{'-act' + m.activation.name if m.activation else ''}"
                         f"{'-x' + str(m.pulse_multiplier) if m.pulse_multiplier > 1 else ''}"
                         f"{'-stochastic' if m.stochastic else ''}")
def test_segment_path_equals_byte_protocol_full_core_with_noise(mode):
    """256 x 256, calibrated noise on: the compact segment transaction returns the bytes, and
    leaves the counters, buffers, registers and clock, of the full vectors sent frame by frame."""
    rng = np.random.default_rng(5)
    top = (1 << (mode.input_bits - int(mode.input_signed))) - 1
    drive = _drive(rng, 100, top)
    codes = rng.integers(-top if mode.input_signed else 0, top + 1, (37, 120))   # unused columns too
    fast_a, chip_a = _chip(AnalogParams(), byte_level=False)
    fast_b, chip_b = _chip(AnalogParams(), byte_level=True)
    assert chip_a.link.capabilities.mvm_segment is not None and chip_b.link.capabilities.mvm_segment is None
    out_a = chip_a.mvm_segment(0, codes, drive, mode)
    out_b = chip_b.mvm_segment(0, codes, drive, mode)          # the driver's fallback: full vectors
    assert out_a.shape == (37, drive.outputs.size)
    assert np.array_equal(out_a, out_b)
    assert len(np.unique(out_a)) > (1 if mode.conversion == Conversion.SIGN else 10)
    assert chip_a.counters(0) == chip_b.counters(0)
    c = FULL
    for space, n in ((R.Space.INPUT, c.batch_depth * c.input_planes * c.words_per_line_vector),
                     (R.Space.OUTPUT, c.batch_depth * 8 * c.words_per_line_vector),
                     (R.Space.BL_REG, c.words_per_ternary_vector), (R.Space.SL_REG, c.words_per_ternary_vector),
                     (R.Space.NEURON_MASK, c.words_per_line_vector)):
        assert np.array_equal(fast_a.read_buffer(space, 0, 0, n), fast_b.read_buffer(space, 0, 0, n)), space
    for name in ("BATCH", "CORE_SELECT", "STATUS", "MVM_CONFIG"):
        assert fast_a.read(R.REGISTERS[name].address()) == fast_b.read(R.REGISTERS[name].address()), name
    assert fast_a.cycles == fast_b.cycles > 0
    # the read noise is on: a noise-free chip of the same seed reads differently
    if not mode.stochastic:
        _, chip_quiet = _chip(AnalogParams(crossbar=CrossbarParams(read_noise=False)), byte_level=False)
        differ = np.mean(chip_quiet.mvm_segment(0, codes, drive, mode) != out_a)
        assert differ > (0.002 if mode.conversion == Conversion.SIGN else 0.05), differ


def test_segment_drive_is_checked():
    _, chip = _chip(AnalogParams.ideal(), byte_level=False)
    mode = MvmSettings(input_bits=3)
    codes = np.zeros((2, 4), np.int64)
    bad = [SegmentDrive(np.array([0, 300]), np.array([0, 1]), 7, np.arange(4)),        # no line 300
           SegmentDrive(np.array([0, 0]), np.array([0, 1]), 7, np.arange(4)),          # one line twice
           SegmentDrive(np.array([0, 1]), np.array([0, 1]), 9, np.arange(4)),          # constant > 3 bits
           SegmentDrive(np.array([0, 1]), np.array([0, 4]), 7, np.arange(4)),          # no column 4
           SegmentDrive(np.array([0, 1]), np.array([0, 1]), 7, np.array([3, 2]))]      # outputs not ascending
    for d in bad:
        with pytest.raises(ChipError):
            chip.mvm_segment(0, codes, d, mode)
    with pytest.raises(ChipError):
        chip.mvm_segment(0, np.full((2, 4), 8), SegmentDrive(np.array([0, 1]), np.array([0, 1]), 7, np.arange(4)), mode)


def _small_network(rng):
    from neurram.firmware import nn
    layers = [
        {"type": "conv", "name": "c1", "weight": rng.normal(0, 0.4, (6, 1, 3, 3)), "bias": rng.normal(0, 0.1, 6),
         "stride": 1, "padding": 0, "act": {"kind": "relu_q", "bits": 3, "clip": 1.0}},
        {"type": "maxpool", "kernel": 2},
        {"type": "flatten"},
        {"type": "dense", "name": "fc", "weight": rng.normal(0, 0.2, (5, 6 * 4 * 6)), "bias": rng.normal(0, 0.1, 5),
         "act": None},
    ]
    return nn.Network(input={"bits": 3}, layers=layers)


def test_workers_give_the_bits_of_one_process():
    """Images split over 2 forked workers: the logits, every counter, the chip's clock and its
    random streams' positions equal those of one process."""
    from neurram.firmware.mapper import map_network
    from neurram.firmware.runtime import Runtime
    rng = np.random.default_rng(3)
    net = _small_network(rng)
    x = rng.integers(0, 256, (70, 10, 14)).astype(np.uint8)
    cfg = ChipConfig(core_grid=(2, 3), rows=64, cols=32, batch_depth=8)
    runs = []
    for workers in (1, 2):
        fast = FastChip(cfg, params=AnalogParams(), seed=4)
        chip = Chip(FastLink(fast))
        rt = Runtime(chip, map_network(net, chip.config, x_cal=x[:16]))
        rt.program(progress=False)
        res = rt.forward(x, batch_images=16, progress=False, workers=workers)
        cores = rt.mapping.cores_used
        runs.append((res.logits, [chip.counters(c) for c in cores], fast.cycles, res.chip_cycles,
                     [fast.cores[c].model.mvm_count for c in cores], [l.mvms for l in res.layers],
                     [l.counters for l in res.layers]))
    one, two = runs
    assert np.array_equal(one[0], two[0])
    assert np.unique(one[0].argmax(1)).size > 1
    assert one[1:] == two[1:]
    assert one[4][0] > 0


def test_cores_are_built_when_first_touched():
    fast = FastChip(ChipConfig(), seed=1)
    assert fast.cores.built() == []
    chip = Chip(FastLink(fast))
    chip.enable_cores([5])
    assert chip.counters(47)["mvm"] == 0                 # reading a counter builds core 47 ...
    chip.clear_counters()
    assert len(fast.cores.built()) == 1                  # ... and nothing else
    assert fast.cores[47].model.seed == fast.core_seed(47)


@pytest.mark.parametrize("mode", [MvmSettings(input_bits=3), MvmSettings(input_bits=4, input_signed=True),
                                  MvmSettings(input_bits=2, conversion=Conversion.SIGN)], ids=["dec3", "dec4s", "sign"])
def test_compiled_kernel_gives_the_numpy_bits(mode, monkeypatch):
    """The optional numba kernel (sim/kernels.py) against the numpy path: 256 x 256, noise on."""
    pytest.importorskip("numba", reason="the compiled kernel is the optional 'fast' extra")
    from neurram.sim import kernels
    rng = np.random.default_rng(9)
    top = (1 << (mode.input_bits - int(mode.input_signed))) - 1
    drive = _drive(rng, 110, top)
    codes = rng.integers(-top if mode.input_signed else 0, top + 1, (300, 120))
    runs = []
    for kernel in ("numba", "numpy"):
        monkeypatch.setenv("NEURRAM_KERNEL", kernel)
        assert kernels.available() == (kernel == "numba")
        fast, chip = _chip(AnalogParams(), byte_level=False)
        out = chip.mvm_segment(0, codes, drive, mode)
        runs.append((out, chip.counters(0), fast.cycles,
                     fast.read_buffer(R.Space.SL_REG, 0, 0, FULL.words_per_ternary_vector),
                     fast.read_buffer(R.Space.OUTPUT, 0, 0, FULL.batch_depth * 8 * FULL.words_per_line_vector)))
    (a, *rest_a), (b, *rest_b) = runs
    assert np.array_equal(a, b)
    assert rest_a[0] == rest_b[0] and rest_a[1] == rest_b[1]
    assert all(np.array_equal(u, v) for u, v in zip(rest_a[2:], rest_b[2:]))
    assert len(np.unique(a)) > (1 if mode.conversion == Conversion.SIGN else 10)
