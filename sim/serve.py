"""Serve the fast chip model over a byte stream: a TCP port or a pseudo-terminal.

A pseudo-terminal makes a *virtual UART board*: the host side opens it exactly as it would open
an FPGA board's serial port (``--chip serial:/dev/pts/N``), so host software and the serial
transport can be developed and tested without hardware. The TCP server does the same for
``--chip tcp:HOST:PORT`` (another machine, or a host program in another language).

The chip end is :class:`~neurram.sim.fastmodel.ChipProtocolEngine`, the Python twin of the RTL
protocol engine: byte for byte the same replies, errors and resynchronisation. When the bytes of
a frame stop arriving for ``idle_s`` the frame is answered ``TRUNCATED``, as the RTL engine does
after its idle-cycle limit.

Robustness (issue 16): every request gets exactly one reply and no client can stop the server.

* A fault inside the chip model while it carries out a request (a bug: a real chip cannot raise)
  is logged on the server's stderr with the request, the request is still answered (a read
  answers 0), and the server goes on; :attr:`model_faults` counts them.
* The TCP server serves up to ``max_clients`` connections at once, each its own byte stream
  (its own partial frame) to the same chip; requests are carried out one at a time, whole, so
  the STATUS counters are the chip's. A connection beyond ``max_clients`` is closed at once
  (the host sees "the chip server closed the connection"), and one silent for ``client_idle_s``
  seconds is closed, so an idle host never holds the chip.
* ``close()`` (and Ctrl-C in :meth:`serve_forever`) stop the server cleanly, started or not.

``neurram serve --pty`` / ``neurram serve --tcp 5555`` run these from the command line.
"""

from __future__ import annotations

import os
import select
import socket
import sys
import threading
import traceback
import tty
from typing import Callable

from neurram.spec.protocol import FrameDecoder

from .fastmodel import ChipProtocolEngine

__all__ = ["serve_stream", "VirtualUart", "TcpChipServer", "IDLE_S", "CLIENT_IDLE_S", "MAX_CLIENTS"]

IDLE_S = 0.05          # a frame whose bytes stop for this long is answered TRUNCATED
CLIENT_IDLE_S = 300.0  # a TCP connection that sends nothing for this long is closed
MAX_CLIENTS = 8        # TCP connections served at once; more are closed at once


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class _Guard:
    """Wraps an engine's word bus so that a fault inside the chip model is logged, not raised."""

    def __init__(self, engine: ChipProtocolEngine, log: Callable[[str], None], debug: bool):
        self.engine, self.log, self.debug = engine, log, debug
        self.faults = 0
        read, write = engine.bus_read, engine.bus_write
        engine.bus_read = lambda addr: self._call(read, "READ", addr)
        engine.bus_write = lambda addr, data: self._call(write, "WRITE", addr, data)

    @classmethod
    def of(cls, engine: ChipProtocolEngine, log, debug: bool) -> "_Guard":
        """The engine's guard (one per engine, however many servers it is put behind)."""
        guard = engine.__dict__.get("_serve_guard")
        if guard is None:
            guard = engine._serve_guard = cls(engine, log, debug)
        return guard

    def _call(self, fn, op: str, addr: int, data: int | None = None) -> int:
        try:
            return fn(addr) if data is None else fn(addr, data)
        except Exception as e:  # noqa: BLE001 - the server must answer whatever the model does
            self.faults += 1
            what = f"{op} 0x{addr:08x}" + ("" if data is None else f" = 0x{data:08x}")
            self.log(f"neurram serve: chip model fault on {what}: {type(e).__name__}: {e} "
                     "(the request was answered; please report this)")
            if self.debug:
                self.log(traceback.format_exc().rstrip())
            return 0


def serve_stream(engine: ChipProtocolEngine, recv: Callable[[float], bytes | None],
                 send: Callable[[bytes], None], stop: threading.Event, idle_s: float = IDLE_S,
                 *, decoder: FrameDecoder | None = None, lock: threading.Lock | None = None,
                 client_idle_s: float | None = None, log: Callable[[str], None] = _stderr) -> str:
    """Pump bytes through ``engine`` until ``stop`` is set, ``recv`` returns None (closed) or
    nothing arrives for ``client_idle_s`` seconds; returns why it ended ("stopped", "closed",
    "idle").

    ``recv(timeout_s)`` returns the bytes that arrived (``b""`` when none came in time). With a
    ``decoder`` the stream keeps its own partial frame (several streams, one engine); with a
    ``lock`` each batch of bytes is carried out while holding it.
    """
    import time
    lock = lock or threading.Lock()
    last = time.monotonic()
    while not stop.is_set():
        data = recv(idle_s)
        if data is None:
            return "closed"
        now = time.monotonic()
        if data:
            last = now
        elif client_idle_s is not None and now - last > client_idle_s:
            return "idle"
        with lock:
            saved = engine.decoder
            if decoder is not None:
                engine.decoder = decoder
            try:
                reply = engine.feed(data) if data else engine.timeout()
            except Exception as e:  # noqa: BLE001 - never let one stream stop the server
                (decoder or engine.decoder).reset()
                log(f"neurram serve: protocol engine fault: {type(e).__name__}: {e} (the partial frame "
                    "was dropped; please report this)")
                reply = b""
            finally:
                engine.decoder = saved
        if reply:
            send(reply)
    return "stopped"


class _Server:
    """A server thread around one engine; a context manager that stops it on exit."""

    def __init__(self, engine: ChipProtocolEngine, idle_s: float = IDLE_S, *,
                 log: Callable[[str], None] = _stderr, debug: bool = False):
        self.engine = engine
        self.idle_s = idle_s
        self.log = log
        self.guard = _Guard.of(engine, log, debug)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)

    @property
    def model_faults(self) -> int:
        """Faults inside the chip model that were logged and answered."""
        return self.guard.faults

    def start(self):
        self.thread.start()
        return self

    def close(self) -> None:
        """Stop serving (safe whether or not the server was started, and more than once)."""
        self.stop.set()
        if self.thread.ident is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def serve_forever(self) -> None:
        """Run in the calling thread until :meth:`close` or Ctrl-C (KeyboardInterrupt propagates)."""
        try:
            self._run()
        finally:
            self.stop.set()


class VirtualUart(_Server):
    """A pseudo-terminal pair: the chip holds the master end, a host opens :attr:`device`.

    The slave end is put in raw mode and kept open here, so a host may close and reopen it.
    """

    def __init__(self, engine: ChipProtocolEngine, idle_s: float = IDLE_S, **kw):
        super().__init__(engine, idle_s, **kw)
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.device = os.ttyname(self.slave)

    def _recv(self, timeout_s: float) -> bytes | None:
        try:
            ready, _, _ = select.select([self.master], [], [], timeout_s)
            if not ready:
                return b""
            return os.read(self.master, 65536)
        except (OSError, ValueError):
            return None

    def _send(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self.stop.is_set():
            _, writable, _ = select.select([], [self.master], [], 1.0)
            if writable:
                view = view[os.write(self.master, view):]

    def _run(self) -> None:
        serve_stream(self.engine, self._recv, self._send, self.stop, self.idle_s, log=self.log)

    def close(self) -> None:
        super().close()
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


class TcpChipServer(_Server):
    """A TCP server: up to ``max_clients`` connections at once, each a byte stream of its own to
    the same chip; a connection silent for ``client_idle_s`` seconds is closed."""

    def __init__(self, engine: ChipProtocolEngine, host: str = "127.0.0.1", port: int = 0,
                 idle_s: float = IDLE_S, *, max_clients: int = MAX_CLIENTS,
                 client_idle_s: float = CLIENT_IDLE_S, **kw):
        super().__init__(engine, idle_s, **kw)
        if max_clients < 1:
            raise ValueError(f"max_clients={max_clients}: serve at least 1 client")
        self.max_clients = max_clients
        self.client_idle_s = client_idle_s
        self.lock = threading.Lock()
        self.clients: dict[threading.Thread, socket.socket] = {}
        self.refused = 0
        self.listener = socket.socket()
        try:
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.listener.bind((host, port))
            self.listener.listen(max_clients + 4)
        except BaseException:
            self.listener.close()
            raise
        self.listener.settimeout(0.2)
        self.host, self.port = self.listener.getsockname()[:2]

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                try:
                    conn, peer = self.listener.accept()
                except socket.timeout:
                    continue
                except OSError:
                    if self.stop.is_set():
                        return
                    raise
                self._reap()
                if len(self.clients) >= self.max_clients:
                    self.refused += 1
                    self.log(f"neurram serve: refused {peer[0]}:{peer[1]}: already serving {self.max_clients} "
                             "clients (the most at once)")
                    conn.close()
                    continue
                t = threading.Thread(target=self._serve_client, args=(conn, peer), daemon=True,
                                     name=f"client {peer[0]}:{peer[1]}")
                self.clients[t] = conn
                t.start()
        finally:
            self.listener.close()           # a server that stopped must not accept connections

    def _reap(self) -> None:
        for t in [t for t in self.clients if not t.is_alive()]:
            del self.clients[t]

    def _serve_client(self, conn: socket.socket, peer) -> None:
        decoder = FrameDecoder("request", max_payload=self.engine.decoder.max_payload)
        try:
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

            def send(data: bytes) -> None:
                conn.settimeout(self.client_idle_s)
                conn.sendall(data)

            why = serve_stream(self.engine, recv, send, self.stop, self.idle_s, decoder=decoder,
                               lock=self.lock, client_idle_s=self.client_idle_s, log=self.log)
            if why == "idle":
                self.log(f"neurram serve: closed {peer[0]}:{peer[1]} after {self.client_idle_s:g} s without a byte")
        except OSError as e:                # the host went away while we answered
            self.log(f"neurram serve: connection {peer[0]}:{peer[1]} lost: {e}")
        except Exception as e:  # noqa: BLE001 - one client must never stop the server
            self.log(f"neurram serve: connection {peer[0]}:{peer[1]} ended by {type(e).__name__}: {e}")
        finally:
            conn.close()

    def close(self) -> None:
        super().close()
        try:
            self.listener.close()
        except OSError:
            pass
        for t, conn in list(self.clients.items()):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            t.join(timeout=2)
        self.clients.clear()
