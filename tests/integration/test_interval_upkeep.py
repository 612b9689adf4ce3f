"""The collector derives intervals of a Modbus meter from its registers and estimates the gaps by itself
(``[intervals] estimate_every``), on a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from amr.app import App
from amr.collector.collector import Collector
from amr.collector.interval_upkeep import IntervalUpkeep
from amr.config import config_from_dict
from amr.core.domain import CHANNELS, Channel, Source
from amr.core.intervals import IntervalSource, IntervalStatus, IntervalValue, floor_interval
from amr.store.backfill_state import BackfillState
from simulators.modbus import ModbusTcpSimulator
from simulators.model import VirtualMeter
from tests.integration.test_cli import run as cli
from tests.integration.test_collector import run, toml
from tests.support.builders import reading

HALF = timedelta(minutes=30)
SERIAL = "MB-77"


@pytest.fixture
def database(empty_database: str) -> str:
    """An empty SQLite or PostgreSQL database (`tests.conftest.empty_database`)."""
    return empty_database


def app_for(database: str, tmp_path: Path, **intervals: str) -> App:
    config = config_from_dict(
        {
            "database": {"url": database},
            "site": {"timezone": "Europe/Moscow"},
            # a bus nobody answers on, polled once a year: only what is stored matters here
            "buses": [{"name": "mb", "kind": "modbus-tcp", "url": "tcp://127.0.0.1:9", "schedule": "0 3 1 1 *"}],
            "meters": [{"serial": SERIAL, "bus": "mb", "address": 7, "profile": "eastron-sdm630", "ct_ratio": 40}],
            "intervals": intervals,
            "collector": {"buffer": str(tmp_path / "buffer.sqlite")},
        },
        environ={},
        file=tmp_path / "amr.toml",
    )
    return App.open(config)


def test_the_collector_derives_and_estimates_a_register_meters_intervals(database: str, tmp_path: Path) -> None:
    e0 = floor_interval(datetime.now(UTC)) - timedelta(hours=3)
    # polls near :00 and :30, and one missed at e0 + 60 min (kWh at the primary side, as the collector stores them)
    polls = [(e0, "100.000"), (e0 + HALF + timedelta(seconds=10), "101.250"), (e0 + 3 * HALF, "103.000"),
             (e0 + 4 * HALF - timedelta(seconds=20), "103.700")]  # fmt: skip
    with app_for(database, tmp_path, estimate_every="1h") as app:
        result = app.ingestor.submit([reading(SERIAL, at, kwh, source=Source.MODBUS) for at, kwh in polls])
        assert len(result.accepted) == len(polls)

        async def scenario() -> None:
            collector = Collector(app)
            await collector.start()
            try:
                deadline = time.monotonic() + 15
                while len(await asyncio.to_thread(app.store.intervals, SERIAL)) < 4 and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
            finally:
                await collector.stop()

        run(scenario())
        stored = app.store.intervals(SERIAL, channels=[Channel.A_PLUS])
        assert [(v.start - e0, v.wh, v.source, v.status) for v in stored] == [
            (timedelta(0), 1_250, IntervalSource.DERIVED, IntervalStatus.MEASURED),
            # the missed poll: two half-hours split evenly from the readings around them
            (HALF, 875, IntervalSource.ESTIMATED, IntervalStatus.ESTIMATED),
            (2 * HALF, 875, IntervalSource.ESTIMATED, IntervalStatus.ESTIMATED),
            (3 * HALF, 700, IntervalSource.DERIVED, IntervalStatus.MEASURED),
        ]
        assert {v.method for v in stored} == {"registers", "linear"}


def test_without_estimate_every_the_collector_leaves_intervals_alone(tmp_path: Path) -> None:
    e0 = floor_interval(datetime.now(UTC)) - timedelta(hours=3)
    with app_for(f"sqlite:///{tmp_path / 'amr.sqlite'}", tmp_path) as app:
        app.ingestor.submit([reading(SERIAL, e0 + i * HALF, f"{100 + i}", source=Source.MODBUS) for i in range(4)])

        async def scenario() -> None:
            collector = Collector(app)
            await collector.start()
            await asyncio.sleep(0.5)
            await collector.stop()

        run(scenario())
        assert app.store.intervals(SERIAL) == []


def test_a_profile_meter_is_estimated_only_where_backfill_has_been(tmp_path: Path) -> None:
    """Gaps before back-fill's position (the meter had no record) are estimated; after it, left to back-fill."""
    t0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
    config = config_from_dict(
        {
            "database": {"url": f"sqlite:///{tmp_path / 'amr.sqlite'}"},
            "buses": [{"name": "line", "kind": "mercury230", "url": "/dev/null"}],
            "meters": [{"serial": "M230", "bus": "line", "address": 5}],
            "intervals": {"estimate_every": "1h", "estimate_back": "1d"},
            "collector": {"buffer": str(tmp_path / "buffer.sqlite")},
        },
        environ={},
    )
    with App.open(config) as app:
        app.ingestor.submit([reading("M230", t0 + i * HALF, f"{10 + i}", source=Source.SERIAL) for i in range(9)])
        received = t0 + timedelta(hours=5)
        held = [i for i in range(8) if i not in (2, 6)]  # no record of 07:00 (power off); 09:00 not read yet
        app.store.write_intervals([
            IntervalValue("M230", Channel.A_PLUS, t0 + i * HALF, HALF, 1_000, IntervalStatus.MEASURED,
                          IntervalSource.PROFILE, received)
            for i in held
        ])  # fmt: skip
        state = BackfillState(app.store)
        state.begin("M230", CHANNELS, t0, received)
        state.advance("M230", CHANNELS, t0, t0 + 5 * HALF, received)
        upkeep = IntervalUpkeep(Collector(app), clock=lambda: received)
        report = upkeep.run_once()
        assert report.estimated == 1 and report.derived == 0
        stored = {v.start: v for v in app.store.intervals("M230", channels=[Channel.A_PLUS])}
        assert stored[t0 + 2 * HALF].source is IntervalSource.ESTIMATED and stored[t0 + 2 * HALF].wh == 1_000
        assert t0 + 6 * HALF not in stored


def test_a_poll_of_a_modbus_meter_derives_the_intervals_settled_since(tmp_path: Path) -> None:
    """A real poll over Modbus TCP: the half-hour whose edges were polled before is derived right after it."""
    e0 = floor_interval(datetime.now(UTC)) - timedelta(hours=1)
    virtual = VirtualMeter(SERIAL, address=7, start=e0 - timedelta(days=1))

    async def scenario() -> None:
        async with ModbusTcpSimulator([virtual]) as sim:
            config = config_from_dict(
                {
                    "database": {"url": f"sqlite:///{tmp_path / 'amr.sqlite'}"},
                    "buses": [{"name": "mb", "kind": "modbus-tcp", "url": sim.url, "timeout": "1s"}],
                    "meters": [{"serial": SERIAL, "bus": "mb", "address": 7, "profile": "eastron-sdm630"}],
                    "collector": {"buffer": str(tmp_path / "buffer.sqlite")},
                },
                environ={},
            )
            with App.open(config) as app:
                app.ingestor.submit([reading(SERIAL, e0, "1.000", source=Source.MODBUS),
                                     reading(SERIAL, e0 + HALF + timedelta(seconds=25), "1.400", source=Source.MODBUS)])
                collector = Collector(app)
                await collector.start(schedule=False)
                try:
                    result = await collector.poll_now(SERIAL)
                    assert result.ok, result.error
                    deadline = time.monotonic() + 10
                    while not await asyncio.to_thread(app.store.intervals, SERIAL) and time.monotonic() < deadline:
                        await asyncio.sleep(0.05)
                finally:
                    await collector.stop()
                stored = app.store.intervals(SERIAL)
                # the poll's own reading is no edge yet: [e0 + 30 min, e0 + 60 min) waits for a later poll
                assert [(v.channel, v.start, v.wh, v.source) for v in stored] == [
                    (Channel.A_PLUS, e0, 400, IntervalSource.DERIVED)
                ]

    run(scenario())


def test_amr_estimate_derives_estimates_and_sum_checks_a_modbus_meter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    e0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)  # 09:00 in Moscow
    data = {
        "database": {"url": f"sqlite:///{tmp_path / 'amr.sqlite'}"},
        "site": {"timezone": "Europe/Moscow"},
        "buses": [{"name": "mb", "kind": "modbus-tcp", "url": "tcp://127.0.0.1:9"}],
        "meters": [{"serial": SERIAL, "bus": "mb", "address": 7, "profile": "eastron-sdm630"}],
    }
    path = tmp_path / "amr.toml"
    path.write_text(toml(data), encoding="utf-8")
    with App.open(path) as app:
        app.ingestor.submit([reading(SERIAL, e0 + i * HALF, kwh, source=Source.MODBUS)
                             for i, kwh in ((0, "10"), (1, "10.5"), (3, "11.5"), (4, "12"))])  # fmt: skip
    code, out, _ = cli(capsys, "estimate", "-c", str(path), "--from", "2026-03-02", "--to", "2026-03-02", "--json")
    assert code == 0
    [report] = json.loads(out)
    assert (report["meter"], report["derived"], report["accepted"], report["sum_mismatches"]) == (SERIAL, 2, 2, 0)
    with App.open(path) as app:
        stored = app.store.intervals(SERIAL, channels=[Channel.A_PLUS])
    assert [(v.start - e0, v.wh, v.source.value) for v in stored] == [
        (timedelta(0), 500, "derived"), (HALF, 500, "estimated"), (2 * HALF, 500, "estimated"),
        (3 * HALF, 500, "derived"),
    ]  # fmt: skip
