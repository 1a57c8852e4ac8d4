"""The on-chip write-verify engine of a core (docs/chip.md §3; registers WV_*, buffer WV_CELLS).

The host writes per-cell targets into the core's WV_CELLS buffer (a 10 nS conductance code, a
tolerance, a pending bit; :func:`neurram.spec.writeverify.target_word`), sets the first row in
CELL_ADDR and the row count in WV_LIMITS, and strobes CTRL.wv_start. The engine then walks the
buffer cell by cell, as the chip's test software did from the host: read; inside the window,
confirm with further reads; otherwise a SET or RESET round whose amplitude ramps by one step per
pulse up to the top, where it repeats until the round's top-pulse budget is spent; a new round
whenever the read lands on the other side; the round budget. It drives the core's single-cell
port (:class:`~neurram.hdl.cell.CellAccess`), so every pulse and read reaches the analog array
through the one boundary and is counted. Each pending word is replaced by its result (the last
read, the pulses applied, a :class:`~neurram.spec.enums.WvStatus`).

The procedure is :func:`neurram.spec.writeverify.write_verify_codes`; the fast model runs that
function, and the co-simulation checks the two cell for cell.
"""

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from neurram.spec import regmap
from neurram.spec import writeverify as wv
from neurram.spec.enums import PulsePolarity, WvStatus

from .cell import cell_port_signature

__all__ = ["WvSettings", "wv_buffer_signature", "WriteVerifyEngine"]


def _settings_layout() -> data.StructLayout:
    fields = {"row": regmap.register("CELL_ADDR")["row"].width,
              "width_ns": regmap.register("CELL_TIMING")["width_ns"].width,
              "read_mV": regmap.register("CELL_TIMING")["read_mV"].width}
    for name in wv.WV_REGISTERS:
        fields.update({f.name: f.width for f in regmap.register(name).fields})
    return data.StructLayout(fields)


#: Everything an operation runs from: the WV_* registers' fields, the first row (CELL_ADDR.row),
#: the pulse width and read voltage (CELL_TIMING). Latched at the start.
WvSettings = _settings_layout()

_TARGET = wv.TARGET_FIELDS
_RESULT = wv.RESULT_FIELDS


def wv_buffer_signature(depth: int) -> wiring.Signature:
    """The engine's access to WV_CELLS (seen from the engine): read data the cycle after the
    address; ``active`` gives the engine the buffer's write port."""
    bits = max(1, (depth - 1).bit_length())
    return wiring.Signature({"r_addr": Out(bits), "r_data": In(32), "w_addr": Out(bits), "w_data": Out(32),
                             "w_en": Out(1), "active": Out(1)})


def _field(word, fields, name):
    lsb, width = fields[name]
    return word[lsb:lsb + width]


class WriteVerifyEngine(wiring.Component):
    """See the module docstring. ``start`` begins an operation when ``enable`` is high (the core
    runs no batch and no cell command); ``busy`` until every cell of the operation is done."""

    def __init__(self, config):
        self.config = config
        self.depth = config.wv_rows * config.cols
        super().__init__({
            "start": In(1),
            "enable": In(1),
            "settings": In(WvSettings),
            "busy": Out(1),
            "cell": Out(cell_port_signature()),
            "cell_busy": In(1),
            "buffer": Out(wv_buffer_signature(self.depth)),
        })

    def elaborate(self, platform):
        m = Module()
        c = self.config
        s = Signal(WvSettings)                              # the operation's settings
        buf, cell = self.buffer, self.cell
        pulse_max = (1 << _RESULT["pulses"][1]) - 1

        idx = Signal(range(self.depth + 1))                 # cell of the buffer
        row = Signal(12)
        col = Signal(12)
        n_cells = Signal(range(self.depth + 1))
        # The cell in progress.
        lo = Signal(signed(18))
        hi = Signal(18)
        off = Signal()
        g = Signal(16)                                      # its last read
        pulses = Signal(_RESULT["pulses"][1])
        rounds = Signal(8)
        top = Signal(8)
        amp = Signal(12)
        pol = Signal(1)                                     # PulsePolarity
        in_round = Signal()
        confirmed = Signal(4)
        status = Signal(2)

        m.d.comb += [buf.r_addr.eq(idx), buf.w_addr.eq(idx),
                     buf.w_data.eq(Cat(g, pulses, status)), buf.active.eq(self.busy),
                     cell.row.eq(row), cell.col.eq(col), cell.read_mV.eq(s.read_mV), cell.width_ns.eq(s.width_ns),
                     cell.polarity.eq(pol), cell.pulse_mV.eq(amp),
                     cell.gate_mV.eq(Mux(pol == PulsePolarity.SET, s.set_gate_mV, s.reset_gate_mV))]
        stop = Signal(12)
        m.d.comb += stop.eq(Mux(pol == PulsePolarity.SET, s.set_stop_mV, s.reset_stop_mV))

        with m.FSM(name="wv") as fsm:
            with m.State("IDLE"):
                with m.If(self.start & self.enable):
                    m.d.sync += [s.eq(self.settings), idx.eq(0), row.eq(self.settings.row), col.eq(0),
                                 n_cells.eq(self.settings.rows * c.cols)]
                    m.next = "FETCH"

            with m.State("FETCH"):                          # the word's read port settles
                m.next = "DECODE"

            with m.State("DECODE"):
                word = buf.r_data
                target = _field(word, _TARGET, "g_10nS")
                tol = _field(word, _TARGET, "tol_10nS")
                is_off = target < s.g_off_10nS
                m.d.sync += [off.eq(is_off), lo.eq(Mux(is_off, 0, target - tol)),
                             hi.eq(Mux(is_off, s.g_off_10nS, target + tol)),
                             pulses.eq(0), rounds.eq(0), top.eq(0), in_round.eq(0), confirmed.eq(0)]
                with m.If(_field(word, _TARGET, "pending")[0]):
                    m.next = "READ"
                with m.Else():
                    m.next = "NEXT"

            with m.State("READ"):
                m.d.comb += cell.read.eq(1)
                m.next = "WAIT_READ"

            with m.State("WAIT_READ"):
                with m.If(~self.cell_busy):
                    m.next = "CHECK"

            with m.State("CHECK"):
                g_new = cell.result
                m.d.sync += g.eq(g_new)
                with m.If((g_new >= lo) & (g_new <= hi)):
                    m.d.sync += in_round.eq(0)
                    with m.If(confirmed + 1 >= s.confirm_reads):
                        m.d.sync += status.eq(WvStatus.CONVERGED)
                        m.next = "WRITE"
                    with m.Else():
                        m.d.sync += confirmed.eq(confirmed + 1)
                        m.next = "READ"
                with m.Else():
                    m.d.sync += confirmed.eq(0)
                    want = Mux(g_new < lo, PulsePolarity.SET, PulsePolarity.RESET)
                    with m.If(~in_round | (pol != want)):
                        with m.If(rounds >= s.max_rounds):
                            m.d.sync += status.eq(WvStatus.FAIL_ROUNDS)
                            m.next = "WRITE"
                        with m.Else():
                            m.d.sync += [rounds.eq(rounds + 1), pol.eq(want), top.eq(0), in_round.eq(1),
                                         amp.eq(Mux(want == PulsePolarity.SET, s.set_start_mV,
                                                    Mux(off, s.off_start_mV, s.reset_start_mV)))]
                            m.next = "PULSE"
                    with m.Elif(top >= s.max_top_pulses):
                        m.d.sync += status.eq(WvStatus.FAIL_TOP_PULSES)
                        m.next = "WRITE"
                    with m.Else():
                        m.next = "PULSE"

            with m.State("PULSE"):
                m.d.comb += cell.program.eq(1)
                m.d.sync += pulses.eq(Mux(pulses == pulse_max, pulses, pulses + 1))
                with m.If(amp >= stop):
                    m.d.sync += top.eq(top + 1)
                with m.Else():
                    m.d.sync += amp.eq(Mux(amp + s.step_mV > stop, stop, amp + s.step_mV))
                m.next = "WAIT_PULSE"

            with m.State("WAIT_PULSE"):
                with m.If(~self.cell_busy):
                    m.next = "READ"

            with m.State("WRITE"):
                m.d.comb += buf.w_en.eq(1)
                m.next = "NEXT"

            with m.State("NEXT"):
                m.d.sync += idx.eq(idx + 1)
                with m.If(col == c.cols - 1):
                    m.d.sync += [col.eq(0), row.eq(row + 1)]
                with m.Else():
                    m.d.sync += col.eq(col + 1)
                with m.If(idx + 1 >= n_cells):
                    m.next = "IDLE"
                with m.Else():
                    m.next = "FETCH"

        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        return m
