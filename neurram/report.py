"""Energy and latency reports from the chip's event counters (docs/architecture.md, contract 8).

    energy_report(layers, config, model)       per-layer table: energy and latency per MVM, per layer, per inference
    tops_per_watt_grid(model, ...)              TOPS/W for input bits 1-8 x output bits 1-8 (numpy array)
    tops_table(model, ...)                      that grid as a text table
    paper_comparison(model, ...)                the paper's measured TOPS/W next to the model's at the same settings
    plot_tops_per_watt(path, ...)               the grid as a PNG heat map (needs matplotlib: the `plot` extra)

Counts come from the chip (``Chip.counters``; per layer from ``RunResult.layers``); costs per event
from :class:`neurram.models.energy.EnergyModel`, whose fields cite their sources. Bytes over the
host interface are not counted by the chip: they are derived here from the buffer layout
(:func:`bytes_per_mvm`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurram.models.energy import COUNTER_KEYS, ENERGY_KEYS, PAPER_TOPS_PER_W, EnergyModel

__all__ = ["bytes_per_mvm", "LayerEnergy", "layer_energies", "energy_report", "tops_per_watt_grid",
           "tops_table", "paper_comparison", "plot_tops_per_watt", "BITS"]

#: Input and output precisions of the TOPS/W grid.
BITS = tuple(range(1, 9))


def bytes_per_mvm(config) -> int:
    """Payload bytes one MVM moves over the host interface: its input vector as bit-planes
    (``input_planes`` planes) and its output bytes (8 planes), ``words_per_line_vector`` 32-bit
    words per plane (the INPUT and OUTPUT buffer layouts, ``neurram/spec/regmap.py``). Frame headers and
    CRCs (a few bytes per batch) are left out."""
    return int((config.input_planes + 8) * config.words_per_line_vector * 4)


@dataclass
class LayerEnergy:
    name: str
    cores: tuple
    mvms: int
    counts: dict
    energy_pJ: dict          # breakdown, EnergyModel.energy_pJ (io included)
    latency_ns: float        # busy cycles at the chip clock
    event_latency_ns: float  # per-event durations (neuron timing of the test system)

    @property
    def chip_pJ(self) -> float:
        """Energy on the chip (everything but the host interface)."""
        return self.energy_pJ["total"] - self.energy_pJ["io"]


def _as_layers(counters_per_layer):
    """Accept RunResult.layers (objects with name/counters/mvms/cores) or {name: counts}."""
    if isinstance(counters_per_layer, dict):
        items = counters_per_layer.items()
        return [(name, (), int(c.get("mvm", 0)), dict(c)) for name, c in items]
    out = []
    for l in counters_per_layer:
        counts = dict(l.counters)
        out.append((l.name, tuple(getattr(l, "cores", ())), int(getattr(l, "mvms", counts.get("mvm", 0))), counts))
    return out


def layer_energies(counters_per_layer, config, model: EnergyModel | None = None, *,
                   include_io: bool = True) -> list[LayerEnergy]:
    """Energy and latency of every layer from its counters (cores of ``config.rows`` x ``config.cols``)."""
    model = model or EnergyModel()
    bpm = bytes_per_mvm(config) if include_io else 0
    res = []
    for name, cores, mvms, counts in _as_layers(counters_per_layer):
        counts = {k: v for k, v in counts.items() if k in COUNTER_KEYS}
        e = model.energy_pJ(counts, rows=config.rows, cols=config.cols, bytes_moved=counts.get("mvm", 0) * bpm)
        res.append(LayerEnergy(name, cores, mvms, counts, e, model.latency_ns(counts, config.clock_hz),
                               model.event_latency_ns(counts)))
    return res


def _eng(x: float, unit: str) -> str:
    """Engineering notation: 1234.5 pJ -> '1.23 nJ'."""
    prefixes = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1, ""), (1e-3, "m"), (1e-6, "µ"),
                (1e-9, "n"), (1e-12, "p"), (1e-15, "f")]
    if x == 0:
        return f"0 {unit}"
    for scale, p in prefixes:
        if abs(x) >= scale:
            return f"{x / scale:.3g} {p}{unit}"
    return f"{x:.3g} {unit}"


def _J(pJ: float) -> str:
    return _eng(pJ * 1e-12, "J")


def _s(ns: float) -> str:
    return _eng(ns * 1e-9, "s")


def _table(header, rows) -> str:
    cols = list(zip(header, *rows)) if rows else [(h,) for h in header]
    widths = [max(len(str(v)) for v in c) for c in cols]
    line = lambda r: "  ".join(str(v).rjust(w) if i else str(v).ljust(w) for i, (v, w) in enumerate(zip(r, widths)))
    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), sep] + [line(r) for r in rows])


def energy_report(counters_per_layer, config, model: EnergyModel | None = None, *,
                  images: int | None = None, include_io: bool = True) -> str:
    """A text report of energy and latency per MVM, per layer and (with ``images``) per inference.

    ``counters_per_layer``: ``RunResult.layers`` / ``MnistReport.layers`` (LayerStats with
    ``.counters``, ``.mvms``, ``.cores``) or a dict ``{layer name: counters}``. ``config``: the
    ChipConfig of the chip that produced the counts (rows, cols, clock_hz, buffer layout).
    Latency: busy cycles at ``config.clock_hz`` (the RTL's time, cores one after another as the
    runtime schedules them) and, for comparison, the per-event durations of the test system.
    """
    model = model or EnergyModel()
    layers = layer_energies(counters_per_layer, config, model, include_io=include_io)
    per = images if images else None
    header = ["layer", "cores", "MVMs", "chip E/MVM", "chip E/layer"]
    if per:
        header += ["chip E/inference"]
    header += ["host I/O E/layer", "latency/MVM", "latency/layer", "analog latency/layer"]
    rows = []
    tot = {k: 0.0 for k in ENERGY_KEYS}
    tot_lat = tot_ev = 0.0
    tot_mvm = 0
    for l in layers:
        r = [l.name, ",".join(str(c) for c in l.cores) or "-", f"{l.mvms:,}",
             _J(l.chip_pJ / l.mvms) if l.mvms else "-", _J(l.chip_pJ)]
        if per:
            r.append(_J(l.chip_pJ / per))
        r += [_J(l.energy_pJ["io"]), _s(l.latency_ns / l.mvms) if l.mvms else "-", _s(l.latency_ns),
              _s(l.event_latency_ns)]
        rows.append(r)
        for k in ENERGY_KEYS:
            tot[k] += l.energy_pJ[k]
        tot_lat += l.latency_ns
        tot_ev += l.event_latency_ns
        tot_mvm += l.mvms
    chip_total = sum(v for k, v in tot.items() if k != "io")
    r = ["total", "", f"{tot_mvm:,}", _J(chip_total / tot_mvm) if tot_mvm else "-", _J(chip_total)]
    if per:
        r.append(_J(chip_total / per))
    r += [_J(tot["io"]), _s(tot_lat / tot_mvm) if tot_mvm else "-", _s(tot_lat), _s(tot_ev)]
    rows.append(r)
    out = [f"Energy and latency from the event counters ({config.rows} x {config.cols} cores, "
           f"clock {config.clock_hz / 1e6:g} MHz; costs: neurram.models.energy.EnergyModel)",
           _table(header, rows)]
    if per:
        io_b = tot_mvm * bytes_per_mvm(config) if include_io else 0
        out += ["",
                f"per inference ({per} images): chip {_J(chip_total / per)}, with host I/O "
                f"{_J((chip_total + tot['io']) / per)} ({io_b / per:,.0f} bytes); "
                f"latency {_s(tot_lat / per)} (busy cycles at {config.clock_hz / 1e6:g} MHz), "
                f"{_s(tot_ev / per)} (12.5 MHz neuron timing)"]
    share = [[k, _J(v), f"{100 * v / max(chip_total + tot['io'], 1e-30):.1f} %"] for k, v in tot.items()]
    out += ["", "energy by event kind (all layers)", _table(["event", "energy", "share"], share)]
    return "\n".join(out)


# -- TOPS/W against precision -------------------------------------------------------------------------

def tops_per_watt_grid(model: EnergyModel | None = None, *, rows: int = 256, cols: int = 256,
                       conversion: str = "decrement", signed: bool = False, pulse_multiplier: int = 1,
                       cells_per_weight: int = 1, io_bytes_per_mvm: int = 0) -> np.ndarray:
    """TOPS/W of one MVM, ``grid[i, j]`` for input bits BITS[i] and output bits BITS[j]
    (:meth:`EnergyModel.tops_per_watt`; signed inputs have no 1-bit row: NaN)."""
    model = model or EnergyModel()
    g = np.full((len(BITS), len(BITS)), np.nan)
    for i, b in enumerate(BITS):
        if signed and b < 2:
            continue
        for j, bo in enumerate(BITS):
            g[i, j] = model.tops_per_watt(b, bo, rows, cols, conversion=conversion, signed=signed,
                                          pulse_multiplier=pulse_multiplier, cells_per_weight=cells_per_weight,
                                          bytes_moved=io_bytes_per_mvm)
    return g


def tops_table(model: EnergyModel | None = None, *, rows: int = 256, cols: int = 256,
               conversion: str = "decrement", signed: bool = False, pulse_multiplier: int = 1,
               cells_per_weight: int = 1) -> str:
    """The TOPS/W grid as text: one row per input precision, one column per output precision."""
    g = tops_per_watt_grid(model, rows=rows, cols=cols, conversion=conversion, signed=signed,
                           pulse_multiplier=pulse_multiplier, cells_per_weight=cells_per_weight)
    how = {"decrement": "charge-decrement, worst case 2^(out-1) steps (at most 127)",
           "sar": "SAR, out-1 steps", "sign": "sign"}.get(conversion, conversion)
    title = (f"TOPS/W of one MVM on a {rows} x {cols} core: {'signed' if signed else 'unsigned'} bit-serial "
             f"inputs (pulse multiplier {pulse_multiplier}), {how}; ops = 2 x {rows}"
             f"{'/' + str(cells_per_weight) if cells_per_weight != 1 else ''} x {cols}; host I/O excluded")
    header = ["in \\ out"] + [f"{b} b" for b in BITS]
    body = [[f"{b} b"] + ["-" if np.isnan(v) else f"{v:.2f}" for v in g[i]] for i, b in enumerate(BITS)]
    return title + "\n" + _table(header, body)


def paper_comparison(model: EnergyModel | None = None, *, rows: int = 256, cols: int = 256) -> str:
    """The paper's measured TOPS/W (Extended Data Fig. 12e via CiMLoop) next to the model's at the
    paper's settings: signed inputs, outputs 2 bits wider, differential pairs (2 cells per weight)."""
    model = model or EnergyModel()
    body = []
    for (b, bo), ref in PAPER_TOPS_PER_W.items():
        if b < 2 or bo > 8:
            continue
        kw = dict(signed=True, cells_per_weight=2)
        body.append([f"{b} b / {bo} b", f"{ref:.2f}",
                     f"{model.tops_per_watt(b, bo, rows, cols, conversion='sar', **kw):.2f}",
                     f"{model.tops_per_watt(b, bo, rows, cols, conversion='decrement', **kw):.2f}"])
    return ("Against the paper (signed inputs, outputs 2 bits wider, ops counted per differential pair)\n"
            + _table(["in / out", "paper", "model SAR", "model decrement"], body)
            + f"\n45 nm digital 8-bit MAC [Lu]: {model.digital_tops_per_watt():.2f} TOPS/W arithmetic only, "
              f"{model.digital_tops_per_watt('sram_max'):.2f}-{model.digital_tops_per_watt('sram'):.2f} "
              f"with the weight read from SRAM")


def plot_tops_per_watt(path, model: EnergyModel | None = None, *, rows: int = 256, cols: int = 256,
                       conversions=("decrement", "sar"), signed: bool = False) -> str:
    """Write the TOPS/W grid (one heat map per conversion) as a PNG to ``path``; returns the path.
    Needs matplotlib (``pip install 'neurram[plot]'``)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:   # pragma: no cover - depends on the environment
        raise RuntimeError("plotting needs matplotlib: pip install 'neurram[plot]'") from e
    model = model or EnergyModel()
    grids = [tops_per_watt_grid(model, rows=rows, cols=cols, conversion=c, signed=signed) for c in conversions]
    vmax = np.nanmax([np.nanmax(g) for g in grids])
    vmin = np.nanmin([np.nanmin(g) for g in grids])
    fig, axes = plt.subplots(1, len(grids), figsize=(5.2 * len(grids), 4.6), squeeze=False)
    norm = matplotlib.colors.LogNorm(vmin=vmin, vmax=vmax)
    for ax, g, conv in zip(axes[0], grids, conversions):
        im = ax.imshow(g, origin="lower", cmap="viridis", norm=norm,
                       extent=(0.5, len(BITS) + 0.5, 0.5, len(BITS) + 0.5))
        for i, b in enumerate(BITS):
            for j, bo in enumerate(BITS):
                if not np.isnan(g[i, j]):
                    ax.text(bo, b, f"{g[i, j]:.3g}", ha="center", va="center", fontsize=7,
                            color="white" if g[i, j] < np.sqrt(vmin * vmax) else "black")
        ax.set_xticks(BITS)
        ax.set_yticks(BITS)
        ax.set_xlabel("output bits")
        ax.set_ylabel("input bits")
        ax.set_title(f"TOPS/W, {dict(decrement='charge-decrement', sar='SAR').get(conv, conv)}, {rows}x{cols} core")
    fig.colorbar(im, ax=axes[0].tolist(), label="TOPS/W (log scale)")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return str(path)
