"""IR drop along bitlines and source lines (docs/chip.md §2 voltage-mode sensing, non-idealities in docs/analog-model.md).

The model
---------
A core's array has rows x cols cells; cell (i, j), conductance G_ij from the device model, joins
bitline i to source line j. In an MVM the *input* lines (bitlines forward, source lines backward)
are driven: each by its neuron's driver, an ideal source at V_ref + u_i behind ``r_driver_ohm``,
connected to the line at one cell position, the line's *tap*. The *output* lines float: precharged
to V_ref, then connected only to their cells and to the neuron's sampling capacitor, so in steady
state no current leaves them; each is read at its own tap. The metal between two neighbouring
cells of a line is a resistor, ``r_bl_ohm_per_cell`` or ``r_sl_ohm_per_cell``. The network is
linear in the drives, so::

    V_j - V_ref = Σ_i u_i K_ij        K = effective_coupling(G, wire, direction)

with K (inputs x outputs) a function of the conductances and resistances only: it is computed once
per programmed state and replaces the ideal K = G / Σ_i G in ``Crossbar.coupling``. Equal drives on
all input lines move no current, so every column of K sums to 1.

What the resistances do. Without wire resistance a floating output line settles to the
conductance-weighted mean of the input-line voltages (docs/chip.md §2). With it, currents circulate
through the output line from the cells on high input lines to those on low ones, so its node
voltages differ along the line and the sense node sees the potential at its tap: cells far from
the tap couple less. Each input line sags away from its driver because of the current its cells
draw, about u_i·Σ_j G_ij for random ±1 inputs (the whole line conductance, not only the signal):
cells far from the driver, and lines with much conductance, couple less.

Assumptions. (1) Cells are linear conductances at the read voltage; the access transistor (word
line fully on) is part of G. (2) Steady state: the output line has settled before it is sampled;
no capacitive coupling. (3) Wires are lumped per cell pitch; the sense node draws no DC current.
(4) Every input line is driven in every phase (docs/chip.md §2, bit-serial phases), a 0 input being
V_ref from the same driver; drivers are linear, identical for all lines; the V_ref and V_ref ± V
rails that feed them are ideal (no rail IR drop). (5) Tap positions (``driver_position``): "start"
(every neuron at cell 0 of its line), "end" (last cell), or "corelet": the TNSA interleaves one
neuron per 16 x 16 corelet (docs/chip.md §1-2); *inferred*: the neuron of corelet (a, b) serves
bitline 16a + b and source line 16b + a, i.e. line l meets its neuron in the (l mod 16)-th corelet
along it, taken at the corelet's centre cell. The same neuron drives a line when it is an input and
senses it when it is an output, so the tap of a line is the same in both directions.

Methods
-------
"exact" (nodal analysis, no iteration). Input line i is eliminated exactly: its cell currents are
I_i = F_i (u_i·1 - vs_i), vs_i the source-side node voltages of its cells and
F_i = (D_i^-1 + R_i)^-1 = D_i - D_i (T_i + D_i)^-1 D_i, D_i = diag(G_i·), R_i the line's resistance
matrix seen from its driver and T_i its tridiagonal nodal matrix (solved by a Thomas sweep
vectorised over lines). The output lines are then swept from the first input line to the last,
carrying the node voltages vs_i = A_i vs_0 + a_i and the wire currents J_i = B_i vs_0 + b_i as
linear functions of the unknown first-row voltages vs_0 (inputs as columns of a_i, b_i); "no
current beyond the last cell" fixes vs_0. Cost about 3·n⁴ flops in matrix products (n = 256: 13
GFLOP) plus O(n³) elementwise work. It agrees with a dense nodal solve of the full network
(:func:`nodal_solve`, a bitline node and a source-line node per cell) to ~1e-11 (tests).

"approx" (matrix products only, O(n³)). Each input line's resistance matrix is split into its
conductance-weighted mean r_lump,i (the driver plus the mean wire drop) and the remainder
R_w,i = R_i - r_lump,i·11ᵀ. The lumped model is solved exactly (one n_out x n_out solve); the
remainder and the output-line resistances enter to first order around it. Treating the driver
exactly matters: a plain first-order expansion around the ideal array is 20-50x less accurate with
the default driver resistance (max |ΔK| 10 % of max K instead of 0.4 %).

Error bound of "approx". With η = max_ij [Σ_l |R_w,i[j,l]| G_il + Σ_k R_out,j[i,k] G_kj] (a bound
on the norm of the first-order perturbation) and ε_d = max_i r_lump,i Σ_j G_ij:

* provable: for every drive vector u, with e = V_approx - V_exact, S_j = Σ_i G_ij and the
  conductance-weighted input spread Var_j(u) = Σ_i (G_ij/S_j)(u_i - V0_j)²,
  √(Σ_j S_j e_j² / Σ_j S_j) ≤ η²(1 + ε_d)·√(Σ_j S_j Var_j(u) / Σ_j S_j). Rigorous but loose
  (the actual errors in the tests are 40-1000x smaller);
* stated (empirical): max |K_approx - K_exact| ≤ 0.25·η²·max K_exact. The largest ratio observed
  over ~100 random arrays (8 x 8 to 256 x 256; layer-like, uniform and sparse conductances; all tap
  positions, both directions; η from 1e-3 to 6) was 0.12. :func:`approx_error_bound` returns both.

Measured
--------
Command: ``OPENBLAS_NUM_THREADS=1 python -m neurram.models.irdrop``: a 256 x 256 layer-like array
(:func:`neurram.models.device.layer_targets`, seed 0, "off" cells at 0.1 µS), 1000 random input
vectors, either ±1 on every line or differential (logical ±1 driven as +x on the G+ row and -x on
the G- row, as the chip drives signed weights, docs/chip.md §2). Errors are RMS over all outputs
divided by the std of the exact outputs; "after cal." is the residual after a least-squares line
y_exact ≈ a_j·y_ideal + b_j per output column (the chip's calibration, docs/analog-model.md)::

                              ε     η     time (s)        approx vs exact                     IR drop vs ideal K, RMS / std
                                          exact  approx   max|ΔK|/maxK  RMS/std  (diff.)     ±1: raw  after cal.   diff.: raw  after cal.
    defaults ("start")        0.57  0.25  0.53   0.019    0.45 %        0.19 %   (0.22 %)    0.22     0.13         0.29        0.040
    driver_position=corelet   0.51  0.21  0.54   0.030    0.40 %        0.12 %   (0.14 %)    0.19     0.11         0.25        0.043
    r_driver_ohm=0            0.32  0.25  0.52   0.021    0.51 %        0.21 %   (0.24 %)    0.08     0.06         0.10        0.038

The stated bound 0.25·η² is 1.6 % (1.2 % for "corelet") of max K against the 0.45 % (0.40 %)
measured. With the default driver most of the raw IR drop is a gain per output column (removed by
calibration) and a gain per input line 1/(1 + r_driver·Σ_j G_ij) (which differential drive largely
cancels); what is left after calibration is ~0.04 of the output std, against the 0.20-0.34 of
all effects together that the chip keeps after calibration (docs/analog-model.md).

Times: one BLAS thread on the shared 2-core development machine. With a multi-threaded BLAS on a
machine whose cores are busy the same run took 4.7 s (exact) and 0.5-1.2 s (approx): both are
sequences of 256 x 256 matrix products, which threads waiting for busy cores slow down. Set
``OPENBLAS_NUM_THREADS=1`` (or ``OMP_NUM_THREADS=1``) there. K is computed once per programmed state.

Parameters and sources
----------------------
See :class:`WireParams` and :func:`default_circuit_params` (every value with its unit and source,
each marked published or estimate).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurram.spec.enums import Direction

__all__ = ["WireParams", "effective_coupling", "ideal_coupling", "ir_drop_factor", "approx_error_bound", "nodal_solve",
           "line_taps", "default_circuit_params", "CORELET"]

#: Cells per corelet side: one neuron per 16 x 16 corelet (docs/chip.md §1; Wan et al. 2022).
CORELET = 16

#: SkyWater SKY130 met1/met2 sheet resistance, Ω/□ (published: ``RESISTANCE RPERSQ 0.125`` in the
#: open PDK's ``sky130_fd_sc_hd.tlef``; 125 mΩ/□ in the SKY130A stack-up). A public 130-nm figure;
#: NeuRRAM's own foundry and metal stack are not published.
SKY130_MET1_OHM_PER_SQ = 0.125
#: Metal squares per cell along a bitline or source line (estimate: ~1.2 µm cell pitch including
#: the corelet neurons, ~0.3 µm line width).
SQUARES_PER_CELL = 4.0


@dataclass(frozen=True)
class WireParams:
    """Wire and driver resistances of one core's array (units in the names)."""

    #: Bitline metal between two neighbouring cells, Ω. Estimate: SKY130_MET1_OHM_PER_SQ (published
    #: 130-nm value) x SQUARES_PER_CELL (estimate) = 0.5 Ω.
    r_bl_ohm_per_cell: float = SKY130_MET1_OHM_PER_SQ * SQUARES_PER_CELL
    #: Source-line metal between two neighbouring cells, Ω (same estimate as the bitline).
    r_sl_ohm_per_cell: float = SKY130_MET1_OHM_PER_SQ * SQUARES_PER_CELL
    #: Output resistance of a line driver (the switch from the V_ref ± V rail to the line), Ω.
    #: Estimate: a ~10-20 µm wide 130-nm transmission gate; not published for NeuRRAM.
    r_driver_ohm: float = 100.0
    #: Where each line meets its neuron (driver when an input, sense node when an output):
    #: "start", "end" or "corelet" (see the module docstring).
    driver_position: str = "start"

    @classmethod
    def ideal(cls) -> "WireParams":
        """No resistance anywhere: K = G / Σ_i G exactly."""
        return cls(0.0, 0.0, 0.0)

    def is_ideal(self) -> bool:
        return self.r_bl_ohm_per_cell == 0 and self.r_sl_ohm_per_cell == 0 and self.r_driver_ohm == 0


def line_taps(n_lines: int, n_cells: int, position: str = "start") -> np.ndarray:
    """Cell index (0 .. n_cells-1) at which each of ``n_lines`` lines meets its neuron."""
    lines = np.arange(n_lines)
    if position == "start":
        return np.zeros(n_lines, dtype=np.int64)
    if position == "end":
        return np.full(n_lines, max(n_cells - 1, 0), dtype=np.int64)
    if position == "corelet":
        per_line = max(1, -(-n_cells // CORELET))
        return np.minimum(CORELET * (lines % per_line) + CORELET // 2, max(n_cells - 1, 0)).astype(np.int64)
    raise ValueError(f"driver_position must be 'start', 'end' or 'corelet', not {position!r}")


def _oriented(g_uS, wire: WireParams, direction: Direction):
    """(G in S as inputs x outputs, r_in, r_out, r_driver, input-line taps, output-line taps)."""
    g = np.asarray(g_uS, dtype=np.float64)
    if g.ndim != 2:
        raise ValueError("g_uS must be a (rows, cols) matrix")
    if np.any(g < 0) or not np.all(np.isfinite(g)):
        raise ValueError("conductances must be finite and >= 0")
    for r in (wire.r_bl_ohm_per_cell, wire.r_sl_ohm_per_cell, wire.r_driver_ohm):
        if not (np.isfinite(r) and r >= 0):
            raise ValueError("resistances must be finite and >= 0")
    if direction == Direction.FORWARD:
        gs, r_in, r_out = g, wire.r_bl_ohm_per_cell, wire.r_sl_ohm_per_cell
    elif direction == Direction.BACKWARD:
        gs, r_in, r_out = g.T, wire.r_sl_ohm_per_cell, wire.r_bl_ohm_per_cell
    else:
        raise ValueError(f"direction must be Direction.FORWARD or Direction.BACKWARD, not {direction!r}")
    n_in, n_out = gs.shape
    # Input line i runs along the output index (axis 1); output line j runs along axis 0.
    t_in = line_taps(n_in, n_out, wire.driver_position)
    t_out = line_taps(n_out, n_in, wire.driver_position)
    return (np.ascontiguousarray(gs) * 1e-6, float(r_in), float(r_out), float(wire.r_driver_ohm),
            t_in, t_out)


def _green(n: int, tap: int, r: float, r0: float) -> np.ndarray:
    """Resistance matrix of a line of n cell nodes fed at node ``tap`` through r0, r between nodes.

    R[k, l] = r0 + r · (wire segments shared by the paths tap→k and tap→l): the voltage drop at
    node k per ampere drawn at node l. For a floating line (r0 = 0) it gives the node voltages
    relative to the tap for currents that sum to zero.
    """
    d = np.arange(n) - tap
    same_side = (np.sign(d)[:, None] * np.sign(d)[None, :]) > 0
    shared = np.where(same_side, np.minimum(np.abs(d)[:, None], np.abs(d)[None, :]), 0)
    return r0 + r * shared


def ideal_coupling(g: np.ndarray):
    """No wire resistance: (K = G / Σ_i G per output column, columns with any conductance)."""
    colsum = g.sum(axis=0)
    live = colsum > 0
    w = np.where(live, g / np.where(live, colsum, 1.0), 0.0)
    return w, live


# ------------------------------------------------------------------------------------------------
# Exact
# ------------------------------------------------------------------------------------------------

def _line_admittance(g_rows, r_in, r_drv, taps):
    """F_i = (D_i^-1 + R_i)^-1 = D - D (T + D)^-1 D for a block of input lines: (rows, n, n).

    D = diag(cell conductances of the line), T = nodal matrix of the line itself (1/r_in between
    neighbours, 1/r_driver to the source at the tap). F maps the voltages applied across the cells
    (drive minus the far-side node voltages) to the cell currents, with the line's own IR drop
    solved exactly. (T + D) is tridiagonal: solved with the Thomas algorithm, vectorised over the
    lines and the n right-hand sides (no LAPACK call per line).
    """
    c, n = g_rows.shape
    rows = np.arange(c)
    diag_idx = np.arange(n)
    if r_in == 0:                                  # the whole line is one node
        f = np.zeros((c, n, n))
        f[:, diag_idx, diag_idx] = g_rows
        if r_drv > 0:
            rho = g_rows.sum(axis=1)
            f -= g_rows[:, :, None] * g_rows[:, None, :] / (1.0 / r_drv + rho)[:, None, None]
        return f
    cw = 1.0 / r_in
    diag = g_rows + cw * 2.0
    diag[:, 0] -= cw
    diag[:, -1] -= cw
    lo = np.full((c, n), -cw)                      # J[k, k-1]
    up = np.full((c, n), -cw)                      # J[k, k+1]
    lo[:, 0] = 0.0
    up[:, -1] = 0.0
    y = np.zeros((c, n, n))
    y[:, diag_idx, diag_idx] = g_rows
    if r_drv > 0:
        diag[rows, taps] += 1.0 / r_drv
    else:                                          # ideal driver: the tap node is pinned
        diag[rows, taps] = 1.0
        lo[rows, taps] = 0.0
        up[rows, taps] = 0.0
        inner = taps > 0
        up[rows[inner], taps[inner] - 1] = 0.0
        inner = taps < n - 1
        lo[rows[inner], taps[inner] + 1] = 0.0
        y[rows, taps, :] = 0.0
    dd = diag.copy()
    for k in range(1, n):
        w = lo[:, k] / dd[:, k - 1]
        dd[:, k] -= w * up[:, k - 1]
        y[:, k, :] -= w[:, None] * y[:, k - 1, :]
    y[:, n - 1, :] /= dd[:, n - 1, None]
    for k in range(n - 2, -1, -1):
        y[:, k, :] -= up[:, k, None] * y[:, k + 1, :]
        y[:, k, :] /= dd[:, k, None]
    f = y
    f *= -g_rows[:, :, None]
    f[:, diag_idx, diag_idx] += g_rows
    return f


def _exact(g, r_in, r_out, r_drv, t_in, t_out, chunk=64):
    n_in, n_out = g.shape
    _, live = ideal_coupling(g)
    # Output line j is read at row t_out[j]: vs[t_j, j].
    tapped = [np.flatnonzero(t_out == i) for i in range(n_in)]
    # vs_i = A vs_0 + a, J_i = B vs_0 + b: output-line node voltages at input line i and the current
    # in the output-line segment after it, as linear functions of the (unknown) first-row voltages
    # vs_0; the inputs are the columns of a and b. Stored side by side: X = [A | a], Y = [B | b].
    X = np.zeros((n_out, n_out + n_in))
    X[:, :n_out] = np.eye(n_out)
    Y = np.zeros((n_out, n_out + n_in))
    read = np.zeros((n_out, n_out + n_in))
    out_wire = r_out > 0
    for i0 in range(0, n_in, chunk):
        i1 = min(n_in, i0 + chunk)
        F = _line_admittance(g[i0:i1], r_in, r_drv, t_in[i0:i1])
        for i in range(i0, i1):
            Fi = F[i - i0]
            js = tapped[i]
            if js.size:
                read[js] = X[js]
            # Cell currents of line i: Fi (u_i·1 - vs_i); a has no columns >= i yet.
            m = n_out + i
            if out_wire:
                Y[:, :m] -= Fi @ X[:, :m]
            else:
                Y[:, :n_out] -= Fi
            Y[:, m] += Fi.sum(axis=1)
            if out_wire and i < n_in - 1:
                X[:, : m + 1] -= r_out * Y[:, : m + 1]
    B, b = Y[:, :n_out], Y[:, n_out:]
    # Open far end: no current beyond the last cell. Empty output lines read 0.
    dead = ~live
    B[dead, :] = 0.0
    B[:, dead] = 0.0
    B[dead, dead] = -1.0
    b[dead] = 0.0
    vs0 = np.linalg.solve(-B, b)
    v = read[:, :n_out] @ vs0 + read[:, n_out:]
    k = v.T.copy()
    k[:, dead] = 0.0
    return k


# ------------------------------------------------------------------------------------------------
# Lumped model plus first-order remainder
# ------------------------------------------------------------------------------------------------

def _input_line_terms(g, r_in, r_drv, t_in):
    """Per input line: h = Σ_l R_i[j,l] G_il, qf = Σ_i G_ij G_il R_i[j,l], r_lump, ρ."""
    n_out = g.shape[1]
    rho = g.sum(axis=1)
    h = np.empty_like(g)
    qf = np.zeros((n_out, n_out))
    for t in np.unique(t_in):
        sel = t_in == t
        rg = _green(n_out, int(t), r_in, r_drv)
        h[sel] = g[sel] @ rg
        qf += rg * (g[sel].T @ g[sel])
    pos = rho > 0
    r_lump = np.where(pos, (h * g).sum(axis=1) / np.where(pos, rho * rho, 1.0), r_drv)
    return h, qf, r_lump, rho


def _output_line_terms(g, r_out, t_out):
    """Per output line: rise = Σ_k R_j[i,k] G_kj, z = Σ_j G_ij G_kj R_j[i,k]."""
    n_in = g.shape[0]
    rise = np.empty_like(g)
    z = np.zeros((n_in, n_in))
    for t in np.unique(t_out):
        sel = t_out == t
        rs = _green(n_in, int(t), r_out, 0.0)
        rise[:, sel] = rs @ g[:, sel]
        z += rs * (g[:, sel] @ g[:, sel].T)
    return rise, z


def _approx(g, r_in, r_out, r_drv, t_in, t_out):
    n_in = g.shape[0]
    colsum = g.sum(axis=0)
    live = colsum > 0
    h, qf, r_lump, rho = _input_line_terms(g, r_in, r_drv, t_in)
    h -= (r_lump * rho)[:, None]              # Σ_l Rw_i[j,l] G_il
    qf -= (g.T * r_lump) @ g                  # Σ_i G_ij G_il Rw_i[j,l]
    # Exact solution with the lumped input-line resistances only: line i at
    # v_i = γ_i (u_i + r_i Σ_j G_ij V_j), γ_i = 1/(1 + r_i ρ_i); H V = Gᵀ(γ∘u).
    gam = 1.0 / (1.0 + r_lump * rho)
    hmat = np.diag(colsum) - (g.T * (r_lump * gam)) @ g
    hmat[~live, :] = 0.0
    hmat[:, ~live] = 0.0
    hmat[~live, ~live] = 1.0
    rhs = g.T * gam                           # (n_out, n_in)
    rhs[~live] = 0.0
    kd = np.linalg.solve(hmat, rhs).T         # (n_in, n_out)
    alpha = gam[:, None] * (np.eye(n_in) + r_lump[:, None] * (g @ kd.T))   # v_i for unit input m
    # First order in the remainder: the cell-voltage errors e = Rw I_d of the lumped currents
    # I_d[i,j] = G_ij (α_im - K_d[m,j]) act as sources in the lumped model.
    rise, z = _output_line_terms(g, r_out, t_out)
    gh = g * h
    gr = g * rise
    e_row = z @ alpha - (gh + gr) @ kd.T                                     # Σ_j G_ij e_ij
    e_col = (gh + gr).T @ alpha - qf @ kd.T - gr.sum(axis=0)[:, None] * kd.T  # Σ_i G_ij e_ij
    dv = np.linalg.solve(hmat, (g.T * (r_lump * gam)) @ e_row - e_col)
    k = kd + dv.T
    k[:, ~live] = 0.0
    return k


# ------------------------------------------------------------------------------------------------
# Public API
# ------------------------------------------------------------------------------------------------

def effective_coupling(g_uS, wire: WireParams, direction: Direction = Direction.FORWARD,
                       method: str = "exact") -> np.ndarray:
    """Effective coupling K (inputs x outputs, float64) of an array with wire and driver resistance.

    ``g_uS``: (rows, cols) cell conductances in µS, cell (i, j) between bitline i and source line
    j. ``direction``: ``Direction.FORWARD`` (inputs on bitlines, outputs on source lines: K is
    rows x cols) or ``Direction.BACKWARD`` (inputs on source lines, outputs on bitlines: K is
    cols x rows). ``method``: "exact" or "approx" (see the module docstring). V_j - V_ref =
    Σ_i u_i K_ij; each column with any conductance sums to 1; columns without any are 0 (as in
    ``Crossbar.coupling``).
    """
    g, r_in, r_out, r_drv, t_in, t_out = _oriented(g_uS, wire, direction)
    if method not in ("exact", "approx"):
        raise ValueError(f"method must be 'exact' or 'approx', not {method!r}")
    if g.size == 0 or wire.is_ideal():
        # Exactly G / Σ_i G from the µS values, as Crossbar.coupling computes it.
        g_uS = np.asarray(g_uS, dtype=np.float64)
        return ideal_coupling(g_uS if direction == Direction.FORWARD else g_uS.T)[0]
    if method == "exact":
        return _exact(g, r_in, r_out, r_drv, t_in, t_out)
    return _approx(g, r_in, r_out, r_drv, t_in, t_out)


def ir_drop_factor(g_uS, wire: WireParams, direction: Direction = Direction.FORWARD) -> float:
    """ε = max over cells of (input-line drop + output-line rise) per volt across every cell.

    A worst-case measure of the relative IR drop: what a cell's voltage would lose if every cell
    carried the full drive. Dimensionless.
    """
    g, r_in, r_out, r_drv, t_in, t_out = _oriented(g_uS, wire, direction)
    if g.size == 0:
        return 0.0
    h, _, _, _ = _input_line_terms(g, r_in, r_drv, t_in)
    rise, _ = _output_line_terms(g, r_out, t_out)
    return float((h + rise).max())


def approx_error_bound(g_uS, wire: WireParams, direction: Direction = Direction.FORWARD) -> dict:
    """Error bounds of ``method="approx"`` for this array (module docstring, "Error bound").

    Returns ``eta`` (η), ``eps_lumped`` (ε_d), ``k_max_rel`` = 0.25·η² (stated bound on
    max|K_approx - K_exact| / max K_exact) and ``rms_per_spread`` = η²(1 + ε_d) (provable bound on
    the conductance-weighted RMS output error per unit RMS input spread).
    """
    g, r_in, r_out, r_drv, t_in, t_out = _oriented(g_uS, wire, direction)
    if g.size == 0:
        return {"eta": 0.0, "eps_lumped": 0.0, "k_max_rel": 0.0, "rms_per_spread": 0.0}
    n_in, n_out = g.shape
    _, _, r_lump, rho = _input_line_terms(g, r_in, r_drv, t_in)
    rise, _ = _output_line_terms(g, r_out, t_out)
    eta_in = np.empty_like(g)
    for t in np.unique(t_in):
        rg = _green(n_out, int(t), r_in, r_drv)
        idx = np.flatnonzero(t_in == t)
        for i0 in range(0, idx.size, 32):
            sl = idx[i0:i0 + 32]
            eta_in[sl] = np.einsum("ijl,il->ij", np.abs(rg[None] - r_lump[sl, None, None]), g[sl])
    eta = float((eta_in + rise).max())
    eps_d = float((r_lump * rho).max())
    return {"eta": eta, "eps_lumped": eps_d, "k_max_rel": 0.25 * eta * eta,
            "rms_per_spread": eta * eta * (1.0 + eps_d)}


def nodal_solve(g_uS, wire: WireParams, u, direction: Direction = Direction.FORWARD) -> np.ndarray:
    """Dense nodal analysis of the whole network: an independent reference for small arrays.

    Every cell has an input-line node and an output-line node (a line without resistance is one
    node); input lines are driven by ideal sources ``u`` (V, relative to V_ref) behind r_driver at
    their taps (pinned when r_driver = 0); output lines float and are read at their taps.
    Returns V_j - V_ref (V). Cost (2·rows·cols)³: keep arrays small.
    """
    g, r_in, r_out, r_drv, t_in, t_out = _oriented(g_uS, wire, direction)
    n_in, n_out = g.shape
    u = np.asarray(u, dtype=np.float64)
    ii, jj = np.meshgrid(np.arange(n_in), np.arange(n_out), indexing="ij")
    in_id = ii * n_out + (jj if r_in > 0 else 0)
    out_id = n_in * n_out + (ii if r_out > 0 else 0) * n_out + jj
    _, inv = np.unique(np.concatenate([in_id.ravel(), out_id.ravel()]), return_inverse=True)
    in_id = inv[: n_in * n_out].reshape(n_in, n_out)
    out_id = inv[n_in * n_out:].reshape(n_in, n_out)
    n = int(inv.max()) + 1
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
    v[free] = np.linalg.solve(y[np.ix_(free, free)], rhs[free] - y[np.ix_(free, fixed)] @ v[fixed])
    return v[out_id[t_out, np.arange(n_out)]]


# ------------------------------------------------------------------------------------------------
# Proposed defaults for the other circuit non-idealities
# ------------------------------------------------------------------------------------------------

def default_circuit_params() -> dict:
    """Proposed defaults for the circuit non-idealities, each with unit, kind and source.

    Keys are the field names of ``NeuronParams`` (comparator_offset_sigma_uV, gain_mismatch_sigma,
    packet_mismatch_sigma, packet_neg_gain), ``AnalogParams.driver_mismatch_sigma`` and
    :class:`WireParams`. Each value is a dict: ``value``, ``unit``, ``kind`` ("published",
    "estimate", or "estimate from published" when a published law or number is combined with an
    estimated size) and ``source``. σ are of the static spread between neurons (or cores), drawn
    once, before any calibration. Citations marked "not re-read here" are standard references
    quoted from the literature, not checked against the paper for this module.
    """
    w = WireParams()
    return {
        "comparator_offset_sigma_uV": {
            "value": 3000.0, "unit": "µV (σ, referred to the integrator voltage)",
            "kind": "estimate from published",
            "source": "Pelgrom's law σ(ΔV_T) = A_VT/√(WL) (Pelgrom, Duinmaijer, Welbers, IEEE JSSC 24(5), "
                      "1433-1439, 1989; review: Kinget, IEEE JSSC 40(6), 1212-1224, 2005) with A_VT ≈ "
                      "3-5 mV·µm for 130-nm devices (typical literature range, not re-read here) and an "
                      "input pair of ~1-2 µm² per device in a neuron that must fit a 16 x 16-cell "
                      "corelet (estimate): 2-5 mV; 3 mV taken. NeuRRAM calibrates comparator offsets "
                      "(docs/analog-model.md), so the uncalibrated offset is large compared with one "
                      "charge packet (100 µV default)."},
        "gain_mismatch_sigma": {
            "value": 0.005, "unit": "relative (σ of C_sample/C_integ between neurons)",
            "kind": "estimate",
            "source": "Metal-oxide-metal capacitor ratios match to ~0.1-0.3 % at tens of fF "
                      "(10-bit-class SAR DAC practice); 0.5 % also covers sampling-switch charge "
                      "injection and incomplete settling, which scale the sampled line voltage."},
        "packet_mismatch_sigma": {
            "value": 0.02, "unit": "relative (σ per neuron, each branch drawn independently)",
            "kind": "estimate",
            "source": "The decrement packet comes from a small (few-fF) capacitor and its switches: "
                      "capacitor mismatch ~0.5 % plus charge injection that is a sizeable fraction of "
                      "a small packet; 2 %."},
        "packet_neg_gain": {
            "value": 0.95, "unit": "ratio (negative-branch packet / positive-branch packet)",
            "kind": "estimate (direction published)",
            "source": "Published: positive and negative branches have different gains, so [R]'s "
                      "calibration fits them separately (docs/analog-model.md, weierwan/Neurram_48core). "
                      "The size is not published; 5 % is an estimate."},
        "driver_mismatch_sigma": {
            "value": 0.01, "unit": "relative (σ of V_pos/V_neg amplitude between cores)",
            "kind": "estimate",
            "source": "Per-core drive amplitude differences from rail distribution and driver "
                      "devices; consistent with [R]'s per-core calibration of V_pos/V_neg in 1-mV "
                      "steps around 0.5-0.8 V (docs/analog-model.md), i.e. differences of several mV."},
        "r_bl_ohm_per_cell": {
            "value": w.r_bl_ohm_per_cell, "unit": "Ω per cell pitch", "kind": "estimate from published",
            "source": f"{SKY130_MET1_OHM_PER_SQ} Ω/□ (published: SkyWater SKY130 met1/met2, open PDK "
                      f"sky130_fd_sc_hd.tlef RESISTANCE RPERSQ 0.125) x {SQUARES_PER_CELL:g} squares per "
                      "cell (estimate: ~1.2 µm pitch, ~0.3 µm line). NeuRRAM's metal stack is not "
                      "published."},
        "r_sl_ohm_per_cell": {
            "value": w.r_sl_ohm_per_cell, "unit": "Ω per cell pitch", "kind": "estimate from published",
            "source": "as r_bl_ohm_per_cell"},
        "r_driver_ohm": {
            "value": w.r_driver_ohm, "unit": "Ω", "kind": "estimate",
            "source": "Output resistance of a ~10-20 µm wide 130-nm switch from the V_ref ± V rail; "
                      "not published. Dominates the raw IR drop at the defaults (module docstring, "
                      "Measured), mostly as a per-line gain 1/(1 + r·Σ_j G_ij)."},
        "driver_position": {
            "value": w.driver_position, "unit": "", "kind": "estimate",
            "source": "'start' (neurons at one end of every line, the worst case); 'corelet' follows "
                      "the TNSA's interleaved neurons (inferred mapping, module docstring)."},
    }


# ------------------------------------------------------------------------------------------------
# Measurement (the numbers in the module docstring)
# ------------------------------------------------------------------------------------------------

def measure_accuracy(size: int = 256, seed: int = 0, vectors: int = 1000, repeats: int = 2) -> list[dict]:
    """Accuracy and speed of :func:`effective_coupling` on a ``size x size`` layer-like array for three
    wire settings (the table in the module docstring; printed by ``neurram irdrop``): one dict per
    setting with ε, η, the best-of-``repeats`` times of both methods and the output errors."""
    import time

    from .device import layer_targets

    g = np.maximum(layer_targets(size, size, seed=seed), 0.1)
    rng = np.random.default_rng(seed)
    inputs = {"line": rng.choice([-1.0, 1.0], size=(vectors, size))}     # ±1 on every line
    x = rng.choice([-1.0, 1.0], size=(vectors, (size + 1) // 2))
    diff = np.repeat(x, 2, axis=1)[:, :size]
    diff[:, 1::2] *= -1.0                                                 # +x on G+, -x on G- rows
    inputs["diff"] = diff
    ideal = effective_coupling(g, WireParams.ideal())
    rows = []
    for name, wire in (("defaults (start)", WireParams()),
                       ("driver_position=corelet", WireParams(driver_position="corelet")),
                       ("r_driver_ohm=0", WireParams(r_driver_ohm=0.0))):
        times = {}
        for method in ("exact", "approx"):
            best = np.inf
            for _ in range(repeats):
                t0 = time.perf_counter()
                k = effective_coupling(g, wire, method=method)
                best = min(best, time.perf_counter() - t0)
            times[method] = (best, k)
        ke, ka = times["exact"][1], times["approx"][1]
        bound = approx_error_bound(g, wire)
        row = {"wire": name, "eps": ir_drop_factor(g, wire), "eta": bound["eta"],
               "exact_s": times["exact"][0], "approx_s": times["approx"][0],
               "approx_dk_rel": float(np.abs(ka - ke).max() / ke.max()), "approx_bound_rel": bound["k_max_rel"]}
        for kind, u in inputs.items():
            ye, ya, yi = u @ ke, u @ ka, u @ ideal
            sd = ye.std()
            # Per-column calibration y_exact ≈ a y_ideal + b (least squares), as on the chip.
            xm, ym = yi.mean(axis=0), ye.mean(axis=0)
            slope = ((yi - xm) * (ye - ym)).sum(axis=0) / ((yi - xm) ** 2).sum(axis=0)
            resid = ye - (ym + slope * (yi - xm))
            row[f"approx_rms_{kind}"] = float(np.sqrt(((ya - ye) ** 2).mean()) / sd)
            row[f"approx_max_{kind}"] = float(np.abs(ya - ye).max() / sd)
            row[f"ir_raw_{kind}"] = float(np.sqrt(((ye - yi) ** 2).mean()) / sd)
            row[f"ir_cal_{kind}"] = float(np.sqrt((resid ** 2).mean()) / sd)
        rows.append(row)
    return rows
