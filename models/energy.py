"""Energy and time per counted event (docs/architecture.md, contract 8: counters, not guesses).

The chip counts the events that cost energy and time (registers ``COUNT_MVM``, ``COUNT_PULSE``,
``COUNT_COMPARE``, ``COUNT_STEP``, ``COUNT_PROGRAM``, ``COUNT_READ``, ``COUNT_BUSY`` of every
core; ``Chip.counters(core)`` returns them as ``{"mvm", "pulse", "compare", "step", "program",
"read", "busy"}``). :class:`EnergyModel` multiplies those counts by a cost per event. Every cost is
one field below, with its unit in its name and its source next to it:

* **[P]** Wan et al., Nature 608, 504 (2022), the NeuRRAM paper (130 nm CMOS + HfOx RRAM).
* **[C]** the CiMLoop model of NeuRRAM (Andrulis et al., ISPASS 2024; repositories
  ``mit-emze/cimloop``, macro ``wan_nature_2022``, and ``Accelergy-Project/hwcomponents-library``,
  ``library/neurram.py``): per-component energies at 130 nm / 1.8 V that the CiMLoop authors
  fitted to the paper's measured energy breakdown (Extended Data Fig. 12b). Those are the
  closest published per-operation numbers for this chip; the paper itself reports energy per
  operation and TOPS/W, not per circuit event.
* **[L]** W. D. Lu's 45 nm reference table (docs/chip.md §6): 8-bit add 0.03 pJ, 8-bit multiply
  0.2 pJ, 32-bit float multiply 3.7 pJ, 64-bit SRAM read 10-100 pJ, DRAM access 1.3-2.6 nJ.
* **[R]** the NeuRRAM test system (docs/chip.md §1, §3): neuron control at 12.5 MHz, 1 µs
  programming pulses.
* **[E]** an estimate of ours from the physics stated in the comment (E = C·ΔV·V for charging a
  line of capacitance C by ΔV from a rail V; E = V·I·t for a DC current; C·V² for a node that
  swings rail to rail).

How the counters map to circuit events (``neurram/spec/regmap.py`` docs, ``sim/fastcore.py``):

* one ``pulse`` drives every input line once (``rows`` row-pulses) and makes every output neuron
  sample its line and integrate (``cols`` samples and integrations);
* one ``compare`` is one comparator decision of every output neuron (``cols`` decisions);
* one ``step`` is one charge-decrement (or SAR) step of every output neuron. The RTL runs steps
  until the slowest tracked neuron is done; neurons that are done still sit on the step clock,
  so charging all ``cols`` neurons per step is an upper bound that we use;
* one ``mvm`` initialises every neuron (precharge, integrator reset) and switches the wordlines
  once: the RTL turns them on at INIT and off after the last pulse (the silicon toggles them
  once per input bit, see [C]; per MVM is our assumption for this controller);
* ``program`` is one SET or RESET pulse on one cell, ``read`` one single-cell read;
* ``busy`` is one clock cycle of one core's digital controller;
* bytes moved over the host interface are not counted by the chip; callers pass them in
  (``neurram/report.py`` derives them from the buffer layout).

Line energies are for the 256-cell lines of the NeuRRAM core and are applied per line whatever
the array size: a simplification that over-charges small test arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from neurram.spec.enums import Conversion

__all__ = [
    "EnergyModel", "COUNTER_KEYS", "ENERGY_KEYS", "PAPER_TOPS_PER_W", "SCALE_45NM_TO_130NM",
    "mvm_counts", "busy_cycles_per_mvm", "decrement_steps_for_output_bits",
]

#: Counter keys the model understands (``Chip.counters(core)``).
COUNTER_KEYS = ("mvm", "pulse", "compare", "step", "program", "read", "busy")

#: Keys of the breakdown returned by :meth:`EnergyModel.energy_pJ` (plus ``"total"``).
ENERGY_KEYS = ("input_drive", "wordline", "neuron_init", "sample", "integrate", "compare", "step",
               "program", "read", "control", "io")

#: First-order scaling of a digital operation's energy from W. D. Lu's 45 nm table (0.9 V) to a
#: 130 nm core at 1.2 V: switched capacitance ∝ feature size, energy ∝ V². [E]
SCALE_45NM_TO_130NM = (130 / 45) * (1.2 / 0.9) ** 2

#: The paper's measured throughput-power efficiency (Extended Data Fig. 12e), as digitised in
#: CiMLoop's reproduction of that figure ([C], ``_tests.py::test_tops``, one-phase operation):
#: ``{(input_bits, output_bits): TOPS/W}``. Signed inputs (sign included in the bits), outputs 2 bits
#: wider than inputs, 4-bit weights as differential pairs, ops = 2 × 256 × 128 per core MVM.
PAPER_TOPS_PER_W = {
    (1, 3): 43.08, (2, 4): 40.33, (3, 5): 23.09, (4, 6): 15.95,
    (5, 7): 11.03, (6, 8): 8.26, (7, 9): 7.75, (8, 10): 6.44,
}

# -- physical constants behind the estimates [E] ----------------------------------------------------
_C_LINE_pF = 0.6        # one 256-cell BL/SL: ~1.1 mm of wire at ~0.2 fF/µm (core ≈ 1.16 mm² in [C]'s
                        # area model) + ~1 fF per cell + ~0.1 pF of driver/neuron switches
_V_PULSE_V = 0.5        # input pulse amplitude around V_ref ([C]: "Input pulses (Vread = 0.5 V)")
_V_REF_V = 0.9          # V_ref [P]
_V_DD_NEURON_V = 1.8    # neuron supply ([C]: "Neuron ops. and control (1.8 V)")
_C_SAMPLE_fF = 25.0     # sampling capacitor (models/neuron.py NeuronParams.c_sample_fF)
_C_WL_fF = (1.5 + 0.6) * 256 + 48   # wordline: 1.5 fF/access transistor + 0.6 fF/cell coupling + 48 fF driver [C]
_V_WL_LOW_V, _V_WL_HIGH_V = 0.9, 2.2  # wordline swing during MVMs ([C]: "WL switching 0.9 V <-> 2.2 V")
_ADD8_45NM_pJ = 0.03    # [L]


def _line_pJ(c_pF: float, dv_V: float, rail_V: float) -> float:
    """Energy drawn from a rail at ``rail_V`` to move a line of ``c_pF`` by ``dv_V``: C·ΔV·V."""
    return c_pF * dv_V * rail_V


@dataclass(frozen=True)
class EnergyModel:
    """Cost of every counted event. Energies in pJ, durations in ns (see the module docstring for
    the sources [P] [C] [L] [R] [E])."""

    # -- analog MVM events ------------------------------------------------------------------------
    #: Driving one input line for one pulse. [E] C_line·ΔV·V_rail = 0.6 pF × 0.5 V × 1.4 V
    #: (charge drawn from the V_ref + V_pulse rail). C_line was picked inside its physical range
    #: so that the result equals [C]'s fit of the paper's input-pulse energy at 4-bit signed inputs
    #: (11.5 fJ/op × 65,536 ops / (7 pulses × 256 rows) = 0.42 pJ).
    input_pulse_pJ_per_row: float = _line_pJ(_C_LINE_pF, _V_PULSE_V, _V_REF_V + _V_PULSE_V)
    #: Wordline switching per row per MVM. [C] capacitance C_WL = 2.1 fF × 256 + 48 fF = 586 fF,
    #: [E] swing 0.9 → 2.2 V from the 2.2 V rail: C·ΔV·V = 1.67 pJ. Once per MVM (assumption).
    wordline_pJ_per_row_mvm: float = _line_pJ(_C_WL_fF * 1e-3, _V_WL_HIGH_V - _V_WL_LOW_V, _V_WL_HIGH_V)
    #: Initialising one neuron per MVM. [E] precharge of its output line back to V_ref after a
    #: ±0.1 V excursion (0.6 pF × 0.1 V × 1.8 V = 0.108 pJ) plus ~10 switch gates of 3 fF swung
    #: rail to rail (10 × 3 fF × 1.8² = 0.097 pJ).
    neuron_init_pJ_per_neuron_mvm: float = _line_pJ(_C_LINE_pF, 0.1, _V_DD_NEURON_V) + 10 * 3e-3 * _V_DD_NEURON_V ** 2
    #: Sampling the output line onto C_sample, per neuron per pulse. [E] C_sample·V_DD² =
    #: 25 fF × 1.8² (C_sample from models/neuron.py; the switches swing rail to rail).
    sample_pJ_per_neuron_pulse: float = _C_SAMPLE_fF * 1e-3 * _V_DD_NEURON_V ** 2
    #: Integrating one sample, per neuron per pulse (the amplifier in integrator mode). [C]
    #: NeurramAnalogIntegrator.integrate, 130 nm, 1.8 V: 0.25 pJ (≈ 1.8 V × 1.7 µA × 80 ns).
    integrate_pJ_per_neuron_pulse: float = 0.25
    #: One comparator decision of one neuron. [C] NeurramVariablePrecisionADC.convert (one step
    #: of the neuron's ADC), 130 nm, 1.8 V: 0.3 pJ.
    compare_pJ_per_neuron: float = 0.30
    #: One charge-decrement (or SAR) step of one neuron, without its comparison. [E] the charge
    #: packet capacitor (≈ C_sample) switched rail to rail, 25 fF × 1.8² = 0.081 pJ, plus the
    #: neuron's 7-bit step counter ≈ one 8-bit add [L] 0.03 pJ × SCALE_45NM_TO_130NM (5.1) = 0.154 pJ.
    step_pJ_per_neuron: float = _C_SAMPLE_fF * 1e-3 * _V_DD_NEURON_V ** 2 + _ADD8_45NM_pJ * SCALE_45NM_TO_130NM

    # -- cell programming and reading -------------------------------------------------------------
    #: One SET or RESET pulse. [E] V·I·t = 2.0 V (middle of the 1.2-4.0 V sweep [R]) × 100 µA
    #: (current limited by the access transistor at WL 2.5-3 V; estimate) × 1 µs (pulse width [R]).
    set_reset_pulse_pJ: float = 2.0 * 100e-6 * 1e-6 * 1e12
    #: One single-cell read. [E] V_read²·G·t = 0.15 V² × 40 µS (G_max [R]) × 1 µs + precharging
    #: BL and SL by V_read from 1.8 V (2 × 0.6 pF × 0.15 V × 1.8 V). The neuron's conversion of
    #: the read value is not included.
    cell_read_pJ: float = 0.15 ** 2 * 40e-6 * 1e-6 * 1e12 + 2 * _line_pJ(_C_LINE_pF, 0.15, _V_DD_NEURON_V)

    # -- digital ----------------------------------------------------------------------------------
    #: One busy clock cycle of one core's controller. [E] ~300 flip-flops clocked every cycle (state
    #: machine, the seven 32-bit event counters, buffer addresses) × 5 fF (clock pin and local
    #: clock wire at 130 nm) × 1.2 V², doubled for the logic switching with them. Per-neuron state
    #: is assumed clock-gated and charged to the step and compare events.
    control_pJ_per_cycle: float = 2 * 300 * 5e-3 * 1.2 ** 2
    #: One byte over the host interface (chip pads to the FPGA bridge). [E] 8 bits × activity 0.5
    #: × 10 pF (pad + board trace) × 1.8 V².
    io_pJ_per_byte: float = 8 * 0.5 * 10.0 * 1.8 ** 2

    # -- W. D. Lu's 45 nm digital reference [L] ----------------------------------------------------
    #: 8-bit integer add, 45 nm. [L]
    add8_45nm_pJ: float = 0.03
    #: 8-bit integer multiply, 45 nm. [L]
    mult8_45nm_pJ: float = 0.2
    #: 32-bit float multiply, 45 nm. [L]
    fmul32_45nm_pJ: float = 3.7
    #: 64-bit SRAM read, low end of the range, 45 nm. [L]
    sram_read64_45nm_pJ_min: float = 10.0
    #: 64-bit SRAM read, high end of the range, 45 nm. [L]
    sram_read64_45nm_pJ_max: float = 100.0
    #: DRAM access, low end, 45 nm. [L]
    dram_access_45nm_pJ_min: float = 1300.0
    #: DRAM access, high end, 45 nm. [L]
    dram_access_45nm_pJ_max: float = 2600.0

    # -- durations ----------------------------------------------------------------------------------
    #: One input pulse (sample and integrate): one period of the 12.5 MHz neuron control [R].
    #: ([C]'s fit of the paper's latency gives ≈ 270 ns per integration step on the silicon.)
    pulse_ns: float = 1e9 / 12.5e6
    #: One comparison: one neuron-control period [R]. ([C]: ≈ 300 ns per ADC step.)
    compare_ns: float = 1e9 / 12.5e6
    #: One charge-decrement step without its comparison: one neuron-control period [R].
    step_ns: float = 1e9 / 12.5e6
    #: Neuron initialisation per MVM: one neuron-control period [R].
    init_ns: float = 1e9 / 12.5e6
    #: One SET/RESET pulse: the 1 µs pulse width [R].
    set_reset_pulse_ns: float = 1000.0
    #: One single-cell read: one integration window of 1 µs [E].
    cell_read_ns: float = 1000.0

    # ------------------------------------------------------------------------------------------------
    def describe(self) -> str:
        """The per-event table as text (name, value)."""
        width = max(len(f.name) for f in fields(self))
        return "\n".join(f"{f.name:<{width}}  {getattr(self, f.name):.4g}" for f in fields(self))

    @staticmethod
    def _counts(counts: dict) -> dict:
        unknown = set(counts) - set(COUNTER_KEYS)
        if unknown:
            raise ValueError(f"unknown event counter(s) {sorted(unknown)}: expected keys among {COUNTER_KEYS}")
        out = {}
        for k in COUNTER_KEYS:
            v = counts.get(k, 0)
            if v < 0:
                raise ValueError(f"event count {k}={v} is negative")
            out[k] = v
        return out

    def energy_pJ(self, counts: dict, *, rows: int, cols: int, bytes_moved: float = 0) -> dict:
        """Energy in pJ of a set of event counts on cores of ``rows`` input lines and ``cols``
        output neurons (forward MVMs: rows = bitlines, cols = source lines).

        Returns ``{kind: pJ}`` for every kind in :data:`ENERGY_KEYS` and ``"total"`` (their sum).
        Linear in the counts and in ``bytes_moved``.
        """
        if rows < 0 or cols < 0 or bytes_moved < 0:
            raise ValueError("rows, cols and bytes_moved must be non-negative")
        c = self._counts(counts)
        e = {
            "input_drive": c["pulse"] * rows * self.input_pulse_pJ_per_row,
            "wordline": c["mvm"] * rows * self.wordline_pJ_per_row_mvm,
            "neuron_init": c["mvm"] * cols * self.neuron_init_pJ_per_neuron_mvm,
            "sample": c["pulse"] * cols * self.sample_pJ_per_neuron_pulse,
            "integrate": c["pulse"] * cols * self.integrate_pJ_per_neuron_pulse,
            "compare": c["compare"] * cols * self.compare_pJ_per_neuron,
            "step": c["step"] * cols * self.step_pJ_per_neuron,
            "program": c["program"] * self.set_reset_pulse_pJ,
            "read": c["read"] * self.cell_read_pJ,
            "control": c["busy"] * self.control_pJ_per_cycle,
            "io": bytes_moved * self.io_pJ_per_byte,
        }
        e = {k: float(v) for k, v in e.items()}
        e["total"] = float(sum(e.values()))
        return e

    def latency_ns(self, counts: dict, clock_hz: float) -> float:
        """Latency in ns from the digital controller's ``busy`` cycles at ``clock_hz``: the time the
        RTL spends (its pulses, comparisons and steps each take whole clock cycles). Counts summed
        over several cores give the time of running them one after another."""
        if clock_hz <= 0:
            raise ValueError(f"clock_hz must be positive, not {clock_hz}")
        return self._counts(counts)["busy"] / clock_hz * 1e9

    def event_latency_ns(self, counts: dict) -> float:
        """Latency in ns from the per-event durations (the test system's 12.5 MHz neuron timing):
        mvm·init + pulse·pulse_ns + compare·compare_ns + step·step_ns + program and read pulses.
        Digital overhead (buffer loads, write-back) is not in it; see :meth:`latency_ns`."""
        c = self._counts(counts)
        return float(c["mvm"] * self.init_ns + c["pulse"] * self.pulse_ns + c["compare"] * self.compare_ns
                     + c["step"] * self.step_ns + c["program"] * self.set_reset_pulse_ns
                     + c["read"] * self.cell_read_ns)

    # -- one MVM at a given precision ---------------------------------------------------------------
    def mvm_energy_pJ(self, input_bits: int, output_bits: int, rows: int, cols: int, **kw) -> dict:
        """Breakdown of one MVM's energy at that precision (counts from :func:`mvm_counts`;
        ``bytes_moved`` and the keywords of :func:`mvm_counts` may be given)."""
        bytes_moved = kw.pop("bytes_moved", 0)
        return self.energy_pJ(mvm_counts(input_bits, output_bits, **kw), rows=rows, cols=cols,
                              bytes_moved=bytes_moved)

    def tops_per_watt(self, input_bits: int, output_bits: int, rows: int, cols: int, *,
                      cells_per_weight: int = 1, bytes_moved: float = 0, **kw) -> float:
        """Operations per pJ (= TOPS/W) of one MVM on a ``rows`` × ``cols`` core.

        ops = 2 · (rows / cells_per_weight) · cols (one multiply and one add per weight); the
        default counts every cell as a weight, ``cells_per_weight=2`` counts differential pairs as
        the paper does. Energy: :meth:`mvm_energy_pJ` with the counts of :func:`mvm_counts`
        (keywords ``signed``, ``pulse_multiplier``, ``conversion``, ``max_steps``, ``steps``)."""
        e = self.mvm_energy_pJ(input_bits, output_bits, rows, cols, bytes_moved=bytes_moved, **kw)["total"]
        ops = 2.0 * rows / cells_per_weight * cols
        return ops / e

    def digital_tops_per_watt(self, weight_source: str = "none") -> float:
        """TOPS/W of the same work as 8-bit digital MACs in 45 nm [L]: one multiply and one add per
        weight (2 ops), plus, for ``weight_source="sram"``, one eighth of a 64-bit SRAM read per
        8-bit weight (low end of the range; ``"sram_max"`` for the high end)."""
        e = self.mult8_45nm_pJ + self.add8_45nm_pJ
        if weight_source == "sram":
            e += self.sram_read64_45nm_pJ_min / 8
        elif weight_source == "sram_max":
            e += self.sram_read64_45nm_pJ_max / 8
        elif weight_source != "none":
            raise ValueError(f"weight_source must be none, sram or sram_max, not {weight_source!r}")
        return 2.0 / e


# -- event counts of one MVM, derived like the RTL ----------------------------------------------------

def _conversion(conversion) -> Conversion:
    """A :class:`Conversion` from the enum, its number or its name (``"sign"``, ``"decrement"``, ``"sar"``)."""
    names = tuple(c.name.lower() for c in Conversion)
    if isinstance(conversion, str):
        try:
            return Conversion[conversion.upper()]
        except KeyError:
            raise ValueError(f"conversion must be one of {names}, not {conversion!r}") from None
    try:
        return Conversion(int(conversion))
    except ValueError:
        raise ValueError(f"conversion must be a Conversion ({names}), not {conversion!r}") from None


def decrement_steps_for_output_bits(output_bits: int, max_steps: int = 127) -> int:
    """Charge-decrement steps of one MVM whose outputs use ``output_bits`` bits (sign included).

    Assumption: the worst case. The controller steps until the slowest tracked neuron flips, so a
    layer with at least one full-scale output runs the whole range, 2^(output_bits-1) steps,
    capped at ``max_steps`` (7-bit counter: 127). Typical MVMs stop earlier; measured counts
    (``COUNT_STEP``) are what the reports use."""
    if not 1 <= output_bits <= 8:
        raise ValueError(f"output_bits must be within 1..8, not {output_bits}")
    return min(1 << (output_bits - 1), max_steps)


def busy_cycles_per_mvm(input_bits: int, *, signed: bool = False, pulse_multiplier: int = 1,
                        conversion="decrement", output_bits: int = 8, steps: int = 0,
                        ternary: bool = False) -> int:
    """Clock cycles one core's controller spends on one MVM (the state machine of ``hdl/core.py``).

    The fast model uses it for COUNT_BUSY, and the co-simulation checks it against the RTL:
    INIT, INIT_SIGN, per magnitude bit {LOAD, LATCH_PLANE, 2 × (DRIVE, BURST, HOLD × m·2^k)},
    COMPARE, LATCH_SIGN, the conversion (decrement: 1 + 3 per step; SAR: 2 per bit after the sign)
    and WRITE (8 planes)."""
    conv = _conversion(conversion)
    m = pulse_multiplier
    if ternary:
        integrate = 1 + m
    else:
        nb = input_bits - int(bool(signed))
        integrate = 6 * nb + 2 * m * ((1 << nb) - 1)
    base = 2 + integrate + 2 + 8
    if conv == Conversion.DECREMENT:
        return base + 1 + 3 * steps
    if conv == Conversion.SAR:
        return base + 2 * max(output_bits - 1, 0)
    return base


def mvm_counts(input_bits: int, output_bits: int, *, signed: bool = False, pulse_multiplier: int = 1,
               conversion="decrement", max_steps: int = 127, steps: int | None = None) -> dict:
    """Event counts of one bit-serial MVM, derived exactly as the RTL counts them.

    * pulses = 2 · m · (2^b − 1) with b magnitude bits (b = input_bits, or input_bits − 1 for
      sign-magnitude inputs): every bit k is integrated m·2^k times in two ±1 phases;
    * conversion ``"sign"`` (or ``output_bits == 1``): one comparison, no steps;
      ``"decrement"``: ``steps`` (default :func:`decrement_steps_for_output_bits`, the worst
      case) steps, each followed by a comparison; ``"sar"``: output_bits − 1 steps, each with a
      comparison;
    * busy cycles from :func:`busy_cycles_per_mvm`.
    """
    if not 1 <= input_bits <= 8:
        raise ValueError(f"input_bits must be within 1..8, not {input_bits}")
    if signed and input_bits < 2:
        raise ValueError("signed inputs need at least 2 bits")
    if not 1 <= output_bits <= 8:
        raise ValueError(f"output_bits must be within 1..8, not {output_bits}")
    if pulse_multiplier < 1:
        raise ValueError(f"pulse_multiplier must be >= 1, not {pulse_multiplier}")
    conv = _conversion(conversion)
    if output_bits == 1:
        conv = Conversion.SIGN
    nb = input_bits - int(bool(signed))
    pulses = 2 * pulse_multiplier * ((1 << nb) - 1)
    if conv == Conversion.DECREMENT:
        n_steps = decrement_steps_for_output_bits(output_bits, max_steps) if steps is None else int(steps)
    elif conv == Conversion.SAR:
        n_steps = output_bits - 1
    else:
        n_steps = 0
    busy = busy_cycles_per_mvm(input_bits, signed=signed, pulse_multiplier=pulse_multiplier,
                               conversion=conv, output_bits=output_bits, steps=n_steps)
    return {"mvm": 1, "pulse": pulses, "compare": 1 + n_steps, "step": n_steps,
            "program": 0, "read": 0, "busy": busy}
