"""What a link to a chip offers beyond the four word operations, declared, never probed.

Every link (the in-process fast model, the byte protocol over TCP or a UART) has ``read``,
``write``, ``write_burst`` and ``read_burst``. Some can do more; they say so in their
``capabilities``, and the host software uses exactly what is declared there:

* ``cycles`` — the chip's own clock-cycle count so far (a simulated chip knows it);
* ``mvm_stream`` — a whole stream of MVMs on one core as one transaction, equal in every output,
  counter and random draw to the frame sequence it stands for;
* ``mvm_segment`` — the same for a stream described compactly by a :class:`SegmentDrive`
  (which lines carry which input, which outputs come back) instead of full line vectors;
* ``cell_pulses`` / ``cell_reads`` — write-verify's per-cell register sequences, vectorised;
* ``write_verify_rows`` — the on-chip write-verify engine's operations over many row blocks as one
  transaction (each cell's draws are its own, so the order of cells does not matter);
* ``skip_mvms`` / ``add_events`` — a simulated chip copied into several worker processes
  (``Runtime.forward(workers=...)``): advance each core's MVM sequence (its random streams) as
  if MVMs had run elsewhere, and add the events those copies counted, so that the split run
  ends in the same state, with the same bits, as one process;
* ``test_access_program`` — a **test-access shortcut** of a simulated chip: it loads the
  conductances that write-verify would reach instead of programming cell by cell through the
  protocol. Off unless the user asks for it (``rtl:program=test-access``); what it skips is in
  README.md ("Test access").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["LinkCapabilities", "SegmentDrive"]


@dataclass(frozen=True, eq=False)
class SegmentDrive:
    """A stream of MVMs on one core, described by its inputs instead of full line vectors.

    Input line ``lines[r]`` carries column ``source[r]`` of the input codes, or ``constant`` where
    ``source[r]`` is -1 (a bias row held at a fixed code); every other line carries code 0. Only
    the output lines ``outputs`` (tracked neurons, ascending) come back. The stream means exactly
    the full vectors :meth:`full_codes` builds, whose outputs on ``outputs`` it returns.
    """
    lines: np.ndarray          # (R,) input lines driven
    source: np.ndarray         # (R,) the codes' column on each line, -1 for ``constant``
    constant: int
    outputs: np.ndarray        # (C,) output lines returned, ascending

    def full_codes(self, codes: np.ndarray, n_lines: int) -> np.ndarray:
        """The full (N, n_lines) input vectors this drive stands for."""
        codes = np.asarray(codes)
        full = np.zeros((codes.shape[0], n_lines), np.int64)
        src = np.asarray(self.source)
        full[:, np.asarray(self.lines)] = np.where(src >= 0, codes[:, np.maximum(src, 0)], self.constant)
        return full

    def tracked_mask(self, n_lines: int) -> np.ndarray:
        """The NEURON_MASK bits that track exactly ``outputs``."""
        mask = np.zeros(n_lines, bool)
        mask[np.asarray(self.outputs)] = True
        return mask


@dataclass(frozen=True)
class LinkCapabilities:
    #: () -> int: the chip's clock cycles so far.
    cycles: Callable[[], int] | None = None
    #: (core, codes, signed) -> output bytes (batch, lines).
    mvm_stream: Callable | None = None
    #: (core, codes, SegmentDrive, signed) -> output bytes (batch, outputs).
    mvm_segment: Callable | None = None
    #: ({core: MVMs}) -> None: advance each core's MVM sequence without running the MVMs.
    skip_mvms: Callable | None = None
    #: ({core: {counter: events}}, cycles) -> None: add events counted by a copy of the chip.
    add_events: Callable | None = None
    #: (core, rows, cols, polarity, amplitude_mV, width_ns, gate_mV) -> None.
    cell_pulses: Callable | None = None
    #: (core, rows, cols, read_mV) -> conductance codes.
    cell_reads: Callable | None = None
    #: (core, row, words) -> result words: the on-chip write-verify engine over consecutive row
    #: blocks from ``row`` (words row-major, whole rows), as that sequence of operations.
    write_verify_rows: Callable | None = None
    #: (core, rows, cols, targets_uS, write_verify_config) -> write-verify report (test access).
    test_access_program: Callable | None = None
