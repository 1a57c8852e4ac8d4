"""Map a quantised network (``firmware/nn.py``) onto a chip's cores (docs/chip.md §2, docs/analog-model.md).

* Dense and convolution layers become matrices W (outputs x inputs); a convolution's inputs are
  its im2col patches in channel-major order.
* Weights map analog, not quantised, onto differential pairs of rows: G+ = max(W, 0)·G_max/w_max
  on row 2i, G- = max(-W, 0)·G_max/w_max on row 2i+1, whose drive is inverted (POLARITY), with
  w_max the 95th percentile of |W| per layer (larger weights saturate at G_max).
* The bias becomes extra rows whose input is held at the largest code, spread over 1-6 rows and
  over all segments of a split layer, so no cell must hold a large value.
* A layer whose rows do not fit one core is split into segments of at most ``max_segment_rows``
  logical inputs on several cores; the host adds the partial sums.
* Segments are packed block-diagonally (disjoint rows and columns), so small layers share cores
  without touching each other's outputs.
* Each segment gets an operating point: the charge packet that puts the largest output it must
  resolve (the clip of a ReLU layer, the calibration maximum of the logits) near ``max_steps``.
"""

from dataclasses import dataclass, field

import numpy as np

from neurram.spec.analog import NEURON_GAIN, charge_per_unit_nV
from neurram.spec.mvm import PACKET_UV_MAX

from . import nn, validate

__all__ = ["Segment", "MappedLayer", "Mapping", "map_network", "MappingError", "G_MAX_uS", "fold_batchnorm"]

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

    @property
    def x_max(self) -> int:
        return (1 << self.in_bits) - 1


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

    def summary(self) -> str:
        lines = [f"{len(self.layers)} weight layers on {len(self.cores_used)} of {self.n_cores} cores "
                 f"({self.rows} x {self.cols} each)"]
        for l in self.layers:
            segs = ", ".join(f"core {s.core} rows {s.rows[0]}-{s.rows[-1]} cols {s.col0}-{s.col0 + s.n_out - 1}"
                             for s in l.segments)
            lines.append(f"  {l.name:<8} {l.weight.shape[0]:>4} x {l.weight.shape[1]:<5} w_max {l.w_max:.3f}  "
                         f"{len(l.segments)} segment(s), {l.bias_rows_total} bias row(s): {segs}")
        return "\n".join(lines)


def fold_batchnorm(net: nn.Network) -> nn.Network:
    """Fold every ``{"type": "batchnorm", "gamma", "beta", "mean", "var", "eps"}`` layer into the
    conv or dense layer before it: W' = W·γ/√(var+ε) per output, b' = (b - mean)·γ/√(var+ε) + β.
    The activation moves from the batch-norm layer (if it has one) to the folded layer."""
    out = []
    for layer in net.layers:
        if layer["type"] != "batchnorm":
            out.append(dict(layer))
            continue
        if not out or out[-1]["type"] not in ("conv", "dense"):
            raise MappingError("a batchnorm layer must follow a conv or dense layer")
        prev = out[-1]
        scale = np.asarray(layer["gamma"], float) / np.sqrt(np.asarray(layer["var"], float) + layer.get("eps", 1e-5))
        w = np.asarray(prev["weight"], float)
        b = np.asarray(prev["bias"], float) if prev.get("bias") is not None else np.zeros(w.shape[0])
        prev["weight"] = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
        prev["bias"] = (b - np.asarray(layer["mean"], float)) * scale + np.asarray(layer["beta"], float)
        if layer.get("act") is not None:
            prev["act"] = layer["act"]
    return nn.Network(net.input, out, dict(net.meta))


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
                max_bias_rows: int = 6, max_steps: int = 100, pulse_multiplier: int = 1, v_mV: int = 100,
                neuron_gain: float = NEURON_GAIN, percentile: float = 95.0, bad_rows: dict | None = None) -> Mapping:
    """Place ``net`` on a chip described by ``info`` (a ChipConfig, e.g. ``chip.config``).

    ``bad_rows``: {core: rows} that must not be used (unformed or leaky cells); segments take
    spare rows instead (docs/chip.md §3: per-die bad-row tables, spare rows swapped in)."""
    validate.network(net, "map_network: network")
    rows, cols = info.rows, info.cols
    n_cores = info.n_cores
    net = fold_batchnorm(net)
    ranges = _layer_ranges(net, x_cal) if x_cal is not None else {}
    q = net.input
    in_bits = int(q["bits"])
    in_step = nn.input_step(q)
    layers = []
    for spec in net.weight_layers():
        W = np.asarray(spec["weight"], np.float64).reshape(len(spec["weight"]), -1)
        b = np.asarray(spec["bias"], np.float64) if spec.get("bias") is not None else np.zeros(W.shape[0])
        O, I = W.shape
        if O > cols:
            raise MappingError(f"layer {spec['name']}: {O} outputs do not fit {cols} source lines")
        w_max = float(np.percentile(np.abs(W), percentile))
        if not w_max > 0:
            w_max = float(np.abs(W).max()) or 1.0
        x_max = (1 << in_bits) - 1
        b_code = b / (in_step * x_max)                      # bias in units of weight x max code
        n_bias = int(np.clip(np.ceil(np.abs(b_code).max() / w_max), 1, max_bias_rows)) if np.any(b) else 0
        logical_per_core = rows // 2
        per_seg = min(max_segment_inputs, logical_per_core - 1)
        n_seg = max(1, -(-I // per_seg))
        n_bias = max(n_bias, 0)
        ml = MappedLayer(spec["name"], spec, W, b, w_max, in_bits, in_step,
                         b_code / n_bias if n_bias else np.zeros(O), n_bias)
        act = spec.get("act")
        ml.out_range = float(act["clip"]) if act is not None else ranges.get(spec["name"], float(np.abs(b).max() + np.abs(W).sum(1).max() * in_step * x_max))
        splits = np.array_split(np.arange(I), n_seg)
        bias_split = np.array_split(np.arange(n_bias), n_seg)
        for k, (idx, bidx) in enumerate(zip(splits, bias_split)):
            Wk = np.concatenate([W[:, idx].T, np.repeat(ml.bias_row_weight[None, :], len(bidx), 0)], axis=0)
            gp = np.clip(Wk, 0, w_max) / w_max * G_MAX_uS
            gm = np.clip(-Wk, 0, w_max) / w_max * G_MAX_uS
            ml.segments.append(Segment(spec["name"], k, -1, idx, len(bidx), 0, O, gp, gm))
        layers.append(ml)
        in_bits = int(act["bits"]) if act is not None else in_bits
        in_step = nn.act_step(act) if act is not None else in_step
    _pack(layers, rows, cols, n_cores, bad_rows or {})
    mapping = Mapping(net, layers, rows, cols, n_cores, max_steps, pulse_multiplier, v_mV,
                      bad_rows={c: set(map(int, r)) for c, r in (bad_rows or {}).items()})
    mapping.options = dict(x_cal=x_cal, max_segment_inputs=max_segment_inputs, max_bias_rows=max_bias_rows,
                           max_steps=max_steps, pulse_multiplier=pulse_multiplier, v_mV=v_mV,
                           neuron_gain=neuron_gain, percentile=percentile)
    for ml in layers:
        for s in ml.segments:
            s.packet_uV = _packet(ml, s, mapping, neuron_gain)
    return mapping


def _pack(layers, rows, cols, n_cores, bad_rows):
    """Block-diagonal packing: each core fills rows and columns from its corner onwards,
    skipping its bad rows (a segment's rows need not be contiguous)."""
    good = [[r for r in range(rows) if r not in set(bad_rows.get(core, ()))] for core in range(n_cores)]
    free = [[0, 0] for _ in range(n_cores)]      # next free index into good rows, next free column
    for ml in layers:
        for s in ml.segments:
            for core in range(n_cores):
                r, c = free[core]
                if r + s.n_rows <= len(good[core]) and c + s.n_out <= cols:
                    s.core, s.col0 = core, c
                    s.rows = np.asarray(good[core][r:r + s.n_rows])
                    free[core] = [r + s.n_rows, c + s.n_out]
                    break
            else:
                need = sum(x.n_rows for l in layers for x in l.segments)
                raise MappingError(f"the network needs about {need} physical rows; this chip has "
                                   f"{n_cores} cores x {rows} rows and layer {ml.name} segment {s.index} "
                                   f"({s.n_rows} rows x {s.n_out} columns) finds no room")


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
    """Packet (µV) putting the layer's output range near max_steps (with 10 % headroom)."""
    units = ml.out_range / ml.in_step                          # largest |Σ code·w|
    q_max = float(np.max(units * charge_per_unit(ml, s, mapping, neuron_gain)))
    return int(np.clip(np.ceil(q_max / (0.9 * mapping.max_steps) / 1000.0), 1, PACKET_UV_MAX))
