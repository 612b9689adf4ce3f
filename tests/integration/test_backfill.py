"""Back-fill from a simulated Mercury 230 on a real pty into a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from amr.app import App
from amr.collector.backfill import Backfill, ChunkDone
from amr.config import config_from_dict
from amr.core.domain import Channel
from amr.core.intervals import IntervalStatus
from amr.drivers.mercury230.driver import Mercury230Driver
from amr.store.backfill_state import BackfillState
from simulators.model import Faults, VirtualMeter
from simulators.profile_memory import ProfileMemory
from simulators.serial_meters import MercurySimulator

START = datetime(2026, 3, 1, 12, 10, tzinfo=UTC)
HALF = timedelta(minutes=30)
SERIAL = "41000021"


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def database(empty_database: str) -> str:
    """An empty SQLite or PostgreSQL database (`tests.conftest.empty_database`)."""
    return empty_database


def app_for(database: str, url: str, **backfill: Any) -> App:
    config = config_from_dict(
        {
            "database": {"url": database},
            "site": {"timezone": "Europe/Moscow"},
            "buses": [{"name": "line", "kind": "mercury230", "url": url, "timeout": "300ms", "frame_pause": "2ms"}],
            "meters": [{"serial": SERIAL, "bus": "line", "address": 21, "ct_ratio": 10}],
            "backfill": {"chunk": "6h", **backfill},
        },
        {},
    )
    return App.open(config)


async def scenario(database: str) -> None:
    clock = Clock()
    meter = VirtualMeter(SERIAL, address=21, start=START - timedelta(days=100))
    outage = (START + timedelta(hours=5, minutes=10), START + timedelta(hours=7, minutes=40))
    memory = ProfileMemory(meter, start=START - timedelta(days=100), outages=[outage])
    async with MercurySimulator([meter], clock=clock, line_speed=False, profiles={SERIAL: memory}) as sim:
        with app_for(database, sim.url, first="1d") as app:
            driver = Mercury230Driver(app.config.buses[0], tz=ZoneInfo("Europe/Moscow"))
            engine = Backfill(app, clock=clock)
            config = app.config.meters[0]
            seen: list[ChunkDone] = []
            # a new meter: the last day, in 6-hour chunks, oldest first
            report = await engine.run_meter(config, driver, progress=seen.append)
            assert report.error is None and report.lost is None
            assert [c.start for c in seen] == sorted(c.start for c in seen) and len(seen) == 4
            stored = app.store.intervals(SERIAL, channels=[Channel.A_PLUS])
            expected = [t for t in memory.times(clock.now)[:-1] if t >= START - timedelta(days=1, minutes=10)]
            assert [v.start for v in stored] == expected
            # exact, at the primary side: 1 Wh a pulse (constant 500) × CT 10
            assert [v.wh for v in stored] == [memory.pulses(t, clock.now)[Channel.A_PLUS] * 10 for t in expected]  # type: ignore[operator]
            # nothing missing: nothing read
            again = await engine.run_meter(config, driver)
            assert again.chunks == 0 and again.records == 0
            # the head-end was down 30 hours, the meter off for 2.5 of them: no gap but the meter's own
            clock.now = START + timedelta(hours=30)
            after = await engine.run_meter(config, driver)
            assert after.error is None and after.duplicate == 0
            stored = app.store.intervals(SERIAL, channels=[Channel.A_PLUS])
            held = [t for t in memory.times(clock.now)[:-1] if t >= START - timedelta(days=1, minutes=10)]
            assert [v.start for v in stored] == held
            assert len(held) == 108 - 4  # 54 hours, less 4 half-hours the meter had no power
            back = next(v for v in stored if v.start == START + timedelta(hours=7, minutes=30) - timedelta(minutes=10))
            assert back.status is IntervalStatus.INCOMPLETE
            progress = BackfillState(app.store).load()[SERIAL][Channel.A_PLUS]
            assert progress.read_until == START + timedelta(hours=30) - timedelta(minutes=10)
            # 90 days later: what the memory lost is reported once, the rest read
            clock.now = START + timedelta(days=90)
            late = await engine.run_meter(config, driver, end=START + timedelta(days=5))
            assert late.lost is not None and late.lost[0] == progress.read_until
            oldest = memory.times(clock.now)[0]
            assert late.lost[1] == oldest
            state = BackfillState(app.store).load()[SERIAL][Channel.A_PLUS]
            assert state.lost_until == oldest and state.read_until == START + timedelta(days=5) - timedelta(minutes=10)


def test_backfill_reads_what_is_missing_and_resumes(database: str) -> None:
    asyncio.run(asyncio.wait_for(scenario(database), 60))


async def lagging(database: str) -> None:
    clock = Clock()
    clock.now = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)  # just after :00 by our clock
    behind = Faults(clock_drift=timedelta(minutes=-2))
    meter = VirtualMeter(SERIAL, address=21, start=START - timedelta(days=3), faults=behind)
    memory = ProfileMemory(meter, start=START - timedelta(days=3))
    async with MercurySimulator([meter], clock=clock, line_speed=False, profiles={SERIAL: memory}) as sim:
        with app_for(database, sim.url, first="2h") as app:
            driver = Mercury230Driver(app.config.buses[0], tz=ZoneInfo("Europe/Moscow"))
            engine = Backfill(app, clock=clock)
            config = app.config.meters[0]
            await engine.run_meter(config, driver)
            # the meter's clock is 2 minutes behind: its 11:30 interval is still running, so it is not read yet
            progress = BackfillState(app.store).load()[SERIAL][Channel.A_PLUS]
            assert progress.read_until == datetime(2026, 3, 1, 11, 30, tzinfo=UTC)
            clock.now += timedelta(minutes=5)
            await engine.run_meter(config, driver)
            stored = app.store.intervals(SERIAL, channels=[Channel.A_PLUS])
            assert [v.start.strftime("%H:%M") for v in stored] == ["10:00", "10:30", "11:00", "11:30"]


def test_an_interval_the_meter_has_not_closed_is_read_later(tmp_path: Path) -> None:
    asyncio.run(asyncio.wait_for(lagging(f"sqlite:///{tmp_path / 'amr.sqlite'}"), 30))
