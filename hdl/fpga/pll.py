"""The ECP5's PLL (``EHXPLLL``): the board's oscillator multiplied up to the chip's clock.

:func:`ecp5_pll_dividers` chooses the dividers (the ECP5 datasheet's ranges: phase detector
3.125-400 MHz, VCO 400-800 MHz, feedback from CLKOP, so ``f_out = f_in · CLKFB_DIV / CLKI_DIV``);
:class:`Ecp5Pll` instantiates the primitive and says when it has locked.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Instance, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["PllDividers", "ecp5_pll_dividers", "ecp5_pll_clock_at_most", "Ecp5Pll"]

#: EHXPLLL operating ranges, MHz (ECP5 and ECP5-5G family datasheet, sysCLOCK PLL timing).
PFD_MHZ = (3.125, 400.0)
VCO_MHZ = (400.0, 800.0)
OUT_MHZ = (3.125, 400.0)


@dataclass(frozen=True)
class PllDividers:
    clki_div: int
    clkfb_div: int
    clkop_div: int
    f_in_MHz: float

    @property
    def f_out_MHz(self) -> float:
        return self.f_in_MHz * self.clkfb_div / self.clki_div

    @property
    def f_vco_MHz(self) -> float:
        return self.f_out_MHz * self.clkop_div


def _settings(f_in_MHz: float):
    """Every divider setting the PLL can run from ``f_in_MHz``: each input and feedback divider
    pair whose phase detector and output are in range, with the output divider that puts the VCO
    nearest the middle of its range (settings whose VCO cannot be in range are left out)."""
    mid = (VCO_MHZ[0] + VCO_MHZ[1]) / 2
    for clki_div in range(1, 129):
        if not PFD_MHZ[0] <= f_in_MHz / clki_div <= PFD_MHZ[1]:
            continue
        for clkfb_div in range(1, 81):
            f = f_in_MHz * clkfb_div / clki_div
            clkop_div = max(1, min(128, round(mid / f)))
            if OUT_MHZ[0] <= f <= OUT_MHZ[1] and VCO_MHZ[0] <= f * clkop_div <= VCO_MHZ[1]:
                yield PllDividers(clki_div, clkfb_div, clkop_div, f_in_MHz)


def ecp5_pll_dividers(f_in_MHz: float, f_out_MHz: float) -> PllDividers:
    """The dividers whose output is nearest ``f_out_MHz`` (exact when one is), the VCO nearest the
    middle of its range; ``ValueError`` when no setting comes within 1 %."""
    if not OUT_MHZ[0] <= f_out_MHz <= OUT_MHZ[1]:
        raise ValueError(f"the ECP5 PLL outputs {OUT_MHZ[0]}-{OUT_MHZ[1]} MHz, not {f_out_MHz:g}")
    mid = (VCO_MHZ[0] + VCO_MHZ[1]) / 2
    best = min(_settings(f_in_MHz), default=None,
               key=lambda d: (abs(d.f_out_MHz - f_out_MHz), abs(d.f_vco_MHz - mid), d.clki_div))
    if best is None or abs(best.f_out_MHz - f_out_MHz) > 0.01 * f_out_MHz:
        near = f" (nearest: {best.f_out_MHz:.4g} MHz)" if best is not None else ""
        raise ValueError(f"no ECP5 PLL setting makes {f_out_MHz:g} MHz from {f_in_MHz:g} MHz{near}")
    return best


def ecp5_pll_clock_at_most(f_in_MHz: float, f_max_MHz: float) -> float | None:
    """The highest clock the PLL makes from ``f_in_MHz`` that is not above ``f_max_MHz`` (None
    if none is)."""
    return max((d.f_out_MHz for d in _settings(f_in_MHz) if d.f_out_MHz <= f_max_MHz), default=None)


class Ecp5Pll(wiring.Component):
    """``clk_out`` at :func:`ecp5_pll_dividers` ``(f_in_MHz, f_out_MHz)`` from ``clk_in``;
    ``locked`` once it has locked."""

    def __init__(self, f_in_MHz: float, f_out_MHz: float):
        self.dividers = ecp5_pll_dividers(f_in_MHz, f_out_MHz)
        super().__init__({"clk_in": In(1), "clk_out": Out(1), "locked": Out(1)})

    def elaborate(self, platform):
        m = Module()
        d = self.dividers
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{d.f_in_MHz:g}", a_FREQUENCY_PIN_CLKOP=f"{d.f_out_MHz:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA",
            p_CLKI_DIV=d.clki_div, p_CLKFB_DIV=d.clkfb_div, p_FEEDBK_PATH="CLKOP",
            p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=d.clkop_div, p_CLKOP_CPHASE=d.clkop_div // 2, p_CLKOP_FPHASE=0,
            i_CLKI=self.clk_in, i_CLKFB=self.clk_out, i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0,
            i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0,
            o_CLKOP=self.clk_out, o_LOCK=self.locked,
        )
        return m
