"""MQTT gateways publishing interval values: decoding, and the collector storing them (real Mosquitto, SQLite)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import cast

import paho.mqtt.publish as publish
import pytest

from amr.app import App
from amr.collector.collector import Collector
from amr.config import BusConfig, MeterConfig, config_from_dict
from amr.core.domain import Channel
from amr.core.intervals import IntervalStatus, ProfileFlag
from amr.drivers.mqtt.driver import MqttDriver
from amr.drivers.mqtt.payloads import PayloadDecoder
from tests.integration.test_collector import run
from tests.support.broker import HOST, PORT, require_broker

AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
MESSAGE = {
    "meter": "GW-1",
    "unit": "kWh",
    "intervals": [
        {"start": "2026-03-01T12:00:00+03:00", "length": 1800, "a_plus": "0.512", "r_plus": "0.1"},
        {"start": "2026-03-01T12:30:00+03:00", "length": "30m", "a_plus": "0.25", "flags": ["power_failure"]},
        {"start": "2026-03-01T12:10:00+03:00", "length": 1800, "a_plus": "1"},
        {"start": "2026-03-01T13:00:00+03:00", "length": 1800, "a_plus": "0.0001"},
    ],
}


def test_intervals_decode_exactly_and_bad_ones_are_named() -> None:
    decoder = PayloadDecoder("amr", meters=[MeterConfig(serial="GW-1")])
    (values,) = decoder.decode("gw/GW-1/profile", json.dumps(MESSAGE).encode(), AT)
    assert values.tariffs == {}  # intervals only: no register reading, nothing refused as malformed
    first, second = values.profile
    assert first.start == AT and first.length == timedelta(minutes=30)
    assert first.energy == {Channel.A_PLUS: 512, Channel.R_PLUS: 100}
    assert second.flags == ProfileFlag.POWER_FAILURE and second.status is IntervalStatus.INCOMPLETE
    assert "not on a boundary" in values.errors["intervals 2"]
    assert values.errors["intervals 3"].startswith("0.0001 is finer than 1 Wh")
    (bad,) = decoder.decode("t", json.dumps({"meter": "GW-1", "intervals": {"x": 1}}).encode(), AT)
    assert "list" in bad.errors["intervals"]


@pytest.mark.mqtt
def test_the_collector_stores_published_intervals(tmp_path: Path) -> None:
    require_broker()
    base = f"amrtest/intervals-{uuid.uuid4().hex[:12]}"
    config = config_from_dict(
        {
            "database": {"url": f"sqlite:///{tmp_path / 'amr.sqlite'}"},
            "site": {"timezone": "Europe/Moscow"},
            "buses": [{"name": "mqtt", "kind": "mqtt", "url": f"mqtt://{HOST}:{PORT}", "topics": [f"{base}/+/profile"],
                       "client_id": f"amrtest-{uuid.uuid4().hex[:10]}"}],
            "meters": [{"serial": "GW-1", "bus": "mqtt", "ct_ratio": 20}],
            "collector": {"buffer": str(tmp_path / "buffer.sqlite")},
        },
        environ={},
        file=tmp_path / "amr.toml",
    )  # fmt: skip

    def short_session(bus: BusConfig, listened: Sequence[MeterConfig], tz: tzinfo) -> MqttDriver:
        return MqttDriver(bus, listened, tz=tz, session_expiry=timedelta(seconds=60))

    async def scenario(app: App) -> None:
        collector = Collector(app, push_factory=short_session)
        await collector.start()
        try:
            await cast(MqttDriver, collector.pushers[0].driver).wait_subscribed(5)
            payload = json.dumps(MESSAGE)
            await asyncio.to_thread(publish.single, f"{base}/GW-1/profile", payload, qos=1, hostname=HOST, port=PORT)
            deadline = time.monotonic() + 10
            while len(await asyncio.to_thread(app.store.intervals, "GW-1")) < 3 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            await collector.stop()

    with App.open(config) as app:
        run(scenario(app))
        stored = app.store.intervals("GW-1")
        assert [(v.channel, v.start, v.wh) for v in stored] == [
            (Channel.A_PLUS, AT, 512 * 20),  # primary side: CT 20
            (Channel.A_PLUS, AT + timedelta(minutes=30), 250 * 20),
            (Channel.R_PLUS, AT, 100 * 20),
        ]
        assert stored[1].status is IntervalStatus.INCOMPLETE
        assert app.store.readings([app.meters["GW-1"].id]) == []
        assert app.store.rejected(meter_serial="GW-1") == []  # an intervals-only message is no malformed reading
