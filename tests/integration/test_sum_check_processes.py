"""Two real processes keeping one meter's sum check at once on PostgreSQL: they take turns (no key
taken twice, no error) and what is kept is the one true mismatch."""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import amr
from amr.config import DatabaseConfig
from amr.core.domain import Channel, Source
from amr.core.intervals import IntervalSource, IntervalStatus, IntervalValue
from amr.ingest.ingestor import Ingestor
from amr.store import Store
from amr.store.sum_checks import kept_mismatches
from tests.api.live import fresh_database
from tests.support.builders import meters, reading

pytestmark = [pytest.mark.postgres]

BASE = datetime(2026, 3, 1, tzinfo=UTC)
HALF = timedelta(minutes=30)
ROUNDS = 15
ROOT = str(Path(amr.__file__).resolve().parent.parent)


@pytest.fixture
def database() -> Iterator[str]:
    with fresh_database() as url:
        yield url


def _checker(url: str, root: str, barrier: Any, out: Any) -> None:
    sys.path.insert(0, root)
    from amr.store.sum_checks import record_sum_check
    from tests.support.builders import meters

    store = Store.open(DatabaseConfig(url=url), upgrade=False)
    [meter] = store.sync_meters(meters({"serial": "S1"}, ids=False))
    barrier.wait(60)
    found = [len(record_sum_check(store, meter, BASE, BASE + timedelta(days=1), BASE)) for _ in range(ROUNDS)]
    out.put(found)
    store.close()


def test_two_processes_keeping_one_meters_sum_check_take_turns(database: str) -> None:
    store = Store.open(DatabaseConfig(url=database))
    stored = store.sync_meters(meters({"serial": "S1"}, ids=False))
    # 8 half-hours of 100 Wh; the registers say 400 Wh for the first two hours, then 900 (a mismatch)
    store.write_intervals([
        IntervalValue("S1", Channel.A_PLUS, BASE + i * HALF, HALF, 100, IntervalStatus.MEASURED,
                      IntervalSource.PROFILE, BASE)
        for i in range(8)
    ])  # fmt: skip
    Ingestor(store, stored).submit(
        [reading("S1", BASE + i * 4 * HALF, kwh, source=Source.MODBUS) for i, kwh in enumerate(("1", "1.4", "2.3"))]
    )
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(2)
    out = spawn.Queue()
    workers = [spawn.Process(target=_checker, args=(database, ROOT, barrier, out)) for _ in range(2)]
    for worker in workers:
        worker.start()
    results = [out.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert results == [[1] * ROUNDS, [1] * ROUNDS]
    [kept] = kept_mismatches(store)
    assert (kept.mismatch.start, kept.mismatch.register_wh, kept.mismatch.intervals_wh) == (BASE + 4 * HALF, 900, 400)
    store.close()
