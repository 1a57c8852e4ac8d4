"""Open a chip from a target string: the same driver for every backend.

==========================================  ===========================================================
target                                       chip
==========================================  ===========================================================
``model`` (default)                          the fast chip model in this process, calibrated noise
``model:noise=off,seed=3,cores=2x2,rows=64``  options: noise (on/off), seed, cores, rows, cols, small,
                                             age (seconds between programming and inference: relaxation)
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

from neurram.config import ChipConfig
from neurram.firmware.driver import Chip
from neurram.firmware.protocol import Link
from neurram.firmware.transport import SerialTransport, SocketTransport
from neurram.firmware.writeverify import WriteVerifyConfig
from neurram.models.core import AnalogParams
from neurram.sim.fastlink import open_fast_chip
from neurram.sim.fastmodel import ChipProtocolEngine
from neurram.spec.link import LinkCapabilities

__all__ = ["open_chip", "parse_target", "model_engine"]


def parse_target(target: str):
    kind, _, rest = (target or "model").partition(":")
    opts = {}
    if kind in ("model", "rtl") and rest:
        for item in rest.split(","):
            key, _, value = item.partition("=")
            opts[key.strip()] = value.strip() if value else "1"
    return kind, rest, opts


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
        cfg = config or _config(opts)
        if params is None:
            params = AnalogParams() if noise else AnalogParams.ideal()
        return Chip(open_fast_chip(cfg, params=params, seed=s, age_s=float(opts.get("age", 0))))
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
