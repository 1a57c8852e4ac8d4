"""The fast model served over a byte stream: the serial transport through a virtual UART board
(a pseudo-terminal) and the TCP transport, both with the same driver as every other target."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from neurram.config import ChipConfig
from neurram.spec import regmap as R
from neurram.spec.mvm import MvmSettings
from neurram.firmware.mapper import map_network
from neurram.spec.protocol import FrameDecoder, Op, Status, encode_request
from neurram.firmware.runtime import Runtime
from neurram.targets import model_engine, open_chip
from neurram.sim.serve import TcpChipServer, VirtualUart

from .test_mapper import small_net

CONFIG = ChipConfig(core_grid=(1, 3), rows=64, cols=64)


def _logits(chip, net, x):
    rt = Runtime(chip, map_network(net, chip.config, x_cal=x))
    rt.program(progress=False)
    rt.calibrate(x[:4], max_vectors=48)
    return rt.forward(x, progress=False).logits, chip.counters(0)


@pytest.fixture(scope="module")
def network():
    rng = np.random.default_rng(4)
    return small_net(rng, n_in=24, hidden=6, n_out=3), rng.integers(0, 256, (3, 4, 6)).astype(np.uint8)


class _ServeProcess:
    """``neurram serve`` in its own process, as a user runs it; ``target`` is what it printed."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([sys.executable, "-m", "neurram", "serve", *args], stdout=subprocess.PIPE,
                                     text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        line = self.proc.stdout.readline()
        assert "connect with --chip " in line, line
        self.target = line.split("--chip ")[1].split(";")[0]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def test_virtual_uart_board_runs_a_network_like_the_in_process_model(network):
    """``neurram serve --pty`` in its own process; the driver opens it as a serial port, maps,
    programs by write-verify (the chip's engine, driven frame by frame), calibrates and runs a
    network: logits and event counters equal the in-process model's (noise off)."""
    net, x = network
    served_target = f"model:noise=off,cores=1x3,rows={CONFIG.rows},cols={CONFIG.cols}"
    with _ServeProcess("--pty", "--chip", served_target) as server:
        assert server.target.startswith("serial:/dev/")
        chip = open_chip(server.target, timeout=10)
        assert chip.config.n_cores == 3 and chip.config.rows == 64 and chip.config.cols == 64
        served, served_counts = _logits(chip, net, x)
        assert chip.link.frames > 100 and chip.link.status().frames_bad == 0
        chip.link.transport.close()
    local, local_counts = _logits(open_chip("model:noise=off", config=CONFIG), net, x)
    assert np.array_equal(served, local)
    events = ("mvm", "pulse", "compare", "step", "busy", "program", "read")
    assert {k: served_counts[k] for k in events} == {k: local_counts[k] for k in events}
    assert served_counts["program"] > 0


def _server(kind, engine):
    """A server thread of ``kind`` ("pty" or "tcp") and the target string that opens it."""
    if kind == "pty":
        server = VirtualUart(engine)
        return server, f"serial:{server.device}"
    server = TcpChipServer(engine)
    return server, f"tcp:{server.host}:{server.port}"


@pytest.mark.parametrize("server_kind", ["pty", "tcp"])
def test_in_process_servers_answer_like_the_in_process_model(server_kind):
    """The server classes in a thread (as a test bench uses them): identify, the ternary
    registers, a batch of MVMs on the same conductances, counters."""
    config = ChipConfig.small()
    engine = model_engine("model:noise=off", config=config)
    server, target = _server(server_kind, engine)
    with server:
        chip = open_chip(target, timeout=10)
        try:
            local = open_chip("model:noise=off", config=config)
            assert chip.config == local.config and chip.version == local.version
            rng = np.random.default_rng(1)
            ternary = rng.integers(-1, 2, config.rows)
            codes = rng.integers(0, 8, (5, config.rows))
            mode = MvmSettings(input_bits=3)
            results = []
            g_uS = rng.uniform(0, 40, (config.rows, config.cols))
            for c, fast in ((chip, engine.chip), (local, local.link.chip)):
                c.enable_cores([0])
                fast.cores[0].model.set_conductance(g_uS)     # setup through the back door
                c.set_polarity(0, np.arange(config.lines) % 2 == 1)
                c.set_packet(0, 150)
                c.write_ternary(0, "bl", ternary)
                results.append((c.read_ternary(0, "bl"), c.mvm(0, codes, mode), c.counters(0)))
            (t_served, y_served, n_served), (t_local, y_local, n_local) = results
            assert np.array_equal(t_served, ternary) and np.array_equal(t_local, ternary)
            assert np.array_equal(y_served, y_local) and len(np.unique(y_local)) > 10
            assert n_served == n_local and n_served["mvm"] == 5
        finally:
            chip.link.transport.close()


def _next_replies(port, decoder, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        replies = decoder.feed(port.read(max(port.in_waiting, 1)))
        if replies:
            return replies
    return []


def test_virtual_uart_answers_a_cut_off_frame_truncated_and_resynchronises():
    import serial

    engine = model_engine("model:noise=off", config=ChipConfig.small())
    with VirtualUart(engine, idle_s=0.02) as uart:
        port = serial.Serial(uart.device, 115200, timeout=1)
        try:
            frame = encode_request(7, Op.READ, (0).to_bytes(4, "little"))
            port.write(frame[:-2])                 # the CRC never comes
            decoder = FrameDecoder("reply")
            replies = _next_replies(port, decoder)
            assert [(r.seq, r.code) for r in replies] == [(7, Status.TRUNCATED)]
            port.write(encode_request(8, Op.READ, (0).to_bytes(4, "little")))
            replies = _next_replies(port, decoder)
            assert [(r.seq, r.code) for r in replies] == [(8, Status.OK)]
            assert int.from_bytes(replies[0].payload[:4], "little") == engine.bus_read(0)
        finally:
            port.close()
    assert engine.frames_bad == 1 and engine.last_error == Status.TRUNCATED


def test_serve_refuses_non_model_targets():
    with pytest.raises(ValueError, match="only a model target"):
        model_engine("rtl")


@pytest.mark.parametrize("server_kind", ["pty", "tcp"])
def test_a_host_may_close_and_reopen_the_served_chip(server_kind):
    engine = model_engine("model:noise=off", config=ChipConfig.small())
    server, target = _server(server_kind, engine)
    with server:
        seen = []
        for value in (0x1234, 0x5678):
            chip = open_chip(target, timeout=10)
            seen.append(chip.read_reg("LFSR_SEED"))
            chip.write_reg("LFSR_SEED", value)
            chip.link.transport.close()
        assert seen[1] == 0x1234 and engine.chip.read(R.REGISTERS.LFSR_SEED.address()) == 0x5678


def test_serve_command_limits_clients_and_idle_time():
    """``neurram serve --tcp 0 --max-clients 1 --client-idle 1``: a second connection is closed at
    once, the first after a second of silence."""
    import socket
    import time

    with _ServeProcess("--tcp", "0", "--chip", "model:cores=1x1,rows=16,cols=16", "--max-clients", "1",
                       "--client-idle", "1") as server:
        host, port = server.target.split(":")[1:]
        first = socket.create_connection((host, int(port)), timeout=10)
        time.sleep(0.3)
        second = socket.create_connection((host, int(port)), timeout=10)
        assert second.recv(16) == b""                           # refused: closed at once
        t0 = time.monotonic()
        assert first.recv(16) == b""                            # closed when idle
        assert 0.3 < time.monotonic() - t0 < 8
        first.close()
        second.close()
