"""Three `amr collect` processes share four Modbus TCP leases on one PostgreSQL; one is killed mid-sweep.

Four simulator processes (6 meters each, every answer 0.1 s late, so a device's sweep takes
0.6 s); buses: ``line-a`` and ``line-b`` (a gateway each), ``spread`` (two gateways, leased in
two groups). Polls every 6 s, lease TTL 2 s. After the three collectors have shared the leases,
the holder of ``line-a`` gets SIGKILL 0.3 s into a slot: the others take its leases over within
2 × TTL and poll, in that same slot, the meters it had not written. Then every meter has exactly
one reading in every slot, before, during and after the takeover.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from tests.api.live import fresh_database

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

EVERY = 6.0
TTL = 2.0
METERS = 6
DELAY = 0.1


@pytest.fixture
def database() -> Iterator[str]:
    """A database of its own: the collectors' processes migrate it."""
    with fresh_database() as url:
        yield url


def _simulator(prefix: str) -> tuple[subprocess.Popen[str], str]:
    faults = [arg for i in range(1, METERS + 1) for arg in ("--fault", f"{i}:delay={DELAY}")]
    process = subprocess.Popen(
        [sys.executable, "-m", "amr", "sim", "modbus-tcp", "--meters", str(METERS), "--prefix", prefix,
         "--tariffs", "1", "--port", "0", *faults, "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert " at " in line, process.stderr.read() if process.stderr else line
    return process, line.split(" at ")[1].split(";")[0]


def _config(url: str, ports: dict[str, str], index: int, tmp_path: Path) -> Path:
    host_port = {p: u.removeprefix("tcp://") for p, u in ports.items()}
    lines = [
        f'[database]\nurl = "{url}"\n',
        f'[collector]\nbuffer = "buffer-{index}.sqlite"\nname = "c{index}"\nlease_ttl = "{TTL}s"\n'
        f'lease_group = {METERS}\nwrite_interval = "100ms"\n',
    ]
    buses = {"line-a": ports["A"], "line-b": ports["B"], "spread": ports["C"]}
    for name, bus_url in buses.items():
        lines.append(
            f'[[buses]]\nname = "{name}"\nkind = "modbus-tcp"\nurl = "{bus_url}"\ntimeout = "1s"\n'
            f'schedule = "{EVERY:g}s"\n'
        )
    members = {"A": ("line-a", None), "B": ("line-b", None), "C": ("spread", None), "D": ("spread", host_port["D"])}
    for prefix, (bus, device) in members.items():
        for i in range(1, METERS + 1):
            address = f'"{device}/{i}"' if device else str(i)
            lines.append(
                f'[[meters]]\nserial = "{prefix}{i:04d}"\nbus = "{bus}"\naddress = {address}\n'
                'profile = "eastron-sdm630"\n'
            )
    path = tmp_path / f"collector-{index}.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _collect(config: Path, tmp_path: Path, index: int) -> subprocess.Popen[bytes]:
    with (tmp_path / f"collector-{index}.log").open("wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "amr", "collect", "-c", str(config), "--log-level", "info"],
            stdout=log, stderr=subprocess.STDOUT,
        )


def _holders(url: str) -> dict[str, str]:
    """Lease → the collector name holding it now (unexpired)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT lease, owner FROM bus_leases WHERE owner IS NOT NULL AND expires > now()")
        return {lease: owner.split(":")[0] for lease, owner in rows}


def _wait(what: str, check: Callable[[], bool], timeout: float, logs: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except psycopg.Error:
            pass  # the schema is not there yet
        time.sleep(0.2)
    text = "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(logs.glob("collector-*.log")))
    pytest.fail(f"{what} within {timeout} s\n{text}")


def _next_slot(after: float) -> float:
    return (int(after // EVERY) + 1) * EVERY


def test_a_killed_collectors_buses_are_taken_over_and_every_slot_is_polled_once(
    database: str, tmp_path: Path
) -> None:
    sims = {prefix: _simulator(prefix) for prefix in "ABCD"}
    collectors: dict[str, subprocess.Popen[bytes]] = {}
    try:
        ports = {prefix: url for prefix, (_, url) in sims.items()}
        configs = {f"c{i}": _config(database, ports, i, tmp_path) for i in (1, 2, 3)}
        for i, (name, config) in enumerate(configs.items(), 1):
            collectors[name] = _collect(config, tmp_path, i)

        def shared() -> bool:
            holders = _holders(database)
            return len(holders) == 4 and set(holders.values()) == {"c1", "c2", "c3"}

        _wait("the three collectors did not share the four leases", shared, 40, tmp_path)
        # the first slot polled entirely while shared: one slot on, so a lease taken just before the
        # shares settled has had its first poll (on a loaded machine, its bus opening) behind it
        first = _next_slot(time.time()) + EVERY
        kill_at = _next_slot(first + 0.5) + 0.3  # 0.3 s into the following slot: mid-sweep
        time.sleep(max(0.0, kill_at - time.time()))
        victim = _holders(database)["line-a"]
        collectors[victim].send_signal(signal.SIGKILL)
        killed = time.time()
        collectors[victim].wait(10)

        def taken() -> bool:
            holders = _holders(database)
            return len(holders) == 4 and victim not in holders.values()

        _wait("the killed collector's leases were not taken over", taken, 2 * TTL + 2, tmp_path)
        takeover = time.time() - killed
        last = _next_slot(kill_at) + EVERY  # a whole slot after the takeover
        time.sleep(max(0.0, last + 2.0 - time.time()))  # that slot's sweep done and written
        status = subprocess.run(
            [sys.executable, "-m", "amr", "collect", "-c", str(configs["c1"]), "--status", "--json"],
            capture_output=True, text=True, timeout=60, check=True,
        )
    finally:
        for process in collectors.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in collectors.values():
            process.wait(30)
        for process, _ in sims.values():
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=10)

    survivors = [name for name in collectors if name != victim]
    assert all(collectors[name].returncode == 0 for name in survivors)
    assert takeover < 2 * TTL + 1.0  # the TTL, then at most a round; 1 s of room for a loaded machine

    report = json.loads(status.stdout)
    alive = {c["id"].split(":")[0] for c in report["collectors"] if c["alive"]}
    assert alive == set(survivors)
    assert {lease["holder"].split(":")[0] for lease in report["leases"]} <= set(survivors)
    assert len(report["leases"]) == 4

    start, end = datetime.fromtimestamp(first, UTC), datetime.fromtimestamp(last + EVERY, UTC)
    with psycopg.connect(database, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT m.serial, r.ts FROM readings r JOIN meters m ON m.id = r.meter_id "
            "WHERE r.tariff = 0 AND r.ts >= %s AND r.ts < %s", (start, end),
        ).fetchall()
    slots = int((last + EVERY - first) // EVERY)
    per_slot = Counter((serial, int((ts.timestamp() - first) // EVERY)) for serial, ts in rows)
    serials = [f"{prefix}{i:04d}" for prefix in "ABCD" for i in range(1, METERS + 1)]
    wrong = {
        (serial, datetime.fromtimestamp(first, UTC) + timedelta(seconds=slot * EVERY)): per_slot[(serial, slot)]
        for serial in serials for slot in range(slots) if per_slot[(serial, slot)] != 1
    }
    assert not wrong, f"readings per meter and slot other than one (killed {victim} at {kill_at}): {wrong}"
    logs = (tmp_path / f"collector-{survivors[0][1]}.log").read_text() + (
        tmp_path / f"collector-{survivors[1][1]}.log").read_text()
    assert "took over" in logs
    assert os.path.exists(tmp_path / "buffer-1.sqlite")
