"""Open a chip from a target string: the same driver for every backend.

==========================================  ===========================================================
target                                       chip
==========================================  ===========================================================
``model`` (default)                          the fast chip model in this process, calibrated noise
``model:noise=off,seed=3,cores=2x2,rows=64``  options: noise (on/off), seed, cores, rows, cols, small,
                                             age (seconds between programming and inference: relaxation),
                                             noise_scale (multiplies every random analog non-ideality:
                                             0 = noise off, 1 = the calibrated default; see
                                             :func:`scale_noise`), state=FILE (keep the programmed
                                             state in FILE across restarts: sim/state.py)
``rtl`` / ``rtl:cores=1x1,rows=16``           the generated Verilog under Verilator + cocotb, in its own
                                             process, reached over a TCP socket (byte protocol);
                                             ``program=test-access`` loads write-verified conductances
                                             through the simulator instead of programming cell by cell
``tcp:HOST:PORT``                            a chip server already listening
``serial:/dev/ttyUSB0[@115200]``             an FPGA board over a UART, or ``neurram serve --pty``
==========================================  ===========================================================

This module is the top layer: it joins the host software (``neurram.firmware``) to the chips of
``neurram.sim`` and to the byte transports; the firmware itself reaches a chip only through the
link it is given.
"""

import dataclasses
import math

from neurram.config import MAX_LINES, ChipConfig
from neurram.firmware.driver import Chip
from neurram.firmware.protocol import Link
from neurram.firmware import validate
from neurram.firmware.transport import SerialTransport, SocketTransport
from neurram.firmware.validate import InputError
from neurram.firmware.writeverify import WriteVerifyConfig
from neurram.models.core import AnalogParams
from neurram.sim.fastlink import open_fast_chip
from neurram.sim.fastmodel import ChipProtocolEngine
from neurram.spec.link import LinkCapabilities

__all__ = ["open_chip", "parse_target", "model_engine", "scale_noise", "MODEL_OPTIONS", "RTL_OPTIONS"]

#: The options a ``model:`` and an ``rtl:`` target accept.
MODEL_OPTIONS = ("noise", "seed", "cores", "rows", "cols", "batch_depth", "small", "age", "noise_scale", "state")
RTL_OPTIONS = ("noise", "seed", "cores", "rows", "cols", "batch_depth", "small", "program")

#: The random non-idealities :func:`scale_noise` multiplies, by parameter class: device-to-device
#: variation and initial state, cycle-to-cycle programming noise, relaxation, read noise and bad
#: cells (RRAMParams); neuron gain, offset and packet mismatch (NeuronParams); driver mismatch
#: (AnalogParams). NeuronParams.packet_neg_gain is scaled by its deviation from 1.
DEVICE_NOISE_FIELDS = ("g_init_sigma_ln", "set_gcc_sigma_ln", "set_v0_sigma_V", "reset_v0_sigma_V",
                       "c2c_sigma_ln", "relaxation_scale", "read_rel", "read_floor_uS",
                       "p_stuck_off", "p_stuck_on", "g_defect_uS", "rtn_rel_median")
NEURON_NOISE_FIELDS = ("gain_mismatch_sigma", "comparator_offset_sigma_uV", "packet_mismatch_sigma")


#: What each option of a ``model:``/``rtl:`` target takes (shown in its error messages).
OPTION_HELP = {"noise": "on or off", "seed": "an integer >= 0", "cores": "ROWSxCOLS, e.g. 2x2",
               "rows": "an even integer 2..4094", "cols": "an even integer 2..4094", "batch_depth": "1..4096",
               "small": "on or off (one 16 x 16 core)", "age": "seconds >= 0", "noise_scale": "a number >= 0",
               "program": "protocol or test-access",
               "state": "a file path in an existing directory (the chip's non-volatile state)"}
TARGET_KINDS = ("model", "rtl", "tcp:HOST:PORT", "serial:DEVICE[@BAUD]")


def _options_text(kind: str) -> str:
    valid = MODEL_OPTIONS if kind == "model" else RTL_OPTIONS
    return f"{kind} options are {', '.join(valid)}"


def parse_target(target: str):
    """``(kind, rest, options)`` of a target string; every option checked (InputError, one line,
    listing the valid options and values). Option values come back as strings."""
    if target is None:
        target = "model"
    if not isinstance(target, str):
        raise InputError(f"chip target {target!r}: give a string, one of {', '.join(TARGET_KINDS)}")
    kind, _, rest = target.strip().partition(":")
    if kind not in ("model", "rtl", "tcp", "serial"):
        raise InputError(f"unknown chip target {target!r}: use {', '.join(TARGET_KINDS)}")
    opts = {}
    if kind in ("model", "rtl") and rest.strip():
        valid = MODEL_OPTIONS if kind == "model" else RTL_OPTIONS
        for item in rest.split(","):
            key, eq, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if key not in valid:
                raise InputError(f"unknown option {key!r} in chip target {target!r}: {_options_text(kind)}")
            if key in opts:
                raise InputError(f"option {key!r} given twice in chip target {target!r}: give it once")
            if eq and not value:
                raise InputError(f"chip target {target!r}: {key}= has no value, give {OPTION_HELP[key]}; "
                                 f"{_options_text(kind)}")
            opts[key] = value if eq else "1"
        _check_options(target, kind, opts)
    return kind, rest, opts


def _check_state_path(value: str, what: str) -> str:
    """``state=FILE``: a file (not a directory) in an existing, writable directory."""
    import os

    directory = os.path.dirname(os.path.abspath(value)) or "."
    if value in ("1",) or os.path.isdir(value):
        raise InputError(f"{what}: give a file path, not a directory")
    if not os.path.isdir(directory):
        raise InputError(f"{what}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise InputError(f"{what}: directory {directory} is not writable")
    return value


def _check_options(target: str, kind: str, opts: dict) -> None:
    """Each option's value is what the option takes (InputError naming it otherwise)."""
    checks = {"noise": lambda v, w: validate.flag(v, w), "small": lambda v, w: validate.flag(v, w),
              "seed": lambda v, w: validate.integer(v, w, 0, 2**32 - 1),
              "cores": lambda v, w: validate.grid(v, w),
              "rows": lambda v, w: validate.integer(v, w, 2, MAX_LINES),
              "cols": lambda v, w: validate.integer(v, w, 2, MAX_LINES),
              "batch_depth": lambda v, w: validate.integer(v, w, 1, 4096),
              "age": lambda v, w: validate.number(v, w, 0), "noise_scale": lambda v, w: validate.number(v, w, 0),
              "program": lambda v, w: validate.choice(v, ("protocol", "test-access"), w),
              "state": _check_state_path}
    for key, value in opts.items():
        try:
            checks[key](value, f"{key}={value!r}")
        except InputError as e:
            raise InputError(f"chip target {target!r}: {e} (give {OPTION_HELP[key]}); {_options_text(kind)}") from None
    if "small" in opts and validate.flag(opts["small"], "small") and {"cores", "rows", "cols", "batch_depth"} & set(opts):
        raise InputError(f"chip target {target!r}: small (one 16 x 16 core) contradicts cores/rows/cols/batch_depth, "
                         f"use one; {_options_text(kind)}")
    if "noise_scale" in opts and not validate.flag(opts.get("noise", "on"), "noise"):
        raise InputError(f"chip target {target!r}: noise=off and noise_scale contradict, use one; "
                         f"{_options_text(kind)}")


def _nonnegative_option(opts, key: str, what: str, default: float = 0.0) -> float:
    """``opts[key]`` as a finite float >= 0 (``default`` when absent); one-line InputError otherwise."""
    text = opts.get(key)
    if text is None:
        return default
    try:
        return validate.number(text, f"model:{key}={text!r}: {what}", 0)
    except InputError as e:
        raise InputError(f"{e} (model options are {', '.join(MODEL_OPTIONS)})") from None


def scale_noise(params: AnalogParams, scale: float) -> AnalogParams:
    """``params`` with every random analog non-ideality multiplied by ``scale``.

    Scaled: programming (device-to-device spread of the switching voltages and compliance, initial
    state, cycle-to-cycle noise), relaxation, read noise and the bad-cell fractions of the device
    (:data:`DEVICE_NOISE_FIELDS`); neuron gain, comparator-offset and packet mismatch
    (:data:`NEURON_NOISE_FIELDS`) and the negative packet's deviation from 1; driver mismatch. Scale 1
    returns ``params`` itself; scale 0 gives the noise-free device (``ideal=True``), no read
    noise, ``NeuronParams.ideal()`` and no driver mismatch. The wires' IR drop is deterministic, not
    noise, and stays as it is (``noise=off`` also removes it).
    """
    s = float(scale)
    if not (math.isfinite(s) and s >= 0):
        raise ValueError(f"noise scale must be a finite number >= 0, not {scale!r}")
    if s == 1:
        return params
    dev = params.device_params()
    dev = dataclasses.replace(dev, ideal=dev.ideal or s == 0,
                              **{f: s * getattr(dev, f) for f in DEVICE_NOISE_FIELDS})
    neu = params.neuron
    neu = dataclasses.replace(neu, packet_neg_gain=1.0 - s * (1.0 - neu.packet_neg_gain),
                              **{f: s * getattr(neu, f) for f in NEURON_NOISE_FIELDS})
    xbar = params.crossbar if s > 0 else dataclasses.replace(params.crossbar, read_noise=False)
    return dataclasses.replace(params, device=dev, neuron=neu, crossbar=xbar,
                               driver_mismatch_sigma=s * params.driver_mismatch_sigma)


def _config(target: str, opts) -> ChipConfig:
    if opts.get("small") and validate.flag(opts["small"], "small"):
        return ChipConfig.small()
    kw = {}
    if "cores" in opts:
        kw["core_grid"] = validate.grid(opts["cores"], "cores")
    for k in ("rows", "cols", "batch_depth"):
        if k in opts:
            kw[k] = int(opts[k])
    try:
        return ChipConfig(**kw)
    except ValueError as e:
        raise InputError(f"chip target {target!r}: {e}") from None


def chip_seed(target: str, seed=None) -> int:
    """The seed a ``model:``/``rtl:`` target opens with: ``seed``, else the target's ``seed=``
    option, else 0 (other targets: 0, their chip has its own)."""
    kind, _, opts = parse_target(target)
    return _seed(target, opts, seed) if kind in ("model", "rtl") else 0


def _seed(target: str, opts, seed) -> int:
    """The chip's seed: the ``seed`` argument or the target's ``seed=`` option (they must agree)."""
    if seed is not None:
        seed = validate.integer(seed, "seed", 0, 2**32 - 1)
        if "seed" in opts and int(opts["seed"]) != seed:
            raise InputError(f"chip target {target!r} says seed={opts['seed']} but seed {seed} was also given "
                             f"(--seed): give one seed, e.g. --seed {opts['seed']} or drop --seed")
        return seed
    return int(opts.get("seed", 0))


def _no_config_twice(target: str, opts, config) -> None:
    if config is not None and {"cores", "rows", "cols", "batch_depth", "small"} & set(opts):
        raise InputError(f"chip target {target!r} sets the geometry and a config was given too: use one")


def open_chip(target: str = "model", *, config=None, params=None, seed=None, timeout: float = 30.0) -> Chip:
    """A :class:`Chip` for ``target`` (see the module table). A malformed target, an unknown option or
    an option value out of range raises :class:`~neurram.firmware.validate.InputError` (a
    ``ValueError``) with one line naming the valid choices; a server or device that cannot be
    reached raises ``ConnectionError``."""
    kind, rest, opts = parse_target(target)
    noise = validate.flag(opts.get("noise", "on"), "noise")
    if kind in ("model", "rtl"):
        _no_config_twice(target, opts, config)
        s = _seed(target, opts, seed)
    if kind == "model":
        age = _nonnegative_option(opts, "age", "age (seconds after programming)")
        cfg = config or _config(target, opts)
        if params is None:
            params = AnalogParams() if noise else AnalogParams.ideal()
        if "noise_scale" in opts:
            params = scale_noise(params, _nonnegative_option(opts, "noise_scale", "noise_scale"))
        return Chip(open_fast_chip(cfg, params=params, seed=s, age_s=age, state_path=opts.get("state")))
    if kind == "rtl":
        from neurram.sim.cosim.server import TestAccess, launch_rtl_server   # imports cocotb: only when asked
        program = opts.pop("program", "protocol")
        cfg = config or (_config(target, opts) if opts.keys() - {"noise", "seed"} else ChipConfig.small())
        server = launch_rtl_server(cfg, seed=s, noise=noise)
        transport = SocketTransport("127.0.0.1", server.port, connect_timeout=300, process=server.process)
        caps = LinkCapabilities()
        if program == "test-access":
            caps = LinkCapabilities(test_access_program=_TwinProgrammer(
                cfg, TestAccess(server.test_access_port), seed=s, noise=noise))
        return Chip(Link(transport, timeout=timeout, capabilities=caps))
    if config is not None or params is not None:
        raise InputError(f"chip target {target!r}: a {kind} chip has its own configuration and analog "
                         "parameters; give them to the server (neurram serve --chip model:...)")
    if kind == "tcp":
        host, colon, port = rest.rpartition(":")
        if not colon and not port:
            raise InputError(f"chip target {target!r}: give the server as tcp:HOST:PORT or tcp:PORT")
        port = validate.integer(port, f"chip target {target!r}: port", 1, 65535)
        return Chip(_protocol_link(SocketTransport(host or "127.0.0.1", port), timeout))
    device, _, baud = rest.partition("@")
    if not device:
        raise InputError(f"chip target {target!r}: give the serial device, serial:DEVICE[@BAUD] "
                         "(e.g. serial:/dev/ttyUSB0@115200)")
    baud = validate.integer(baud or 115200, f"chip target {target!r}: baud rate", 1, 100_000_000)
    return Chip(_protocol_link(SerialTransport(device, baud), timeout))


def model_engine(target: str = "model", *, config=None, params=None, seed=None):
    """The fast model of a ``model[:options]`` target behind its byte-protocol engine (the chip end
    that ``neurram serve`` puts on a TCP port or a pseudo-terminal)."""
    if parse_target(target)[0] != "model":
        raise InputError(f"only a model target can be served, not {target!r}: use model[:options]")
    link = open_chip(target, config=config, params=params, seed=seed).link
    return ChipProtocolEngine(link.chip, link.max_words)


def _protocol_link(transport, timeout):
    return Link(transport, timeout=timeout)


class _TwinProgrammer:
    """Test access for the RTL chip: write-verify runs through the driver on a fast model of the
    same chip (same device model, same seed, so the same programming error the RTL's own arrays
    would get), and the simulator loads the resulting conductances into its arrays."""

    def __init__(self, config, loader, *, seed: int, noise: bool):
        self.loader = loader
        params = AnalogParams() if noise else AnalogParams.ideal()
        self.twin = Chip(open_fast_chip(config, params=params, seed=seed))

    def __call__(self, core, rows, cols, targets_uS, wv_config=None):
        self.twin.enable_cores([core])
        report = self.twin.program(core, targets_uS, rows=rows, cols=cols, config=wv_config or WriteVerifyConfig())
        self.loader.set_conductance(core, self.twin.link.chip.cores[core].model.device.g_uS)
        return report
