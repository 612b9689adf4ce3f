"""A real ``amr api`` process on a free loopback port over its own fresh PostgreSQL database."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from tests.conftest import POSTGRES_URL


def free_port() -> int:
    """A TCP port nobody listens on at 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def fresh_database() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped afterwards."""
    admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5)
    name = f"amr_live_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@dataclass
class Server:
    """A running ``amr api``."""

    process: subprocess.Popen[bytes]
    port: int
    config: Path

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, timeout: float = 30
    ) -> tuple[int, dict[str, Any]]:
        """(status, JSON body) of one request on its own connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            data = None if body is None else json.dumps(body).encode()
            sent = {"Content-Type": "application/json", **(headers or {})}
            conn.request(method, path, body=data, headers=sent)
            answer = conn.getresponse()
            raw = answer.read()
            return answer.status, json.loads(raw) if raw.startswith(b"{") else {}
        finally:
            conn.close()


def write_config(path: Path, database_url: str, api: str = "") -> Path:
    """A configuration with one meter on account A1 and the ``[api]`` lines given."""
    path.write_text(
        f'[database]\nurl = "{database_url}"\n[site]\ntimezone = "Europe/Moscow"\n[api]\n{api}\n'
        '[[meters]]\nserial = "M1"\naccounts = ["A1"]\nmax_power_kw = 15\n',
        encoding="utf-8",
    )
    return path


def amr(*args: str, stdin: str = "") -> None:
    """Run an ``amr`` command to completion."""
    subprocess.run([sys.executable, "-m", "amr", *args], input=stdin.encode(), check=True, capture_output=True)


@contextmanager
def serve(config: Path, workers: int = 1) -> Iterator[Server]:
    """``amr api -c CONFIG --workers N`` on a free port, until the block ends."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "amr", "api", "-c", str(config), "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    server = Server(process, port, config)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"amr api exited: {process.stderr.read().decode() if process.stderr else ''}")
            try:
                if server.request("GET", "/healthz", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("amr api did not answer /healthz within 60 s")
            time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
