"""A reduced chip (ChipConfig's build options: no write-verify engine, no stochastic neurons, no
backward or recurrent MVMs, fewer conversions): FEATURES reports what was built, the absent parts
are refused, and the host driver still programs and runs MVMs on it (the iCEBreaker build's chip,
docs/fpga.md)."""

import numpy as np
import pytest

from neurram.config import ChipConfig
from neurram.firmware.driver import Chip
from neurram.firmware.protocol import Link, LoopbackTransport
from neurram.firmware.writeverify import WriteVerifyConfig
from neurram.hdl.chip import NeurramChip
from neurram.hdl.fpga.boards import BOARDS
from neurram.hdl.fpga.emulated_array import EmulatedArray
from neurram.hdl.fpga.simlink import SimTransport
from neurram.hdl.fpga.top import fpga_config
from neurram.models.core import AnalogParams
from neurram.sim.fastmodel import FastChip
from neurram.spec import regmap as R
from neurram.spec.enums import Conversion, Direction
from neurram.spec.errors import ChipError
from neurram.spec.mvm import MvmSettings
from neurram.spec.writeverify import G_LSB_uS
from neurram.targets import open_chip

#: The iCEBreaker's chip as its build makes it.
REDUCED = fpga_config(BOARDS["icebreaker"].config, 12e6)
N = REDUCED.rows


def test_the_icebreaker_chip_is_reduced():
    c = REDUCED
    assert not (c.wv_engine or c.stochastic_neurons or c.backward or c.recurrent or c.event_counters)
    assert c.conversions == ("sign", "decrement") and c.n_cores == 1
    assert "no write-verify engine" in c.describe()
    # ChipConfig round trip through JSON keeps the options
    assert ChipConfig.from_dict(c.to_dict()) == c


def test_features_come_from_the_config():
    """FEATURES (and the identification block as a whole) describes exactly what the config builds."""
    feat = R.unpack("FEATURES", R.identification(REDUCED)["FEATURES"])
    assert {k: int(v) for k, v in feat.items()} == {
        "conv_sign": 1, "conv_decrement": 1, "conv_sar": 0, "backward": 0, "recurrent": 0, "stochastic": 0,
        "clock_gating": 0, "cell_access": 1, "wv_engine": 0, "emulated_array": 1, "event_counters": 0}
    full = R.unpack("FEATURES", R.identification(ChipConfig())["FEATURES"])
    assert all(full[k] for k in full if k != "emulated_array")
    assert R.config_from_identification(R.identification(REDUCED)) == REDUCED
    assert R.absent_registers(REDUCED) == {r for regs in R.FEATURE_REGISTERS.values() for r in regs}
    assert R.absent_registers(ChipConfig()) == frozenset()


def _rtl(codes):
    """The reduced chip's RTL (inline core, emulated array with ``codes``) behind the driver."""
    dut = NeurramChip(REDUCED, hierarchical=False, max_words=64, array_factory=lambda c, i: EmulatedArray(c, codes))
    return Chip(Link(SimTransport(dut), timeout=60))


def _fast(codes):
    fast = FastChip(REDUCED, params=AnalogParams.ideal())
    fast.cores[0].model.set_conductance(codes * G_LSB_uS)
    return Chip(Link(LoopbackTransport(fast.handle_bytes)))


def test_reduced_rtl_reads_back_its_build_runs_mvms_and_refuses_what_it_lacks():
    """The reduced RTL: the driver reads the config back from FEATURES & co; MVMs in the built
    modes equal the fast model (noise off) bit for bit; the absent modes and the absent engine
    are refused with the driver's errors; absent registers read 0."""
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 4001, (N, N))
    emu, ref = _rtl(codes), _fast(codes)
    assert emu.config == REDUCED and not emu.has_engine()
    for chip in (emu, ref):
        chip.enable_cores([0])
        chip.set_bias(0, 120, 110)
        chip.set_packet(0, 1500)
    for mode in (MvmSettings(input_bits=4, conversion=Conversion.DECREMENT, max_steps=15),
                 MvmSettings(input_bits=3, input_signed=True, conversion=Conversion.SIGN, max_steps=15)):
        lo = -3 if mode.input_signed else 0
        x = rng.integers(lo, (1 << (mode.input_bits - mode.input_signed)), (2, N))
        np.testing.assert_array_equal(emu.mvm(0, x, mode), ref.mvm(0, x, mode), err_msg=str(mode))
    x = np.zeros((1, N), np.int64)
    for chip in (emu, ref):          # the RTL and the fast model refuse the same (neurram.spec.mvm.start_ok)
        for mode in (MvmSettings(input_bits=2, conversion=Conversion.SAR, output_bits=4, max_steps=15),
                     MvmSettings(input_bits=2, direction=Direction.BACKWARD, max_steps=15),
                     MvmSettings(input_bits=2, direction=Direction.RECURRENT, recurrent_steps=2, max_steps=15),
                     MvmSettings(input_bits=2, stochastic=True, max_steps=15)):
            with pytest.raises(ChipError):
                chip.run_batch(0, x, mode)
        with pytest.raises(ChipError, match="engine=False"):
            chip.program(0, np.full((N, N), 10.0), engine=True)
        chip.write_reg("WV_LIMITS", 0x12345)
        assert chip.read_reg("WV_LIMITS") == 0 and chip.read_reg("LFSR_SEED") == 0
        assert chip.counters(0) == dict.fromkeys(chip.counters(0), 0)        # no event counters: all read 0


def test_reduced_rtl_programs_cells_by_host_write_verify():
    """Without the engine, Chip.program write-verifies from the host over the cell registers."""
    codes = np.full((N, N), 1000)
    emu = _rtl(codes)
    emu.enable_cores([0])
    rows, cols = np.array([0, 3]), np.array([1, 5])
    report = emu.program(0, np.array([20.0, 5.0]), rows=rows, cols=cols, config=WriteVerifyConfig(g_tol_uS=1.0))
    got = emu.cell_access(0).read_cells(rows, cols)
    assert report.converged.all(), report
    np.testing.assert_allclose(got, [20.0, 5.0], atol=1.0)


def test_fast_model_of_a_reduced_chip_programs_and_runs_a_layer():
    """open_chip with a reduced config: the driver programs by host write-verify (the default
    path chooses it from FEATURES.wv_engine) and runs a layer's MVM."""
    cfg = ChipConfig.small(16, conversions=("sign", "decrement"), backward=False, recurrent=False,
                           stochastic_neurons=False, wv_engine=False)
    chip = open_chip("model:noise=off", config=cfg)
    assert chip.config == cfg and not chip.has_engine()
    rng = np.random.default_rng(1)
    g = rng.uniform(1.0, 30.0, (16, 16))
    chip.enable_cores([0])
    report = chip.program(0, g)
    assert report.converged.mean() > 0.95
    chip.set_bias(0, 120, 110)
    chip.set_packet(0, 1500)
    y = chip.mvm(0, rng.integers(0, 16, (4, 16)), MvmSettings(input_bits=4, conversion=Conversion.DECREMENT))
    assert y.shape == (4, 16) and len(np.unique(y)) > 2
