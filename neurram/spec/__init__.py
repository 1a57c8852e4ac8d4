"""The chip's one specification: every fact that more than one layer needs, without Amaranth.

* :mod:`.enums`     — one enumeration per mode (directions, input sources, conversions, ...);
* :mod:`.regmap`    — registers, fields, buffers, addressing, identification values;
* :mod:`.mvm`       — the MVM settings type, the start check, the output-byte codec;
* :mod:`.layout`    — how vectors travel in the buffers (bit-planes, ternary planes);
* :mod:`.protocol`  — the framed byte protocol: constants, CRC, frames, the chip end's rules;
* :mod:`.errors`    — the errors a chip raises.

The RTL (``neurram.hdl``), the analog models, the fast model and co-simulation (``neurram.sim``)
and the host software (``neurram.firmware``) all import these modules; this package imports
nothing of theirs (docs/architecture.md).
"""

from neurram.config import ChipConfig

__all__ = ["ChipConfig"]
