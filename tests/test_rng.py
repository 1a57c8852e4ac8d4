"""The counter-based normal generator: determinism, distribution, tails, independence, keys.

Tolerances are 5 standard errors of the statistic for the sample size (a false alarm about
once in 10^6 runs; the draws are deterministic anyway, so a passing test keeps passing).
"""

import functools
import math

import numpy as np
import pytest

from neurram.models.rng import key_from_seed, normal_pairs, normal_planes

KEY = key_from_seed(np.random.SeedSequence(2024))
SQRT2 = math.sqrt(2)


def lower_cdf(x):
    """Phi(-|x|), accurate in relative terms far into the tail."""
    return 0.5 * np.vectorize(math.erfc, otypes=[float])(np.abs(x) / SQRT2)


def cdf(x):
    lo = lower_cdf(x)
    return np.where(x < 0, lo, 1 - lo)


@functools.cache
def sample():
    """2**21 normals: 2**15 MVMs x 32 lines x 2, as (z1, z2) planes."""
    return normal_planes(KEY, np.arange(5 << 30, (5 << 30) + (1 << 15)), np.arange(32))


@functools.cache
def big_sample():
    """2**24 normals for the tails."""
    z1, z2 = normal_planes(KEY ^ 1, np.arange(1 << 18), np.arange(32))
    return np.concatenate([z1.ravel(), z2.ravel()])


def test_planes_and_pairs_agree_and_have_the_documented_layout():
    idx, lines = np.arange(100, 164), np.arange(40)
    z1, z2 = normal_planes(KEY, idx, lines)
    for z in (z1, z2):
        assert z.dtype == np.float64 and z.shape == (64, 40) and z.flags.c_contiguous
    pairs = normal_pairs(KEY, idx, lines)
    assert pairs.shape == (64, 2, 40) and pairs.dtype == np.float64
    assert np.array_equal(pairs[:, 0], z1) and np.array_equal(pairs[:, 1], z2)
    assert np.array_equal(normal_pairs(KEY, idx, lines, np.float32), pairs.astype(np.float32))
    assert normal_pairs(KEY, 7, lines).shape == (2, 40)
    assert np.array_equal(normal_pairs(KEY, idx.reshape(8, 8), lines), pairs.reshape(8, 8, 2, 40))
    assert normal_pairs(KEY, np.arange(0), lines).shape == (0, 2, 40)


def test_same_key_index_line_same_value_whatever_the_batching():
    idx = np.array([0, 1, 2, 3, 1000, 2 ** 40 - 1, 2 ** 40, 2 ** 40 + 12345])
    lines = np.arange(256)
    ref = normal_pairs(KEY, idx, lines)
    assert np.array_equal(normal_pairs(KEY, idx, lines), ref)          # deterministic
    for k, n in enumerate(idx):                                        # one MVM at a time
        assert np.array_equal(normal_pairs(KEY, n, lines), ref[k])
    perm = np.random.default_rng(0).permutation(idx.size)
    assert np.array_equal(normal_pairs(KEY, idx[perm], lines), ref[perm])
    sub = np.array([255, 3, 17, 0, 128])                                # any subset of lines, any order
    assert np.array_equal(normal_pairs(KEY, idx, sub), ref[:, :, sub])
    many = np.arange(70_000)                                           # spans several internal blocks
    z1, z2 = normal_planes(KEY, many, np.arange(3))
    z1b, z2b = normal_planes(KEY, many[::-1], np.arange(3))
    assert np.array_equal(z1, z1b[::-1]) and np.array_equal(z2, z2b[::-1])


def test_moments():
    z = np.concatenate([p.ravel() for p in sample()])
    n = z.size
    m = z.mean()
    c = z - m
    var = np.mean(c * c)
    skew = np.mean(c ** 3) / var ** 1.5
    kurt = np.mean(c ** 4) / var ** 2 - 3
    assert abs(m) < 5 / math.sqrt(n)
    assert abs(var - 1) < 5 * math.sqrt(2 / n)
    assert abs(skew) < 5 * math.sqrt(6 / n)
    assert abs(kurt) < 5 * math.sqrt(24 / n)


def test_kolmogorov_smirnov_against_the_normal_cdf():
    z = np.concatenate([p.ravel() for p in sample()])
    n = z.size
    values, counts = np.unique(z, return_counts=True)   # the draws take at most ~2**17 distinct values
    f_after = np.cumsum(counts) / n
    f_before = f_after - counts / n
    phi = cdf(values)
    d = max(np.max(np.abs(f_after - phi)), np.max(np.abs(f_before - phi)))
    assert d < 1.628 / math.sqrt(n)                       # 1 % critical value


def test_values_are_the_documented_quantiles():
    """Every draw is Phi^-1((i + 0.5) / 2**16), or in the tails Phi^-1((k + 0.5) / 2**32), to ~1e-12."""
    values = np.unique(big_sample())
    p = lower_cdf(values)                                 # Phi(-|z|)
    bulk = np.abs(values) < 4.1                          # bin 1 is at 4.07, the tails beyond 4.17
    for scale, sel in ((2.0 ** 16, bulk), (2.0 ** 32, ~bulk)):
        pos = p[sel] * scale - 0.5
        assert np.max(np.abs(pos - np.round(pos))) < 1e-6
    assert bulk.sum() == 2 ** 16 - 2                      # every bulk bin is reached in 2**24 draws
    assert (~bulk).sum() > 100                            # and the tails are resolved beyond the bins


def test_tails():
    z = big_sample()
    n = z.size
    a = np.abs(z)
    assert np.all(np.isfinite(z)) and a.max() <= 6.5
    for t in (3.0, 4.0, 4.5):
        p = 2 * float(lower_cdf(t))
        count = int(np.count_nonzero(a > t))
        assert abs(count - n * p) < 5 * math.sqrt(n * p * (1 - p)), (t, count, n * p)
    # beyond 4.5 sigma (~114 expected) both signs occur, about equally
    hi, lo = np.count_nonzero(z > 4.5), np.count_nonzero(z < -4.5)
    assert abs(hi - lo) < 5 * math.sqrt(hi + lo)
    assert a.max() > 4.8                                  # not truncated at the table's extreme bins


def corr(x, y):
    x = x.ravel() - x.mean()
    y = y.ravel() - y.mean()
    return float(np.dot(x, y) / math.sqrt(np.dot(x, x) * np.dot(y, y)))


def test_independence_within_pairs_lines_and_indices():
    z1, z2 = sample()
    pairs = [
        (z1, z2),                                         # the two normals of one pair
        (z1[:, :-1], z1[:, 1:]), (z2[:, :-1], z2[:, 1:]), (z1[:, :-1], z2[:, 1:]),   # neighbouring lines
        (z1[:-1], z1[1:]), (z2[:-1], z2[1:]), (z2[:-1], z1[1:]),                     # neighbouring MVMs
        (z1 * z1, z2 * z2), (np.abs(z1[:-1]), np.abs(z1[1:])),                      # magnitudes too
    ]
    for x, y in pairs:
        assert abs(corr(x, y)) < 5 / math.sqrt(x.size)


def test_different_keys_give_different_streams():
    idx, lines = np.arange(4096), np.arange(64)
    keys = [KEY, KEY ^ 1, KEY ^ (1 << 63), key_from_seed(np.random.SeedSequence(2025)), 0]
    assert len(set(keys)) == len(keys)
    draws = [normal_planes(k, idx, lines)[0] for k in keys]
    n = draws[0].size
    for i in range(len(keys)):
        for j in range(i):
            assert abs(corr(draws[i], draws[j])) < 5 / math.sqrt(n)
            assert np.mean(draws[i] == draws[j]) < 1e-3   # equal only by chance (~2**-16)


@pytest.mark.parametrize("lines", [1, 32, 256])
def test_block_sizes_do_not_matter(lines):
    idx = np.arange(3000, 3000 + (1 << 16) // lines + 5)
    z1, z2 = normal_planes(KEY, idx, np.arange(lines))
    half = idx.size // 2
    a1, a2 = normal_planes(KEY, idx[:half], np.arange(lines))
    assert np.array_equal(z1[:half], a1) and np.array_equal(z2[:half], a2)


def test_single_draws_take_the_python_path_with_the_same_bits():
    """One (index, line) at a time (a cell read or pulse in the co-simulation) goes through
    Python integers; the bits equal the array path's, the refined tails included."""
    from neurram.models.rng import _normals, _normals_one

    key = 0x1234_5678_9ABC
    idx = np.arange(200_000, dtype=np.uint64)
    z = _normals(key, idx, np.array([3], np.uint64))[:, :, 0]
    tails = np.flatnonzero((np.abs(z) > 4.17).any(axis=0))
    assert tails.size >= 3                      # 2**-15 of the draws sit in the extreme bins
    pick = np.concatenate([tails, np.arange(0, 200_000, 997)])
    for i in pick:
        np.testing.assert_array_equal(_normals_one(key, int(i), 3)[:, 0, 0], z[:, i])
