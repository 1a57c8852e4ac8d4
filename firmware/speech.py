"""Keyword spotting in plain numpy: the MFCC front end, a torch-free checkpoint loader and the
software reference of the published NeuRRAM LSTM (Wan et al., Nature 2022; docs/kws.md).

    mfcc(waveforms)                     (N, 16000) audio -> (N, 50, 40) MFCC features
    load_checkpoint(path)               the PyTorch zip checkpoint as numpy arrays (restricted unpickler)
    KwsModel.from_checkpoint(path)      the 4-block LSTM's effective parameters
    KwsModel.forward(features)          the software reference: (N, 12) output values, batched over clips
    quantize(x, bits, a) / codes(...)   the model's symmetric sign-magnitude quantiser

Labels are in the model's order (:data:`LABELS`: yes ... go, unknown, silence);
:func:`labels_from_dataset` maps the order of the Speech Commands test files (silence, unknown,
yes ... go) onto it.

The checkpoint is not part of this repository (it carries no license): the user gives its path.
It is a PyTorch zip archive (``data.pkl`` plus raw float32 storages); :func:`load_checkpoint`
reads it with :mod:`zipfile` and a :class:`pickle.Unpickler` that resolves only a short whitelist
of globals (:data:`ALLOWED_GLOBALS`) and refuses every other one, so a crafted pickle cannot
run code.
"""

from __future__ import annotations

import argparse
import codecs
import collections
import io
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["LABELS", "SAMPLE_RATE_HZ", "N_SAMPLES", "N_FRAMES", "N_MFCC", "mfcc", "mel_filterbank",
           "dct_ortho", "hann_periodic", "hz_to_mel", "mel_to_hz", "labels_from_dataset",
           "UnsafeCheckpointError", "CheckpointError", "ALLOWED_GLOBALS", "load_checkpoint",
           "KwsModel", "quantize", "codes", "clip", "sigmoid", "lstm_gates_to_state"]

#: Output classes in the model's order (the checkpoint's word list).
LABELS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "unknown", "silence")

# -- the MFCC front end ----------------------------------------------------------------------------
SAMPLE_RATE_HZ = 16000
N_SAMPLES = 16000            # one second
WIN_SAMPLES = 641            # window and FFT length
HOP_SAMPLES = 320
N_MELS = 160
F_MIN_HZ = 20.0
F_MAX_HZ = 4000.0
N_MFCC = 40
N_FRAMES = 1 + (N_SAMPLES + 2 * (WIN_SAMPLES // 2) - WIN_SAMPLES) // HOP_SAMPLES   # 50
LOG_OFFSET = 1e-6


def hz_to_mel(f_hz):
    """HTK mel scale: 2595 log10(1 + f/700)."""
    return 2595.0 * np.log10(1.0 + np.asarray(f_hz, np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)


def hann_periodic(n: int) -> np.ndarray:
    """The periodic Hann window of length n: 0.5 - 0.5 cos(2 pi k / n)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def mel_filterbank(n_freqs: int = WIN_SAMPLES // 2 + 1, n_mels: int = N_MELS, f_min_hz: float = F_MIN_HZ,
                   f_max_hz: float = F_MAX_HZ, sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """(n_freqs, n_mels) triangular HTK mel filters without area normalisation; the bins sit at
    linspace(0, sample_rate/2, n_freqs), the convention of the front end the model was trained with
    (even for an odd FFT length)."""
    f = np.linspace(0.0, sample_rate_hz // 2, n_freqs)
    pts = mel_to_hz(np.linspace(hz_to_mel(f_min_hz), hz_to_mel(f_max_hz), n_mels + 2))
    diff = np.diff(pts)
    slopes = pts[None, :] - f[:, None]
    down = -slopes[:, :-2] / diff[:-1]
    up = slopes[:, 2:] / diff[1:]
    return np.maximum(0.0, np.minimum(down, up))


def dct_ortho(n_in: int = N_MELS, n_out: int = N_MFCC) -> np.ndarray:
    """(n_in, n_out) orthonormal DCT-II matrix: features = log_mel @ dct_ortho()."""
    n = np.arange(n_in)[:, None]
    k = np.arange(n_out)[None, :]
    d = np.cos(np.pi / n_in * (n + 0.5) * k) * np.sqrt(2.0 / n_in)
    d[:, 0] *= 1.0 / np.sqrt(2.0)
    return d


_FB = None
_DCT = None


def mfcc(waveforms, *, chunk: int = 512) -> np.ndarray:
    """MFCC features (N, 50, 40) float64 of one-second 16 kHz clips.

    ``waveforms``: (N, samples) int16 PCM (scaled by 1/32768) or float in [-1, 1]; shorter clips
    are zero-padded in the middle, longer ones cut to their first second. Per frame: periodic
    Hann window of 641 samples, 641-point FFT, hop 320, reflect padding of 320 samples at both
    ends, power spectrum, 160 HTK mel bands over 20-4000 Hz, natural log of (mel + 1e-6),
    orthonormal DCT-II, the first 40 coefficients (c0 included). No pre-emphasis, no
    normalisation.
    """
    global _FB, _DCT
    if _FB is None:
        _FB, _DCT = mel_filterbank(), dct_ortho()
    x = np.atleast_2d(np.asarray(waveforms))
    x = x / 32768.0 if x.dtype.kind in "iu" else x.astype(np.float64)
    x = np.clip(x, -1.0, 1.0)
    n = x.shape[1]
    if n > N_SAMPLES:
        x = x[:, :N_SAMPLES]
    elif n < N_SAMPLES:
        front = (N_SAMPLES - n) // 2
        x = np.pad(x, ((0, 0), (front, N_SAMPLES - n - front)))
    half = WIN_SAMPLES // 2
    window = hann_periodic(WIN_SAMPLES)
    starts = np.arange(N_FRAMES) * HOP_SAMPLES
    idx = starts[:, None] + np.arange(WIN_SAMPLES)[None, :]
    out = np.empty((x.shape[0], N_FRAMES, N_MFCC))
    for i0 in range(0, x.shape[0], chunk):
        xp = np.pad(x[i0:i0 + chunk], ((0, 0), (half, half)), mode="reflect")
        frames = xp[:, idx] * window                                   # (n, frames, 641)
        power = np.abs(np.fft.rfft(frames, n=WIN_SAMPLES, axis=-1)) ** 2  # (n, frames, 321)
        out[i0:i0 + chunk] = np.log(power @ _FB + LOG_OFFSET) @ _DCT
    return out


def labels_from_dataset(y) -> np.ndarray:
    """Speech Commands test-file labels (0 silence, 1 unknown, 2.. yes ... go) -> the model's order."""
    y = np.asarray(y, np.int64)
    return np.where(y == 0, 11, np.where(y == 1, 10, y - 2))


# -- the checkpoint loader -------------------------------------------------------------------------

class CheckpointError(ValueError):
    """The file is not a readable PyTorch zip checkpoint of the expected model."""


class UnsafeCheckpointError(CheckpointError):
    """The checkpoint's pickle names a global outside the whitelist (it could run code)."""


class _FloatStorage:
    """Stands for ``torch.FloatStorage`` in persistent ids: float32 storages."""


def _rebuild_tensor_v2(storage, offset, size, stride, *_ignored):
    """A tensor from its storage, as ``torch._utils._rebuild_tensor_v2`` builds it (a copy)."""
    flat = np.asarray(storage)
    if not size:
        return flat[offset].copy()
    itemsize = flat.itemsize
    need = offset + 1 + sum((n - 1) * s for n, s in zip(size, stride))
    if offset < 0 or need > flat.size or min(stride) < 0:
        raise CheckpointError(f"a tensor of shape {tuple(size)} reaches beyond its storage")
    return np.lib.stride_tricks.as_strided(flat[offset:], shape=tuple(size),
                                           strides=tuple(s * itemsize for s in stride)).copy()


def _numpy_scalar(dtype, data=None):
    """``numpy.core.multiarray.scalar``: one value of ``dtype`` from its bytes."""
    dtype = np.dtype(dtype)
    if dtype.hasobject:
        raise UnsafeCheckpointError("the checkpoint holds a numpy object scalar: refused")
    return np.frombuffer(data, dtype, count=1)[0]


def _numpy_dtype(name, align=False, copy=False):
    dt = np.dtype(name)
    if dt.hasobject:
        raise UnsafeCheckpointError("the checkpoint asks for a numpy object dtype: refused")
    return dt


def _codecs_encode(obj, encoding="utf-8", errors="strict"):
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1", "utf-8"):
        raise UnsafeCheckpointError(f"_codecs.encode({type(obj).__name__}, {encoding!r}) refused")
    return codecs.encode(obj, encoding, errors)


#: (module, name) -> what it resolves to; every other global is refused.
ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch", "FloatStorage"): _FloatStorage,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "dtype"): _numpy_dtype,
    ("_codecs", "encode"): _codecs_encode,
    ("argparse", "Namespace"): argparse.Namespace,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, read_storage):
        super().__init__(io.BytesIO(data))
        self._read_storage = read_storage

    def find_class(self, module, name):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f"the checkpoint's pickle asks for the global {module}.{name}, which is not on the "
                f"whitelist of a model checkpoint: refused (is this the NeuRRAM KWS checkpoint?)") from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage"):
            raise UnsafeCheckpointError(f"unexpected persistent id {pid!r} in the checkpoint: refused")
        if pid[1] is not _FloatStorage:
            raise CheckpointError(f"storage type {pid[1]!r}: only float32 storages are supported")
        return self._read_storage(str(pid[2]))


def load_checkpoint(path) -> dict:
    """The top-level object of a PyTorch zip checkpoint (``torch.save``), tensors as numpy arrays,
    read without torch. Raises FileNotFoundError, CheckpointError or UnsafeCheckpointError."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint not found at {p}: pass --checkpoint PATH to the published "
                                f"NeuRRAM KWS checkpoint hidden_108_msb_4.pkl (docs/kws.md)")
    if not zipfile.is_zipfile(p):
        raise CheckpointError(f"{p} is not a PyTorch zip checkpoint (torch.save format of torch >= 1.6)")
    with zipfile.ZipFile(p) as z:
        pkl = [n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl) != 1:
            raise CheckpointError(f"{p} holds {len(pkl)} data.pkl entries, a PyTorch checkpoint holds one")
        prefix = pkl[0][:-len("data.pkl")]
        names = set(z.namelist())

        def read_storage(key: str):
            name = f"{prefix}data/{key}"
            if name not in names:
                raise CheckpointError(f"storage {key} missing from {p}")
            return np.frombuffer(z.read(name), dtype="<f4")

        return _RestrictedUnpickler(z.read(pkl[0]), read_storage).load()


# -- the model -------------------------------------------------------------------------------------

def clip(x, a):
    """sign(x)·min(|x|, a) (the model's PACT clip, a > 0)."""
    return np.clip(x, -a, a)


def codes(x, bits: int, a):
    """Integer codes of the symmetric quantiser Q(x, bits, a): round(clamp(x/a, ±(1 - 1/s))·s),
    s = 2^(bits-1), round half to even; values code·a/s (sign-magnitude, 2s - 1 levels)."""
    s = float(1 << (bits - 1))
    lim = 1.0 - 1.0 / s
    return np.rint(np.clip(np.asarray(x, np.float64) / a, -lim, lim) * s)


def quantize(x, bits: int, a):
    """Q(x, bits, a) = codes(x, bits, a)·a/2^(bits-1)."""
    return codes(x, bits, a) * (a / float(1 << (bits - 1)))


def sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, np.float64)))


@dataclass
class KwsModel:
    """The effective parameters of the 4-block KWS LSTM (weights already clipped to ±w_clip).

    Per block b: ``w_ih[b]`` (40, 432), ``w_hh[b]`` (108, 432), ``b_ih[b]``, ``b_hh[b]`` (432,),
    gate columns [i | j | f | o] of 108 each; ``w_fc[b]`` (108, 12), ``b_fc[b]`` (12,); the clip
    parameters ``a[k]`` (4,) for k = 1 ... 14 of the cell, ``fa1``, ``fa2`` of the dense layer and
    ``a_out`` of the summed output."""
    w_ih: np.ndarray
    w_hh: np.ndarray
    b_ih: np.ndarray
    b_hh: np.ndarray
    w_fc: np.ndarray
    b_fc: np.ndarray
    a: dict
    fa1: np.ndarray
    fa2: np.ndarray
    a_out: float
    input_bits: int = 4
    hidden_bits: int = 4
    fc_in_bits: int = 4
    fc_out_bits: int = 6
    out_bits: int = 8

    W_CLIP = 0.1       # max_w of the published training run
    B_CLIP = 6.0       # bias clip (rows_bias)

    @property
    def blocks(self) -> int:
        return self.w_ih.shape[0]

    @property
    def hidden(self) -> int:
        return self.w_hh.shape[1]

    @classmethod
    def from_checkpoint(cls, path) -> "KwsModel":
        ck = load_checkpoint(path)
        try:
            sd = ck["model_dict"]
            f = lambda k: np.asarray(sd[k], np.float64)         # noqa: E731
            a = {k: f(f"lstmBlocks.cell.a{k}") for k in range(1, 15)}
            m = cls(w_ih=clip(f("lstmBlocks.cell.weight_ih"), cls.W_CLIP),
                    w_hh=clip(f("lstmBlocks.cell.weight_hh"), cls.W_CLIP),
                    b_ih=clip(f("lstmBlocks.cell.bias_ih")[:, 0], cls.B_CLIP),
                    b_hh=clip(f("lstmBlocks.cell.bias_hh")[:, 0], cls.B_CLIP),
                    w_fc=clip(f("finFC.weights"), cls.W_CLIP), b_fc=clip(f("finFC.bias")[:, 0], cls.B_CLIP),
                    a=a, fa1=f("finFC.a1"), fa2=f("finFC.a2"), a_out=float(f("a2").reshape(-1)[0]))
        except (KeyError, TypeError, IndexError) as e:
            raise CheckpointError(f"{path} is not the NeuRRAM KWS LSTM checkpoint (missing {e})") from None
        nb, n_in, four_h = m.w_ih.shape
        if m.w_hh.shape != (nb, four_h // 4, four_h) or m.w_fc.shape[:2] != (nb, four_h // 4):
            raise CheckpointError(f"{path}: unexpected LSTM shapes {m.w_ih.shape}, {m.w_hh.shape}, {m.w_fc.shape}")
        return m

    # -- one step, shared by the software reference and the chip run ---------------------------
    def input_step(self, b: int) -> float:
        """Value of one input code of block b (a1/8)."""
        return float(self.a[1][b]) / (1 << (self.input_bits - 1))

    def hidden_step(self, b: int) -> float:
        return float(self.a[11][b]) / (1 << (self.hidden_bits - 1))

    def input_codes(self, features: np.ndarray, b: int) -> np.ndarray:
        """4-bit sign-magnitude codes (-7 ... 7) of MFCC features for block b."""
        return codes(features, self.input_bits, float(self.a[1][b]))

    def hidden_codes(self, h: np.ndarray, b: int) -> np.ndarray:
        return codes(h, self.hidden_bits, float(self.a[11][b]))

    def gates(self, p1: np.ndarray, p2: np.ndarray, b: int) -> np.ndarray:
        """Gate pre-activations from the two MVM results (biases included)."""
        a = self.a
        return clip(clip(p1, a[12][b]) + clip(p2, a[13][b]), a[14][b])

    def cell(self, g: np.ndarray, c: np.ndarray, b: int):
        """(h, c) after one step from gate pre-activations g (N, 4H) and the cell state c."""
        return lstm_gates_to_state(g, c, {k: float(v[b]) for k, v in self.a.items()})

    def fc_codes(self, h: np.ndarray, b: int) -> np.ndarray:
        return codes(clip(h, self.fa1[b]), self.fc_in_bits, float(self.fa1[b]))

    def fc_step(self, b: int) -> float:
        return float(self.fa1[b]) / (1 << (self.fc_in_bits - 1))

    def fc_out(self, y: np.ndarray, b: int) -> np.ndarray:
        """The dense layer's 6-bit output from its pre-activation (bias included)."""
        return quantize(clip(y, self.fa2[b]), self.fc_out_bits, float(self.fa2[b]))

    def combine(self, y_blocks) -> np.ndarray:
        """The summed output z (N, 12) of the blocks' dense outputs: 8-bit, clipped at a_out."""
        return quantize(clip(sum(y_blocks), self.a_out), self.out_bits, self.a_out)

    # -- the software reference ------------------------------------------------------------------
    def forward(self, features: np.ndarray, *, chunk: int = 1024) -> np.ndarray:
        """Output values z (N, 12) of the software model on MFCC features (N, 50, 40); the
        prediction is ``z.argmax(1)`` (first index on ties)."""
        feats = np.asarray(features, np.float64)
        out = []
        for i0 in range(0, len(feats), chunk):
            x = feats[i0:i0 + chunk]
            ys = []
            for b in range(self.blocks):
                xq = self.input_codes(x, b) * self.input_step(b)                  # (n, T, 40)
                p1_all = xq @ self.w_ih[b] + self.b_ih[b]                          # (n, T, 4H)
                h = np.zeros((len(x), self.hidden))
                c = np.zeros_like(h)
                for t in range(x.shape[1]):
                    p2 = (self.hidden_codes(h, b) * self.hidden_step(b)) @ self.w_hh[b] + self.b_hh[b]
                    h, c = self.cell(self.gates(p1_all[:, t], p2, b), c, b)
                y = (self.fc_codes(h, b) * self.fc_step(b)) @ self.w_fc[b] + self.b_fc[b]
                ys.append(self.fc_out(y, b))
            out.append(self.combine(ys))
        return np.concatenate(out) if out else np.zeros((0, len(LABELS)))

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.forward(features).argmax(1)


def lstm_gates_to_state(g: np.ndarray, c: np.ndarray, a: dict):
    """The host side of one LSTM step: gate columns [i | j | f | o], the clipped sigmoid/tanh
    gates, the cell update and the new hidden state (a: the block's clip parameters a3 ... a11)."""
    H = g.shape[-1] // 4
    i, j, f, o = g[..., :H], g[..., H:2 * H], g[..., 2 * H:3 * H], g[..., 3 * H:]
    f = clip(sigmoid(f), a[3])
    i = clip(sigmoid(i), a[4])
    j = clip(np.tanh(j), a[5])
    o = clip(sigmoid(o), a[6])
    c = clip(clip(c * f, a[7]) + clip(i * j, a[8]), a[9])
    h = clip(clip(np.tanh(c), a[10]) * o, a[11])
    return h, c
