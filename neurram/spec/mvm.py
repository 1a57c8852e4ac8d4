"""The MVM settings a core latches at start, the chip's start check, and the output-byte codec.

One type, :class:`MvmSettings`, stands for the fields of MVM_CONFIG, MVM_TIMING, NEURON_CONFIG
and BATCH.recurrent_steps: the driver writes it (:meth:`MvmSettings.registers`), the fast model
reads it back from its registers (:meth:`MvmSettings.from_registers`), and the RTL's settings
struct is laid out from :data:`SETTINGS_FIELDS` (``neurram.hdl.core.CoreSettings``).

:func:`start_ok` is the check that CTRL.start applies: written with ``&``, ``|`` and comparisons
only, so the fast model evaluates it on integers and the RTL on Amaranth values (one rule, two
evaluators). :func:`encode_output` and :func:`decode_output` are the two directions of the
output byte (docs/registers.md, buffer OUTPUT).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce

import numpy as np

from .enums import Activation, Conversion, Direction, InputSource
from .regmap import REGISTERS, pack, unpack

__all__ = ["MvmSettings", "SETTINGS_FIELDS", "start_ok", "encode_output", "decode_output",
           "PACKET_UV_MAX", "magnitude_bits"]

#: Each settings field and the register that holds it (the field has the same name there).
SETTINGS_FIELDS = (
    ("direction", "MVM_CONFIG"), ("input_source", "MVM_CONFIG"), ("input_bits", "MVM_CONFIG"),
    ("input_signed", "MVM_CONFIG"), ("conversion", "MVM_CONFIG"), ("output_bits", "MVM_CONFIG"),
    ("activation", "MVM_CONFIG"), ("stochastic", "MVM_CONFIG"), ("pulse_multiplier", "MVM_TIMING"),
    ("max_steps", "NEURON_CONFIG"), ("clip", "NEURON_CONFIG"), ("recurrent_steps", "BATCH"),
)

#: Largest charge packet a core's CORE_NEURON register holds, in µV.
PACKET_UV_MAX = REGISTERS.CORE_NEURON["packet_uV"].max


@dataclass(frozen=True)
class MvmSettings:
    """How a batch of MVMs runs. Defaults: 1-bit unsigned inputs from the buffer, forward,
    charge-decrement outputs of at most 100 steps, no activation (the register map's resets
    differ only in the conversion, which resets to SIGN)."""

    direction: Direction = Direction.FORWARD
    input_source: InputSource = InputSource.BUFFER
    input_bits: int = 1
    input_signed: bool = False
    conversion: Conversion = Conversion.DECREMENT
    output_bits: int = 8
    activation: Activation = Activation.NONE
    stochastic: bool = False
    pulse_multiplier: int = 1
    max_steps: int = 100
    clip: int = 127
    recurrent_steps: int = 1

    def __post_init__(self):
        # Typed modes: plain numbers become their enum (ValueError for a number with no mode).
        for name, kind in (("direction", Direction), ("input_source", InputSource),
                           ("conversion", Conversion), ("activation", Activation)):
            object.__setattr__(self, name, kind(getattr(self, name)))

    def registers(self) -> dict[str, int]:
        """The register words that select these settings (BATCH left out: it also holds the count)."""
        words: dict[str, dict] = {}
        for name, reg in SETTINGS_FIELDS:
            if reg != "BATCH":
                words.setdefault(reg, {})[name] = int(getattr(self, name))
        return {reg: pack(reg, **f) for reg, f in words.items()}

    @classmethod
    def from_registers(cls, words) -> "MvmSettings":
        """Settings from register words (``words[name]`` for MVM_CONFIG, MVM_TIMING, NEURON_CONFIG, BATCH)."""
        unpacked = {reg: unpack(reg, words[reg]) for reg in {r for _, r in SETTINGS_FIELDS}}
        kw = {name: unpacked[reg][name] for name, reg in SETTINGS_FIELDS}
        kw["input_signed"], kw["stochastic"] = bool(kw["input_signed"]), bool(kw["stochastic"])
        return cls(**kw)


def magnitude_bits(s) -> int:
    """Magnitude bits of an input code (the sign bit of signed inputs does not drive)."""
    return s.input_bits - int(bool(s.input_signed))


def _any(terms):
    return reduce(lambda a, b: a | b, terms)


def start_ok(s, config, batch_count, cores_ready):
    """Whether CTRL.start runs: the settings ``s`` are valid for ``config``, ``batch_count`` fits
    the buffers and at least one core is selected and enabled (``cores_ready``).

    ``s`` is anything with the :class:`MvmSettings` attributes as plain integers or as Amaranth
    values; the result is a bool or a 1-bit Amaranth value accordingly.
    """
    conversion_ok = _any(s.conversion == Conversion[k.upper()] for k in config.conversions)
    bits_ok = (s.input_bits >= 1 + s.input_signed) & (s.input_bits <= config.input_bits_max)
    output_ok = (s.conversion != Conversion.SAR) | ((s.output_bits >= 1) & (s.output_bits <= config.output_bits_max))
    direction_ok = (s.direction <= max(Direction)) & ((s.direction != Direction.RECURRENT) | (s.recurrent_steps >= 1))
    # Field codes that name no mode are refused, not run.
    codes_ok = (s.input_source <= max(InputSource)) & (s.activation <= max(Activation))
    ok = (conversion_ok & bits_ok & output_ok & direction_ok & codes_ok
          & (batch_count >= 1) & (batch_count <= config.batch_depth)
          & (s.pulse_multiplier >= 1) & (s.max_steps >= 1) & cores_ready)
    # A reduced chip (ChipConfig build options) refuses the modes it was built without.
    lacking = [allowed for allowed, built in (
        (s.stochastic == 0, config.stochastic_neurons),
        (s.direction != Direction.BACKWARD, config.backward),
        (s.direction != Direction.RECURRENT, config.recurrent),
        (s.max_steps <= config.max_steps_limit, config.max_steps_limit >= 127 or "decrement" not in config.conversions),
    ) if not built]
    return reduce(lambda a, b: a & b, lacking, ok)


def encode_output(s, negative: np.ndarray, steps: np.ndarray | None = None) -> np.ndarray:
    """The DECREMENT or SIGN output byte {sign, steps} after the activation (``steps`` None: a
    sign conversion). SAR bytes are the offset-binary code itself."""
    byte = np.asarray(negative).astype(np.int64) << 7
    if steps is not None:
        byte |= np.minimum(steps, s.clip) if s.activation == Activation.CLIPPED_RELU else steps
    if s.activation != Activation.NONE:
        byte = np.where(negative, 0, byte)
    return byte.astype(np.uint8)


def decode_output(out_bytes: np.ndarray, s) -> tuple[np.ndarray, np.ndarray]:
    """Output bytes -> (values in charge-packet units, saturated mask).

    DECREMENT: bit 7 sign, bits 6:0 steps, value (steps − ½)·(±1); a conversion that ran to
    ``max_steps`` (or to the clip) is saturated. SIGN: ±1, never saturated. SAR: offset binary
    code c of n bits, value c − (2ⁿ − 1)/2, the two end codes saturated.
    """
    b = np.asarray(out_bytes, np.int64)
    sign = np.where(b & 0x80, -1.0, 1.0)
    if s.conversion == Conversion.SIGN:
        return sign, np.zeros(b.shape, bool)
    if s.conversion == Conversion.DECREMENT:
        steps = b & 0x7F
        top = min(int(s.max_steps), int(s.clip)) if s.activation == Activation.CLIPPED_RELU else int(s.max_steps)
        return np.where(steps > 0, (steps - 0.5) * sign, 0.0), steps >= top
    top = (1 << int(s.output_bits)) - 1
    code = b & top
    return code - top / 2.0, (code == 0) | (code == top)
