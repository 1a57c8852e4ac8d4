"""The analog array of each core, as a Python model attached to the RTL's black box.

In the spirit of cocotb's ``examples/analog_model``: the Verilog stub ``neurram_analog_array``
has no behaviour; :class:`AnalogArrayDriver` wakes on each rising edge of its ``strobe``, reads the
operation and its arguments, calls the :class:`neurram.models.core.AnalogCore` event API, and
writes the comparator outputs (``cmp_r``) and cell-read results (``read_g_r``) back before the
controller samples them on the next clock edge.
"""

import numpy as np
from cocotb.triggers import RisingEdge

from neurram.hdl.analog import AnalogOp
from neurram.spec.analog import NOISE_PLANES
from neurram.spec.enums import Direction, PulsePolarity
from neurram.models.core import AnalogCore
from neurram.models.neuron import stochastic_noise_nV

__all__ = ["AnalogArrayDriver", "bits_of", "int_of"]

_OPS = {op.value: op for op in AnalogOp}


def bits_of(value: int, n: int) -> np.ndarray:
    """Little-endian bit vector (bool, length n) of a non-negative integer."""
    raw = np.frombuffer(int(value).to_bytes((n + 7) // 8, "little"), dtype=np.uint8)
    return np.unpackbits(raw, bitorder="little")[:n].astype(bool)


def int_of(bits: np.ndarray) -> int:
    return int.from_bytes(np.packbits(np.asarray(bits, dtype=np.uint8), bitorder="little").tobytes(), "little")


class AnalogArrayDriver:
    """Drives one core's ``neurram_analog_array`` stub from an :class:`AnalogCore` model."""

    def __init__(self, handle, model: AnalogCore, config, name: str = "array"):
        self.h = handle
        self.model = model
        self.config = config
        self.name = name
        self.events = 0
        #: Per-MVM record of (direction, n_plus, n_minus) seen at the first compare (for tests).
        self.last_counts = None
        self._counts = None
        # Handles are looked up once: attribute access on cocotb handles is not free.
        h = handle
        self._strobe = h.strobe
        self._op, self._dir, self._n = h.op, h.direction, h.n_pulses
        self._bl = (h.bl_act, h.bl_neg)
        self._sl = (h.sl_act, h.sl_neg)
        self._en, self._shift = h.step_enable, h.step_shift
        self._vpos, self._vneg, self._packet = h.v_pos_mV, h.v_neg_mV, h.packet_uV
        self._cmp, self._read = h.cmp_r, h.read_g_r
        self._noise_en, self._noise, self._noise_uV = h.noise_en, h.noise, h.noise_uV
        self._cell = (h.cell_row, h.cell_col)
        self._pulse = (h.pulse_polarity, h.pulse_mV, h.width_ns, h.gate_mV)
        self._read_mV = h.read_mV
        self._direction = Direction.FORWARD

    def _u(self, handle) -> int:
        return int(handle.value)

    def _ternary(self, pair, n) -> np.ndarray:
        act = bits_of(self._u(pair[0]), n)
        neg = bits_of(self._u(pair[1]), n)
        return act.astype(np.int8) * np.where(neg, -1, 1).astype(np.int8)

    def _noise_nV(self):
        """Stochastic-neuron charge for this comparison, or None when noise is off."""
        if not self._u(self._noise_en):
            return None
        L = self.config.lines
        planes = bits_of(self._u(self._noise), NOISE_PLANES * L).reshape(NOISE_PLANES, L)
        return stochastic_noise_nV(planes, self._u(self._noise_uV))

    def _write_cmp(self, cmp: np.ndarray) -> None:
        self._cmp.value = int_of(cmp)

    async def run(self):
        cfg = self.config
        model = self.model
        while True:
            await RisingEdge(self._strobe)
            self.events += 1
            op = _OPS.get(self._u(self._op))
            if op is AnalogOp.INITIALISE:
                # the stub's 1-bit direction: 0 drives the bitlines, 1 the source lines
                self._direction = Direction.BACKWARD if self._u(self._dir) else Direction.FORWARD
                model.initialise(self._direction)
                n_in = cfg.rows if self._direction == Direction.FORWARD else cfg.cols
                self._counts = (np.zeros(n_in, np.int64), np.zeros(n_in, np.int64))
            elif op is AnalogOp.INTEGRATE:
                if self._direction == Direction.FORWARD:
                    drive = self._ternary(self._bl, cfg.rows)
                else:
                    drive = self._ternary(self._sl, cfg.cols)
                n = self._u(self._n)
                model.integrate(drive, n, self._u(self._vpos), self._u(self._vneg))
                if self._counts is not None:
                    self._counts[0][:] += n * (drive > 0)
                    self._counts[1][:] += n * (drive < 0)
            elif op is AnalogOp.COMPARE:
                if self._counts is not None:
                    self.last_counts = (self._direction, self._counts[0].copy(), self._counts[1].copy())
                self._write_cmp(model.compare(self._noise_nV()))
            elif op is AnalogOp.STEP:
                L = cfg.lines
                enable = bits_of(self._u(self._en), L)
                if self._direction == Direction.FORWARD:
                    neg = bits_of(self._u(self._sl[1]), cfg.cols)
                else:
                    neg = bits_of(self._u(self._bl[1]), cfg.rows)
                latched_pos = np.ones(L, bool)
                latched_pos[: neg.size] = ~neg
                model.step(enable, latched_pos, self._u(self._packet), self._u(self._shift))
                self._write_cmp(model.compare(self._noise_nV()))
            elif op is AnalogOp.PROGRAM:
                pol, amp, width, gate = (self._u(x) for x in self._pulse)
                model.program_pulse(self._u(self._cell[0]), self._u(self._cell[1]), PulsePolarity(pol),
                                    amp, width, gate)
            elif op is AnalogOp.READ:
                code = model.read_cell(self._u(self._cell[0]), self._u(self._cell[1]), self._u(self._read_mV))
                self._read.value = int(code)
