"""Serve the fast chip model over a byte stream: a TCP port or a pseudo-terminal.

A pseudo-terminal makes a *virtual UART board*: the host side opens it exactly as it would open
an FPGA board's serial port (``--chip serial:/dev/pts/N``), so host software and the serial
transport can be developed and tested without hardware. The TCP server does the same for
``--chip tcp:HOST:PORT`` (another machine, or a host program in another language).

The chip end is :class:`~neurram.sim.fastmodel.ChipProtocolEngine`, the Python twin of the RTL
protocol engine: byte for byte the same replies, errors and resynchronisation. When the bytes of
a frame stop arriving for ``idle_s`` the frame is answered ``TRUNCATED``, as the RTL engine does
after its idle-cycle limit.

``neurram serve --pty`` / ``neurram serve --tcp 5555`` run these from the command line.
"""

import os
import select
import socket
import threading
import tty
from typing import Callable

from .fastmodel import ChipProtocolEngine

__all__ = ["serve_stream", "VirtualUart", "TcpChipServer"]

IDLE_S = 0.05   # a frame whose bytes stop for this long is answered TRUNCATED


def serve_stream(engine: ChipProtocolEngine, recv: Callable[[float], bytes | None],
                 send: Callable[[bytes], None], stop: threading.Event, idle_s: float = IDLE_S) -> None:
    """Pump bytes through ``engine`` until ``stop`` is set or ``recv`` returns None (closed).

    ``recv(timeout_s)`` returns the bytes that arrived (``b""`` when none came in time).
    """
    while not stop.is_set():
        data = recv(idle_s)
        if data is None:
            return
        reply = engine.feed(data) if data else engine.timeout()
        if reply:
            send(reply)


class _Server:
    """A server thread around one engine; a context manager that stops it on exit."""

    def __init__(self, engine: ChipProtocolEngine, idle_s: float = IDLE_S):
        self.engine = engine
        self.idle_s = idle_s
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def serve_forever(self) -> None:
        """Run in the calling thread until interrupted."""
        try:
            self._run()
        finally:
            self.stop.set()


class VirtualUart(_Server):
    """A pseudo-terminal pair: the chip holds the master end, a host opens :attr:`device`.

    The slave end is put in raw mode and kept open here, so a host may close and reopen it.
    """

    def __init__(self, engine: ChipProtocolEngine, idle_s: float = IDLE_S):
        super().__init__(engine, idle_s)
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.device = os.ttyname(self.slave)

    def _recv(self, timeout_s: float) -> bytes | None:
        ready, _, _ = select.select([self.master], [], [], timeout_s)
        if not ready:
            return b""
        try:
            return os.read(self.master, 65536)
        except OSError:
            return None

    def _send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            _, writable, _ = select.select([], [self.master], [], 1.0)
            if writable:
                view = view[os.write(self.master, view):]

    def _run(self) -> None:
        serve_stream(self.engine, self._recv, self._send, self.stop, self.idle_s)

    def close(self) -> None:
        super().close()
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


class TcpChipServer(_Server):
    """A TCP server; one host connection at a time, each a fresh byte stream to the same chip."""

    def __init__(self, engine: ChipProtocolEngine, host: str = "127.0.0.1", port: int = 0,
                 idle_s: float = IDLE_S):
        super().__init__(engine, idle_s)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, port))
        self.listener.listen(1)
        self.listener.settimeout(0.2)
        self.host, self.port = self.listener.getsockname()[:2]

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            with conn:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

                def recv(timeout_s: float) -> bytes | None:
                    conn.settimeout(timeout_s)
                    try:
                        data = conn.recv(65536)
                    except socket.timeout:
                        return b""
                    except OSError:
                        return None
                    return data or None        # b"" from recv means the host closed

                serve_stream(self.engine, recv, conn.sendall, self.stop, self.idle_s)
            self.engine.timeout()      # a frame cut off by the disconnect does not leak into the next

    def close(self) -> None:
        super().close()
        self.listener.close()
