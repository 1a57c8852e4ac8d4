"""The RTL chip as a server: the generated Verilog under Verilator, reached over TCP.

``launch_rtl_server(config)`` builds the chip (cached), starts the simulator in its own process
with the cocotb test :func:`serve` below, and returns where it listens (:class:`RtlServer`). Bytes from the
socket go into the chip's ``rx`` stream one per accepted cycle; reply bytes from ``tx`` go back.
The analog arrays are the Python models attached by :class:`ChipHarness`. While the host is
quiet the simulation keeps running (in steps of ``IDLE_STEP_CYCLES``), so batches progress
between the host's status polls.
"""

import io
import os
import select
import socket
import subprocess
import sys
from dataclasses import dataclass

import numpy as np

from neurram.models.core import AnalogParams
from neurram.spec.protocol import FrameDecoder

from .harness import CLOCK_PERIOD_NS, ChipHarness
from .toolchain import build

__all__ = ["launch_rtl_server", "serve", "IDLE_STEP_CYCLES", "RtlServer", "TestAccess"]

IDLE_STEP_CYCLES = 64


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RtlServer:
    """A running RTL server: its process, the byte-protocol port and the test-access port."""

    process: subprocess.Popen
    port: int
    test_access_port: int


def launch_rtl_server(config, *, seed: int = 0, noise: bool = True, port: int | None = None, log=None) -> RtlServer:
    """Build and start the RTL server in a subprocess; return where it listens."""
    b = build(config)
    port = port or _free_port()
    code = (
        "import os, sys\n"
        "from neurram.config import ChipConfig\n"
        "from neurram.sim.cosim.toolchain import build, run_tests\n"
        "cfg = ChipConfig.from_dict(__import__('json').loads(os.environ['NEURRAM_SERVER_CONFIG']))\n"
        "run_tests(build(cfg), 'neurram.sim.cosim.server', test_dir=os.environ['NEURRAM_SERVER_DIR'])\n")
    env = dict(os.environ, NEURRAM_SERVER_PORT=str(port), NEURRAM_SERVER_SEED=str(seed),
               NEURRAM_SERVER_NOISE="1" if noise else "0", NEURRAM_SERVER_CONFIG=config.to_json(),
               NEURRAM_SERVER_DIR=str(b.build_dir.parent / "server"), COCOTB_LOG_LEVEL="WARNING")
    (b.build_dir.parent / "server").mkdir(exist_ok=True)
    out = log if log is not None else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=out, stderr=out)
    return RtlServer(proc, port, port + 1)


class TestAccess:
    """The simulator's test access to the analog arrays (like loading a memory with $readmemh): a
    test-access shortcut, used only when a target asks for it (``rtl:program=test-access``).

    Programming 70,000 cells cell by cell through the byte protocol takes hours of simulation;
    :meth:`set_conductance` loads a conductance matrix into a core's simulated array directly.
    Write-verify through the protocol itself is covered by the co-simulation tests.
    """

    def __init__(self, port: int):
        self.port = port
        self._sock = None

    def _conn(self):
        if self._sock is None:
            self._sock = socket.create_connection(("127.0.0.1", self.port), timeout=60)
            self._file = self._sock.makefile("rb")
        return self._sock

    def set_conductance(self, core: int, g_uS) -> None:
        buf = io.BytesIO()
        np.save(buf, np.asarray(g_uS, np.float64), allow_pickle=False)
        data = buf.getvalue()
        sock = self._conn()
        sock.sendall(core.to_bytes(1, "little") + len(data).to_bytes(8, "little") + data)
        if self._file.read(1) != b"\x01":
            raise ConnectionError("the RTL server did not acknowledge the conductances")


try:
    import cocotb
    from cocotb.triggers import ReadOnly, RisingEdge, Timer
except ImportError:  # pragma: no cover - cocotb is a dependency
    cocotb = None

if cocotb is not None:
    @cocotb.test()
    async def serve(dut):
        """Serve the byte protocol on NEURRAM_SERVER_PORT until the host disconnects."""

        noise = os.environ.get("NEURRAM_SERVER_NOISE", "1") == "1"
        h = ChipHarness(dut, params=AnalogParams() if noise else AnalogParams.ideal(),
                        seed=int(os.environ.get("NEURRAM_SERVER_SEED", "0")))
        await h.start()
        dut.tx__ready.value = 1
        dut.rx__valid.value = 0
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", int(os.environ["NEURRAM_SERVER_PORT"])))
        srv.listen(1)
        back = socket.socket()
        back.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        back.bind(("127.0.0.1", int(os.environ["NEURRAM_SERVER_PORT"]) + 1))
        back.listen(1)
        back.setblocking(False)
        back_conn = None
        conn, _ = srv.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.setblocking(False)
        replies = FrameDecoder("reply")
        debug = bool(os.environ.get("NEURRAM_SERVER_DEBUG"))
        pending = bytearray()
        while True:
            if back_conn is None:
                try:
                    back_conn, _ = back.accept()
                    back_conn.setblocking(True)
                except BlockingIOError:
                    pass
            if back_conn is not None and select.select([back_conn], [], [], 0)[0]:
                _test_access_request(back_conn, h)
            ready, _, _ = select.select([conn], [], [], 0)
            if ready:
                data = conn.recv(1 << 16)
                if not data:
                    break
                pending += data
            if not pending:
                await Timer(IDLE_STEP_CYCLES * CLOCK_PERIOD_NS, unit="ns")
                # Back in step with the clock: inputs change just after a rising edge.
                await RisingEdge(dut.clk)
                continue
            # Drive the request bytes in, one per accepted cycle.
            for b in bytes(pending):
                dut.rx__payload.value = b
                dut.rx__valid.value = 1
                while True:
                    await ReadOnly()
                    accepted = bool(dut.rx__ready.value)
                    await RisingEdge(dut.clk)
                    if accepted:
                        if debug:
                            dut._log.warning(f"rx {b:02x} at {cocotb.utils.get_sim_time('ns')}")
                        break
            dut.rx__valid.value = 0
            pending.clear()
            # Collect the reply (strict request/reply), forwarding it as soon as it is complete.
            out = bytearray()
            for _ in range(10_000_000):
                await ReadOnly()
                if dut.tx__valid.value:
                    out.append(int(dut.tx__payload.value))
                    if debug:
                        dut._log.warning(f"tx {out[-1]:02x} at {cocotb.utils.get_sim_time('ns')}")
                    if replies.feed(bytes(out[-1:])):
                        await RisingEdge(dut.clk)
                        break
                await RisingEdge(dut.clk)
            conn.sendall(bytes(out))
        conn.close()
        srv.close()

    def _recv_exact(sock, n):
        data = bytearray()
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("the test-access connection closed")
            data += chunk
        return bytes(data)

    def _test_access_request(sock, h):
        """One request: core (1 byte), length (8 bytes), an .npy conductance matrix (µS)."""
        core = _recv_exact(sock, 1)[0]
        n = int.from_bytes(_recv_exact(sock, 8), "little")
        g = np.load(io.BytesIO(_recv_exact(sock, n)), allow_pickle=False)
        h.models[core].set_conductance(g)
        sock.sendall(b"\x01")
