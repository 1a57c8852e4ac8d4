"""Crossbar with voltage-mode sensing (docs/chip.md §2).

During an MVM the output lines are precharged to V_ref and left floating. Each settles to the
conductance-weighted average of the input line voltages::

    V_j - V_ref = Σ_i u_i G_ij / Σ_i G_ij          u_i = +V_pos, -V_neg or 0 (ternary drive)

so the array computes a normalised dot product with no static output current. The map from
input voltages to output voltages is linear for fixed conductances, so a whole bit-serial MVM
(many pulses with different drive patterns) integrates to the same charge as one evaluation with
the per-line pulse counts: Σ_pulses Σ_i u_i(p) K_ij = Σ_i (Σ_p u_i(p)) K_ij. Both the cocotb
co-simulation (which sees the pulses one burst at a time) and the fast model (which sees whole
batches) call :meth:`Crossbar.integrate_counts` with those counts.

Exactness. The normalised coupling K_ij = G_ij / Σ_i G_ij is held as integers on a 2^-24 grid
(``coupling_frac_bits``), so Σ_i n_i K_ij is an exact integer in float64 for every summation order
(counts < 2^17, 2^24 grid, ≤ 4096 lines: < 2^53). The co-simulation and the fast model therefore
produce bit-identical charges whatever BLAS does. The grid is 6e-8 of full scale, far below
every physical effect modelled.

Read noise. Every MVM sees fresh read noise E_ij ~ N(0, σ_ij²) on each conductance (σ from the
device model). The output of one MVM is then (N_j + n1_j) / (D_j + n2_j) with N_j = Σ_i a_i G_ij,
D_j = Σ_i G_ij and (n1, n2) jointly Gaussian: Var n1 = Σ a_i² σ_ij², Var n2 = Σ σ_ij²,
Cov = Σ a_i σ_ij². Sampling (n1, n2) from two standard normals per output is exact in distribution
and costs two extra matrix products instead of one matrix per MVM.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neurram.spec.enums import Direction

__all__ = ["CrossbarParams", "Crossbar"]


#: Significant bits of the integer read-variance grid.
_VAR_BITS = 16


def _exact_dot(a: np.ndarray, v_q: np.ndarray) -> np.ndarray:
    """a @ v_q for integer-valued a and v_q (0 <= v_q < 2^16), exactly.

    float64 BLAS is exact when every product and partial sum is an integer below 2^53; v_q is
    split into chunks narrow enough for that, and the chunks' exact products are recombined in
    int64. Pulse counts of the chip's modes (|d|, t < 2·255·255 < 2^17, squares < 2^34) fit
    with room to spare; wider operands raise rather than round.
    """
    a = np.asarray(a, dtype=np.float64)
    if a.shape[-1] == 0:
        return np.zeros(a.shape[:-1] + v_q.shape[1:])
    a_bits = max(1, int(np.abs(a).max(initial=1)).bit_length())
    line_bits = max(1, int(a.shape[-1]).bit_length())
    chunk = 53 - a_bits - line_bits
    if chunk >= _VAR_BITS:
        return a @ v_q
    if chunk < 1 or a_bits + _VAR_BITS + line_bits > 63:
        raise ValueError("operands too wide for an exact read-noise sum")
    v = v_q.astype(np.int64)
    out = np.zeros(a.shape[:-1] + v_q.shape[1:], np.int64)       # exact up to 2^63
    for lo in range(0, _VAR_BITS, chunk):
        part = ((v >> lo) & ((1 << chunk) - 1)).astype(np.float64)
        out += (a @ part).astype(np.int64) << lo
    return out.astype(np.float64)                                 # one rounding, whatever the chunks


@dataclass(frozen=True)
class CrossbarParams:
    #: Reference (precharge) voltage of every line, V. docs/chip.md §2.
    v_ref_V: float = 0.9
    #: Fraction bits of the integer coupling grid (see module docstring).
    coupling_frac_bits: int = 24
    #: Fresh read noise on every conductance in every MVM.
    read_noise: bool = True
    #: Wire and driver resistances (IR drop, models/irdrop.py); None for ideal wires.
    wire: object = field(default_factory=lambda: _default_wire())
    #: "approx" (fast, error bound in models/irdrop.py) or "exact" (full network solve).
    ir_method: str = "approx"


def _default_wire():
    from .irdrop import WireParams
    return WireParams()


class Crossbar:
    """The voltage-mode MVM of one core's array, over a device model's conductances.

    ``conductance`` is a callable returning the (rows, cols) conductance matrix in µS now;
    ``read_sigma`` maps conductances to the σ of one read in µS. Call :meth:`invalidate` after
    anything changes the conductances (the core model does this after programming and relaxation).
    """

    def __init__(self, rows: int, cols: int, conductance, read_sigma=None,
                 params: CrossbarParams = CrossbarParams()):
        self.rows, self.cols = rows, cols
        self.params = params
        self._conductance = conductance
        self._read_sigma = read_sigma
        self._cache: dict = {}
        #: vectors per block in batch evaluation
        self.block = 2048

    def invalidate(self) -> None:
        self._cache.clear()

    # -- derived matrices, cached per direction ------------------------------------------------
    def _oriented(self, direction: Direction) -> np.ndarray:
        g = np.asarray(self._conductance(), dtype=np.float64)
        return g if direction == Direction.FORWARD else g.T

    def coupling(self, direction: Direction) -> np.ndarray:
        """Integer coupling matrix k (inputs x outputs), K = k · 2^-frac_bits."""
        key = ("k", direction)
        if key not in self._cache:
            from .irdrop import effective_coupling, ideal_coupling
            if self.params.wire is not None:
                # IR drop folds into the coupling: the network is linear in the drive voltages.
                frac = effective_coupling(np.asarray(self._conductance(), np.float64), self.params.wire,
                                          direction, method=self.params.ir_method)
            else:
                frac = ideal_coupling(self._oriented(direction))[0]
            self._cache[key] = np.rint(frac * (1 << self.params.coupling_frac_bits))
        return self._cache[key]

    def _noise_terms(self, direction: Direction):
        """(g, Σ_i g_ij, var on the integer grid, its column sums, grid step) of the read noise.

        The per-cell read variances are rounded to integers of ``var_step`` (16 significant bits
        relative to the largest one), so that every sum over input lines below is an exact
        integer: the read noise then has the same bits whatever the batching, the summation
        order or the BLAS (the co-simulation's one-MVM-at-a-time path and the fast model's batch
        path agree at every array size).
        """
        key = ("noise", direction)
        if key not in self._cache:
            g = self._oriented(direction)
            var = np.asarray(self._read_sigma(g), dtype=np.float64) ** 2
            top = float(var.max()) if var.size else 0.0
            step = 2.0 ** (np.ceil(np.log2(top)) - _VAR_BITS) if top > 0 else 1.0
            var_q = np.rint(var / step)
            self._cache[key] = (g, g.sum(axis=0), var_q, var_q.sum(axis=0), step)
        return self._cache[key]

    def has_read_noise(self) -> bool:
        return bool(self.params.read_noise and self._read_sigma is not None)

    # -- the MVM ---------------------------------------------------------------------------------
    def integrate_counts(self, direction: Direction, n_plus: np.ndarray, n_minus: np.ndarray,
                         v_pos_V: float, v_neg_V: float, z: np.ndarray | None = None,
                         columns: np.ndarray | None = None) -> np.ndarray:
        """Summed output-line deviation V_j - V_ref over all pulses of an MVM, in V·pulses.

        ``n_plus``/``n_minus``: (..., inputs) counts of +1 and -1 pulses per input line.
        ``z``: (..., 2, outputs) standard normals for this MVM's read noise, or None for none.
        ``columns``: evaluate only these output lines (each output is independent of the others);
        ``z`` then holds the normals of those lines only. Returns (..., outputs) float64 (or
        (..., len(columns))).

        Computed through d = n+ - n- and t = n+ + n-: in a bit-serial MVM every line is driven
        in every phase, so t is the same on every line and only the lines with a non-zero input
        (d != 0) need a matrix product; the sums stay exact integers, so the result is the same
        as the dense products whatever the sparsity.
        """
        n_plus = np.asarray(n_plus, dtype=np.int64)
        n_minus = np.asarray(n_minus, dtype=np.int64)
        if n_plus.ndim == 2 and n_plus.shape[0] > self.block:
            # Blocks of vectors keep the temporaries in cache; results are row-independent.
            n_cols = self.coupling(direction).shape[1] if columns is None else len(columns)
            out = np.empty((n_plus.shape[0], n_cols))
            for i in range(0, n_plus.shape[0], self.block):
                sl = slice(i, i + self.block)
                out[sl] = self._integrate(direction, n_plus[sl], n_minus[sl], v_pos_V, v_neg_V,
                                          None if z is None else z[sl], columns)
            return out
        return self._integrate(direction, n_plus, n_minus, v_pos_V, v_neg_V, z, columns)

    def _integrate(self, direction, n_plus, n_minus, v_pos_V, v_neg_V, z, columns):
        return self.integrate_dt(direction, n_plus - n_minus, n_plus + n_minus, v_pos_V, v_neg_V, z, columns)

    def integrate_dt(self, direction: Direction, d: np.ndarray, t, v_pos_V: float, v_neg_V: float,
                     z: np.ndarray | None = None, columns: np.ndarray | None = None) -> np.ndarray:
        """:meth:`integrate_counts` from d = n+ - n- (per line) and t = n+ + n- (per line, or one
        number when every line is driven equally, as in a bit-serial MVM)."""
        k = self.coupling(direction)
        ksum = self._ksum(direction)
        if columns is not None:
            k, ksum = k[:, columns], ksum[columns]
        d = np.asarray(d)
        lead = d.shape[:-1]
        d2 = d.reshape(-1, d.shape[-1])
        if np.ndim(t) == 0:
            t2 = np.full((d2.shape[0], 1), int(t), np.int64)
        else:
            t2 = np.broadcast_to(np.asarray(t, np.int64), d.shape).reshape(-1, d.shape[-1])
        nz = np.flatnonzero(d2.any(axis=0))
        s_d = d2[:, nz].astype(np.float64) @ k[nz] if nz.size else np.zeros((d2.shape[0], k.shape[1]))
        t0 = t2[:, :1]
        if t2.shape[1] == 1 or np.all(t2 == t0):              # uniform drive count per vector
            s_t = t0.astype(np.float64) * ksum
        else:
            s_t = t2.astype(np.float64) @ k
        s_plus = (s_t + s_d) * 0.5                            # exact: n+ = (t + d) / 2
        s_minus = (s_t - s_d) * 0.5
        scale = 2.0 ** -self.params.coupling_frac_bits
        out = ((v_pos_V * s_plus - v_neg_V * s_minus) * scale).reshape(lead + (k.shape[1],))
        if z is not None and self.has_read_noise():
            out = out + self._read_noise(direction, d2, t2, nz, v_pos_V, v_neg_V, out, z, columns)
        return out

    def _ksum(self, direction):
        key = ("ksum", direction)
        if key not in self._cache:
            self._cache[key] = self.coupling(direction).sum(axis=0)
        return self._cache[key]

    def _read_noise(self, direction, d2, t2, nz, v_pos_V, v_neg_V, ideal, z, columns=None):
        g, den, var_q, var_den_q, step = self._noise_terms(direction)
        if columns is not None:
            den, var_q, var_den_q = den[columns], var_q[:, columns], var_den_q[columns]
        # a_i = v+ n+_i - v- n-_i = α t_i + B d_i with α = (v+ - v-) / 2, B = (v+ + v-) / 2.
        # The line sums Σ t^p d^q var_i are exact integers (see _noise_terms), computed once per
        # vector; everything after them is element-wise, so the result does not depend on how
        # the MVMs were batched.
        alpha = 0.5 * (v_pos_V - v_neg_V)
        B = 0.5 * (v_pos_V + v_neg_V)
        dd = d2[:, nz]
        vz = var_q[nz]
        s_d = _exact_dot(dd, vz)
        s_d2 = _exact_dot(dd * dd, vz)
        if np.all(t2 == t2[:, :1]):                          # every line driven equally (bit-serial)
            t0 = t2[:, :1].astype(np.float64)
            s_t, s_t2, s_td = t0 * var_den_q, (t0 * t0) * var_den_q, t0 * s_d
        else:
            ti = t2 if t2.shape[1] == var_q.shape[0] else np.broadcast_to(t2, (t2.shape[0], var_q.shape[0]))
            s_t, s_t2 = _exact_dot(ti, var_q), _exact_dot(ti * ti, var_q)
            s_td = _exact_dot(ti[:, nz] * dd, vz)
        var_num = step * (alpha * alpha * s_t2 + 2 * alpha * B * s_td + B * B * s_d2)
        cov = step * (alpha * s_t + B * s_d)
        var_den = step * var_den_q
        shape = ideal.shape
        ideal = ideal.reshape(-1, shape[-1])
        z = np.asarray(z, dtype=np.float64).reshape(-1, 2, shape[-1])
        z1, z2 = z[:, 0, :], z[:, 1, :]
        sd_den = np.sqrt(var_den)
        inv_var_den = np.where(var_den > 0, 1 / np.where(var_den > 0, var_den, 1), 0)
        n2 = sd_den * z2
        rho_term = cov * inv_var_den
        resid = np.sqrt(np.maximum(var_num - rho_term * cov, 0))
        n1 = rho_term * n2 + resid * z1
        den_noisy = den + n2
        den_safe = np.where(den_noisy > 0, den_noisy, np.inf)
        return ((n1 - ideal * n2) / den_safe).reshape(shape)
