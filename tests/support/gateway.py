"""An MQTT gateway publishing one message to a running collector (real Mosquitto), for the interval tests."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta, tzinfo
from pathlib import Path
from typing import Any, cast

import paho.mqtt.publish as publish

from amr.app import App
from amr.collector.collector import Collector
from amr.config import BusConfig, Config, MeterConfig, config_from_dict
from amr.drivers.mqtt.driver import MqttDriver
from tests.support.broker import HOST, PORT


def gateway_config(tmp_path: Path, base: str, meter: dict[str, Any], **sections: Any) -> Config:
    """One MQTT bus listening on ``{base}/+/profile`` and `meter` on it, a SQLite store in `tmp_path`."""
    return config_from_dict(
        {
            "database": {"url": f"sqlite:///{tmp_path / 'amr.sqlite'}"},
            "site": {"timezone": "Europe/Moscow"},
            "buses": [{"name": "mqtt", "kind": "mqtt", "url": f"mqtt://{HOST}:{PORT}", "topics": [f"{base}/+/profile"],
                       "client_id": f"amrtest-{uuid.uuid4().hex[:10]}"}],
            "meters": [{"bus": "mqtt", **meter}],
            "collector": {"buffer": str(tmp_path / "buffer.sqlite")},
            **sections,
        },
        environ={},
        file=tmp_path / "amr.toml",
    )  # fmt: skip


def _short_session(bus: BusConfig, listened: Sequence[MeterConfig], tz: tzinfo) -> MqttDriver:
    return MqttDriver(bus, listened, tz=tz, session_expiry=timedelta(seconds=60))


async def publish_to_collector(app: App, topic: str, message: dict[str, Any], done: Callable[[], bool]) -> None:
    """Start a collector on `app`, publish `message` (QoS 1) on `topic` once it is subscribed, wait up
    to 10 s until `done()` (called in a thread), stop the collector."""
    collector = Collector(app, push_factory=_short_session)
    await collector.start()
    try:
        await cast(MqttDriver, collector.pushers[0].driver).wait_subscribed(5)
        payload = json.dumps(message)
        await asyncio.to_thread(publish.single, topic, payload, qos=1, hostname=HOST, port=PORT)
        deadline = time.monotonic() + 10
        while not await asyncio.to_thread(done) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        await collector.stop()
