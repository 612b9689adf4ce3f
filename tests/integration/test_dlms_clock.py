"""The DLMS clock through `amr clock --sync` against the DLMS simulator over real sockets and SQLite:
shift_time within ±900 s as the configurator, a refusal for the public client, SET beyond the shift."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rtoml import dumps

from amr.cli import main
from amr.drivers.dlms.clock import date_time
from simulators.dlms import DlmsWrapperSimulator
from simulators.dlms import clock as simulated
from simulators.model import Faults, VirtualMeter

CONFIGURATOR = {"client": 48, "authentication": "lls", "password": "1234567812345678"}


def test_bytes_of_a_date_time_in_the_site_zone() -> None:
    from zoneinfo import ZoneInfo

    # 2026-01-15 09:30:00 UTC is 12:30 Thursday in Moscow (UTC+3: deviation -180 = FF 4C, no summer time)
    assert date_time(datetime(2026, 1, 15, 9, 30, tzinfo=UTC), ZoneInfo("Europe/Moscow")).hex(" ") == (
        "07 ea 01 0f 04 0c 1e 00 00 ff 4c 00")


def test_amr_clock_sync_shifts_sets_and_names_the_client_a_refusal_needs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    drift = {"DC1": timedelta(minutes=4), "DC2": timedelta(minutes=4), "DC3": timedelta(minutes=30),
             "DC4": timedelta(minutes=-20)}
    meters = [VirtualMeter(s, address=17 + i, faults=Faults(clock_drift=d)) for i, (s, d) in enumerate(drift.items())]

    async def scenario() -> list[dict[str, Any]]:
        async with DlmsWrapperSimulator(meters, passwords={"DC4": {48: "its-own-48"}}) as sim:
            hosts = {m.serial: sim.url(m.serial).split("://", 1)[1] for m in meters}
            data = {
                "database": {"url": f"sqlite:///{tmp_path / 'amr.sqlite'}"},
                "site": {"timezone": "Europe/Moscow"},
                "collector": {"buffer": str(tmp_path / "buffer.sqlite")},
                "clock": {"threshold": "5s", "allow_set": True, "admin_password": CONFIGURATOR["password"]},
                "buses": [{"name": "gprs", "kind": "dlms-tcp", "url": sim.url("DC1"), "timeout": "2s",
                           "dlms": {"transport": "wrapper", "client": 16, "authentication": "none"}}],
                "meters": [
                    {"serial": "DC1", "bus": "gprs", "address": 17, "dlms": {"host": hosts["DC1"], **CONFIGURATOR}},
                    {"serial": "DC2", "bus": "gprs", "address": 18, "dlms": {"host": hosts["DC2"]}},
                    {"serial": "DC3", "bus": "gprs", "address": 19, "dlms": {"host": hosts["DC3"]}},
                    {"serial": "DC4", "bus": "gprs", "address": 20,  # read as 48 with its own password: set with it
                     "dlms": {"host": hosts["DC4"], **CONFIGURATOR, "password": "its-own-48"}},
                ],
            }
            path = tmp_path / "amr.toml"
            path.write_text(dumps(data), encoding="utf-8")
            outs = []
            for args in (["--sync"], []):  # correct, then check again
                assert await asyncio.to_thread(main, ["clock", "-c", str(path), *args, "--json"]) == 0
                outs.append({m["meter"]: m for m in json.loads(capsys.readouterr().out)["meters"]})
            return outs

    synced, after = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert synced["DC1"]["state"] == "corrected" and synced["DC1"]["events"] == ["clock.corrected"]
    assert simulated.SHIFTS["DC1"] == [-240]  # shift_time(-240) once
    assert synced["DC2"]["state"] == "refused" and "configurator, 48" in synced["DC2"]["message"]
    assert synced["DC3"]["state"] == synced["DC4"]["state"] == "set"  # beyond ±900 s: SET as the configurator
    assert after["DC1"]["state"] == after["DC3"]["state"] == after["DC4"]["state"] == "ok"
    assert all(abs(after[s]["drift_s"]) < 2 for s in ("DC1", "DC3", "DC4"))
    assert after["DC2"]["drift_s"] > 230
