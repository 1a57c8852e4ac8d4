"""One compute-in-memory core: the digital controller around an analog array.

The controller holds the two ternary registers (BL side and SL side), the batch input buffer and
output buffer (bit-planes), the bit-serial input sequencer, the neuron controller (initialise /
integrate / compare / step) with sign, charge-decrement and SAR conversion, ReLU and clipped
ReLU, the neuron mask, recurrent write-back of outputs as inputs, the stochastic neurons' random
source (a cellular automaton seeded from LFSR_SEED), single-cell program and read for
write-verify, and the event counters. It talks to its array only through
:func:`neurram.hdl.analog.analog_array_signature`.

Per-neuron state is bit-sliced (one ``lines``-bit vector per bit of state, e.g. seven vectors for
the step counters) so that every update is a handful of wide logic operations: this keeps the
generated Verilog small and the Verilator simulation fast.
"""


from amaranth import C, Cat, ClockDomain, ClockSignal, DomainRenamer, Module, Mux, ResetSignal, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .analog import NOISE_PLANES, WARMUP_STEPS, AnalogArrayBlackBox, AnalogOp, analog_array_signature
from .registers import Space

__all__ = ["Space", "CoreSettings", "CoreCounters", "core_bus_signature", "cell_port_signature",
           "CoreController", "CimCore"]


class CoreSettings(data.Struct):
    """Operating mode of a batch, latched by the core at start (from MVM_CONFIG & co)."""
    direction: 2          # Direction: 0 FORWARD, 1 BACKWARD, 2 RECURRENT
    input_source: 2       # InputSource: 0 BUFFER, 1 TERNARY
    input_bits: 4
    input_signed: 1
    conversion: 2         # Conversion: 0 SIGN, 1 DECREMENT, 2 SAR
    output_bits: 4
    activation: 2         # Activation: 0 NONE, 1 RELU, 2 CLIPPED_RELU
    stochastic: 1
    pulse_multiplier: 8
    max_steps: 7
    clip: 7
    batch_count: 13
    recurrent_steps: 8


class CoreCounters(data.Struct):
    """Event counters (DESIGN.md contract 8)."""
    mvm: 32
    pulse: 32
    compare: 32
    step: 32
    program: 32
    read: 32
    busy: 32


def core_bus_signature() -> wiring.Signature:
    """Host access to a core's buffers (seen from the chip: Out = chip drives)."""
    return wiring.Signature({
        "space": Out(Space),
        "offset": Out(22),
        "w_data": Out(32),
        "w_en": Out(1),
        "r_en": Out(1),
        "r_data": In(32),        # valid the cycle after r_en
    })


def cell_port_signature() -> wiring.Signature:
    """Single-cell program/read commands (seen from the chip)."""
    return wiring.Signature({
        "program": Out(1),
        "read": Out(1),
        "row": Out(12),
        "col": Out(12),
        "polarity": Out(1),
        "pulse_mV": Out(12),
        "gate_mV": Out(13),
        "width_ns": Out(16),
        "read_mV": Out(12),
        "result": In(16),
        "valid": In(1),
    })


def _log2(n: int) -> int:
    assert n & (n - 1) == 0, n
    return n.bit_length() - 1


def core_members(config) -> dict:
    """Ports of a core (the controller and the whole core share them)."""
    return {
            "settings": In(CoreSettings),
            "start": In(1),
            "abort_batch": In(1),
            "busy": Out(1),
            "batch_index": Out(13),
            "v_pos_mV": In(10),
            "v_neg_mV": In(10),
            "packet_uV": In(14),
            "noise_uV": In(14),
            "lfsr_seed": In(32),
            "core_index": In(6),
            "bus": In(core_bus_signature()),
            "cell": In(cell_port_signature()),
            "clear_counters": In(1),
            "counters": Out(CoreCounters),
        }


class CoreController(wiring.Component):
    """The digital half of a core; its ``array`` port goes to the analog array."""

    def __init__(self, config):
        self.config = config
        super().__init__(core_members(config))
        # The controller side of the analog boundary (connected to the array by CimCore).
        self.array = analog_array_signature(config).create(path=("array",))

    def elaborate(self, platform):
        m = Module()
        c = self.config
        L, R, C_ = c.lines, c.rows, c.cols
        P = c.input_planes
        SIGN_PLANE = P - 1
        wplv, wptv = c.words_per_line_vector, c.words_per_ternary_vector
        arr = self.array
        ONES = C((1 << L) - 1, L)

        # ---- state ---------------------------------------------------------------------------
        cfg = Signal(CoreSettings)                         # settings latched at start
        # The two ternary registers as planes: entry = act ? (neg ? -1 : +1) : 0.
        bl_act, bl_neg = Signal(R), Signal(R)
        sl_act, sl_neg = Signal(C_), Signal(C_)
        mask = Signal(L, init=(1 << L) - 1)                # neurons tracked by the conversion
        polarity = Signal(L)                               # input lines driven inverted
        sign_r = Signal(L)                                 # sign plane of the current vector
        plane_r = Signal(L)                                # magnitude plane of the current bit
        neg = Signal(L)                                    # initial comparator sign: 1 = negative
        done = Signal(L)
        mag = [Signal(L, name=f"mag{k}") for k in range(8)]  # bit-sliced step counters / SAR code
        cmp_q = Signal(L, reset_less=True)                 # comparator outputs, registered
        read_q = Signal(16, reset_less=True)
        m.d.sync += [cmp_q.eq(arr.cmp), read_q.eq(arr.read_g)]

        vec = Signal(13)
        bit = Signal(3)
        phase = Signal(1)
        hold = Signal(16)
        steps = Signal(7)
        sar_bit = Signal(3)
        out_k = Signal(3)
        abort_pending = Signal()
        ternary_src = Signal()
        ns_elapsed = Signal(17)
        rstep = Signal(8)                                  # recurrent step of the current vector
        warm = Signal(6)

        # ---- stochastic neurons: a rule 90/150 cellular automaton over 12 bit-planes ------------
        NL = NOISE_PLANES * L
        noise = Signal(NL)
        odd = C(int("10" * (NL // 2), 2), NL)              # rule 150 on odd cells, 90 on even
        noise_next = Signal(NL)
        m.d.comb += noise_next.eq(noise.rotate_left(1) ^ noise.rotate_right(1) ^ (noise & odd))
        mix = Signal(32)
        m.d.comb += mix.eq(self.lfsr_seed ^ (self.core_index * 0x9E3779B9)[:32])
        seeded = Cat(*[mix[(k + (k >> 5)) & 31] for k in range(NL)])
        m.d.comb += [arr.noise.eq(noise), arr.noise_en.eq(cfg.stochastic), arr.noise_uV.eq(self.noise_uV)]

        # ---- buffers (bit-planes, one bit per line) ---------------------------------------------
        W = 32 * wplv
        m.submodules.input_mem = input_mem = Memory(shape=W, depth=c.batch_depth * P, init=[])
        m.submodules.output_mem = output_mem = Memory(shape=W, depth=c.batch_depth * 8, init=[])
        in_wr = input_mem.write_port(granularity=32)
        in_rd = input_mem.read_port()                      # sequencer
        in_host = input_mem.read_port()                    # host reads
        out_wr = output_mem.write_port()
        out_host = output_mem.read_port()

        # ---- analog port ------------------------------------------------------------------------
        forward = Signal()
        m.d.comb += forward.eq(cfg.direction != 1)
        m.d.comb += [
            arr.direction.eq(~forward),
            arr.bl_act.eq(bl_act), arr.bl_neg.eq(bl_neg),
            arr.sl_act.eq(sl_act), arr.sl_neg.eq(sl_neg),
            arr.v_pos_mV.eq(self.v_pos_mV), arr.v_neg_mV.eq(self.v_neg_mV),
            arr.packet_uV.eq(self.packet_uV),
            arr.cell_row.eq(self.cell.row), arr.cell_col.eq(self.cell.col),
            arr.pulse_polarity.eq(self.cell.polarity), arr.pulse_mV.eq(self.cell.pulse_mV),
            arr.gate_mV.eq(self.cell.gate_mV), arr.width_ns.eq(self.cell.width_ns),
            arr.read_mV.eq(self.cell.read_mV),
        ]
        n_pulses = Signal(16)
        m.d.comb += n_pulses.eq(Mux(ternary_src, cfg.pulse_multiplier, cfg.pulse_multiplier << bit))
        m.d.comb += arr.n_pulses.eq(n_pulses)

        # ---- drive pattern of the current phase -----------------------------------------------
        # unsigned bit b: phase 0 -> (2b-1), phase 1 -> +1
        # signed digit t: phase 0 -> [t>0 ? +1 : -1], phase 1 -> [t>=0 ? +1 : -1]
        positive = Signal(L)
        with m.If(cfg.input_signed):
            m.d.comb += positive.eq(Mux(phase, ~(plane_r & sign_r), plane_r & ~sign_r))
        with m.Else():
            m.d.comb += positive.eq(Mux(phase, ONES, plane_r))
        drive_neg = Signal(L)                              # every line driven: -1 where set
        m.d.comb += drive_neg.eq(~(positive ^ polarity))

        def latch_outputs():
            """The output-side register latches the tracked neurons' comparators (+1 positive,
            -1 negative); entries of untracked neurons keep their value."""
            with m.If(forward):
                mk = mask[:C_]
                m.d.sync += [sl_act.eq(sl_act | mk), sl_neg.eq((sl_neg & ~mk) | (~cmp_q[:C_] & mk))]
            with m.Else():
                mk = mask[:R]
                m.d.sync += [bl_act.eq(bl_act | mk), bl_neg.eq((bl_neg & ~mk) | (~cmp_q[:R] & mk))]

        # ---- output byte planes -----------------------------------------------------------------
        is_sar = Signal()
        m.d.comb += is_sar.eq(cfg.conversion == 2)
        zero_neg = Signal(L)       # ReLU: negative outputs read 0
        m.d.comb += zero_neg.eq(Mux(cfg.activation != 0, neg, 0))
        # Clipped ReLU (decrement): steps above cfg.clip read cfg.clip. Bit-sliced steps > clip.
        gt = C(0, L)
        eq = ONES
        for k in reversed(range(7)):
            ck = Mux(cfg.clip[k], ONES, C(0, L))
            gt_k, eq_k = Signal(L, name=f"clip_gt{k}"), Signal(L, name=f"clip_eq{k}")
            m.d.comb += [gt_k.eq(gt | (eq & mag[k] & ~ck)), eq_k.eq(eq & ~(mag[k] ^ ck))]
            gt, eq = gt_k, eq_k
        clip_sel = Signal(L)
        m.d.comb += clip_sel.eq(Mux(cfg.activation == 2, gt, 0))
        out_plane = Signal(L)      # plane out_k of the output bytes
        with m.Switch(out_k):
            for k in range(8):
                with m.Case(k):
                    if k < 7:
                        dec_bit = (Mux(cfg.clip[k], clip_sel, 0) | (mag[k] & ~clip_sel)) & ~zero_neg
                        m.d.comb += out_plane.eq(Mux(is_sar, mag[k], dec_bit))
                    else:
                        m.d.comb += out_plane.eq(Mux(is_sar, mag[7], neg & ~zero_neg))

        # ---- recurrent write-back planes -----------------------------------------------------------
        # Next input code = output magnitude (decrement steps; 1 for sign outputs), saturated to the
        # input range; signed inputs take the output sign, unsigned ones zero negative outputs.
        wb_k = Signal(4)
        nb = Signal(4)
        m.d.comb += nb.eq(cfg.input_bits - cfg.input_signed)
        sat_terms = [Mux(nb <= k, mag[k], C(0, L)) for k in range(7)]
        acc_sat = C(0, L)
        for k, t in enumerate(sat_terms):
            nxt = Signal(L, name=f"rec_sat{k}")
            m.d.comb += nxt.eq(acc_sat | t)
            acc_sat = nxt
        keep = Signal(L)
        m.d.comb += keep.eq(Mux(cfg.input_signed, mask, ~neg & mask))
        rec_plane = Signal(L)
        is_sign = Signal()
        m.d.comb += is_sign.eq(cfg.conversion == 0)
        with m.Switch(wb_k):
            for k in range(P):
                with m.Case(k):
                    if k == P - 1:
                        m.d.comb += rec_plane.eq(Mux(cfg.input_signed, neg, 0))
                    else:
                        mag_k = mag[k] if k < 7 else C(0, L)
                        value = Mux(is_sign, ONES if k == 0 else C(0, L), mag_k | acc_sat)
                        m.d.comb += rec_plane.eq(Mux(nb > k, value & keep, 0))

        # ---- host access to the buffers ---------------------------------------------------------
        bus = self.bus
        lw = max(1, _log2(wplv))
        tw = max(1, _log2(wptv))
        m.d.comb += [
            in_wr.addr.eq(bus.offset >> _log2(wplv)),
            in_wr.data.eq(Cat(*[bus.w_data] * wplv)),
            in_host.addr.eq(bus.offset >> _log2(wplv)),
            out_host.addr.eq(bus.offset >> _log2(wplv)),
        ]
        with m.If(bus.w_en & (bus.space == Space.INPUT)):
            m.d.comb += in_wr.en.eq((C(1, wplv) << bus.offset[:lw]) if wplv > 1 else 1)

        # Host access: BL/SL registers as two planes (non-zero, negative), masks as one plane.
        planes = {Space.BL_REG: (bl_act, bl_neg), Space.SL_REG: (sl_act, sl_neg),
                  Space.NEURON_MASK: (mask,), Space.POLARITY: (polarity,)}
        r_word = Signal(32)

        def words_of(sigs):
            for p, sig in enumerate(sigs):
                for w in range(wplv):
                    if 32 * w < len(sig):
                        yield p * wplv + w, sig[32 * w:min(32 * w + 32, len(sig))]

        sel = bus.offset[:tw]
        with m.If(bus.w_en):
            with m.Switch(bus.space):
                for space, sigs in planes.items():
                    with m.Case(space):
                        with m.Switch(sel):
                            for idx, part in words_of(sigs):
                                with m.Case(idx):
                                    m.d.sync += part.eq(bus.w_data)
        with m.If(bus.r_en):
            with m.Switch(bus.space):
                for space, sigs in planes.items():
                    with m.Case(space):
                        with m.Switch(sel):
                            for idx, part in words_of(sigs):
                                with m.Case(idx):
                                    m.d.sync += r_word.eq(part)
        r_space = Signal(Space)
        r_lane = Signal(lw)
        m.d.sync += [r_space.eq(bus.space), r_lane.eq(bus.offset[:lw])]
        with m.Switch(r_space):
            with m.Case(Space.INPUT):
                m.d.comb += bus.r_data.eq(in_host.data.word_select(r_lane, 32) if wplv > 1 else in_host.data)
            with m.Case(Space.OUTPUT):
                m.d.comb += bus.r_data.eq(out_host.data.word_select(r_lane, 32) if wplv > 1 else out_host.data)
            with m.Default():
                m.d.comb += bus.r_data.eq(r_word)

        # ---- counters ------------------------------------------------------------------------
        cnt = self.counters
        with m.If(self.clear_counters):
            m.d.sync += cnt.eq(0)

        def count(field, amount=1):
            with m.If(~self.clear_counters):
                m.d.sync += getattr(cnt, field).eq(getattr(cnt, field) + amount)

        m.d.comb += self.batch_index.eq(vec)

        # ---- the controller ------------------------------------------------------------------
        strobe = arr.strobe
        D = c.batch_depth                                  # INPUT buffer: plane-major
        m.d.comb += in_rd.addr.eq(vec + bit * D)

        with m.If(self.abort_batch):
            m.d.sync += abort_pending.eq(1)

        with m.FSM(name="ctrl") as fsm:
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [cfg.eq(self.settings), vec.eq(0), abort_pending.eq(0),
                                 rstep.eq(0), noise.eq(seeded), warm.eq(0)]
                    with m.If(self.settings.stochastic):
                        m.next = "WARMUP"
                    with m.Else():
                        m.next = "INIT"
                with m.Elif(self.cell.program):
                    m.d.comb += [strobe.eq(1), arr.op.eq(AnalogOp.PROGRAM)]
                    m.d.sync += ns_elapsed.eq(0)
                    count("program")
                    m.next = "PROGRAM"
                with m.Elif(self.cell.read):
                    m.d.comb += [strobe.eq(1), arr.op.eq(AnalogOp.READ)]
                    count("read")
                    m.next = "READ"

            with m.State("PROGRAM"):
                # The pulse lasts width_ns; the controller waits it out.
                ns_per_cycle = round(1e9 / c.clock_hz)
                m.d.sync += ns_elapsed.eq(ns_elapsed + ns_per_cycle)
                with m.If(ns_elapsed + ns_per_cycle >= self.cell.width_ns):
                    m.next = "IDLE"

            with m.State("READ"):
                m.next = "READ_DONE"

            with m.State("READ_DONE"):
                m.next = "IDLE"

            with m.State("WARMUP"):
                # Mix the seed through the automaton before the first draw.
                m.d.sync += [noise.eq(noise_next), warm.eq(warm + 1)]
                with m.If(warm == WARMUP_STEPS - 1):
                    m.next = "INIT"

            with m.State("INIT"):
                m.d.comb += [strobe.eq(1), arr.op.eq(AnalogOp.INITIALISE)]
                m.d.comb += in_rd.addr.eq(vec + SIGN_PLANE * D)
                m.d.sync += [bit.eq(0), phase.eq(0), ternary_src.eq(cfg.input_source == 1)]
                m.d.sync += [done.eq(0), neg.eq(0), steps.eq(0), out_k.eq(0)] + [mk.eq(0) for mk in mag]
                m.next = "INIT_SIGN"

            with m.State("INIT_SIGN"):
                m.d.sync += sign_r.eq(in_rd.data[:L])
                with m.If(ternary_src):
                    m.next = "BURST"
                with m.Else():
                    m.next = "LOAD"

            with m.State("LOAD"):
                m.next = "LATCH_PLANE"

            with m.State("LATCH_PLANE"):
                m.d.sync += plane_r.eq(in_rd.data[:L])
                m.next = "DRIVE"

            with m.State("DRIVE"):
                with m.If(forward):
                    m.d.sync += [bl_act.eq(C((1 << R) - 1, R)), bl_neg.eq(drive_neg[:R])]
                with m.Else():
                    m.d.sync += [sl_act.eq(C((1 << C_) - 1, C_)), sl_neg.eq(drive_neg[:C_])]
                m.next = "BURST"

            with m.State("BURST"):
                m.d.comb += [strobe.eq(1), arr.op.eq(AnalogOp.INTEGRATE)]
                m.d.sync += hold.eq(n_pulses - 1)
                count("pulse", n_pulses)
                m.next = "HOLD"

            with m.State("HOLD"):
                m.d.sync += hold.eq(hold - 1)
                with m.If(hold == 0):
                    with m.If(ternary_src):
                        m.next = "COMPARE"
                    with m.Elif(phase == 0):
                        m.d.sync += phase.eq(1)
                        m.next = "DRIVE"
                    with m.Else():
                        m.d.sync += phase.eq(0)
                        # signed inputs: the top bit is the sign, not a magnitude bit
                        with m.If(bit + 1 + cfg.input_signed >= cfg.input_bits):
                            m.next = "COMPARE"
                        with m.Else():
                            m.d.sync += bit.eq(bit + 1)
                            m.next = "LOAD"

            with m.State("COMPARE"):
                m.d.comb += [strobe.eq(1), arr.op.eq(AnalogOp.COMPARE)]
                count("compare")
                m.next = "LATCH_SIGN"

            with m.State("LATCH_SIGN"):
                latch_outputs()
                with m.If(cfg.stochastic):
                    m.d.sync += noise.eq(noise_next)
                # Untracked neurons are done from the start and read 0.
                m.d.sync += [neg.eq(~cmp_q & mask), done.eq(~mask)]
                with m.If(is_sar):
                    for k in range(8):
                        with m.If(cfg.output_bits == k + 1):
                            m.d.sync += mag[k].eq(cmp_q & mask)
                    m.d.sync += sar_bit.eq(cfg.output_bits - 2)
                with m.Switch(cfg.conversion):
                    with m.Case(1):
                        m.next = "STEP_CHECK"
                    with m.Case(2):
                        with m.If(cfg.output_bits <= 1):
                            m.next = "WRITE"
                        with m.Else():
                            m.next = "SAR_STEP"
                    with m.Default():
                        m.next = "WRITE"

            with m.State("STEP_CHECK"):
                with m.If((done == ONES) | (steps >= cfg.max_steps)):
                    m.next = "WRITE"
                with m.Else():
                    m.next = "STEP"

            with m.State("STEP"):
                m.d.comb += [strobe.eq(1), arr.op.eq(AnalogOp.STEP), arr.step_enable.eq(~done)]
                m.d.sync += steps.eq(steps + 1)
                count("step")
                count("compare")
                m.next = "STEP_LATCH"

            with m.State("STEP_LATCH"):
                latch_outputs()
                with m.If(cfg.stochastic):
                    m.d.sync += noise.eq(noise_next)
                flipped = Signal(L)
                m.d.comb += flipped.eq(~done & ~(cmp_q ^ neg))
                m.d.sync += done.eq(done | flipped)
                carry = Signal(L, name="carry_in")
                m.d.comb += carry.eq(~done)            # every neuron still active counts this step
                for k in range(7):
                    nxt = Signal(L, name=f"carry{k}")
                    m.d.comb += nxt.eq(carry & mag[k])
                    m.d.sync += mag[k].eq(mag[k] ^ carry)
                    carry = nxt
                m.next = "STEP_CHECK"

            with m.State("SAR_STEP"):
                m.d.comb += [strobe.eq(1), arr.op.eq(AnalogOp.STEP), arr.step_enable.eq(mask),
                             arr.step_shift.eq(sar_bit)]
                count("step")
                count("compare")
                m.next = "SAR_LATCH"

            with m.State("SAR_LATCH"):
                latch_outputs()
                with m.If(cfg.stochastic):
                    m.d.sync += noise.eq(noise_next)
                with m.Switch(sar_bit):
                    for k in range(7):
                        with m.Case(k):
                            m.d.sync += mag[k].eq(cmp_q & mask)
                m.d.sync += sar_bit.eq(sar_bit - 1)
                with m.If(sar_bit == 0):
                    m.next = "WRITE"
                with m.Else():
                    m.next = "SAR_STEP"

            with m.State("WRITE"):
                # One output bit-plane per cycle.
                m.d.comb += [out_wr.addr.eq(Cat(out_k, vec)), out_wr.data.eq(out_plane), out_wr.en.eq(1)]
                m.d.sync += out_k.eq(out_k + 1)
                with m.If(out_k == 7):
                    count("mvm")
                    with m.If((cfg.direction == 2) & (rstep + 1 < cfg.recurrent_steps)):
                        m.d.sync += [rstep.eq(rstep + 1), wb_k.eq(0)]
                        m.next = "REC_WB"
                    with m.Else():
                        m.d.sync += [vec.eq(vec + 1), rstep.eq(0)]
                        with m.If(abort_pending | self.abort_batch | (vec + 1 >= cfg.batch_count)):
                            m.next = "IDLE"
                        with m.Else():
                            m.next = "INIT"

            with m.State("REC_WB"):
                # Recurrent: the outputs become this vector's inputs for the next step, one input
                # bit-plane per cycle, without a host round trip.
                m.d.comb += [in_wr.addr.eq(vec + wb_k * D), in_wr.data.eq(Cat(rec_plane, C(0, W - L))),
                             in_wr.en.eq((1 << wplv) - 1)]
                m.d.sync += wb_k.eq(wb_k + 1)
                with m.If(wb_k == P - 1):
                    m.next = "INIT"

        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))

        cell_result = Signal(16)
        cell_valid = Signal()
        m.d.comb += [self.cell.result.eq(cell_result), self.cell.valid.eq(cell_valid)]
        with m.If(fsm.ongoing("READ_DONE")):
            m.d.sync += [cell_result.eq(read_q), cell_valid.eq(1)]
        with m.If(self.busy & ~fsm.ongoing("PROGRAM") & ~fsm.ongoing("READ") & ~fsm.ongoing("READ_DONE")):
            count("busy")
        return m


class CimCore(wiring.Component):
    """A whole core: the controller, its input registers and its analog array.

    Every input enters through a register clocked by the core's own (gated) clock, so no logic
    inside the core depends on a signal of another clock domain: an idle, gated core costs a
    simulator nothing. Inputs therefore act one core clock later than they arrive; the chip
    keeps a core's clock running for that extra cycle.

    ``array_factory`` builds the array: any component with a ``port`` of
    ``In(analog_array_signature(config))`` (the FPGA build passes a digital emulation).
    """

    def __init__(self, config, core_index: int = 0, array_factory=None):
        self.config = config
        self.index = core_index
        self._array_factory = array_factory or (lambda: AnalogArrayBlackBox(config, core_index))
        super().__init__(core_members(config))

    def elaborate(self, platform):
        m = Module()
        # The reset, too, enters through a register of the core's own clock: then nothing inside
        # depends on the chip's clock domain.
        m.domains.core = ClockDomain("core", local=True)
        rst_q = Signal(init=1, reset_less=True)
        m.d.sync += rst_q.eq(ResetSignal("sync"))
        m.d.comb += [ClockSignal("core").eq(ClockSignal("sync")), ResetSignal("core").eq(rst_q)]
        m.submodules.ctrl = ctrl = DomainRenamer("core")(CoreController(self.config))
        for path, member, outer in self.signature.flatten(self):
            inner = ctrl
            for p in path:
                inner = getattr(inner, p) if isinstance(p, str) else inner[p]
            if member.flow == In:
                m.d.core += inner.eq(outer)
            else:
                m.d.comb += outer.eq(inner)
        m.submodules.array = array = self._array_factory()
        for name, member in analog_array_signature(self.config).members.items():
            if member.flow == Out:
                m.d.comb += getattr(array.port, name).eq(getattr(ctrl.array, name))
            else:
                m.d.comb += getattr(ctrl.array, name).eq(getattr(array.port, name))
        return m
