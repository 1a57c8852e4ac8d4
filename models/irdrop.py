"""IR drop along bitlines and source lines (NEURRAM.md §2 voltage-mode sensing, §4 non-idealities).

PLACEHOLDER DOCSTRING (rewritten below once measured).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["WireParams", "effective_coupling", "ir_drop_factor", "approx_error_bound", "nodal_solve",
           "line_taps", "default_circuit_params", "FORWARD", "BACKWARD", "CORELET"]

FORWARD = 0
BACKWARD = 1

#: Cells per corelet side: one neuron per 16 x 16 corelet (NEURRAM.md §1; Wan et al. 2022 Fig. 2).
CORELET = 16


@dataclass(frozen=True)
class WireParams:
    """Wire and driver resistances of one core's array."""

    #: Bitline metal between two adjacent cells, Ω.
    r_bl_ohm_per_cell: float = 0.5
    #: Source-line metal between two adjacent cells, Ω.
    r_sl_ohm_per_cell: float = 0.5
    #: Output resistance of a line driver (switch to V_ref ± V), Ω.
    r_driver_ohm: float = 100.0
    #: Where each line's neuron (its driver, and its sense node when the line is an output) connects.
    driver_position: str = "start"

    @classmethod
    def ideal(cls) -> "WireParams":
        return cls(0.0, 0.0, 0.0)

    def is_ideal(self) -> bool:
        return self.r_bl_ohm_per_cell == 0 and self.r_sl_ohm_per_cell == 0 and self.r_driver_ohm == 0


def line_taps(n_lines: int, n_cells: int, position: str = "start") -> np.ndarray:
    """Cell index (0 .. n_cells-1) at which each of ``n_lines`` lines meets its neuron."""
    lines = np.arange(n_lines)
    if position == "start":
        return np.zeros(n_lines, dtype=np.int64)
    if position == "end":
        return np.full(n_lines, n_cells - 1, dtype=np.int64)
    if position == "corelet":
        per_line = max(1, -(-n_cells // CORELET))
        return np.minimum(CORELET * (lines % per_line) + CORELET // 2, n_cells - 1).astype(np.int64)
    raise ValueError(f"driver_position must be 'start', 'end' or 'corelet', not {position!r}")


def _oriented(g_uS, wire: WireParams, direction: int):
    """(g in S as inputs x outputs, r_in, r_out, r_driver, input-line taps, output-line taps)."""
    g = np.asarray(g_uS, dtype=np.float64)
    if g.ndim != 2:
        raise ValueError("g_uS must be a (rows, cols) matrix")
    if np.any(g < 0) or not np.all(np.isfinite(g)):
        raise ValueError("conductances must be finite and >= 0")
    for r in (wire.r_bl_ohm_per_cell, wire.r_sl_ohm_per_cell, wire.r_driver_ohm):
        if not (r >= 0 and np.isfinite(r)):
            raise ValueError("resistances must be finite and >= 0")
    if direction == FORWARD:
        gs, r_in, r_out = g, wire.r_bl_ohm_per_cell, wire.r_sl_ohm_per_cell
    elif direction == BACKWARD:
        gs, r_in, r_out = g.T, wire.r_sl_ohm_per_cell, wire.r_bl_ohm_per_cell
    else:
        raise ValueError("direction must be FORWARD (0) or BACKWARD (1)")
    n_in, n_out = gs.shape
    # Input line i runs along the output index (axis 1); output line j runs along axis 0.
    t_in = line_taps(n_in, n_out, wire.driver_position)
    t_out = line_taps(n_out, n_in, wire.driver_position)
    return np.ascontiguousarray(gs) * 1e-6, float(r_in), float(r_out), float(wire.r_driver_ohm), t_in, t_out


def _green(n: int, tap: int, r: float, r0: float) -> np.ndarray:
    """Resistance matrix of a chain of n nodes fed at node ``tap`` through r0, r between nodes.

    R[k, l] = r0 + r · (number of wire segments shared by the paths tap→k and tap→l): the voltage
    drop at node k per ampere drawn at node l.
    """
    d = np.arange(n) - tap
    same_side = (np.sign(d)[:, None] * np.sign(d)[None, :]) > 0
    shared = np.where(same_side, np.minimum(np.abs(d)[:, None], np.abs(d)[None, :]), 0)
    return r0 + r * shared


def _ideal(g: np.ndarray):
    colsum = g.sum(axis=0)
    live = colsum > 0
    w = np.where(live, g / np.where(live, colsum, 1.0), 0.0)
    return w, live


# ------------------------------------------------------------------------------------------------
# Exact
# ------------------------------------------------------------------------------------------------

def _line_admittance(g_rows, greens, taps):
    """F_i = (D_i^-1 + R_i)^-1 = S (I + S R S)^-1 S for a block of input lines: (rows, n, n)."""
    c, n = g_rows.shape
    s = np.sqrt(g_rows)
    m = np.empty((c, n, n))
    for t in np.unique(taps):
        sel = taps == t
        m[sel] = greens[int(t)][None, :, :] * s[sel][:, :, None] * s[sel][:, None, :]
    m[:, np.arange(n), np.arange(n)] += 1.0
    x = np.linalg.solve(m, np.broadcast_to(np.eye(n), (c, n, n)))
    return x * s[:, :, None] * s[:, None, :]


def _exact(g, r_in, r_out, r_drv, t_in, t_out, chunk=32):
    n_in, n_out = g.shape
    w, live = _ideal(g)
    greens = {int(t): _green(n_out, int(t), r_in, r_drv) for t in np.unique(t_in)}
    # Output line j is read at row t_out[j]: vs[t_j, j].
    tapped = [np.flatnonzero(t_out == i) for i in range(n_in)]
    # vs_i = A vs_0 + a (inputs as columns), J_i = B vs_0 + b: SL node voltages and the current in
    # the SL segment below row i, as linear functions of the (unknown) row-0 voltages vs_0.
    A = np.eye(n_out)
    a = np.zeros((n_out, n_in))
    B = np.zeros((n_out, n_out))
    b = np.zeros((n_out, n_in))
    read_A = np.zeros((n_out, n_out))
    read_a = np.zeros((n_out, n_in))
    sl_wire = r_out > 0
    for i0 in range(0, n_in, chunk):
        i1 = min(n_in, i0 + chunk)
        F = _line_admittance(g[i0:i1], greens, t_in[i0:i1])
        for i in range(i0, i1):
            Fi = F[i - i0]
            js = tapped[i]
            if js.size:
                read_A[js] = A[js]
                read_a[js] = a[js]
            if sl_wire:
                B -= Fi @ A
                if i:
                    b[:, :i] -= Fi @ a[:, :i]
            else:
                B -= Fi
            b[:, i] += Fi.sum(axis=1)
            if sl_wire and i < n_in - 1:
                A -= r_out * B
                a[:, : i + 1] -= r_out * b[:, : i + 1]
    # Open far end: no current leaves the last segment. Dead (empty) output lines read 0.
    dead = ~live
    B[dead, :] = 0.0
    B[:, dead] = 0.0
    B[dead, dead] = -1.0
    b[dead] = 0.0
    vs0 = np.linalg.solve(-B, b)
    v = read_A @ vs0 + read_a
    k = v.T.copy()
    k[:, dead] = 0.0
    return k


# ------------------------------------------------------------------------------------------------
# First-order perturbation
# ------------------------------------------------------------------------------------------------

def _first_order_terms(g, r_in, r_out, r_drv, t_in, t_out):
    n_in, n_out = g.shape
    w, live = _ideal(g)
    h = np.zeros_like(g)            # input-line drop at each cell per volt across every cell of the line
    q = np.zeros((n_out, n_out))
    for t in np.unique(t_in):
        sel = t_in == t
        rg = _green(n_out, int(t), r_in, r_drv)
        h[sel] = g[sel] @ rg
        q += rg * (g[sel].T @ w[sel])
    c = np.zeros_like(g)            # output-line rise seen by the weighted mean, per ampere at each cell
    rise = np.zeros_like(g)         # output-line rise at each cell per volt across every cell of the line
    for t in np.unique(t_out):
        sel = t_out == t
        rs = _green(n_in, int(t), r_out, 0.0)
        c[:, sel] = rs @ w[:, sel]
        rise[:, sel] = rs @ g[:, sel]
    return w, live, h, q, c, rise


def _approx_plain(g, r_in, r_out, r_drv, t_in, t_out):
    """First order in every resistance around the ideal state (kept for comparison)."""
    w, live, h, q, c, _ = _first_order_terms(g, r_in, r_out, r_drv, t_in, t_out)
    beta = (g * c).sum(axis=0)
    k1 = w * h - w @ q + g * c - w * beta
    k = w - k1
    k[:, ~live] = 0.0
    return k


def _approx(g, r_in, r_out, r_drv, t_in, t_out):
    """Lumped line resistances exactly, the distributed remainder to first order."""
    n_in, n_out = g.shape
    rho = g.sum(axis=1)                       # input-line conductance
    colsum = g.sum(axis=0)
    live = colsum > 0
    # Input lines: R_i = r_lump_i·11ᵀ + Rw_i, r_lump_i the G-weighted mean of R_i.
    h = np.empty_like(g)                      # Σ_l R_i[j,l] G_il
    qf = np.zeros((n_out, n_out))             # Σ_i G_ij G_il R_i[j,l]
    for t in np.unique(t_in):
        sel = t_in == t
        rg = _green(n_out, int(t), r_in, r_drv)
        h[sel] = g[sel] @ rg
        qf += rg * (g[sel].T @ g[sel])
    with np.errstate(invalid="ignore", divide="ignore"):
        r_lump = np.where(rho > 0, (h * g).sum(axis=1) / np.where(rho > 0, rho * rho, 1.0), r_drv)
    h -= (r_lump * rho)[:, None]              # now Σ_l Rw_i[j,l] G_il
    qf -= (g.T * r_lump) @ g                  # now Σ_i G_ij G_il Rw_i[j,l]
    # Exact solution with lumped input-line resistances only.
    gam = 1.0 / (1.0 + r_lump * rho)
    hmat = np.diag(colsum) - (g.T * (r_lump * gam)) @ g
    hmat[~live, :] = 0.0
    hmat[:, ~live] = 0.0
    hmat[~live, ~live] = 1.0
    rhs = g.T * gam                           # (n_out, n_in)
    rhs[~live] = 0.0
    hinv_rhs = np.linalg.solve(hmat, rhs)
    kd = hinv_rhs.T                           # (n_in, n_out)
    gk = g @ kd.T                             # (n_in, n_in): Σ_j G_ij K_d[m, j]
    alpha = gam[:, None] * (np.eye(n_in) + r_lump[:, None] * gk)   # line voltage i for input m
    # Output lines (floating, no lumped part): rise at each cell per volt on every cell.
    rise = np.empty_like(g)
    z = np.zeros((n_in, n_in))
    for t in np.unique(t_out):
        sel = t_out == t
        rs = _green(n_in, int(t), r_out, 0.0)
        rise[:, sel] = rs @ g[:, sel]
        z += rs * (g[:, sel] @ g[:, sel].T)
    gh = g * h
    gr = g * rise
    e_row = z @ alpha - (gh + gr) @ kd.T                                   # (i, m)
    e_col = (gh + gr).T @ alpha - qf @ kd.T - gr.sum(axis=0)[:, None] * kd.T   # (j, m)
    dv = np.linalg.solve(hmat, (g.T * (r_lump * gam)) @ e_row - e_col)
    dv[~live] = 0.0
    k = kd + dv.T
    k[:, ~live] = 0.0
    return k


# ------------------------------------------------------------------------------------------------
# Public API
# ------------------------------------------------------------------------------------------------

def effective_coupling(g_uS, wire: WireParams, direction: int = FORWARD, method: str = "exact") -> np.ndarray:
    """Effective coupling K (inputs x outputs, float64) of an array with wire resistance.

    V_j - V_ref = Σ_i u_i K_ij for drive deviations u_i on the input lines. ``method`` is
    "exact" or "approx" (first-order perturbation). See the module docstring.
    """
    g, r_in, r_out, r_drv, t_in, t_out = _oriented(g_uS, wire, direction)
    if r_in == 0 and r_out == 0 and r_drv == 0:
        w, _ = _ideal(g)
        return w
    if method == "exact":
        return _exact(g, r_in, r_out, r_drv, t_in, t_out)
    if method == "approx":
        return _approx(g, r_in, r_out, r_drv, t_in, t_out)
    raise ValueError(f"method must be 'exact' or 'approx', not {method!r}")


def ir_drop_factor(g_uS, wire: WireParams, direction: int = FORWARD) -> float:
    """ε: the largest relative line-voltage error at any cell if every cell carried its full drive."""
    g, r_in, r_out, r_drv, t_in, t_out = _oriented(g_uS, wire, direction)
    _, _, h, _, _, rise = _first_order_terms(g, r_in, r_out, r_drv, t_in, t_out)
    return float((h + rise).max()) if g.size else 0.0


def approx_error_bound(g_uS, wire: WireParams, u, direction: int = FORWARD) -> float:
    """Bound on the S-weighted RMS output error of "approx" for drive ``u`` (see docstring)."""
    g, *_ = _oriented(g_uS, wire, direction)
    eps = ir_drop_factor(g_uS, wire, direction)
    w, live = _ideal(g)
    u = np.asarray(u, dtype=np.float64)
    v0 = u @ w
    colsum = g.sum(axis=0)
    spread = (w * (u[:, None] - v0[None, :]) ** 2).sum(axis=0)
    return eps * eps * float(np.sqrt((colsum * spread).sum() / colsum.sum()))


def nodal_solve(g_uS, wire: WireParams, u, direction: int = FORWARD) -> np.ndarray:
    """Dense nodal analysis of the whole network (reference for small arrays).

    Every cell has a bitline node and a source-line node; input-line drivers are ideal sources
    u_i behind r_driver at the line's tap; output lines float and are read at their tap.
    Returns V_j - V_ref (volts) for drive deviations ``u`` (volts).
    """
    g, r_in, r_out, r_drv, t_in, t_out = _oriented(g_uS, wire, direction)
    n_in, n_out = g.shape
    u = np.asarray(u, dtype=np.float64)
    ii, jj = np.meshgrid(np.arange(n_in), np.arange(n_out), indexing="ij")
    in_id = ii * n_out + (jj if r_in > 0 else 0)                    # zero resistance: one node
    out_id = n_in * n_out + (ii if r_out > 0 else 0) * n_out + jj
    used, inv = np.unique(np.concatenate([in_id.ravel(), out_id.ravel()]), return_inverse=True)
    in_id = inv[: n_in * n_out].reshape(n_in, n_out)
    out_id = inv[n_in * n_out:].reshape(n_in, n_out)
    n = used.size
    y = np.zeros((n, n))
    rhs = np.zeros(n)

    def stamp(p, q, gval):
        gval = np.broadcast_to(gval, np.shape(p)).ravel()
        p, q = np.ravel(p), np.ravel(q)
        np.add.at(y, (p, p), gval)
        np.add.at(y, (q, q), gval)
        np.add.at(y, (p, q), -gval)
        np.add.at(y, (q, p), -gval)

    stamp(in_id, out_id, g)
    if r_in > 0:
        stamp(in_id[:, :-1], in_id[:, 1:], 1.0 / r_in)
    if r_out > 0:
        stamp(out_id[:-1, :], out_id[1:, :], 1.0 / r_out)
    taps = in_id[np.arange(n_in), t_in]
    fixed = np.zeros(n, dtype=bool)
    v = np.zeros(n)
    if r_drv > 0:
        np.add.at(y, (taps, taps), 1.0 / r_drv)
        np.add.at(rhs, taps, u / r_drv)
    else:
        fixed[taps] = True
        v[taps] = u
    free = ~fixed
    rhs_f = rhs[free] - y[np.ix_(free, fixed)] @ v[fixed]
    v[free] = np.linalg.solve(y[np.ix_(free, free)], rhs_f)
    return v[out_id[t_out, np.arange(n_out)]]


def default_circuit_params() -> dict:
    """PLACEHOLDER"""
    return {}
