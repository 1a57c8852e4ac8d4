"""One core of the fast chip model: a whole batch of MVMs as a few vectorised operations.

:func:`run_batch` mirrors the RTL core controller (``hdl/core.py``) exactly: the same drive
patterns (as closed-form pulse counts), the same analog model calls (``neurram.models``), the
same conversions (closed forms proven equal to the RTL's loops) and the same output bytes and
event counts. The co-simulation tests use it as their expectation; the fast chip model uses it to
execute batches.
"""

from dataclasses import dataclass

import numpy as np

from neurram.models.core import BACKWARD, FORWARD, AnalogCore, pulse_counts
from neurram.models.neuron import decrement_closed_form, sar_closed_form

__all__ = ["MvmSettings", "BatchResult", "run_batch", "decode_outputs", "SIGN", "DECREMENT", "SAR"]

SIGN, DECREMENT, SAR = 0, 1, 2
ACT_NONE, ACT_RELU, ACT_CLIPPED = 0, 1, 2


@dataclass(frozen=True)
class MvmSettings:
    """The fields of MVM_CONFIG / MVM_TIMING / NEURON_CONFIG / BATCH that a core latches."""
    direction: int = FORWARD          # 0 forward, 1 backward (2 recurrent: forward per step)
    input_source: int = 0             # 0 buffer (bit-serial), 1 ternary register
    input_bits: int = 1
    input_signed: bool = False
    conversion: int = SIGN
    output_bits: int = 8
    activation: int = ACT_NONE
    stochastic: bool = False
    pulse_multiplier: int = 1
    max_steps: int = 100
    clip: int = 127


@dataclass
class BatchResult:
    outputs: np.ndarray               # (B, lines) uint8 output bytes
    counts: dict                      # event counts of the batch, as the RTL counts them
    steps: np.ndarray                 # (B,) conversion steps the controller ran per MVM
    final_negative: np.ndarray        # (B, lines) comparators latched in the output-side register


def run_batch(model: AnalogCore, s: MvmSettings, *, codes=None, ternary=None, mask, polarity,
              v_pos_mV: int, v_neg_mV: int, packet_uV: int) -> BatchResult:
    """Run a batch on one core.

    ``codes``: (B, input lines) integer input codes (input_source 0);
    ``ternary``: (input lines,) values in {-1, 0, +1} of the input-side register (input_source 1);
    ``mask``/``polarity``: (lines,) bool.
    """
    L = max(model.rows, model.cols)
    direction = BACKWARD if s.direction == 1 else FORWARD
    n_in, n_out = model.n_inputs(direction), model.n_outputs(direction)
    mask = np.asarray(mask, bool)
    if s.input_source == 1:
        t = np.asarray(ternary, np.int64)[:n_in]
        B = 1 if codes is None else len(codes)
        n_plus = np.broadcast_to(s.pulse_multiplier * (t > 0), (B, n_in))
        n_minus = np.broadcast_to(s.pulse_multiplier * (t < 0), (B, n_in))
        pulses_per_mvm = s.pulse_multiplier
    else:
        codes = np.atleast_2d(np.asarray(codes, np.int64))[:, :n_in]
        B = codes.shape[0]
        n_plus, n_minus = pulse_counts(codes, s.input_bits, s.input_signed, s.pulse_multiplier,
                                       negate=np.asarray(polarity, bool)[:n_in])
        magnitude_bits = s.input_bits - int(bool(s.input_signed))
        pulses_per_mvm = 2 * s.pulse_multiplier * ((1 << magnitude_bits) - 1)
    q = np.zeros((B, L), np.int64)
    q[:, :n_out] = model.mvm_charge(direction, n_plus, n_minus, v_pos_mV, v_neg_mV)
    nb = model.neurons
    pos_nV, neg_nV = nb.packets_nV(packet_uV)
    tracked = np.broadcast_to(mask, q.shape)
    counts = {"mvm": B, "pulse": B * pulses_per_mvm, "compare": B, "step": 0}
    if s.conversion == SAR:
        bits = s.output_bits
        code = sar_closed_form(q, nb.offset_nV, lambda i: nb.packets_nV(packet_uV, i)[0],
                               lambda i: nb.packets_nV(packet_uV, i)[1], tracked, bits)
        out = code.astype(np.uint8)
        n_steps = max(bits - 1, 0)
        counts["step"] = B * n_steps
        counts["compare"] += B * n_steps
        sign_neg = ~((code >> (bits - 1)) & 1).astype(bool)
        last_neg = ~(code & 1).astype(bool) if bits > 1 else sign_neg
        final = np.where(tracked, last_neg, sign_neg) if bits > 1 else sign_neg
        return BatchResult(out, counts, np.full(B, n_steps, np.int64), final)
    negative, steps, flipped = decrement_closed_form(q, nb.offset_nV, pos_nV, neg_nV, tracked, s.max_steps)
    per_mvm = np.zeros(B, np.int64)
    final = negative
    if s.conversion == DECREMENT:
        per_mvm = steps.max(axis=1) if L else per_mvm
        counts["step"] = int(per_mvm.sum())
        counts["compare"] += int(per_mvm.sum())
        final = negative ^ flipped
        if s.activation == ACT_CLIPPED:
            steps = np.minimum(steps, s.clip)
        byte = (negative.astype(np.int64) << 7) | steps
    else:
        byte = negative.astype(np.int64) << 7
    if s.activation != ACT_NONE:
        byte = np.where(negative, 0, byte)
    return BatchResult(byte.astype(np.uint8), counts, per_mvm, final)


def decode_outputs(bytes_: np.ndarray, conversion: int, output_bits: int = 8) -> np.ndarray:
    """Output bytes to values in charge-packet units (NEURRAM.md §2 decoding)."""
    b = np.asarray(bytes_, np.int64)
    sign = np.where(b & 0x80, -1.0, 1.0)
    if conversion == SIGN:
        return sign
    if conversion == DECREMENT:
        steps = b & 0x7F
        return np.where(steps > 0, (steps - 0.5) * sign, 0.0)
    code = b & ((1 << output_bits) - 1)
    return code - ((1 << output_bits) - 1) / 2.0
