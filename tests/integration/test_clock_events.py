"""Clock checks, corrections and event journals of Mercury 230 meters, against the simulator on a real
TCP "converter" and an SQLite store: the collector's policy, the meter's refusals, `amr clock` and
`amr events`, and alarms delivered to a real HTTP server (retried, kept across a restart)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from zoneinfo import ZoneInfo

import pytest

from amr.app import App
from amr.cli import main
from amr.collector.collector import Collector
from amr.config import Config, config_from_dict
from amr.core.events import MeterEvent
from amr.operations.alarms import AlarmSender
from amr.operations.command import with_collector
from amr.protocols.mercury230_time import TimeArray
from amr.store.events import events_of, load_clock, pending_alarms, save_events
from simulators.model import Faults, VirtualMeter
from simulators.serial_meters import MercurySimulator

T = TypeVar("T")
MSK = ZoneInfo("Europe/Moscow")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 30))


@dataclass
class Field:
    data: dict[str, Any]
    meters: dict[str, VirtualMeter]

    def config(self, tmp_path: Path, **sections: Any) -> Config:
        data = {**self.data, "collector": {"buffer": str(tmp_path / "buffer.sqlite")}, **sections}
        return config_from_dict(data, environ={}, file=tmp_path / "amr.toml")


@contextlib.asynccontextmanager
async def field(tmp_path: Path) -> AsyncIterator[Field]:
    """Four Mercury meters behind one TCP converter: 90 s ahead, 10 min ahead, 60 s behind (already
    corrected today by someone else), and right."""
    meters = [
        VirtualMeter("41000001", address=1, faults=Faults(clock_drift=timedelta(seconds=90))),
        VirtualMeter("41000002", address=2, faults=Faults(clock_drift=timedelta(minutes=10))),
        VirtualMeter("41000003", address=3, faults=Faults(clock_drift=timedelta(seconds=-60))),
        VirtualMeter("41000004", address=4),
    ]
    meters[2].journal.corrected_on = datetime.now(MSK).date()
    async with MercurySimulator(meters, transport="tcp", baudrate=115200) as sim:
        bus = {"name": "merc", "kind": "mercury230", "url": sim.url, "timeout": "500ms", "frame_pause": "2ms",
               "baudrate": 115200}
        data = {
            "database": {"url": f"sqlite:///{tmp_path / 'amr.sqlite'}"},
            "site": {"timezone": "Europe/Moscow"},
            "buses": [bus],
            "meters": [{"serial": m.serial, "bus": "merc", "address": m.address} for m in meters],
        }
        yield Field(data, {m.serial: m for m in meters})


def test_the_collector_corrects_within_the_limits_and_flags_what_it_cannot(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with field(tmp_path) as f:
            config = f.config(tmp_path, clock={"threshold": "5s"})
            with App.open(config) as app:

                async def work(c: Collector) -> dict[str, Any]:
                    ops = c.operations
                    return {s: await ops.sync_clock(s, force=False) for s in f.meters} | {
                        "again": await ops.sync_clock("41000001", correct=False),
                        "twice": await ops.sync_clock("41000001", force=False),
                    }

                got = await with_collector(app, work)
                ids = {m.id: s for s, m in app.meters.items()}
                stored = {ids[i]: check for i, check in load_clock(app.store).items()}
                events = events_of(app.store, ids)
        ahead, far, refused, right = (got[s] for s in f.meters)
        # 90 s ahead: shifted back within ±4 min (03 0D), the meter's clock now right
        assert ahead.state == "corrected" and 85 <= ahead.drift.total_seconds() <= 95
        assert -95 <= f.meters["41000001"].journal.shift.total_seconds() <= -85
        assert got["again"].state == "ok" and abs(got["again"].drift.total_seconds()) < 5
        # 10 minutes: beyond the user level's correction, setting not allowed: flagged
        assert far.state == "uncorrectable" and "beyond the protocol's correction of ±240 s" in far.message
        assert f.meters["41000002"].journal.shift == timedelta(0)
        # the meter refuses a second correction the same day (status 4)
        assert refused.state == "refused" and "already been corrected today" in refused.message
        assert right.state == "ok"
        assert stored["41000002"].state == "uncorrectable" and stored["41000003"].state == "refused"
        assert stored["41000001"].corrected_at is not None and -95_000 <= stored["41000001"].correction_ms <= -85_000
        codes = sorted((e.serial, e.event.code) for e in events)
        assert codes == [
            ("41000001", "clock.corrected"), ("41000002", "clock.uncorrectable"), ("41000003", "clock.refused"),
        ]
        refusal = next(e for e in events if e.event.code == "clock.refused")
        assert refusal.event.raw["code"] == "mercury.clock_corrected"

    run(scenario())


def test_admin_level_sets_a_clock_far_off_when_the_policy_allows(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with field(tmp_path) as f:
            clock = {"threshold": "5s", "meters": {"41000002": {"allow_set": True, "admin_password": "222222"}}}
            with App.open(f.config(tmp_path, clock=clock)) as app:

                async def work(c: Collector) -> Any:
                    return [await c.operations.sync_clock("41000002"), await c.operations.sync_clock("41000002")]

                first, after = await with_collector(app, work)
        assert first.state == "set" and after.state == "ok"
        assert -605 <= f.meters["41000002"].journal.shift.total_seconds() <= -595

    run(scenario())


def test_a_wrong_admin_password_is_a_refusal_not_a_crash(tmp_path: Path) -> None:
    async def scenario() -> Any:
        async with field(tmp_path) as f:
            clock = {"meters": {"41000002": {"allow_set": True, "admin_password": "999999"}}}
            with App.open(f.config(tmp_path, clock=clock)) as app:
                return await with_collector(app, lambda c: c.operations.sync_clock("41000002"))

    outcome = run(scenario())
    assert outcome.state == "refused" and "access denied" in outcome.message


def test_journals_are_read_as_events_and_stored_once(tmp_path: Path) -> None:
    local = datetime(2026, 1, 15, 3, 4, 5)  # MSK
    async def scenario() -> tuple[Any, Any, list[Any]]:
        async with field(tmp_path) as f:
            journal = f.meters["41000004"].journal
            journal.add(TimeArray.POWER, local, local + timedelta(minutes=20))
            journal.add(TimeArray.COVER, local + timedelta(hours=1), None)
            journal.add(TimeArray.PHASE_2, local + timedelta(hours=2), local + timedelta(hours=2, seconds=30))
            with App.open(f.config(tmp_path)) as app:

                async def work(c: Collector) -> Any:
                    return await c.operations.read_journal("41000004"), await c.operations.read_journal("41000004")

                first, second = await with_collector(app, work)
                stored = events_of(app.store, {app.meters["41000004"].id: "41000004"})
        return first, second, stored

    (read, new), (_, new_again), stored = run(scenario())
    utc = local.replace(tzinfo=MSK).astimezone(UTC)
    assert [(e.code, e.ts, e.detail) for e in read] == [
        ("power.off", utc, ""),
        ("power.on", utc + timedelta(minutes=20), ""),
        ("tamper.cover_opened", utc + timedelta(hours=1), ""),
        ("power.phase_off", utc + timedelta(hours=2), "phase 2"),
        ("power.phase_on", utc + timedelta(hours=2, seconds=30), "phase 2"),
    ]
    assert len(new) == 5 and new_again == []
    assert len(stored) == 5 and stored[0].event.code == "power.phase_on"  # newest first
    cover = next(s for s in stored if s.event.code == "tamper.cover_opened")
    assert cover.event.severity.value == "critical" and cover.event.text("ru") == "Вскрытие крышки счётчика"
    assert cover.event.raw["array"] == "12" and cover.event.raw["bytes"].startswith("05 04 04 15 01 26")


def test_amr_clock_and_amr_events_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async def scenario() -> tuple[int, str, int, str]:
        async with field(tmp_path) as f:
            f.meters["41000004"].journal.add(TimeArray.COVER, datetime(2026, 1, 15, 3, 4, 5), None)
            from rtoml import dumps

            data = {**f.data, "collector": {"buffer": str(tmp_path / "buffer.sqlite")}, "clock": {"threshold": "5s"}}
            path = tmp_path / "amr.toml"
            path.write_text(dumps(data), encoding="utf-8")
            code = await asyncio.to_thread(main, ["clock", "-c", str(path), "--meter", "41000001", "--sync", "--json"])
            clock_out = capsys.readouterr().out
            args = ["events", "-c", str(path), "--read", "--meter", "41000004", "--json"]
            read = await asyncio.to_thread(main, args)
            listed = await asyncio.to_thread(main, ["events", "-c", str(path), "--json"])
            events_out = capsys.readouterr().out
        return code, clock_out, read + listed, events_out

    code, clock_out, read, events_out = run(scenario())
    assert code == 0
    (meter,) = json.loads(clock_out)["meters"]
    assert meter["state"] == "corrected" and meter["events"] == ["clock.corrected"]
    assert read == 0
    events = json.loads(events_out.split("\n}\n", 1)[1])["events"]  # the listing after the read
    assert [(e["meter"], e["code"]) for e in events] == [
        ("41000001", "clock.corrected"),  # now, by the head-end
        ("41000004", "tamper.cover_opened"),  # read from the meter's journal (array 12)
    ]
    cover = events[-1]
    assert cover["timestamp"] == "2026-01-15T00:04:05+00:00" and cover["severity"] == "critical"


# --- alarms -----------------------------------------------------------------------------------


class Hook(BaseHTTPRequestHandler):
    answers: ClassVar[list[int]] = []
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        status = self.answers.pop(0) if self.answers else 200
        if status == 200:
            self.received.append(json.loads(body))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def webhook(answers: list[int]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    Hook.answers, Hook.received = list(answers), []
    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", Hook.received
    finally:
        server.shutdown()
        server.server_close()


def test_tamper_alarms_are_retried_and_survive_a_restart(tmp_path: Path) -> None:
    with webhook([500]) as (url, received):
        data = {
            "database": {"url": f"sqlite:///{tmp_path / 'amr.sqlite'}"},
            "meters": [{"serial": "41000001"}],
            "events": {"alarm": {"webhook": url, "retry": "100ms"}},
        }
        config = config_from_dict(data, environ={}, file=tmp_path / "amr.toml")
        at = datetime(2026, 1, 15, 0, 4, 5, tzinfo=UTC)
        with App.open(config) as app:
            ids = {"41000001": app.meters["41000001"].id}
            events = [
                MeterEvent("41000001", at, "tamper.cover_opened"),
                MeterEvent("41000001", at, "power.on"),  # not alarming
            ]
            save_events(app.store, ids, events, at, alarms=True)
            sender = AlarmSender(app.store, {v: k for k, v in ids.items()}, config.events.alarm)
            assert sender.send_pending() == (0, 1)  # the webhook answered 500: still pending
            assert [e.event.code for e in pending_alarms(app.store, sender.serials)] == ["tamper.cover_opened"]
        with App.open(config) as app:  # a restart: the pending alarm is in the table
            sender = AlarmSender(app.store, {app.meters["41000001"].id: "41000001"}, config.events.alarm)

            async def deliver() -> None:
                stop = asyncio.Event()
                task = asyncio.create_task(sender.run(stop))
                for _ in range(100):
                    if received:
                        break
                    await asyncio.sleep(0.05)
                stop.set()
                await task

            run(deliver())
            assert pending_alarms(app.store, sender.serials) == []
        assert len(received) == 1
        assert received[0]["code"] == "tamper.cover_opened" and received[0]["text_en"] == "Meter cover opened"
        assert received[0]["meter"] == "41000001" and received[0]["timestamp"] == at.isoformat()


# --- IEC 62056-21 -----------------------------------------------------------------------------------


def test_iec_clock_is_written_in_programming_mode_after_the_password(tmp_path: Path) -> None:
    from simulators.serial_meters import IecSimulator

    ahead = VirtualMeter("IE1", address="1001", faults=Faults(clock_drift=timedelta(seconds=40)))
    no_password = VirtualMeter("IE2", address="1002", faults=Faults(clock_drift=timedelta(seconds=40)))

    async def scenario() -> list[Any]:
        async with IecSimulator([ahead, no_password], transport="tcp", baudrate=9600) as sim:
            data = {
                "database": {"url": f"sqlite:///{tmp_path / 'amr.sqlite'}"},
                "site": {"timezone": "Europe/Moscow"},
                "buses": [{"name": "iec", "kind": "iec62056-21", "url": sim.url, "baudrate": 9600,
                           "timeout": "1s", "frame_pause": "2ms"}],
                "meters": [
                    {"serial": "IE1", "bus": "iec", "address": "1001", "password": "00000000"},
                    {"serial": "IE2", "bus": "iec", "address": "1002"},
                ],
                "collector": {"buffer": str(tmp_path / "buffer.sqlite")},
                "clock": {"threshold": "5s"},
            }
            with App.open(config_from_dict(data, environ={})) as app:

                async def work(c: Collector) -> list[Any]:
                    ops = c.operations
                    outcomes = [await ops.sync_clock("IE1"), await ops.sync_clock("IE1", correct=False),
                                await ops.sync_clock("IE2")]
                    return [*outcomes, await ops.read_journal("IE1"), await ops.read_journal("IE1")]

                return list(await with_collector(app, work))

    ahead.journal.logbook.insert(0, (datetime(2026, 1, 15, 3, 4, 5), 0x80))  # a power cut, MSK
    corrected, after, refused, (read, new), (_, again) = run(scenario())
    assert corrected.state == "corrected" and 35 <= corrected.drift.total_seconds() <= 45
    assert -45 <= ahead.journal.shift.total_seconds() <= -35  # written back through W1 0.9.2 / 0.9.1
    assert after.state == "ok" and abs(after.drift.total_seconds()) < 5
    assert refused.state == "refused" and "needs the meter's password" in refused.message
    assert no_password.journal.shift == timedelta(0)
    # the logbook P.98 (R5): the power cut and the two clock writes (0.9.2 and 0.9.1), stored once
    assert [e.code for e in read] == ["power.off", "clock.changed", "clock.changed"]
    assert read[0].ts == datetime(2026, 1, 15, 0, 4, 5, tzinfo=UTC) and len(new) == 3 and again == []


def test_two_processes_never_claim_one_correction(store: Any) -> None:
    """On SQLite, PostgreSQL and TimescaleDB: of two claims of one meter's correction the same day only one
    wins; a released claim (the correction was not made) can be taken again."""
    from amr.core.meters import Meter
    from amr.store.events import claim_correction, release_correction

    (meter,) = store.sync_meters([Meter("CLK-1", "", "", "clk-1")])
    now = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
    day = datetime(2026, 1, 14, 21, 0, tzinfo=UTC)  # midnight in Moscow
    first, second = claim_correction(store, meter.id, now, day), claim_correction(store, meter.id, now, day)
    assert first == (True, None) and second[0] is False
    release_correction(store, meter.id, now, None)
    assert claim_correction(store, meter.id, now + timedelta(seconds=1), day) == (True, None)
    assert claim_correction(store, meter.id, now + timedelta(days=1), day + timedelta(days=1))[0]


def test_claims_at_once_on_postgresql_let_one_through(postgres_store: Any) -> None:
    """Eight threads, each its own connection, claim one meter's correction at the same moment: one wins."""
    from concurrent.futures import ThreadPoolExecutor

    from amr.core.meters import Meter
    from amr.store.events import claim_correction
    from tests.conftest import _clean

    _clean(postgres_store)
    (meter,) = postgres_store.sync_meters([Meter("CLK-2", "", "", "clk-2")])
    now = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
    gate = threading.Barrier(8)

    def claim(_: int) -> bool:
        gate.wait(5)
        return claim_correction(postgres_store, meter.id, now, now - timedelta(hours=12))[0]

    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(claim, range(8)))
    assert won.count(True) == 1


def test_a_power_loss_alarm_goes_to_the_real_broker(tmp_path: Path) -> None:
    """The alarm published with QoS 1 reaches a subscriber on the Mosquitto at 127.0.0.1:1883."""
    import secrets

    from paho.mqtt import client as mqtt

    topic = f"amr/test/alarms/{secrets.token_hex(4)}"
    got: list[dict[str, Any]] = []
    subscribed = threading.Event()
    listener = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    listener.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    listener.on_subscribe = lambda *_: subscribed.set()
    listener.on_message = lambda _c, _u, message: got.append(json.loads(message.payload))
    listener.connect("127.0.0.1", 1883)
    listener.loop_start()
    try:
        assert subscribed.wait(5), "no SUBACK from the broker on 127.0.0.1:1883"
        data = {
            "database": {"url": f"sqlite:///{tmp_path / 'amr.sqlite'}"},
            "meters": [{"serial": "41000001"}],
            "events": {"alarm": {"mqtt": f"mqtt://127.0.0.1:1883/{topic}"}},
        }
        config = config_from_dict(data, environ={})
        at = datetime(2026, 1, 15, 0, 4, 5, tzinfo=UTC)
        with App.open(config) as app:
            ids = {"41000001": app.meters["41000001"].id}
            save_events(app.store, ids, [MeterEvent("41000001", at, "power.phase_off", detail="phase 3")], at,
                        alarms=True)
            sender = AlarmSender(app.store, {ids["41000001"]: "41000001"}, config.events.alarm)
            assert sender.send_pending() == (1, 0)
            for _ in range(100):
                if got:
                    break
                threading.Event().wait(0.05)
            assert pending_alarms(app.store, sender.serials) == []
    finally:
        listener.loop_stop()
        listener.disconnect()
    assert [(m["code"], m["detail"], m["severity"]) for m in got] == [("power.phase_off", "phase 3", "warning")]


def test_command_line_errors_are_one_line_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "amr.toml"
    path.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "amr.sqlite"}"\n[collector]\nbuffer = "{tmp_path / "b.sqlite"}"\n'
        '[[meters]]\nserial = "A1"\n',
        encoding="utf-8",
    )
    assert main(["clock", "-c", str(path), "--meter", "NOSUCH"]) == 1
    assert capsys.readouterr().err == "error: meter 'NOSUCH': not a polled meter\n"
    assert main(["events", "-c", str(path), "--from", "31.01.2026"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: '31.01.2026' is not a date (2026-01-31)") and "Traceback" not in err
    assert main(["events", "-c", str(path), "--meter", "A1"]) == 0
    assert capsys.readouterr().out == "0 event(s)\n"


def test_the_collector_checks_clocks_and_reads_journals_after_its_polls(tmp_path: Path) -> None:
    """A sweep (`amr collect --once`): the Mercury meter's clock is read in a session of its own and
    corrected, its journals read; the IEC meter's drift comes with its readout and is recorded."""
    from simulators.serial_meters import IecSimulator

    local = datetime(2026, 1, 15, 3, 4, 5)

    async def scenario() -> tuple[list[Any], dict[str, Any], list[Any]]:
        async with field(tmp_path) as f, IecSimulator(
            [VirtualMeter("IE9", address="1009")],
            transport="tcp", baudrate=9600,
        ) as iec:
            f.meters["41000001"].journal.add(TimeArray.COVER, local, None)
            data = {**f.data, "collector": {"buffer": str(tmp_path / "buffer.sqlite")},
                    "clock": {"threshold": "5s", "check_every": "1h"}, "events": {"read_every": "6h"}}
            data["buses"] = [*data["buses"], {"name": "iec", "kind": "iec62056-21", "url": iec.url,
                                              "baudrate": 9600, "timeout": "1s", "frame_pause": "2ms"}]
            data["meters"] = [m for m in data["meters"] if m["serial"] in ("41000001", "41000004")]
            data["meters"].append({"serial": "IE9", "bus": "iec", "address": "1009"})
            with App.open(config_from_dict(data, environ={})) as app:
                collector = Collector(app)
                await collector.start(schedule=False, push=False)
                try:
                    results = await collector.poll_all()
                    again = await collector.poll_all()  # within check_every and read_every: nothing more
                finally:
                    await collector.stop()
                ids = {m.id: s for s, m in app.meters.items()}
                checks = {ids[i]: c for i, c in load_clock(app.store).items()}
                events = events_of(app.store, ids)
        return [*results, *again], checks, events

    results, checks, events = run(scenario())
    assert all(r.ok for r in results), [r.error for r in results]
    assert checks["41000001"].state == "corrected" and checks["41000004"].state == "ok"
    assert checks["IE9"].state == "ok" and checks["IE9"].drift_ms is not None  # from the readout: no session
    codes = sorted({(e.serial, e.event.code) for e in events})
    assert ("41000001", "clock.corrected") in codes and ("41000001", "tamper.cover_opened") in codes
    assert ("41000001", "clock.changed") in codes  # the correction, as the meter's own journal has it
    assert len([e for e in events if e.event.code == "clock.corrected"]) == 1
