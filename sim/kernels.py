"""An optional compiled kernel for the fast model's hottest path, with the numpy path's bits.

After the exact line sums of a batch of MVMs (BLAS matrix products, ``Crossbar.folded_sums``),
the numpy path makes some thirty passes over the (MVMs x lines) arrays: the read noise
(``Crossbar._deviation``), the integrator charge (``NeuronBank.charge_nV``), the charge-decrement
conversion (``decrement_closed_form``) and the output byte (``encode_output``). :func:`convert`
does the same arithmetic in one pass with numba, operation for operation in the same order
(IEEE double, no fused multiply-add, no reassociation), so it returns the same bytes;
``tests/test_fastpath.py`` holds the two equal on full-size cores with noise on.

It is used when numba is installed (``pip install -e .[fast]``) and ``NEURRAM_KERNEL`` is not
``numpy``; it covers the runtime's case (charge-decrement or sign outputs without activation,
read noise on, every line driven equally); everything else runs on numpy.
"""

import os

import numpy as np

__all__ = ["available", "convert"]

try:                                    # optional: the "fast" extra
    import numba
except ImportError:                     # pragma: no cover - depends on the environment
    numba = None


def available() -> bool:
    """Whether the compiled kernel is installed and not switched off (NEURRAM_KERNEL=numpy)."""
    return numba is not None and os.environ.get("NEURRAM_KERNEL", "").lower() != "numpy"


def _convert(s_d, var_d, var_d2, z1, z2, b_scale, a0, c_d2, c_d, p0, c_cov, q0, inv_var_den, sd_den, den,
             guard, gain_nV, v_sat_nV, offset_nV, pos_nV, neg_nV, max_steps, steps_out, out, per_mvm, last_flipped):
    n, c = out.shape
    for i in range(n):
        top = 0
        for j in range(c):
            # Crossbar._deviation, uniform drive
            ideal = s_d[i, j] * b_scale
            ideal = ideal + a0[j]
            var_num = var_d2[i, j] * c_d2
            var_num = var_num + var_d[i, j] * c_d
            var_num = var_num + p0[j]
            cov = var_d[i, j] * c_cov
            cov = cov + q0[j]
            rho = cov * inv_var_den[j]
            cov = cov * rho
            var_num = var_num - cov
            var_num = max(var_num, 0.0)
            resid = np.sqrt(var_num)
            n2 = z2[i, j] * sd_den[j]
            rho = rho - ideal
            rho = rho * n2
            resid = resid * z1[i, j]
            rho = rho + resid
            d = n2 + den[j]
            if guard and d <= 0.0:
                d = np.inf
            rho = rho / d
            ideal = ideal + rho
            # NeuronBank.charge_nV
            q = np.rint(ideal * gain_nV[j])
            q = min(max(q, -v_sat_nV), v_sat_nV)
            # decrement_closed_form
            v = q + offset_nV[j]
            positive = v > 0.0
            k = abs(v)
            if positive:
                p = pos_nV[j]
            else:
                p = neg_nV[j]
                k = k + 1.0
            k = np.ceil(k / p)
            steps = min(k, max_steps)
            if i == n - 1:
                last_flipped[j] = k <= max_steps
            # encode_output (no activation): sign bit and steps
            s = int(steps) if steps_out else 0
            out[i, j] = s | (0 if positive else 128)
            if s > top:
                top = s
        per_mvm[i] = top


_compiled = None


def convert(sums, terms: dict, z, guard: bool, gain_nV, v_sat_nV, offset_nV, pos_nV, neg_nV, max_steps: int,
            steps: bool):
    """Output bytes (N, lines), the steps each MVM ran (the largest count of its lines) and, for
    the last MVM, which comparators flipped within ``max_steps``, of a uniformly driven batch with
    read noise, from its line sums (``steps`` False: sign outputs)."""
    global _compiled
    if _compiled is None:
        _compiled = numba.njit(cache=True, nogil=True)(_convert)
    n, c = sums.s_d.shape
    out = np.empty((n, c), np.uint8)
    per_mvm = np.zeros(n, np.int64)
    last_flipped = np.zeros(c, np.bool_)
    f = lambda a: np.ascontiguousarray(a, np.float64)     # noqa: E731
    _compiled(sums.s_d, sums.var_d, sums.var_d2, z[0], z[1], float(terms["b_scale"]), f(terms["a0"]),
              float(terms["c_d2"]), float(terms["c_d"]), f(terms["p0"]), float(terms["c_cov"]), f(terms["q0"]),
              f(terms["inv_var_den"]), f(terms["sd_den"]), f(terms["den"]), bool(guard), f(gain_nV),
              float(v_sat_nV), f(offset_nV), f(pos_nV), f(neg_nV), float(max_steps), bool(steps), out, per_mvm, last_flipped)
    return out, per_mvm, last_flipped
