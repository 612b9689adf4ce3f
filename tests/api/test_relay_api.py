"""Relay commands and power quality end to end: the API, the collector and simulated DLMS meters.

Roles: only dispatchers and admins (within their objects) may command a relay; the АСКУЭ user and
the cabinet are refused with 403 ``forbidden``. The command is queued, carried out by a running
collector against the simulator (real TCP), its state read back, stored, shown and audited.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from fastapi.testclient import TestClient

from amr.api import create_app
from amr.api.security import Passwords
from amr.app import App
from amr.collector.collector import Collector
from amr.config import Config, config_from_dict
from amr.ingest.ingestor import Ingestor
from amr.store import Store
from amr.store import relay_commands as commands
from simulators.dlms import DlmsWrapperSimulator
from simulators.dlms.server import DEFAULT_PASSWORDS
from simulators.model import Faults, VirtualMeter
from tests.api.conftest import FAST_HASHER, Clock, Env, store_for

T = TypeVar("T")
RELAY = "/api/v1/dispatch/meters/{}/relay"


class Field:
    """Simulated DLMS meters served from an event loop of their own thread (the API client is blocking)."""

    def __init__(self, meters: list[VirtualMeter]) -> None:
        self.meters = meters
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.sim = DlmsWrapperSimulator(meters)
        self.run(self.sim.start())

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def close(self) -> None:
        self.run(self.sim.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def configuration(url: str, field: Field, tmp_path: Path) -> Config:
    security = {"client": 48, "authentication": "lls", "password": DEFAULT_PASSWORDS[48]}
    sim = field.sim
    return config_from_dict({
        "database": {"url": url},
        "site": {"timezone": "Europe/Moscow"},
        "collector": {"buffer": str(tmp_path / "buffer.sqlite")},
        "relay": {"check_every": "100ms", "retry": "300ms"},
        "quality": {"every": "200ms"},
        "buses": [{"name": "dl", "kind": "dlms-tcp", "url": sim.url("R1"), "timeout": "1s", "retries": 0,
                   "dlms": security}],
        "meters": [
            {"serial": "R1", "object": "Дом 1", "accounts": ["A1"], "bus": "dl", "address": 17,
             "dlms": {"host": sim.url("R1")}},
            {"serial": "R2", "object": "ПС Северная", "accounts": ["B1"], "bus": "dl", "address": 18,
             "dlms": {"host": sim.url("R2")}},
            {"serial": "M2", "object": "Дом 1", "accounts": ["A2"]},
        ],
    }, environ={})


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def setup(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[tuple[Env, Field]]:
    store, url = store_for(request, tmp_path, sqlite_template)
    start = datetime.now(UTC) - timedelta(hours=1)
    field = Field([VirtualMeter("R1", address=17, start=start),
                   VirtualMeter("R2", address=18, start=start, faults=Faults(voltage=262.0))])
    try:
        config = configuration(url, field, tmp_path)
        meters = store.sync_meters(config.meter_objects())
        ingestor = Ingestor(store, meters, config.site.clock_tolerance, lambda: datetime.now(UTC), config.site.tz)
        app = App(config, store, {m.serial: m for m in meters}, ingestor)
        api = create_app(app, passwords=Passwords(FAST_HASHER))
        with TestClient(api) as client:
            env = Env(client, api.state.amr, Clock(datetime.now(UTC)), request.param)
            env.user("ivan", "askue", account=["A1"])
            env.user("cab", "cabinet", key=True, account=["A1"])
            env.user("disp", "dispatcher")
            env.user("north", "dispatcher", object=["ПС Северная"])
            env.user("root", "admin")
            yield env, field
    finally:
        field.close()
        if request.param == "sqlite":
            store.close()


def collect_until(env: Env, field: Field, done: Any, limit: float = 30) -> None:
    """Run a collector (as `amr collect` does, on the same store) until `done()` holds."""

    async def scenario() -> None:
        app = await asyncio.to_thread(App.open, env.app.config)
        collector = Collector(app)
        await collector.start()
        try:
            ends = time.monotonic() + limit
            while not await asyncio.to_thread(done):
                assert time.monotonic() < ends, "the collector did not get there in time"
                await asyncio.sleep(0.1)
        finally:
            await collector.stop()
            app.close()

    field.run(scenario(), timeout=limit + 30)


def finished(store: Store, command_id: int) -> bool:
    found = commands.get(store, command_id)
    return found is not None and found.status in commands.FINAL


def test_only_dispatchers_and_admins_within_their_objects_may_command_a_relay(setup: tuple[Env, Field]) -> None:
    env, _ = setup
    body = {"action": "disconnect", "reason": "долг"}
    askue = env.client.post(RELAY.format("R1"), json=body, headers=env.h("ivan"))
    assert askue.status_code == 403 and askue.json()["code"] == "forbidden"
    cabinet = env.client.post(RELAY.format("R1"), json=body, headers={"X-API-Key": env.api_keys["cab"]})
    assert cabinet.status_code == 403 and cabinet.json()["code"] == "forbidden"
    outside = env.client.post(RELAY.format("R1"), json=body, headers=env.h("north"))
    assert outside.status_code == 404
    assert env.client.get(RELAY.format("R1"), headers=env.h("ivan")).status_code == 403
    no_relay = env.client.post(RELAY.format("M2"), json=body, headers=env.h("disp"))
    assert no_relay.status_code == 409 and no_relay.json()["code"] == "no_relay"
    wrong = env.client.post(RELAY.format("R1"), json={"action": "explode", "reason": "x"}, headers=env.h("disp"))
    assert wrong.status_code == 422
    unexplained = env.client.post(RELAY.format("R1"), json={"action": "disconnect"}, headers=env.h("disp"))
    assert unexplained.status_code == 422
    past = {**body, "deadline": (datetime.now(UTC) - timedelta(minutes=1)).isoformat()}
    late = env.client.post(RELAY.format("R1"), json=past, headers=env.h("root"))
    assert late.status_code == 422 and late.json()["code"] == "invalid_deadline"
    assert commands.of_meter(env.ctx.store, env.app.meters["R1"].id) == []  # nothing refused was queued


def test_a_disconnect_is_queued_carried_out_by_the_collector_read_back_shown_and_audited(
    setup: tuple[Env, Field],
) -> None:
    env, field = setup
    answer = env.client.post(RELAY.format("R2"), json={"action": "disconnect", "reason": "долг 3 мес."},
                             headers=env.h("north"))
    assert answer.status_code == 202, answer.text
    queued = answer.json()
    assert queued["status"] == "queued" and queued["requested_by"] == "north" and queued["state"] is None
    collect_until(env, field, lambda: finished(env.ctx.store, queued["id"]))
    shown = env.client.get(f"/api/v1/dispatch/relay-commands/{queued['id']}", headers=env.h("north")).json()
    assert (shown["status"], shown["state"], shown["supplied"], shown["acted"]) == ("done", "disconnected", False,
                                                                                    True)
    relay = env.client.get(RELAY.format("R2"), headers=env.h("root")).json()
    assert relay["state"] == "disconnected" and relay["supplied"] is False
    assert relay["commands"][0]["id"] == queued["id"]
    assert field.meters[1].relay == "disconnected"
    hidden = env.client.get(f"/api/v1/dispatch/relay-commands/{queued['id']}", headers=env.h("ivan"))
    assert hidden.status_code == 403
    trail = [r for r in env.ctx.store.audit_log() if r["subject"] == "meter R2"]
    assert [r["action"] for r in reversed(trail)] == ["relay_disconnect_requested", "relay_disconnect_done"]
    assert trail[1]["actor"] == "north" and trail[0]["actor"].startswith("collector:")
    assert all(r["reason"] == "долг 3 мес." for r in trail) and trail[0]["details"]["state"] == "disconnected"


def test_a_command_nobody_carries_out_is_shown_expired_after_its_deadline(setup: tuple[Env, Field]) -> None:
    env, _ = setup
    deadline = datetime.now(UTC) + timedelta(seconds=1)
    body = {"action": "reconnect", "reason": "оплачено", "deadline": deadline.isoformat()}
    queued = env.client.post(RELAY.format("R1"), json=body, headers=env.h("disp")).json()
    time.sleep(max(0.0, (deadline - datetime.now(UTC)).total_seconds()) + 0.5)
    shown = env.client.get(f"/api/v1/dispatch/relay-commands/{queued['id']}", headers=env.h("disp")).json()
    assert shown["status"] == "expired" and shown["attempts"] == 0 and "before any collector" in shown["error"]


def test_power_quality_is_collected_stored_apart_and_shown_with_events_to_whoever_sees_the_meter(
    setup: tuple[Env, Field],
) -> None:
    env, field = setup

    def sampled() -> bool:
        got = env.client.get("/api/v1/meters/R2/quality", headers=env.h("root")).json()
        return bool(got["samples"]) and bool(env.client.get("/api/v1/meters/R1/quality",
                                                            headers=env.h("root")).json()["samples"])

    collect_until(env, field, sampled)
    own = env.client.get("/api/v1/meters/R1/quality", headers=env.h("ivan"))
    assert own.status_code == 200
    first = own.json()["samples"][0]
    assert 225 < first["voltage_l1"] < 235 and 49.9 < first["frequency"] < 50.1 and own.json()["events"] == []
    assert own.json()["units"]["voltage_l1"] == "V" and own.json()["units"]["power_total"] == "W"
    assert env.client.get("/api/v1/meters/R2/quality", headers=env.h("ivan")).status_code == 404
    swell = env.client.get("/api/v1/meters/R2/quality", headers=env.h("north")).json()
    kinds = {(e["quantity"], e["kind"], e["threshold"]) for e in swell["events"]}
    assert kinds == {("voltage_l1", "above", 253.0), ("voltage_l2", "above", 253.0), ("voltage_l3", "above", 253.0)}
