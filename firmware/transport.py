"""Byte transports for the protocol link: a TCP socket and a serial port."""

import socket
import time

__all__ = ["SocketTransport", "SerialTransport"]


class SocketTransport:
    """TCP client (the RTL co-simulation server, or any chip server)."""

    def __init__(self, host: str, port: int, connect_timeout: float = 60.0, process=None):
        self.process = process
        deadline = time.monotonic() + connect_timeout
        while True:
            try:
                self.sock = socket.create_connection((host, port), timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline or (process is not None and process.poll() is not None):
                    raise ConnectionError(f"no chip server at {host}:{port}")
                time.sleep(0.2)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self, n: int, timeout: float) -> bytes:
        self.sock.settimeout(max(timeout, 1e-3))
        try:
            return self.sock.recv(max(n, 1))
        except socket.timeout:
            return b""

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
        except ImportError as e:
            raise RuntimeError("serial targets need pyserial: pip install pyserial") from e
        self.port = serial.Serial(port, baud, timeout=0.1)

    def write(self, data: bytes) -> None:
        self.port.write(data)

    def read(self, n: int, timeout: float) -> bytes:
        self.port.timeout = max(timeout, 1e-3)
        return self.port.read(max(n, 1))

    def close(self) -> None:
        self.port.close()
