"""Schedules become APScheduler triggers: interval grids, cron in the site's zone, offset, jitter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from amr.collector.schedule import (
    check_schedule,
    crontab_weekdays,
    expected_polls,
    fire_times,
    make_trigger,
    schedule_for,
)
from amr.collector.scheduled import by_schedule
from amr.config import BusConfig, MeterConfig, ScheduleConfig
from amr.core.listing import first_few
from amr.errors import ConfigError

MSK = ZoneInfo("Europe/Moscow")
BERLIN = ZoneInfo("Europe/Berlin")


def schedule(**fields: object) -> ScheduleConfig:
    return ScheduleConfig.model_validate(fields)


def local(*args: int, tz: ZoneInfo = MSK) -> datetime:
    return datetime(*args, tzinfo=tz)  # type: ignore[misc]


def fires(trigger_schedule: ScheduleConfig, now: datetime, count: int, tz: ZoneInfo = MSK) -> list[datetime]:
    trigger = make_trigger(trigger_schedule, tz, anchor=now)
    times, previous = [], None
    for _ in range(count):
        previous = trigger.get_next_fire_time(previous, now if previous is None else previous)
        times.append(previous.astimezone(tz))
    return times


def test_interval_is_aligned_to_local_midnight_plus_offset() -> None:
    got = fires(schedule(every="30m", offset="2m"), local(2026, 1, 15, 10, 7, 13), 3)
    assert got == [local(2026, 1, 15, 10, 32), local(2026, 1, 15, 11, 2), local(2026, 1, 15, 11, 32)]


def test_interval_of_a_second_fires_on_whole_seconds() -> None:
    now = local(2026, 1, 15, 10, 0, 0) + timedelta(microseconds=250_000)
    got = fires(schedule(every=1), now, 3)
    assert got == [local(2026, 1, 15, 10, 0, 1), local(2026, 1, 15, 10, 0, 2), local(2026, 1, 15, 10, 0, 3)]


def test_cron_with_offset_fires_at_02_and_32_in_the_site_zone() -> None:
    got = fires(schedule(cron="*/30 * * * *", offset="2m"), local(2026, 1, 15, 10, 1), 3)
    assert got == [local(2026, 1, 15, 10, 2), local(2026, 1, 15, 10, 32), local(2026, 1, 15, 11, 2)]
    assert got[0].astimezone(UTC) == datetime(2026, 1, 15, 7, 2, tzinfo=UTC)  # Moscow is UTC+3


def test_a_fire_time_equal_to_now_is_taken() -> None:
    got = fires(schedule(cron="0 * * * *"), local(2026, 1, 15, 10, 0), 1)
    assert got == [local(2026, 1, 15, 10, 0)]


def test_cron_weekdays_are_standard_crontab_not_apscheduler_numbering() -> None:
    # 1 is Monday in crontab; APScheduler 3's from_crontab alone would read it as Tuesday
    got = fires(schedule(cron="0 8 * * 1"), local(2026, 1, 1), 2)  # 2026-01-01 is a Thursday
    assert got == [local(2026, 1, 5, 8), local(2026, 1, 12, 8)]
    assert [d.strftime("%a") for d in fires(schedule(cron="0 8 * * 0"), local(2026, 1, 1), 1)] == ["Sun"]
    assert crontab_weekdays("1-5") == "mon,tue,wed,thu,fri"
    assert crontab_weekdays("0,7") == "sun"
    assert crontab_weekdays("5-7") == "sun,fri,sat"
    assert crontab_weekdays("*/2") == "sun,tue,thu,sat"
    assert crontab_weekdays("Sat,sun") == "sun,sat"
    assert crontab_weekdays("0-6") == "*"
    with pytest.raises(ConfigError, match=r"not 0\.\.7"):
        crontab_weekdays("8")


@pytest.mark.parametrize("cron", ["0 8 * * \u0663", "0 8 * * */\u0662", "*/\u0661\u0665 * * * *", "0 \uff18 * * *"])
def test_cron_digits_of_other_scripts_are_refused(cron: str) -> None:
    """``int`` reads ``٣`` as 3 and APScheduler's ``\\d`` matches it: such a cron is refused, not run."""
    with pytest.raises(ConfigError, match="write it in ASCII"):
        make_trigger(schedule(cron=cron), MSK)


@pytest.mark.parametrize("field", ["\u0663", "*/\u0662", "1-\uff15"])
def test_cron_weekdays_take_ascii_digits_only(field: str) -> None:
    with pytest.raises(ConfigError, match="cron weekday"):
        crontab_weekdays(field)


def test_cron_restricting_both_day_and_weekday_is_refused() -> None:
    with pytest.raises(ConfigError, match="not both"):
        make_trigger(schedule(cron="0 0 1 * 1"), MSK)


def test_jitter_does_not_move_the_fires_off_the_grid() -> None:
    """The trigger fires on the grid: jitter is each meter's own delay after it, so it never drifts."""
    got = fires(schedule(every="1m", jitter="20s"), local(2026, 1, 15, 10, 0, 30), 50)
    assert got == [local(2026, 1, 15, 10, 1) + timedelta(minutes=index) for index in range(50)]
    cron = fires(schedule(cron="*/5 * * * *", offset="1m", jitter="30s"), local(2026, 1, 15, 10, 0), 20)
    assert cron == [local(2026, 1, 15, 10, 1) + timedelta(minutes=5 * index) for index in range(20)]


def test_jitter_delays_are_within_bounds_and_drawn_afresh() -> None:
    trigger = make_trigger(schedule(every="1m", jitter="20s"), MSK)
    delays = [trigger.delay() for _ in range(2000)]
    assert all(0 <= delay <= 20 for delay in delays)
    assert len(set(delays)) == len(delays)  # a fresh draw each time, none carried over
    assert min(delays) < 1 and max(delays) > 19  # spread over the whole jitter
    assert {make_trigger(schedule(every="1m"), MSK).delay() for _ in range(10)} == {0.0}


def test_schedule_precedence_meter_then_bus_then_default() -> None:
    default = schedule(cron="*/30 * * * *")
    bus = BusConfig(name="b", kind="modbus-tcp", url="tcp://127.0.0.1:502", schedule="15m")  # type: ignore[arg-type]
    plain = MeterConfig(serial="1", bus="b", address=1)
    own = MeterConfig(serial="2", bus="b", address=2, schedule="5m")  # type: ignore[arg-type]
    assert schedule_for(own, bus, default).every == timedelta(minutes=5)
    assert schedule_for(plain, bus, default).every == timedelta(minutes=15)
    assert schedule_for(plain, None, default) is default


def test_timeout_and_jitter_must_be_shorter_than_the_interval() -> None:
    check_schedule(schedule(every="1s"), timedelta(milliseconds=900), "m")
    with pytest.raises(ConfigError, match="timeout"):
        check_schedule(schedule(every="1s"), timedelta(seconds=1), "m")
    with pytest.raises(ConfigError, match="jitter"):
        check_schedule(schedule(cron="*/5 * * * *", jitter="5m"), timedelta(seconds=1), "m")


def test_expected_polls_over_a_day_and_a_dst_day() -> None:
    day = local(2026, 1, 15)
    assert expected_polls(schedule(cron="*/30 * * * *"), day, day + timedelta(days=1), MSK) == 48
    assert expected_polls(schedule(every="30m", offset="2m"), day, day + timedelta(days=1), MSK) == 48
    assert expected_polls(schedule(cron="0 8 * * 1-5"), day, day + timedelta(days=7), MSK) == 5
    # 2026-03-29 in Berlin has 23 hours
    start, end = local(2026, 3, 29, tz=BERLIN), local(2026, 3, 30, tz=BERLIN)
    assert expected_polls(schedule(cron="*/30 * * * *"), start, end, BERLIN) == 46
    assert expected_polls(schedule(every="30m"), start, end, BERLIN) == 46
    times = list(fire_times(schedule(cron="0 * * * *"), start, end, BERLIN))
    assert len(times) == 23 and times == sorted(set(times))


def test_meters_are_grouped_by_equal_schedules_whichever_object_holds_them() -> None:
    bus, own, other = schedule(every="15m"), schedule(every="15m"), schedule(cron="*/5 * * * *")
    assert bus is not own
    groups = by_schedule({"A": bus, "B": other, "C": own, "D": bus, "E": schedule(every="900s")})
    assert groups == [(bus, ["A", "D", "C", "E"]), (other, ["B"])]
    assert groups[0][0] is bus  # the first object seen stands for the group


def test_a_message_about_many_meters_names_the_first_few() -> None:
    assert first_few(["A", "B"]) == "A, B"
    assert first_few([f"M{n}" for n in range(1, 101)]) == "M1, M2, M3, M4, M5 and 95 more"
