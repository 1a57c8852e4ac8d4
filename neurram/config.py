"""The one chip description.

Every layer sizes itself from a :class:`ChipConfig`: the Amaranth RTL elaborates from it, the
analog models size their arrays from it, the fast model mirrors it, and the host driver reads it
back from the chip's identification block (registers ``GEOMETRY``, ``PRECISION``, ``FEATURES``).

The default is the NeuRRAM chip (docs/chip.md §1): 8 x 6 cores of 256 x 256 RRAM cells. Tests use
small configurations such as ``ChipConfig.small()`` (one core of 16 x 16).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

__all__ = ["ChipConfig", "CONVERSIONS", "MAX_CORES", "MAX_LINES"]

#: The conversion modes a neuron can implement (docs/chip.md §2).
CONVERSIONS = ("sign", "decrement", "sar")

#: Address-space limits of the register map (6-bit core index with 63 = broadcast, 12-bit line count).
MAX_CORES = 63
MAX_LINES = 4094


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _pow2_at_least(n: int) -> int:
    p = 1
    while p < n:
        p *= 2
    return p


@dataclass(frozen=True)
class ChipConfig:
    """Geometry, precisions and options of one simulated NeuRRAM chip.

    Lines: a core's array has ``rows`` bitlines (BL, one per wordline) and ``cols`` source lines
    (SL). Cell (i, j) sits between BL i and SL j. Forward MVMs drive the BLs and sense the SLs
    (y = Wᵀx, ``rows`` inputs, ``cols`` outputs); backward MVMs drive the SLs and sense the BLs.
    """

    #: Core grid as (core-rows, core-columns); cores are numbered row-major.
    core_grid: tuple[int, int] = (8, 6)
    #: Bitlines (and wordlines) per core array.
    rows: int = 256
    #: Source lines per core array.
    cols: int = 256
    #: Largest bit-serial input precision (unsigned 1..n bits, signed 2..n bits).
    input_bits_max: int = 8
    #: Largest neuron output precision in bits including the sign (SAR mode).
    output_bits_max: int = 8
    #: Largest charge-decrement step count the neuron counters hold (7-bit field).
    max_steps_limit: int = 127
    #: Largest pulse multiplier (integrations per unit of bit weight).
    pulse_multiplier_max: int = 255
    #: Input and output buffer depth per core, in vectors (one trigger runs up to this many MVMs).
    batch_depth: int = 16
    #: Conversion modes the neurons implement.
    conversions: tuple[str, ...] = CONVERSIONS
    #: LFSR-driven stochastic neurons (RBM Gibbs sampling). Off: no random source in the cores,
    #: no STOCHASTIC/LFSR_SEED registers, and a stochastic batch is refused (config_error).
    stochastic_neurons: bool = True
    #: Backward MVMs (inputs on the source lines). Off: a backward batch is refused.
    backward: bool = True
    #: Recurrent MVMs (outputs written back as inputs on chip). Off: no write-back logic, and a
    #: recurrent batch is refused.
    recurrent: bool = True
    #: The on-chip write-verify engine (CTRL.wv_start, WV_* registers, WV_CELLS buffer). Off: no
    #: engine, registers or buffer in the cores; the host programs by write-verify over the
    #: single-cell registers (``Chip.program`` chooses it by itself from FEATURES.wv_engine).
    wv_engine: bool = True
    #: Each core's event counters (COUNT_* registers). Off: no counters; the registers read 0
    #: (the host's energy accounting then sees no events).
    event_counters: bool = True
    #: Gate each core's clock while it has nothing to do (ASIC style; FPGA builds use clock
    #: enables instead). Behaviour is identical either way.
    clock_gating: bool = True
    #: Digital clock frequency in Hz (NeuRRAM test setup: 100 MHz FPGA).
    clock_hz: float = 100e6
    #: Rows of cells one on-chip write-verify operation programs (its WV_CELLS buffer holds
    #: ``wv_rows x cols`` targets per core).
    wv_rows: int = 4
    #: The analog arrays are a digital emulation (FPGA prototypes, neurram.hdl.fpga): exact
    #: integer MVMs on 10 nS conductance codes, no noise, no analog behaviour.
    emulated_array: bool = False

    def __post_init__(self):
        cr, cc = self.core_grid
        problems = []
        if not (1 <= cr <= 8 and 1 <= cc <= 8) or cr * cc > MAX_CORES:
            problems.append(f"core_grid {self.core_grid} must be within 8 x 8 (at most {MAX_CORES} cores)")
        for name in ("rows", "cols"):
            v = getattr(self, name)
            if not (2 <= v <= MAX_LINES) or v % 2:
                problems.append(f"{name}={v} must be even and within 2..{MAX_LINES}")
        if not 2 <= self.input_bits_max <= 8:
            problems.append(f"input_bits_max={self.input_bits_max} must be within 2..8")
        if not 1 <= self.output_bits_max <= 8:
            problems.append(f"output_bits_max={self.output_bits_max} must be within 1..8")
        if not 1 <= self.max_steps_limit <= 127:
            problems.append(f"max_steps_limit={self.max_steps_limit} must be within 1..127")
        if not 1 <= self.pulse_multiplier_max <= 255:
            problems.append(f"pulse_multiplier_max={self.pulse_multiplier_max} must be within 1..255")
        if not 1 <= self.batch_depth <= 4096:
            problems.append(f"batch_depth={self.batch_depth} must be within 1..4096")
        if not 1 <= self.wv_rows <= min(64, self.rows):
            problems.append(f"wv_rows={self.wv_rows} must be within 1..min(64, rows)")
        unknown = set(self.conversions) - set(CONVERSIONS)
        if unknown or "sign" not in self.conversions:
            problems.append(f"conversions={self.conversions} must include 'sign' and only use {CONVERSIONS}")
        if problems:
            raise ValueError("invalid ChipConfig: " + "; ".join(problems))

    # -- derived sizes -----------------------------------------------------------------------
    @property
    def n_cores(self) -> int:
        return self.core_grid[0] * self.core_grid[1]

    @property
    def lines(self) -> int:
        """Width of a line vector that serves both directions: max(rows, cols)."""
        return max(self.rows, self.cols)

    @property
    def input_planes(self) -> int:
        """Bit-planes per input vector in the input buffer: magnitude planes plus a sign plane."""
        return self.input_bits_max + 1

    # Buffer strides are rounded up to powers of two so that addresses decode by bit slicing.
    @property
    def words_per_line_vector(self) -> int:
        """32-bit words holding one bit per line (an input bit-plane, a mask), a power of 2."""
        return _pow2_at_least((self.lines + 31) // 32)

    @property
    def words_per_ternary_vector(self) -> int:
        """32-bit words holding one ternary register (two bit-planes), a power of 2."""
        return 2 * self.words_per_line_vector


    def core_index(self, core_row: int, core_col: int) -> int:
        return core_row * self.core_grid[1] + core_col

    # -- constructors and serialisation -------------------------------------------------------
    @classmethod
    def small(cls, n: int = 16, cores: tuple[int, int] = (1, 1), **kw) -> "ChipConfig":
        """A small configuration for fast tests: one core of n x n by default."""
        return cls(core_grid=cores, rows=n, cols=n, **kw)

    def replace(self, **kw) -> "ChipConfig":
        return dataclasses.replace(self, **kw)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["core_grid"] = list(self.core_grid)
        d["conversions"] = list(self.conversions)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ChipConfig":
        """A ChipConfig from :meth:`to_dict`'s form; unknown keys and values of the wrong type are a
        one-line ValueError that lists the valid keys."""
        if not isinstance(d, dict):
            raise ValueError(f"a ChipConfig is a JSON object of fields, not {type(d).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(fields))
        if unknown:
            raise ValueError(f"unknown ChipConfig field{'s' * (len(unknown) > 1)} {', '.join(map(repr, unknown))}: "
                             f"the fields are {', '.join(fields)}")
        d = dict(d)
        for key in ("core_grid", "conversions"):
            if key in d:
                if not isinstance(d[key], (list, tuple)):
                    raise ValueError(f"ChipConfig {key}={d[key]!r}: give a list, e.g. {getattr(cls, key)!r}")
                d[key] = tuple(d[key])
        if "core_grid" in d and (len(d["core_grid"]) != 2 or not all(_is_int(v) for v in d["core_grid"])):
            raise ValueError(f"ChipConfig core_grid={list(d['core_grid'])!r}: give two integers [rows, cols]")
        for key, value in d.items():
            kind = type(getattr(cls, key))
            ok = (_is_int(value) if kind is int else isinstance(value, bool) if kind is bool
                  else (_is_int(value) or isinstance(value, float)) and value == value and abs(value) != float("inf")
                  if kind is float else True)
            if not ok:
                raise ValueError(f"ChipConfig {key}={value!r}: give {'an integer' if kind is int else kind.__name__}")
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def describe(self) -> str:
        cr, cc = self.core_grid
        return (f"{self.n_cores} cores ({cr} x {cc}) of {self.rows} x {self.cols} cells, "
                f"inputs 1-{self.input_bits_max} bit, outputs up to {self.output_bits_max} bit, "
                f"conversions {'/'.join(self.conversions)}, batch depth {self.batch_depth}"
                + "".join(f", no {what}" for what, on in (("backward", self.backward), ("recurrent", self.recurrent),
                                                          ("stochastic neurons", self.stochastic_neurons),
                                                          ("write-verify engine", self.wv_engine),
                                                          ("event counters", self.event_counters)) if not on))
