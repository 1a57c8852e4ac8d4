"""The chip's command and status controller: CTRL strobes in, per-core commands and STATUS out.

CTRL.start starts a batch on every enabled core in CORE_SELECT, unless the configuration is one
the chip cannot run (then STATUS.config_error, and nothing starts). CTRL.cell_program,
CTRL.cell_read and CTRL.wv_start go to the core in CELL_ADDR, which must be enabled (and, for
wv_start, the operation valid: ``wv_ok``, from :func:`neurram.spec.writeverify.wv_start_ok`; for
cell_read, a read voltage above 0: ``read_ok``). STATUS follows the batch
(busy, then done when every started core is idle again) and the cell command (cell_busy, then
cell_done). Every command leaves here registered, one cycle after its CTRL write.
"""

from types import SimpleNamespace

from amaranth import Cat, Module, Mux, Signal, Value
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from neurram.spec.mvm import SETTINGS_FIELDS, start_ok

from .registers import CoreSettings

__all__ = ["Command", "ChipStatus", "BatchControl"]


class Command(data.Struct):
    """CTRL's write strobes (high for the one cycle after the write)."""
    start: 1
    abort: 1
    clear_counters: 1
    cell_program: 1
    cell_read: 1
    wv_start: 1


class ChipStatus(data.Struct):
    """STATUS."""
    busy: 1
    done: 1
    cell_busy: 1
    cell_done: 1
    config_error: 1


class BatchControl(wiring.Component):
    """Starts batches and cell commands and keeps STATUS (see the module docstring).

    Inputs: the batch ``settings`` (from MVM_CONFIG & co), the CTRL ``command``, the cores that are
    ``enabled`` and ``selected`` and those ``busy``, and the core of CELL_ADDR (``cell_core``).
    Outputs, registered: per-core ``start``, ``cell_program`` and ``cell_read``; ``abort`` and
    ``clear_counters`` for every core; ``status``.
    """

    def __init__(self, config):
        self.config = config
        n = config.n_cores
        super().__init__({
            "settings": In(CoreSettings),
            "command": In(Command),
            "enabled": In(n),
            "selected": In(n),
            "busy": In(n),
            "cell_core": In(6),
            "wv_ok": In(1),
            "read_ok": In(1),
            "start": Out(n),
            "abort": Out(1),
            "clear_counters": Out(1),
            "cell_program": Out(n),
            "cell_read": Out(n),
            "wv_start": Out(n),
            "status": Out(ChipStatus),
        })

    def config_ok(self, m) -> Signal:
        """High when the settings are a configuration the chip can run on the selected cores."""
        # The rule is the specification's (neurram.spec.mvm.start_ok), evaluated on the settings'
        # raw values; the fast model evaluates the same function on integers. A reduced chip
        # (ChipConfig build options) refuses the modes it was built without, by the same rule.
        s = self.settings
        values = SimpleNamespace(**{name: Value.cast(getattr(s, name)) for name, _ in SETTINGS_FIELDS})
        ok = Signal()
        m.d.comb += ok.eq(start_ok(values, self.config, s.batch_count, (self.selected & self.enabled).any()))
        return ok

    def elaborate(self, platform):
        m = Module()
        n = self.config.n_cores
        cmd, enabled = self.command, self.enabled
        config_ok = self.config_ok(m)

        m.d.sync += [self.start.eq(Mux(cmd.start & config_ok, self.selected & enabled, 0)),
                     self.abort.eq(cmd.abort), self.clear_counters.eq(cmd.clear_counters)]
        # A power-gated core cannot program or read its cells: commands need CORE_ENABLE.
        cell_target = Cat(*[self.cell_core == i for i in range(n)]) & enabled
        m.d.sync += [self.cell_program.eq(Mux(cmd.cell_program, cell_target, 0)),
                     self.cell_read.eq(Mux(cmd.cell_read & self.read_ok, cell_target, 0)),
                     self.wv_start.eq(Mux(cmd.wv_start & self.wv_ok, cell_target, 0))]

        # ---- batch status: a core's busy shows two cycles after its start (input register, FSM) --
        start_q2 = Signal(n)
        m.d.sync += start_q2.eq(self.start)
        running = Signal()
        done = Signal()
        config_error = Signal()
        cell_core_enabled = Signal()
        m.d.comb += cell_core_enabled.eq((enabled >> self.cell_core)[0])
        with m.If(cmd.start):
            m.d.sync += [done.eq(0), config_error.eq(~config_ok), running.eq(config_ok)]
        with m.Elif(cmd.cell_program):
            m.d.sync += config_error.eq(~cell_core_enabled)
        with m.Elif(cmd.cell_read):                   # a read at 0 mV measures nothing: refused
            m.d.sync += config_error.eq(~cell_core_enabled | ~self.read_ok)
        with m.Elif(cmd.wv_start):
            m.d.sync += config_error.eq(~cell_core_enabled | ~self.wv_ok)
        with m.Elif(running & ~self.start.any() & ~start_q2.any() & ~self.busy.any()):
            m.d.sync += [running.eq(0), done.eq(1)]

        # ---- cell command status ----------------------------------------------------------------
        cell_cmd = self.cell_program | self.cell_read | self.wv_start
        cell_q2 = Signal(n)
        m.d.sync += cell_q2.eq(cell_cmd)
        cell_busy = Signal()
        cell_done = Signal()
        cell_sel_busy = Signal()
        m.d.comb += cell_sel_busy.eq((self.busy >> self.cell_core)[0])
        with m.If(cmd.cell_program | cmd.cell_read | cmd.wv_start):
            m.d.sync += [cell_busy.eq(1), cell_done.eq(0)]
        with m.Elif(cell_busy & ~cell_cmd.any() & ~cell_q2.any() & ~cell_sel_busy):
            m.d.sync += [cell_busy.eq(0), cell_done.eq(1)]
        st = self.status
        m.d.comb += [st.busy.eq(running), st.done.eq(done), st.cell_busy.eq(cell_busy),
                     st.cell_done.eq(cell_done), st.config_error.eq(config_error)]
        return m
