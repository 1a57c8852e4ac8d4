"""Counter-based random numbers: the same draw for the same (key, index) in any order.

The read noise of MVM ``n`` on output line ``j`` of a core is a pure function of the core's key,
``n`` and ``j``. The co-simulation (one MVM at a time, every line) and the fast model (whole
batches, only the lines it needs) therefore see identical noise without sharing a stream.
The generator is SplitMix64 (Steele, Lea & Flood, OOPSLA 2014) over the packed index, turned
into standard normals by the Box–Muller transform.
"""

import numpy as np

__all__ = ["splitmix64", "normal_pairs", "key_from_seed"]

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def splitmix64(x: np.ndarray) -> np.ndarray:
    z = (np.asarray(x, np.uint64) + _GOLDEN)
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def key_from_seed(seed_sequence: np.random.SeedSequence) -> int:
    return int(seed_sequence.generate_state(1, np.uint64)[0])


def normal_pairs(key: int, index: np.ndarray, lines: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Two standard normals per (index, line): shape index.shape x (2, len(lines))."""
    idx = np.asarray(index, np.uint64).reshape(-1, 1)
    ln = np.asarray(lines, np.uint64).reshape(1, -1)
    with np.errstate(over="ignore"):
        base = splitmix64(np.uint64(key) ^ (idx * np.uint64(0x100000001B3)) ^ (ln << np.uint64(40)))
        h1 = splitmix64(base)
        h2 = splitmix64(base ^ np.uint64(0xD6E8FEB86659FD93))
    u1 = ((h1 >> np.uint64(11)).astype(np.float64) + 0.5) * (1.0 / (1 << 53))
    u2 = (h2 >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
    r = np.sqrt(-2.0 * np.log(u1))
    z = np.stack([r * np.cos(2 * np.pi * u2), r * np.sin(2 * np.pi * u2)], axis=-2)
    return z.astype(dtype).reshape(np.shape(index) + (2, ln.size))
