"""One core of the fast chip model: a whole batch of MVMs as a few vectorised operations.

:func:`run_batch` mirrors the RTL core controller (``hdl/core.py``) exactly: the same drive
patterns (as closed-form pulse counts), the same analog model calls (``neurram.models``), the
same conversions (closed forms proven equal to the RTL's loops) and the same output bytes and
event counts. The co-simulation tests use it as their expectation; the fast chip model uses it to
execute batches.
"""

from dataclasses import dataclass

import numpy as np

from neurram.models.core import AnalogCore, pulse_counts
from neurram.models.neuron import decrement_closed_form, sar_closed_form, stochastic_noise_nV
from neurram.spec.analog import NOISE_PLANES, WARMUP_STEPS, seed_mix, seed_taps
from neurram.spec.enums import Activation, Conversion, Direction, InputSource
from neurram.spec.mvm import MvmSettings, encode_output, magnitude_bits

from . import kernels

__all__ = ["BatchResult", "run_batch", "recurrent_codes", "NoiseAutomaton"]


class NoiseAutomaton:
    """The stochastic neurons' random source, as the RTL builds it (hdl/noise.py): a ring of
    12·lines cells updated by rule 90 on even and rule 150 on odd cells after every comparison,
    seeded from LFSR_SEED mixed with the core index (cell k takes bit ``seed_taps(n)[k]``, an
    aperiodic hash of k: a periodic seed would stay periodic, spec/analog.py), then mixed for
    WARMUP_STEPS steps."""

    def __init__(self, lines: int):
        self.lines = lines
        self.planes_n = NOISE_PLANES
        n = NOISE_PLANES * lines
        self.odd = (np.arange(n) % 2) == 1
        self.state = np.zeros(n, bool)
        self.taps = seed_taps(n)

    def seed(self, seed: int, core_index: int) -> None:
        mix = seed_mix(seed, core_index)
        self.state = ((mix >> self.taps) & 1).astype(bool)
        for _ in range(WARMUP_STEPS):
            self.step()

    def step(self) -> None:
        s = self.state
        self.state = np.roll(s, 1) ^ np.roll(s, -1) ^ (s & self.odd)

    def planes(self) -> np.ndarray:
        return self.state.reshape(self.planes_n, self.lines)


@dataclass
class BatchResult:
    outputs: np.ndarray               # (B, lines) uint8 output bytes; (B, len(columns)) when columns is set
    counts: dict                      # event counts of the batch, as the RTL counts them
    steps: np.ndarray                 # (MVMs,) conversion steps the controller ran per MVM
    final_negative: np.ndarray        # (lines,) comparators latched in the output-side register by the last MVM
    extra_cycles: int = 0             # controller cycles outside MVMs (warm-up, recurrent write-back)
    last_inputs: np.ndarray | None = None   # recurrent: (B, input lines) codes of each vector's last step
    columns: np.ndarray | None = None       # compact results: the output lines ``outputs`` holds


def run_batch(model: AnalogCore, s: MvmSettings, *, codes=None, ternary=None, mask, polarity,
              v_pos_mV: int, v_neg_mV: int, packet_uV: int, noise_uV: int = 0,
              automaton: NoiseAutomaton | None = None, input_planes: int = 9, drive=None) -> BatchResult:
    """Run a batch on one core.

    ``codes``: (B, input lines) integer input codes (``InputSource.BUFFER``);
    ``ternary``: (input lines,) values in {-1, 0, +1} of the input-side register (``InputSource.TERNARY``);
    ``mask``/``polarity``: (lines,) bool. Stochastic and recurrent batches need the MVMs one after
    the other (each one's random draws depend on the ones before): ``automaton`` is the core's
    noise source, already seeded.

    ``drive`` (a :class:`neurram.spec.link.SegmentDrive`): ``codes`` are compact (B, sources) and
    the drive says which lines carry them; the outputs then hold only the tracked lines
    (``columns``, the others read 0) and equal the full batch's bit for bit.
    """
    if s.stochastic or s.direction == Direction.RECURRENT:
        if drive is not None:
            codes = drive.full_codes(codes, max(model.rows, model.cols))
        return _run_sequential(model, s, codes=codes, ternary=ternary, mask=mask, polarity=polarity,
                               v_pos_mV=v_pos_mV, v_neg_mV=v_neg_mV, packet_uV=packet_uV,
                               noise_uV=noise_uV, automaton=automaton, input_planes=input_planes)
    L = max(model.rows, model.cols)
    direction = Direction.BACKWARD if s.direction == Direction.BACKWARD else Direction.FORWARD
    n_in, n_out = model.n_inputs(direction), model.n_outputs(direction)
    mask = np.asarray(mask, bool)
    # Only tracked neurons are converted (untracked read 0 and keep their register entry), and
    # every output line is independent of the others: evaluate the tracked lines only.
    t_idx = np.flatnonzero(mask)
    sensed = t_idx[t_idx < n_out]
    if s.input_source == InputSource.TERNARY:
        t = np.asarray(ternary, np.int64)[:n_in]
        B = 1 if codes is None else len(codes)
        n_plus = np.broadcast_to(s.pulse_multiplier * (t > 0), (B, n_in))
        n_minus = np.broadcast_to(s.pulse_multiplier * (t < 0), (B, n_in))
        pulses_per_mvm = s.pulse_multiplier
        q_sensed = model.mvm_charge(direction, n_plus, n_minus, v_pos_mV, v_neg_mV, columns=sensed)
    else:
        # Every line is driven in every phase: n+ + n- = 2·m·(2^nb - 1) on all lines, and
        # n+ - n- = 2·m·code, negated on inverted lines (models.core.pulse_counts, in closed form).
        pulses_per_mvm = _code_pulses_per_line(s)
        sign = np.where(np.asarray(polarity, bool)[:n_in], -2 * s.pulse_multiplier, 2 * s.pulse_multiplier)
        if drive is not None:
            B = len(codes)
            lines = np.asarray(drive.lines)
            weight = sign[lines] * np.where(drive.source < 0, drive.constant, 1)
            fd = model.crossbar.fold(direction, lines, drive.source, weight, sensed)
            # codes reach the array as bit-planes: |code| < 2^magnitude_bits
            x_max = (1 << magnitude_bits(s)) - 1
            if _kernel_covers(model, s, sensed, t_idx):
                return _run_kernel(model, s, fd, codes, pulses_per_mvm, v_pos_mV, v_neg_mV, x_max, packet_uV,
                                   t_idx, L)
            q_sensed = model.mvm_charge_folded(fd, codes, pulses_per_mvm, v_pos_mV, v_neg_mV, x_max=x_max)
        else:
            codes = np.atleast_2d(np.asarray(codes))[:, :n_in]
            B = codes.shape[0]
            d = codes.astype(np.int32) * sign.astype(np.int32)
            q_sensed = model.mvm_charge_dt(direction, d, pulses_per_mvm, v_pos_mV, v_neg_mV, columns=sensed)
    if sensed.size == t_idx.size:
        q = q_sensed
    else:                                   # tracked neurons beyond the array's outputs read 0 V
        q = np.zeros((B, t_idx.size))
        q[:, :sensed.size] = q_sensed
    byte, counts, per_mvm, final = _convert(model, s, q, t_idx, packet_uV, B, pulses_per_mvm)
    last_final = np.zeros(L, bool)
    if B:
        last_final[t_idx] = final[-1]
    if drive is not None:
        return BatchResult(byte, counts, per_mvm, last_final, columns=t_idx)
    outputs = np.zeros((B, L), np.uint8)
    outputs[:, t_idx] = byte
    return BatchResult(outputs, counts, per_mvm, last_final)


def _kernel_covers(model, s: MvmSettings, sensed, t_idx) -> bool:
    """Whether the compiled kernel (sim/kernels.py) does this batch: the runtime's case."""
    return (kernels.available() and model.crossbar.has_read_noise() and sensed.size == t_idx.size
            and s.conversion in (Conversion.DECREMENT, Conversion.SIGN) and s.activation == Activation.NONE)


def _run_kernel(model, s, fd, codes, pulses, v_pos_mV, v_neg_mV, x_max, packet_uV, t_idx, L) -> BatchResult:
    """The compact batch through the compiled kernel: the bytes, counts and latched comparators
    that the numpy path (mvm_charge_folded, then _convert) gives."""
    sums, terms, z = model.folded_terms(fd, codes, pulses, v_pos_mV, v_neg_mV, x_max)
    nb = model.neurons
    pos_nV, neg_nV = (p[t_idx] for p in nb.packets_nV(packet_uV))
    decrement = s.conversion == Conversion.DECREMENT
    byte, per_mvm, last_flipped = kernels.convert(
        sums, terms, z, not fd.cols.safe_for(z[1]), nb.gain_nV_per_V[t_idx], nb.v_sat_nV, nb.offset_nV[t_idx],
        pos_nV, neg_nV, s.max_steps, decrement)
    B = byte.shape[0]
    counts = {"mvm": B, "pulse": B * pulses, "compare": B, "step": 0}
    if decrement:
        counts["step"] = int(per_mvm.sum())
        counts["compare"] += counts["step"]
    final = np.zeros(L, bool)
    if B:
        negative = byte[-1] >= 128
        final[t_idx] = negative ^ last_flipped if decrement else negative
    return BatchResult(byte, counts, per_mvm, final, columns=t_idx)


def _convert(model, s: MvmSettings, q: np.ndarray, t_idx: np.ndarray, packet_uV: int, B: int, pulses: int):
    """The conversion of integrator charges q (B, tracked) as the RTL performs it, in closed form:
    (output bytes, event counts, steps per MVM, comparators latched at the end of the last MVM)."""
    nb = model.neurons
    off = nb.offset_nV[t_idx]
    counts = {"mvm": B, "pulse": B * pulses, "compare": B, "step": 0}
    if s.conversion == Conversion.SAR:
        bits = s.output_bits
        tracked = np.ones(t_idx.size, bool)
        code = sar_closed_form(q, off, lambda i: nb.packets_nV(packet_uV, i)[0][t_idx],
                               lambda i: nb.packets_nV(packet_uV, i)[1][t_idx], tracked, bits)
        n_steps = max(bits - 1, 0)
        counts["step"] = B * n_steps
        counts["compare"] += B * n_steps
        return code.astype(np.uint8), counts, np.full(B, n_steps, np.int64), (code[-1:] & 1) == 0
    pos_nV, neg_nV = (p[t_idx] for p in nb.packets_nV(packet_uV))
    negative, steps, flipped = decrement_closed_form(q, off, pos_nV, neg_nV, None, s.max_steps)
    per_mvm = np.zeros(B, np.int64)
    if s.conversion == Conversion.DECREMENT:
        if t_idx.size:
            per_mvm = steps.max(axis=1)
        counts["step"] = int(per_mvm.sum())
        counts["compare"] += counts["step"]
        return encode_output(s, negative, steps), counts, per_mvm, negative[-1:] ^ flipped[-1:]
    return encode_output(s, negative), counts, per_mvm, negative[-1:]


def _code_pulses_per_line(s: MvmSettings) -> int:
    """Pulses on every line of one MVM from input codes: 2·m·(2^magnitude_bits − 1)."""
    return 2 * s.pulse_multiplier * ((1 << magnitude_bits(s)) - 1)


def _convert_loop(q: np.ndarray, s: MvmSettings, bank, mask: np.ndarray, packet_uV: int, noise):
    """One MVM's conversion as the RTL loop runs it, comparisons drawing ``noise()`` (nV or None).

    Returns (byte, steps run, final latched negative, raw magnitude planes value, initial negative).
    """
    bank.q_nV[:] = q
    first = bank.compare(noise())
    negative = ~first & mask                       # untracked neurons read 0
    latched = first.copy()
    L = q.size
    if s.conversion == Conversion.SAR:
        bits = s.output_bits
        code = (first & mask).astype(np.int64) << (bits - 1)
        for i in range(bits - 2, -1, -1):
            bank.step(mask, latched, packet_uV, i)
            c = bank.compare(noise())
            latched = c
            code |= (c & mask).astype(np.int64) << i
        return code.astype(np.uint8), max(bits - 1, 0), ~latched, code, negative
    steps = np.zeros(L, np.int64)
    n = 0
    if s.conversion == Conversion.DECREMENT:
        done = ~mask.copy()
        while not done.all() and n < s.max_steps:
            bank.step(~done, latched, packet_uV)
            c = bank.compare(noise())
            n += 1
            steps += ~done
            done |= ~done & (c != latched)
            latched = c
        return encode_output(s, negative, steps), n, ~latched, steps, negative
    return encode_output(s, negative), n, ~latched, np.zeros(L, np.int64), negative


def recurrent_codes(s: MvmSettings, mag: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """Next-step input codes from one MVM's outputs (the RTL's REC_WB planes)."""
    nb = magnitude_bits(s)
    top = (1 << nb) - 1
    if s.conversion == Conversion.SIGN:
        m = np.ones_like(mag) if nb > 0 else np.zeros_like(mag)
    else:
        m = np.where(mag > top, top, mag & top)          # saturate to the input range
    if s.input_signed:
        return np.where(negative, -m, m)
    return np.where(negative, 0, m)


def _run_sequential(model, s, *, codes, ternary, mask, polarity, v_pos_mV, v_neg_mV, packet_uV,
                    noise_uV, automaton, input_planes):
    L = max(model.rows, model.cols)
    direction = Direction.BACKWARD if s.direction == Direction.BACKWARD else Direction.FORWARD
    n_in, n_out = model.n_inputs(direction), model.n_outputs(direction)
    mask = np.asarray(mask, bool)
    bank = model.neurons
    if s.stochastic and automaton is None:
        raise ValueError("a stochastic batch needs the core's noise automaton")

    def noise():
        """Each comparison draws the automaton's current state, which then advances."""
        if not s.stochastic:
            return None
        n = stochastic_noise_nV(automaton.planes(), noise_uV)
        automaton.step()
        return n

    B = len(codes) if codes is not None else 1
    steps_total = 1 if s.direction != Direction.RECURRENT else max(1, s.recurrent_steps)
    outs, finals, steps_run, lasts = [], [], [], []
    counts = {"mvm": 0, "pulse": 0, "compare": 0, "step": 0}
    extra = WARMUP_STEPS if s.stochastic else 0
    if s.input_source == InputSource.TERNARY:
        t = np.asarray(ternary, np.int64)[:n_in]
        n_plus, n_minus = s.pulse_multiplier * (t > 0), s.pulse_multiplier * (t < 0)
        pulses = s.pulse_multiplier
    else:
        negate = np.asarray(polarity, bool)[:n_in]
        pulses = _code_pulses_per_line(s)
    for v in range(B):
        x = None if s.input_source == InputSource.TERNARY else np.asarray(codes[v], np.int64)[:n_in]
        for r in range(steps_total):
            if s.input_source != InputSource.TERNARY:
                n_plus, n_minus = pulse_counts(x[None], s.input_bits, s.input_signed, s.pulse_multiplier,
                                               negate=negate)
            q = np.zeros(L, np.int64)
            q[:n_out] = model.mvm_charge(direction, np.atleast_2d(n_plus), np.atleast_2d(n_minus),
                                         v_pos_mV, v_neg_mV)[0]
            byte, n, final_neg, mag, negative = _convert_loop(q, s, bank, mask, packet_uV, noise)
            counts["mvm"] += 1
            counts["pulse"] += pulses
            counts["compare"] += 1 + n
            counts["step"] += n
            steps_run.append(n)
            if s.direction == Direction.RECURRENT and r < steps_total - 1:
                x = recurrent_codes(s, mag, negative)[:n_in]
                extra += input_planes                        # REC_WB: one plane per cycle
        outs.append(byte)
        finals.append(final_neg)
        lasts.append(x)
    return BatchResult(np.stack(outs), counts, np.asarray(steps_run, np.int64), finals[-1], extra,
                       np.stack(lasts) if s.input_source == InputSource.BUFFER else None)
