"""The collector with an MQTT bus against the real Mosquitto on 127.0.0.1:1883: what `MqttPublisher` sends is stored."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta, tzinfo
from pathlib import Path
from typing import cast

import pytest

from amr.app import App
from amr.collector.collector import Collector
from amr.config import BusConfig, MeterConfig, config_from_dict
from amr.drivers.mqtt.driver import MqttDriver
from amr.store.health import load_health
from simulators.model import Faults, VirtualMeter
from simulators.mqtt_publisher import MqttPublisher
from tests.integration.test_collector import run
from tests.support.broker import HOST, PORT, require_broker


@pytest.fixture(scope="module", autouse=True)
def broker() -> None:
    require_broker()


@pytest.mark.mqtt
def test_published_readings_are_stored_exactly_and_garbage_is_kept_refused(tmp_path: Path) -> None:
    base = f"amrtest/collector-{uuid.uuid4().hex[:12]}"
    meters = [VirtualMeter(f"MQ{n}", address=n, tariffs=2) for n in (1, 2, 3)]
    garbled = VirtualMeter("MQ9", address=9, faults=Faults(corrupt=1.0))
    config = config_from_dict(
        {
            "database": {"url": f"sqlite:///{tmp_path / 'amr.sqlite'}"},
            "buses": [{"name": "mqtt", "kind": "mqtt", "url": f"mqtt://{HOST}:{PORT}", "topics": [f"{base}/+/energy"],
                       "client_id": f"amrtest-{uuid.uuid4().hex[:10]}"}],
            "meters": [{"serial": m.serial, "bus": "mqtt", "tariffs": m.tariffs} for m in [*meters, garbled]],
            "collector": {"buffer": str(tmp_path / "buffer.sqlite")},
        },
        environ={},
        file=tmp_path / "amr.toml",
    )

    def short_session(bus: BusConfig, listened: Sequence[MeterConfig], tz: tzinfo) -> MqttDriver:
        return MqttDriver(bus, listened, tz=tz, session_expiry=timedelta(seconds=60))

    publisher = MqttPublisher([*meters, garbled], topic=base + "/{serial}/energy", record=True)

    async def scenario(app: App) -> None:
        collector = Collector(app, push_factory=short_session)
        await collector.start()
        try:
            await cast(MqttDriver, collector.pushers[0].driver).wait_subscribed(5)
            with publisher:
                for _ in range(2):
                    await asyncio.to_thread(publisher.publish_round)
                    await asyncio.sleep(0.05)
            deadline = time.monotonic() + 10
            ids = [app.meters[m.serial].id for m in meters]
            while len(await asyncio.to_thread(app.store.readings, ids)) < 18 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            await collector.stop()

    with App.open(config) as app:
        run(scenario(app))
        for sent in publisher.sent:
            if sent.serial == garbled.serial:
                continue
            stored = app.store.readings([app.meters[sent.serial].id], start=sent.at, end=sent.at)
            assert {r.tariff: r.values for r in stored} == sent.tariffs  # exact Wh, every zone
            assert all(r.source == "askue:mqtt" for r in stored)
        assert len(app.store.readings([app.meters[m.serial].id for m in meters])) == 18
        refused = app.store.rejected(meter_serial=garbled.serial)
        assert len(refused) == 2 and all(r.reasons == ("malformed",) for r in refused)
        health = load_health(app.store)
        for meter in meters:
            record = health[app.meters[meter.serial].id]
            assert (record.status, record.polls, record.failures) == ("online", 2, 0)
        bad = health[app.meters[garbled.serial].id]
        assert bad.status == "degraded" and bad.failures == 2 and bad.last_error is not None
