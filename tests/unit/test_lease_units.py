"""What a lease covers, and the slot a poll belongs to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from amr.collector.lease_units import lease_units
from amr.collector.poll_slots import SlotBook, slot_start
from amr.collector.schedule import make_trigger
from amr.config import BusConfig, MeterConfig, ScheduleConfig, config_from_dict

MSK = ZoneInfo("Europe/Moscow")


def _config(group: int) -> tuple[dict[str, BusConfig], list[MeterConfig]]:
    buses = [
        {"name": "rtu", "kind": "modbus-rtu", "url": "socket://127.0.0.1:4001"},
        {"name": "tcp", "kind": "modbus-tcp", "url": "tcp://127.0.0.1:502"},
    ]
    meters = [{"serial": f"R{i}", "bus": "rtu", "address": i, "profile": "eastron-sdm630"} for i in range(1, 4)]
    meters += [{"serial": f"G{i}", "bus": "tcp", "address": i, "profile": "eastron-sdm630"} for i in range(1, 4)]
    meters += [
        {"serial": f"D{i}", "bus": "tcp", "address": f"10.0.0.{i}:502/1", "profile": "eastron-sdm630"}
        for i in range(1, 5)
    ]
    config = config_from_dict({"buses": buses, "meters": meters, "collector": {"lease_group": group}}, environ={})
    return {b.name: b for b in config.buses}, list(config.meters)


def test_a_serial_line_is_one_lease_and_a_tcp_bus_is_spread_by_device() -> None:
    buses, meters = _config(group=3)
    units = lease_units(buses, meters, {"rtu": True, "tcp": False}, 3)
    assert [(u.key, u.meters) for u in units] == [
        ("rtu", ("R1", "R2", "R3")),
        ("tcp/10.0.0.1:502", ("D1", "D2", "D3")),
        ("tcp/10.0.0.4:502", ("D4",)),
        ("tcp/tcp://127.0.0.1:502", ("G1", "G2", "G3")),  # the gateway's three meters stay together
    ]


def test_a_tcp_bus_in_one_group_is_leased_by_its_name() -> None:
    buses, meters = _config(group=64)
    units = lease_units(buses, meters, {"rtu": True, "tcp": False}, 64)
    assert [u.key for u in units] == ["rtu", "tcp"]
    assert len(units[1].meters) == 7


def test_a_device_larger_than_the_group_is_never_split() -> None:
    buses, meters = _config(group=2)
    units = lease_units(buses, meters, {"rtu": True, "tcp": False}, 2)
    assert ("tcp/tcp://127.0.0.1:502", ("G1", "G2", "G3")) in [(u.key, u.meters) for u in units]


def test_the_slot_is_the_last_grid_time_with_the_offset() -> None:
    every = make_trigger(ScheduleConfig(every=timedelta(minutes=30), offset=timedelta(minutes=2)), MSK)
    at = datetime(2026, 3, 1, 9, 45, 10, tzinfo=UTC)
    assert slot_start(every, at) == datetime(2026, 3, 1, 9, 32, tzinfo=UTC)
    assert slot_start(every, datetime(2026, 3, 1, 9, 32, tzinfo=UTC)) == datetime(2026, 3, 1, 9, 32, tzinfo=UTC)
    hourly = make_trigger(ScheduleConfig(cron="15 * * * *"), MSK)
    assert slot_start(hourly, at) == datetime(2026, 3, 1, 9, 15, tzinfo=UTC)
    daily = make_trigger(ScheduleConfig(cron="0 1 * * *"), MSK)  # 01:00 Moscow = 22:00 UTC the day before
    assert slot_start(daily, at) == datetime(2026, 2, 28, 22, 0, tzinfo=UTC)


def test_a_slot_is_claimed_once() -> None:
    book, slot = SlotBook(), datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    assert book.claim("M1", slot)
    assert not book.claim("M1", slot)
    assert book.done("M1", slot) and not book.done("M2", slot)
    assert book.claim("M1", slot + timedelta(minutes=30))
