"""Write-verify: program RRAM cells to target conductances (docs/chip.md §3).

This module is the procedure's one description, executed three ways: the host's loop over the
single-cell registers (:func:`write_verify`, in µS), the fast model's on-chip engine and the RTL's
engine (``neurram.hdl.writeverify``), which both follow :func:`write_verify_codes` on 10 nS codes
and exchange per-cell targets and results as :func:`target_word` / :func:`unpack_result` words.

The algorithm is written once, over an abstract :class:`CellAccess` (read some cells, pulse some
cells), so that the host driver runs it through the chip's registers and the device model
(``neurram.models.device.RRAMArray.cell_access()``) runs it natively. Both see exactly the same
sequence of reads and pulses.

The loop follows the chip's test software ([R] ``python/wupdate_control.py``,
``program_increment`` and ``program_array``):

* read the cell; if the read is inside the accept window ``target ± g_tol`` confirm it with a second
  read (``confirm_reads`` reads in all must be inside) and stop;
* otherwise start a *round*: SET (BL pulse, WL at ``set_gate_V``) if the read is below the window,
  RESET (SL pulse, WL at ``reset_gate_V``) if above. A round starts at ``set_start_V`` /
  ``reset_start_V`` and raises the amplitude by ``step_V`` after every pulse up to
  ``set_stop_V`` / ``reset_stop_V``, then repeats pulses at the top amplitude;
* a round ends as soon as a read is no longer on the side it started from (inside the window,
  or overshot to the other side), and the next round starts from the start amplitude again;
* a cell fails when a round has spent ``max_pulses_per_round`` pulses at the top amplitude
  without crossing (as [R]'s ``max_pulse_limit``, which counts only top-amplitude pulses), or
  when it would need more than ``max_rounds`` rounds.

"Off" targets (below ``g_off_uS``) are handled as in [R]'s ``program_array``: the cell is accepted
as soon as it reads below ``g_off_uS`` and its RESET rounds start at ``off_reset_start_V``.

Vectorisation: every iteration applies one pulse to *every* cell that still needs one (each at its
own amplitude and polarity) and reads them all back, so ``pulse_cells``/``read_cells`` always carry
arrays. The per-cell decisions are exactly those of the sequential loop above; only the
interleaving between cells differs, and cells are independent.

Amplitudes travel as integer millivolts (the register unit); the ramp is done in integer mV so
that no floating-point drift can change the number of ramp steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Protocol, runtime_checkable

import numpy as np

from neurram.spec.enums import PulsePolarity, WvStatus

__all__ = ["SET", "RESET", "CellAccess", "WriteVerifyConfig", "WriteVerifyReport", "write_verify",
           "write_verify_codes", "FAIL_NONE", "FAIL_ROUNDS", "FAIL_TOP_PULSES", "WvStatus", "target_word",
           "unpack_targets", "result_word", "unpack_result", "G_LSB_uS", "uS_to_code", "WV_REGISTERS",
           "engine_config", "engine_fields", "wv_start_ok", "wv_fields"]

#: Pulse polarities (docs/chip.md §3): SET raises the conductance (BL pulse), RESET lowers it
#: (SL pulse). The register field's enum, under short names.
SET = PulsePolarity.SET
RESET = PulsePolarity.RESET

#: Failure reasons recorded per cell in :attr:`WriteVerifyReport.fail_reason`.
FAIL_NONE = 0          # converged
FAIL_ROUNDS = 1        # would need more than ``max_rounds`` rounds
FAIL_TOP_PULSES = 2    # a round spent ``max_pulses_per_round`` pulses at the top amplitude


@runtime_checkable
class CellAccess(Protocol):
    """What write-verify needs from a chip or a device model. All arguments are 1-D arrays of
    equal length (one entry per cell); a cell appears at most once per call."""

    def read_cells(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Measured conductances in µS (one fresh read per cell)."""
        ...

    def pulse_cells(self, rows: np.ndarray, cols: np.ndarray, polarity: np.ndarray,
                    amplitude_mV: np.ndarray, width_ns: np.ndarray, gate_mV: np.ndarray) -> None:
        """One programming pulse per cell; polarity a PulsePolarity (SET or RESET)."""
        ...


@dataclass(frozen=True)
class WriteVerifyConfig:
    """Write-verify settings. Defaults are docs/chip.md §3 values from [R]
    (``python/wupdate_control.py``: ``program_array`` / ``program_increment``)."""

    #: Half-width of the accept window, µS (docs/chip.md §3: target ± 1 µS; [R] ``g_tol``).
    g_tol_uS: float = 1.0
    #: First SET amplitude of a round, V (docs/chip.md §3: 1.2-2.0 V; [R] ``vset_start=1.2``).
    set_start_V: float = 1.2
    #: Top SET amplitude, V (docs/chip.md §3: 3.3-4.0 V; [R] ``end_voltage=3.3``).
    set_stop_V: float = 3.3
    #: First RESET amplitude of a round, V (docs/chip.md §3: 1.2-2.5 V; [R] ``vreset_start=1.2``).
    reset_start_V: float = 1.2
    #: Top RESET amplitude, V (docs/chip.md §3: 3.3-4.0 V; [R] ``end_voltage=3.3``).
    reset_stop_V: float = 3.3
    #: Amplitude increment per pulse within a round, V (docs/chip.md §3: +0.1 V).
    step_V: float = 0.1
    #: Pulse width, ns (docs/chip.md §3: 1 µs; 100 ns in the incremental variant).
    width_ns: int = 1000
    #: WL (gate) voltage during SET, sets the compliance, V (docs/chip.md §3: 2.5-3.0 V;
    #: [R] ``program_array`` default ``vset_wl=2.5``).
    set_gate_V: float = 2.5
    #: WL (gate) voltage during RESET, V (docs/chip.md §3: 5 V).
    reset_gate_V: float = 5.0
    #: Most SET or RESET rounds per cell (docs/chip.md §3: 20-50 rounds). One round here is one
    #: polarity ramp; an iteration of [R]'s ``program_increment`` holds a RESET and a SET ramp,
    #: so its ``iteration_limit=20`` allows about 40 of these rounds.
    max_rounds: int = 40
    #: Pulses at the top amplitude after which a round gives up and the cell fails
    #: (docs/chip.md §3: "repeat at the top up to 30 pulses"; [R] ``max_pulse_limit=30``, which counts
    #: only top-amplitude pulses, so a full round is 21 ramp pulses + 30 top pulses).
    max_pulses_per_round: int = 30
    #: Reads in the window needed to accept a cell (docs/chip.md §3: confirmed by a second read).
    confirm_reads: int = 2
    #: Targets below this are "off" cells: accepted when a read is below it, µS (docs/chip.md §3:
    #: "off" cells below 1 µS; [R] ``program_array`` branch ``G < g_min``). 0 disables.
    g_off_uS: float = 1.0
    #: First RESET amplitude for "off" targets, V (docs/chip.md §3 upper start 2.5 V;
    #: [R] ``vreset_start=2.5`` in the ``G < g_min`` branch).
    off_reset_start_V: float = 2.5

    def __post_init__(self):
        problems = []
        for name in ("g_tol_uS", "set_start_V", "set_stop_V", "reset_start_V", "reset_stop_V",
                     "step_V", "width_ns", "set_gate_V", "reset_gate_V", "off_reset_start_V"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                problems.append(f"{name}={v!r} must be a positive finite number")
        if not (np.isfinite(self.g_off_uS) and self.g_off_uS >= 0):
            problems.append(f"g_off_uS={self.g_off_uS!r} must be >= 0")
        if self.set_stop_V < self.set_start_V:
            problems.append(f"set_stop_V={self.set_stop_V} is below set_start_V={self.set_start_V}")
        if self.reset_stop_V < max(self.reset_start_V, 0):
            problems.append(f"reset_stop_V={self.reset_stop_V} is below reset_start_V={self.reset_start_V}")
        if self.reset_stop_V < self.off_reset_start_V:
            problems.append(f"reset_stop_V={self.reset_stop_V} is below off_reset_start_V={self.off_reset_start_V}")
        for name in ("max_rounds", "max_pulses_per_round", "confirm_reads"):
            v = getattr(self, name)
            if int(v) != v or v < 1:
                problems.append(f"{name}={v!r} must be an integer >= 1")
        if problems:
            raise ValueError("WriteVerifyConfig: " + "; ".join(problems))

    def mV(self, volts: float) -> int:
        return int(round(volts * 1000.0))


@dataclass
class WriteVerifyReport:
    """Outcome of one write-verify pass (one entry per cell, in the order given)."""
    rows: np.ndarray
    cols: np.ndarray
    #: Target conductances, µS.
    targets: np.ndarray
    #: Last read of each cell, µS (the confirming read for converged cells).
    final_g: np.ndarray
    #: Cells accepted inside the window (confirmed).
    converged: np.ndarray
    #: Programming pulses applied to each cell (SET + RESET).
    pulses: np.ndarray
    #: SET and RESET pulses, and rounds (polarity ramps) started, per cell; None from the on-chip
    #: engine, whose result words carry only the total.
    set_pulses: np.ndarray | None
    reset_pulses: np.ndarray | None
    rounds: np.ndarray | None
    #: Why a cell failed: FAIL_NONE, FAIL_ROUNDS or FAIL_TOP_PULSES.
    fail_reason: np.ndarray
    #: Total cell reads issued and vectorised iterations run.
    reads: int = 0
    iterations: int = 0
    config: WriteVerifyConfig = field(default_factory=WriteVerifyConfig)

    @property
    def n_cells(self) -> int:
        return int(self.targets.size)

    @property
    def n_unconverged(self) -> int:
        return int((~self.converged).sum())

    @property
    def unconverged_fraction(self) -> float:
        return self.n_unconverged / max(self.n_cells, 1)

    @property
    def unconverged(self) -> list[tuple[int, int, float, float]]:
        """(row, col, target µS, last read µS) of every cell that did not converge."""
        idx = np.flatnonzero(~self.converged)
        return [(int(self.rows[i]), int(self.cols[i]), float(self.targets[i]), float(self.final_g[i]))
                for i in idx]

    def pulse_histogram(self, bins=None) -> tuple[np.ndarray, np.ndarray]:
        """(counts, bin_edges) of pulses per cell. Default bins: 0, 1, 2-3, 4-7, ... (powers of 2)."""
        if bins is None:
            top = max(int(self.pulses.max(initial=0)), 1)
            edges = [0, 1]
            while edges[-1] <= top:
                edges.append(edges[-1] * 2)
            bins = np.array(edges)
        return np.histogram(self.pulses, bins=bins)

    def pulse_percentiles(self, q=(50, 90, 99, 100)) -> dict:
        return {int(p): float(np.percentile(self.pulses, p)) for p in q} if self.n_cells else {}

    def summary(self) -> str:
        n = self.n_cells
        split = ("" if self.set_pulses is None else
                 f" (SET {int(self.set_pulses.sum())}, RESET {int(self.reset_pulses.sum())})")
        lines = [f"write-verify: {n} cells, {n - self.n_unconverged} converged, "
                 f"{self.n_unconverged} unconverged ({100 * self.unconverged_fraction:.3f} %)",
                 f"  pulses: total {int(self.pulses.sum())}{split}, mean {self.pulses.mean() if n else 0:.2f} "
                 f"per cell; reads {self.reads}; iterations {self.iterations}"]
        if n:
            pc = self.pulse_percentiles()
            lines.append("  pulses per cell percentiles: " + ", ".join(f"p{k} {v:g}" for k, v in pc.items()))
            if self.rounds is not None:
                lines.append(f"  rounds per cell: mean {self.rounds.mean():.2f}, max {int(self.rounds.max())}")
            counts, edges = self.pulse_histogram()
            lines.append("  pulses per cell histogram:")
            for c, lo, hi in zip(counts, edges[:-1], edges[1:]):
                label = f"{int(lo)}" if hi - lo == 1 else f"{int(lo)}-{int(hi) - 1}"
                lines.append(f"    {label:>9}: {int(c):7d}  ({100 * c / n:6.2f} %)")
        fails = self.unconverged
        if fails:
            nr = int((self.fail_reason == FAIL_ROUNDS).sum())
            nt = int((self.fail_reason == FAIL_TOP_PULSES).sum())
            lines.append(f"  failures: {nr} out of rounds, {nt} out of top-amplitude pulses")
            for r, c, t, g in fails[:10]:
                lines.append(f"    cell ({r}, {c}): target {t:.2f} µS, last read {g:.2f} µS")
            if len(fails) > 10:
                lines.append(f"    ... and {len(fails) - 10} more")
        return "\n".join(lines)


def _as_index(a, name) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind not in "iu":
        if a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.rint(a)):
            a = a.astype(np.int64)
        else:
            raise ValueError(f"write_verify: {name} must be integer cell indices")
    if (a < 0).any():
        raise ValueError(f"write_verify: {name} must be non-negative")
    return a.astype(np.int64)


def write_verify(cells: CellAccess, rows, cols, targets_uS,
                 config: WriteVerifyConfig = WriteVerifyConfig(),
                 progress: Optional[Callable[[int, int, int], None]] = None) -> WriteVerifyReport:
    """Program ``cells[rows, cols]`` to ``targets_uS`` with write-verify; see the module docstring.

    ``rows``, ``cols`` and ``targets_uS`` broadcast together and are flattened (C order). Every
    cell may appear once. ``progress(iteration, cells_done, cells_total)`` is called after every
    iteration. Returns a :class:`WriteVerifyReport`; the cells' conductances are changed in place.
    """
    rows = _as_index(rows, "rows")
    cols = _as_index(cols, "cols")
    targets = np.asarray(targets_uS, dtype=np.float64)
    rows, cols, targets = (np.ascontiguousarray(x).ravel() for x in np.broadcast_arrays(rows, cols, targets))
    targets = targets.copy()
    if not np.all(np.isfinite(targets)):
        bad = int(np.flatnonzero(~np.isfinite(targets))[0])
        raise ValueError(f"write_verify: target of cell ({rows[bad]}, {cols[bad]}) is {targets[bad]!r}, "
                         "not a finite conductance")
    if (targets < 0).any():
        bad = int(np.flatnonzero(targets < 0)[0])
        raise ValueError(f"write_verify: target of cell ({rows[bad]}, {cols[bad]}) is negative "
                         f"({targets[bad]} µS)")
    n = targets.size
    if n:
        key = (rows << 32) | cols
        uniq = np.unique(key)
        if uniq.size != n:
            raise ValueError("write_verify: a cell appears more than once in rows/cols")

    cfg = config
    tol = float(cfg.g_tol_uS)
    off = targets < cfg.g_off_uS
    lo = np.where(off, -np.inf, targets - tol)
    hi = np.where(off, cfg.g_off_uS, targets + tol)
    return _write_verify_windows(cells, rows, cols, targets, lo, hi, off, cfg, progress)


def _write_verify_windows(cells, rows, cols, targets, lo, hi, off, cfg, progress) -> WriteVerifyReport:
    """The loop of the module docstring over accept windows [lo, hi] in the unit of the reads."""
    n = targets.size
    # Integer millivolts for every amplitude.
    step = cfg.mV(cfg.step_V)
    set_start, set_stop = cfg.mV(cfg.set_start_V), cfg.mV(cfg.set_stop_V)
    reset_start = np.where(off, cfg.mV(cfg.off_reset_start_V), cfg.mV(cfg.reset_start_V)).astype(np.int64)
    reset_stop = cfg.mV(cfg.reset_stop_V)
    gate = np.array([cfg.mV(cfg.set_gate_V), cfg.mV(cfg.reset_gate_V)], dtype=np.int64)
    stop_of = np.array([set_stop, reset_stop], dtype=np.int64)
    width = int(round(cfg.width_ns))

    pulses = np.zeros(n, np.int64)
    set_pulses = np.zeros(n, np.int64)
    reset_pulses = np.zeros(n, np.int64)
    rounds = np.zeros(n, np.int64)
    fail_reason = np.zeros(n, np.int8)
    converged = np.zeros(n, bool)
    done = np.zeros(n, bool)
    in_round = np.zeros(n, bool)
    pol = np.zeros(n, np.int64)
    amp = np.zeros(n, np.int64)
    top = np.zeros(n, np.int64)

    g = np.zeros(n, np.float64)
    reads = 0
    if n:
        g[:] = cells.read_cells(rows, cols)
        reads += n
    active = np.arange(n)
    iteration = 0
    # Hard bound on iterations (cannot be reached: every round ends within ramp + top pulses).
    ramp_max = max(set_stop - set_start, reset_stop - int(reset_start.min(initial=reset_stop))) // max(step, 1) + 2
    limit = (cfg.max_rounds + 1) * (ramp_max + cfg.max_pulses_per_round + cfg.confirm_reads + 1) + 10
    while active.size:
        iteration += 1
        if iteration > limit:  # pragma: no cover - defensive
            raise RuntimeError("write_verify: iteration bound exceeded (internal error)")
        # 1. Cells whose last read is inside the window: confirm with further reads.
        ga = g[active]
        inwin = (ga >= lo[active]) & (ga <= hi[active])
        cand = active[inwin]
        if cand.size:
            in_round[cand] = False          # a round ends when its cell reaches the window
            ok = np.ones(cand.size, bool)
            for _ in range(cfg.confirm_reads - 1):
                pos = np.flatnonzero(ok)
                if pos.size == 0:
                    break
                idx = cand[pos]
                r = np.asarray(cells.read_cells(rows[idx], cols[idx]), dtype=np.float64)
                reads += idx.size
                g[idx] = r
                ok[pos[~((r >= lo[idx]) & (r <= hi[idx]))]] = False
            acc = cand[ok]
            converged[acc] = True
            done[acc] = True
        act = active[~done[active]]
        # 2. Decide each remaining cell's pulse.
        if act.size:
            want = np.where(g[act] < lo[act], SET, RESET)
            new = ~in_round[act] | (pol[act] != want)
            cont = act[~new]
            # A continuing round that has used all its top-amplitude pulses fails the cell.
            spent = cont[top[cont] >= cfg.max_pulses_per_round]
            if spent.size:
                done[spent] = True
                fail_reason[spent] = FAIL_TOP_PULSES
            starting = act[new]
            if starting.size:
                rounds[starting] += 1
                over = starting[rounds[starting] > cfg.max_rounds]
                if over.size:
                    done[over] = True
                    fail_reason[over] = FAIL_ROUNDS
                    rounds[over] -= 1          # that round was never started
                starting = starting[~done[starting]]
                p = want[new][~done[act[new]]]
                pol[starting] = p
                amp[starting] = np.where(p == SET, set_start, reset_start[starting])
                top[starting] = 0
                in_round[starting] = True
            go = act[~done[act]]
            if go.size:
                pg = pol[go]
                cells.pulse_cells(rows[go], cols[go], pg.copy(), amp[go].copy(),
                                  np.full(go.size, width, np.int64), gate[pg])
                pulses[go] += 1
                is_set = pg == SET
                set_pulses[go[is_set]] += 1
                reset_pulses[go[~is_set]] += 1
                stop = stop_of[pg]
                at_top = amp[go] >= stop
                top[go] += at_top
                amp[go] = np.where(at_top, amp[go], np.minimum(amp[go] + step, stop))
                g[go] = np.asarray(cells.read_cells(rows[go], cols[go]), dtype=np.float64)
                reads += go.size
        active = active[~done[active]]
        if progress is not None:
            progress(iteration, int(done.sum()), n)

    return WriteVerifyReport(rows=rows, cols=cols, targets=targets, final_g=g, converged=converged,
                             pulses=pulses, set_pulses=set_pulses, reset_pulses=reset_pulses,
                             rounds=rounds, fail_reason=fail_reason, reads=reads,
                             iterations=iteration, config=cfg)



# -- the on-chip engine: 10 nS codes and the words of the WV_CELLS buffer ------------------------

#: Conductance code unit, µS (CELL_RESULT.g_10nS and the engine's words: 10 nS per LSB).
G_LSB_uS = 0.01
#: Bit fields of a WV_CELLS word (lsb, width). Written by the host: the target; replaced by the
#: engine with the result once the cell is done (its PENDING bit then reads 0).
TARGET_FIELDS = {"g_10nS": (0, 16), "tol_10nS": (16, 8), "pending": (31, 1)}
RESULT_FIELDS = {"g_10nS": (0, 16), "pulses": (16, 12), "status": (28, 2)}


def uS_to_code(g_uS) -> np.ndarray:
    """Conductances in µS as 16-bit codes of 10 nS (rounded, saturated)."""
    return np.clip(np.rint(np.asarray(g_uS, np.float64) / G_LSB_uS), 0, 0xFFFF).astype(np.int64)


def _pack(fields: dict, **values) -> np.ndarray:
    word = np.zeros(np.broadcast(*values.values()).shape, np.uint32)
    for name, v in values.items():
        lsb, width = fields[name]
        word |= (np.minimum(np.asarray(v, np.int64), (1 << width) - 1).astype(np.uint32) << np.uint32(lsb))
    return word


def _unpack(fields: dict, words) -> dict:
    w = np.asarray(words, np.uint32)
    return {name: ((w >> np.uint32(lsb)) & np.uint32((1 << width) - 1)).astype(np.int64)
            for name, (lsb, width) in fields.items()}


def target_word(g_10nS, tol_10nS, pending=1) -> np.ndarray:
    """WV_CELLS words asking the engine to program cells to ``g_10nS`` ± ``tol_10nS``."""
    return _pack(TARGET_FIELDS, g_10nS=g_10nS, tol_10nS=tol_10nS, pending=pending)


def unpack_targets(words) -> dict:
    return _unpack(TARGET_FIELDS, words)


def result_word(g_10nS, pulses, status) -> np.ndarray:
    """The engine's result words: last read, pulses applied (saturating at 4095), WvStatus."""
    return _pack(RESULT_FIELDS, g_10nS=g_10nS, pulses=pulses, status=status)


def unpack_result(words) -> dict:
    return _unpack(RESULT_FIELDS, words)


#: The engine's registers; their fields have distinct names, merged by :func:`wv_fields`.
WV_REGISTERS = ("WV_SET", "WV_RESET", "WV_GATE", "WV_LIMITS", "WV_OFF")


def wv_fields(read_fields) -> dict:
    """Every field of the engine's registers, one dict: ``read_fields(name)`` unpacks a register."""
    out = {}
    for name in WV_REGISTERS:
        out.update(read_fields(name))
    return out


def wv_start_ok(f, config, row, read_mV, width_ns):
    """Whether CTRL.wv_start runs: the operation's rows fit the array and the buffer, and the
    registers describe a procedure :class:`WriteVerifyConfig` accepts (every voltage, step, width
    and budget positive, every ramp's top at or above its start). ``f`` has the fields of
    :data:`WV_REGISTERS` as attributes, plain integers or Amaranth values (then the result is a
    1-bit value), as :func:`neurram.spec.mvm.start_ok`."""
    if not config.wv_engine:                   # a chip built without the engine (ChipConfig)
        return False
    return ((f.rows >= 1) & (f.rows <= config.wv_rows) & (row + f.rows <= config.rows)
            & (f.step_mV >= 1) & (f.max_rounds >= 1) & (f.max_top_pulses >= 1) & (f.confirm_reads >= 1)
            & (f.set_start_mV >= 1) & (f.set_stop_mV >= f.set_start_mV)
            & (f.reset_start_mV >= 1) & (f.reset_stop_mV >= f.reset_start_mV)
            & (f.off_start_mV >= 1) & (f.reset_stop_mV >= f.off_start_mV)
            & (f.set_gate_mV >= 1) & (f.reset_gate_mV >= 1) & (read_mV >= 1) & (width_ns >= 1))


def engine_fields(config: WriteVerifyConfig) -> dict:
    """The engine's register fields ({register: {field: value}}) that run ``config`` (the inverse
    of :func:`engine_config`; WV_LIMITS.rows is the operation's and not set here)."""
    mV = config.mV
    return {"WV_SET": {"set_start_mV": mV(config.set_start_V), "set_stop_mV": mV(config.set_stop_V),
                       "step_mV": mV(config.step_V)},
            "WV_RESET": {"reset_start_mV": mV(config.reset_start_V), "reset_stop_mV": mV(config.reset_stop_V)},
            "WV_GATE": {"set_gate_mV": mV(config.set_gate_V), "reset_gate_mV": mV(config.reset_gate_V)},
            "WV_LIMITS": {"max_rounds": config.max_rounds, "max_top_pulses": config.max_pulses_per_round,
                          "confirm_reads": config.confirm_reads},
            "WV_OFF": {"off_start_mV": mV(config.off_reset_start_V),
                       "g_off_10nS": int(uS_to_code(config.g_off_uS))}}


def engine_config(fields: dict, width_ns: int) -> WriteVerifyConfig:
    """The WriteVerifyConfig the engine runs from its registers' fields (:func:`wv_fields`) and
    CELL_TIMING.width_ns (the per-cell tolerance comes with each target instead of g_tol_uS)."""
    f = fields
    return WriteVerifyConfig(
        g_tol_uS=1.0,                      # per cell in the engine (the target words)
        set_start_V=f["set_start_mV"] / 1000, set_stop_V=f["set_stop_mV"] / 1000,
        reset_start_V=f["reset_start_mV"] / 1000, reset_stop_V=f["reset_stop_mV"] / 1000,
        step_V=f["step_mV"] / 1000, width_ns=width_ns,
        set_gate_V=f["set_gate_mV"] / 1000, reset_gate_V=f["reset_gate_mV"] / 1000,
        max_rounds=f["max_rounds"], max_pulses_per_round=f["max_top_pulses"],
        confirm_reads=f["confirm_reads"], g_off_uS=f["g_off_10nS"] * G_LSB_uS,
        off_reset_start_V=f["off_start_mV"] / 1000)


def write_verify_codes(cells: CellAccess, rows, cols, g_10nS, tol_10nS,
                       config: WriteVerifyConfig = WriteVerifyConfig()) -> WriteVerifyReport:
    """The on-chip engine's procedure: :func:`write_verify`'s loop with every comparison on
    integer 10 nS codes. ``cells.read_cells`` returns codes (as CELL_RESULT); windows are
    ``g ± tol`` per cell, or ``[0, g_off]`` for targets below ``config.g_off_uS``. The report's
    ``targets`` and ``final_g`` are codes."""
    rows = _as_index(rows, "rows")
    cols = _as_index(cols, "cols")
    rows, cols, g, tol = (np.ascontiguousarray(x).ravel().astype(np.int64)
                          for x in np.broadcast_arrays(rows, cols, g_10nS, tol_10nS))
    off = g < int(uS_to_code(config.g_off_uS))
    lo = np.where(off, -1, g - tol)
    hi = np.where(off, int(uS_to_code(config.g_off_uS)), g + tol)
    return _write_verify_windows(cells, rows, cols, g.astype(np.float64), lo, hi, off, config, None)

