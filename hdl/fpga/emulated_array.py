"""A digital emulation of one core's analog array, behind the same boundary as the black box.

:class:`EmulatedArray` has the ``port`` of :func:`neurram.hdl.analog.analog_array_signature` and
answers every operation the way the analog model (``neurram.models``) does with every noise off
(``AnalogParams.ideal()``), for conductances on the chip's 10 nS code grid:

* the array's conductances are held as 10 nS codes (``CELL_RESULT.g_10nS``), one word per cell in
  block RAM (``amaranth.lib.memory``);
* an MVM integrates, per output line j, ``rint(gain · Σ_i a_i k_ij · 2^-24)`` nV where
  ``a_i = v_pos·n+_i - v_neg·n-_i`` (mV · pulses) and ``k_ij = rint(2^24 · G_ij / Σ_i G_ij)`` is the
  crossbar's normalised coupling (``models/crossbar.py``: the same integers the model holds), and
  saturates at ±v_sat; comparisons, charge-decrement and SAR steps work on the same integer
  nanovolts as ``models/neuron.py`` (no offsets, no mismatch);
* a cell read returns the stored code; a programming pulse moves the stored code by the device
  model's noise-free mean response (``models/device.py``), evaluated in fixed point
  (:func:`program_code`): the one place where the emulation only approximates the float model.

Timing. The analog array answers within a clock cycle; the emulation needs many: it keeps its
per-line state in memories (a_i, q_j) and works one line or one cell per cycle, so its logic does
not grow with the array. It takes the operands at the strobe cycle's edge and raises ``hold``
from the next cycle until one cycle after its results are written: :class:`~neurram.hdl.core.CimCore`
stops the core's clock enable while ``hold`` is high (but not the registers that take the array's
results), so the controller finds every result registered when it moves on, as with the analog array. Per
operation, for L lines and n_in inputs: INITIALISE L cycles, INTEGRATE 2·n_in, COMPARE and STEP
2·L, an MVM's line sums (n_in + 8; streamed n_in + 36) per output line plus a serial product (about 24), READ 2,
PROGRAM about 125 (five serial products). The couplings ``k`` are either cached in a second
memory and recomputed (one division per cell, about 30 cycles) only after a cell was programmed
or when the MVM direction changes, or streamed: divided as the line sums read the codes, in a
pipeline of F + 1 stages (F + 3 more cycles per output line, no recomputation; see
:class:`EmulatedArray`).

Not emulated: the stochastic neurons' injected charge (``noise_en`` is ignored; FPGA builds report
``FEATURES.stochastic = 0``), read voltage dependence, relaxation and every noise source.
"""

from __future__ import annotations

import math

import numpy as np
from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from neurram.models.crossbar import CrossbarParams
from neurram.models.device import RRAMParams
from neurram.models.neuron import NeuronParams
from neurram.spec.analog import NEURON_GAIN
from neurram.spec.enums import PulsePolarity
from neurram.spec.writeverify import G_LSB_uS, uS_to_code

from ..analog import AnalogOp, analog_array_signature
from .globals import global_net

__all__ = ["EmulatedArray", "SerialMultiplier", "CODE_BITS", "COUPLING_FRAC_BITS", "GAIN_nV_per_mV", "V_SAT_nV",
           "program_code", "initial_code", "ProgramTables"]

#: Bits of a stored conductance code (10 nS LSB; the width of CELL_RESULT.g_10nS).
CODE_BITS = 16
#: Fraction bits of the crossbar's integer coupling grid (the model's default).
COUPLING_FRAC_BITS = CrossbarParams().coupling_frac_bits
#: Integrator charge per mV·pulse of line deviation, nV: the neuron gain C_sample/C_integ.
GAIN_nV_per_mV = NEURON_GAIN * 1e6
assert GAIN_nV_per_mV == int(GAIN_nV_per_mV), "the emulation needs an integer gain in nV per mV"
GAIN_nV_per_mV = int(GAIN_nV_per_mV)
#: Integrator saturation, nV (models/neuron.py).
V_SAT_nV = int(round(NeuronParams().v_sat_V * 1e9))

_DEVICE = RRAMParams.noise_free()
#: Step of the program-response tables' index, mV (pulse amplitude and gate voltage).
TABLE_STEP_mV = 8
#: Fraction bits of the switching rate per ns in the response tables.
RATE_FRAC_BITS = 32
#: Fraction bits of the switched fraction f and of the rate it is computed from.
F_FRAC_BITS = 16
#: The largest core whose couplings an EmulatedArray caches by default (above: streamed).
CACHED_COUPLINGS_MAX_LINES = 32
#: Registered stages of the MAC's product a_i · k_ij with streamed couplings
#: (EmulatedArray._product_pipeline; cached couplings: one).
MAC_PRODUCT_STAGES = 3
#: Rate steps per unit of the table of (1 - exp(-rate)) / rate, and its entries.
RATE_STEPS = 32
SWITCH_ENTRIES = 512


def initial_code() -> int:
    """The code every cell starts at: the noise-free device's as-formed state."""
    return int(uS_to_code(min(_DEVICE.g_init_uS, _DEVICE.g_ceiling_uS)))


class ProgramTables:
    """The fixed-point tables of the program response, from the noise-free device parameters:
    the compliance's scale and the switching rate per ns (SET, RESET) per amplitude step."""

    def __init__(self, p: RRAMParams = _DEVICE):
        # compliance code = ov² · gcc_scale / 2^32 with ov = gate - V_t in mV
        ref_mV = (p.set_gate_ref_V - p.vt_V) * 1e3
        self.gcc_scale = int(round(p.set_gcc_ref_uS / G_LSB_uS / (ref_mV * ref_mV) * 2.0 ** 32))
        # rate entries at every TABLE_STEP_mV up to the largest amplitude (indices rounded)
        amp_V = np.arange((1 << 12 >> 3) + 1) * TABLE_STEP_mV * 1e-3  # 12-bit pulse_mV
        top = (1 << 32) - 1

        def rate(rate0, v0, va):
            r = rate0 / 1000.0 * np.exp((amp_V - v0) / va)             # per ns
            q = np.minimum(np.rint(r * 2.0 ** RATE_FRAC_BITS), top).astype(np.int64)
            return np.where(amp_V > 0, q, 0)
        self.rate_set = rate(p.set_rate0, p.set_v0_V, p.set_va_V)
        self.rate_reset = rate(p.reset_rate0, p.reset_v0_V, p.reset_va_V)
        # g(r) = (1 - exp(-r)) / r at the middle of each rate step: f = r · g(r)
        r = (np.arange(SWITCH_ENTRIES) + 0.5) / RATE_STEPS
        self.switch = np.rint(-np.expm1(-r) / r * (1 << F_FRAC_BITS)).astype(np.int64)
        self.vt_mV = int(round(p.vt_V * 1e3))
        self.floor_code = int(uS_to_code(p.g_floor_uS))
        self.ceiling_code = int(uS_to_code(p.g_ceiling_uS))


TABLES = ProgramTables()


def program_code(code: int, polarity, pulse_mV: int, width_ns: int, gate_mV: int,
                 t: ProgramTables = TABLES) -> int:
    """The code after one programming pulse (the emulation's program response, bit for bit).

    The device model's noise-free mean response (models/device.py) in fixed point: the compliance
    gcc from the gate overdrive squared, the rate from a table in TABLE_STEP_mV steps (nearest),
    and f = 1 - exp(-rate) as rate · g(rate), g from a table in 1/32 steps of the rate (f = 1
    beyond its end)::

        SET:    code += round(f · max(gcc(gate) - code, 0))
        RESET:  code -= round(f · max(code - floor, 0))      v_eff = min(amplitude, gate - V_t)
    """
    is_set = PulsePolarity(polarity) == PulsePolarity.SET
    v_eff = pulse_mV if is_set else min(pulse_mV, max(gate_mV - t.vt_mV, 0))
    half = TABLE_STEP_mV // 2
    rate = int((t.rate_set if is_set else t.rate_reset)[(v_eff + half) // TABLE_STEP_mV]) * int(width_ns)
    r = rate >> (RATE_FRAC_BITS - F_FRAC_BITS)
    index = r >> (F_FRAC_BITS - 5)
    assert RATE_STEPS == 1 << 5
    f = (r * int(t.switch[index])) >> F_FRAC_BITS if index < SWITCH_ENTRIES else 1 << F_FRAC_BITS
    ov = max(gate_mV - t.vt_mV, 0)
    gcc = min((ov * ov * t.gcc_scale + (1 << 31)) >> 32, t.ceiling_code)
    diff = max(gcc - code, 0) if is_set else max(code - t.floor_code, 0)
    dg = (f * diff + (1 << (F_FRAC_BITS - 1))) >> F_FRAC_BITS
    return code + dg if is_set else code - dg


def _bits(n: int) -> int:
    return max(1, int(n).bit_length())


class SerialMultiplier(wiring.Component):
    """``p = a · b`` (``a`` signed, ``b`` unsigned), one bit of ``b`` per cycle: ``start`` latches
    the operands, ``busy`` is high for the next ``b_bits`` cycles, then ``p`` holds the product
    until the next ``start``. An adder as wide as ``a`` instead of a multiplier: the emulation's
    program response and line-sum scaling share one (the iCE40UP5K has 8 DSPs)."""

    def __init__(self, a_bits: int, b_bits: int):
        self.a_bits, self.b_bits = a_bits, b_bits
        super().__init__({"a": In(signed(a_bits)), "b": In(unsigned(b_bits)), "start": In(1),
                          "busy": Out(1), "p": Out(signed(a_bits + b_bits))})

    def elaborate(self, platform):
        m = Module()
        A, B = self.a_bits, self.b_bits
        a = Signal(signed(A), reset_less=True)
        b = Signal(B, reset_less=True)
        hi = Signal(signed(A + 1), reset_less=True)             # the partial sum, shifted right
        lo = Signal(B, reset_less=True)                         # the product's low bits, as shifted out
        n = Signal(range(B + 1))
        m.d.comb += [self.p.eq(Cat(lo, hi).as_signed()), self.busy.eq(n != 0)]
        with m.If(self.start):
            m.d.sync += [a.eq(self.a), b.eq(self.b), hi.eq(0), lo.eq(0), n.eq(B)]
        with m.Elif(n != 0):
            s = Signal(signed(A + 1))
            m.d.comb += s.eq(hi + Mux(b[0], a, 0))
            m.d.sync += [hi.eq(s >> 1), lo.eq(Cat(lo[1:], s[0])), b.eq(b >> 1), n.eq(n - 1)]
        return m


class EmulatedArray(wiring.Component):
    """The array of one core, emulated digitally (module docstring).

    ``init_codes``: the (rows, cols) codes the cells hold after configuration (default: every cell
    at :func:`initial_code`), e.g. a weight image built into the bitstream.

    ``couplings`` says how an MVM gets its couplings ``k_ij`` (same integers either way):
    ``"cached"`` keeps them in a memory of L x L words, recomputed by one serial division per cell
    after programming (little logic: the iCE40's cores); ``"streamed"`` divides each cell's code
    by its output line's code sum as the MVM reads it, in a divider pipelined one quotient bit per
    stage, and keeps only the line sums, updated by every programming pulse (no L x L memory, no
    recomputation: a full 256 x 256 core on the ECP5). Default: cached up to
    ``CACHED_COUPLINGS_MAX_LINES`` lines.
    """

    def __init__(self, config, init_codes=None, couplings: str | None = None):
        self.config = config
        if couplings is None:
            couplings = "cached" if config.lines <= CACHED_COUPLINGS_MAX_LINES else "streamed"
        if couplings not in ("cached", "streamed"):
            raise ValueError(f"couplings must be 'cached' or 'streamed', not {couplings!r}")
        self.couplings = couplings
        R, C = config.rows, config.cols
        if init_codes is None:
            init_codes = np.full((R, C), initial_code(), np.int64)
        init_codes = np.asarray(init_codes, np.int64)
        if init_codes.shape != (R, C) or init_codes.min() < 0 or init_codes.max() >= 1 << CODE_BITS:
            raise ValueError(f"init_codes must be ({R}, {C}) codes of {CODE_BITS} bits")
        self.init_codes = init_codes
        super().__init__({"port": In(analog_array_signature(config)), "hold": Out(1)})

    #: The fabric's global networks for the core's widest nets (its reset; the hold, below).
    global_net = staticmethod(global_net)

    def elaborate(self, platform):
        m = Module()
        c = self.config
        R, C, L = c.rows, c.cols, c.lines
        p = self.port
        F = COUPLING_FRAC_BITS
        K_BITS = F + 1                                          # k <= 2^F
        S_BITS = CODE_BITS + _bits(L)                           # a line's code sum
        n_max = 2 * c.pulse_multiplier_max * ((1 << c.input_bits_max) - 1)
        A_BITS = _bits(n_max * ((1 << 10) - 1)) + 1             # a_i: mV·pulses, signed
        # |Σ_i a_i k_ij| < 2^(A_BITS-1) · 2^(F+1): the couplings of a line sum to 2^F (+ n/2 rounding)
        ACC_BITS = A_BITS + K_BITS
        # the largest packet: 14-bit µV, shifted up to 7 bits by SAR steps (no shift without SAR)
        packet_max_nV = ((1 << 14) - 1) * 1000 << (7 if "sar" in c.conversions else 0)
        Q_BITS = _bits(V_SAT_nV + c.max_steps_limit * packet_max_nV) + 2
        streamed = self.couplings == "streamed"
        # the line counter also counts the MAC pipeline's drain (the divider's stages when streamed)
        I_BITS = _bits(L + K_BITS + 3) if streamed else _bits(L)

        # ---- memories ------------------------------------------------------------------------
        m.submodules.codes = codes = Memory(shape=unsigned(CODE_BITS), depth=R * C,
                                            init=[int(v) for v in self.init_codes.reshape(-1)])
        if streamed:
            # each line's code sum (the couplings' divisor), as output line of a forward MVM (the
            # columns) and of a backward one (the rows)
            m.submodules.col_sums = col_sums = Memory(shape=unsigned(S_BITS), depth=C,
                                                      init=[int(v) for v in self.init_codes.sum(axis=0)])
            m.submodules.row_sums = row_sums = Memory(shape=unsigned(S_BITS), depth=R,
                                                      init=[int(v) for v in self.init_codes.sum(axis=1)])
            col_rd, col_wr = col_sums.read_port(), col_sums.write_port()
            row_rd, row_wr = row_sums.read_port(), row_sums.write_port()
        else:
            m.submodules.coupling = coupling = Memory(shape=unsigned(K_BITS), depth=L * L, init=[])
            k_rd = coupling.read_port()
            k_wr = coupling.write_port()
        t = TABLES
        rates = np.concatenate([t.rate_set, t.rate_reset])
        m.submodules.rate_rom = rate_rom = Memory(shape=unsigned(32), depth=len(rates),
                                                  init=[int(v) for v in rates])
        m.submodules.switch_rom = switch_rom = Memory(shape=unsigned(F_FRAC_BITS + 1), depth=SWITCH_ENTRIES,
                                                      init=[int(v) for v in t.switch])
        switch_rd = switch_rom.read_port()
        g_rd = codes.read_port()
        g_wr = codes.write_port()
        # per line: a_i of the MVM in progress (input lines), the integrator q_j (neurons)
        m.submodules.drive = drive = Memory(shape=signed(A_BITS), depth=L, init=[])
        m.submodules.neurons = neurons = Memory(shape=signed(Q_BITS), depth=L, init=[])
        a_rd, a_wr = drive.read_port(), drive.write_port()
        q_rd, q_wr = neurons.read_port(), neurons.write_port()
        rate_rd = rate_rom.read_port()

        # ---- state -----------------------------------------------------------------------------
        # Datapath registers have no reset (each is written before it is read): only the state
        # machine, flags and counters load the reset net, a few hundred flip-flops, not thousands.
        backward = Signal()                                     # direction of the MVM in progress
        cmp_r = Signal(L, reset_less=True)
        read_g_r = Signal(CODE_BITS, reset_less=True)
        pending = Signal()                                      # integrated pulses not yet summed
        k_ok = Signal()                                         # couplings valid for k_backward
        k_backward = Signal()
        # the compare/step being answered
        is_step = Signal()
        step_en = Signal(L, reset_less=True)
        step_pos = Signal(L, reset_less=True)
        # The line walks read the drive and step vectors, and write the comparators, through shift
        # registers (line i at bit 0 after i shifts; comparator i shifted in at the top): every
        # bit connects to its neighbour, where a multiplexer or decoder indexed by i would gather
        # all L lines in one place (routing congestion at 256 lines).
        drive_act = Signal(L, reset_less=True)
        drive_neg = Signal(L, reset_less=True)
        packet_nV = Signal(range(packet_max_nV + 1), reset_less=True)
        # programming
        cell_addr = Signal(range(R * C), reset_less=True)
        cell_row = Signal(range(R), reset_less=True)
        cell_col = Signal(range(C), reset_less=True)
        pol_reset = Signal(reset_less=True)
        width_ns = Signal(16, reset_less=True)
        g_r = Signal(CODE_BITS, reset_less=True)               # the programmed cell's code
        diff_r = Signal(CODE_BITS, reset_less=True)
        dg_r = Signal(CODE_BITS, reset_less=True)
        rate_q = Signal(F_FRAC_BITS + 5 + 1, reset_less=True)   # below the table's end when used
        saturated = Signal(reset_less=True)
        gate_ov_r = Signal(13, reset_less=True)
        gate_mV_r = Signal(13, reset_less=True)
        pulse_mV_r = Signal(12, reset_less=True)
        gcc_r = Signal(CODE_BITS, reset_less=True)
        f_r = Signal(F_FRAC_BITS + 1, reset_less=True)
        # line sums
        o = Signal(I_BITS)                                      # output line
        i = Signal(I_BITS)                                      # input line
        s_sum = Signal(S_BITS, reset_less=True)
        div_rem = Signal(S_BITS + 2, reset_less=True)           # long division's remainder, < 2 · 2S
        div_q = Signal(K_BITS, reset_less=True)
        div_b = Signal(range(K_BITS + 1))
        sum_valid = Signal()
        n_pos = Signal(26, reset_less=True)                     # this burst's mV·pulses
        n_neg = Signal(26, reset_less=True)
        line_act = Signal(reset_less=True)                      # line i driven (INTEGRATE)
        # what line i's a_i (INTEGRATE: ±mV·pulses) or q_i (COMPARE/STEP: ±packet) changes by
        line_amount = Signal(signed(max(27, _bits(packet_max_nV) + 1)), reset_less=True)
        mac_v1 = Signal()
        mac_v2 = Signal()
        k_q = Signal(K_BITS, reset_less=True)
        a_q = Signal(signed(A_BITS), reset_less=True)
        prod = Signal(signed(A_BITS + K_BITS + 1), reset_less=True)
        acc = Signal(signed(ACC_BITS), reset_less=True)
        # One serial multiplier for the program response and the line sums' gain.
        m.submodules.mul = mul = SerialMultiplier(max(ACC_BITS, 32 + 1),
                                                  max(16, _bits(TABLES.gcc_scale), F_FRAC_BITS + 1))
        scaled = mul.p                                          # acc · gain, after SCALE
        delta = Signal(signed(ACC_BITS + _bits(GAIN_nV_per_mV) - F + 1), reset_less=True)
        charge = Signal(signed(Q_BITS + 1), reset_less=True)    # q_j + delta, before saturation

        n_in = Mux(backward, C, R)
        n_out = Mux(backward, R, C)
        m.d.comb += [p.cmp.eq(cmp_r), p.read_g.eq(read_g_r)]

        def cell(row, col):
            return row * C + col

        # The G read port: a cell command's cell, or the line-sum walk (output o, input i).
        walk = Mux(backward, cell(o, i), cell(i, o))
        m.d.comb += [g_rd.en.eq(1), rate_rd.en.eq(1), switch_rd.en.eq(1), a_rd.en.eq(1), q_rd.en.eq(1)]
        if streamed:
            # the line sums of the programmed cell (a MAC's LINE_SUM reads the output line's)
            m.d.comb += [col_rd.addr.eq(cell_col), row_rd.addr.eq(cell_row)]
        else:
            m.d.comb += k_rd.en.eq(1)

        # Program response lookups, from the pulse latched at the strobe.
        is_set = p.pulse_polarity == PulsePolarity.SET.value
        gate_ov = Signal(13)
        gate_d = Signal(len(gate_mV_r) + 1)                    # gate - V_t, its borrow: gate below V_t
        m.d.comb += [gate_d.eq(gate_mV_r - t.vt_mV), gate_ov.eq(Mux(gate_d[-1], 0, gate_d[:-1]))]
        v_eff = Mux(~pol_reset, pulse_mV_r, Mux(pulse_mV_r < gate_ov, pulse_mV_r, gate_ov))
        assert TABLE_STEP_mV == 8

        # The strobe cycle's edge takes every operand (IDLE, below) and is not held back: ``busy``
        # (a flip-flop, so no path leads from the controller's strobe logic to the clock enable of
        # its thousands of flip-flops) holds the controller from the next cycle on, until ANSWER,
        # one cycle after the results are written: then the core's boundary registers hold them.
        busy = Signal()
        strobe_op = Signal(AnalogOp)
        m.d.comb += strobe_op.eq(Mux(p.strobe, p.op, AnalogOp.NONE))

        m.d.comb += switch_rd.addr.eq(rate_q >> (F_FRAC_BITS - 5))   # g(rate): the rate's step
        with m.FSM(name="emu"):
            with m.State("IDLE"):
                # Every operation's operands are taken in every idle cycle: the last is the strobe's
                # (fewer conditions in front of these registers than taking them on the strobe).
                neg_out = Mux(backward, p.bl_neg, p.sl_neg)    # the neurons' latched signs
                pk = (p.packet_uV * 1000) << p.step_shift
                m.d.sync += busy.eq(p.strobe)                 # every operation takes more than a cycle
                m.d.sync += [
                    cell_addr.eq(cell(p.cell_row, p.cell_col)), cell_row.eq(p.cell_row), cell_col.eq(p.cell_col),
                    i.eq(0),
                    n_pos.eq(p.n_pulses * p.v_pos_mV), n_neg.eq(p.n_pulses * p.v_neg_mV),
                    is_step.eq(p.op == AnalogOp.STEP), step_en.eq(p.step_enable),
                    drive_act.eq(Mux(backward, p.sl_act, p.bl_act)), drive_neg.eq(Mux(backward, p.sl_neg, p.bl_neg)),
                    step_pos.eq(~neg_out), packet_nV.eq(Mux(pk == 0, 1, pk)),
                    o.eq(0), s_sum.eq(0), acc.eq(0), mac_v1.eq(0), sum_valid.eq(0),
                    pol_reset.eq(~is_set), width_ns.eq(p.width_ns), gate_mV_r.eq(p.gate_mV), pulse_mV_r.eq(p.pulse_mV),
                ]
                with m.Switch(strobe_op):
                    with m.Case(AnalogOp.INITIALISE):
                        m.d.sync += [backward.eq(p.direction), pending.eq(0)]
                        m.next = "CLEAR"
                    with m.Case(AnalogOp.INTEGRATE):
                        m.d.sync += pending.eq(1)
                        m.next = "INTEGRATE_READ"
                    with m.Case(AnalogOp.COMPARE, AnalogOp.STEP):
                        with m.If(~pending):
                            m.next = "APPLY_READ"
                        if streamed:
                            with m.Else():
                                m.next = "LINE_SUM"
                        else:
                            with m.Elif(k_ok & (k_backward == backward)):
                                m.next = "MAC"
                            with m.Else():
                                m.next = "KSUM"
                    with m.Case(AnalogOp.READ):
                        m.next = "READ"
                    with m.Case(AnalogOp.PROGRAM):
                        m.next = "PROG_ADDRESS"

            with m.State("ANSWER"):
                # the results were written at the last edge; the boundary's registers take them at
                # the next, and the controller moves on after it
                m.d.sync += busy.eq(0)
                m.next = "IDLE"

            # ---- a new MVM: integrators discharged, no pulses yet -----------------------------------
            with m.State("CLEAR"):
                m.d.comb += [a_wr.addr.eq(i), a_wr.data.eq(0), a_wr.en.eq(1),
                             q_wr.addr.eq(i), q_wr.data.eq(0), q_wr.en.eq(1)]
                m.d.sync += i.eq(i + 1)
                with m.If(i == L - 1):
                    m.d.sync += i.eq(0)
                    m.next = "ANSWER"

            # ---- a burst of pulses: a_i += n·v_pos (+1) or -n·v_neg (-1), line by line ---------
            # (from the drive vectors taken at the strobe)
            with m.State("INTEGRATE_READ"):
                # line i's drive, registered while its a_i is read
                m.d.comb += a_rd.addr.eq(i)
                m.d.sync += [line_act.eq(drive_act[0]), line_amount.eq(Mux(drive_neg[0], -n_neg, n_pos)),
                             drive_act.eq(drive_act >> 1), drive_neg.eq(drive_neg >> 1)]
                m.next = "INTEGRATE_WRITE"

            with m.State("INTEGRATE_WRITE"):
                m.d.comb += [a_wr.addr.eq(i), a_wr.en.eq(line_act), a_wr.data.eq(a_rd.data + line_amount)]
                m.d.sync += i.eq(i + 1)
                with m.If(i == n_in - 1):
                    m.d.sync += i.eq(0)
                    m.next = "ANSWER"
                with m.Else():
                    m.next = "INTEGRATE_READ"

            # ---- cell commands ---------------------------------------------------------------------
            with m.State("READ"):
                m.d.comb += g_rd.addr.eq(cell_addr)
                m.next = "READ_DATA"

            with m.State("READ_DATA"):
                m.d.sync += read_g_r.eq(g_rd.data)
                m.next = "ANSWER"

            with m.State("PROG_ADDRESS"):
                m.d.comb += [rate_rd.addr.eq(Mux(pol_reset, len(t.rate_set), 0) + ((v_eff + 4) >> 3)),
                             g_rd.addr.eq(cell_addr)]
                m.d.sync += gate_ov_r.eq(gate_ov)
                m.next = "PROG_LOOKUP"

            # Each product on the serial multiplier: start it, then wait until it is not busy.
            with m.State("PROG_LOOKUP"):
                m.d.comb += [mul.start.eq(1), mul.a.eq(rate_rd.data), mul.b.eq(width_ns), g_rd.addr.eq(cell_addr)]
                m.next = "PROG_RATE"

            with m.State("PROG_RATE"):
                # the rate in F_FRAC_BITS fixed point; g(rate) looked up; the gate overdrive squared
                m.d.comb += g_rd.addr.eq(cell_addr)
                m.d.sync += g_r.eq(g_rd.data)                  # the cell's code, registered
                with m.If(~mul.busy):
                    # rate · width < 2^48; the table index r >> 11 is past its end when bits 36.. are set
                    assert SWITCH_ENTRIES == 1 << (36 - (RATE_FRAC_BITS - F_FRAC_BITS) - (F_FRAC_BITS - 5))
                    m.d.sync += [rate_q.eq(mul.p[RATE_FRAC_BITS - F_FRAC_BITS:]), saturated.eq(mul.p[36:48].any())]
                    m.d.comb += [mul.start.eq(1), mul.a.eq(gate_ov_r), mul.b.eq(gate_ov_r)]
                    m.next = "PROG_OV2"

            with m.State("PROG_OV2"):
                with m.If(~mul.busy):
                    m.d.comb += [mul.start.eq(1), mul.a.eq(mul.p), mul.b.eq(t.gcc_scale)]
                    m.next = "PROG_GCC"

            with m.State("PROG_GCC"):
                # the compliance, clipped; then f = rate · g(rate)
                with m.If(~mul.busy):
                    gcc = (mul.p[31:49] + 1) >> 1               # (ov² · scale + 2^31) >> 32; ov² · scale < 2^49
                    m.d.sync += gcc_r.eq(Mux(gcc > t.ceiling_code, t.ceiling_code, gcc))
                    m.d.comb += [mul.start.eq(1), mul.a.eq(rate_q), mul.b.eq(switch_rd.data)]
                    m.next = "PROG_CLIP"

            with m.State("PROG_CLIP"):
                g = g_r
                with m.If(~mul.busy):
                    # SET: max(gcc - g, 0); RESET: max(g - floor, 0), from one subtraction's borrow
                    d = Signal(CODE_BITS + 1)
                    m.d.comb += d.eq(Mux(pol_reset, g, gcc_r) - Mux(pol_reset, t.floor_code, g))
                    m.d.sync += [f_r.eq(Mux(saturated, 1 << F_FRAC_BITS, mul.p[F_FRAC_BITS:])),
                                 diff_r.eq(Mux(d[CODE_BITS], 0, d[:CODE_BITS]))]
                    m.next = "PROG_SCALE"

            with m.State("PROG_SCALE"):
                m.d.comb += [mul.start.eq(1), mul.a.eq(f_r), mul.b.eq(diff_r)]
                m.next = "PROG_STEP"

            with m.State("PROG_STEP"):
                with m.If(~mul.busy):
                    # (f · diff + 2^15) >> 16, f · diff < 2^33
                    m.d.sync += dg_r.eq((mul.p[F_FRAC_BITS - 1:33] + 1) >> 1)
                    m.next = "PROG_WRITE"

            with m.State("PROG_WRITE"):
                g = g_r
                m.d.comb += [g_wr.addr.eq(cell_addr), g_wr.en.eq(1),
                             g_wr.data.eq(Mux(pol_reset, g - dg_r, g + dg_r))]
                m.d.sync += k_ok.eq(0)
                if streamed:
                    # the cell's row and column sums move with it
                    m.d.comb += [col_wr.addr.eq(cell_col), col_wr.en.eq(1),
                                 col_wr.data.eq(Mux(pol_reset, col_rd.data - dg_r, col_rd.data + dg_r)),
                                 row_wr.addr.eq(cell_row), row_wr.en.eq(1),
                                 row_wr.data.eq(Mux(pol_reset, row_rd.data - dg_r, row_rd.data + dg_r))]
                m.next = "ANSWER"

            if not streamed:
                # ---- couplings: k_ij = rint(2^F G_ij / S_j), one output line at a time --------------
                with m.State("KSUM"):
                    # read the output line's codes one per cycle and sum them
                    m.d.comb += g_rd.addr.eq(walk)
                    m.d.sync += [sum_valid.eq(1), i.eq(i + 1)]
                    with m.If(sum_valid):
                        m.d.sync += s_sum.eq(s_sum + g_rd.data)
                    with m.If(i == n_in - 1):
                        m.next = "KSUM_LAST"

                with m.State("KSUM_LAST"):
                    m.d.sync += [s_sum.eq(s_sum + g_rd.data), i.eq(0), sum_valid.eq(0)]
                    m.next = "KDIV_READ"

                with m.State("KDIV_READ"):
                    m.d.comb += g_rd.addr.eq(walk)
                    m.next = "KDIV_LOAD"

                with m.State("KDIV_LOAD"):
                    # round half up: floor((2^(F+1) G + S) / 2S); never a tie (S < 2^(F+1))
                    # the dividend's top: (2^(F+1) G + S) >> (F+1) = G (S < 2^(F+1)), below the divisor 2S
                    m.d.sync += [div_rem.eq(g_rd.data), div_q.eq(0), div_b.eq(K_BITS)]
                    m.next = "KDIV"

                with m.State("KDIV"):
                    # restoring division, one quotient bit per cycle (the quotient is below 2^(F+1))
                    # long division by 2S: bring down the dividend's next bit (bit div_b - 1 of S); one
                    # subtraction, whose borrow says whether the divisor fits
                    shifted = Signal(len(div_rem))
                    dsub = Signal(len(div_rem) + 1)
                    m.d.comb += [shifted.eq(Cat((s_sum >> (div_b - 1).as_unsigned())[0], div_rem)), dsub.eq(shifted - (s_sum << 1))]
                    fits = ~dsub[-1]
                    m.d.sync += [div_rem.eq(Mux(fits, dsub, shifted)), div_q.eq(Cat(fits, div_q)), div_b.eq(div_b - 1)]
                    with m.If(div_b == 1):
                        m.next = "KDIV_WRITE"

                with m.State("KDIV_WRITE"):
                    m.d.comb += [k_wr.addr.eq(o * L + i), k_wr.en.eq(1), k_wr.data.eq(Mux(s_sum == 0, 0, div_q))]
                    with m.If(i == n_in - 1):
                        m.d.sync += [i.eq(0), s_sum.eq(0)]
                        with m.If(o == n_out - 1):
                            m.d.sync += [o.eq(0), k_ok.eq(1), k_backward.eq(backward)]
                            m.next = "MAC"
                        with m.Else():
                            m.d.sync += o.eq(o + 1)
                            m.next = "KSUM"
                    with m.Else():
                        m.d.sync += i.eq(i + 1)
                        m.next = "KDIV_READ"

            else:
                # ---- streamed couplings: the output line's code sum, the divisor of its MAC --------
                with m.State("LINE_SUM"):
                    m.d.comb += [col_rd.addr.eq(o), row_rd.addr.eq(o)]
                    m.next = "LINE_SUM_LOAD"

                with m.State("LINE_SUM_LOAD"):
                    m.d.sync += s_sum.eq(Mux(backward, row_rd.data, col_rd.data))
                    m.next = "MAC"

            # ---- the MVM's line sums: A_j = Σ_i a_i k_ij, then the neuron integrates -------------
            with m.State("MAC"):
                m.d.comb += a_rd.addr.eq(i)
                m.d.comb += g_rd.addr.eq(walk) if streamed else k_rd.addr.eq(o * L + i)
                m.d.sync += [mac_v1.eq(1), i.eq(i + 1)]
                with m.If(i == n_in - 1):
                    m.next = "MAC_DRAIN"

            with m.State("MAC_DRAIN"):
                m.d.sync += [mac_v1.eq(0), i.eq(i + 1)]
                with m.If(i == n_in + 1 + (MAC_PRODUCT_STAGES + K_BITS if streamed else 1)):
                    m.next = "SCALE"

            with m.State("SCALE"):
                m.d.comb += [mul.start.eq(1), mul.a.eq(acc), mul.b.eq(GAIN_nV_per_mV)]
                m.next = "SCALE_WAIT"

            with m.State("SCALE_WAIT"):
                m.d.comb += q_rd.addr.eq(o)
                with m.If(~mul.busy):
                    m.next = "ROUND"

            with m.State("ROUND"):
                # rint (half to even) of scaled / 2^F
                fl = scaled >> F
                rem = scaled[:F]
                half = 1 << (F - 1)
                up = (rem > half) | ((rem == half) & fl[0])
                m.d.sync += delta.eq(fl + up)
                m.d.comb += q_rd.addr.eq(o)
                m.next = "CHARGE"

            with m.State("CHARGE"):
                # the neuron's new charge, registered (a block RAM's output is slow), then saturated
                m.d.sync += charge.eq(q_rd.data + delta)
                m.next = "CHARGE_WRITE"

            with m.State("CHARGE_WRITE"):
                m.d.comb += [q_wr.addr.eq(o), q_wr.en.eq(1),
                             q_wr.data.eq(Mux(charge > V_SAT_nV, V_SAT_nV, Mux(charge < -V_SAT_nV, -V_SAT_nV, charge)))]
                m.d.sync += [acc.eq(0), i.eq(0)]
                with m.If(o == n_out - 1):
                    m.d.sync += [o.eq(0), pending.eq(0)]
                    m.next = "ZERO_DRIVE"
                with m.Else():
                    m.d.sync += o.eq(o + 1)
                    m.next = "LINE_SUM" if streamed else "MAC"

            # ---- the compare or step itself ------------------------------------------------------
            with m.State("ZERO_DRIVE"):
                # the pulses are integrated: the next burst starts from zero
                m.d.comb += [a_wr.addr.eq(i), a_wr.data.eq(0), a_wr.en.eq(1)]
                m.d.sync += i.eq(i + 1)
                with m.If(i == L - 1):
                    m.d.sync += i.eq(0)
                    m.next = "APPLY_READ"

            # ---- the compare or step itself, neuron by neuron ------------------------------------
            with m.State("APPLY_READ"):
                # a step moves each enabled neuron one packet toward zero (registered while its
                # charge is read); then it compares
                en = is_step & step_en[0]
                m.d.comb += q_rd.addr.eq(i)
                m.d.sync += [line_amount.eq(Mux(en, Mux(step_pos[0], -packet_nV, packet_nV), 0)),
                             step_en.eq(step_en >> 1), step_pos.eq(step_pos >> 1)]
                m.next = "APPLY_WRITE"

            with m.State("APPLY_WRITE"):
                qn = Signal(signed(Q_BITS + 1))
                m.d.comb += qn.eq(q_rd.data + line_amount)
                m.d.comb += [q_wr.addr.eq(i), q_wr.data.eq(qn), q_wr.en.eq(1)]
                m.d.sync += [cmp_r.eq(Cat(cmp_r[1:], qn > 0)), i.eq(i + 1)]
                with m.If(i == L - 1):
                    m.d.sync += i.eq(0)
                    m.next = "ANSWER"
                with m.Else():
                    m.next = "APPLY_READ"

        # the MAC pipeline: k (cached) or G (streamed) and a_i arrive one cycle after the address,
        # are registered (block RAM outputs are slow), [divided,] multiplied, then accumulated
        m.d.sync += mac_v2.eq(mac_v1)
        if streamed:
            g_q = Signal(CODE_BITS, reset_less=True)
            with m.If(mac_v1):
                m.d.sync += [g_q.eq(g_rd.data), a_q.eq(a_rd.data)]
            k_valid, k_in, a_in = self._divider_pipeline(m, g_q, a_q, mac_v2, s_sum, K_BITS)
        else:
            with m.If(mac_v1):
                m.d.sync += [k_q.eq(k_rd.data), a_q.eq(a_rd.data)]
            k_valid, k_in, a_in = mac_v2, k_q, a_q
        if streamed:
            prod_valid = self._product_pipeline(m, a_in, k_in, k_valid, prod)
        else:
            # a small core's product in one stage (the iCE40's few multipliers)
            prod_valid = Signal()
            m.d.sync += [prod.eq(a_in * k_in), prod_valid.eq(k_valid)]
        with m.If(prod_valid):
            m.d.sync += acc.eq(acc + prod)

        # the hold stops the clock enable of the whole controller: on a global network where there is one
        m.d.comb += self.hold.eq(global_net(m, platform, busy, "hold"))
        return m

    @staticmethod
    def _product_pipeline(m, a, k, valid, prod):
        """``prod = a · k`` (``a`` signed, ``k`` unsigned) in MAC_PRODUCT_STAGES registered stages:
        four partial products of at most 18 x 18 bits (one hardware multiplier each), their
        middle terms summed, then the one addition. Returns the valid flag that comes with
        ``prod``. (One a · k as wide as the MAC's is several multipliers and adders in one
        cycle.)"""
        S = 17                                                 # the low halves' width
        assert len(a) > S and len(k) > S and len(a) - S <= 18 and len(k) - S <= 18
        a_lo, a_hi = a[:S], a[S:].as_signed()
        k_lo, k_hi = k[:S], k[S:]
        p_ll = Signal(2 * S, reset_less=True)
        p_lh = Signal(S + len(k_hi), reset_less=True)
        p_hl = Signal(signed(len(a_hi) + S), reset_less=True)
        p_hh = Signal(signed(len(a_hi) + len(k_hi)), reset_less=True)
        outer = Signal(signed(2 * S + len(p_hh)), reset_less=True)      # p_hh · 2^2S + p_ll
        middle = Signal(signed(max(len(p_lh), len(p_hl)) + 2), reset_less=True)
        v1, v2, v3 = Signal(), Signal(), Signal()
        m.d.sync += [p_ll.eq(a_lo * k_lo), p_lh.eq(a_lo * k_hi), p_hl.eq(a_hi * k_lo), p_hh.eq(a_hi * k_hi),
                     outer.eq(Cat(p_ll, p_hh).as_signed()), middle.eq(p_lh + p_hl),
                     prod.eq(outer + (middle << S)),
                     v1.eq(valid), v2.eq(v1), v3.eq(v2)]
        assert MAC_PRODUCT_STAGES == 3
        return v3

    @staticmethod
    def _divider_pipeline(m, g, a, valid, s_sum, k_bits):
        """``k = rint(2^(k_bits-1) · g / s_sum)`` (0 when ``s_sum`` is 0) for a new ``g`` every
        cycle, ``a`` carried alongside: the cached mode's restoring division (KDIV) unrolled, one
        quotient bit per stage. ``s_sum`` must hold still while the pipeline is full. Returns
        (valid, k, a) after ``k_bits`` stages."""
        rem = Signal(len(s_sum) + 2, name="div_rem_0")
        m.d.comb += rem.eq(g)                                  # g <= S < 2S: below the divisor
        q = Signal(0)
        for t in range(k_bits):
            b = k_bits - 1 - t                                 # the dividend bit brought down
            shifted = Signal(len(rem), name=f"div_shifted_{t}")
            dsub = Signal(len(rem) + 1, name=f"div_sub_{t}")
            bit = s_sum[b] if b < len(s_sum) else 0
            m.d.comb += [shifted.eq(Cat(bit, rem)), dsub.eq(shifted - (s_sum << 1))]
            fits = ~dsub[-1]
            rem_n = Signal(len(rem), name=f"div_rem_{t + 1}", reset_less=True)
            q_n = Signal(t + 1, name=f"div_q_{t + 1}", reset_less=True)
            a_n = Signal.like(a, name=f"div_a_{t + 1}", reset_less=True)
            valid_n = Signal(name=f"div_valid_{t + 1}")
            m.d.sync += [rem_n.eq(Mux(fits, dsub, shifted)), q_n.eq(Cat(fits, q)), a_n.eq(a), valid_n.eq(valid)]
            rem, q, a, valid = rem_n, q_n, a_n, valid_n
        return valid, Mux(s_sum == 0, 0, q), a
