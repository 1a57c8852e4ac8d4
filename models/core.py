"""The analog half of one compute-in-memory core: RRAM array, crossbar sensing, neurons.

This is the one analog model of the project (docs/architecture.md, contract 5). The cocotb co-simulation
attaches it to each core's black-box ``neurram_analog_array`` and calls the *event* methods as
the RTL's strobes arrive; the fast chip model calls the *batch* methods for whole batches. Both
paths share every line of arithmetic, so with the same seed they agree bit for bit.

Randomness comes from three independent streams spawned from the core's seed, so that the order
in which a backend interleaves cell operations and MVMs cannot change any draw:
``device`` (programming, cell reads, relaxation), ``mvm`` (fresh read noise: two standard
normals per output line per MVM, a counter-based function of the MVM's index and the line, see
``models/rng.py``) and ``static`` (per-neuron mismatch, drawn once).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neurram.spec.enums import Direction
from neurram.spec.writeverify import uS_to_code

from .crossbar import Crossbar, CrossbarParams
from .neuron import NeuronBank, NeuronParams
from .rng import key_from_seed, normal_planes

__all__ = ["AnalogParams", "AnalogCore", "pulse_counts"]


@dataclass(frozen=True)
class AnalogParams:
    """Everything analog about a core. ``AnalogParams.ideal()`` switches every noise off."""
    device: object = None            # models.device.RRAMParams (None: its defaults)
    crossbar: CrossbarParams = field(default_factory=CrossbarParams)
    neuron: NeuronParams = field(default_factory=NeuronParams)
    #: σ of the relative input-driver amplitude mismatch between cores, drawn separately for the
    #: +V_pos and -V_neg drivers. Estimate, consistent with the 1 mV calibration steps of
    #: V_pos/V_neg in the test software (models/irdrop.py, default_circuit_params).
    driver_mismatch_sigma: float = 0.01
    #: Time that passes between the last programming pulse of a core and its first MVM at the
    #: least, s: the first MVM after programming relaxes the array this long, unless it has been
    #: relaxed at least this long since (the fast model's ``age``). 1 s is the earliest time of the
    #: published relaxation curves (paper Extended Data Fig. 3; aihwkit's fit at 1 s); no chip
    #: reads its weights sooner after programming a core cell by cell. 0: no implicit delay.
    first_use_delay_s: float = 1.0

    @classmethod
    def ideal(cls) -> "AnalogParams":
        """Every non-ideality off: noise-free programming, no read noise, ideal wires and neurons."""
        from .device import RRAMParams
        return cls(device=RRAMParams.noise_free(), crossbar=CrossbarParams(read_noise=False, wire=None),
                   neuron=NeuronParams.ideal(), driver_mismatch_sigma=0.0, first_use_delay_s=0.0)

    def device_params(self):
        from .device import RRAMParams
        return self.device if self.device is not None else RRAMParams()


def pulse_counts(codes: np.ndarray, bits: int, signed: bool, multiplier: int,
                 negate: np.ndarray | None = None):
    """Per-line counts of +1 and -1 pulses of a whole bit-serial MVM (docs/chip.md §2).

    Bit k of every line is applied as two phases of ``multiplier · 2^k`` pulses each. Unsigned bit
    b: (2b-1) then (+1). Signed (sign-magnitude, bits-1 magnitude bits) digit t: [t>0 ? +1 : -1]
    then [t>=0 ? +1 : -1]. Lines in ``negate`` (the G- rows of differential pairs) get every pulse
    inverted. Returns (n_plus, n_minus) as int64 arrays shaped like ``codes``.
    """
    codes = np.asarray(codes, dtype=np.int64)
    m = int(multiplier)
    if signed:
        full = (1 << (bits - 1)) - 1
        mag = np.abs(codes)
        n_plus = np.where(codes >= 0, m * (mag + full), m * (full - mag))
        n_minus = np.where(codes >= 0, m * (full - mag), m * (full + mag))
    else:
        full = (1 << bits) - 1
        n_plus = m * (codes + full)
        n_minus = m * (full - codes)
    if negate is not None:
        n_plus, n_minus = np.where(negate, n_minus, n_plus), np.where(negate, n_plus, n_minus)
    return n_plus, n_minus


class AnalogCore:
    """Analog state and behaviour of one core (rows x cols cells, max(rows, cols) neurons)."""

    def __init__(self, rows: int, cols: int, params: AnalogParams | None = None, seed: int = 0):
        from .device import RRAMArray
        self.rows, self.cols = rows, cols
        self.params = params if params is not None else AnalogParams()
        self.seed = seed
        ss = np.random.SeedSequence(seed)
        dev_ss, mvm_ss, static_ss = ss.spawn(3)
        self.device = RRAMArray(rows, cols, self.params.device_params(), np.random.default_rng(dev_ss))
        npar = self.params.neuron
        self.crossbar = Crossbar(rows, cols, lambda: self.device.g_uS, self.device.array_read_sigma_uS,
                                 self.params.crossbar,
                                 sample_noise_V2=npar.sampling_noise_V2(self.params.crossbar.c_line_fF),
                                 conversion_noise_V2=npar.conversion_noise_V2(), before_use=self._before_mvm)
        #: Seconds the array has relaxed since its last programming pulse (inf: none pending).
        self._since_program_s = np.inf
        static = np.random.default_rng(static_ss)
        z = static.standard_normal(2)
        self.driver_gain_pos = 1.0 + self.params.driver_mismatch_sigma * z[0]
        self.driver_gain_neg = 1.0 + self.params.driver_mismatch_sigma * z[1]
        self.neurons = NeuronBank(max(rows, cols), self.params.neuron, static)
        self.mvm_key = key_from_seed(mvm_ss)
        self.mvm_count = 0              # MVMs whose read noise has been drawn
        # Event-API state of the MVM in progress.
        self._direction = Direction.FORWARD
        self._n_plus = self._n_minus = None
        self._v = (0.0, 0.0)
        self._z = None

    # -- geometry --------------------------------------------------------------------------------
    def n_inputs(self, direction: Direction) -> int:
        return self.rows if direction == Direction.FORWARD else self.cols

    def n_outputs(self, direction: Direction) -> int:
        return self.cols if direction == Direction.FORWARD else self.rows

    # -- weights and time ------------------------------------------------------------------------
    def set_conductance(self, g_uS: np.ndarray) -> None:
        self.device.set_conductance(g_uS)
        self.crossbar.invalidate()
        self._since_program_s = 0.0

    def program_pulse(self, row, col, polarity, amplitude_mV, width_ns, gate_mV) -> None:
        self.device.apply_pulses(row, col, polarity, np.asarray(amplitude_mV) * 1e-3, width_ns,
                                 np.asarray(gate_mV) * 1e-3)
        self.crossbar.invalidate()
        self._since_program_s = 0.0

    def read_cell(self, row, col, read_mV=150):
        """Cell read as the chip reports it (CELL_RESULT.g_10nS): 10 nS codes, 16-bit saturating."""
        return uS_to_code(self.device.read(row, col, np.asarray(read_mV) * 1e-3))

    def relax(self, seconds: float) -> None:
        self.device.relax(seconds)
        self.crossbar.invalidate()
        self._since_program_s += float(seconds)

    def _before_mvm(self) -> None:
        """The first MVM after programming comes ``first_use_delay_s`` after it at the earliest."""
        rest = self.params.first_use_delay_s - self._since_program_s
        if rest > 0:
            self.relax(rest)
        self._since_program_s = np.inf

    def _volts(self, v_pos_mV, v_neg_mV):
        return v_pos_mV * 1e-3 * self.driver_gain_pos, v_neg_mV * 1e-3 * self.driver_gain_neg

    def _draw_z(self, n_mvms: int, direction, columns=None):
        """Read-noise normals of the next ``n_mvms`` MVMs: (z1, z2), each (n_mvms, lines evaluated)."""
        index = self.mvm_count + np.arange(n_mvms)
        self.mvm_count += n_mvms
        if not self.crossbar.has_read_noise():
            return None
        lines = np.arange(self.n_outputs(direction)) if columns is None else np.asarray(columns)
        return normal_planes(self.mvm_key, index, lines)

    # -- event API (co-simulation) ---------------------------------------------------------------
    def initialise(self, direction: Direction) -> None:
        """Neuron initialise: discharge integrators; a new MVM starts (fresh read noise)."""
        self._before_mvm()
        self.neurons.initialise()
        self._direction = direction
        n_in = self.n_inputs(direction)
        self._n_plus = np.zeros(n_in, np.int64)
        self._n_minus = np.zeros(n_in, np.int64)
        z = self._draw_z(1, direction)
        self._z = None if z is None else (z[0][0], z[1][0])

    def integrate(self, drive: np.ndarray, n_pulses: int, v_pos_mV: float, v_neg_mV: float) -> None:
        """A burst of ``n_pulses`` identical pulses with ternary ``drive`` on the input lines."""
        if self._n_plus is None:
            raise RuntimeError("integrate before initialise")
        if self._v != (v_pos_mV, v_neg_mV) and (self._n_plus.any() or self._n_minus.any()):
            self._flush()
        self._v = (v_pos_mV, v_neg_mV)
        drive = np.asarray(drive)[: self._n_plus.size]
        self._n_plus += n_pulses * (drive > 0)
        self._n_minus += n_pulses * (drive < 0)

    def _flush(self) -> None:
        if self._n_plus is None or not (self._n_plus.any() or self._n_minus.any()):
            return
        d = self._direction
        vp, vn = self._volts(*self._v)
        dev = self.crossbar.integrate_counts(d, self._n_plus, self._n_minus, vp, vn, self._z)
        self.neurons.integrate(dev, slice(0, self.n_outputs(d)))
        self._n_plus[:] = 0
        self._n_minus[:] = 0
        self._z = None  # read noise is per MVM: pulses after a compare see the same sample-free array

    def compare(self, noise_nV: np.ndarray | None = None) -> np.ndarray:
        """Comparator outputs of all neurons (True = positive)."""
        self._flush()
        return self.neurons.compare(noise_nV)

    def step(self, enable: np.ndarray, latched_positive: np.ndarray, packet_uV: float,
             shift: int = 0) -> None:
        self._flush()
        self.neurons.step(enable, latched_positive, packet_uV, shift)

    # -- batch API (fast model) ------------------------------------------------------------------
    def mvm_charge_dt(self, direction: Direction, d: np.ndarray, t, v_pos_mV: float, v_neg_mV: float,
                      columns: np.ndarray | None = None) -> np.ndarray:
        """:meth:`mvm_charge` from d = n+ - n- and t = n+ + n- (see Crossbar.integrate_dt)."""
        d = np.atleast_2d(d)
        self._before_mvm()
        z = self._draw_z(d.shape[0], direction, columns)
        vp, vn = self._volts(v_pos_mV, v_neg_mV)
        return self._charge(self.crossbar.integrate_dt(direction, d, t, vp, vn, z, columns), direction, columns)

    def mvm_charge(self, direction: Direction, n_plus: np.ndarray, n_minus: np.ndarray,
                   v_pos_mV: float, v_neg_mV: float, columns: np.ndarray | None = None) -> np.ndarray:
        """Integrator voltages (nV) after whole MVMs for a batch of pulse counts (B, inputs).

        Draws the read noise of each MVM in the same order, from the same counter-based stream,
        as a sequence of :meth:`initialise` calls would.
        """
        n_plus = np.atleast_2d(n_plus)
        n_minus = np.atleast_2d(n_minus)
        return self.mvm_charge_dt(direction, n_plus - n_minus, n_plus + n_minus, v_pos_mV, v_neg_mV, columns)

    def mvm_charge_folded(self, fd, x: np.ndarray, t: int, v_pos_mV: float, v_neg_mV: float,
                          x_max: int | None = None) -> np.ndarray:
        """:meth:`mvm_charge_dt` for a drive folded onto compact inputs x (``Crossbar.fold``;
        ``x_max`` a bound on |x|): the same charges and the same read-noise draws."""
        self._before_mvm()
        z = self._draw_z(x.shape[0], fd.direction, fd.columns)
        vp, vn = self._volts(v_pos_mV, v_neg_mV)
        return self._charge(self.crossbar.integrate_folded(fd, x, t, vp, vn, z, x_max), fd.direction, fd.columns)

    def folded_terms(self, fd, x: np.ndarray, t: int, v_pos_mV: float, v_neg_mV: float, x_max: int | None = None):
        """What :meth:`mvm_charge_folded` computes before its element-wise part, for a compiled
        kernel that finishes it with the same bits: (the exact line sums, the deviation's
        constants, this batch's read-noise normals (z1, z2) or None)."""
        self._before_mvm()
        z = self._draw_z(x.shape[0], fd.direction, fd.columns)
        vp, vn = self._volts(v_pos_mV, v_neg_mV)
        sums = self.crossbar.folded_sums(fd, x, t, z is not None, x_max)
        return sums, self.crossbar.deviation_terms(fd.cols, sums.s_t, t, vp, vn), z

    def _charge(self, dev: np.ndarray, direction, columns) -> np.ndarray:
        sel = slice(0, self.n_outputs(direction)) if columns is None else np.asarray(columns)
        return self.neurons.charge_nV(0, dev, sel)
