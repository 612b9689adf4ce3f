"""MQTT gateways publishing interval values: decoding, and the collector storing them (real Mosquitto, SQLite)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from amr.app import App
from amr.config import MeterConfig
from amr.core.domain import Channel
from amr.core.intervals import IntervalStatus, ProfileFlag
from amr.drivers.mqtt.payloads import PayloadDecoder
from tests.integration.test_collector import run
from tests.support.broker import require_broker
from tests.support.gateway import gateway_config, publish_to_collector

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
    config = gateway_config(tmp_path, base, {"serial": "GW-1", "ct_ratio": 20})

    with App.open(config) as app:
        run(publish_to_collector(app, f"{base}/GW-1/profile", MESSAGE, lambda: len(app.store.intervals("GW-1")) >= 3))
        stored = app.store.intervals("GW-1")
        assert [(v.channel, v.start, v.wh) for v in stored] == [
            (Channel.A_PLUS, AT, 512 * 20),  # primary side: CT 20
            (Channel.A_PLUS, AT + timedelta(minutes=30), 250 * 20),
            (Channel.R_PLUS, AT, 100 * 20),
        ]
        assert stored[1].status is IntervalStatus.INCOMPLETE
        assert app.store.readings([app.meters["GW-1"].id]) == []
        assert app.store.rejected(meter_serial="GW-1") == []  # an intervals-only message is no malformed reading
