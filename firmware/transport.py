"""Byte transports for the protocol link: a TCP socket and a serial port.

Both raise ``ConnectionError`` with one line naming the endpoint when it cannot be opened or
when the other end goes away, so a host program never waits on a dead link.
"""

import socket
import time

__all__ = ["SocketTransport", "SerialTransport"]


class SocketTransport:
    """TCP client (the RTL co-simulation server, or any chip server).

    Without ``process`` the server must already be listening: one attempt, ``connect_timeout``
    seconds at most (default 5). With ``process`` (a server this program just started) the
    connection is retried until ``connect_timeout`` (default 60 s) passes or the process exits.
    """

    def __init__(self, host: str, port: int, connect_timeout: float | None = None, process=None):
        self.process = process
        self.where = f"{host}:{port}"
        if connect_timeout is None:
            connect_timeout = 60.0 if process is not None else 5.0
        deadline = time.monotonic() + connect_timeout
        while True:
            try:
                self.sock = socket.create_connection((host, port), timeout=max(0.1, min(5.0, connect_timeout)))
                break
            except OSError as e:
                died = process is not None and process.poll() is not None
                if process is None or died or time.monotonic() > deadline:
                    why = "the server process exited" if died else (e.strerror or str(e) or type(e).__name__)
                    hint = "" if process is not None else "; start one with: neurram serve --tcp PORT"
                    raise ConnectionError(f"no chip server at {self.where} ({why}){hint}") from None
                time.sleep(0.2)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def write(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise ConnectionError(f"the chip server at {self.where} went away ({e.strerror or e})") from None

    def read(self, n: int, timeout: float) -> bytes:
        self.sock.settimeout(max(timeout, 1e-3))
        try:
            data = self.sock.recv(max(n, 1))
        except socket.timeout:
            return b""
        except OSError as e:
            raise ConnectionError(f"the chip server at {self.where} went away ({e.strerror or e})") from None
        if not data:
            raise ConnectionError(f"the chip server at {self.where} closed the connection")
        return data

    def close(self) -> None:
        try:
            self.sock.close()
        finally:
            if self.process is not None:
                self.process.terminate()


class SerialTransport:
    """A UART to an FPGA board (pyserial)."""

    def __init__(self, port: str, baud: int = 115200):
        try:
            import serial
        except ImportError:
            raise RuntimeError("serial targets need pyserial: pip install pyserial") from None
        self.where = port
        try:
            self.port = serial.Serial(port, baud, timeout=0.1)
        except (serial.SerialException, OSError, ValueError) as e:
            raise ConnectionError(f"cannot open serial port {port} at {baud} baud: "
                                  f"{getattr(e, 'strerror', None) or e}") from None

    def write(self, data: bytes) -> None:
        self.port.write(data)

    def read(self, n: int, timeout: float) -> bytes:
        self.port.timeout = max(timeout, 1e-3)
        return self.port.read(max(n, 1))

    def close(self) -> None:
        self.port.close()
