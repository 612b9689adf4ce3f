"""Completeness follows each meter's schedule, the same in the dispatch list and the dashboard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from amr.config import ScheduleConfig
from amr.core.domain import Channel, IncomingReading, Source, wh_from_kwh
from tests.api.conftest import NOW, Env

TZ = ZoneInfo("Europe/Moscow")
YESTERDAY = datetime(2026, 3, 9, tzinfo=TZ).astimezone(UTC)
TODAY = datetime(2026, 3, 10, tzinfo=TZ).astimezone(UTC)


def _schedules(env: Env, every: dict[str, timedelta]) -> None:
    config = env.app.config
    meters = [
        m.model_copy(update={"schedule": ScheduleConfig(every=every[m.serial])}) if m.serial in every else m
        for m in config.meters
    ]
    env.app.config = config.model_copy(update={"meters": meters})


def _polled(env: Env, serial: str, start: datetime, end: datetime, step: timedelta) -> int:
    batch, at, value = [], start, wh_from_kwh("100")
    while at < end:
        batch.append(IncomingReading(serial, at, 0, {Channel.A_PLUS: value}, Source.MODBUS, {}, received_at=at))
        at, value = at + step, value + 100
    result = env.app.ingestor.submit(batch)
    assert all(o.status == "accepted" for o in result.outcomes)
    return len(batch)


def test_a_meter_polled_every_15_min_or_every_hour_with_every_poll_is_complete(env: Env) -> None:
    _schedules(env, {"M3": timedelta(minutes=15), "M2": timedelta(hours=1)})
    assert _polled(env, "M3", YESTERDAY, NOW + timedelta(minutes=1), timedelta(minutes=15)) == 96 + 49
    assert _polled(env, "M2", YESTERDAY, NOW + timedelta(minutes=1), timedelta(hours=1)) == 24 + 13
    _polled(env, "M1", YESTERDAY, YESTERDAY + timedelta(hours=12), timedelta(minutes=30))  # the default: 30 min

    day = env.client.get("/api/v1/dispatch/meters", params={"date": "2026-03-09"}, headers=env.h("disp")).json()
    by_serial = {m["serial"]: m for m in day["items"]}
    assert (by_serial["M3"]["readings_expected"], by_serial["M3"]["readings_received"]) == (96, 96)
    assert by_serial["M3"]["completeness"] == 1.0
    assert (by_serial["M2"]["readings_expected"], by_serial["M2"]["readings_received"]) == (24, 24)
    assert by_serial["M2"]["completeness"] == 1.0
    assert (by_serial["M1"]["readings_expected"], by_serial["M1"]["completeness"]) == (48, 0.5)

    # today until 12:00 Moscow time, the poll at 12:00 included
    summary = env.client.get("/api/v1/dashboard/summary", headers=env.h("disp")).json()
    assert summary["expected_today"] == 49 + 13 + 25
    assert summary["readings_today"] == 49 + 13
    table = {m["serial"]: m for m in env.client.get("/api/v1/dashboard/meters", headers=env.h("disp")).json()}
    assert table["M3"]["readings_today"] == 49 and table["M2"]["readings_today"] == 13
    now = env.client.get("/api/v1/dispatch/meters", headers=env.h("disp")).json()
    assert {m["serial"]: m["completeness"] for m in now["items"]}["M3"] == 1.0
