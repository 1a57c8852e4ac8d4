"""Global networks for fabric signals on FPGAs that route them (a signal with thousands of loads).

nextpnr promotes only clocks to the ECP5's global networks; a signal that drives the clock
enable or reset of thousands of flip-flops otherwise takes thousands of general routing wires
(routing congestion in the 256-line core). :func:`global_net` puts such a signal on a global
network through a clock buffer (ECP5: ``DCCA``, always enabled), which nextpnr routes onto one of
the eight networks that may reach the fabric.
"""

from amaranth import Instance, Signal

__all__ = ["global_net"]


def global_net(m, platform, value, name: str):
    """``value`` through a global buffer on an ECP5 platform, else ``value`` itself."""
    if getattr(platform, "family", None) != "ecp5":
        return value
    out = Signal(name=f"{name}_global")
    m.submodules[f"{name}_dcca"] = Instance("DCCA", i_CLKI=value, i_CE=1, o_CLKO=out)
    return out
