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

Sensing noise. The neuron samples the floating line once per input pulse; each sample carries
thermal noise (kT/C of the sampling capacitor, twice: sampling and transfer, plus kT/C of the
line), and each conversion sees the comparator's noise, frozen over the conversion (see
``models/neuron.py``, ``NeuronParams``). Both are independent of the inputs and of the read
noise, so they add ``(samples · sample_noise_V2 + conversion_noise_V2) · D_j²`` to Var n1 and
are drawn with the same normal z1: per line, element-wise after the exact sums, so batching and
summation order do not change a bit. With the defaults and 3-bit inputs (14 pulses) that is
about 2.2 mV·pulses of summed deviation from kT/C and 1.6 mV·pulses from the comparator, against
a per-column signal of about 40 mV·pulses on a 256 x 256 core of random weights at 100 mV drive.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neurram.spec.enums import Direction

__all__ = ["CrossbarParams", "Crossbar"]


#: Significant bits of the integer read-variance grid.
_VAR_BITS = 16


def _exact_matmul(a: np.ndarray, b: np.ndarray, a_max: float | None = None) -> np.ndarray:
    """a @ b for integer-valued float64 operands, exactly (``a_max``: a bound on |a| if known).

    float64 BLAS is exact, in any summation order, when every product and partial sum is an
    integer below 2^53. When the operands could exceed that, b is split into pieces of fewer
    bits whose products stay exact, recombined in int64 (then rounded once to float64).
    The chip's modes fit with room to spare; operands too wide even for int64 raise.
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    n = a.shape[-1]
    if n == 0 or a.size == 0 or b.size == 0:
        return np.zeros(a.shape[:-1] + b.shape[1:])
    a_max = float(np.abs(a).max()) if a_max is None else float(a_max)
    b_max = float(np.abs(b).max())
    if a_max * b_max * n < 2.0 ** 53:
        return a @ b
    a_bits, n_bits, b_bits = (max(1, int(v).bit_length()) for v in (a_max, n, b_max))
    chunk = 52 - a_bits - n_bits
    if chunk < 1 or a_bits + b_bits + n_bits > 62:
        raise ValueError("operands too wide for an exact line sum")
    out = np.zeros(a.shape[:-1] + b.shape[1:], np.int64)
    rest = b
    shift = 0
    while True:
        if float(np.abs(rest).max()) < 2.0 ** chunk:
            out += (a @ rest).astype(np.int64) << shift
            break
        hi = np.floor(rest / 2.0 ** chunk)
        out += (a @ (rest - hi * 2.0 ** chunk)).astype(np.int64) << shift
        rest, shift = hi, shift + chunk
    return out.astype(np.float64)


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
    #: Capacitance of one floating output line, fF (estimate, as models/energy.py's line: ~1.1 mm
    #: of wire, ~1 fF per cell, ~0.1 pF of switches); sets the line's own kT/C noise.
    c_line_fF: float = 600.0


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
                 params: CrossbarParams = CrossbarParams(), sample_noise_V2: float = 0.0,
                 conversion_noise_V2: float = 0.0, before_use=None):
        self.rows, self.cols = rows, cols
        self.params = params
        self._conductance = conductance
        self._read_sigma = read_sigma
        #: Thermal noise per input pulse on the sampled line deviation (V²) and the comparator's
        #: noise per conversion referred to the summed deviation ((V·pulses)²): the sensing chain's
        #: temporal noise, drawn with the read noise (module docstring, "Sensing noise").
        self.sample_noise_V2 = float(sample_noise_V2)
        self.conversion_noise_V2 = float(conversion_noise_V2)
        #: Called before an MVM first uses the conductances (the core's first-use delay), so
        #: every path -- fold, line sums, read noise -- sees the same, settled array.
        self._before_use = before_use
        self._cache: dict = {}

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
            # σ per cell of the array as it is wired (it may differ cell by cell), then oriented
            g_array = np.asarray(self._conductance(), dtype=np.float64)
            sig = np.asarray(self._read_sigma(g_array), dtype=np.float64)
            var = (sig if direction == Direction.FORWARD else sig.T) ** 2
            top = float(var.max()) if var.size else 0.0
            step = 2.0 ** (np.ceil(np.log2(top)) - _VAR_BITS) if top > 0 else 1.0
            var_q = np.rint(var / step)
            self._cache[key] = (g, g.sum(axis=0), var_q, var_q.sum(axis=0), step)
        return self._cache[key]

    def has_read_noise(self) -> bool:
        return bool(self.params.read_noise and self._read_sigma is not None)

    # -- the MVM ---------------------------------------------------------------------------------
    def integrate_counts(self, direction: Direction, n_plus: np.ndarray, n_minus: np.ndarray,
                         v_pos_V: float, v_neg_V: float, z=None,
                         columns: np.ndarray | None = None) -> np.ndarray:
        """Summed output-line deviation V_j - V_ref over all pulses of an MVM, in V·pulses.

        ``n_plus``/``n_minus``: (..., inputs) counts of +1 and -1 pulses per input line.
        ``z``: this MVM's read-noise standard normals, (..., 2, outputs) or a pair (z1, z2) of
        (..., outputs), or None for none. ``columns``: evaluate only these output lines (each
        output is independent of the others); ``z`` then holds the normals of those lines only.
        Returns (..., outputs) float64 (or (..., len(columns))).

        Computed through d = n+ - n- and t = n+ + n-: in a bit-serial MVM every line is driven
        in every phase, so t is the same on every line and only the lines with a non-zero input
        (d != 0) need a matrix product; the sums stay exact integers, so the result is the same
        as the dense products whatever the sparsity.
        """
        n_plus = np.asarray(n_plus, dtype=np.int64)
        n_minus = np.asarray(n_minus, dtype=np.int64)
        return self.integrate_dt(direction, n_plus - n_minus, n_plus + n_minus, v_pos_V, v_neg_V, z, columns)

    def integrate_dt(self, direction: Direction, d: np.ndarray, t, v_pos_V: float, v_neg_V: float,
                     z=None, columns: np.ndarray | None = None) -> np.ndarray:
        """:meth:`integrate_counts` from d = n+ - n- (per line) and t = n+ + n- (per line, or one
        number when every line is driven equally, as in a bit-serial MVM)."""
        d = np.asarray(d)
        lead = d.shape[:-1]
        d2 = d.reshape(-1, d.shape[-1])
        if np.ndim(t) == 0:
            t2 = None
            t0 = int(t)
        else:
            t2 = np.broadcast_to(np.asarray(t, np.int64), d.shape).reshape(-1, d.shape[-1])
            t0 = int(t2[0, 0]) if t2.size and np.all(t2 == t2[0, 0]) else None
            if t0 is not None:
                t2 = None
        cols = self._columns(direction, columns)
        nz = np.flatnonzero(d2.any(axis=0))
        dd = d2[:, nz].astype(np.float64)
        k = cols.k[nz]
        sums = _LineSums(s_d=_exact_matmul(dd, k))
        if t2 is None:
            sums.s_t = t0 * cols.ksum
        else:
            sums.s_t = _exact_matmul(t2.astype(np.float64), cols.k)
        if z is not None and self.has_read_noise():
            vz = cols.var_q[nz]
            sums.var_d = _exact_matmul(dd, vz)
            sums.var_d2 = _exact_matmul(dd * dd, vz)
            if t2 is not None:
                tf = t2.astype(np.float64)
                sums.var_t, sums.var_t2 = _exact_matmul(tf, cols.var_q), _exact_matmul(tf * tf, cols.var_q)
                sums.var_td = _exact_matmul(tf[:, nz] * dd, vz)
                sums.n_samples = t2.max(axis=1, initial=0).astype(np.float64)[:, None]
            z = _planes(z, d2.shape[0], len(cols.den))
        out = self._deviation(cols, sums, v_pos_V, v_neg_V, z if self.has_read_noise() else None,
                              t0 if t2 is None else None)
        return out.reshape(lead + (out.shape[-1],))

    def fold(self, direction: Direction, lines: np.ndarray, source: np.ndarray, weight: np.ndarray,
             columns: np.ndarray | None = None) -> "FoldedDrive":
        """Precompute an MVM whose input lines are driven from a compact vector x: line
        ``lines[r]`` gets d = ``weight[r]`` · x[source[r]], or ``weight[r]`` · 1 where source[r] is
        -1 (a line held at a constant; scale the weight by the constant). All other lines get
        d = 0. Every line gets the same t. See :meth:`integrate_folded`."""
        if self._before_use is not None:
            self._before_use()
        lines, source, weight = np.asarray(lines), np.asarray(source), np.asarray(weight, np.int64)
        key = ("fold", direction, lines.tobytes(), source.tobytes(), weight.tobytes(),
               None if columns is None else np.asarray(columns).tobytes())
        if key not in self._cache:
            self._cache[key] = FoldedDrive(self, direction, lines, source, weight, columns)
        return self._cache[key]

    def integrate_folded(self, fd: "FoldedDrive", x: np.ndarray, t: int, v_pos_V: float, v_neg_V: float,
                         z=None, x_max: int | None = None) -> np.ndarray:
        """:meth:`integrate_dt` of the folded drive ``fd`` for compact inputs x (N, sources):
        the same exact line sums (hence the same bits), from matrices with one row per source
        instead of one per line. ``x_max``: a bound on |x| when known (saves a pass)."""
        noise = z is not None and self.has_read_noise()
        sums = self.folded_sums(fd, x, t, noise, x_max)
        if noise:
            z = _planes(z, x.shape[0], len(fd.cols.den))
        return self._deviation(fd.cols, sums, v_pos_V, v_neg_V, z if noise else None, t)

    def folded_sums(self, fd: "FoldedDrive", x: np.ndarray, t: int, noise: bool, x_max: int | None = None) -> "_LineSums":
        """The exact line sums of a folded drive (the read-noise sums too with ``noise``)."""
        # x with a column of ones: the matrices' last row holds the constant lines' share
        xs = np.empty((x.shape[0], fd.n_sources + 1))
        xs[:, :-1] = x[:, fd.used]
        xs[:, -1] = 1
        C = len(fd.cols.den)
        x_max = None if x_max is None else max(int(x_max), 1)
        both = _exact_matmul(xs, fd.k_v if noise else fd.k, x_max)
        sums = _LineSums(s_d=both[:, :C], s_t=t * fd.cols.ksum)
        if noise:
            sums.var_d = both[:, C:]
            sums.var_d2 = _exact_matmul(np.square(xs, out=xs), fd.v2, None if x_max is None else x_max * x_max)
        return sums

    def deviation_terms(self, cols: "_Columns", s_t: np.ndarray, t: int, v_pos_V: float, v_neg_V: float) -> dict:
        """The per-line constants and scalars :meth:`_deviation` applies to the sums of a
        uniformly driven MVM, as values (for a compiled kernel that must give its bits)."""
        scale = 2.0 ** -self.params.coupling_frac_bits
        alpha = 0.5 * (v_pos_V - v_neg_V)
        B = 0.5 * (v_pos_V + v_neg_V)
        step = cols.step
        terms = dict(b_scale=B * scale, a0=(alpha * scale) * s_t)
        if cols.var_den_q is not None:
            p0 = (step * alpha * alpha * t * t) * cols.var_den_q
            p0 += self._sensing_var(t, cols.den)
            terms.update(c_d2=step * B * B, c_d=step * 2 * alpha * B * t, p0=p0,
                         c_cov=step * B, q0=(step * alpha * t) * cols.var_den_q, inv_var_den=cols.inv_var_den,
                         sd_den=cols.sd_den, den=cols.den)
        return terms

    def _sensing_var(self, n_samples, den):
        """The sensing chain's noise variance of one MVM with ``n_samples`` input pulses, in the
        read-noise numerator's units ((V·pulses·µS)²): (samples · per-pulse V² + per-conversion
        V²) · (Σ_i G_ij)², so that dividing by the line's conductance sum gives V·pulses."""
        per = self.sample_noise_V2 * n_samples + self.conversion_noise_V2
        return per * (den * den)

    def _columns(self, direction: Direction, columns) -> "_Columns":
        """The per-output-line terms of the evaluated lines (all, or ``columns``), cached."""
        if self._before_use is not None:
            self._before_use()
        key = ("cols", direction, None if columns is None else np.asarray(columns).tobytes())
        if key not in self._cache:
            k = self.coupling(direction)
            sel = slice(None) if columns is None else np.asarray(columns)
            c = _Columns(k=np.ascontiguousarray(k[:, sel]), ksum=k.sum(axis=0)[sel])
            if self.has_read_noise():
                g, den, var_q, var_den_q, step = self._noise_terms(direction)
                c.den, c.var_q, c.var_den_q, c.step = den[sel], np.ascontiguousarray(var_q[:, sel]), var_den_q[sel], step
                var_den = step * c.var_den_q
                c.sd_den = np.sqrt(var_den)
                c.inv_var_den = np.where(var_den > 0, 1 / np.where(var_den > 0, var_den, 1), 0)
            else:
                c.den = np.zeros(c.ksum.shape)
            self._cache[key] = c
        return self._cache[key]

    def _deviation(self, cols: "_Columns", sums: "_LineSums", v_pos_V, v_neg_V, z, t: int | None = None) -> np.ndarray:
        """The summed output deviation from exact line sums: the ideal normalised dot product and,
        with normals ``z`` = (z1, z2), its read noise. Element-wise only, so any batching of the
        MVMs gives the same bits. ``t``: every line driven t times (a bit-serial MVM), whose
        t-sums are per-line constants; None: the sums hold them (``var_t``, ``var_t2``, ``var_td``).

        With a_i = v+ n+_i - v- n-_i = α t_i + B d_i (α = (v+ - v-)/2, B = (v+ + v-)/2), the MVM
        reads (N + n1) / (D + n2): N = Σ a_i G_i, D = Σ G_i and (n1, n2) jointly Gaussian with
        Var n1 = Σ a_i² σ_i², Var n2 = Σ σ_i², Cov = Σ a_i σ_i² (module docstring); n1 is drawn
        as ρ n2 + resid z1 with ρ = Cov / Var n2, and the read adds (n1 - ideal n2) / (D + n2).
        """
        scale = 2.0 ** -self.params.coupling_frac_bits
        alpha = 0.5 * (v_pos_V - v_neg_V)
        B = 0.5 * (v_pos_V + v_neg_V)
        if t is not None:
            c = self.deviation_terms(cols, sums.s_t, t, v_pos_V, v_neg_V)
            ideal = sums.s_d * c["b_scale"]
            ideal += c["a0"]
            if z is None:
                return ideal
            var_num = sums.var_d2 * c["c_d2"]
            var_num += sums.var_d * c["c_d"]
            var_num += c["p0"]
            cov = sums.var_d * c["c_cov"]
            cov += c["q0"]
        else:
            step = cols.step
            ideal = sums.s_d * (B * scale)
            ideal += (alpha * scale) * sums.s_t
            if z is None:
                return ideal
            var_num = sums.var_d2 * (step * B * B)
            var_num += (step * alpha * alpha) * sums.var_t2
            var_num += sums.var_td * (step * 2 * alpha * B)
            cov = sums.var_d * (step * B)
            cov += (step * alpha) * sums.var_t
            if sums.n_samples is not None:
                var_num += self._sensing_var(sums.n_samples, cols.den)
        z1, z2 = z
        rho = cov * cols.inv_var_den                         # regression of n1 on n2
        cov *= rho
        var_num -= cov
        np.maximum(var_num, 0, out=var_num)
        resid = np.sqrt(var_num, out=var_num)
        n2 = z2 * cols.sd_den
        rho -= ideal                                         # n1 - ideal n2 = (ρ - ideal) n2 + resid z1
        rho *= n2
        resid *= z1
        rho += resid
        den = n2
        den += cols.den
        if not cols.safe_for(z2):
            den[den <= 0] = np.inf                           # a non-physical draw reads the ideal
        rho /= den
        ideal += rho
        return ideal


@dataclass
class _Columns:
    """Per-output-line terms of a set of evaluated lines (see Crossbar._columns)."""
    k: np.ndarray                       # coupling (inputs x lines), integers
    ksum: np.ndarray                    # its column sums
    den: np.ndarray = None              # Σ_i g_ij, µS
    var_q: np.ndarray = None            # read variances on the integer grid (inputs x lines)
    var_den_q: np.ndarray = None        # their column sums
    step: float = 1.0                   # the grid step, µS²
    sd_den: np.ndarray = None           # σ of Σ_i g_ij in one read
    inv_var_den: np.ndarray = None      # 1 / its variance (0 where it is 0)

    def safe_for(self, z2: np.ndarray) -> bool:
        """Whether D + σ_D z2 > 0 on every line for these normals (no draw to guard against)."""
        return bool(np.all(self.den + self.sd_den * z2.min(initial=0) > 0))


@dataclass
class _LineSums:
    """Exact integer line sums of one batch of MVMs (float64 holding integers)."""
    s_d: np.ndarray                     # Σ d_i k_ij
    s_t: np.ndarray = None              # Σ t_i k_ij
    var_d: np.ndarray = None            # Σ d_i var_ij
    var_d2: np.ndarray = None           # Σ d_i² var_ij
    var_t: np.ndarray = None            # Σ t_i var_ij
    var_t2: np.ndarray = None           # Σ t_i² var_ij
    var_td: np.ndarray = None           # Σ t_i d_i var_ij
    n_samples: np.ndarray = None        # (MVMs, 1) input pulses per MVM when lines differ in t


class FoldedDrive:
    """A drive pattern folded onto its sources (Crossbar.fold): coupling and read-variance rows
    summed per source with the lines' weights, and the constant lines' share precomputed. All
    entries stay integers, so the folded sums equal the line-by-line sums exactly."""

    def __init__(self, xb: Crossbar, direction, lines, source, weight, columns):
        self.direction = direction
        self.columns = None if columns is None else np.asarray(columns)
        self.cols = cols = xb._columns(direction, columns)
        const = source < 0
        used, inverse = np.unique(source[~const], return_inverse=True)
        n_used = used.size
        contiguous = n_used > 0 and used[-1] - used[0] == n_used - 1
        #: the sources' columns of x: a slice when they are a contiguous range (no gather)
        self.used = slice(int(used[0]), int(used[-1]) + 1) if contiguous else used

        def fold(m, w):
            """(rows of m at the lines) · w, summed per source; and the constant lines' sum."""
            rows = m[lines].astype(np.float64) * w[:, None].astype(np.float64)
            per = np.zeros((n_used, m.shape[1]))
            np.add.at(per, inverse, rows[~const])
            return per, rows[const].sum(axis=0)

        self.n_sources = n_used
        self.k = np.vstack(fold(cols.k, weight))              # (sources + 1) x lines, constants last
        if xb.has_read_noise():
            self.k_v = np.hstack([self.k, np.vstack(fold(cols.var_q, weight))])
            self.v2 = np.vstack(fold(cols.var_q, weight * weight))


def _planes(z, n: int, c: int):
    """(z1, z2), each (n, c), from normals given as a pair or as (..., 2, c)."""
    if isinstance(z, tuple):
        return tuple(np.asarray(p, np.float64).reshape(n, c) for p in z)
    z = np.asarray(z, np.float64).reshape(n, 2, c)
    return z[:, 0, :], z[:, 1, :]
