"""Open a chip from a target string: the same driver for every backend.

==========================================  ===========================================================
target                                       chip
==========================================  ===========================================================
``model`` (default)                          the fast chip model in this process, calibrated noise
``model:noise=off,seed=3,cores=2x2,rows=64``  options: noise (on/off), seed, cores, rows, cols, small,
                                             age (seconds between programming and inference: relaxation)
``rtl`` / ``rtl:cores=1x1,rows=16``           the generated Verilog under Verilator + cocotb, in its own
                                             process, reached over a TCP socket (byte protocol)
``tcp:HOST:PORT``                            a chip server already listening
``serial:/dev/ttyUSB0[@115200]``             an FPGA board over a UART, or ``neurram serve --pty``
==========================================  ===========================================================
"""

from .driver import Chip

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
    from neurram.config import ChipConfig
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
    if kind == "model":
        from neurram.models.core import AnalogParams
        from neurram.sim.fastlink import open_fast_chip
        cfg = config or _config(opts)
        if params is None:
            params = AnalogParams.ideal() if opts.get("noise", "on") in ("off", "0", "no") else AnalogParams()
        s = seed if seed is not None else int(opts.get("seed", 0))
        return Chip(open_fast_chip(cfg, params=params, seed=s, age_s=float(opts.get("age", 0))))
    if kind == "rtl":
        from neurram.sim.cosim.server import launch_rtl_server
        cfg = config or (_config(opts) if opts else _config({"small": "1"}))
        transport = launch_rtl_server(cfg, seed=seed or int(opts.get("seed", 0)),
                                      noise=opts.get("noise", "on") not in ("off", "0", "no"))
        return Chip(_protocol_link(transport, timeout))
    if kind == "tcp":
        from .transport import SocketTransport
        host, _, port = rest.rpartition(":")
        return Chip(_protocol_link(SocketTransport(host or "127.0.0.1", int(port)), timeout))
    if kind == "serial":
        from .transport import SerialTransport
        port, _, baud = rest.partition("@")
        return Chip(_protocol_link(SerialTransport(port, int(baud or 115200)), timeout))
    raise ValueError(f"unknown chip target {target!r}: use model, rtl, tcp:HOST:PORT or serial:DEVICE[@BAUD]")


def model_engine(target: str = "model", *, config=None, params=None, seed=None):
    """The fast model of a ``model[:options]`` target behind its byte-protocol engine (the chip end
    that ``neurram serve`` puts on a TCP port or a pseudo-terminal)."""
    if parse_target(target)[0] != "model":
        raise ValueError(f"only a model target can be served, not {target!r}")
    from neurram.sim.fastlink import ChipProtocolEngine
    link = open_chip(target, config=config, params=params, seed=seed).link
    return ChipProtocolEngine(link.chip, link.max_words)


def _protocol_link(transport, timeout):
    from .protocol import Link
    return Link(transport, timeout=timeout)
