"""The chip's enumerations, one per mode: the only definition of every mode number.

Each is a Python :class:`enum.IntEnum` whose members carry a ``doc`` string and whose class
carries the register field ``width`` in bits. The host software, the fast model, the cocotb
tests and the CLI use these classes directly; the RTL turns each into an Amaranth
``lib.enum`` of the same members and width (``neurram.hdl.registers``), so a settings struct in
the Verilog holds exactly these values.
"""

from __future__ import annotations

import enum

__all__ = ["ChipEnum", "Space", "Direction", "InputSource", "Conversion", "Activation", "PulsePolarity",
           "WvStatus", "ENUMS"]


class ChipEnum(enum.IntEnum):
    """An IntEnum whose members are ``NAME = value, "doc"``; subclasses set ``width``."""

    def __new__(cls, value: int, doc: str = ""):
        member = int.__new__(cls, value)
        member._value_ = value
        member.doc = doc
        return member

    #: Field width in bits (set on each subclass by :func:`_width`).
    width: int


def _width(bits: int):
    def set_width(cls):
        top = max(m.value for m in cls)
        if top >= 1 << bits:
            raise ValueError(f"{cls.__name__}: value {top} does not fit {bits} bits")
        cls.width = bits
        return cls
    return set_width


@_width(4)
class Space(ChipEnum):
    """Address space of a bus address (bits 31:28): the registers or one of a core's buffers."""

    REGISTERS = 0, "the register block"
    INPUT = 1, "a core's input buffer (bit-planes)"
    OUTPUT = 2, "a core's output buffer (bit-planes of the output bytes)"
    BL_REG = 3, "a core's bitline-side ternary register"
    SL_REG = 4, "a core's source-line-side ternary register"
    NEURON_MASK = 5, "a core's mask of tracked neurons"
    POLARITY = 6, "a core's inverted input lines"
    WV_CELLS = 7, "a core's write-verify targets, replaced by their results (the on-chip engine)"


@_width(2)
class Direction(ChipEnum):
    """Which lines carry the inputs of an MVM (docs/chip.md §2, TNSA)."""

    FORWARD = 0, "inputs on bitlines, outputs sensed on source lines (y = Wᵀx)"
    BACKWARD = 1, "inputs on source lines, outputs sensed on bitlines (y = Wx)"
    RECURRENT = 2, "forward, then each output written back as the core's next input"


@_width(2)
class InputSource(ChipEnum):
    """Where the sequencer takes the input vector from."""

    BUFFER = 0, "bit-serial from the core's input buffer (bit-planes)"
    TERNARY = 1, "the input-side ternary register as loaded, one phase"


@_width(2)
class Conversion(ChipEnum):
    """How a neuron converts its integrated charge to a digital output."""

    SIGN = 0, "comparator only: 1-bit output"
    DECREMENT = 1, "initial sign, then charge-decrement steps until the comparator flips"
    SAR = 2, "successive approximation, the charge step halved every bit"


@_width(2)
class Activation(ChipEnum):
    """Activation applied by the conversion."""

    NONE = 0, "signed output"
    RELU = 1, "negative outputs become 0"
    CLIPPED_RELU = 2, "ReLU, then magnitudes clipped at NEURON_CONFIG.clip"


@_width(1)
class PulsePolarity(ChipEnum):
    """Kind of programming pulse (docs/chip.md §3)."""

    SET = 0, "bitline pulse, wordline at the compliance voltage: conductance rises"
    RESET = 1, "source-line pulse, wordline at 5 V: conductance falls"


@_width(2)
class WvStatus(ChipEnum):
    """Outcome of one cell in the on-chip write-verify engine (docs/chip.md §3)."""

    NOT_RUN = 0, "the cell was not marked for programming"
    CONVERGED = 1, "confirmed inside its window"
    FAIL_ROUNDS = 2, "failed: it would need more than the round budget"
    FAIL_TOP_PULSES = 3, "failed: a round spent its top-amplitude pulses without crossing"


#: Every enumeration of the register map, in documentation order.
ENUMS = (Direction, InputSource, Conversion, Activation, PulsePolarity, WvStatus)
