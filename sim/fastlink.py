"""Links to the fast chip model: in-process (arrays as payloads) and byte-level.

:class:`FastLink` gives the driver the same four word operations as a protocol link, with the
protocol engine's checks and error replies (``ProtocolError`` with the same status codes), but
passes bursts as numpy arrays instead of serialised bytes (docs/architecture.md, contract 3). It also
offers two bulk transactions the driver uses when present:

* ``mvm_stream(core, codes, signed)``: the sequence {write INPUT, write BATCH, CTRL.start, read
  OUTPUT} over as many hardware batches as the codes need, computed as one vectorised call. The
  outputs, counters, buffers, registers and random draws equal those of the frame sequence
  (tests/test_fastmodel.py holds them equal).
* ``mvm_segment(core, codes, drive, signed)``: the same for compact codes and a
  :class:`~neurram.spec.link.SegmentDrive`; only the driven lines and tracked outputs are
  computed (the segment path of the runtime).
* ``cell_pulses`` / ``cell_reads``: the per-cell register sequences of write-verify, vectorised.
  Noise-free they equal the cell-by-cell frames; with noise the device model draws the same
  distributions in another order.

:class:`neurram.sim.fastmodel.ChipProtocolEngine` is the byte-level chip end (``FastChip.handle_bytes``).
"""

import numpy as np

from neurram.spec.link import LinkCapabilities
from neurram.spec.protocol import AddressMap, DEFAULT_MAX_WORDS, LinkStatus, ProtocolError, Status, split_address

from .fastmodel import FastChip

__all__ = ["FastLink", "open_fast_chip"]


class FastLink:
    def __init__(self, chip: FastChip, max_words: int = DEFAULT_MAX_WORDS):
        self.chip = chip
        self.max_words = max_words
        self.capabilities = LinkCapabilities(cycles=lambda: self.chip.cycles, mvm_stream=self.mvm_stream,
                                             mvm_segment=self.mvm_segment, cell_pulses=self.cell_pulses,
                                             cell_reads=self.cell_reads, skip_mvms=chip.skip_mvms,
                                             write_verify_rows=self.write_verify_rows,
                                             add_events=chip.add_events)
        self.address_map = AddressMap.from_config(chip.config)
        self.frames = 0            # frames the equivalent byte protocol would have carried
        self.frames_bad = 0

    def _check(self, addr: int, n: int, write: bool, what: str) -> None:
        # The same argument errors as the byte protocol's link (firmware.protocol.Link).
        if not 0 <= int(addr) <= 0xFFFFFFFF:
            raise ValueError(f"address 0x{int(addr):x} does not fit in 32 bits")
        if int(n) < 0:
            raise ValueError(f"count {n} is negative")
        if not self.address_map.in_range(addr, n, write=write):
            self.frames_bad += 1
            raise ProtocolError(Status.ADDR_RANGE, f"{what} refused by the chip: address out of range at "
                                                   f"{self.address_map.describe(addr)} ({n} words)")

    # -- the four word operations ------------------------------------------------------------------
    def read(self, addr: int) -> int:
        self._check(addr, 1, False, "READ")
        self.frames += 1
        return self.chip.read(addr)

    def write(self, addr: int, data: int) -> None:
        if not 0 <= int(data) <= 0xFFFFFFFF:
            raise ValueError(f"data 0x{int(data):x} does not fit in 32 bits")
        self._check(addr, 1, True, "WRITE")
        self.frames += 1
        self.chip.write(addr, int(data) & 0xFFFFFFFF)

    def write_burst(self, addr: int, words) -> None:
        words = np.asarray(words, np.uint32).reshape(-1)
        self._check(addr, words.size, True, "WRITE_BURST")
        self.frames += -(-words.size // self.max_words)
        space, core, offset = split_address(addr)
        if space == 0:
            for i, w in enumerate(words):
                self.chip.write(addr + i, int(w))
        else:
            self.chip.write_buffer(space, core, offset, words)

    def read_burst(self, addr: int, count: int) -> np.ndarray:
        self._check(addr, count, False, "READ_BURST")
        self.frames += -(-count // self.max_words)
        space, core, offset = split_address(addr)
        if space == 0:
            return np.asarray([self.chip.read(addr + i) for i in range(count)], np.uint32)
        return self.chip.read_buffer(space, core, offset, count)

    def status(self) -> LinkStatus:
        return LinkStatus(self.frames & 0xFFFF, self.frames_bad & 0xFFFF, Status.OK, self.max_words)

    # -- bulk transactions ----------------------------------------------------------------------------
    def mvm_stream(self, core: int, codes: np.ndarray, signed: bool) -> np.ndarray:
        out = self.chip.stream_batches(core, codes, signed)
        depth = self.chip.config.batch_depth
        # frames of the equivalent sequence: inputs, BATCH, CTRL, one STATUS poll, outputs
        self.frames += 5 * -(-codes.shape[0] // depth)
        return out

    def mvm_segment(self, core: int, codes: np.ndarray, drive, signed: bool) -> np.ndarray:
        out = self.chip.stream_segment(core, codes, drive, signed)
        self.frames += 5 * -(-codes.shape[0] // self.chip.config.batch_depth)
        return out

    def cell_pulses(self, core, rows, cols, polarity, amplitude_mV, width_ns, gate_mV) -> None:
        self.frames += 4 * len(rows)
        self.chip.cell_pulses(core, rows, cols, polarity, amplitude_mV, width_ns, gate_mV)

    def cell_reads(self, core, rows, cols, read_mV) -> np.ndarray:
        self.frames += 4 * len(rows)
        return self.chip.cell_reads(core, rows, cols, read_mV)

    def write_verify_rows(self, core: int, row: int, words) -> np.ndarray:
        # frames per operation: targets, CELL_ADDR, WV_LIMITS, CTRL, one STATUS poll, results
        self.frames += 6 * -(-(np.size(words) // self.chip.config.cols) // self.chip.config.wv_rows)
        return self.chip.write_verify_rows(core, row, words)


    def close(self) -> None:
        """Clean shutdown: a chip with a state file writes it (sim/state.py)."""
        self.chip.close()


def open_fast_chip(config=None, params=None, seed: int = 0, age_s: float = 0.0, state_path=None) -> FastLink:
    return FastLink(FastChip(config, params=params, seed=seed, age_s=age_s, state_path=state_path))
