"""Nothing lost across a takeover: a collector's buffer is replayed when it restarts on its machine.

Real processes on PostgreSQL. Collector c1 reaches the database through a TCP proxy on loopback
and polls six simulated Modbus TCP meters (one lease) every 2 s. The proxy is cut: c1 keeps
polling the lease it held, into its SQLite buffer. c1 gets SIGKILL with readings of several
slots in that buffer, 1.4 s into a slot (its poll of the slot made and buffered). Collector c2,
started once that slot is over (a collector running beside c1 during the cut would take the
lease over while c1, cut off, polls on into its buffer: both read the meters for a while, by
design — losing readings is worse), takes the lease over and polls the slot it finds. The
proxy comes back and c1 is started again on the same buffer: it replays it while c2 keeps the
lease. Then every buffered reading is in the store exactly once, with its values, none refused;
no meter has two readings in one slot; every slot of c1's, the cut's included, has its reading.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from tests.api.live import fresh_database
from tests.integration.test_collector_forward import Proxy, through
from tests.integration.test_shared_collectors import METERS, _collect, _holders, _simulator, _wait

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

EVERY = 2.0
TTL = 3.0
SERIALS = [f"R{i:04d}" for i in range(1, METERS + 1)]
CHANNELS = ("a_plus", "a_minus", "r_plus", "r_minus")


@contextmanager
def _proxy_in_thread(url: str) -> Iterator[tuple[Proxy, Any]]:
    """A `Proxy` to the database of `url`, served by an event loop of its own thread; (proxy, run)
    where ``run(proxy.cut())`` runs a coroutine of it on that loop."""
    target = urlsplit(url)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def run(coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, loop).result(10)

    proxy = Proxy(target.hostname or "127.0.0.1", target.port or 5432)
    run(proxy.start())
    try:
        yield proxy, run
    finally:
        if proxy._server is not None:
            run(proxy.cut())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def _config(path: Path, url: str, sim_url: str, name: str) -> Path:
    lines = [
        f'[database]\nurl = "{url}"\n',
        f'[collector]\nbuffer = "buffer-{name}.sqlite"\nname = "{name}"\nlease_ttl = "{TTL:g}s"\n'
        'write_interval = "100ms"\nstore_retry = "200ms"\nstore_retry_max = "500ms"\n',
        f'[[buses]]\nname = "line"\nkind = "modbus-tcp"\nurl = "{sim_url}"\ntimeout = "1s"\nschedule = "{EVERY:g}s"\n',
    ]
    for address, serial in enumerate(SERIALS, 1):
        lines.append(
            f'[[meters]]\nserial = "{serial}"\nbus = "line"\naddress = {address}\nprofile = "eastron-sdm630"\n'
        )
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _buffered(path: Path) -> list[dict[str, Any]]:
    """The readings waiting in a collector's buffer file."""
    with sqlite3.connect(path) as conn:
        return [json.loads(body) for (body,) in conn.execute("SELECT body FROM pending ORDER BY id")]


def _quarantined(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM quarantine").fetchone()[0])


def _readings(url: str) -> list[tuple[str, int, datetime, tuple[int | None, ...]]]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT m.serial, r.tariff, r.ts, r.a_plus, r.a_minus, r.r_plus, r.r_minus FROM readings r "
            "JOIN meters m ON m.id = r.meter_id"
        ).fetchall()
    return [(serial, tariff, ts, tuple(values)) for serial, tariff, ts, *values in rows]


def _slot(ts: float) -> int:
    return int(ts // EVERY)


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def test_a_killed_collectors_buffer_is_replayed_at_its_restart_once_and_no_slot_is_polled_twice(
    tmp_path: Path,
) -> None:
    sim, sim_url = _simulator("R")
    collectors: dict[str, subprocess.Popen[bytes]] = {}
    with fresh_database() as url, _proxy_in_thread(url) as (proxy, run):
        try:
            c1 = _config(tmp_path / "c1.toml", through(url, proxy.port), sim_url, "c1")
            c2 = _config(tmp_path / "c2.toml", url, sim_url, "c2")
            collectors["c1"] = _collect(c1, tmp_path, 1)

            def all_read() -> bool:
                return {serial for serial, *_ in _readings(url)} == set(SERIALS)

            _wait("c1 did not poll every meter", all_read, 40, tmp_path)
            assert _holders(url) == {"line": "c1"}
            first = _slot(time.time()) + 1  # the first slot c1 polls whole
            _sleep_until((first + 1) * EVERY + 0.9)  # c1's poll of that slot and the next written
            run(proxy.cut())
            cut = _slot(time.time())
            _sleep_until((cut + 3) * EVERY + 1.4)  # three slots more, polled into the buffer
            collectors["c1"].send_signal(signal.SIGKILL)
            collectors["c1"].wait(10)
            killed = _slot(time.time())
            buffered = _buffered(tmp_path / "buffer-c1.sqlite")
            _sleep_until((killed + 1) * EVERY + 0.1)
            collectors["c2"] = _collect(c2, tmp_path, 2)
            _wait("c2 did not take the lease over", lambda: _holders(url) == {"line": "c2"}, 30, tmp_path)
            run(proxy.start())  # the database is back for c1's machine
            collectors["c1 again"] = _collect(c1, tmp_path, 3)
            _wait("c1 did not replay its buffer", lambda: not _buffered(tmp_path / "buffer-c1.sqlite"), 30, tmp_path)
            assert _holders(url) == {"line": "c2"}  # c1 came back beside c2: a difference of one moves nothing
            last = _slot(time.time()) + 2
            _sleep_until(last * EVERY + 1.5)  # c2's polls of two more slots written
        finally:
            for process in collectors.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in collectors.values():
                process.wait(30)
            sim.terminate()
            sim.communicate(timeout=10)
        stored = _readings(url)
        with psycopg.connect(url, autocommit=True) as conn:
            refused = conn.execute("SELECT meter_serial, ts, reasons FROM rejected_readings").fetchall()

    assert collectors["c2"].returncode == 0 and collectors["c1 again"].returncode == 0
    # c1 buffered its polls of the slots of the cut: six meters, tariff 0 at least, each slot
    assert len({(r["meter"], r["ts"]) for r in buffered}) >= METERS * 3
    assert _quarantined(tmp_path / "buffer-c1.sqlite") == 0
    assert refused == []
    by_key = Counter((serial, tariff, ts) for serial, tariff, ts, _ in stored)
    values = {(serial, tariff, ts): v for serial, tariff, ts, v in stored}
    for reading in buffered:
        key = (reading["meter"], reading["tariff"], datetime.fromisoformat(reading["ts"]).astimezone(UTC))
        assert by_key[key] == 1, key  # stored, once
        assert values[key] == tuple(reading["values"].get(channel) for channel in CHANNELS)

    per_slot = Counter((serial, _slot(ts.timestamp())) for serial, tariff, ts, _ in stored if tariff == 0)
    twice = {key: n for key, n in per_slot.items() if n > 1}
    assert not twice, f"meters read more than once in a slot: {twice}"
    missing = [(s, slot) for s in SERIALS for slot in range(first, killed + 1) if not per_slot[(s, slot)]]
    assert not missing, f"slots of c1 (cut from {cut}, killed in {killed}) without their reading: {missing}"
    late = [(serial, slot) for serial in SERIALS for slot in (last - 1, last) if not per_slot[(serial, slot)]]
    assert not late, f"slots after the takeover without their reading: {late}"
