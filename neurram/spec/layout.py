"""Host-side layouts of the chip's buffers (docs/registers.md, "Buffers").

Input and output vectors travel as bit-planes: plane p of a vector holds bit p of every line's
code, 32 lines per word. Ternary registers travel as two such planes (non-zero, negative). These helpers
convert between numpy arrays and the word lists the bus carries; they know nothing about
transports.
"""

import numpy as np

__all__ = ["bits_to_words", "words_to_bits", "codes_to_planes", "planes_to_codes", "input_words", "input_bursts",
           "output_words", "output_bytes_from_words", "ternary_to_words", "words_to_ternary"]


def bits_to_words(bits: np.ndarray, n_words: int) -> np.ndarray:
    """(..., lines) bools -> (..., n_words) uint32, line 32w+i in bit i of word w."""
    bits = np.asarray(bits, dtype=np.uint8)
    lines = bits.shape[-1]
    padded = np.zeros(bits.shape[:-1] + (32 * n_words,), np.uint8)
    padded[..., :lines] = bits
    packed = np.packbits(padded, axis=-1, bitorder="little")
    return packed.view("<u4").astype(np.uint32) if packed.flags.c_contiguous else \
        np.ascontiguousarray(packed).view("<u4").astype(np.uint32)


def words_to_bits(words, lines: int) -> np.ndarray:
    w = np.ascontiguousarray(np.asarray(words, dtype="<u4"))
    return np.unpackbits(w.view(np.uint8), axis=-1, bitorder="little")[..., :lines].astype(bool)


def codes_to_planes(codes: np.ndarray, planes: int, signed: bool) -> np.ndarray:
    """(B, lines) integer codes -> (B, planes, lines) bools: magnitude bits then the sign plane.

    Unsigned codes use planes 0..planes-2 for their bits. Signed codes are sign-magnitude: the
    magnitude in the low planes, plane planes-1 set for negative codes.
    """
    codes = np.atleast_2d(np.asarray(codes, dtype=np.int64))
    mag = np.abs(codes) if signed else codes
    if (codes < 0).any() and not signed:
        raise ValueError("negative input codes need signed inputs")
    out = np.zeros(codes.shape[:1] + (planes,) + codes.shape[1:], dtype=bool)
    for p in range(planes - 1):
        out[:, p] = (mag >> p) & 1
    out[:, planes - 1] = codes < 0
    return out


def planes_to_codes(planes: np.ndarray, signed: bool) -> np.ndarray:
    planes = np.asarray(planes, dtype=np.int64)
    n = planes.shape[1]
    mag = sum(planes[:, p] << p for p in range(n - 1))
    return np.where(planes[:, n - 1].astype(bool), -mag, mag) if signed else mag


def input_words(codes: np.ndarray, config, signed: bool) -> np.ndarray:
    """The whole INPUT buffer for a batch of codes (B <= batch_depth, lines): plane after plane,
    each plane holding every vector slot (unused slots zero)."""
    planes = codes_to_planes(codes, config.input_planes, signed)          # (B, P, lines)
    buf = np.zeros((config.input_planes, config.batch_depth, config.words_per_line_vector), np.uint32)
    buf[:, :planes.shape[0]] = bits_to_words(planes, config.words_per_line_vector).transpose(1, 0, 2)
    return buf.reshape(-1)


def input_bursts(codes: np.ndarray, config, signed: bool, input_bits: int):
    """The INPUT buffer writes a batch needs: one burst per plane the sequencer reads (the
    magnitude planes, and the sign plane for signed inputs), each covering the batch's vectors.
    Returns [(word offset, words)]."""
    codes = np.atleast_2d(codes)
    P, D, W = config.input_planes, config.batch_depth, config.words_per_line_vector
    planes = codes_to_planes(codes, P, signed)
    used = list(range(input_bits - int(bool(signed)))) + ([P - 1] if signed else [])
    return [(p * D * W, bits_to_words(planes[:, p], W).reshape(-1)) for p in used]


def output_words(outputs, n_words: int) -> np.ndarray:
    """(batch, lines) output bytes -> OUTPUT buffer words (batch x 8 planes x n_words), flat."""
    planes = (np.asarray(outputs, np.uint16)[:, None, :] >> np.arange(8)[None, :, None]) & 1
    return bits_to_words(planes.astype(bool), n_words).reshape(-1)


def output_bytes_from_words(words, config, batch: int) -> np.ndarray:
    """OUTPUT buffer words (batch x 8 planes x words_per_line_vector) -> (batch, lines) uint8."""
    w = np.asarray(words, dtype=np.uint32).reshape(batch, 8, config.words_per_line_vector)
    bits = words_to_bits(w, config.lines).astype(np.uint8)          # (B, 8, lines)
    return np.einsum("bkl,k->bl", bits, 1 << np.arange(8, dtype=np.int64)).astype(np.uint8)


def ternary_to_words(values: np.ndarray, n_words: int) -> np.ndarray:
    """Ternary values {-1, 0, +1} -> the register's two bit-planes (non-zero, negative) as words.

    ``n_words`` is the whole register (2 x words_per_line_vector)."""
    v = np.asarray(values, dtype=np.int64)
    half = n_words // 2
    return np.concatenate([bits_to_words(v != 0, half), bits_to_words(v < 0, half)])


def words_to_ternary(words, lines: int) -> np.ndarray:
    w = np.asarray(words, dtype=np.uint32)
    half = w.size // 2
    act, neg = words_to_bits(w[:half], lines), words_to_bits(w[half:], lines)
    return np.where(act, np.where(neg, -1, 1), 0).astype(np.int8)
