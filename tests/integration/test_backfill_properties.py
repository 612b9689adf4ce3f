"""Property: back-fill after any pattern of meter outages, head-end outages and failed reads, each
within the meter's memory depth, leaves no gap (every record the meter wrote since back-fill began
is stored) and reads no interval twice (no duplicate write). Real engine, real SQLite store, the
meter's memory as Mercury 230 bytes (`ProfileSession` over `ProfileMemory`, no line)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amr.app import App
from amr.collector.backfill import Backfill
from amr.config import MeterConfig, config_from_dict
from amr.core.domain import Channel
from amr.core.intervals import ProfileRecord, floor_interval
from amr.drivers.mercury230.profile import ProfileSession, to_profile_record
from amr.drivers.profiles import ProfileReader, ProfileRecords
from amr.errors import ReadTimeout
from amr.protocols import mercury230 as merc
from amr.protocols import mercury230_profile as prof
from simulators.model import VirtualMeter
from simulators.profile_memory import ProfileMemory

T0 = datetime(2026, 3, 1, tzinfo=UTC)
HALF = timedelta(minutes=30)
DEPTH = timedelta(days=4)  # a short memory, so that outages come near it
MSK = ZoneInfo("Europe/Moscow")
SERIALS = [f"P{i:03d}" for i in range(200)]


class MemoryReader(ProfileReader):
    """The meter's memory read through the Mercury session (bytes both ways); fails on chosen reads."""

    def __init__(self, memory: ProfileMemory, clock: list[datetime], failing: set[int]) -> None:
        self.memory, self.clock, self.failing, self.calls = memory, clock, failing, 0

    def memory_depth(self, meter: MeterConfig) -> timedelta:
        return DEPTH

    async def read_profile(self, meter: MeterConfig, start: datetime, end: datetime) -> list[ProfileRecord]:
        self.calls += 1
        if self.calls in self.failing:
            raise ReadTimeout("no answer within 0.5 s")
        now = self.clock[0]

        def exchange(request: bytes, expected: int) -> bytes:
            decoded = merc.decode_request(request)
            if isinstance(decoded, merc.ParameterRequest):
                return self.memory.last_record_answer(decoded.address, now)
            return self.memory.read_answer(decoded.address, prof.decode_read_request(request), now)

        if not self.memory.powered(now):
            raise ReadTimeout("no answer within 0.5 s")  # a meter without power is silent
        session = ProfileSession(exchange, 1, MSK)
        found = ProfileRecords(to_profile_record(r, self.memory.constant) for r in session.records(start, end))
        found.complete_until = session.newest
        return found


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    path: Path = tmp_path_factory.mktemp("backfill") / "amr.sqlite"
    config = config_from_dict(
        {
            "database": {"url": f"sqlite:///{path}"},
            "site": {"timezone": "Europe/Moscow"},
            "buses": [{"name": "line", "kind": "mercury230", "url": "/dev/null", "retries": 0}],  # failures end a turn
            "meters": [{"serial": s, "bus": "line", "address": i + 1} for i, s in enumerate(SERIALS)],
            "backfill": {"chunk": "10h", "first": "1d"},
        },
        {},
    )
    with App.open(config) as opened:
        yield opened


serials = itertools.count()
hours = st.integers(min_value=1, max_value=36)
outage = st.tuples(st.integers(min_value=0, max_value=60 * 12), st.integers(min_value=1, max_value=60))  # from, length


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    runs=st.lists(hours, min_size=1, max_size=4),  # hours between runs: the head-end was down meanwhile
    outages=st.lists(outage, max_size=4),  # the meter's own outages, in 5-minute steps from T0 - 1 day
    failing=st.sets(st.integers(min_value=1, max_value=12), max_size=3),  # reads that time out
)
def test_no_gap_and_no_duplicate(app: App, runs: list[int], outages: list[tuple[int, int]], failing: set[int]) -> None:
    serial = SERIALS[next(serials)]
    base = T0 - timedelta(days=1)
    off = [(base + timedelta(minutes=5 * a), base + timedelta(minutes=5 * (a + n))) for a, n in outages]
    meter = VirtualMeter(serial, address=1, start=base - timedelta(days=1))
    memory = ProfileMemory(meter, start=base - timedelta(days=1), outages=off)
    clock = [T0]
    reader = MemoryReader(memory, clock, failing)
    engine = Backfill(app, clock=lambda: clock[0])
    config = app.config.meters[SERIALS.index(serial)]
    begin = floor_interval(T0 - timedelta(days=1))

    async def turns() -> int:
        duplicates = 0
        # the runs, then one more once the meter has power again (a meter that is off answers nothing)
        back = max([up for _, up in off], default=T0)
        for gap in [0, *runs, None]:
            clock[0] += timedelta(hours=gap) if gap is not None else max(timedelta(0), back - clock[0] + HALF)
            for _ in range(12):  # a failed chunk is tried again on the next turn
                report = await engine.run_meter(config, reader)
                duplicates += report.duplicate
                assert report.lost is None  # every head-end outage is within the memory's depth
                if report.error is None:
                    break
        return duplicates

    assert asyncio.run(turns()) == 0  # no interval read twice
    stored = app.store.intervals(serial, channels=[Channel.A_PLUS])
    starts = [v.start for v in stored]
    assert len(starts) == len(set(starts))
    expected = [t for t in memory.times(clock[0])[:-1] if t >= begin]
    assert starts == expected  # no gap but the meter's own
