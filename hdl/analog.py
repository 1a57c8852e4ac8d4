"""The one analog boundary of a core (docs/architecture.md, contract 5).

Each core's digital controller talks to its analog array (RRAM cells, line drivers, neurons)
through :func:`analog_array_signature`. In the generated Verilog the array is the black-box
module ``neurram_analog_array`` (:data:`VERILOG_STUB`): a stub whose outputs come from registers
that the Python model in ``neurram.models`` writes under cocotb. The fast chip model calls the
same model directly; an FPGA build substitutes a digital emulation.

Protocol: every operation starts with a one-cycle ``strobe`` together with ``op`` (never NONE)
and its arguments; the controller never strobes in two consecutive cycles, so a model can wait for
rising edges of ``strobe``. Results (``cmp``, ``read_g``) must be valid at the next clock edge, where
the core registers them (``CimCore``).

====================  ==============================================================================
op                    meaning
====================  ==============================================================================
INITIALISE            new MVM in ``direction``: discharge integrators, precharge lines
INTEGRATE             ``n_pulses`` identical pulses: the input-side ternary register drives its lines
                      (+1 -> V_ref + v_pos_mV, -1 -> V_ref - v_neg_mV, 0 -> V_ref); each output neuron
                      samples and integrates its line once per pulse
COMPARE               every output neuron compares; results on ``cmp`` (1 = positive)
STEP                  neurons in ``step_enable`` move one packet (packet_uV · 2^step_shift) toward
                      zero, signed by their entry in the output-side register; then compare
(COMPARE, STEP)       with ``noise_en``, each neuron first receives the random charge coded by its
                      12 ``noise`` bit-planes (models.neuron.stochastic_noise_nV)
PROGRAM               one SET/RESET pulse on cell (cell_row, cell_col)
READ                  read cell (cell_row, cell_col) at read_mV; result on ``read_g`` (10 nS LSB)
====================  ==============================================================================
"""

from __future__ import annotations

from functools import reduce
from operator import or_

from amaranth import ClockSignal, Instance, Value
from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In, Out

from neurram.spec.analog import NOISE_PLANES

__all__ = ["AnalogOp", "analog_array_signature", "analog_array_subset", "connect_array_parts", "AnalogArrayBlackBox", "VERILOG_STUB",
           "STUB_MODULE", "TERNARY_ZERO", "TERNARY_POS", "TERNARY_NEG"]

STUB_MODULE = "neurram_analog_array"

#: Two-bit ternary register entries (two's complement).
TERNARY_ZERO, TERNARY_POS, TERNARY_NEG = 0b00, 0b01, 0b11


class AnalogOp(enum.Enum, shape=3):
    NONE = 0
    INITIALISE = 1
    INTEGRATE = 2
    COMPARE = 3
    STEP = 4
    PROGRAM = 5
    READ = 6


def analog_array_signature(config) -> wiring.Signature:
    """Signature of the array port, from the controller's side (Out = controller drives)."""
    return wiring.Signature({
        "strobe": Out(1),
        "op": Out(AnalogOp),
        "direction": Out(1),              # 0: drive BLs, sense SLs; 1: drive SLs, sense BLs
        "n_pulses": Out(16),
        # The ternary registers, as two planes each: entry = act ? (neg ? -1 : +1) : 0.
        "bl_act": Out(config.rows),       # BL-side register: entry non-zero
        "bl_neg": Out(config.rows),       # BL-side register: entry negative
        "sl_act": Out(config.cols),       # SL-side register: entry non-zero
        "sl_neg": Out(config.cols),       # SL-side register: entry negative
        "step_enable": Out(config.lines),
        "step_shift": Out(3),
        "v_pos_mV": Out(10),
        "v_neg_mV": Out(10),
        "packet_uV": Out(14),
        "cell_row": Out(12),
        "cell_col": Out(12),
        "pulse_polarity": Out(1),         # 0 SET, 1 RESET
        "pulse_mV": Out(12),
        "gate_mV": Out(13),
        "width_ns": Out(16),
        "read_mV": Out(12),
        # Stochastic neurons: 12 random bit-planes (4 x 3-bit uniform values per neuron) that gate
        # binary-weighted charge pulses before a comparison, when noise_en (see models.neuron).
        "noise_en": Out(1),
        "noise": Out(NOISE_PLANES * config.lines),
        "noise_uV": Out(14),
        "cmp": In(config.lines),          # comparator outputs of the sensing neurons
        "read_g": In(16),                 # last cell read, 10 nS per LSB
    })


def analog_array_subset(config, *names) -> wiring.Signature:
    """The members ``names`` of :func:`analog_array_signature`: the part of the array port that one
    part of the controller drives and reads (joined again by :func:`connect_array_parts`)."""
    members = analog_array_signature(config).members
    return wiring.Signature({name: members[name] for name in names})


def connect_array_parts(m, array, parts) -> set:
    """Drive the controller's ``array`` port from ``parts`` (interfaces of
    :func:`analog_array_subset` signatures) and return the names of the members none of them has.

    An Out member that several parts drive (``strobe``, ``op``) is the OR of their values: a part
    drives zero while it does not strobe, and parts strobe one at a time. An In member goes to
    every part that reads it.
    """
    rest = set()
    for name, member in array.signature.members.items():
        have = [part for part in parts if name in part.signature.members]
        if not have:
            rest.add(name)
        elif member.flow == Out:
            value = reduce(or_, [Value.cast(getattr(part, name)) for part in have])
            m.d.comb += Value.cast(getattr(array, name)).eq(value)
        else:
            m.d.comb += [getattr(part, name).eq(getattr(array, name)) for part in have]
    return rest


class AnalogArrayBlackBox(wiring.Component):
    """The array as a Verilog black box (module ``neurram_analog_array``)."""

    def __init__(self, config, core_index: int = 0):
        self._config = config
        self._core_index = core_index
        super().__init__({"port": In(analog_array_signature(config))})

    def elaborate(self, platform):
        # Returning the instance itself keeps the hierarchy flat: <core>.array is the stub.
        p = self.port
        c = self._config
        kw = {f"i_{name}": getattr(p, name) for name in _INPUTS}
        return Instance(
            STUB_MODULE,
            p_ROWS=c.rows, p_COLS=c.cols, p_LINES=c.lines,
            i_clk=ClockSignal(),
            o_cmp=p.cmp, o_read_g=p.read_g,
            **kw)


_INPUTS = ("strobe", "op", "direction", "n_pulses", "bl_act", "bl_neg", "sl_act", "sl_neg", "step_enable", "step_shift",
           "v_pos_mV", "v_neg_mV", "packet_uV", "cell_row", "cell_col", "pulse_polarity", "pulse_mV",
           "gate_mV", "width_ns", "read_mV", "noise_en", "noise", "noise_uV")

#: The black box's Verilog: outputs come from registers that the Python model writes.
VERILOG_STUB = """\
// neurram_analog_array: the analog half of one core, as a black box for co-simulation.
// Its outputs come from registers (cmp_r, read_g_r) written by the Python model in
// neurram.models through cocotb (see neurram.sim.cosim.analog). Generated by neurram.hdl.analog.
module neurram_analog_array #(
    parameter ROWS = 256,
    parameter COLS = 256,
    parameter LINES = 256
) (
    input  wire               clk,
    input  wire               strobe,
    input  wire [2:0]         op,
    input  wire               direction,
    input  wire [15:0]        n_pulses,
    input  wire [ROWS-1:0]    bl_act,
    input  wire [ROWS-1:0]    bl_neg,
    input  wire [COLS-1:0]    sl_act,
    input  wire [COLS-1:0]    sl_neg,
    input  wire [LINES-1:0]   step_enable,
    input  wire [2:0]         step_shift,
    input  wire [9:0]         v_pos_mV,
    input  wire [9:0]         v_neg_mV,
    input  wire [13:0]        packet_uV,
    input  wire [11:0]        cell_row,
    input  wire [11:0]        cell_col,
    input  wire               pulse_polarity,
    input  wire [11:0]        pulse_mV,
    input  wire [12:0]        gate_mV,
    input  wire [15:0]        width_ns,
    input  wire [11:0]        read_mV,
    input  wire               noise_en,
    input  wire [12*LINES-1:0] noise,
    input  wire [13:0]        noise_uV,
    output wire [LINES-1:0]   cmp,
    output wire [15:0]        read_g
);
    reg [LINES-1:0] cmp_r = {LINES{1'b0}};
    reg [15:0]      read_g_r = 16'd0;
    assign cmp = cmp_r;
    assign read_g = read_g_r;
endmodule
"""
