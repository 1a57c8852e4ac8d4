"""Run a mapped network on a chip, layer by layer.

The runtime programs every core's conductances by write-verify, then runs inference: each weight
layer's input codes (im2col patches for convolutions) go through the chip as MVM streams, one
stream per segment, described compactly (which rows carry which input, which columns come back:
:class:`~neurram.spec.link.SegmentDrive`); outputs come back as charge-decrement bytes, are
decoded through a per-column table built from each column's scale (from the conductances the
chip reports back, or from a calibration), partial sums of a split layer are added, and
activation and max-pool run on the host, where the paper ran them.
"""

import multiprocessing
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from . import nn
from neurram.spec import regmap as R
from neurram.spec.link import SegmentDrive
from neurram.spec.mvm import MvmSettings, decode_output

from .driver import Chip
from .calibration import SegmentDecoder, calibrate_runtime
from .mapper import Mapping, charge_per_unit, map_network
from .writeverify import WriteVerifyConfig, WriteVerifyReport

__all__ = ["Runtime", "LayerStats", "RunResult", "progress_bar"]


def progress_bar(total: int, desc: str = "", enabled: bool = True):
    """A minimal text progress bar on stderr (no dependency); returns update(n) and close()."""
    state = {"n": 0, "t0": time.perf_counter(), "last": 0.0}

    def update(n: int = 1):
        state["n"] += n
        now = time.perf_counter()
        if not enabled or (now - state["last"] < 0.2 and state["n"] < total):
            return
        state["last"] = now
        frac = state["n"] / max(total, 1)
        rate = state["n"] / max(now - state["t0"], 1e-9)
        bar = "#" * int(30 * frac)
        sys.stderr.write(f"\r{desc} [{bar:<30}] {state['n']}/{total} {rate:,.1f}/s")
        sys.stderr.flush()

    def close():
        if enabled:
            sys.stderr.write("\n")

    update.close = close
    return update


@dataclass
class LayerStats:
    name: str
    mvms: int = 0
    seconds: float = 0.0
    cores: tuple = ()
    counters: dict = field(default_factory=dict)


@dataclass
class RunResult:
    logits: np.ndarray
    predictions: np.ndarray
    seconds: float
    layers: list
    chip_cycles: int | None = None
    captured: np.ndarray | None = None     # forward(capture=NAME): the input codes of layer NAME

    def accuracy(self, labels) -> float:
        return float(np.mean(self.predictions == np.asarray(labels)))


def join_worker(child, what: str):
    """The payload a forked worker ``(process, pipe end)`` sent as ``("ok", payload)``; a worker
    that sent ``("error", text)`` or died raises RuntimeError naming ``what``."""
    p, recv = child
    try:
        status, payload = recv.recv()
    except EOFError:
        status, payload = "error", f"worker process exited with code {p.exitcode}"
    p.join()
    if status == "error":
        raise RuntimeError(f"{what} failed: {payload}")
    return payload


def optional_pyplot():
    """matplotlib.pyplot on the Agg backend, or None when matplotlib is not installed (plots are
    an optional extra: pip install 'neurram[plot]')."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        return plt
    except ImportError:
        return None


class Runtime:
    def __init__(self, chip: Chip, mapping: Mapping):
        self.chip = chip
        self.mapping = mapping
        self.reports = {}
        #: per (layer, segment): the SegmentDecoder of its outputs (nominal from the read-back
        #: conductances after programming; measured by :meth:`calibrate`)
        self.decoders = {}
        self._drives = {}
        self._tables = {}

    # -- programming -----------------------------------------------------------------------------
    def program(self, progress: bool = True, write_verify_config=None, repair: bool = True):
        """Program every used core by write-verify; decode scales from the read-back conductances.

        With ``repair``, rows holding cells that failed to program (unformed or leaky cells) go
        into a bad-row table and the network is mapped again onto spare rows, then programmed
        again (docs/chip.md §3: per-die bad-row tables, spare rows swapped in)."""
        self._program_once(progress, write_verify_config)
        for _ in range(8 if repair else 0):            # spare rows can hold bad cells too: a stuck cell
            # shows only once a weight needs it, so each remapping can find a few more
            bad = self.bad_rows(write_verify_config)
            known = self.mapping.bad_rows
            if all(bad.get(c, set()) <= known.get(c, set()) for c in bad):
                break
            merged = {c: set(known.get(c, set())) | set(bad.get(c, set())) for c in set(known) | set(bad)}
            self.mapping = map_network(self.mapping.net, self.chip.config, bad_rows=merged, **self.mapping.options)
            self._program_once(progress, write_verify_config)
        return self.reports

    def bad_rows(self, write_verify_config=None) -> dict:
        """{core: rows} holding a cell that missed its target by more than twice the tolerance
        (a failed cell that would corrupt a weight, not a near miss)."""
        tol = (write_verify_config or WriteVerifyConfig()).g_tol_uS
        out = {}
        for core, rep in self.reports.items():
            miss = ~rep.converged & (np.abs(rep.final_g - rep.targets) > 2 * tol)
            rows = set(map(int, np.asarray(rep.rows)[miss]))
            if rows:
                out[core] = rows
        return out

    def _program_once(self, progress, write_verify_config):
        m = self.mapping
        cores = m.cores_used
        cfg = write_verify_config or WriteVerifyConfig()
        self.chip.enable_cores(cores)
        cells = {}
        for core in cores:
            target = m.targets(core)
            used_cols = np.flatnonzero(target.any(axis=0))
            rows, cols = np.meshgrid(np.arange(m.rows), used_cols, indexing="ij")
            cells[core] = (target[rows, cols].reshape(-1), rows.reshape(-1), cols.reshape(-1))
        # A later pass (bad-row repair, or program() again) programs only the cells whose target
        # changed or that did not converge; the others keep their verified state.
        keep = {core: self._still_verified(core, *cells[core]) for core in cores}
        todo = {core: tuple(a[~keep[core]] for a in cells[core]) for core in cores}
        total = sum(t.size for t, _, _ in todo.values())
        bar = progress_bar(total, "programming cells", progress)
        test_access = self.chip.link.capabilities.test_access_program
        if test_access is not None:
            # A simulated chip opened with test access: it loads the write-verified state
            # instead of programming cell by cell through the protocol (README, "Test access").
            reports = {}
            for core, (t, rows, cols) in todo.items():
                reports[core] = test_access(core, rows, cols, t, cfg)
                bar(t.size)
        else:
            # Every core's targets at once: with the chip's engine, the cores program in parallel.
            done = [0]

            def advance(n_done, _total):
                bar(n_done - done[0])
                done[0] = n_done
            reports = self.chip.program_cores({core: c for core, c in todo.items() if c[0].size},
                                              config=cfg, progress=advance)
        bar.close()
        for core in cores:
            rep = self.reports[core] = self._merged_report(core, cells[core], keep[core], reports.get(core), cfg)
            g = np.zeros((m.rows, m.cols))
            g[rep.rows, rep.cols] = rep.final_g
            self._set_decode_from_conductance(core, g)
            self.chip.set_polarity(core, m.polarity(core))
            self.chip.set_bias(core, m.v_mV, m.v_mV)
        return self.reports

    def _still_verified(self, core: int, targets, rows, cols) -> np.ndarray:
        """Cells whose last write-verify on this core converged to the same target."""
        prev = self.reports.get(core)
        if prev is None:
            return np.zeros(targets.size, bool)
        n = self.mapping.rows * self.mapping.cols
        prev_target = np.full(n, np.nan)
        prev_ok = np.zeros(n, bool)
        lin = prev.rows * self.mapping.cols + prev.cols
        prev_target[lin], prev_ok[lin] = prev.targets, prev.converged
        here = rows * self.mapping.cols + cols
        return prev_ok[here] & (prev_target[here] == targets)

    def _merged_report(self, core, cells, keep, new, cfg) -> WriteVerifyReport:
        """This pass's report over all the core's cells: the kept cells as verified before (no
        pulses this pass), the others as just programmed."""
        targets, rows, cols = cells
        prev = self.reports.get(core)
        if not keep.any():
            return new
        n = targets.size
        final_g = np.zeros(n)
        where_prev = np.full(self.mapping.rows * self.mapping.cols, -1, np.int64)
        where_prev[prev.rows * self.mapping.cols + prev.cols] = np.arange(prev.rows.size)
        final_g[keep] = prev.final_g[where_prev[(rows * self.mapping.cols + cols)[keep]]]
        converged = keep.copy()
        pulses = np.zeros(n, np.int64)
        fail = np.zeros(n, np.int8)
        reads, iterations = 0, 0
        if new is not None:
            final_g[~keep], converged[~keep] = new.final_g, new.converged
            pulses[~keep], fail[~keep] = new.pulses, new.fail_reason
            reads, iterations = new.reads, new.iterations
        return WriteVerifyReport(rows=rows, cols=cols, targets=targets, final_g=final_g, converged=converged,
                                 pulses=pulses, set_pulses=None, reset_pulses=None, rounds=None,
                                 fail_reason=fail, reads=reads, iterations=iterations, config=cfg)

    def _set_decode_from_conductance(self, core: int, g: np.ndarray) -> None:
        for ml in self.mapping.layers:
            for s in ml.segments:
                if s.core == core:
                    colsum = g[:, s.col0:s.col0 + s.n_out].sum(axis=0)
                    self.decoders[(ml.name, s.index)] = SegmentDecoder.nominal(
                        charge_per_unit(ml, s, self.mapping, self.mapping.options["neuron_gain"], colsum))

    def calibrate(self, images: np.ndarray, **kw):
        """Model-driven calibration of every segment's output columns on a few images
        (firmware.calibration.calibrate_runtime; ``layers=[names]`` for some layers only); installs
        its decoders and returns its report."""
        self.calibration = calibrate_runtime(self, images, **kw)
        self.decoders.update(self.calibration.decoders)
        return self.calibration

    def update_network(self, net, changed, *, progress: bool = True, calibration_vectors: int = 2048):
        """Replace the network's weights by ``net`` (same layers and shapes; ``changed``: names of
        the layers whose weights differ): map it again (the packing does not move), program only the
        cells whose targets changed, keep the decoders of every unchanged segment, and calibrate the
        changed layers again on the mapping's calibration images."""
        kept = {(ml.name, s.index): (s.core, tuple(s.rows), self.decoders[(ml.name, s.index)])
                for ml in self.mapping.layers for s in ml.segments}
        self.mapping = map_network(net, self.chip.config, bad_rows=self.mapping.bad_rows, **self.mapping.options)
        self.program(progress=progress)             # programming resets every decoder to nominal
        stale = set(changed)
        for ml in self.mapping.layers:
            for s in ml.segments:
                old = kept.get((ml.name, s.index))
                if ml.name not in changed and old is not None and old[:2] == (s.core, tuple(s.rows)):
                    self.decoders[(ml.name, s.index)] = old[2]
                else:
                    stale.add(ml.name)
        return self.calibrate(self.mapping.options["x_cal"], max_vectors=calibration_vectors, layers=sorted(stale))

    def unconverged_cells(self) -> int:
        return int(sum(len(r.unconverged) for r in self.reports.values()))

    # -- inference -------------------------------------------------------------------------------
    def segment_drive(self, ml, s) -> SegmentDrive:
        """How one segment drives its core: the layer's inputs on the segment's row pairs (the
        minus row inverted by POLARITY), the bias rows at the largest code, its columns tracked."""
        key = (ml.name, s.index, tuple(s.rows))
        drive = self._drives.get(key)
        if drive is None:
            n_in = len(s.inputs)
            inputs = np.asarray(s.inputs)
            source = np.full(len(s.plus_rows), -1)
            source[:n_in] = inputs
            drive = SegmentDrive(lines=np.concatenate([s.plus_rows, s.minus_rows]),
                                 source=np.concatenate([source, source]), constant=ml.x_max,
                                 outputs=np.arange(s.col0, s.col0 + s.n_out))
            self._drives[key] = drive
        return drive

    def segment_mvm(self, ml, s, codes: np.ndarray, mode: MvmSettings) -> np.ndarray:
        """Partial pre-activations (N, O) in units of Σ code·weight for one segment: the chip's
        output bytes through a per-column table (the byte's charge, decoded as the segment's
        :class:`SegmentDecoder` says)."""
        out = self.segment_bytes(ml, s, codes, mode)
        table = self._decode_table(ml, s, mode)
        index = out.astype(np.intp)
        index += np.arange(0, table.size, 256)
        return table.take(index)

    def _decode_table(self, ml, s, mode: MvmSettings) -> np.ndarray:
        """(O x 256) partial sums of every output byte of every column of a segment, flattened."""
        key = (ml.name, s.index)
        decoder = self.decoders[key]
        cached = self._tables.get(key)
        if cached is not None and cached[0] is decoder and cached[1] == (mode, s.packet_uV):
            return cached[2]
        q = decode_output(np.arange(256), mode)[0][:, None] * (s.packet_uV * 1e3)
        table = np.ascontiguousarray(decoder(np.broadcast_to(q, (256, s.n_out))).T).reshape(-1)
        self._tables[key] = (decoder, (mode, s.packet_uV), table)
        return table

    def segment_charge_nV(self, ml, s, codes: np.ndarray, mode: MvmSettings) -> np.ndarray:
        """One segment's outputs (N, O) as integrator charges in nV, before decoding."""
        return decode_output(self.segment_bytes(ml, s, codes, mode), mode)[0] * s.packet_uV * 1e3

    def segment_bytes(self, ml, s, codes: np.ndarray, mode: MvmSettings) -> np.ndarray:
        """One segment's output bytes (N, O) for the layer's input codes (N, layer inputs)."""
        self.chip.set_packet(s.core, s.packet_uV)
        return self.chip.mvm_segment(s.core, codes, self.segment_drive(ml, s), mode)

    def forward(self, x_uint8: np.ndarray, *, batch_images: int = 64, progress: bool = True,
                workers: int = 1, capture: str | None = None, stop_at_capture: bool = False) -> RunResult:
        """Logits of the mapped network on uint8 images, every weight layer on the chip.

        ``workers`` > 1 splits the images over that many processes, each with its own copy of a
        simulated chip (links that declare ``skip_mvms`` and ``add_events``: the fast model), at
        batch boundaries: every copy starts where the MVMs of the images before its share would
        have left the chip's random streams, so the results, counters and cycles are the same
        bits as with one worker. Other links run with one worker.

        ``capture``: a weight layer's name; the result's ``captured`` holds the input codes the chip
        produced for that layer (one worker). ``stop_at_capture``: that layer and the ones after it
        do not run (their outputs are zeros), for when only the captured codes matter.
        """
        caps = self.chip.link.capabilities
        N = len(x_uint8)
        n_batches = -(-N // batch_images)
        workers = max(1, min(int(workers), n_batches))
        if workers == 1 or caps.skip_mvms is None or caps.add_events is None or capture:
            return self._forward(x_uint8, batch_images, progress, capture=capture, stop=stop_at_capture)
        t0 = time.perf_counter()
        per_image = self.mvms_per_image(x_uint8[:1])
        bounds = [min(N, round(w * n_batches / workers) * batch_images) for w in range(workers + 1)]
        ctx = multiprocessing.get_context("fork")
        children = []
        for w in range(workers - 1):
            recv, send = ctx.Pipe(duplex=False)
            p = ctx.Process(target=self._worker, args=(send, x_uint8, bounds[w], bounds[w + 1], per_image,
                                                      batch_images), daemon=True)
            p.start()
            send.close()
            children.append((p, recv))
        caps.skip_mvms({c: bounds[-2] * n for c, n in per_image.items()})
        mine = self._forward(x_uint8[bounds[-2]:], batch_images, progress,
                             desc=f"inference (worker {workers} of {workers})")
        parts = [join_worker(child, "an inference worker") for child in children]
        for part in parts:
            caps.add_events(part["counters"], part["cycles"] or 0)
        results = [p["result"] for p in parts] + [mine]
        layers = [LayerStats(l.name, sum(r.layers[i].mvms for r in results), sum(r.layers[i].seconds for r in results),
                             l.cores, {k: sum(r.layers[i].counters.get(k, 0) for r in results) for k in l.counters})
                  for i, l in enumerate(mine.layers)]
        logits = np.concatenate([r.logits for r in results])
        cycles = None if mine.chip_cycles is None else sum(r.chip_cycles for r in results)
        return RunResult(logits, logits.argmax(1), time.perf_counter() - t0, layers, cycles)

    def _worker(self, send, x_uint8, lo: int, hi: int, per_image: dict, batch_images: int) -> None:
        """One forked worker: its share of the images, from where the images before it leave the chip."""
        try:
            caps = self.chip.link.capabilities
            caps.skip_mvms({c: lo * n for c, n in per_image.items()})
            cores = sorted(per_image)
            before = {c: self.chip.counters(c) for c in cores}
            result = self._forward(x_uint8[lo:hi], batch_images, progress=False)
            counters = {c: {k: (v - before[c][k]) & 0xFFFFFFFF for k, v in self.chip.counters(c).items()}
                        for c in cores}
            send.send(("ok", {"result": result, "counters": counters, "cycles": result.chip_cycles}))
        except BaseException as e:          # the parent reports it; a worker must never hang it
            send.send(("error", f"{type(e).__name__}: {e}"))
        finally:
            send.close()
            os._exit(0)

    def mvms_per_image(self, x_one: np.ndarray) -> dict:
        """{core: MVMs} one image costs on each core (from the layers' shapes; nothing runs)."""
        layer_of = {ml.name: ml for ml in self.mapping.layers}
        counts = {}

        def shapes_only(spec, h):
            x, reshape = nn.layer_inputs(spec, h)
            ml = layer_of[spec["name"]]
            for s in ml.segments:
                counts[s.core] = counts.get(s.core, 0) + x.shape[0]
            return reshape(np.zeros((x.shape[0], ml.weight.shape[0]), np.uint8))

        codes = nn.quantize_input(x_one[:1], self.mapping.net.input)
        nn.walk(self.mapping.net, codes[:, None] if codes.ndim == 3 else codes, shapes_only, codes=True)
        return counts

    def _forward(self, x_uint8: np.ndarray, batch_images: int, progress: bool, desc: str = "inference",
                 capture: str | None = None, stop: bool = False) -> RunResult:
        m = self.mapping
        net = m.net
        t_start = time.perf_counter()
        clock = self.chip.link.capabilities.cycles
        cycles0 = clock() if clock is not None else None
        stats = {ml.name: LayerStats(ml.name, cores=tuple(sorted({s.core for s in ml.segments})))
                 for ml in m.layers}
        layer_of = {ml.name: ml for ml in m.layers}
        logits, captured = [], []
        N = len(x_uint8)
        bar = progress_bar(N, desc, progress)
        for i0 in range(0, N, batch_images):
            xb = x_uint8[i0:i0 + batch_images]
            codes = nn.quantize_input(xb, net.input).astype(np.uint8)      # at most 8 bits
            h = codes[:, None] if codes.ndim == 3 else codes        # integer codes (N, C, H, W)
            stopped = [False]

            def on_chip(spec, h):
                ml = layer_of[spec["name"]]
                if ml.name == capture:
                    captured.append(np.array(h))
                    stopped[0] = stop
                if stopped[0]:
                    x, reshape = nn.layer_inputs(spec, h)
                    return reshape(np.zeros((x.shape[0], ml.weight.shape[0]), np.uint8))
                t0 = time.perf_counter()
                st = stats[ml.name]
                before = self.core_counters(st.cores)
                x, reshape = nn.layer_inputs(spec, h)
                mode = self.layer_mode(ml)
                y = ml.combine([self.segment_mvm(ml, s, x, mode) for s in ml.segments], x.shape[0]) * ml.in_step
                if ml.host_bias is not None and ml.host_bias.any():
                    y = y + ml.host_bias
                st.mvms += x.shape[0] * len(ml.segments)
                st.seconds += time.perf_counter() - t0
                after = self.core_counters(st.cores)
                for k in after:
                    st.counters[k] = st.counters.get(k, 0) + ((after[k] - before[k]) & 0xFFFFFFFF)
                y = reshape(y)
                act = spec.get("act")
                return nn.narrow_codes(nn.quantize_act(y, act), act) if act is not None else y

            logits.append(nn.walk(net, h, on_chip, codes=True))
            bar(len(xb))
        bar.close()
        logits = np.concatenate(logits)
        cycles1 = clock() if clock is not None else None
        return RunResult(logits, logits.argmax(1), time.perf_counter() - t_start, list(stats.values()),
                         (cycles1 - cycles0) if cycles0 is not None else None,
                         np.concatenate(captured) if captured else None)

    def layer_mode(self, ml) -> MvmSettings:
        """How every segment of a mapped layer runs: its input bits, charge-decrement outputs."""
        m = self.mapping
        return MvmSettings(input_bits=ml.in_bits, input_signed=ml.in_signed, conversion=R.Conversion.DECREMENT,
                       max_steps=m.max_steps, pulse_multiplier=m.pulse_multiplier)

    def core_counters(self, cores) -> dict:
        """Event counters summed over ``cores`` (counters wrap at 2^32: differences of at most
        2^32 events per layer per chunk are exact)."""
        total = {}
        for core in cores:
            for k, v in self.chip.counters(core).items():
                total[k] = total.get(k, 0) + v
        return total
