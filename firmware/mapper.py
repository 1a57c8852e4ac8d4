"""Map a quantised network (``firmware/nn.py``) onto a chip's cores (docs/chip.md §2, docs/analog-model.md).

* Dense and convolution layers become matrices W (outputs x inputs); a convolution's inputs are
  its im2col patches in channel-major order.
* Weights map analog, not quantised, onto differential pairs of rows: G+ = max(W, 0)·G_max/w_max
  on row 2i, G- = max(-W, 0)·G_max/w_max on row 2i+1, whose drive is inverted (POLARITY), with
  w_max the 95th percentile of |W| per layer (larger weights saturate at G_max).
* The bias becomes extra rows whose input is held at the largest code, spread over 1-6 rows and
  over all segments of a split layer, so no cell must hold a large value; what 6 pairs cannot hold
  (batch-norm-folded biases can be large) the host adds (``MappedLayer.host_bias``).
* A layer is split into segments of at most ``max_segment_inputs`` logical inputs (the chip used
  about 100: fewer rows on at once, less IR drop); the host adds the partial sums. A layer with
  more outputs than a core has columns is also split over column groups.
* Packing fills the cores in order, layer after layer, cutting a layer's segment where the current
  core's rows end (next-fit with splitting), so layers share cores on disjoint row and column
  ranges and the chip's rows are used almost entirely (ResNet-20 fits one 48-core chip). Every
  core keeps ``spare_rows`` rows free: a bad row (an unformed or leaky cell found by write-verify)
  is swapped for a spare row of the same core, so repairing it moves only that row's cells.
* Each segment gets an operating point: the charge packet that puts the largest output it must
  resolve (the clip of a ReLU layer, the calibration maximum of the logits) near ``max_steps``.
"""

from dataclasses import dataclass, field

import numpy as np

from neurram.spec.analog import NEURON_GAIN, charge_per_unit_nV
from neurram.spec.mvm import PACKET_UV_MAX

from . import nn, validate

__all__ = ["Segment", "MappedLayer", "Mapping", "map_network", "MappingError", "G_MAX_uS"]

G_MAX_uS = 40.0


class MappingError(ValueError):
    """The network does not fit the chip (the message says what and by how much)."""


@dataclass
class Segment:
    """One segment of one layer, placed on one core."""
    layer: str
    index: int
    core: int
    inputs: np.ndarray        # indices of the layer's logical inputs in this segment
    bias_rows: int            # differential bias pairs after the inputs
    col0: int
    n_out: int
    g_plus: np.ndarray        # (n_in + bias_rows, n_out) µS
    g_minus: np.ndarray
    packet_uV: int = 100
    rows: np.ndarray = None   # physical rows in order (pairs: rows[0::2] G+, rows[1::2] G-); skips bad rows
    outputs: np.ndarray = None  # the layer's outputs on columns col0.. (None: all of them, in order)

    @property
    def out(self) -> np.ndarray:
        """Indices of the layer's outputs this segment computes, one per column from ``col0``."""
        return np.arange(self.n_out) if self.outputs is None else self.outputs

    def ideal(self, ml: "MappedLayer", x: np.ndarray) -> np.ndarray:
        """Exact partial sums Σ code·weight (N, n_out) of this segment for the layer's input codes x."""
        out = self.out
        return (x[:, self.inputs] @ ml.weight[np.ix_(out, self.inputs)].T
                + self.bias_rows * ml.x_max * ml.bias_row_weight[out])

    @property
    def n_rows(self) -> int:
        return 2 * (len(self.inputs) + self.bias_rows)

    @property
    def plus_rows(self) -> np.ndarray:
        return self.rows[0::2]

    @property
    def minus_rows(self) -> np.ndarray:
        return self.rows[1::2]


@dataclass
class MappedLayer:
    name: str
    spec: dict                # the nn layer dict
    weight: np.ndarray        # (O, I)
    bias: np.ndarray          # (O,)
    w_max: float
    in_bits: int
    in_step: float            # value of one input code
    bias_row_weight: np.ndarray   # (O,) weight held by each bias row (code units)
    bias_rows_total: int
    segments: list = field(default_factory=list)
    out_range: float = 0.0    # largest |pre-activation| to resolve (clip or calibration max)
    n_bias: int = 0           # differential bias pairs per output group, spread over its segments
    host_bias: np.ndarray | None = None   # (O,) the part of the bias the bias rows cannot hold, added on the host
    in_signed: bool = False   # sign-magnitude input codes (after a linear_q layer)

    @property
    def x_max(self) -> int:
        """The largest input code (the bias rows' drive)."""
        return nn.InputCodes(self.in_bits, self.in_step, self.in_signed).code_max

    def combine(self, parts, n: int) -> np.ndarray:
        """The layer's outputs (n, O) from its segments' partial sums (same order as ``segments``)."""
        if all(s.outputs is None for s in self.segments):
            return sum(parts)
        y = np.zeros((n, self.weight.shape[0]))
        for s, part in zip(self.segments, parts):
            y[:, s.out] += part
        return y


@dataclass
class Mapping:
    net: nn.Network
    layers: list              # MappedLayer, in network order
    rows: int
    cols: int
    n_cores: int
    max_steps: int
    pulse_multiplier: int
    v_mV: int
    bad_rows: dict = field(default_factory=dict)   # core -> set of rows held out of the mapping
    options: dict = field(default_factory=dict)    # map_network's keyword arguments (to map again)

    def unrepaired(self) -> dict:
        """{core: bad rows still in use}: bad rows beyond the core's spare rows."""
        out = {}
        for l in self.layers:
            for s in l.segments:
                hit = set(map(int, s.rows)) & self.bad_rows.get(s.core, set())
                if hit:
                    out.setdefault(s.core, set()).update(hit)
        return out

    @property
    def cores_used(self) -> list:
        return sorted({s.core for l in self.layers for s in l.segments})

    def targets(self, core: int) -> np.ndarray:
        """Conductance targets (rows x cols, µS) of one core; unused cells 0 (off)."""
        g = np.zeros((self.rows, self.cols))
        for l in self.layers:
            for s in l.segments:
                if s.core != core:
                    continue
                g[s.plus_rows, s.col0:s.col0 + s.n_out] = s.g_plus
                g[s.minus_rows, s.col0:s.col0 + s.n_out] = s.g_minus
        return g

    def polarity(self, core: int) -> np.ndarray:
        """Lines whose drive is inverted: the G- row of every pair."""
        p = np.zeros(max(self.rows, self.cols), bool)
        for l in self.layers:
            for s in l.segments:
                if s.core == core:
                    p[s.minus_rows] = True
        return p

    def utilisation(self) -> dict:
        """{core: (rows used, columns used, cells holding a weight)} of every used core."""
        out = {}
        for l in self.layers:
            for s in l.segments:
                r, c, n = out.get(s.core, (0, 0, 0))
                out[s.core] = (r + s.n_rows, c + s.n_out, n + s.n_rows * s.n_out)
        return dict(sorted(out.items()))

    def summary(self, per_core: bool = False) -> str:
        use = self.utilisation()
        rows_used = sum(r for r, _, _ in use.values())
        lines = [f"{len(self.layers)} weight layers, {sum(len(l.segments) for l in self.layers)} segments on "
                 f"{len(self.cores_used)} of {self.n_cores} cores ({self.rows} x {self.cols} each); rows used "
                 f"{rows_used} of {self.n_cores * self.rows} ({100 * rows_used / (self.n_cores * self.rows):.1f} %)"]
        for l in self.layers:
            segs = ", ".join(f"core {s.core} rows {s.rows.min()}-{s.rows.max()} cols {s.col0}-{s.col0 + s.n_out - 1}"
                             for s in l.segments[:4]) + (", ..." if len(l.segments) > 4 else "")
            lines.append(f"  {l.name:<10} {l.weight.shape[0]:>4} x {l.weight.shape[1]:<5} w_max {l.w_max:.3f}  "
                         f"{len(l.segments)} segment(s), {l.bias_rows_total} bias row(s): {segs}")
        if per_core:
            lines.append("  core  rows used  cols used  cells")
            for core, (r, c, n) in use.items():
                lines.append(f"  {core:>4}  {r:>4} {100 * r / self.rows:5.1f}%  {c:>4} {100 * c / self.cols:5.1f}%  "
                             f"{100 * n / (self.rows * self.cols):5.1f}%")
        return "\n".join(lines)


def _layer_ranges(net: nn.Network, x_cal: np.ndarray) -> dict:
    """Largest |pre-activation| of every weight layer on calibration images (software model)."""
    ranges = {}
    q = net.input
    h = nn.quantize_input(x_cal, q).astype(np.float64) * nn.input_step(q)
    if h.ndim == 3:
        h = h[:, None]

    def measure(spec, h):
        x, reshape = nn.layer_inputs(spec, h)
        w = np.asarray(spec["weight"], float).reshape(len(spec["weight"]), -1)
        y = reshape(x @ w.T + np.asarray(spec["bias"], float))
        ranges[spec["name"]] = float(np.abs(y).max())
        act = spec.get("act")
        return nn.quantize_act(y, act).astype(float) * nn.act_step(act) if act is not None else y

    nn.walk(net, h, measure)
    return ranges


def map_network(net: nn.Network, info, *, x_cal: np.ndarray | None = None, max_segment_inputs: int = 100,
                min_segment_inputs: int = 16, max_bias_rows: int = 6, spare_rows: int | None = None, max_steps: int = 100,
                pulse_multiplier: int = 1, v_mV: int = 100, neuron_gain: float = NEURON_GAIN,
                percentile: float = 95.0, bad_rows: dict | None = None) -> Mapping:
    """Place ``net`` on a chip described by ``info`` (a ChipConfig, e.g. ``chip.config``).

    ``bad_rows``: {core: rows} that must not be used (unformed or leaky cells); each is swapped for
    one of the core's ``spare_rows`` (docs/chip.md §3: per-die bad-row tables, spare rows swapped
    in), so the rest of the mapping does not move. ``spare_rows`` None: the most of
    (64, 48, 32, 24, 16, 12, 8, 6, 4, 2, 0) with which the network still fits. A segment is cut
    where a core's rows end, but never below ``min_segment_inputs`` logical inputs (unless its
    layer has fewer left)."""
    validate.network(net, "map_network: network")
    validate.integer(max_segment_inputs, "map_network: max_segment_inputs", 1, None)
    if spare_rows is not None:
        validate.integer(spare_rows, "map_network: spare_rows", 0, info.rows - 4)
    rows, cols = info.rows, info.cols
    n_cores = info.n_cores
    try:
        net = nn.fold_batchnorm(net)
    except ValueError as e:
        raise MappingError(str(e)) from None
    ranges = _layer_ranges(net, x_cal) if x_cal is not None else {}
    try:
        codes_in = nn.layer_input_codes(net)
    except ValueError as e:
        raise MappingError(str(e)) from None
    layers = []
    for spec in net.weight_layers():
        W = np.asarray(spec["weight"], np.float64).reshape(len(spec["weight"]), -1)
        b = np.asarray(spec["bias"], np.float64) if spec.get("bias") is not None else np.zeros(W.shape[0])
        O, I = W.shape
        in_bits, in_step, in_signed = codes_in[spec["name"]]
        w_max = float(np.percentile(np.abs(W), percentile))
        if not w_max > 0:
            w_max = float(np.abs(W).max()) or 1.0
        x_max = codes_in[spec["name"]].code_max
        b_code = b / (in_step * x_max)                      # bias in units of weight x max code
        n_bias = int(np.clip(np.ceil(np.abs(b_code).max() / w_max), 1, max_bias_rows)) if np.any(b) else 0
        # each bias pair holds at most w_max; a bias that needs more than max_bias_rows pairs keeps
        # the rest on the host, an exact digital add (as the KWS mapping does)
        row_w = np.clip(b_code / n_bias, -w_max, w_max) if n_bias else np.zeros(O)
        ml = MappedLayer(spec["name"], spec, W, b, w_max, in_bits, in_step, row_w, 0, n_bias=n_bias,
                         host_bias=(b_code - n_bias * row_w) * in_step * x_max, in_signed=in_signed)
        act = spec.get("act")
        ml.out_range = float(act["clip"]) if act is not None else ranges.get(spec["name"], float(np.abs(b).max() + np.abs(W).sum(1).max() * in_step * x_max))
        layers.append(ml)
    for spare in ((64, 48, 32, 24, 16, 12, 8, 6, 4, 2, 0) if spare_rows is None else (spare_rows,)):
        if spare > info.rows // 4 and spare_rows is None:
            continue
        per_core = (info.rows - spare) // 2 - 1                   # logical inputs one core can hold
        for ml in layers:
            ml.segments, ml.bias_rows_total = [], 0
        try:
            _pack(layers, info, bad_rows or {}, min(max_segment_inputs, per_core), min_segment_inputs, spare)
            break
        except MappingError:
            if spare == 0 or spare_rows is not None:
                raise
    spare_rows = spare
    mapping = Mapping(net, layers, rows, cols, n_cores, max_steps, pulse_multiplier, v_mV,
                      bad_rows={c: set(map(int, r)) for c, r in (bad_rows or {}).items()})
    mapping.options = dict(x_cal=x_cal, max_segment_inputs=max_segment_inputs, min_segment_inputs=min_segment_inputs,
                           max_bias_rows=max_bias_rows, spare_rows=spare_rows, max_steps=max_steps,
                           pulse_multiplier=pulse_multiplier, v_mV=v_mV, neuron_gain=neuron_gain,
                           percentile=percentile)
    for ml in layers:
        for s in ml.segments:
            s.packet_uV = _packet(ml, s, mapping, neuron_gain)
    return mapping


def _row_slots(rows: int, spare_rows: int, bad: set) -> list:
    """Physical row of every logical row slot of a core: slot j is row j unless row j is bad, in
    which case the next good spare row (from ``rows - spare_rows`` on) takes its place. Bad rows
    beyond the spares stay in use (the chip's redundancy is finite): :meth:`Mapping.unrepaired`
    lists them."""
    cap = rows - spare_rows
    spares = iter([r for r in range(cap, rows) if r not in bad])
    out = []
    for r in range(cap):
        out.append(next(spares, r) if r in bad else r)
    return out


def _pack(layers, info, bad_rows, max_inputs, min_inputs, spare_rows):
    """Next-fit with splitting: fill core after core; a layer's next segment takes at most
    ``max_inputs`` logical inputs and whatever rows (pairs, plus its share of the bias pairs) and
    columns the current core has left, else the layer moves on to the next core."""
    rows, cols, n_cores = info.rows, info.cols, info.n_cores
    slots = [_row_slots(rows, spare_rows, set(bad_rows.get(core, ()))) for core in range(n_cores)]
    core, r, c = 0, 0, 0                          # current core, its next free slot and column

    def no_room(ml, what):
        need = sum(2 * (l.weight.shape[1] * -(-l.weight.shape[0] // cols) + l.n_bias) for l in layers)
        raise MappingError(f"the network needs about {need} physical rows; this chip has {n_cores} cores x "
                           f"{rows} rows ({spare_rows} spare per core) and layer {ml.name} {what}: use a chip "
                           "with more cores (--chip model:cores=RxC), fewer spare_rows or a smaller network")

    for ml in layers:
        O, I = ml.weight.shape
        groups = np.array_split(np.arange(O), -(-O // cols))
        for group in groups:
            n_out = len(group)
            done, bias_left = 0, ml.n_bias
            while done < I or bias_left:
                free_pairs = (len(slots[core]) - r) // 2 if core < n_cores else 0
                left = I - done
                segs_left = max(1, -(-left // max_inputs))
                n_b = -(-bias_left // segs_left)
                take = min(max_inputs, left, free_pairs - n_b)
                if take >= left:
                    n_b = bias_left                    # the last segment takes the remaining bias
                    take = min(left, free_pairs - n_b)
                if core >= n_cores:
                    no_room(ml, f"finds no core left for inputs {done}..{I - 1}")
                if c + n_out > cols or take < min(min_inputs, left) or (take <= 0 and left) or free_pairs < n_b:
                    if r == 0 and c == 0 and len(slots[core]) == rows - spare_rows:
                        no_room(ml, f"does not fit an empty core ({2 * (min(min_inputs, left) + n_b)} rows x "
                                    f"{n_out} columns)")
                    core, r, c = core + 1, 0, 0
                    continue
                idx = np.arange(done, done + take)
                Wk = np.concatenate([ml.weight[np.ix_(group, idx)].T,
                                     np.repeat(ml.bias_row_weight[None, group], n_b, 0)], axis=0)
                gp = np.clip(Wk, 0, ml.w_max) / ml.w_max * G_MAX_uS
                gm = np.clip(-Wk, 0, ml.w_max) / ml.w_max * G_MAX_uS
                seg = Segment(ml.name, len(ml.segments), core, idx, n_b, c, n_out, gp, gm,
                              outputs=None if len(groups) == 1 else group)
                seg.rows = np.asarray(slots[core][r:r + seg.n_rows])
                ml.segments.append(seg)
                ml.bias_rows_total += n_b
                r, c = r + seg.n_rows, c + n_out
                done, bias_left = done + take, bias_left - n_b


def charge_per_unit(ml: MappedLayer, s: Segment, mapping: Mapping, neuron_gain: float,
                    g_column_sum: np.ndarray | None = None) -> np.ndarray:
    """Integrator charge (nV) per unit of Σ code·weight, for each output of a segment
    (:func:`neurram.spec.analog.charge_per_unit_nV` at the segment's unit weight G_MAX / w_max),
    from the targets' column sums unless the read-back ``g_column_sum`` is given."""
    if g_column_sum is None:
        g_column_sum = s.g_plus.sum(0) + s.g_minus.sum(0)
    return charge_per_unit_nV(g_column_sum, w_unit_uS=G_MAX_uS / ml.w_max, v_mV=mapping.v_mV,
                              pulse_multiplier=mapping.pulse_multiplier, neuron_gain=neuron_gain)


def _packet(ml, s, mapping, neuron_gain) -> int:
    """Packet (µV) putting the segment's largest output near max_steps (with 10 % headroom).

    A column's largest |Σ code·w| is the layer's output range, or what the column can reach at
    all: every input at the top code with its weight's sign, plus the bias rows. A weak column (a
    small batch-norm scale) has a small conductance sum, so voltage-mode sensing gives it a large
    charge per unit; bounded by the layer's range alone it would set a packet so large that every
    other column of the segment resolves only a step or two."""
    w = ml.weight[np.ix_(s.out, s.inputs)]
    reach = ml.x_max * (np.abs(w).sum(axis=1) + s.bias_rows * np.abs(ml.bias_row_weight[s.out]))
    units = np.minimum(ml.out_range / ml.in_step, reach)       # largest |Σ code·w| per column
    q_max = float(np.max(units * charge_per_unit(ml, s, mapping, neuron_gain)))
    return int(np.clip(np.ceil(q_max / (0.9 * mapping.max_steps) / 1000.0), 1, PACKET_UV_MAX))
