"""Meter health: state transitions, counters, and log lines loud once, quiet on repeats."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from amr.collector.health import HealthBook, after_failure, after_success, redact
from amr.config import DatabaseConfig, ScheduleConfig
from amr.ingest.ingestor import Ingestor
from amr.store import Store
from amr.store.health import HealthRecord, completeness, load_health, save_health
from tests.support.builders import meters, reading

T = datetime(2026, 1, 15, 12, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return T + timedelta(seconds=seconds)


def test_success_is_online_and_resets_the_failure_run() -> None:
    record = after_failure(HealthRecord(1), at(0), "no answer", offline_after=3)
    record = after_success(record, at(1))
    assert record.status == "online"
    assert record.consecutive_failures == 0
    assert (record.polls, record.failures) == (2, 1)
    assert record.last_success_at == at(1) and record.last_poll_at == at(1)
    assert record.last_error == "no answer" and record.last_error_at == at(0)  # kept for the dispatcher


def test_failures_degrade_then_take_the_meter_offline_after_n() -> None:
    record = HealthRecord(1)
    states = []
    for second in range(4):
        record = after_failure(record, at(second), f"timeout {second}", offline_after=3)
        states.append((record.status, record.consecutive_failures))
    assert states == [("degraded", 1), ("degraded", 2), ("offline", 3), ("offline", 4)]
    assert (record.polls, record.failures, record.last_error, record.last_error_at) == (4, 4, "timeout 3", at(3))
    assert record.last_success_at is None


def test_offline_after_one_failure_when_so_configured() -> None:
    assert after_failure(HealthRecord(1), at(0), "x", offline_after=1).status == "offline"


def test_a_poll_with_channel_errors_is_degraded_but_a_success() -> None:
    record = after_failure(HealthRecord(1), at(0), "x", offline_after=1)
    record = after_success(record, at(1), {"tariff 3": "not supported"})
    assert record.status == "degraded"
    assert record.consecutive_failures == 0 and record.failures == 1
    assert record.last_error == "tariff 3: not supported" and record.last_error_at == at(1)
    assert record.last_success_at == at(1)


def book(offline_after: int = 3) -> HealthBook:
    return HealthBook({"M1": 1, "M2": 2}, offline_after, lambda serial: ["s3cr3t"] if serial == "M1" else [])


def test_first_error_is_loud_repeats_quiet_offline_loud_recovery_info(caplog: pytest.LogCaptureFixture) -> None:
    health = book()
    caplog.set_level(logging.DEBUG, logger="amr.collector")
    for second in range(4):
        health.failure("M1", at(second), "no answer within 0.3 s", where="line-1")
    health.success("M1", at(5), where="line-1")
    health.success("M1", at(6), where="line-1")
    levels = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert levels == [
        ("WARNING", "meter M1 (line-1): no answer within 0.3 s"),
        ("DEBUG", "meter M1 (line-1) failed again (2 in a row): no answer within 0.3 s"),
        ("WARNING", "meter M1 (line-1) is offline after 3 failed poll(s): no answer within 0.3 s"),
        ("DEBUG", "meter M1 (line-1) failed again (4 in a row): no answer within 0.3 s"),
        ("INFO", "meter M1 (line-1) answers again after 4 failed poll(s)"),
    ]


def test_channel_errors_are_loud_once(caplog: pytest.LogCaptureFixture) -> None:
    health = book()
    caplog.set_level(logging.DEBUG, logger="amr.collector")
    health.success("M2", at(0), {"tariff 4": "refused"})
    health.success("M2", at(1), {"tariff 4": "refused"})
    health.success("M2", at(2))
    assert [r.levelname for r in caplog.records] == ["WARNING", "DEBUG", "INFO"]
    assert health.get("M2").status == "online"


def test_passwords_never_reach_the_log_or_the_record(caplog: pytest.LogCaptureFixture) -> None:
    health = book()
    caplog.set_level(logging.DEBUG, logger="amr.collector")
    health.failure("M1", at(0), "login with s3cr3t refused")
    assert "s3cr3t" not in caplog.text
    assert health.get("M1").last_error == "login with *** refused"
    assert redact("a b a", ["a", ""]) == "*** b ***"


def test_changed_records_are_handed_out_once_and_can_be_put_back() -> None:
    health = book()
    health.failure("M1", at(0), "x")
    health.success("M2", at(0))
    dirty = health.take_dirty()
    assert [r.meter_id for r in dirty] == [1, 2]
    assert health.take_dirty() == []
    health.put_back(dirty)
    assert [r.meter_id for r in health.take_dirty()] == [1, 2]


def test_restored_records_carry_the_counters_on() -> None:
    health = book()
    health.restore({1: HealthRecord(1, "offline", polls=10, failures=7, consecutive_failures=5)})
    health.success("M1", at(0))
    assert (health.get("M1").polls, health.get("M1").failures, health.get("M1").status) == (11, 7, "online")
    health.failure("unknown", at(0), "ignored")
    assert "unknown" not in health


@pytest.fixture(params=["sqlite", "postgres"])
def health_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        opened = Store.open(DatabaseConfig(url=f"sqlite:///{tmp_path / 'amr.sqlite'}"), "Europe/Moscow")
        yield opened
        opened.close()
        return
    from tests.conftest import _clean

    shared: Store = request.getfixturevalue("postgres_store")
    _clean(shared)
    yield shared


def test_health_rows_are_saved_replaced_and_loaded(health_store: Store) -> None:
    (meter,) = health_store.sync_meters(meters({"serial": "H1"}, ids=False))
    first = after_failure(HealthRecord(meter.id), at(0), "no answer", offline_after=1)
    save_health(health_store, [first])
    assert load_health(health_store) == {meter.id: first}
    second = after_success(first, at(5), {"tariff 2": "refused"})
    save_health(health_store, [second])
    assert load_health(health_store, [meter.id]) == {meter.id: second}
    assert load_health(health_store, [meter.id + 1]) == {}
    assert second.as_dict()["last_poll_at"] == at(5).isoformat()


def test_completeness_counts_stored_readings_against_the_schedule(health_store: Store) -> None:
    tz = ZoneInfo("Europe/Moscow")
    (meter,) = health_store.sync_meters(meters({"serial": "C1", "tariffs": 2}, ids=False))
    day = datetime(2026, 1, 15, tzinfo=tz)
    half_hours = [day + timedelta(minutes=30 * n, seconds=3) for n in range(24)]  # the first 12 hours
    batch = [reading("C1", ts, str(1000 + n)) for n, ts in enumerate(half_hours)]
    batch += [reading("C1", ts, str(400 + n), tariff=1) for n, ts in enumerate(half_hours)]  # zones count once
    Ingestor(health_store, [meter], now=lambda: day + timedelta(days=2)).submit(batch)
    every_half_hour = ScheduleConfig(cron="*/30 * * * *")
    assert completeness(health_store, meter, every_half_hour, day, day + timedelta(days=1), tz) == 0.5
    assert completeness(health_store, meter, every_half_hour, day, day + timedelta(hours=6), tz) == 1.0
    assert completeness(health_store, meter, ScheduleConfig(every=timedelta(hours=1)), day,
                        day + timedelta(days=1), tz) == 1.0  # more readings than polls: capped
    never = ScheduleConfig(cron="0 8 * * 6")  # Saturdays; 2026-01-15 is a Thursday
    assert completeness(health_store, meter, never, day, day + timedelta(days=1), tz) == 1.0
