"""The real Mosquitto the MQTT tests talk to: its address, and a check that fails (never skips) without it."""

from __future__ import annotations

import socket

import pytest

HOST, PORT = "127.0.0.1", 1883


def require_broker() -> None:
    """Fail the test, naming the fix, when nothing listens on the broker's port."""
    try:
        socket.create_connection((HOST, PORT), timeout=2).close()
    except OSError as exc:
        pytest.fail(
            f"Mosquitto is needed on {HOST}:{PORT} ({exc}); start it: mosquitto -d -c /etc/mosquitto/mosquitto.conf",
            pytrace=False,
        )
