"""The chip's internal 32-bit word bus (addresses laid out in ``neurram/spec/regmap.py``)."""

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["chip_bus_signature"]


def chip_bus_signature() -> wiring.Signature:
    """The host's word bus, seen from the master (Out = master drives).

    A write is accepted in the cycle ``w_en`` is high. A read's data arrives with ``r_valid`` a
    few cycles (at most 4) after ``r_en``; masters issue one read at a time.
    """
    return wiring.Signature({
        "addr": Out(32),
        "w_data": Out(32),
        "w_en": Out(1),
        "r_en": Out(1),
        "r_data": In(32),
        "r_valid": In(1),
    })
