"""The fast chip model: bulk transactions equal frame sequences; the byte protocol end to end."""

import numpy as np
import pytest

from neurram.config import ChipConfig
from neurram.spec import regmap as R
from neurram.firmware.driver import Chip
from neurram.spec.enums import Conversion
from neurram.spec.errors import ChipError
from neurram.spec.mvm import MvmSettings
from neurram.firmware.protocol import Link, LoopbackTransport
from neurram.spec.protocol import Op, ProtocolError, Status, encode_request
from neurram.models.core import AnalogParams
from neurram.sim.fastlink import FastLink
from neurram.sim.fastmodel import FastChip, busy_cycles_per_mvm

CFG = ChipConfig(core_grid=(1, 2), rows=32, cols=32, batch_depth=8)


def _chip(params=None, seed=3, byte_level=False):
    fast = FastChip(CFG, params=params if params is not None else AnalogParams(), seed=seed)
    rng = np.random.default_rng(1)
    for core in fast.cores:
        core.model.set_conductance(rng.uniform(0, 40, (CFG.rows, CFG.cols)))
    link = Link(LoopbackTransport(fast.handle_bytes)) if byte_level else FastLink(fast)
    chip = Chip(link)
    chip.enable_cores([0, 1])
    pol = np.zeros(CFG.lines, bool)
    pol[1::2] = True
    chip.set_polarity(0, pol)
    chip.set_packet(0, 150)
    return fast, chip


def test_stream_equals_batch_by_batch_with_noise():
    """mvm_stream (one vectorised call) = frames batch after batch: outputs, counters, state."""
    fast_a, chip_a = _chip()
    fast_b, chip_b = _chip(byte_level=True)     # no mvm_stream: the driver sends frames
    codes = np.random.default_rng(2).integers(0, 8, (21, CFG.rows))
    mode = MvmSettings(input_bits=3)
    out_a = chip_a.mvm(0, codes, mode)
    out_b = chip_b.mvm(0, codes, mode)
    assert np.array_equal(out_a, out_b)
    assert len(np.unique(out_a)) > 10
    assert chip_a.counters(0) == chip_b.counters(0)
    for space, n in ((R.Space.INPUT, CFG.batch_depth * CFG.input_planes * CFG.words_per_line_vector),
                     (R.Space.OUTPUT, CFG.batch_depth * 8 * CFG.words_per_line_vector),
                     (R.Space.BL_REG, CFG.words_per_ternary_vector), (R.Space.SL_REG, CFG.words_per_ternary_vector)):
        assert np.array_equal(fast_a.read_buffer(space, 0, 0, n), fast_b.read_buffer(space, 0, 0, n)), space
    for name in ("BATCH", "CORE_SELECT", "STATUS", "MVM_CONFIG"):
        assert fast_a.read(R.REGISTERS[name].address()) == fast_b.read(R.REGISTERS[name].address()), name
    assert fast_a.cycles == fast_b.cycles > 0


def test_bulk_cell_operations_equal_register_sequence_noise_free():
    fast_a, chip_a = _chip(AnalogParams.ideal())
    fast_b, chip_b = _chip(AnalogParams.ideal(), byte_level=True)
    rows, cols = np.arange(6), np.arange(6) * 3
    targets = np.linspace(2, 30, 6)
    rep_a = chip_a.program(1, targets, rows=rows, cols=cols)
    rep_b = chip_b.program(1, targets, rows=rows, cols=cols)
    assert np.array_equal(rep_a.final_g, rep_b.final_g)
    assert np.array_equal(fast_a.cores[1].model.device.g_uS, fast_b.cores[1].model.device.g_uS)
    assert chip_a.counters(1) == chip_b.counters(1) and chip_a.counters(1)["program"] > 0


def test_byte_protocol_errors_change_nothing():
    fast, chip = _chip(byte_level=True)
    before = fast.read_buffer(R.Space.INPUT, 0, 0, 4).copy()
    with pytest.raises(ProtocolError) as e:
        chip.link.write_burst(R.address(R.Space.INPUT, 5, 0), np.arange(4))      # no core 5
    assert e.value.status == Status.ADDR_RANGE
    bad = bytearray(encode_request(7, Op.WRITE, (R.address(R.Space.INPUT, 0, 0)).to_bytes(4, "little") + b"\x01\0\0\0"))
    bad[-1] ^= 0xFF                                                               # corrupt the CRC
    reply = fast.handle_bytes(bytes(bad))
    assert reply[2] == Status.BAD_CRC
    assert np.array_equal(fast.read_buffer(R.Space.INPUT, 0, 0, 4), before)
    assert chip.identify().n_cores == 2                                           # resynchronised


def test_busy_cycle_formula():
    """Cycle model of the controller (RTL-verified in the conformance co-simulation)."""
    s = MvmSettings(input_bits=3, conversion=Conversion.DECREMENT, pulse_multiplier=2)
    # 2 + (6*3 + 2*2*7) + 2 + 8 + 1 + 3*steps
    assert busy_cycles_per_mvm(s, np.array([5]))[0] == 2 + 18 + 28 + 2 + 8 + 1 + 15
    s = MvmSettings(input_bits=4, input_signed=True, conversion=Conversion.SIGN)
    assert busy_cycles_per_mvm(s, np.array([0]))[0] == 2 + 18 + 14 + 2 + 8


def test_refused_start_and_bad_inputs():
    fast, chip = _chip()
    with pytest.raises(ChipError, match="outside 0..7"):
        chip.mvm(0, np.full((2, CFG.rows), 9), MvmSettings(input_bits=3))
    with pytest.raises(ChipError, match="NaN"):
        chip.mvm(0, np.full((2, CFG.rows), np.nan), MvmSettings(input_bits=3))
    with pytest.raises(ChipError, match="input lines"):
        chip.mvm(0, np.zeros((2, CFG.rows + 1)), MvmSettings(input_bits=3))
    assert chip.counters(0)["mvm"] == 0                                           # nothing ran
    chip.enable_cores([1])
    with pytest.raises(ChipError):
        chip.run_batch(0, np.zeros((1, CFG.rows), int), MvmSettings(input_bits=3))   # core 0 disabled
    assert R.unpack("STATUS", fast.read(R.REGISTERS["STATUS"].address()))["config_error"] == 1


def test_age_relaxes_conductances_before_inference():
    """model:age=... lets programmed conductances relax before the first MVM (and only once)."""
    from neurram.targets import open_chip
    cfg = "model:cores=1x1,rows=32,cols=32"
    fresh, aged = open_chip(cfg), open_chip(cfg + ",age=86400")
    target = np.random.default_rng(0).uniform(2, 38, (32, 32))
    for chip in (fresh, aged):
        chip.enable_cores([0])
        chip.program(0, target)
        chip.mvm(0, np.zeros((1, 32), int), MvmSettings(input_bits=1))
    g_fresh = fresh.link.chip.cores[0].model.device.g_uS
    g_aged = aged.link.chip.cores[0].model.device.g_uS.copy()
    assert np.std(g_aged - target) > 1.3 * np.std(g_fresh - target)
    aged.mvm(0, np.zeros((1, 32), int), MvmSettings(input_bits=1))
    assert np.array_equal(aged.link.chip.cores[0].model.device.g_uS, g_aged)   # relaxed once
