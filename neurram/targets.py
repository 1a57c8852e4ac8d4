"""Open a chip from a target string: the same driver for every backend.

==========================================  ===========================================================
target                                       chip
==========================================  ===========================================================
``model`` (default)                          the fast chip model in this process, calibrated noise
``model:noise=off,seed=3,cores=2x2,rows=64``  options: noise (on/off), seed, cores, rows, cols, small,
                                             age (seconds between programming and inference: relaxation),
                                             noise_scale (multiplies every random analog non-ideality:
                                             0 = noise off, 1 = the calibrated default; see
                                             :func:`scale_noise`)
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

from neurram.config import ChipConfig
from neurram.firmware.driver import Chip
from neurram.firmware.protocol import Link
from neurram.firmware.transport import SerialTransport, SocketTransport
from neurram.firmware.writeverify import WriteVerifyConfig
from neurram.models.core import AnalogParams
from neurram.sim.fastlink import open_fast_chip
from neurram.sim.fastmodel import ChipProtocolEngine
from neurram.spec.link import LinkCapabilities

__all__ = ["open_chip", "parse_target", "model_engine", "scale_noise", "MODEL_OPTIONS", "RTL_OPTIONS"]

#: The options a ``model:`` and an ``rtl:`` target accept.
MODEL_OPTIONS = ("noise", "seed", "cores", "rows", "cols", "batch_depth", "small", "age", "noise_scale")
RTL_OPTIONS = ("noise", "seed", "cores", "rows", "cols", "batch_depth", "small", "program")

#: The random non-idealities :func:`scale_noise` multiplies, by parameter class: device-to-device
#: variation and initial state, cycle-to-cycle programming noise, relaxation, read noise and bad
#: cells (RRAMParams); neuron gain, offset and packet mismatch (NeuronParams); driver mismatch
#: (AnalogParams). NeuronParams.packet_neg_gain is scaled by its deviation from 1.
DEVICE_NOISE_FIELDS = ("g_init_sigma_ln", "set_gcc_sigma_ln", "set_v0_sigma_V", "reset_v0_sigma_V",
                       "c2c_sigma_ln", "relaxation_scale", "read_rel", "read_floor_uS",
                       "p_stuck_off", "p_stuck_on")
NEURON_NOISE_FIELDS = ("gain_mismatch_sigma", "comparator_offset_sigma_uV", "packet_mismatch_sigma")


def parse_target(target: str):
    kind, _, rest = (target or "model").partition(":")
    opts = {}
    if kind in ("model", "rtl") and rest:
        valid = MODEL_OPTIONS if kind == "model" else RTL_OPTIONS
        for item in rest.split(","):
            key, _, value = item.partition("=")
            key = key.strip()
            if key not in valid:
                raise ValueError(f"unknown option {key!r} in chip target {target!r}: "
                                 f"{kind} options are {', '.join(valid)}")
            opts[key] = value.strip() if value else "1"
    return kind, rest, opts


def _nonnegative_option(opts, key: str, what: str, default: float = 0.0) -> float:
    """``opts[key]`` as a finite float >= 0 (``default`` when absent); one-line ValueError otherwise."""
    text = opts.get(key)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"model:{key}={text!r}: {what} must be a finite number >= 0 "
                         f"(model options are {', '.join(MODEL_OPTIONS)})")
    return value


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


def _config(opts):
    if opts.get("small"):
        return ChipConfig.small()
    kw = {}
    if "cores" in opts:
        kw["core_grid"] = tuple(int(v) for v in opts["cores"].lower().split("x"))
    for k in ("rows", "cols", "batch_depth"):
        if k in opts:
            kw[k] = int(opts[k])
    return ChipConfig(**kw)


def open_chip(target: str = "model", *, config=None, params=None, seed=None, timeout: float = 30.0) -> Chip:
    """A :class:`Chip` for ``target`` (see the module table)."""
    kind, rest, opts = parse_target(target)
    noise = opts.get("noise", "on") not in ("off", "0", "no")
    s = seed if seed is not None else int(opts.get("seed", 0))
    if kind == "model":
        age = _nonnegative_option(opts, "age", "age (seconds after programming)")
        cfg = config or _config(opts)
        if params is None:
            params = AnalogParams() if noise else AnalogParams.ideal()
        if "noise_scale" in opts:
            if not noise:
                raise ValueError(f"chip target {target!r}: noise=off and noise_scale contradict, use one; "
                                 f"model options are {', '.join(MODEL_OPTIONS)}")
            params = scale_noise(params, _nonnegative_option(opts, "noise_scale", "noise_scale"))
        return Chip(open_fast_chip(cfg, params=params, seed=s, age_s=age))
    if kind == "rtl":
        from neurram.sim.cosim.server import TestAccess, launch_rtl_server   # imports cocotb: only when asked
        program = opts.pop("program", "protocol")
        if program not in ("protocol", "test-access"):
            raise ValueError(f"rtl:program={program!r}: use program=protocol or program=test-access")
        cfg = config or (_config(opts) if opts else _config({"small": "1"}))
        server = launch_rtl_server(cfg, seed=s, noise=noise)
        transport = SocketTransport("127.0.0.1", server.port, connect_timeout=300, process=server.process)
        caps = LinkCapabilities()
        if program == "test-access":
            caps = LinkCapabilities(test_access_program=_TwinProgrammer(
                cfg, TestAccess(server.test_access_port), seed=s, noise=noise))
        return Chip(Link(transport, timeout=timeout, capabilities=caps))
    if kind == "tcp":
        host, _, port = rest.rpartition(":")
        return Chip(_protocol_link(SocketTransport(host or "127.0.0.1", int(port)), timeout))
    if kind == "serial":
        port, _, baud = rest.partition("@")
        return Chip(_protocol_link(SerialTransport(port, int(baud or 115200)), timeout))
    raise ValueError(f"unknown chip target {target!r}: use model, rtl, tcp:HOST:PORT or serial:DEVICE[@BAUD]")


def model_engine(target: str = "model", *, config=None, params=None, seed=None):
    """The fast model of a ``model[:options]`` target behind its byte-protocol engine (the chip end
    that ``neurram serve`` puts on a TCP port or a pseudo-terminal)."""
    if parse_target(target)[0] != "model":
        raise ValueError(f"only a model target can be served, not {target!r}")
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
