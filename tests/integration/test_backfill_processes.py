"""Two processes back-filling the same meters at once on PostgreSQL: every interval is stored once,
nothing is refused, and each meter's progress ends where the meter's memory does."""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

import amr
from tests.api.live import fresh_database

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

NOW = datetime(2026, 3, 1, 12, 10, tzinfo=UTC)
SERIALS = [f"D{i}" for i in range(4)]
ROOT = str(Path(amr.__file__).resolve().parent.parent)


@pytest.fixture
def database() -> Iterator[str]:
    with fresh_database() as url:
        yield url


def config_dict(url: str) -> dict[str, Any]:
    return {
        "database": {"url": url},
        "site": {"timezone": "Europe/Moscow"},
        "buses": [{"name": "line", "kind": "mercury230", "url": "/dev/null", "retries": 0}],
        "meters": [{"serial": s, "bus": "line", "address": i + 1} for i, s in enumerate(SERIALS)],
        "backfill": {"chunk": "3h", "first": "1d"},
    }


def _backfiller(url: str, root: str, n: int, barrier: Any, out: Any) -> None:
    """Process `n`: back-fill every meter (the second in reverse order) from its simulated memory."""
    sys.path.insert(0, root)
    from amr.app import App
    from amr.collector.backfill import Backfill
    from amr.config import config_from_dict
    from simulators.model import VirtualMeter
    from simulators.profile_memory import ProfileMemory
    from tests.integration.test_backfill_properties import MemoryReader

    with App.open(config_from_dict(config_dict(url), {})) as app:
        engine = Backfill(app, clock=lambda: NOW)
        meters = list(reversed(app.config.meters)) if n else list(app.config.meters)
        barrier.wait(60)
        errors, written = [], 0
        for meter in meters:
            virtual = VirtualMeter(meter.serial, address=1, start=NOW - timedelta(days=3))
            reader = MemoryReader(ProfileMemory(virtual, start=NOW - timedelta(days=3)), [NOW], set())
            report = asyncio.run(engine.run_meter(meter, reader))
            errors.append(report.error)
            written += report.written
        out.put((n, errors, written))


def test_two_processes_backfill_the_same_meters(database: str) -> None:
    from amr.app import App
    from amr.config import config_from_dict

    App.open(config_from_dict(config_dict(database), {})).close()  # the schema and the meters
    spawn = multiprocessing.get_context("spawn")
    barrier, out = spawn.Barrier(2), spawn.Queue()
    workers = [spawn.Process(target=_backfiller, args=(database, ROOT, n, barrier, out)) for n in range(2)]
    for worker in workers:
        worker.start()
    results = [out.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert all(error is None for _, errors, _ in results for error in errors)
    per_meter = 48 * 2  # 12:00 yesterday .. 11:30 today, A+ and R+ (A- and R- are zero: stored too)
    with psycopg.connect(database) as conn:
        rows = conn.execute("SELECT count(*), count(DISTINCT (meter_id, channel, start)) FROM intervals").fetchone()
        refused = conn.execute("SELECT count(*) FROM interval_revisions").fetchone()
        until = conn.execute("SELECT DISTINCT read_until FROM backfill_state").fetchall()
    assert rows is not None and rows[0] == rows[1] == len(SERIALS) * per_meter * 2
    assert sum(written for _, _, written in results) == rows[0]  # each value written by one of the two
    assert refused == (0,)
    assert until == [(datetime(2026, 3, 1, 12, 0, tzinfo=UTC),)]
