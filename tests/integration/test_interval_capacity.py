"""Intervals above a meter's capacity, arriving by back-fill (simulated Mercury 230 on a real pty) and by
an MQTT gateway (real Mosquitto), are refused with `above_capacity` and kept with their reason; the
others are stored."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from amr.app import App
from amr.collector.backfill import Backfill
from amr.config import config_from_dict
from amr.core.domain import Channel
from amr.drivers.mercury230.driver import Mercury230Driver
from simulators.model import VirtualMeter
from simulators.profile_memory import ProfileMemory
from simulators.serial_meters import MercurySimulator
from tests.integration.test_backfill import START, Clock
from tests.integration.test_collector import run
from tests.support.broker import require_broker
from tests.support.gateway import gateway_config, publish_to_collector

SERIAL = "41000031"


async def backfill_above_capacity(database: str) -> None:
    clock = Clock()
    meter = VirtualMeter(SERIAL, address=31, start=START - timedelta(days=3), base_kw=1.5)
    memory = ProfileMemory(meter, start=START - timedelta(days=3))
    async with MercurySimulator([meter], clock=clock, line_speed=False, profiles={SERIAL: memory}) as sim:
        config = config_from_dict(
            {
                "database": {"url": database},
                "site": {"timezone": "Europe/Moscow"},
                "buses": [{"name": "line", "kind": "mercury230", "url": sim.url, "timeout": "300ms",
                           "frame_pause": "2ms"}],
                # 2 kW: the simulated evening peak (up to about 2.3 kW) is more than it can pass
                "meters": [{"serial": SERIAL, "bus": "line", "address": 31, "ct_ratio": 10, "max_power_kw": 2}],
                "backfill": {"chunk": "12h", "first": "1d"},
            },
            {},
        )  # fmt: skip
        with App.open(config) as app:
            driver = Mercury230Driver(app.config.buses[0], tz=ZoneInfo("Europe/Moscow"))
            report = await Backfill(app, clock=clock).run_meter(app.config.meters[0], driver)
            assert report.error is None
            limit = 2 * 1000 * 10 // 2  # 2 kW × CT 10 × half an hour, primary Wh
            times = [t for t in memory.times(clock.now)[:-1] if t >= START - timedelta(days=1, minutes=10)]
            truth = {t: memory.pulses(t, clock.now)[Channel.A_PLUS] * 10 for t in times}  # type: ignore[operator]
            above = sorted(t for t, wh in truth.items() if wh > limit)
            assert above and len(above) < len(times)  # both kinds, or the test proves nothing
            stored = app.store.intervals(SERIAL, channels=[Channel.A_PLUS])
            assert [(v.start, v.wh) for v in stored] == [(t, wh) for t, wh in sorted(truth.items()) if wh <= limit]
            assert report.refused == len(above)
            kept = app.store.interval_revisions(SERIAL, kind="refused")
            assert sorted(r.value.start for r in kept) == above
            assert all(r.reasons == ("above_capacity",) for r in kept)
            assert all(r.value.wh == truth[r.value.start] and "2 kW" in r.message for r in kept)
            # R+ (a third of A+) stays within the limit: stored in full
            assert len(app.store.intervals(SERIAL, channels=[Channel.R_PLUS])) == len(times)


def test_backfill_refuses_intervals_above_capacity(tmp_path: Path) -> None:
    asyncio.run(asyncio.wait_for(backfill_above_capacity(f"sqlite:///{tmp_path / 'amr.sqlite'}"), 60))


@pytest.mark.mqtt
def test_mqtt_intervals_above_capacity_are_refused_and_kept(tmp_path: Path) -> None:
    require_broker()
    base = f"amrtest/capacity-{uuid.uuid4().hex[:12]}"
    config = gateway_config(
        tmp_path, base, {"serial": "GW-2", "ct_ratio": 20, "model": "small"},
        intervals={"model_rated_power_kw": {"small": 1}},  # 1 kW × CT 20 × 30 min = 10 kWh primary
    )
    at = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    message = {
        "meter": "GW-2",
        "unit": "kWh",
        "intervals": [  # secondary kWh: 0.5 → 10,000 Wh primary (at the limit), 0.6 → 12,000 Wh (above)
            {"start": "2026-03-01T12:00:00+03:00", "length": 1800, "a_plus": "0.5"},
            {"start": "2026-03-01T12:30:00+03:00", "length": 1800, "a_plus": "0.6"},
            {"start": "2026-03-01T13:00:00+03:00", "length": 1800, "a_plus": "0.2"},
        ],
    }

    with App.open(config) as app:

        def refused() -> bool:
            return bool(app.store.interval_revisions("GW-2", kind="refused"))

        run(publish_to_collector(app, f"{base}/GW-2/profile", message, refused))
        stored = app.store.intervals("GW-2")
        assert [(v.start, v.wh) for v in stored] == [(at, 10_000), (at + timedelta(hours=1), 4_000)]
        (kept,) = app.store.interval_revisions("GW-2", kind="refused")
        assert kept.reasons == ("above_capacity",)
        assert (kept.value.start, kept.value.wh) == (at + timedelta(minutes=30), 12_000)
        assert "10000 Wh" in kept.message
