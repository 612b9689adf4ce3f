"""Byte ports the DLMS layers talk through: a serial line (`amr.drivers.serial_line.SerialLine`)
or a plain TCP socket, both blocking with a deadline on every read."""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Protocol

from amr.drivers.dlms import errors
from amr.drivers.serial_line import MAX_ANSWER_BYTES, Done


class Port(Protocol):
    """Send bytes; receive until `done` says the answer is whole, or raise `ReadTimeout`."""

    def send(self, frame: bytes) -> None:
        """Write `frame`."""

    def receive(self, done: Done, timeout: float | None = None) -> bytes:
        """Bytes received until `done` is True; `ReadTimeout` after `timeout` seconds of silence."""


class TcpPort:
    """A TCP connection to a meter or a gateway (``host:port``) with a timeout on every step."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        """Prepare the connection; nothing is opened until `open`."""
        self.where, self.host, self.port, self.timeout = f"tcp://{host}:{port}", host, port, timeout
        self._socket: socket.socket | None = None

    @property
    def is_open(self) -> bool:
        """True while connected."""
        return self._socket is not None

    def open(self) -> None:
        """Connect unless connected; `ConnectError` when refused or unreachable in time."""
        if self._socket is not None:
            return
        try:
            self._socket = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            raise errors.connect_error(f"cannot connect to {self.where}: {exc or 'no answer in time'}") from None

    def close(self) -> None:
        """Close the connection; never raises."""
        sock, self._socket = self._socket, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def send(self, frame: bytes) -> None:
        """Write `frame`; `ConnectError` (and closed) when the connection is gone."""
        sock = self._require()
        try:
            sock.settimeout(self.timeout)
            sock.sendall(frame)
        except OSError as exc:
            self.close()
            raise errors.connect_error(f"cannot write to {self.where}: {exc}") from None

    def receive(self, done: Done, timeout: float | None = None) -> bytes:
        """Bytes until `done`; `ReadTimeout` when a gap is longer than `timeout`, `ConnectError` on close."""
        sock = self._require()
        limit = self.timeout if timeout is None else timeout
        received = bytearray()
        deadline = time.monotonic() + limit
        while not done(bytes(received)):
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()  # a late answer would be taken for the next request's
                shown = f"{len(received)} bytes, then " if received else ""
                raise errors.timeout(f"{self.where}: no complete answer: {shown}{limit:g} s of silence")
            try:
                sock.settimeout(left)
                chunk = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError as exc:
                self.close()
                raise errors.connect_error(f"cannot read from {self.where}: {exc}") from None
            if not chunk:
                self.close()
                raise errors.connect_error(f"{self.where} closed the connection")
            received += chunk
            deadline = time.monotonic() + limit
            if len(received) > MAX_ANSWER_BYTES:
                raise errors.protocol(f"{self.where}: no complete answer in {len(received)} bytes")
        return bytes(received)

    def _require(self) -> socket.socket:
        if self._socket is None:
            raise errors.connect_error(f"{self.where} is not connected")
        return self._socket
