"""Events and clocks through the API: each role sees only its meters' events, only staff see clocks and
ask for a correction (audited), and a correction goes through the collector to a simulated Mercury 230
(which refuses a second one the same day), end to end over TCP."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from amr.api import create_app
from amr.api.security import Passwords
from amr.app import App
from amr.collector.collector import Collector
from amr.collector.result import ApiPoller
from amr.config import config_from_dict
from amr.core.events import MeterEvent
from amr.store.events import ClockCheck, save_clock, save_events
from simulators.model import Faults, VirtualMeter
from simulators.serial_meters import MercurySimulator
from tests.api.conftest import FAST_HASHER, NOW, PASSWORD, Env

AT = NOW - timedelta(hours=3)


def seed(env: Env) -> None:
    ids = {s: m.id for s, m in env.app.meters.items()}
    events = [
        MeterEvent("M1", AT, "power.off", {"bytes": "00 01"}),
        MeterEvent("M1", AT + timedelta(minutes=5), "power.on"),
        MeterEvent("M1", AT + timedelta(hours=1), "tamper.cover_opened"),
        MeterEvent("M3", AT, "power.phase_off", detail="phase 2"),
    ]
    save_events(env.app.store, ids, events, NOW)
    save_events(env.app.store, ids, events, NOW)  # read again: stored once
    save_clock(env.app.store, ClockCheck(ids["M1"], NOW, "corrected", AT, 91_500, "shifted by -91.5 s", NOW, -91_500))
    save_clock(env.app.store, ClockCheck(ids["M3"], NOW, "uncorrectable", AT, 600_000, "beyond ±240 s"))


def test_a_meter_s_events_newest_first_in_the_caller_s_language(env: Env) -> None:
    seed(env)
    answer = env.client.get("/api/v1/meters/M1/events", headers=env.h("ivan", "en"))
    assert answer.status_code == 200, answer.text
    items = answer.json()["items"]
    assert [i["code"] for i in items] == ["tamper.cover_opened", "power.on", "power.off"]
    cover = items[0]
    assert cover["severity"] == "critical" and cover["text"] == "Meter cover opened"
    assert cover["text_ru"] == "Вскрытие крышки счётчика" and cover["category"] == "tamper"
    assert cover["timestamp"] == "2026-03-10T07:00:00Z" and cover["local_time"].startswith("2026-03-10T10:00")
    assert items[2]["raw"] == {"bytes": "00 01"}
    ru = env.client.get("/api/v1/meters/M1/events", headers=env.h("cab")).json()["items"]
    assert ru[0]["text"] == "Вскрытие крышки счётчика"
    some = env.client.get(
        "/api/v1/meters/M1/events", params={"code": "power.on", "from": "2026-03-10"}, headers=env.h("disp")
    ).json()
    assert [i["code"] for i in some["items"]] == ["power.on"]
    page = env.client.get("/api/v1/meters/M1/events", params={"limit": 2}, headers=env.h("root")).json()
    assert len(page["items"]) == 2 and page["next_offset"] == 2


def test_events_are_scoped_by_role(env: Env) -> None:
    seed(env)
    for login, serial in (("ivan", "M3"), ("petr", "M1"), ("cab", "M3"), ("north", "M1")):
        answer = env.client.get(f"/api/v1/meters/{serial}/events", headers=env.h(login))
        assert answer.status_code == 404 and answer.json()["code"] == "not_found", (login, serial)
    north = env.client.get("/api/v1/meters/M3/events", headers=env.h("north")).json()["items"]
    assert [(i["code"], i["detail"]) for i in north] == [("power.phase_off", "phase 2")]
    bad = env.client.get("/api/v1/meters/M1/events", params={"from": "2026-03-10", "to": "2026-03-09"},
                         headers=env.h("ivan"))
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_period"


def test_clocks_are_for_staff_within_their_objects(env: Env) -> None:
    seed(env)
    for login in ("ivan", "cab"):
        assert env.client.get("/api/v1/dispatch/clock", headers=env.h(login)).status_code == 403
    items = {i["serial"]: i for i in env.client.get("/api/v1/dispatch/clock", headers=env.h("disp")).json()["items"]}
    assert items["M1"]["state"] == "corrected" and items["M1"]["drift_s"] == 91.5
    assert items["M1"]["correction_s"] == -91.5 and items["M1"]["threshold_s"] == 10
    assert items["M3"]["state"] == "uncorrectable" and items["M2"]["state"] == "unknown"
    north = env.client.get("/api/v1/dispatch/clock", headers=env.h("north")).json()["items"]
    assert [i["serial"] for i in north] == ["M3"]


def test_asking_for_a_correction_needs_staff_and_a_polled_meter(env: Env) -> None:
    for login in ("ivan", "cab"):
        answer = env.client.post("/api/v1/dispatch/meters/M1/clock", json={"reason": "x"}, headers=env.h(login))
        assert answer.status_code == 403 and answer.json()["code"] == "forbidden"
    answer = env.client.post("/api/v1/dispatch/meters/M1/clock", json={"reason": "x"}, headers=env.h("north"))
    assert answer.status_code == 404
    answer = env.client.post("/api/v1/dispatch/meters/M1/clock", json={"reason": "x"}, headers=env.h("disp"))
    assert answer.status_code == 409 and answer.json()["code"] == "no_bus"  # M1 is on no bus
    assert env.client.post("/api/v1/dispatch/meters/M1/clock", json={}, headers=env.h("disp")).status_code == 422


def test_event_and_clock_counters_in_metrics(env: Env) -> None:
    seed(env)
    text = env.client.get("/metrics").text
    assert 'amr_meter_events_total{code="tamper.cover_opened",severity="critical"} 1.0' in text
    assert 'amr_meter_events_total{code="power.off",severity="warning"} 1.0' in text
    assert 'amr_meter_clocks{state="uncorrectable"} 1.0' in text


# --- end to end: the API, the collector and a simulated meter --------------------------------------


@contextlib.contextmanager
def mercury_in_thread(meters: list[VirtualMeter]) -> Iterator[str]:
    """Run a Mercury simulator over TCP in a thread of its own; yield its URL."""
    loop = asyncio.new_event_loop()
    started: asyncio.Future[str] = loop.create_future()
    stop = asyncio.Event()

    async def serve() -> None:
        async with MercurySimulator(meters, transport="tcp", baudrate=115200) as sim:
            started.set_result(sim.url)
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    try:
        yield asyncio.run_coroutine_threadsafe(asyncio.wait_for(asyncio.shield(started), 10), loop).result(15)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


def test_a_dispatcher_corrects_a_clock_and_the_meter_refuses_a_second_time(tmp_path: Path) -> None:
    virtual = VirtualMeter("41000007", address=7, faults=Faults(clock_drift=timedelta(seconds=75)))
    with mercury_in_thread([virtual]) as url:
        data: dict[str, Any] = {
            "database": {"url": f"sqlite:///{tmp_path / 'amr.sqlite'}"},
            "buses": [{"name": "merc", "kind": "mercury230", "url": url, "timeout": "500ms", "baudrate": 115200}],
            "meters": [{"serial": "41000007", "bus": "merc", "address": 7, "object": "ТП-7"}],
            "collector": {"buffer": str(tmp_path / "buffer.sqlite")},
            "clock": {"correct": False},  # the collector alone would not correct: the dispatcher asks
        }
        with App.open(config_from_dict(data, environ={})) as app:
            collector = Collector(app)
            api = create_app(app, ApiPoller(collector), passwords=Passwords(FAST_HASHER))
            with TestClient(api) as client:
                ctx = api.state.amr
                ctx.users.add("disp", "dispatcher", ctx.passwords.hash(PASSWORD), datetime.now(UTC), "Disp")
                token = client.post("/api/v1/auth/token", json={"login": "disp", "password": PASSWORD}).json()
                headers = {"Authorization": f"Bearer {token['access_token']}", "Accept-Language": "en"}
                first = client.post("/api/v1/dispatch/meters/41000007/clock", json={"reason": "drift on the page"},
                                    headers=headers)
                assert first.status_code == 200, first.text
                with app.store.engine.begin() as conn:  # forget our own record: only the meter knows now
                    conn.exec_driver_sql("UPDATE meter_clock SET corrected_at = NULL")
                virtual.faults = Faults(clock_drift=timedelta(seconds=150))  # it drifts again the same day
                second = client.post("/api/v1/dispatch/meters/41000007/clock", json={"reason": "again"},
                                     headers=headers)
                clocks = client.get("/api/v1/dispatch/clock", headers=headers).json()["items"]
                events = client.get("/api/v1/meters/41000007/events", headers=headers).json()["items"]
            audit = app.store.audit_log()
    body = first.json()
    assert body["state"] == "corrected" and 70 <= body["drift_s"] <= 80 and body["events"] == ["clock.corrected"]
    assert second.status_code == 409 and second.json()["code"] == "clock_refused"
    assert "already been corrected today" in second.json()["message"]
    assert clocks[0]["state"] == "refused"
    assert [e["code"] for e in events] == ["clock.refused", "clock.corrected"]
    assert [(a["actor"], a["action"], a["reason"]) for a in audit] == [
        ("disp", "clock_correction", "again"), ("disp", "clock_correction", "drift on the page"),
    ]


def test_a_request_through_an_api_elsewhere_is_carried_out_by_the_collector(tmp_path: Path) -> None:
    virtual = VirtualMeter("41000008", address=8, faults=Faults(clock_drift=timedelta(seconds=-50)))
    with mercury_in_thread([virtual]) as url:
        data: dict[str, Any] = {
            "database": {"url": f"sqlite:///{tmp_path / 'amr.sqlite'}"},
            "buses": [{"name": "merc", "kind": "mercury230", "url": url, "timeout": "500ms", "baudrate": 115200}],
            "meters": [{"serial": "41000008", "bus": "merc", "address": 8}],
            "collector": {"buffer": str(tmp_path / "buffer.sqlite")},
        }
        with App.open(config_from_dict(data, environ={})) as app:
            api = create_app(app, passwords=Passwords(FAST_HASHER))  # `amr api`: no collector here
            with TestClient(api) as client:
                ctx = api.state.amr
                ctx.users.add("root", "admin", ctx.passwords.hash(PASSWORD), datetime.now(UTC), "Root")
                token = client.post("/api/v1/auth/token", json={"login": "root", "password": PASSWORD}).json()
                headers = {"Authorization": f"Bearer {token['access_token']}"}
                asked = client.post("/api/v1/dispatch/meters/41000008/clock", json={"reason": "behind"},
                                    headers=headers)

            async def collector_elsewhere() -> None:  # `amr collect`: serves the stored request
                collector = Collector(app)
                stop = asyncio.Event()
                task = asyncio.create_task(collector.operations.serve_requests(stop, every=0.05))
                for _ in range(200):
                    if any(a["action"] == "clock_correction_done" for a in app.store.audit_log()):
                        break
                    await asyncio.sleep(0.05)
                stop.set()
                await task

            asyncio.run(asyncio.wait_for(collector_elsewhere(), 20))
            audit = app.store.audit_log()
            with app.store.engine.connect() as conn:
                left = conn.exec_driver_sql("SELECT count(*) FROM clock_requests").scalar()
    assert asked.status_code == 202 and asked.json()["state"] == "requested"
    done = audit[0]
    assert (done["actor"], done["action"], done["reason"]) == ("root", "clock_correction_done", "behind")
    assert done["details"]["state"] == "corrected" and -55 <= done["details"]["drift_s"] <= -45
    assert 45 <= virtual.journal.shift.total_seconds() <= 55 and left == 0
