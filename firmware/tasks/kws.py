"""Keyword spotting on the chip: the published NeuRRAM LSTM (Wan et al., Nature 2022; docs/kws.md).

    map_kws(model, config)            every gate matrix of every block, and the dense layers, on cores
    KwsRuntime(chip, mapping, model)  program (write-verify, bad-row repair, passes), calibrate, run
    run_kws(chip, features, labels, model)   the whole task; returns a KwsReport

Per block b and time step t the chip runs two MVMs per gate (i, j, f, o): the 40 MFCC inputs
(4-bit signed codes) against W_ih and the 108 hidden values (4-bit signed codes) against W_hh,
each on its own segment of differential row pairs; the outputs come back as 6-bit conversions.
The host, as the chip's host did, clips and adds the two partial sums, computes the sigmoid and
tanh gates, the cell state and the next hidden state, and quantises that to the next step's
codes. After the last step the 108 -> 12 dense layer of each block runs on the chip too; the
host sums the four blocks' 6-bit outputs and takes the argmax. All clips advance one time step
together, so every segment sees one stream of (clips) MVMs per step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from neurram.spec import regmap as R
from neurram.spec.analog import NEURON_GAIN
from neurram.spec.mvm import PACKET_UV_MAX, MvmSettings, decode_output

from .. import speech
from ..calibration import SegmentDecoder, fit_from_data, relative_error
from ..driver import Chip
from ..mapper import G_MAX_uS, MappedLayer, Mapping, MappingError, Segment, charge_per_unit
from ..runtime import LayerStats, Runtime, progress_bar

__all__ = ["KwsMapping", "map_kws", "KwsRuntime", "KwsReport", "run_kws", "chip_forward", "calibration_codes",
           "confusion_matrix", "plot_confusion", "full_scale_packets", "OUTPUT_BITS", "GATES", "IH_COPIES",
           "PASSES", "add_run_arguments", "run_cli"]

GATES = ("i", "j", "f", "o")
#: MVM output precision of the published LSTM (sign included).
OUTPUT_BITS = 6
#: Copies of every W_ih row pair (map_kws) and write-verify passes (run_kws) by
#: default: docs/kws.md has the accuracy with and without them.
IH_COPIES = 2
PASSES = 2
#: Input drive V_pos = V_neg (mV, before balance_drivers) of the LSTM's cores: within the test
#: software's 0.5-0.8 V, so that the 1 mV steps of CORE_BIAS balance the drivers to 0.2 %.
V_DRIVE_mV = 500
#: Integrator charge (µV) that the clip of every layer's output is mapped to: the layer's pulse
#: multiplier is raised until its clip reaches it, well above the neurons' comparator offsets.
FULL_SCALE_TARGET_uV = 16000.0


@dataclass
class KwsMapping(Mapping):
    """A :class:`~neurram.firmware.mapper.Mapping` of the LSTM: one layer per (block, gate, kind)
    and one per block's dense layer, each a single segment. Per layer also: its pulse multiplier,
    the bias the host adds (where the bias needs more rows than ``max_bias_rows``) and the clip of
    its output (the value that full scale stands for)."""
    pulse: dict = field(default_factory=dict)          # layer -> pulse multiplier
    host_bias: dict = field(default_factory=dict)      # layer -> (O,) bias added on the host
    clip: dict = field(default_factory=dict)           # layer -> output clip (full scale)
    conversion: R.Conversion = R.Conversion.DECREMENT

    def layer(self, name: str) -> MappedLayer:
        return self._by_name[name]

    def __post_init__(self):
        self._by_name = {ml.name: ml for ml in self.layers}

    def summary(self) -> str:
        cores = self.cores_used
        kinds = {}
        for ml in self.layers:
            kinds.setdefault(ml.name.split(".")[1], set()).add(ml.segments[0].core)
        parts = ", ".join(f"{k} on {len(v)}" for k, v in kinds.items())
        lines = [f"KWS LSTM: {len(self.layers)} segments on {len(cores)} of {self.n_cores} cores "
                 f"({self.rows} x {self.cols} each): {parts}"]
        for ml in self.layers:
            s = ml.segments[0]
            lines.append(f"  {ml.name:<8} {ml.weight.shape[0]:>3} x {ml.weight.shape[1]:<3} core {s.core:>2} "
                         f"{s.n_rows} rows in {s.rows.min():>3}-{s.rows.max():<3} cols {s.col0:>3}-{s.col0 + s.n_out - 1:<3} "
                         f"bias rows {s.bias_rows}{' (+ host bias)' if np.any(self.host_bias[ml.name]) else ''}, "
                         f"pulse x{self.pulse[ml.name]}, packet {s.packet_uV} uV")
        return "\n".join(lines)


def _layer_specs(model: speech.KwsModel):
    """(name, W (O, I) per code, bias (O,), clip of the output, w_max) of every matrix the chip holds."""
    H = model.hidden
    out = []
    for b in range(model.blocks):
        for k, g in enumerate(GATES):
            cols = slice(k * H, (k + 1) * H)
            out.append((f"b{b}.ih.{g}", model.w_ih[b][:, cols].T * model.input_step(b), model.b_ih[b][cols],
                        float(model.a[12][b]), model.W_CLIP * model.input_step(b)))
        for k, g in enumerate(GATES):
            cols = slice(k * H, (k + 1) * H)
            out.append((f"b{b}.hh.{g}", model.w_hh[b][:, cols].T * model.hidden_step(b), model.b_hh[b][cols],
                        float(model.a[13][b]), model.W_CLIP * model.hidden_step(b)))
    for b in range(model.blocks):
        out.append((f"b{b}.fc", model.w_fc[b].T * model.fc_step(b), model.b_fc[b], float(model.fa2[b]),
                    model.W_CLIP * model.fc_step(b)))
    return out


def map_kws(model: speech.KwsModel, config, *, bad_rows: dict | None = None, max_bias_rows: int = 6,
            max_steps: int = (1 << (OUTPUT_BITS - 1)) - 1, conversion=R.Conversion.DECREMENT,
            v_mV: int = V_DRIVE_mV, neuron_gain: float = NEURON_GAIN, ih_copies: int = IH_COPIES,
            placement: dict | None = None, keep_rows: dict | None = None) -> KwsMapping:
    """Place every gate matrix (W_ih and W_hh of each gate of each block) and each block's dense
    layer on cores of a chip described by ``config`` (e.g. ``chip.config``).

    Weights are in units of one input code (the layer's quantiser step folded in) and map onto
    differential row pairs with w_max = the published weight clip (0.1 times the step), so no
    weight saturates. A bias goes onto rows held at the largest code (7) when it fits in
    ``max_bias_rows`` pairs, otherwise the host adds it. Segments are packed block-diagonally,
    largest first, each core from its corner on, skipping ``bad_rows``.

    ``ih_copies`` > 1 puts every W_ih row pair on that many pairs of rows, each input driving all
    of its copies (each copy holds W/copies in the layer's units, the same conductances): the
    copies' independent programming, relaxation and read errors average out by sqrt(copies)."""
    rows, cols = config.rows, config.cols
    x_max = 7                                           # 4-bit sign-magnitude codes: -7 ... 7
    layers, host_bias, clips = [], {}, {}
    for name, W, bias, out_clip, w_max in _layer_specs(model):
        I = W.shape[1]
        k = ih_copies if ".ih." in name else 1
        inputs = np.tile(np.arange(I), k)
        W, w_max = np.tile(W, k) / k, w_max / k
        O = W.shape[0]
        n_bias = int(np.ceil(np.abs(bias).max() / (x_max * w_max))) if np.any(bias) else 0
        on_chip = n_bias <= max_bias_rows
        if not on_chip:
            n_bias = 0
        bias_row_w = bias / (x_max * n_bias) if n_bias else np.zeros(O)
        Wk = np.concatenate([W.T, np.repeat(bias_row_w[None, :], n_bias, 0)], axis=0)
        gp = np.clip(Wk, 0, w_max) / w_max * G_MAX_uS
        gm = np.clip(-Wk, 0, w_max) / w_max * G_MAX_uS
        ml = MappedLayer(name, {"type": "dense", "name": name}, W, bias if on_chip else np.zeros(O), w_max,
                         in_bits=4, in_step=1.0, in_signed=True,   # x_max 7: the top 4-bit signed code
                         bias_row_weight=bias_row_w, bias_rows_total=n_bias,
                         out_range=out_clip)
        ml.segments.append(Segment(name, 0, -1, inputs, n_bias, 0, O, gp, gm))
        layers.append(ml)
        host_bias[name] = np.zeros(O) if on_chip else np.asarray(bias, np.float64)
        clips[name] = out_clip
    _pack(layers, rows, cols, config.n_cores, bad_rows or {}, placement, keep_rows)
    m = KwsMapping(None, layers, rows, cols, config.n_cores, max_steps, 1, v_mV,
                   bad_rows={c: set(map(int, r)) for c, r in (bad_rows or {}).items()},
                   options=dict(max_bias_rows=max_bias_rows, max_steps=max_steps, conversion=conversion,
                                v_mV=v_mV, neuron_gain=neuron_gain, ih_copies=ih_copies),
                   pulse={}, host_bias=host_bias, clip=clips, conversion=R.Conversion(conversion))
    for ml in layers:
        s = ml.segments[0]
        m.pulse[ml.name], s.packet_uV = _operating_point(m, ml, s, neuron_gain)
    return m


def full_scale_packets(mapping: KwsMapping) -> float:
    """The decoded value (in packets) that stands for the clip: the largest unsaturated output."""
    if mapping.conversion == R.Conversion.SAR:
        return (1 << (OUTPUT_BITS - 1)) - 0.5
    return mapping.max_steps - 0.5


def _operating_point(m: KwsMapping, ml, s, neuron_gain, g_column_sum=None):
    """(pulse multiplier, packet µV): the multiplier that brings the clip's charge to
    FULL_SCALE_TARGET_uV (at most 255), and the packet that puts the clip at full scale."""
    per_unit_nV = charge_per_unit(ml, s, m, neuron_gain, g_column_sum)       # at pulse multiplier 1
    q1_uV = float(np.max(per_unit_nV)) * m.clip[ml.name] / 1e3
    mult = int(np.clip(np.ceil(FULL_SCALE_TARGET_uV / max(q1_uV, 1e-9)), 1, 255))
    packet = int(np.clip(np.rint(mult * q1_uV / full_scale_packets(m)), 1, PACKET_UV_MAX))
    return mult, packet


def _pack(layers, rows, cols, n_cores, bad_rows, placement=None, keep_rows=None):
    """Block-diagonal packing: each segment gets a core and its first column (first fit, largest
    segments first, or ``placement``: {layer: (core, col0)} to keep), then rows on that core.

    Rows: the core's good rows first (not in ``bad_rows``), in order, to the segments on it in
    turn; within a segment the bias pairs and then the inputs in order take them (the MFCC
    coefficients come largest first). When a core has too few good rows, the last pairs take bad
    rows (a 216-row segment has 40 spare rows, and about one row in six holds a failed cell
    among 108 columns).

    ``keep_rows`` ({layer: rows}, a repair): every segment keeps its rows except the bad ones,
    which spare rows of its core (used by no segment, not bad) replace, as long as there are any."""
    if placement is None:
        placement, free = {}, [[0, 0] for _ in range(n_cores)]
        for i in sorted(range(len(layers)), key=lambda i: -layers[i].segments[0].n_rows):
            s = layers[i].segments[0]
            for core in range(n_cores):
                r, c = free[core]
                if r + s.n_rows <= rows and c + s.n_out <= cols:
                    placement[s.layer] = (core, c)
                    free[core] = [r + s.n_rows, c + s.n_out]
                    break
            else:
                need = sum(l.segments[0].n_rows for l in layers)
                raise MappingError(f"the KWS LSTM needs about {need} physical rows in {len(layers)} segments; this "
                                   f"chip has {n_cores} cores x {rows} rows and segment {s.layer} ({s.n_rows} rows x "
                                   f"{s.n_out} columns) finds no room: use a chip with more or larger cores")
    on_core = {}
    for ml in layers:
        s = ml.segments[0]
        s.core, s.col0 = placement[s.layer]
        on_core.setdefault(s.core, []).append(s)
    for core, segs in on_core.items():
        bad = set(bad_rows.get(core, ()))
        if keep_rows is not None and all(s.layer in keep_rows for s in segs):
            taken = set(int(r) for s in segs for r in keep_rows[s.layer])
            spares = [r for r in range(rows) if r not in taken and r not in bad]
            for s in sorted(segs, key=lambda s: s.col0):
                phys = np.array(keep_rows[s.layer], np.int64)
                for i in range(phys.size):
                    if int(phys[i]) in bad and spares:
                        phys[i] = spares.pop(0)
                s.rows = phys
            continue
        pool = [r for r in range(rows) if r not in bad] + sorted(r for r in bad if r < rows)
        if sum(s.n_rows for s in segs) > rows:
            raise MappingError(f"core {core}: the segments placed on it need {sum(s.n_rows for s in segs)} rows, "
                               f"it has {rows}")
        for s in sorted(segs, key=lambda s: s.col0):
            n_in, pairs = len(s.inputs), s.n_rows // 2
            priority = list(range(n_in, pairs)) + list(range(n_in))      # bias pairs, then the inputs
            phys = np.empty(s.n_rows, np.int64)
            for k, pair in enumerate(priority):
                phys[2 * pair], phys[2 * pair + 1] = pool[2 * k], pool[2 * k + 1]
            pool = pool[s.n_rows:]
            s.rows = phys


class KwsRuntime(Runtime):
    """The layer runtime for the LSTM's segments: signed 4-bit inputs, 6-bit outputs, a pulse
    multiplier per layer; bad-row repair swaps spare rows of the same core in (:func:`map_kws`
    with ``keep_rows``), so every segment stays where it is."""

    def __init__(self, chip: Chip, mapping: KwsMapping, model: speech.KwsModel):
        super().__init__(chip, mapping)
        self.model = model
        self.calibration_error = {}

    def layer_mode(self, ml) -> MvmSettings:
        m = self.mapping
        if m.conversion == R.Conversion.SAR:
            return MvmSettings(input_bits=4, input_signed=True, conversion=R.Conversion.SAR,
                               output_bits=OUTPUT_BITS, pulse_multiplier=m.pulse[ml.name])
        return MvmSettings(input_bits=4, input_signed=True, conversion=R.Conversion.DECREMENT,
                           max_steps=m.max_steps, pulse_multiplier=m.pulse[ml.name])

    def program(self, progress: bool = True, write_verify_config=None, repair: bool = True, passes: int = 1):
        """Write-verify every used core, repair bad rows where spare rows allow, then ``passes`` - 1
        more write-verify passes over the same targets, each after the cells have relaxed
        (docs/chip.md §3: whole arrays reprogrammed over several passes narrow the spread that
        relaxation leaves; only cells that drifted out of the window take pulses again)."""
        self._program_once(progress, write_verify_config)
        for _ in range(3 if repair else 0):
            bad = self.bad_rows(write_verify_config)
            known = self.mapping.bad_rows
            if all(bad.get(c, set()) <= known.get(c, set()) for c in bad):
                break
            merged = {c: set(known.get(c, set())) | set(bad.get(c, set())) for c in set(known) | set(bad)}
            keep = {ml.name: (ml.segments[0].core, ml.segments[0].col0) for ml in self.mapping.layers}
            rows = {ml.name: ml.segments[0].rows for ml in self.mapping.layers}
            self.mapping = map_kws(self.model, self.chip.config, bad_rows=merged, placement=keep,
                                   keep_rows=rows, **self.mapping.options)
            self._program_once(progress, write_verify_config)
        for _ in range(passes - 1):
            self._let_cells_relax()
            self._program_once(progress, write_verify_config)
        return self.reports

    def balance_drivers(self, *, vectors: int = 16, max_steps: int = 64) -> dict:
        """Per used core, V_pos/V_neg (CORE_BIAS, 1 mV steps, their sum kept) so that a zero code
        drives nothing: on the bit-serial path a zero digit is a -V_neg and a +V_pos pulse, and
        the two drivers' mismatch (about 1 %) would otherwise add charge in proportion to the
        number of zero digits, times the pulse multiplier (the chip's test software tuned V_pos
        and V_neg per core the same way, docs/chip.md §2). Measured with all-zero codes at the
        largest pulse multiplier, comparator signs counted over the core's tracked outputs;
        bisection over the ladder. Returns {core: (v_pos_mV, v_neg_mV)}."""
        m = self.mapping
        v = m.v_mV
        out = {}
        for core in m.cores_used:
            ml = next(l for l in m.layers if l.segments[0].core == core)
            s = ml.segments[0]
            mode = MvmSettings(input_bits=4, input_signed=True, conversion=R.Conversion.SIGN,
                               pulse_multiplier=self.chip.config.pulse_multiplier_max)
            zero = np.zeros((vectors, int(s.inputs.max()) + 1), np.int8)
            ladder = lambda k: (v + (k + 1) // 2, v - k // 2)          # noqa: E731  V_pos - V_neg = k

            def positive(k):
                self.chip.set_bias(core, *ladder(k))
                return float(np.mean(self.segment_bytes(ml, s, zero, mode) < 0x80))

            lo, hi = -max_steps, max_steps
            if positive(lo) > 0.5 or positive(hi) <= 0.5:
                k = 0                                   # no crossing within the range: leave it
            else:
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    if positive(mid) > 0.5:
                        hi = mid
                    else:
                        lo = mid
                k = hi if abs(positive(hi) - 0.5) <= abs(positive(lo) - 0.5) else lo
            self.chip.set_bias(core, *ladder(k))
            out[core] = ladder(k)
        self.driver_bias = out
        return out

    def _let_cells_relax(self) -> None:
        """One MVM on every used core: on the chip, time passes between programming passes; a
        simulated chip lets its cells relax at the first MVM after programming (at least 1 s)."""
        seen = set()
        for ml in self.mapping.layers:
            s = ml.segments[0]
            if s.core not in seen:
                seen.add(s.core)
                self.segment_bytes(ml, s, np.zeros((1, len(s.inputs)), np.int8), self.layer_mode(ml))

    def _set_decode_from_conductance(self, core: int, g: np.ndarray) -> None:
        m = self.mapping
        for ml in m.layers:
            s = ml.segments[0]
            if s.core == core:
                colsum = g[:, s.col0:s.col0 + s.n_out].sum(axis=0)
                per_unit = charge_per_unit(ml, s, m, m.options["neuron_gain"], colsum) * m.pulse[ml.name]
                self.decoders[(ml.name, 0)] = SegmentDecoder.nominal(per_unit)

    # -- one layer on the chip ----------------------------------------------------------------
    def run_layer(self, name: str, codes: np.ndarray) -> np.ndarray:
        """The layer's output (N, O) for signed codes (N, I): the chip's partial sum (bias rows
        included), plus any host bias; saturated conversions read as ±infinity (beyond the clip)."""
        ml = self.mapping.layer(name)
        s = ml.segments[0]
        mode = self.layer_mode(ml)
        out = self.segment_bytes(ml, s, codes.astype(np.int8), mode)
        q, sat = decode_output(out, mode)
        y = self.decoders[(name, 0)](q * (s.packet_uV * 1e3))
        y = np.where(sat, np.copysign(np.inf, q), y)
        return y + self.mapping.host_bias[name]

    def ideal_layer(self, name: str, codes: np.ndarray) -> np.ndarray:
        """What :meth:`run_layer` computes, in exact arithmetic (bias included)."""
        ml = self.mapping.layer(name)
        return codes[:, ml.segments[0].inputs] @ ml.weight.T + ml.bias + self.mapping.host_bias[name]

    def calibrate(self, layer_codes: dict, *, min_branch: int = 20):
        """Fit every segment's columns (separate gains for the two signs of the output, one zero)
        against the exact partial sums of ``layer_codes[name]`` (codes the software model produces
        on a few clips); installs the decoders and records the residual errors before and after."""
        t0 = time.perf_counter()
        for name, x in layer_codes.items():
            ml = self.mapping.layer(name)
            s = ml.segments[0]
            mode = self.layer_mode(ml)
            key = (name, 0)
            old = self.decoders[key]
            q, sat = decode_output(self.segment_bytes(ml, s, x.astype(np.int8), mode), mode)
            q_nV = q * (s.packet_uV * 1e3)
            y = x[:, s.inputs] @ ml.weight.T + ml.bias
            cal = fit_from_data(q_nV, y, ~sat, cols=np.arange(s.col0, s.col0 + s.n_out), min_branch=min_branch,
                                default_gain=old.scale_pos, unit="nV")
            new = old.refit(cal, True)
            self.decoders[key] = new
            ok = ~sat                                  # unsaturated outputs (the rest read as the clip)
            self.calibration_error[name] = (relative_error(old(q_nV)[ok], y[ok]), relative_error(new(q_nV)[ok], y[ok]))
        return time.perf_counter() - t0


# -- the LSTM on the chip --------------------------------------------------------------------------

def chip_forward(rt: KwsRuntime, features: np.ndarray, *, chunk: int = 512, progress: bool = True,
                 stats: dict | None = None) -> np.ndarray:
    """Output values z (N, 12) of the LSTM with every MVM on the chip, all clips of a chunk
    advancing one time step together."""
    model = rt.model
    H, T = model.hidden, features.shape[1]
    stats = stats if stats is not None else {}
    bar = progress_bar(len(features), "KWS inference", progress)
    out = []

    def run(kind, name, codes):
        st = stats.setdefault(kind, LayerStats(kind))
        core = rt.mapping.layer(name).segments[0].core
        before = rt.chip.counters(core)
        t0 = time.perf_counter()
        y = rt.run_layer(name, codes)
        st.seconds += time.perf_counter() - t0
        st.mvms += len(codes)
        after = rt.chip.counters(core)
        for k in after:
            st.counters[k] = st.counters.get(k, 0) + ((after[k] - before[k]) & 0xFFFFFFFF)
        st.cores = tuple(sorted(set(st.cores) | {core}))
        return y

    for i0 in range(0, len(features), chunk):
        x = features[i0:i0 + chunk]
        n = len(x)
        ys = []
        for b in range(model.blocks):
            xc = model.input_codes(x, b).reshape(n * T, -1)
            p1 = np.concatenate([run("ih", f"b{b}.ih.{g}", xc) for g in GATES], axis=1).reshape(n, T, 4 * H)
            h = np.zeros((n, H))
            c = np.zeros_like(h)
            for t in range(T):
                hc = model.hidden_codes(h, b)
                p2 = np.concatenate([run("hh", f"b{b}.hh.{g}", hc) for g in GATES], axis=1)
                h, c = model.cell(model.gates(p1[:, t], p2, b), c, b)
            ys.append(model.fc_out(run("fc", f"b{b}.fc", model.fc_codes(h, b)), b))
        out.append(model.combine(ys))
        bar(n)
    bar.close()
    return np.concatenate(out) if out else np.zeros((0, len(speech.LABELS)))


def calibration_codes(model: speech.KwsModel, features: np.ndarray) -> dict:
    """Per layer, the input codes the software model produces on ``features``: every time step's
    input codes for W_ih, every step's hidden codes for W_hh, and every step's hidden state
    through the dense layer's quantiser for the dense layer (more vectors than the last step alone)."""
    H, T = model.hidden, features.shape[1]
    n = len(features)
    out = {}
    for b in range(model.blocks):
        xc = model.input_codes(features, b)
        p1_all = xc * model.input_step(b) @ model.w_ih[b] + model.b_ih[b]
        h = np.zeros((n, H))
        c = np.zeros_like(h)
        hcs, fcs = [], []
        for t in range(T):
            hc = model.hidden_codes(h, b)
            hcs.append(hc)
            p2 = hc * model.hidden_step(b) @ model.w_hh[b] + model.b_hh[b]
            h, c = model.cell(model.gates(p1_all[:, t], p2, b), c, b)
            fcs.append(model.fc_codes(h, b))
        hcs, fcs = np.concatenate(hcs), np.concatenate(fcs)
        for g in GATES:
            out[f"b{b}.ih.{g}"] = xc.reshape(n * T, -1)
            out[f"b{b}.hh.{g}"] = hcs
        out[f"b{b}.fc"] = fcs
    return out


@dataclass
class KwsReport:
    clips: int
    accuracy: float
    software_accuracy: float
    per_class: np.ndarray                # (12,) chip accuracy per class (model order)
    per_class_software: np.ndarray
    confusion: np.ndarray                # (12, 12) counts, rows true, columns predicted
    seconds_inference: float
    seconds_programming: float
    seconds_calibration: float
    cores_used: list
    unconverged_cells: int
    programmed_cells: int
    layers: list                         # LayerStats per kind (ih, hh, fc)
    mapping_summary: str
    calibration_clips: int
    calibration_error: dict
    chip_cycles: int | None = None
    predictions: np.ndarray | None = None

    @property
    def mvms(self) -> int:
        return sum(l.mvms for l in self.layers)

    def table(self) -> str:
        lines = [
            f"clips                  {self.clips}",
            f"chip accuracy          {100 * self.accuracy:.2f} %",
            f"software (same clips)  {100 * self.software_accuracy:.2f} %",
            f"time                   {self.seconds_inference:.1f} s ({self.clips / max(self.seconds_inference, 1e-9):,.1f} clips/s)",
            f"cores used             {len(self.cores_used)}: {self.cores_used}",
            f"programming            {self.programmed_cells:,} cells, {self.unconverged_cells} unconverged "
            f"({100 * self.unconverged_cells / max(self.programmed_cells, 1):.3f} %), {self.seconds_programming:.1f} s",
            f"calibration            {self.seconds_calibration:.1f} s on the codes of {self.calibration_clips} clips; "
            f"median residual / std {np.median([v[0] for v in self.calibration_error.values()]):.3f} -> "
            f"{np.median([v[1] for v in self.calibration_error.values()]):.3f}",
            f"MVMs                   {self.mvms:,} ({self.mvms / max(self.clips, 1):,.0f} per clip)",
        ]
        if self.chip_cycles is not None:
            lines.append(f"chip busy cycles       {self.chip_cycles:,} ({self.chip_cycles / max(self.clips, 1):,.0f} per clip)")
        lines.append("per class (chip / software):")
        for k, name in enumerate(speech.LABELS):
            lines.append(f"  {name:<8} {100 * self.per_class[k]:6.2f} %  {100 * self.per_class_software[k]:6.2f} %  "
                         f"({int(self.confusion[k].sum())} clips)")
        return "\n".join(lines)


def _per_class(pred, labels, n=len(speech.LABELS)):
    return np.array([np.mean(pred[labels == k] == k) if np.any(labels == k) else np.nan for k in range(n)])


def confusion_matrix(pred, labels, n=len(speech.LABELS)) -> np.ndarray:
    cm = np.zeros((n, n), np.int64)
    np.add.at(cm, (np.asarray(labels), np.asarray(pred)), 1)
    return cm


def run_kws(chip: Chip, features: np.ndarray, labels: np.ndarray, model: speech.KwsModel, *,
            calibration_features: np.ndarray | None = None, conversion=R.Conversion.DECREMENT,
            progress: bool = True, chunk: int = 512, calibrate: bool = True, ih_copies: int = IH_COPIES,
            passes: int = PASSES) -> KwsReport:
    """Map, program (write-verify), calibrate and run the LSTM on ``features`` (N, 50, 40);
    ``labels`` in the model's order. Calibration uses the codes the software model produces on
    ``calibration_features`` (default: 128 clips spread over ``features``; their labels are not
    used). ``ih_copies`` and ``passes``: see :func:`map_kws` and :meth:`KwsRuntime.program`."""
    mapping = map_kws(model, chip.config, conversion=conversion, ih_copies=ih_copies)
    rt = KwsRuntime(chip, mapping, model)
    t0 = time.perf_counter()
    rt.program(progress=progress, passes=passes)
    rt.balance_drivers()
    t_prog = time.perf_counter() - t0
    if calibration_features is None:
        calibration_features = features[np.unique(np.linspace(0, len(features) - 1, 128).round().astype(int))]
    cal_feats = calibration_features
    t_cal = rt.calibrate(calibration_codes(model, cal_feats)) if calibrate else 0.0
    chip.clear_counters()
    clock = chip.link.capabilities.cycles
    c0 = clock() if clock is not None else None
    stats = {}
    t0 = time.perf_counter()
    z = chip_forward(rt, features, chunk=chunk, progress=progress, stats=stats)
    t_inf = time.perf_counter() - t0
    cycles = (clock() - c0) if clock is not None else None
    pred = z.argmax(1)
    sw = model.forward(features).argmax(1)
    labels = np.asarray(labels)
    return KwsReport(
        clips=len(features), accuracy=float(np.mean(pred == labels)), software_accuracy=float(np.mean(sw == labels)),
        per_class=_per_class(pred, labels), per_class_software=_per_class(sw, labels),
        confusion=confusion_matrix(pred, labels), seconds_inference=t_inf, seconds_programming=t_prog,
        seconds_calibration=t_cal, cores_used=rt.mapping.cores_used, unconverged_cells=rt.unconverged_cells(),
        programmed_cells=int(sum(len(r.targets) for r in rt.reports.values())), layers=list(stats.values()),
        mapping_summary=rt.mapping.summary(), calibration_clips=len(cal_feats),
        calibration_error=dict(rt.calibration_error), chip_cycles=cycles, predictions=pred)


def plot_confusion(path, cm: np.ndarray, title: str = "") -> str | None:
    """The confusion matrix as a PNG (needs matplotlib); returns the path, or None without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    frac = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(7, 6))
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    n = len(speech.LABELS)
    for i in range(n):
        for j in range(n):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=6,
                        color="white" if frac[i, j] > 0.5 else "black")
    ax.set_xticks(range(n), speech.LABELS, rotation=60)
    ax.set_yticks(range(n), speech.LABELS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "KWS confusion matrix")
    fig.colorbar(im, ax=ax, label="fraction of the true class")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return str(path)


# -- neurram run kws ---------------------------------------------------------------------------

def add_run_arguments(p) -> None:
    p.add_argument("--data-dir", help="folder with speech_commands_v0.02_test_part{1,2}of2.npz "
                                      "(default: $NEURRAM_DATA_DIR, ../shared/datasets, ~/.cache/neurram)")
    p.add_argument("--checkpoint", required=True, metavar="PATH",
                   help="the published NeuRRAM KWS checkpoint hidden_108_msb_4.pkl (not shipped: it has no "
                        "license; docs/kws.md says where it comes from)")
    p.add_argument("--conversion", choices=("decrement", "sar"), default="decrement",
                   help="6-bit output conversion: charge decrement of at most 31 steps (default) or 6-bit SAR")
    p.add_argument("--ih-copies", type=int, default=IH_COPIES, metavar="K",
                   help=f"row pairs per W_ih weight (default {IH_COPIES}; 1 fits the LSTM on 28 cores, 2 on 36)")
    p.add_argument("--passes", type=int, default=PASSES,
                   help=f"write-verify passes, each after the cells relaxed (default {PASSES})")
    p.add_argument("--calibration-clips", type=int, default=128, metavar="N",
                   help="clips whose input codes (not labels) calibrate the columns (default 128)")
    p.add_argument("--plot", metavar="PNG", help="write the confusion matrix here (needs matplotlib)")


def run_cli(args, chip: Chip) -> dict:
    from ..datasets import load_speech_commands_test

    try:
        model = speech.KwsModel.from_checkpoint(args.checkpoint)
    except (FileNotFoundError, speech.CheckpointError) as e:
        raise SystemExit(f"neurram run kws: {e}") from None
    x, y = load_speech_commands_test(args.data_dir)
    labels = speech.labels_from_dataset(y)
    if args.limit:
        # an even spread over the classes (the files are sorted by class)
        pick = np.linspace(0, len(x) - 1, min(args.limit, len(x))).round().astype(int)
        x, labels = x[pick], labels[pick]
    t0 = time.perf_counter()
    feats = speech.mfcc(x)
    t_mfcc = time.perf_counter() - t0
    conv = R.Conversion.SAR if args.conversion == "sar" else R.Conversion.DECREMENT
    cal = feats[np.unique(np.linspace(0, len(feats) - 1, max(1, args.calibration_clips)).round().astype(int))]
    report = run_kws(chip, feats, labels, model, conversion=conv, progress=not args.quiet, calibration_features=cal,
                     ih_copies=args.ih_copies, passes=args.passes)
    print(report.mapping_summary)
    print(f"MFCC front end           {t_mfcc:.1f} s for {len(x)} clips (host)")
    print(report.table())
    print("confusion matrix (rows true, columns predicted): " + " ".join(n[:4] for n in speech.LABELS))
    for k, name in enumerate(speech.LABELS):
        print(f"  {name:<8} " + " ".join(f"{v:4d}" for v in report.confusion[k]))
    if args.plot:
        path = plot_confusion(args.plot, report.confusion,
                              f"KWS on the chip: {100 * report.accuracy:.2f} % ({report.clips} clips)")
        print(f"confusion matrix plot: {path}" if path else
              "confusion matrix plot skipped: matplotlib is not installed (pip install 'neurram[plot]')")
    return {"clips": report.clips, "accuracy": report.accuracy, "software_accuracy": report.software_accuracy,
            "per_class": dict(zip(speech.LABELS, map(float, report.per_class))),
            "per_class_software": dict(zip(speech.LABELS, map(float, report.per_class_software))),
            "confusion": report.confusion.tolist(), "cores_used": report.cores_used,
            "seconds_inference": report.seconds_inference, "unconverged_cells": report.unconverged_cells,
            # the command prints energy and latency per inference from these counters
            "layer_counters": {l.name: {"mvms": l.mvms, "cores": list(l.cores), "counters": l.counters}
                               for l in report.layers},
            "inferences": report.clips, "chip_cycles": report.chip_cycles}
