"""The one validation layer at neurram's public entries (docs/architecture.md, "Validation").

Every public entry checks what it is given with these functions before anything reaches a chip:
the command line and chip target strings (``neurram.targets``), data and network files
(:mod:`.datasets`, :func:`network`), driver calls (:mod:`.driver`) and the mapper's inputs. A bad
input raises :class:`InputError` (a ``ValueError``) whose one-line message names the input, says
what is wrong, lists the valid choices or range and so names the fix. Driver checks run before
any frame is sent, so the same bad call gives the same error over every link.

numpy and the standard library only, like the rest of the host side.
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np

__all__ = ["InputError", "choice", "flag", "integer", "number", "grid", "array", "pixels", "images", "labels",
           "conductances", "network"]

class InputError(ValueError):
    """An input is invalid; the one-line message names it, the valid choices and the fix."""


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def choice(value, choices: Iterable, what: str) -> str:
    """``value`` when it is one of ``choices`` (strings compared case-insensitively)."""
    choices = tuple(choices)
    for c in choices:
        if value == c or (isinstance(value, str) and isinstance(c, str) and value.lower() == c.lower()):
            return c
    raise InputError(f"{what}: {_show(value)} is not one of {', '.join(map(str, choices))}")


_TRUE = ("on", "true", "yes", "1")
_FALSE = ("off", "false", "no", "0")


def flag(value, what: str) -> bool:
    """An on/off switch given as text (on/off, true/false, yes/no, 1/0; any case) or a bool."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InputError(f"{what}: {_show(value)} is not a switch: use on or off (also true/false, yes/no, 1/0)")


def integer(value, what: str, lo: int | None = None, hi: int | None = None) -> int:
    """An integer (an int, an integral numpy scalar, or decimal text) within lo..hi."""
    if isinstance(value, (bool, np.bool_)):
        raise InputError(f"{what}: {_show(value)} is not an integer")
    if isinstance(value, (int, np.integer)):
        v = int(value)
    elif isinstance(value, str):
        try:
            v = int(value.strip(), 10)
        except ValueError:
            raise InputError(f"{what}: {_show(value)} is not an integer") from None
    elif isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        v = int(value)
    else:
        raise InputError(f"{what}: {_show(value)} is not an integer")
    _in_range(v, what, lo, hi)
    return v


def number(value, what: str, lo: float | None = None, hi: float | None = None) -> float:
    """A finite real number (or its text) within lo..hi."""
    if isinstance(value, (bool, np.bool_)):
        raise InputError(f"{what}: {_show(value)} is not a number")
    try:
        v = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise InputError(f"{what}: {_show(value)} is not a number") from None
    if not math.isfinite(v):
        raise InputError(f"{what}: {_show(value)} is not a finite number")
    _in_range(v, what, lo, hi)
    return v


def _in_range(v, what, lo, hi) -> None:
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        if hi is None:
            raise InputError(f"{what}: {v} is out of range, must be >= {lo}")
        if lo is None:
            raise InputError(f"{what}: {v} is out of range, must be <= {hi}")
        raise InputError(f"{what}: {v} is out of range {lo}..{hi}")


def grid(value, what: str) -> tuple[int, int]:
    """A core grid written ``RxC`` (e.g. ``8x6``) as (R, C), each 1..8."""
    parts = str(value).strip().lower().split("x")
    if len(parts) != 2:
        raise InputError(f"{what}: {_show(value)} is not a core grid: write ROWSxCOLS, e.g. 8x6 (each 1..8)")
    return tuple(integer(p, what, 1, 8) for p in parts)


def array(a, what: str, *, ndim: int | None = None, shape: tuple | None = None, kinds: str = "biuf",
          lo: float | None = None, hi: float | None = None, integral: bool = False) -> np.ndarray:
    """``a`` as a numpy array of one of the dtype ``kinds`` (b, i, u, f), with ``ndim`` axes or a
    ``shape`` (None entries match any length), finite, within lo..hi, integral if asked."""
    try:
        x = np.asarray(a)
    except (TypeError, ValueError) as e:
        raise InputError(f"{what}: not an array ({e})") from None
    if x.dtype.kind not in kinds:
        names = {"b": "bool", "i": "integer", "u": "unsigned integer", "f": "float"}
        raise InputError(f"{what}: dtype {x.dtype} is not one of {', '.join(names[k] for k in kinds)}")
    if shape is not None:
        ndim = len(shape)
    if ndim is not None and x.ndim != ndim:
        raise InputError(f"{what}: {x.ndim} axes (shape {x.shape}), expected {ndim}"
                         + (f" ({_shape_text(shape)})" if shape is not None else ""))
    if shape is not None and any(s is not None and s != n for s, n in zip(shape, x.shape)):
        raise InputError(f"{what}: shape {x.shape}, expected {_shape_text(shape)}")
    if x.size == 0:
        return x
    if x.dtype.kind == "f":
        bad = ~np.isfinite(x)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise InputError(f"{what}: {int(bad.sum())} NaN or infinite values (the first at index {first})")
        if integral and not np.array_equal(x, np.round(x)):
            raise InputError(f"{what}: values must be integers, found {x[x != np.round(x)].flat[0]!r}")
    if (lo is not None or hi is not None) and x.dtype.kind != "b":
        mn, mx = x.min(), x.max()
        if (lo is not None and mn < lo) or (hi is not None and mx > hi):
            raise InputError(f"{what}: values span {mn}..{mx}, outside the valid range "
                             f"{'-inf' if lo is None else lo}..{'inf' if hi is None else hi}")
    return x


def _shape_text(shape) -> str:
    return "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"


def pixels(x, what: str = "images", *, integral: bool = False) -> np.ndarray:
    """Pixel values 0..255 (uint8, or numbers holding them): finite, in range, and not images
    scaled to [0, 1] (refused with that hint); ``integral`` also refuses fractions. Any shape."""
    a = array(x, what, kinds="biuf")
    if a.dtype.kind == "f" and a.size and np.isfinite(a).all() and a.min() >= 0 and a.max() <= 1.0 \
            and not np.array_equal(a, np.round(a)):
        raise InputError(f"{what}: float pixels within 0..1 look normalised; pass the raw pixels as uint8 0..255")
    return array(a, what, kinds="biuf", lo=0, hi=255, integral=integral)


def images(x, what: str = "images", shape: tuple = (28, 28)) -> np.ndarray:
    """Images as uint8 pixels 0..255 of ``(N,) + shape``; float arrays are accepted only when they
    hold whole numbers 0..255 (images scaled to [0, 1] are refused with that hint)."""
    a = array(x, what, shape=(None,) + tuple(shape), kinds="iuf")
    return pixels(a, what, integral=True).astype(np.uint8)


def labels(y, what: str = "labels", n: int | None = None, classes: int | None = None) -> np.ndarray:
    """Class labels as int64 0..classes-1, ``n`` of them when given."""
    a = array(y, what, ndim=1, kinds="iuf", lo=0, hi=None if classes is None else classes - 1, integral=True)
    if n is not None and a.shape[0] != n:
        raise InputError(f"{what}: {a.shape[0]} labels for {n} examples; give one label per example")
    return a.astype(np.int64)


def conductances(g, what: str = "conductance targets", g_max_uS: float | None = None) -> np.ndarray:
    """Conductance targets (µS) as float64, finite and within 0..g_max_uS (default: the largest
    target the chip is programmed to, :data:`neurram.firmware.mapper.G_MAX_uS`)."""
    if g_max_uS is None:
        from .mapper import G_MAX_uS as g_max_uS          # the one definition (mapper imports this module)
    a = array(g, what, kinds="biuf").astype(np.float64)
    if a.size and (a.min() < 0 or a.max() > g_max_uS):
        raise InputError(f"{what}: values span {a.min():g}..{a.max():g} µS, outside the programmable "
                         f"range 0..{g_max_uS:g} µS")
    return a


#: Keys every layer of a network file must have, by type (firmware/nn.py's format).
_LAYER_KEYS = {"conv": ("name", "weight", "bias", "stride", "padding", "act"),
               "dense": ("name", "weight", "bias", "act"),
               "save": ("name",), "add": ("name", "from", "act"), "avgpool": ("name", "act"),
               "batchnorm": ("gamma", "beta", "mean", "var")}
_LAYER_TYPES = ("conv", "dense", "batchnorm", "maxpool", "flatten", "save", "add", "avgpool")
#: activation kinds of the network format (firmware/nn.py): unsigned and signed codes
ACT_KINDS = ("relu_q", "linear_q")


def activation(act, what: str):
    """A layer's ``act``: None or {"kind": one of ACT_KINDS, "bits": 1..8 (2..8 signed), "clip" > 0}."""
    if act is None:
        return act
    if not isinstance(act, dict) or "kind" not in act:
        raise InputError(f"{what}: act {_show(act)} is not None or a dict with kind, bits and clip")
    kind = choice(act["kind"], ACT_KINDS, f"{what}: act kind")
    for key in ("bits", "clip"):
        if key not in act:
            raise InputError(f"{what}: a {kind} act needs 'bits' and 'clip'")
    integer(act["bits"], f"{what}: act bits", 2 if kind == "linear_q" else 1, 8)
    number(act["clip"], f"{what}: act clip", 1e-12)
    return act


def network(net, what: str = "network"):
    """Check a loaded :class:`~neurram.firmware.nn.Network` (or its layer dicts): every layer has
    its keys, finite weights and biases of matching shapes; raises InputError naming the layer."""
    quant = getattr(net, "input", None)
    if quant is not None:
        if not isinstance(quant, dict) or "bits" not in quant:
            raise InputError(f"{what}: the input quantiser has no 'bits'; it needs bits, scale and step")
        integer(quant["bits"], f"{what}: input bits", 1, 8)
    layers = getattr(net, "layers", net)
    if not isinstance(layers, (list, tuple)) or not layers:
        raise InputError(f"{what}: no layers")
    saved = []                       # tensors kept by save layers and by weight layers' "output"
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict) or "type" not in layer:
            raise InputError(f"{what}: layer {i} has no 'type' (one of {', '.join(_LAYER_TYPES)})")
        choice(layer["type"], _LAYER_TYPES, f"{what}: layer {i} type")
        name = f"{what}: layer {i} ({layer.get('name', layer['type'])})"
        for key in ("from", "input"):
            if layer.get(key) is not None and layer[key] not in saved:
                raise InputError(f"{name}: {key} {layer[key]!r} is no tensor saved before it "
                                 f"(saved so far: {', '.join(saved) or 'none'})")
        if layer["type"] == "save" and "name" in layer:
            saved.append(layer["name"])
        if layer.get("output") is not None:
            saved.append(layer["output"])
        needed = _LAYER_KEYS.get(layer["type"])
        if needed is None:
            continue
        missing = [k for k in needed if k not in layer]
        if missing:
            raise InputError(f"{name} has no {', '.join(repr(k) for k in missing)}; a {layer['type']} layer "
                             f"needs {', '.join(needed)}" + (" (bias may be None)" if "bias" in needed else ""))
        if "act" in needed or layer["type"] == "batchnorm":
            activation(layer.get("act"), name)
        if layer["type"] == "batchnorm":
            prev = layers[i - 1] if i else {}
            n_out = len(prev["weight"]) if prev.get("type") in ("conv", "dense") and "weight" in prev else None
            if n_out is None:
                raise InputError(f"{name}: a batchnorm layer must follow a conv or dense layer")
            for key in needed:
                array(layer[key], f"{name} {key}", shape=(n_out,), kinds="iuf", lo=0 if key == "var" else None)
        if "weight" not in needed:
            continue
        w = array(layer["weight"], f"{name} weight", ndim=4 if layer["type"] == "conv" else 2, kinds="iuf")
        if layer.get("bias") is not None:
            array(layer["bias"], f"{name} bias", shape=(w.shape[0],), kinds="iuf")
    return net
