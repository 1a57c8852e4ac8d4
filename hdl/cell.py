"""Single-cell access for write-verify: one programming pulse, or one read, at a time."""

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .analog import AnalogOp, analog_array_subset

__all__ = ["cell_port_signature", "CellAccess", "CELL_TO_ARRAY"]


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


#: Arguments of a cell command and the analog port members that carry them.
CELL_TO_ARRAY = {"row": "cell_row", "col": "cell_col", "polarity": "pulse_polarity", "pulse_mV": "pulse_mV",
                 "gate_mV": "gate_mV", "width_ns": "width_ns", "read_mV": "read_mV"}


class CellAccess(wiring.Component):
    """Runs the chip's cell commands on the array.

    A command starts only while ``enable`` is high (the core has no batch to run). PROGRAM strobes
    the pulse and waits out its ``width_ns``; READ strobes a read and, two cycles later, latches
    the array's ``read_g`` into ``cell.result`` and sets ``cell.valid``. ``busy`` is high while a
    command is in progress.
    """

    def __init__(self, config):
        self.config = config
        super().__init__({
            "cell": In(cell_port_signature()),
            "enable": In(1),
            "busy": Out(1),
            "array": Out(analog_array_subset(config, "strobe", "op", "read_g", *CELL_TO_ARRAY.values())),
        })

    def elaborate(self, platform):
        m = Module()
        cell, arr = self.cell, self.array
        for name, port in CELL_TO_ARRAY.items():
            m.d.comb += getattr(arr, port).eq(getattr(cell, name))
        read_q = arr.read_g                                # the array's read result, registered at the boundary (CimCore)
        ns_elapsed = Signal(17)
        ns_per_cycle = round(1e9 / self.config.clock_hz)

        with m.FSM(name="cell") as fsm:
            with m.State("IDLE"):
                with m.If(self.enable & cell.program):
                    m.d.comb += [arr.strobe.eq(1), arr.op.eq(AnalogOp.PROGRAM)]
                    m.d.sync += ns_elapsed.eq(0)
                    m.next = "PROGRAM"
                with m.Elif(self.enable & cell.read):
                    m.d.comb += [arr.strobe.eq(1), arr.op.eq(AnalogOp.READ)]
                    m.next = "READ"

            with m.State("PROGRAM"):
                # The pulse lasts width_ns; the controller waits it out.
                m.d.sync += ns_elapsed.eq(ns_elapsed + ns_per_cycle)
                with m.If(ns_elapsed + ns_per_cycle >= cell.width_ns):
                    m.next = "IDLE"

            with m.State("READ"):
                m.next = "READ_DONE"

            with m.State("READ_DONE"):
                m.d.sync += [cell.result.eq(read_q), cell.valid.eq(1)]
                m.next = "IDLE"

        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        return m
