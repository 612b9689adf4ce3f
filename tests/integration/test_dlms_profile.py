"""The DLMS load profile against the DLMS simulator over real sockets: by range, through GET blocks,
with an outage's gap and status bit, and through `amr backfill` into SQLite."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rtoml import dumps

from amr.cli import main
from amr.config import BusConfig, MeterConfig
from amr.core.domain import Channel
from amr.core.intervals import ProfileFlag
from amr.drivers.dlms.driver import DlmsTcpDriver
from amr.drivers.profiles import ProfileRecords
from simulators.dlms import DlmsHdlcSimulator, DlmsWrapperSimulator
from simulators.dlms import profile as simulated
from simulators.model import VirtualMeter
from simulators.profile_memory import ProfileMemory
from tests.support.background import in_thread

NOW = datetime(2026, 1, 15, 9, 40, tzinfo=UTC)


@pytest.mark.parametrize("framing", ["wrapper", "hdlc"])
def test_a_range_with_an_outage_reads_each_closed_period_once_with_exact_energy(framing: str) -> None:
    meter = VirtualMeter("DP1", address=17, start=NOW - timedelta(days=3))
    outage = (NOW - timedelta(hours=5, minutes=10), NOW - timedelta(hours=3, minutes=45))  # 04:30 to 05:55
    memory = simulated.PROFILES["DP1"] = ProfileMemory(meter, records=simulated.ENTRIES, outages=[outage])

    async def scenario() -> list[ProfileRecords]:
        sim: DlmsWrapperSimulator | DlmsHdlcSimulator
        if framing == "wrapper":
            sim = DlmsWrapperSimulator([meter], clock=lambda: NOW)
        else:  # HDLC over TCP, an RS-485 converter's way
            sim = DlmsHdlcSimulator([meter], transport="tcp", baudrate=115200, clock=lambda: NOW)
        async with sim:
            url = sim.url("DP1") if isinstance(sim, DlmsWrapperSimulator) else "tcp://" + sim.url.split("://", 1)[1]
            driver = DlmsTcpDriver(BusConfig.model_validate(
                {"name": "d", "kind": "dlms-tcp", "url": url, "timeout": 2, "retries": 0,
                 "dlms": {"transport": framing}}))
            config = MeterConfig.model_validate({"serial": "DP1", "address": 17, "dlms": {"host": url}})
            try:
                recent = await driver.read_profile(config, NOW - timedelta(hours=8), NOW + timedelta(hours=1))
                long_ago = await driver.read_profile(config, NOW - timedelta(days=2), NOW - timedelta(days=1))
            finally:
                await driver.close()
            assert isinstance(recent, ProfileRecords) and isinstance(long_ago, ProfileRecords)
            return [recent, long_ago]

    recent, long_ago = asyncio.run(asyncio.wait_for(scenario(), 30))
    starts = [r.start for r in recent]
    expected = [datetime(2026, 1, 15, 2, 0, tzinfo=UTC) + timedelta(minutes=30) * i for i in range(15)]
    gap = {datetime(2026, 1, 15, 4, 30, tzinfo=UTC), datetime(2026, 1, 15, 5, 0, tzinfo=UTC)}
    assert starts == [s for s in expected if s not in gap]  # 09:30 is still running: not captured
    assert recent.complete_until == datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
    back = next(r for r in recent if r.start == datetime(2026, 1, 15, 5, 30, tzinfo=UTC))
    assert back.flags == ProfileFlag.POWER_FAILURE
    assert all(r.flags == ProfileFlag.NONE for r in recent if r is not back)
    for record in recent:
        pulses = memory.pulses(record.start, NOW)
        assert record.energy == {c: pulses[c] for c in Channel}  # 1 Wh a pulse, sent in tenths (scaler -1)
    assert len(long_ago) == 47 and long_ago[0].start == datetime(2026, 1, 13, 10, 0, tzinfo=UTC)  # in GET blocks


@pytest.fixture
def served() -> Iterator[str]:
    """host:port of simulated DLMS meter 47000001 (3 days of profile), served by another thread."""
    now = datetime.now(UTC)
    meter = VirtualMeter("47000001", address=17, start=now - timedelta(days=3))
    simulated.PROFILES.pop(meter.serial, None)
    sim = DlmsWrapperSimulator([meter])
    with in_thread(sim):
        yield sim.url(meter.serial).split("://", 1)[1]


def test_backfill_reads_the_dlms_profile_into_the_store(served: str, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "amr.toml"
    config.write_text(dumps({
        "database": {"url": f"sqlite:///{tmp_path / 'amr.sqlite'}"},
        "site": {"timezone": "Europe/Moscow"},
        "backfill": {"first": "12h", "chunk": "6h"},
        "buses": [{"name": "gprs", "kind": "dlms-tcp", "url": f"tcp://{served}", "timeout": "2s",
                   "dlms": {"transport": "wrapper", "client": 16, "authentication": "none"}}],
        "meters": [{"serial": "47000001", "bus": "gprs", "address": 17, "ct_ratio": 10, "dlms": {"host": served}}],
    }), encoding="utf-8")
    assert main(["backfill", "-c", str(config), "--json"]) == 0
    (meter,) = json.loads(capsys.readouterr().out)["meters"]
    assert meter["meter"] == "47000001" and meter["error"] is None and meter["lost"] is None
    assert 23 <= meter["records"] <= 25 and meter["written"] == 4 * meter["records"]
    assert main(["backfill", "-c", str(config)]) == 0
    assert "47000001: nothing missing" in capsys.readouterr().out
