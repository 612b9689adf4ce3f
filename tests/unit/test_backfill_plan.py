"""The back-fill plan: where reading starts, what is declared lost, the chunks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from amr.collector.backfill import plan
from amr.core.domain import CHANNELS
from amr.errors import InputError
from amr.store.backfill_state import ChannelProgress

NOW = datetime(2026, 3, 1, 12, 10, tzinfo=UTC)
HALF = timedelta(minutes=30)
DEPTH = 4096 * HALF


def progress(until: datetime) -> dict:  # type: ignore[type-arg]
    return {c: ChannelProgress("M", c, until, None, None, 0, None, None, NOW) for c in CHANNELS}


def test_a_new_meter_reads_its_whole_memory_and_loses_nothing() -> None:
    fresh = plan("M", None, now=NOW, depth=DEPTH, chunk=timedelta(days=30))
    assert fresh.lost is None
    assert fresh.chunks[0][0] == datetime(2026, 3, 1, 12, 0, tzinfo=UTC) - 4095 * HALF  # the oldest record held
    assert fresh.chunks[-1][1] == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # not the running interval
    assert all(b - a <= timedelta(days=30) for a, b in fresh.chunks)
    assert [a for a, _ in fresh.chunks[1:]] == [b for _, b in fresh.chunks[:-1]]  # contiguous, oldest first
    short = plan("M", None, now=NOW, depth=DEPTH, chunk=timedelta(hours=12), first=timedelta(days=1))
    assert short.chunks[0][0] == datetime(2026, 2, 28, 12, 0, tzinfo=UTC) and len(short.chunks) == 2
    installed = plan("M", None, now=NOW, depth=DEPTH, chunk=timedelta(hours=12), installed=NOW - timedelta(hours=3))
    assert installed.chunks == [(datetime(2026, 3, 1, 9, 0, tzinfo=UTC), datetime(2026, 3, 1, 12, 0, tzinfo=UTC))]


def test_what_the_memory_no_longer_holds_is_lost_once() -> None:
    read_until = datetime(2025, 11, 21, 12, 0, tzinfo=UTC)  # 100 days back
    behind = plan("M", progress(read_until), now=NOW, depth=DEPTH, chunk=timedelta(days=1))
    held_from = datetime(2026, 3, 1, 12, 0, tzinfo=UTC) - 4095 * HALF
    assert behind.lost == (read_until, held_from)
    assert behind.chunks[0][0] == held_from
    aligned_now = NOW.replace(minute=0)
    exact = plan("M", progress(aligned_now - DEPTH), now=aligned_now, depth=DEPTH, chunk=timedelta(days=1))
    assert exact.lost == (aligned_now - DEPTH, aligned_now - DEPTH + HALF)  # that interval is overwritten already
    hour_ago = datetime(2026, 3, 1, 11, 0, tzinfo=UTC)
    current = plan("M", progress(hour_ago), now=NOW, depth=DEPTH, chunk=timedelta(days=1))
    assert current.lost is None and current.chunks == [(hour_ago, datetime(2026, 3, 1, 12, 0, tzinfo=UTC))]


def test_explicit_range_and_bad_chunk() -> None:
    again = plan("M", progress(NOW), now=NOW, depth=DEPTH, chunk=timedelta(hours=6),
                 start=NOW - timedelta(days=1), end=NOW - timedelta(hours=12))  # fmt: skip
    assert again.chunks == [
        (datetime(2026, 2, 28, 12, 0, tzinfo=UTC), datetime(2026, 2, 28, 18, 0, tzinfo=UTC)),
        (datetime(2026, 2, 28, 18, 0, tzinfo=UTC), datetime(2026, 3, 1, 0, 0, tzinfo=UTC)),
    ]
    with pytest.raises(InputError, match="at least one interval"):
        plan("M", None, now=NOW, depth=DEPTH, chunk=timedelta(minutes=10))
