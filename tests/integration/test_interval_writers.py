"""Real processes writing the same meters' intervals at once on PostgreSQL: each interval ends up
stored once, and every value sent is accepted, a duplicate, or refused as a conflict and kept."""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

import amr
from amr.config import DatabaseConfig
from amr.store import Store
from tests.api.live import fresh_database
from tests.support.builders import meters

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

BASE = datetime(2026, 3, 1, tzinfo=UTC)
SERIALS = [f"C{i}" for i in range(6)]
SLOTS = 100  # half-hours per meter
HALF = timedelta(minutes=30)
ROOT = str(Path(amr.__file__).resolve().parent.parent)


@pytest.fixture
def database() -> Iterator[str]:
    with fresh_database() as url:
        yield url


PHASES = ((0, 0), (0, 1), (SLOTS, 1))
"""(first slot, energy offset) of each phase; the second writer adds 1 to the offset of phases 2 and 3."""


def _writer(url: str, root: str, n: int, barrier: Any, out: Any) -> None:
    """Writer `n`: every meter's A+ intervals of each phase in batches of 50, as a profile reader does,
    the second writer in reverse order; the writers start each phase together."""
    sys.path.insert(0, root)
    from amr.core.domain import Channel
    from amr.core.intervals import IntervalSource, IntervalStatus, IntervalValue
    from amr.store.intervals import IntervalWriteResult

    store = Store.open(DatabaseConfig(url=url), upgrade=False)
    for phase, (first, offset) in enumerate(PHASES):
        energy = offset + (n if phase else 0)
        values = [
            IntervalValue(
                serial,
                Channel.A_PLUS,
                BASE + slot * HALF,
                HALF,
                slot + energy,
                IntervalStatus.MEASURED,
                IntervalSource.PROFILE,
                BASE,
            )
            for slot in range(first, first + SLOTS)
            for serial in SERIALS
        ]
        if n:
            values.reverse()
        total = IntervalWriteResult()
        barrier.wait(60)
        for i in range(0, len(values), 50):
            total.add(store.write_intervals(values[i : i + 50]))
        out.put((phase, total.counts()))
    store.close()


def _run(url: str) -> list[list[dict[str, int]]]:
    """Counts of each phase, one per writer."""
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(2)
    out = spawn.Queue()
    workers = [spawn.Process(target=_writer, args=(url, ROOT, n, barrier, out)) for n in range(2)]
    for worker in workers:
        worker.start()
    phases: list[list[dict[str, int]]] = [[] for _ in PHASES]
    for _ in range(len(PHASES) * len(workers)):
        phase, counts = out.get(timeout=120)
        phases[phase].append(counts)
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    return phases


def test_two_processes_writing_the_same_intervals_store_each_once(database: str) -> None:
    store = Store.open(DatabaseConfig(url=database))
    store.sync_meters(meters(*({"serial": s, "point": s} for s in SERIALS), ids=False))
    store.close()
    total = len(SERIALS) * SLOTS

    same, later, racing = _run(database)
    # phase 1, the same values: one writer accepts each, the other finds a duplicate
    assert sum(c["accepted"] for c in same) == total
    assert sum(c["duplicate"] for c in same) == total
    assert all(c["refused"] == 0 and c["replaced"] == 0 for c in same)

    # phase 2, both differ from what is stored: every value a conflict, kept once
    assert all(c == {"accepted": 0, "duplicate": 0, "replaced": 0, "refused": total} for c in later)

    # phase 3, new intervals, two measured values each: the first in stays
    assert sum(c["accepted"] for c in racing) == total and sum(c["refused"] for c in racing) == total
    with psycopg.connect(database) as conn:
        rows = conn.execute("SELECT count(*), count(DISTINCT (meter_id, start)) FROM intervals").fetchone()
        first = conn.execute(f"SELECT sum(wh) FROM intervals WHERE start < '{BASE + SLOTS * HALF}'").fetchone()
        kept = conn.execute("SELECT kind, count(*) FROM interval_revisions GROUP BY kind").fetchall()
        # each racing interval holds one writer's value, and the other's is kept as refused
        pairs = conn.execute(
            "SELECT count(*) FROM intervals i JOIN interval_revisions r ON r.meter_id = i.meter_id "
            "AND r.start = i.start AND r.wh <> i.wh AND abs(r.wh - i.wh) = 1 AND i.start >= %s",
            (BASE + SLOTS * HALF,),
        ).fetchone()
    assert rows == (2 * total, 2 * total)
    assert first == (len(SERIALS) * sum(range(SLOTS)),)
    assert kept == [("refused", 3 * total)]
    assert pairs == (total,)
