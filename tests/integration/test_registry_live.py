"""A running `amr collect` and `amr api` (two workers) take a change of the registry within seconds,
without a restart: real processes, a real Modbus TCP simulator, SQLite and PostgreSQL."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from amr.config import load_config
from amr.registry.changes import apply
from amr.store import Store
from amr.store.models import meters_table

AMR = [sys.executable, "-m", "amr"]
PASSWORD = "registry-live-pass"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _until(what: str, check: Callable[[], Any], seconds: float = 20.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"not within {seconds} s: {what}")


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[str]:
    """Three simulated Modbus TCP meters; their bus's URL."""
    snippet = tmp_path / "sim.toml"
    proc = subprocess.Popen([*AMR, "sim", "modbus-tcp", "--meters", "3", "--port", "0", "--quiet",
                             "--config-out", str(snippet)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _until("the simulator's configuration", lambda: snippet.exists() and "[[meters]]" in snippet.read_text())
        yield str(load_config(snippet).buses[0].url)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)


def _registry_file(path: Path, database: str, url: str, serials: list[str]) -> Path:
    meters = "".join(
        f'[[meters]]\nserial = "{s}"\nbus = "sim"\naddress = {int(s[-4:])}\nprofile = "eastron-sdm630"\n\n'
        for s in serials
    )
    path.write_text(
        f'[database]\nurl = "{database}"\n\n[registry]\nsource = "database"\nwatch_interval = "500ms"\n\n'
        f'[collector]\nbuffer = "buffer.sqlite"\nwrite_interval = "100ms"\n\n'
        f'[[buses]]\nname = "sim"\nkind = "modbus-tcp"\nurl = "{url}"\ntimeout = "1s"\nschedule = "2s"\n\n{meters}',
        encoding="utf-8",
    )
    return path


def _get(port: int, path: str, token: str | None = None, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    conn.request("POST" if body is not None else "GET", path, json.dumps(body) if body is not None else None, headers)
    answer = conn.getresponse()
    data = answer.read()
    conn.close()
    return answer.status, json.loads(data) if data else None


def _token(port: int) -> str | None:
    """A bearer token of the admin once the API answers; None before."""
    try:
        status, body = _get(port, "/api/v1/auth/token", body={"login": "boss", "password": PASSWORD})
    except OSError:
        return None
    return str(body["access_token"]) if status == 200 else None


def _serials_seen(port: int, token: str) -> set[str]:
    """The meters one API worker serves (each new connection may reach either worker)."""
    status, body = _get(port, "/api/v1/dashboard/meters", token)
    assert status == 200, body
    return {m["serial"] for m in body}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_collector_and_api_workers_take_a_registry_change_without_restart(
    backend: str, tmp_path: Path, simulator: str, request: pytest.FixtureRequest
) -> None:
    if backend == "postgres":
        from tests.conftest import _clean

        _clean(request.getfixturevalue("postgres_store"))
        database = request.getfixturevalue("postgres_url")
    else:
        database = f"sqlite:///{tmp_path / 'amr.sqlite'}"
    first = _registry_file(tmp_path / "amr.toml", database, simulator, ["SIM0001"])
    config = load_config(first)
    store = Store.open(config.database, config.site.timezone)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs: list[subprocess.Popen[str]] = []
    try:
        apply(store, config)
        add = subprocess.run([*AMR, "users", "add", "-c", str(first), "boss", "--role", "admin"], input=PASSWORD,
                             capture_output=True, text=True, env=env, timeout=60)
        assert add.returncode == 0, add.stderr
        port = _free_port()
        with (tmp_path / "collect.log").open("w") as log:  # the process keeps its own copy of the descriptor
            procs.append(subprocess.Popen([*AMR, "collect", "-c", str(first)], stdout=log, stderr=log, text=True,
                                          env=env))
        procs.append(subprocess.Popen([*AMR, "api", "-c", str(first), "--port", str(port), "--workers", "2"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, env=env))

        def readings_of(serial: str) -> bool:
            with store.engine.connect() as conn:
                ids = list(conn.execute(select(meters_table.c.id).where(meters_table.c.serial == serial)).scalars())
            return bool(ids) and bool(store.readings(ids))

        _until("readings of SIM0001", lambda: readings_of("SIM0001"), 40)

        bearer = _until("the API answers", lambda: _token(port), 40)
        assert all(_serials_seen(port, bearer) == {"SIM0001"} for _ in range(4))

        second = _registry_file(tmp_path / "more.toml", database, simulator, ["SIM0001", "SIM0002"])
        changed = time.monotonic()
        apply(store, load_config(second))
        _until("both API workers serve SIM0002",
               lambda: all(_serials_seen(port, bearer) == {"SIM0001", "SIM0002"} for _ in range(6)), 10)
        _until("readings of SIM0002", lambda: readings_of("SIM0002"), 15)
        assert time.monotonic() - changed < 15  # a 2 s schedule: the new meter's first poll within seconds
        assert all(p.poll() is None for p in procs)  # nothing restarted
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(20)
        store.close()



@pytest.mark.slow
def test_amr_run_takes_a_registry_change_in_its_api_and_its_collector(tmp_path: Path, simulator: str) -> None:
    database = f"sqlite:///{tmp_path / 'amr.sqlite'}"
    first = _registry_file(tmp_path / "amr.toml", database, simulator, ["SIM0001"])
    config = load_config(first)
    store = Store.open(config.database, config.site.timezone)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = None
    try:
        apply(store, config)
        add = subprocess.run([*AMR, "users", "add", "-c", str(first), "boss", "--role", "admin"], input=PASSWORD,
                             capture_output=True, text=True, env=env, timeout=60)
        assert add.returncode == 0, add.stderr
        port = _free_port()
        proc = subprocess.Popen([*AMR, "run", "-c", str(first), "--port", str(port)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, text=True, env=env)

        bearer = _until("the API answers", lambda: _token(port), 40)
        apply(store, load_config(_registry_file(tmp_path / "more.toml", database, simulator, ["SIM0001", "SIM0002"])))
        _until("the API serves SIM0002", lambda: _serials_seen(port, bearer) == {"SIM0001", "SIM0002"}, 10)

        def polled_now() -> bool:  # «poll now» goes through the collector of the new registry
            status, body = _get(port, "/api/v1/dispatch/meters/SIM0002/poll", bearer, body={})
            return status == 200 and body["result"]["ok"] is True

        _until("SIM0002 polled on demand", polled_now, 15)
        assert proc.poll() is None
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
        store.close()
