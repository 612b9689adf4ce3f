"""DLMS event logs 0.0.99.98.x.255 through `amr events --read` against the DLMS simulator over real
sockets and SQLite: every log the meter has, the СПОДЭС codes, a second read by range storing nothing twice."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rtoml import dumps

from amr.cli import main
from amr.config import BusConfig, MeterConfig
from amr.drivers.dlms.driver import DlmsTcpDriver
from simulators.dlms import DlmsWrapperSimulator
from simulators.dlms import journals as simulated
from simulators.dlms import profile as simulated_profile
from simulators.model import VirtualMeter
from simulators.profile_memory import ProfileMemory

NOW = datetime.now(UTC).replace(microsecond=0)


def _meter(serial: str) -> VirtualMeter:
    meter = VirtualMeter(serial, address=17, start=NOW - timedelta(days=2))
    outage = (NOW - timedelta(hours=5), NOW - timedelta(hours=4, minutes=50))
    simulated_profile.PROFILES[serial] = ProfileMemory(meter, records=simulated_profile.ENTRIES, outages=[outage])
    simulated.EVENTS[serial] = [(0, NOW - timedelta(hours=3), 3), (0, NOW - timedelta(hours=2, minutes=58), 4),
                                (4, NOW - timedelta(hours=1), 4), (4, NOW - timedelta(minutes=30), 77)]
    return meter


def test_amr_events_read_stores_each_dlms_event_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    meter = _meter("DE1")

    async def scenario() -> list[dict[str, Any]]:
        async with DlmsWrapperSimulator([meter]) as sim:
            host = sim.url("DE1").split("://", 1)[1]
            data = {
                "database": {"url": f"sqlite:///{tmp_path / 'amr.sqlite'}"},
                "site": {"timezone": "Europe/Moscow"},
                "collector": {"buffer": str(tmp_path / "buffer.sqlite")},
                "buses": [{"name": "gprs", "kind": "dlms-tcp", "url": sim.url("DE1"), "timeout": "2s",
                           "dlms": {"transport": "wrapper", "client": 16, "authentication": "none"}}],
                "meters": [{"serial": "DE1", "bus": "gprs", "address": 17, "dlms": {"host": host}}],
            }
            path = tmp_path / "amr.toml"
            path.write_text(dumps(data), encoding="utf-8")
            for _ in range(2):  # read twice: nothing is stored twice
                assert await asyncio.to_thread(main, ["events", "-c", str(path), "--read", "--json"]) == 0
                capsys.readouterr()
            assert await asyncio.to_thread(main, ["events", "-c", str(path), "--json"]) == 0
            listed: list[dict[str, Any]] = json.loads(capsys.readouterr().out)["events"]
            return listed

    listed = asyncio.run(asyncio.wait_for(scenario(), 30))
    got = [(e["code"], e["detail"], e["timestamp"]) for e in listed]
    at = [(NOW - d).isoformat() for d in (timedelta(hours=5), timedelta(hours=4, minutes=50), timedelta(hours=3),
                                          timedelta(hours=2, minutes=58), timedelta(hours=1), timedelta(minutes=30))]
    assert sorted(got, key=lambda g: g[2]) == [
        ("power.off", "", at[0]), ("power.on", "", at[1]),
        ("power.phase_off", "phase B", at[2]), ("power.phase_on", "phase B", at[3]),
        ("tamper.cover_opened", "", at[4]), ("other", "external impacts code 77", at[5]),
    ]


def test_a_later_read_asks_only_from_the_newest_event_by_range() -> None:
    meter = _meter("DE2")

    async def scenario() -> tuple[int, int]:
        async with DlmsWrapperSimulator([meter]) as sim:
            driver = DlmsTcpDriver(BusConfig.model_validate(
                {"name": "d", "kind": "dlms-tcp", "url": sim.url("DE2"), "timeout": 2, "retries": 0}))
            config = MeterConfig.model_validate({"serial": "DE2", "address": 17, "dlms": {"host": sim.url("DE2")}})
            try:
                first = await driver.read_journal(config)
                simulated.EVENTS["DE2"].append((2, NOW - timedelta(minutes=1), 1))
                second = await driver.read_journal(config)
            finally:
                await driver.close()
            return len(first), len(second)

    first, second = asyncio.run(asyncio.wait_for(scenario(), 30))
    # again: the newest of each log (voltage, on/off, external impacts) and the new power-off
    assert (first, second) == (6, 4)
