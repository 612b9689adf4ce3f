"""The collector against simulated meters on real transports (loopback TCP, ptys), into a real store.

A field of meters: Modbus TCP devices each on its own port (one silent), a Mercury 230 line on a
pty (one silent meter among good ones), a second Mercury line over TCP with a meter whose CRC is
always wrong, a Modbus RTU line on a pty and an IEC 62056-21 meter behind a TCP converter.
Timeout 0.3 s, 2 retries, backoff 50 ms: a silent meter costs 3 × 0.3 s + 0.15 s = 1.05 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from amr.app import App
from amr.cli import main as collect_main
from amr.collector.collector import Collector
from amr.collector.command import once
from amr.collector.result import PollResult
from amr.config import Config, config_from_dict, load_config
from amr.core.domain import Channel, kwh_from_wh
from amr.demo.field import to_toml
from amr.store import Store
from amr.store.health import load_health
from simulators.modbus import ModbusRtuSimulator, ModbusTcpSimulator
from simulators.model import Faults, VirtualMeter
from simulators.serial_meters import IecSimulator, MercurySimulator

T = TypeVar("T")
ROOT = Path(__file__).parents[2]
TIMEOUT, RETRIES, BACKOFF = 0.3, 2, 0.05
WORST = TIMEOUT * (RETRIES + 1) + BACKOFF * 3  # one silent meter's poll: 1.05 s
NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)  # the serial simulators' fixed clock


def run(coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def toml(data: dict[str, Any]) -> str:
    """The configuration as TOML, written as the demo writes its own."""
    return to_toml(data, header="")


@dataclass
class Field:
    """The simulated field and a configuration that reaches it."""

    data: dict[str, Any]
    virtual: dict[str, VirtualMeter]
    tcp: dict[str, ModbusTcpSimulator]
    good: list[str]
    silent: list[str]

    def config(self, tmp_path: Path, **collector: Any) -> Config:
        data = {**self.data, "collector": {"buffer": str(tmp_path / "buffer.sqlite"), **collector}}
        return config_from_dict(data, environ={}, file=tmp_path / "amr.toml")

    def write(self, tmp_path: Path, **collector: Any) -> Path:
        path = tmp_path / "amr.toml"
        data = {**self.data, "collector": {"buffer": str(tmp_path / "buffer.sqlite"), **collector}}
        path.write_text(toml(data), encoding="utf-8")
        return path


def fixed_clock() -> datetime:
    return NOW


def line(name: str, kind: str, url: str, **extra: Any) -> dict[str, Any]:
    serial = {} if kind == "modbus-tcp" else {"frame_pause": "5ms"}  # a key of serial lines only
    return {"name": name, "kind": kind, "url": url, "timeout": f"{int(TIMEOUT * 1000)}ms", "retries": RETRIES,
            "retry_backoff": f"{int(BACKOFF * 1000)}ms", **serial, **extra}


@contextlib.asynccontextmanager
async def field(database: str, *, silent_tcp: int = 3, schedule: str | None = None) -> AsyncIterator[Field]:
    """Start the simulators; yield the field with its configuration data (store at `database`)."""
    faults = Faults(silent=True)
    tcp_meters = [VirtualMeter(f"MB{n}", address=n) for n in (1, 2)]
    tcp_meters += [VirtualMeter(f"MB{n}", address=n, faults=faults) for n in range(3, 3 + silent_tcp)]
    mercury = [VirtualMeter("ME17", address=17, tariffs=2), VirtualMeter("ME19", address=19, faults=faults)]
    crc = [VirtualMeter("ME30", address=30, faults=Faults(corrupt=1.0)), VirtualMeter("ME31", address=31)]
    rtu = [VirtualMeter("RT1", address=1)]
    iec = [VirtualMeter("IE1", address="1001", tariffs=2)]
    async with contextlib.AsyncExitStack() as stack:
        tcp = {m.serial: await stack.enter_async_context(ModbusTcpSimulator([m])) for m in tcp_meters}
        merc = await stack.enter_async_context(MercurySimulator(mercury, clock=fixed_clock))
        merc_tcp = await stack.enter_async_context(MercurySimulator(crc, transport="tcp", clock=fixed_clock))
        rtu_sim = await stack.enter_async_context(ModbusRtuSimulator(rtu, baudrate=19200))
        iec_sim = await stack.enter_async_context(
            IecSimulator(iec, transport="tcp", baudrate=9600, clock=fixed_clock)
        )
        first = next(iter(tcp.values()))
        extra = {"schedule": schedule} if schedule else {}
        buses = [
            line("tcp", "modbus-tcp", first.url, **extra),
            line("merc", "mercury230", merc.url, **extra),
            line("merc-tcp", "mercury230", merc_tcp.url, **extra),
            line("rtu", "modbus-rtu", rtu_sim.url, baudrate=19200, **extra),
            line("iec", "iec62056-21", iec_sim.url, baudrate=9600, **extra),
        ]
        meters = [
            {"serial": m.serial, "bus": "tcp", "address": f"127.0.0.1:{tcp[m.serial].port}/{m.address}",
             "profile": "eastron-sdm630"}
            for m in tcp_meters
        ]
        meters += [{"serial": m.serial, "bus": "merc", "address": m.address, "tariffs": m.tariffs} for m in mercury]
        meters += [{"serial": m.serial, "bus": "merc-tcp", "address": m.address, "tariffs": m.tariffs} for m in crc]
        meters += [{"serial": "RT1", "bus": "rtu", "address": 1, "profile": "eastron-sdm630"}]
        meters += [{"serial": "IE1", "bus": "iec", "address": "1001", "tariffs": 2}]
        virtual = {m.serial: m for m in [*tcp_meters, *mercury, *crc, *rtu, *iec]}
        silent = [m.serial for m in virtual.values() if m.faults.silent]
        good = [s for s, m in virtual.items() if not m.faults.silent and not m.faults.corrupt]
        data = {"database": {"url": database}, "site": {"timezone": "Europe/Moscow"}, "buses": buses,
                "meters": meters}
        yield Field(data, virtual, tcp, good, silent)


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'amr.sqlite'}"


def kwh(wh: int | None) -> str | None:
    return None if wh is None else str(kwh_from_wh(wh))


def test_once_json_polls_every_meter_and_readings_land(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async def scenario() -> tuple[int, str, int, str]:
        async with field(sqlite_url(tmp_path)) as f:
            path = f.write(tmp_path)
            code = await asyncio.to_thread(collect_main, ["collect", "-c", str(path), "--once", "--json"])
            out = capsys.readouterr().out
            text_code = await asyncio.to_thread(collect_main, ["collect", "-c", str(path), "--once"])
            return code, out, text_code, capsys.readouterr().out

    code, out, text_code, text = run(scenario())
    assert code == 0 and text_code == 0
    report = json.loads(out)
    by_serial = {m["serial"]: m for m in report["meters"]}
    assert set(by_serial) == {"MB1", "MB2", "MB3", "MB4", "MB5", "ME17", "ME19", "ME30", "ME31", "RT1", "IE1"}
    assert report["answered"] == 6 and report["failed"] == 5 and report["skipped"] == []
    assert report["accepted"] == 3 + 3 * 3  # ME17, ME31 and IE1 report the total and two tariff zones
    assert report["rejected"] == {} and report["buffered"] == 0
    for serial in ("MB1", "MB2", "ME17", "ME31", "RT1", "IE1"):
        entry = by_serial[serial]
        assert entry["ok"] and entry["error"] is None and entry["status"] == "online" and entry["attempts"] == 1
        assert entry["values"]["a_plus"] is not None
    for serial in ("MB3", "ME19"):
        entry = by_serial[serial]
        assert not entry["ok"] and entry["error_kind"] == "ReadTimeout" and entry["attempts"] == 3
        assert "no answer" in entry["error"] and entry["status"] == "degraded" and entry["values"] is None
    assert by_serial["ME30"]["error_kind"] == "ProtocolError" and "CRC" in by_serial["ME30"]["error"]
    # the text form: one line a meter, then the totals
    assert "MB3" in text and "FAILED after 3 attempt(s)" in text
    assert "A+ " in text and "6 of 11 meter(s) answered" in text
    assert "accepted 0, duplicate 3" in next(row for row in text.splitlines() if row.startswith("IE1"))

    config = load_config(tmp_path / "amr.toml")
    with App.open(config) as app:
        for serial in ("MB1", "ME17", "RT1", "IE1"):
            stored = app.store.readings([app.meters[serial].id], tariff=0)
            assert len(stored) == (1 if serial == "IE1" else 2)  # two sweeps; the IEC clock stood still
            assert kwh(stored[0].values[Channel.A_PLUS]) == by_serial[serial]["values"]["a_plus"]
            assert stored[0].source in ("askue:modbus", "askue:serial")
        assert app.store.readings([app.meters["MB3"].id]) == []


def test_exact_values_of_the_serial_meters(tmp_path: Path) -> None:
    async def scenario() -> list[PollResult]:
        async with field(sqlite_url(tmp_path), silent_tcp=0) as f:
            with App.open(f.config(tmp_path)) as app:
                collector = Collector(app)
                await collector.start(schedule=False)
                try:
                    results = [await collector.poll_now(s) for s in ("ME17", "IE1")]
                finally:
                    await collector.stop()
            for result in results:
                registers = f.virtual[result.serial].registers(NOW)
                assert result.values is not None and result.values.tariffs == registers
                assert result.channels(0) == {c.value: kwh(v) for c, v in registers[0].items()}
            return results

    me17, ie1 = run(scenario())
    assert ie1.readings[0].ts == NOW  # the IEC meter's clock; Mercury has none: the poll time
    assert me17.readings[0].ts == me17.values.polled_at if me17.values else False


def test_silent_meters_cost_one_timeout_run_per_sweep_and_go_offline(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[float], dict[str, Any], dict[str, int]]:
        async with field(sqlite_url(tmp_path)) as f:
            with App.open(f.config(tmp_path, offline_after=3)) as app:
                collector = Collector(app)
                await collector.start(schedule=False)
                sweeps = []
                try:
                    for _ in range(3):
                        started = time.monotonic()
                        results = await collector.poll_all()
                        sweeps.append(time.monotonic() - started)
                        assert sorted(r.serial for r in results if r.ok) == sorted([*f.good])
                        assert [r.serial for r in results] == list(collector.polled)  # in config order
                        if len(sweeps) > 1:  # the meters that failed before start first
                            failing = max(r.started_at for r in results if not r.ok)
                            assert failing <= min(r.started_at for r in results if r.ok)
                finally:
                    await collector.stop()
                health = {s: load_health(app.store)[app.meters[s].id] for s in f.virtual}
                counts = {s: len(app.store.readings([app.meters[s].id], tariff=0)) for s in f.virtual}
        return sweeps, health, counts

    sweeps, health, counts = run(scenario(), timeout=60)
    # four silent meters (three on TCP, one on a serial line): each sweep ≈ one silent meter's cost
    for elapsed in sweeps:
        assert WORST * 0.85 <= elapsed < 2 * WORST, sweeps  # four silent meters one after another: 4.2 s
    for serial in ("MB3", "MB4", "MB5", "ME19"):
        record = health[serial]
        assert record.status == "offline" and record.consecutive_failures == 3
        assert (record.polls, record.failures, record.last_success_at) == (3, 3, None)
        assert record.last_error is not None and "no answer" in record.last_error
        assert counts[serial] == 0
    crc = health["ME30"]
    assert crc.status == "offline" and crc.last_error is not None and "CRC mismatch" in crc.last_error
    for serial in ("MB1", "MB2", "ME17", "ME31", "RT1"):
        assert health[serial].status == "online" and health[serial].polls == 3 and health[serial].failures == 0
        assert counts[serial] == 3
    assert counts["IE1"] == 1  # the IEC meter's fixed clock: the same reading again is a duplicate


@pytest.mark.postgres
def test_once_on_the_real_postgresql(postgres_url: str, postgres_store: Store, tmp_path: Path) -> None:
    from tests.conftest import _clean

    _clean(postgres_store)

    async def scenario() -> int:
        async with field(postgres_url, silent_tcp=1) as f:
            return await once(f.config(tmp_path), as_json=True)

    assert run(scenario()) == 0
    with App.open(load_config_for(postgres_url, tmp_path)) as app:
        stored = app.store.readings([app.meters["MB1"].id, app.meters["ME17"].id], tariff=0)
        assert {r.meter_id for r in stored} == {app.meters["MB1"].id, app.meters["ME17"].id}
        health = load_health(app.store)
        assert health[app.meters["MB3"].id].status == "degraded"
        assert health[app.meters["MB1"].id].status == "online"


def load_config_for(database: str, tmp_path: Path) -> Config:
    meters = [{"serial": s} for s in ("MB1", "MB3", "ME17")]
    return config_from_dict({"database": {"url": database}, "meters": meters}, environ={}, file=tmp_path / "x.toml")


def test_schedule_fires_polls_never_overlap_and_poll_now_joins(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[PollResult], PollResult, PollResult, PollResult, float, int]:
        async with field(sqlite_url(tmp_path), silent_tcp=0, schedule="1s") as f:
            f.virtual["MB2"].faults = Faults(delay=0.5)  # busy half of every second
            mb2 = next(m for m in f.data["meters"] if m["serial"] == "MB2")
            mb2["timeout"] = "800ms"
            with App.open(f.config(tmp_path)) as app:
                collector = Collector(app)
                finished: list[PollResult] = []
                collector.on_poll.append(finished.append)
                await collector.start()
                try:
                    while "MB2" not in collector.busy():
                        await asyncio.sleep(0.01)
                    await asyncio.sleep(0.05)  # a poll is busy from when it is queued; let it start (it lasts 0.5 s)
                    asked = datetime.now(UTC)
                    joined = await collector.poll_now("MB2")  # a scheduled poll is running: join it
                    both = await asyncio.gather(collector.poll_now("ME17"), collector.poll_now("ME17"))
                    await asyncio.sleep(2.6)
                finally:
                    await collector.stop()
                requests = sum(1 for unit, *_ in f.tcp["MB2"].requests if unit == 2)
        return finished, joined, both[0], both[1], (asked - joined.started_at).total_seconds(), requests

    finished, _, first, second, head_start, requests = run(scenario())
    assert head_start > 0  # the result is the scheduled poll's, which had started before the request
    assert first is second  # two requests at once: one poll
    by_meter: dict[str, list[PollResult]] = {}
    for result in finished:
        by_meter.setdefault(result.serial, []).append(result)
    for serial in ("MB1", "MB2", "ME17", "ME31", "RT1", "IE1"):
        polls = sorted(by_meter.get(serial, []), key=lambda r: r.started_at)
        assert len(polls) >= 2, (serial, len(polls))
        for before, after in zip(polls, polls[1:], strict=False):
            assert after.started_at >= before.finished_at, serial  # never two polls of one meter at once
    assert requests == len(by_meter["MB2"])  # the joined poll_now made no request of its own


def test_sigterm_stops_gracefully_with_readings_stored(tmp_path: Path) -> None:
    database = tmp_path / "amr.sqlite"

    def stored() -> int:
        if not database.exists():
            return 0
        with contextlib.closing(sqlite3.connect(database)) as conn:
            try:
                return int(conn.execute("SELECT count(DISTINCT meter_id) FROM readings").fetchone()[0])
            except sqlite3.OperationalError:
                return 0

    async def scenario() -> tuple[int | None, str, int]:
        async with field(f"sqlite:///{database}", silent_tcp=0, schedule="1s") as f:
            path = f.write(tmp_path)
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "amr", "collect", "-c", str(path), cwd=tmp_path, env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
            try:
                deadline = time.monotonic() + 20
                while await asyncio.to_thread(stored) < len(f.good) and time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
                process.send_signal(signal.SIGTERM)
                _, err = await asyncio.wait_for(process.communicate(), 10)
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
            return process.returncode, err.decode(), await asyncio.to_thread(stored)

    code, err, meters_with_readings = run(scenario(), timeout=45)
    assert code == 0, err
    assert "collector stopped" in err and "Traceback" not in err
    assert meters_with_readings >= 6


def test_configuration_errors_are_one_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "amr.toml"
    path.write_text(toml({
        "buses": [{"name": "b", "kind": "modbus-tcp", "url": "tcp://127.0.0.1:1", "timeout": "2s",
                   "schedule": "1s"}],
        "meters": [{"serial": "1", "bus": "b", "address": 1, "profile": "eastron-sdm630"}],
    }), encoding="utf-8")
    assert collect_main(["collect", "-c", str(path), "--once"]) == 2
    err = capsys.readouterr().err
    assert "timeout" in err and "Traceback" not in err
    assert collect_main(["collect", "-c", str(tmp_path / "missing.toml"), "--once"]) == 2


def test_once_skips_push_meters_and_fails_when_nobody_answered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_from_dict(
        {
            "database": {"url": sqlite_url(tmp_path)},
            "buses": [{"name": "mqtt", "kind": "mqtt", "url": "mqtt://127.0.0.1:1", "topics": ["x/+/e"]},
                      {"name": "tcp", "kind": "modbus-tcp", "url": "tcp://127.0.0.1:1", "timeout": "200ms",
                       "retries": 0}],
            "meters": [{"serial": "P1", "bus": "mqtt"},
                       {"serial": "D1", "bus": "tcp", "address": 1, "profile": "eastron-sdm630"},
                       {"serial": "N1"}],  # no bus: not collected
            "collector": {"buffer": str(tmp_path / "buffer.sqlite")},
        },
        environ={},
        file=tmp_path / "amr.toml",
    )
    assert run(once(config, as_json=True)) == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["skipped"] == ["P1"] and report["answered"] == 0
    (entry,) = report["meters"]
    assert entry["serial"] == "D1" and entry["error_kind"] == "ConnectError" and "127.0.0.1:1" in entry["error"]
    assert "error: no meter answered" in captured.err


def test_api_poller_answers_a_dict_or_raises_the_driver_error(tmp_path: Path) -> None:
    from amr.collector.result import ApiPoller
    from amr.errors import NotFound, ReadTimeout

    async def scenario() -> None:
        async with field(sqlite_url(tmp_path), silent_tcp=1) as f:
            with App.open(f.config(tmp_path)) as app:
                collector = Collector(app)
                await collector.start(schedule=False)
                poller = ApiPoller(collector)
                try:
                    answer = await poller.poll_now("MB1")
                    assert answer["ok"] and answer["accepted"] == 1 and answer["values"]["a_plus"]
                    json.dumps(answer)
                    with pytest.raises(ReadTimeout):
                        await poller.poll_now("MB3")
                    with pytest.raises(NotFound):
                        await poller.poll_now("nope")
                finally:
                    await collector.stop()

    run(scenario())
