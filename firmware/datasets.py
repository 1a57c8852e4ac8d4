"""Real benchmark data: MNIST, CIFAR-10 (JPEG test set), Speech Commands v0.02 (test set).

numpy only.  Every loader looks for its files in this order and takes the first hit:

1. ``data_dir``, the directory the user names (``--data-dir``): when given, it is the only
   directory searched, and a missing directory or missing files are an error (never other data);
2. ``$NEURRAM_DATA_DIR``;
3. ``../shared/datasets`` next to the repository root (where CI and the tests find it);
4. the cache directory ``$NEURRAM_CACHE_DIR`` or ``~/.cache/neurram`` (where
   :func:`download_mnist` writes).

MNIST may be stored as ``mnist.npz`` (keys ``x_train, y_train, x_test, y_test``) or as the four
official idx files (``train-images-idx3-ubyte[.gz]`` ...).  Nothing is ever downloaded unless
the caller asks for it (``load_mnist(..., download=True)`` or :func:`download_mnist`).

The embedded demo subset (500 MNIST test images, 50 per class) ships with the package:
:func:`load_mnist_demo_subset`.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import urllib.request
import zipfile
from pathlib import Path

import numpy as np

from . import validate

__all__ = [
    "DataNotFoundError",
    "DataFileError",
    "search_dirs",
    "default_cache_dir",
    "find_file",
    "read_idx",
    "load_mnist",
    "download_mnist",
    "load_mnist_demo_subset",
    "DEMO_SUBSET_PATH",
    "MNIST_FILES",
    "MNIST_MIRRORS",
    "load_cifar10_test",
    "load_cifar10_train_subset",
    "CIFAR10_CLASSES",
    "load_speech_commands_test",
    "SPEECH_COMMANDS_CLASSES",
]

_PKG_DIR = Path(__file__).resolve().parent
REPO_ROOT = _PKG_DIR.parent
DEMO_SUBSET_PATH = _PKG_DIR / "data" / "mnist_test_subset.npz"

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")
SPEECH_COMMANDS_CLASSES = ("_silence_", "_unknown_", "yes", "no", "up", "down", "left",
                           "right", "on", "off", "stop", "go")

# The official MNIST idx archives: name -> (bytes, sha256).  The sha256 of the two test files
# and the train labels are the ones in the data directory's PROVENANCE.md; the train-images value is
# the widely published one (torchvision, tensorflow-datasets and others carry the same sum).
MNIST_FILES = {
    "train-images-idx3-ubyte.gz": (9912422,
                                   "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    "train-labels-idx1-ubyte.gz": (28881,
                                   "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    "t10k-images-idx3-ubyte.gz": (1648877,
                                  "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    "t10k-labels-idx1-ubyte.gz": (4542,
                                  "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
}
# Public mirrors of the official files, tried in order.
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
_MNIST_IDX = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class DataNotFoundError(FileNotFoundError):
    """A data set's files were found in none of the searched directories."""


class DataFileError(validate.InputError):
    """A data file exists but cannot be read, or holds arrays of the wrong shape, type or range."""


# ---------------------------------------------------------------------------------------------
# lookup


def default_cache_dir() -> Path:
    """``$NEURRAM_CACHE_DIR`` or ``~/.cache/neurram``."""
    env = os.environ.get("NEURRAM_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "neurram"


def search_dirs(data_dir=None) -> list[Path]:
    """The directories searched, in order (see the module docstring)."""
    dirs: list[Path] = []
    if data_dir is not None:
        dirs.append(Path(data_dir).expanduser())
    env = os.environ.get("NEURRAM_DATA_DIR")
    if env:
        dirs.append(Path(env).expanduser())
    dirs.append(REPO_ROOT.parent / "shared" / "datasets")
    dirs.append(default_cache_dir())
    out: list[Path] = []
    for d in dirs:
        if d not in out:
            out.append(d)
    return out


def _where(dirs) -> str:
    return "; ".join(f"{d}{'' if d.is_dir() else ' (no such directory)'}" for d in dirs)


def _dirs(data_dir) -> list[Path]:
    """The directories a loader searches: ``data_dir`` alone when given (it must exist), else
    :func:`search_dirs`."""
    if data_dir is None:
        return search_dirs()
    d = Path(data_dir).expanduser()
    if not d.is_dir():
        raise DataNotFoundError(f"--data-dir {d}: no such directory; pass the directory that holds the "
                                "data files, or leave --data-dir out to search the default places")
    return [d]


def _default_search() -> str:
    return f"without --data-dir neurram searches {_where(search_dirs())}"


def _load_npz(path: Path, keys, what: str) -> dict:
    """The arrays ``keys`` of an npz file; a corrupt file or a missing key is a DataFileError."""
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in keys if k not in z.files]
            if missing:
                raise DataFileError(f"{path}: {what} file without {', '.join(missing)} "
                                    f"(it has {', '.join(z.files) or 'nothing'}; needs {', '.join(keys)})")
            return {k: z[k] for k in keys}
    except DataFileError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
        raise DataFileError(f"{path}: not a readable {what} file ({type(e).__name__}: {e})") from None


def find_file(names, data_dir=None, what: str = "data") -> Path:
    """First existing ``dir/name`` over :func:`search_dirs` x ``names``; else a clear error."""
    if isinstance(names, (str, os.PathLike)):
        names = [names]
    dirs = _dirs(data_dir)
    for d in dirs:
        for n in names:
            p = d / n
            if p.is_file():
                return p
    raise DataNotFoundError(
        f"{what}: none of {', '.join(map(str, names))} found in {_where(dirs)}"
        + (f" ({_default_search()})" if data_dir is not None else "; pass --data-dir DIR or set NEURRAM_DATA_DIR"))


# ---------------------------------------------------------------------------------------------
# MNIST


def read_idx(path) -> np.ndarray:
    """Parse an idx file (optionally .gz): magic 0x0000{dtype}{ndim}, big-endian dims, data."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise DataFileError(f"{path}: not a readable idx file ({type(e).__name__}: {e})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataFileError(f"{path}: not an idx file (no idx magic number)")
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if data[2] not in dtypes:
        raise DataFileError(f"{path}: unknown idx data type 0x{data[2]:02x}")
    ndim = data[3]
    dims = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dt = np.dtype(dtypes[data[2]])
    count = int(np.prod(dims)) if dims else 1
    offset = 4 + 4 * ndim
    if len(data) - offset != count * dt.itemsize:
        raise DataFileError(f"{path}: expected {count * dt.itemsize} data bytes, "
                            f"found {len(data) - offset} (a truncated or corrupt idx file)")
    arr = np.frombuffer(data, dtype=dt, count=count, offset=offset).reshape(dims)
    return arr.astype(dt.newbyteorder("=")) if dt.byteorder == ">" else arr.copy()


def _find_mnist_idx(d: Path, split: str):
    img, lab = _MNIST_IDX[split]
    found = []
    for base in (img, lab):
        for cand in (base + ".gz", base, base.replace("-idx", ".idx")):
            if (d / cand).is_file():
                found.append(d / cand)
                break
        else:
            return None
    return found


def load_mnist(data_dir=None, split: str = "test", download: bool = False):
    """MNIST ``split`` ("train" or "test") as ``(x uint8 (N,28,28), y int64 (N,))``.

    Looks for ``mnist.npz`` or the official idx(.gz) files in each of :func:`search_dirs`
    (per directory, ``mnist.npz`` first).  With ``download=True`` and nothing found, fetches
    the idx files into the cache directory (:func:`download_mnist`).
    """
    split = validate.choice(split, tuple(_MNIST_IDX), "MNIST split")
    dirs = _dirs(data_dir)
    for d in dirs:
        npz = d / "mnist.npz"
        if npz.is_file():
            z = _load_npz(npz, (f"x_{split}", f"y_{split}"), "MNIST")
            return _check_mnist(z[f"x_{split}"], z[f"y_{split}"], npz)
        idx = _find_mnist_idx(d, split)
        if idx is not None:
            return _check_mnist(read_idx(idx[0]), read_idx(idx[1]), idx[0])
    if download:
        download_mnist()
        return load_mnist(default_cache_dir(), split, download=False)
    raise DataNotFoundError(
        f"MNIST ({split}): found neither mnist.npz nor {_MNIST_IDX[split][0]}[.gz] + "
        f"{_MNIST_IDX[split][1]}[.gz] in {_where(dirs)}; "
        + (f"{_default_search()}; " if data_dir is not None else "pass --data-dir DIR, set NEURRAM_DATA_DIR, or ")
        + "download the official files with neurram run mnist --download (load_mnist(download=True))")


def _check_mnist(x, y, src):
    """MNIST arrays as uint8 (N, 28, 28) images 0..255 and int64 labels 0..9 (DataFileError otherwise)."""
    try:
        x = validate.images(x, f"{src}: MNIST images", (28, 28))
        y = validate.labels(y, f"{src}: MNIST labels", n=len(x), classes=10)
    except validate.InputError as e:
        raise DataFileError(str(e)) from None
    return x, y


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_mnist(cache_dir=None, mirrors=MNIST_MIRRORS, timeout: float = 60.0) -> Path:
    """Fetch the four official MNIST idx archives into ``cache_dir`` (default: the cache dir).

    Every file is checked against its official size and sha256 (:data:`MNIST_FILES`); a file
    already present with the right sum is kept.  Returns the directory.  Never called by tests.
    """
    target = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    for name, (size, sha) in MNIST_FILES.items():
        dest = target / name
        if dest.is_file() and _sha256(dest) == sha:
            continue
        errors = []
        for mirror in mirrors:
            tmp = dest.with_suffix(dest.suffix + ".part")
            try:
                with urllib.request.urlopen(mirror + name, timeout=timeout) as r, \
                        open(tmp, "wb") as f:
                    shutil.copyfileobj(r, f)
                got_size, got_sha = tmp.stat().st_size, _sha256(tmp)
                if got_size != size or got_sha != sha:
                    raise ValueError(f"size {got_size} sha256 {got_sha}, expected {size} {sha}")
                os.replace(tmp, dest)
                break
            except Exception as e:  # noqa: BLE001 - try the next mirror, report all
                errors.append(f"{mirror}{name}: {e}")
                if tmp.exists():
                    tmp.unlink()
        else:
            raise RuntimeError("could not download " + name + ":\n  " + "\n  ".join(errors))
    return target


def load_mnist_demo_subset(path=None):
    """The embedded 500-image demo subset: ``(x uint8 (500,28,28), y int64, index int64)``.

    ``index`` holds each image's position in the official MNIST test set.
    """
    p = Path(path) if path is not None else DEMO_SUBSET_PATH
    if not p.is_file():
        raise DataNotFoundError(f"MNIST demo subset not found at {p}")
    z = _load_npz(p, ("x", "y", "index"), "MNIST demo subset")
    x, y = _check_mnist(z["x"], z["y"], p)
    return x, y, validate.labels(z["index"], f"{p}: image index", n=len(x))


# ---------------------------------------------------------------------------------------------
# CIFAR-10 and Speech Commands


def _load_cifar10(name: str, split: str, data_dir, what: str):
    p = find_file(name, data_dir, what)
    z = _load_npz(p, (f"x_{split}", f"y_{split}"), "CIFAR-10")
    try:
        x = validate.images(z[f"x_{split}"], f"{p}: CIFAR-10 images", (32, 32, 3))
        return x, validate.labels(z[f"y_{split}"], f"{p}: CIFAR-10 labels", n=len(x), classes=10)
    except validate.InputError as e:
        raise DataFileError(str(e)) from None


def load_cifar10_test(data_dir=None):
    """CIFAR-10 test set from ``cifar10_test_jpegq75.npz``: ``(x uint8 (N,32,32,3) HWC RGB, y)``.

    Decoded from JPEG quality 75 (lossy; see PROVENANCE.md), sorted by class.
    """
    return _load_cifar10("cifar10_test_jpegq75.npz", "test", data_dir, "CIFAR-10 test set")


def load_cifar10_train_subset(data_dir=None):
    """The first 4,000 CIFAR-10 training images, pixel-exact, from
    ``cifar10_train_lossless_first4000.npz``: ``(x uint8 (N,32,32,3) HWC RGB, y)`` (mixed classes;
    calibration and fine-tuning images, never scored)."""
    return _load_cifar10("cifar10_train_lossless_first4000.npz", "train", data_dir, "CIFAR-10 training subset")


def load_speech_commands_test(data_dir=None):
    """Speech Commands v0.02 12-class test set: ``(x int16 (N,16000), y int64)`` at 16 kHz.

    Joins ``speech_commands_v0.02_test_part1of2.npz`` and ``..._part2of2.npz``.  Part 1 holds
    the even and part 2 the odd positions of the original order (class, then file name), so
    they are interleaved back into that order.
    """
    xs, ys = [], []
    for part in ("part1of2", "part2of2"):
        p = find_file(f"speech_commands_v0.02_test_{part}.npz", data_dir,
                      "Speech Commands v0.02 test set")
        z = _load_npz(p, ("x", "y"), "Speech Commands")
        try:
            xs.append(validate.array(z["x"], f"{p}: audio", shape=(None, 16000), kinds="iu",
                                     lo=-32768, hi=32767).astype(np.int16))
            ys.append(validate.labels(z["y"], f"{p}: labels", n=len(xs[-1]), classes=len(SPEECH_COMMANDS_CLASSES)))
        except validate.InputError as e:
            raise DataFileError(str(e)) from None
    n = len(xs[0]) + len(xs[1])
    if len(xs[0]) - len(xs[1]) not in (0, 1):
        return np.concatenate(xs), np.concatenate(ys)
    x = np.empty((n,) + xs[0].shape[1:], dtype=np.int16)
    y = np.empty(n, dtype=np.int64)
    x[0::2], x[1::2] = xs
    y[0::2], y[1::2] = ys
    return x, y
