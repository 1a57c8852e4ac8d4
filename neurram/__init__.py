"""An open, simulated NeuRRAM compute-in-memory chip.

Import root of the project. The top-level folders of the repository are its sub-packages:
``neurram.hdl`` (Amaranth RTL), ``neurram.models`` (analog physics), ``neurram.sim`` (fast chip
model and cocotb co-simulation) and ``neurram.firmware`` (host driver, mapper, benchmark tasks).
"""

from .config import ChipConfig

__all__ = ["ChipConfig", "__version__"]
__version__ = "0.1.0"
