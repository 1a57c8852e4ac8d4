"""What a link to a chip offers beyond the four word operations, declared, never probed.

Every link (the in-process fast model, the byte protocol over TCP or a UART) has ``read``,
``write``, ``write_burst`` and ``read_burst``. Some can do more; they say so in their
``capabilities``, and the host software uses exactly what is declared there:

* ``cycles`` — the chip's own clock-cycle count so far (a simulated chip knows it);
* ``mvm_stream`` — a whole stream of MVMs on one core as one transaction, equal in every output,
  counter and random draw to the frame sequence it stands for;
* ``cell_pulses`` / ``cell_reads`` — write-verify's per-cell register sequences, vectorised;
* ``test_access_program`` — a **test-access shortcut** of a simulated chip: it loads the
  conductances that write-verify would reach instead of programming cell by cell through the
  protocol. Off unless the user asks for it (``rtl:program=test-access``); what it skips is in
  README.md ("Test access").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

__all__ = ["LinkCapabilities"]


@dataclass(frozen=True)
class LinkCapabilities:
    #: () -> int: the chip's clock cycles so far.
    cycles: Callable[[], int] | None = None
    #: (core, codes, signed) -> output bytes (batch, lines).
    mvm_stream: Callable | None = None
    #: (core, rows, cols, polarity, amplitude_mV, width_ns, gate_mV) -> None.
    cell_pulses: Callable | None = None
    #: (core, rows, cols, read_mV) -> conductance codes.
    cell_reads: Callable | None = None
    #: (core, rows, cols, targets_uS, write_verify_config) -> write-verify report (test access).
    test_access_program: Callable | None = None
