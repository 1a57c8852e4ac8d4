"""Counter-based standard normals: the same draw for the same (key, index, line) in any order.

The read noise of MVM ``n`` on output line ``j`` of a core is a pure function of the core's key,
``n`` and ``j``. Both the co-simulation (one MVM at a time, every line, through
``AnalogCore.initialise``) and the fast model (whole batches, only the lines it needs) call
:func:`normal_pairs`, so they see identical noise without sharing a stream.

Generator: one 64-bit SplitMix64 hash (Steele, Lea & Flood, OOPSLA 2014) per pair (n, j): draw
number ``c = n * 2**16 + j`` of a SplitMix64 stream whose seed and odd increment ("gamma", as in
Java's SplittableRandom) both come from the key, i.e. ``mix(seed + (c + 1) * gamma)``. ``c`` is
injective for n < 2**48 and j < 2**16, ``gamma`` is odd and ``mix`` is a bijection, so no two
(n, j) of one key share a hash; different keys differ in both seed and gamma.

Both normals of the pair come from that one hash by table look-up, without a transcendental
function per draw (``log``/``sqrt``/``cos``/``sin`` of Box-Muller cost several times more, and the
fast model draws the noise of every MVM it runs). A 16-bit field of the hash (bits 48-63 for the
first normal, 32-47 for the second) picks one of 65,536 equiprobable bins and returns the normal
quantile at its midpoint, ``Phi^-1((i + 0.5) / 2**16)``. The two extreme bins (|z| > 4.17,
probability 2**-16 each, 2**-15 of the draws) would be cut at |z| = 4.32; they are refined by
another 16 bits (bits 16-31 for the first normal, 0-15 for the second) through a second table,
``Phi^-1((k + 0.5) / 2**32)``, mirrored for the upper tail. The draws are thus the normal
distribution quantised to 2**-16 in probability in the bulk (steps of 4e-5 sigma at the centre)
and 2**-32 in the tails, with |z| at most ``-Phi^-1(2**-33)`` = 6.34. The tables (exactly
antisymmetric, so the distribution's mean is exactly 0) are computed once at import with numpy and
``math.erfc`` (Acklam's approximation, one Halley step), accurate to ~1e-15.
"""

import functools
import math

import numpy as np

__all__ = ["splitmix64", "key_from_seed", "normal_pairs", "normal_planes"]

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MASK = (1 << 64) - 1


def _mix_(z: np.ndarray) -> np.ndarray:
    """SplitMix64's output function (Stafford's Mix13), in place on a uint64 array."""
    t = np.empty_like(z)
    for shift, mul in ((30, _M1), (27, _M2), (31, None)):
        np.right_shift(z, np.uint64(shift), out=t)
        np.bitwise_xor(z, t, out=z)
        if mul is not None:
            np.multiply(z, mul, out=z)
    return z


def splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 of x: ``mix(x + golden)`` (the first output of a stream seeded with x)."""
    z = np.array(x, np.uint64)
    z += _GOLDEN
    return _mix_(z)[()]


def _splitmix_int(x: int) -> int:
    return int(splitmix64(np.uint64(x & _MASK)))


def key_from_seed(seed_sequence: np.random.SeedSequence) -> int:
    return int(seed_sequence.generate_state(1, np.uint64)[0])


@functools.lru_cache(maxsize=256)
def _stream(key: int) -> tuple[int, int]:
    """Seed and odd gamma of a key's stream (gamma with enough bit transitions, as SplittableRandom)."""
    seed = _splitmix_int(key)
    gamma = _splitmix_int(key ^ 0xD6E8FEB86659FD93) | 1
    if bin(gamma ^ (gamma >> 1)).count("1") < 24:
        gamma ^= 0xAAAAAAAAAAAAAAAA
    return seed, gamma


# -- the quantile tables ---------------------------------------------------------------------------
def _normal_quantile_lower(p: np.ndarray) -> np.ndarray:
    """Phi^-1(p) for 0 < p <= 0.5: Acklam's approximation (rel. error 1e-9), one Halley step."""
    a = (-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
         1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00)
    b = (-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
         6.680131188771972e+01, -1.328068155288572e+01)
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
         -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00)
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00)
    p = np.asarray(p, np.float64)
    q = np.sqrt(-2 * np.log(np.minimum(p, 0.02425)))          # lower region (p < 0.02425)
    lo = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / \
         ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    q = p - 0.5                                                # central region
    r = q * q
    mid = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / \
          (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    x = np.where(p < 0.02425, lo, mid)
    cdf = np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in x.tolist()])
    u = (cdf - p) * math.sqrt(2 * math.pi) * np.exp(0.5 * x * x)
    return x - u / (1 + 0.5 * x * u)


_half = _normal_quantile_lower((np.arange(1 << 15) + 0.5) / (1 << 16))
# Entry f is the quantile of bin (f - 1) mod 2**16, Phi^-1((i + 0.5) / 2**16) for bin i (exactly
# antisymmetric): the two extreme bins sit at f = 1 (lower) and f = 0 (upper), found by f < 2.
_TABLE = np.roll(np.concatenate([_half, -_half[::-1]]), 1)
_TAIL = _normal_quantile_lower((np.arange(1 << 16) + 0.5) / 2.0 ** 32)   # inside bin 0: Phi^-1((k + 0.5) / 2**32)
_TABLE.flags.writeable = _TAIL.flags.writeable = False
del _half


# -- the draws -------------------------------------------------------------------------------------
_CHUNK = 1 << 15          # pairs per block: the hash passes then stay in cache (2x faster on big arrays)


def _fill(a: np.ndarray, b: np.ndarray, z: np.ndarray) -> None:
    """z[:, i, j] = the pair of normals of the hash mix(a[i] + b[j]); z is (2, len(a), len(b))."""
    with np.errstate(over="ignore"):
        h = _mix_(np.add.outer(a, b))
    w = h.astype("<u8", copy=False).view("<u2").reshape(a.size, b.size, 4)   # the 16-bit fields
    np.take(_TABLE, w[..., 3], out=z[0], mode="clip")
    np.take(_TABLE, w[..., 2], out=z[1], mode="clip")
    tail = np.empty(z.shape, bool)                            # the extreme bins: fields 0 and 1
    np.less(w[..., 3], 2, out=tail[0])
    np.less(w[..., 2], 2, out=tail[1])
    hits = np.flatnonzero(tail)
    if hits.size:                                             # 2**-15 of the draws
        plane, row, col = np.unravel_index(hits, z.shape)
        t = _TAIL[w[row, col, 1 - plane]]
        z[plane, row, col] = np.where(w[row, col, 3 - plane] == 1, t, -t)


def _normals(key: int, index, lines) -> np.ndarray:
    """(2, N, L) float64: plane 0 = first normal of each pair, plane 1 = second."""
    idx = np.asarray(index, np.uint64).reshape(-1)
    ln = np.asarray(lines, np.uint64).reshape(-1)
    seed, gamma = _stream(int(key))
    with np.errstate(over="ignore"):
        # mix(seed + (n * 2**16 + j + 1) * gamma) = mix(a[n] + b[j])
        a = idx * np.uint64((gamma << 16) & _MASK) + np.uint64(seed)
        b = (ln + np.uint64(1)) * np.uint64(gamma)
    z = np.empty((2, idx.size, ln.size))
    step = max(1, _CHUNK // max(ln.size, 1))
    for s in range(0, idx.size, step):
        _fill(a[s:s + step], b, z[:, s:s + step])
    return z


def _normals_one(key: int, index: int, line: int) -> np.ndarray:
    """:func:`_normals` of a single (index, line) in Python integers: the same bits without the
    array overhead (one cell read or pulse of the co-simulation costs this once)."""
    seed, gamma = _stream(int(key))
    z = (index * ((gamma << 16) & _MASK) + seed + (line + 1) * gamma) & _MASK
    z ^= z >> 30
    z = (z * 0xBF58476D1CE4E5B9) & _MASK
    z ^= z >> 27
    z = (z * 0x94D049BB133111EB) & _MASK
    z ^= z >> 31
    out = np.empty((2, 1, 1))
    for plane, (field, fine) in enumerate(((z >> 48, (z >> 16) & 0xFFFF), ((z >> 32) & 0xFFFF, z & 0xFFFF))):
        if field < 2:                                         # an extreme bin: refined
            t = _TAIL[fine]
            out[plane, 0, 0] = t if field == 1 else -t
        else:
            out[plane, 0, 0] = _TABLE[field]
    return out


def normal_planes(key: int, index: np.ndarray, lines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two normals of each (index, line) as two C-contiguous float64 (len(index), len(lines))."""
    if np.size(index) == 1 and np.size(lines) == 1:
        z = _normals_one(key, int(np.ravel(index)[0]), int(np.ravel(lines)[0]))
    else:
        z = _normals(key, index, lines)
    return z[0], z[1]


def normal_pairs(key: int, index: np.ndarray, lines: np.ndarray, dtype=np.float64) -> np.ndarray:
    """Two standard normals per (index, line): shape index.shape x (2, len(lines)).

    ``[..., 0, :]`` and ``[..., 1, :]`` are :func:`normal_planes`' two planes (for float64 a
    strided view of them, no copy).
    """
    z = _normals(key, index, lines)
    out = z.transpose(1, 0, 2).reshape(np.shape(index) + (2, z.shape[2]))
    return out if np.dtype(dtype) == np.float64 else out.astype(dtype)
