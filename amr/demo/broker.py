"""An MQTT broker for the demo: the one on 127.0.0.1:1883 when it answers, else one started here.

In order: a broker already answering on 127.0.0.1:1883 (``AMR_DEMO_MQTT_PORT`` picks another
port); Debian's ``mosquitto`` binary, started on a free loopback port with a throw-away
configuration (`mosquitto_conf`: no limit on the QoS 1 messages queued for an absent collector;
``AMR_DEMO_MOSQUITTO`` names another binary, ``none`` skips it); the demo's own
in-process broker (`amr.demo.minibroker`). Only loopback addresses are ever used.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from amr.demo.minibroker import MiniBroker, encode_string, packet

LOOPBACK = "127.0.0.1"
DEFAULT_PORT = 1883
MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/bin/mosquitto")


@dataclass(frozen=True, slots=True)
class Broker:
    """Where the demo's MQTT traffic goes, and what runs it."""

    port: int
    kind: str  # "existing" | "mosquitto" | "built-in"

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:port``."""
        return f"mqtt://{LOOPBACK}:{self.port}"

    def describe(self) -> str:
        """One line for the console."""
        what = {
            "existing": "the broker already running",
            "mosquitto": "Mosquitto started by the demo",
            "built-in": "the demo's built-in broker",
        }[self.kind]
        return f"{self.url} ({what})"


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def answers_mqtt(port: int, timeout: float = 1.0) -> bool:
    """True when something on 127.0.0.1:`port` accepts an MQTT 3.1.1 connection."""
    hello = packet(1, 0, encode_string("MQTT") + bytes([4, 2, 0, 10]) + encode_string(f"amr-demo-probe-{os.getpid()}"))
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
            sock.sendall(hello)
            answer = sock.recv(4)
            with contextlib.suppress(OSError):
                sock.sendall(bytes([0xE0, 0]))  # DISCONNECT
    except OSError:
        return False
    return len(answer) == 4 and answer[0] == 0x20 and answer[3] == 0


def mosquitto_binary() -> str | None:
    """The mosquitto executable, if installed (``AMR_DEMO_MOSQUITTO``: a path, or ``none``)."""
    chosen = os.environ.get("AMR_DEMO_MOSQUITTO")
    if chosen:
        return None if chosen == "none" else chosen
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((p for p in MOSQUITTO_PATHS if os.access(p, os.X_OK)), None)


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the demo dies, even by SIGKILL (Linux; elsewhere a no-op)."""
    with contextlib.suppress(Exception):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


async def _wait_for(port: int, process: subprocess.Popen[bytes], seconds: float = 5.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if process.poll() is not None:
            return False
        if await asyncio.to_thread(answers_mqtt, port, 0.5):
            return True
        await asyncio.sleep(0.1)
    return False


def mosquitto_conf(port: int, max_queued_messages: int = 0) -> str:
    """A throw-away Mosquitto configuration on 127.0.0.1:`port`.

    ``max_queued_messages 0`` lifts Mosquitto's default limit of 1000 QoS 1 messages queued for a
    persistent session whose client is away: above it Mosquitto drops messages without a word.
    """
    return (
        "# written by amr: a throw-away broker on the loopback interface\n"
        f"listener {port} {LOOPBACK}\nallow_anonymous true\npersistence false\n"
        f"max_queued_messages {max_queued_messages}\n"
    )


@contextlib.asynccontextmanager
async def started_mosquitto(binary: str, folder: Path, max_queued_messages: int = 0) -> AsyncIterator[int | None]:
    """Run `binary` on a free loopback port with `mosquitto_conf`; yield the port, or None if it did not start."""
    port = free_port()
    conf = folder / "mosquitto.conf"
    conf.write_text(mosquitto_conf(port, max_queued_messages), encoding="utf-8")
    process = subprocess.Popen(
        [binary, "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C in the terminal stops the demo, which then stops the broker last
        preexec_fn=_die_with_parent,
    )
    try:
        yield port if await _wait_for(port, process) else None
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                await asyncio.to_thread(process.wait, 5)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)


@contextlib.asynccontextmanager
async def mqtt_broker(folder: Path) -> AsyncIterator[Broker]:
    """Yield a usable loopback broker; whatever the demo started is stopped on exit."""
    wanted = int(os.environ.get("AMR_DEMO_MQTT_PORT", DEFAULT_PORT))
    if await asyncio.to_thread(answers_mqtt, wanted):
        yield Broker(wanted, "existing")
        return
    binary = mosquitto_binary()
    if binary is not None:
        async with started_mosquitto(binary, folder) as port:
            if port is not None:
                yield Broker(port, "mosquitto")
                return
    async with MiniBroker() as broker:
        yield Broker(broker.port, "built-in")


__all__ = [
    "Broker", "answers_mqtt", "free_port", "mosquitto_binary", "mosquitto_conf", "mqtt_broker", "started_mosquitto",
]
