"""Real processes writing the same meters at once on PostgreSQL: ``amr api --workers 3`` taking
concurrent submissions on both submit endpoints, two ``amr import`` runs of overlapping CSVs and
a process calling `Ingestor.submit`. Afterwards no series holds an accepted value lower than an
earlier accepted one, and every input is accepted, a duplicate, or kept as refused."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
import psycopg
import pytest

import amr
from tests.api.live import free_port, fresh_database
from tests.integration.test_shared_collectors import _simulator

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

BASE = datetime(2025, 6, 1, tzinfo=UTC)
API_METERS = [f"W{i}" for i in range(4)]
IMPORT_METERS = [f"I{i}" for i in range(8)]
ROUNDS = 16
ROWS = 240  # per import meter and file
ROOT = str(Path(amr.__file__).resolve().parent.parent)  # the code under test, for the child processes
ENV = {**os.environ, "PYTHONPATH": ROOT}
ROLLOVER_OR_OVERRIDDEN = 0b110  # Flag.ROLLOVER | Flag.OVERRIDDEN


@pytest.fixture
def database() -> Iterator[str]:
    with fresh_database() as url:
        yield url


def _config(tmp: Path, url: str, extra: list[str] | None = None, meters: list[str] | None = None) -> Path:
    lines = [
        f'database = {{ url = "{url}", batch_size = 60 }}',
        '[site]\ntimezone = "Europe/Moscow"',
        "[api]\npublic_attempts = 10000",
        *(extra or []),
    ]
    for serial in API_METERS + IMPORT_METERS if meters is None else meters:
        lines.append(f'[[meters]]\nserial = "{serial}"\naccounts = ["acc-{serial}"]\nmax_power_kw = 1000')
    path = tmp / "amr.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _amr(*args: str) -> list[str]:
    return [sys.executable, "-m", "amr", *args]


def _csv(path: Path, shift: timedelta, less_kwh: int) -> Path:
    rows = ["meter,timestamp,tariff,a_plus,a_minus,r_plus,r_minus,source"]
    for i in range(ROWS):
        for serial in IMPORT_METERS:
            ts = (BASE + timedelta(minutes=30 * i) + shift).isoformat()
            rows.append(f"{serial},{ts},0,{1000 + i - less_kwh}.000,0.000,0.000,0.000,askue:serial")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _submit_process(config: str, root: str) -> None:
    """Another writer of the imported meters: `Ingestor.submit` in batches, as the collector does."""
    sys.path.insert(0, root)
    from amr.app import App
    from amr.core.domain import Channel, IncomingReading, Source

    with App.open(config) as app:
        batch = []
        for i in range(ROWS):
            for serial in IMPORT_METERS:
                ts = BASE + timedelta(minutes=30 * i, seconds=120)
                values = {Channel.A_PLUS: (1000 + i - 2) * 1000, Channel.A_MINUS: 0, Channel.R_PLUS: 0,
                          Channel.R_MINUS: 0}
                batch.append(IncomingReading(serial, ts, 0, values, Source.MODBUS, {"writer": "submit"}))
            if len(batch) >= 40:
                app.ingestor.submit(batch)
                batch = []
        if batch:
            app.ingestor.submit(batch)


def _api_key(config: Path, meters: list[str] = API_METERS) -> str:
    """A cabinet's service account linked to `meters`; its API key."""
    done = subprocess.run(
        _amr("users", "add", "portal", "--role", "cabinet", "--no-password", "--api-key", "-c", str(config)),
        capture_output=True, text=True, env=ENV, timeout=60, check=True,
    )
    links = [arg for serial in meters for arg in ("--meter", serial)]
    subprocess.run(_amr("users", "link", "portal", *links, "-c", str(config)), env=ENV, timeout=60, check=True,
                   capture_output=True)
    return done.stdout.split("keep it secret): ")[1].split()[0]


def _wait_ready(base: str, server: subprocess.Popen[bytes], limit: float = 40) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"amr api exited with {server.returncode}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("amr api did not start")


def _submissions(base: str, key: str) -> list[tuple[str, int]]:
    """Pairs (t, v) and (t + 60 s, v − 5 kWh) for each API meter, sent at the same moment; (meter, status)."""
    jobs = []
    for r in range(ROUNDS):
        for n, serial in enumerate(API_METERS):
            t = BASE + timedelta(hours=r)
            first = {"meter": serial, "date": t.isoformat(), "values": {"total": f"{1000 + 10 * r}.000"}}
            second = {"meter": serial, "date": (t + timedelta(seconds=60)).isoformat(),
                      "values": {"total": f"{1000 + 10 * r - 5}.000"}}
            pair = [first, second] if (r + n) % 2 else [second, first]
            jobs.append([(pair[0], "private"), (pair[1], "public")])

    def send(client: httpx.Client, body: dict[str, Any], kind: str) -> tuple[str, int]:
        if kind == "public":
            answer = client.post(f"{base}/api/v1/public/readings", json={**body, "account": f"acc-{body['meter']}"})
        else:
            answer = client.post(f"{base}/api/v1/readings", json=body, headers={"X-API-Key": key})
        assert answer.status_code in (201, 422), answer.text
        return body["meter"], answer.status_code

    found = []
    with httpx.Client(timeout=30) as client, ThreadPoolExecutor(8) as pool:
        for start in range(0, len(jobs), 4):  # four meters' pairs at once
            futures = [pool.submit(send, client, body, kind) for job in jobs[start : start + 4] for body, kind in job]
            found.extend(f.result() for f in futures)
    return found


def test_concurrent_writers_of_the_same_meters_keep_every_series_monotonic(tmp_path: Path, database: str) -> None:
    config = _config(tmp_path, database)
    subprocess.run(_amr("db", "upgrade", "-c", str(config)), env=ENV, timeout=60, check=True, capture_output=True)
    key = _api_key(config)
    first = _csv(tmp_path / "a.csv", timedelta(0), 0)
    second = _csv(tmp_path / "b.csv", timedelta(seconds=60), 5)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        _amr("api", "-c", str(config), "--host", "127.0.0.1", "--port", str(port), "--workers", "3"),
        env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        _wait_ready(base, server)
        imports = [
            subprocess.Popen(_amr("import", "-c", str(config), str(path), "--json"), env=ENV, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
            for path in (first, second)
        ]
        writer = multiprocessing.get_context("spawn").Process(target=_submit_process, args=(str(config), ROOT))
        writer.start()
        answers = _submissions(base, key)
        outputs = [p.communicate(timeout=120) for p in imports]
        writer.join(120)
    finally:
        server.terminate()
        server.wait(30)
    assert writer.exitcode == 0


    summaries = []
    for (out, err), process in zip(outputs, imports, strict=True):
        assert process.returncode == 0, err
        summaries.append(json.loads(out))

    with psycopg.connect(database) as conn:
        ids = dict(conn.execute("SELECT serial, id FROM meters").fetchall())
        rows = conn.execute("SELECT meter_id, tariff, ts, a_plus, flags FROM readings ORDER BY meter_id, tariff, ts")
        series: dict[tuple[int, int], list[tuple[datetime, int, int]]] = defaultdict(list)
        for meter_id, tariff, ts, a_plus, flags in rows:
            series[(meter_id, tariff)].append((ts, a_plus, flags))
        refused = dict(conn.execute("SELECT meter_serial, count(*) FROM rejected_readings GROUP BY 1").fetchall())

    lower = []
    for key_, readings in series.items():
        highest = None
        for ts, value, flags in readings:
            if highest is not None and value < highest and not flags & ROLLOVER_OR_OVERRIDDEN:
                lower.append((key_, ts, value, highest))
            highest = value if highest is None else max(highest, value)
    assert lower == [], f"{len(lower)} accepted values lower than an earlier accepted one, e.g. {lower[:3]}"

    # nothing lost: every API submission is a stored reading (201) or a kept refusal (422)
    for serial in API_METERS:
        statuses = [status for meter, status in answers if meter == serial]
        assert len(series[(ids[serial], 0)]) == statuses.count(201)
        assert refused.get(serial, 0) == statuses.count(422)
        assert statuses.count(201) >= ROUNDS  # one of each pair at least
    # and every imported or submitted row: accepted, a duplicate, or kept as refused
    stored = sum(len(series[(ids[s], 0)]) for s in IMPORT_METERS)
    kept = sum(refused.get(s, 0) for s in IMPORT_METERS)
    inputs = 3 * ROWS * len(IMPORT_METERS)
    accepted_by_imports = sum(int(s["accepted"]) for s in summaries)
    assert all(s["duplicate"] == 0 for s in summaries)
    assert stored + kept == inputs
    assert stored >= accepted_by_imports


COLLECTED = [f"C{i:04d}" for i in range(1, 5)]  # of the 6 meters `_simulator` serves: the collector polls four
STEPS = 16  # crafted instants, a second apart, per meter and writer
ALLOWED = {"lower_than_previous", "higher_than_next"}


def _collector_lines(sim_url: str, tmp: Path) -> list[str]:
    lines = [f'[collector]\nbuffer = "{tmp / "buffer.sqlite"}"\nwrite_interval = "100ms"\n',
             f'[[buses]]\nname = "sim"\nkind = "modbus-tcp"\nurl = "{sim_url}"\ntimeout = "800ms"\nschedule = "1s"\n']
    for address, serial in enumerate(COLLECTED, 1):
        lines.append(f'[[meters]]\nserial = "{serial}"\naccounts = ["acc-{serial}"]\nmax_power_kw = 1000000\n'
                     f'bus = "sim"\naddress = {address}\nprofile = "eastron-sdm630"\n')
    return lines


def _kwh(wh: int) -> str:
    return f"{wh // 1000}.{wh % 1000:03d}"


def _crafted(start: datetime, first: dict[str, int]) -> dict[str, list[tuple[str, datetime, int]]]:
    """Each writer's inputs (meter, t, Wh): every second from `start`, 1 kWh above what the meter
    first showed the collector, rising 40 Wh a second, in this order within a second:
    import a X, API X + 5, import b X − 20, API X + 2 — import b is lower than import a and the
    first API value just before it, the second API value lower than the first; and every
    collector reading after the first accepted of these is lower than it."""
    out: dict[str, list[tuple[str, datetime, int]]] = {"a": [], "b": [], "api": []}
    for i in range(STEPS):
        for serial in COLLECTED:
            x = first[serial] + 1000 + 40 * i
            at = start + timedelta(seconds=i)
            out["a"].append((serial, at + timedelta(milliseconds=100), x))
            out["api"].append((serial, at + timedelta(milliseconds=350), x + 5))
            out["b"].append((serial, at + timedelta(milliseconds=600), x - 20))
            out["api"].append((serial, at + timedelta(milliseconds=850), x + 2))
    return out


def _csv_of(path: Path, rows: list[tuple[str, datetime, int]]) -> Path:
    lines = ["meter,timestamp,tariff,a_plus,a_minus,r_plus,r_minus"]
    lines += [f"{serial},{at.isoformat()},0,{_kwh(wh)},,," for serial, at, wh in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _send_all(base: str, key: str, rows: list[tuple[str, datetime, int]]) -> list[tuple[str, int]]:
    """Each second's two API values of a meter sent at the same moment, four meters at once; (meter, status)."""

    def send(client: httpx.Client, serial: str, at: datetime, wh: int) -> tuple[str, int]:
        body = {"meter": serial, "date": at.isoformat(), "values": {"total": _kwh(wh)}}
        answer = client.post(f"{base}/api/v1/readings", json=body, headers={"X-API-Key": key})
        assert answer.status_code in (201, 422), answer.text
        return serial, answer.status_code

    found: list[tuple[str, int]] = []
    with httpx.Client(timeout=30) as client, ThreadPoolExecutor(8) as pool:
        for start in range(0, len(rows), 8):
            futures = [pool.submit(send, client, *row) for row in rows[start : start + 8]]
            found.extend(f.result() for f in futures)
    return found


def _first_collected(url: str) -> dict[str, int]:
    """A+ (Wh, tariff 0) of each collected meter's first reading; empty until every one has one."""
    try:
        with psycopg.connect(url) as conn:
            rows = conn.execute(
                "SELECT m.serial, max(r.a_plus) FROM readings r JOIN meters m ON m.id = r.meter_id "
                "WHERE r.tariff = 0 GROUP BY m.serial").fetchall()
    except psycopg.Error:
        return {}  # not migrated yet
    found = {serial: int(value) for serial, value in rows}
    return found if set(found) == set(COLLECTED) else {}


def test_api_workers_two_imports_and_amr_collect_on_the_same_meters(tmp_path: Path, database: str) -> None:
    """`amr api --workers 3`, two `amr import` runs and `amr collect` polling four simulated Modbus TCP
    meters write those meters' A+ series at once, with values crafted so that some inputs of each
    writer must be refused as lower than an accepted one (`_crafted`). Afterwards no series
    decreases, and every input is accepted or stored as refused, by lower/higher than a neighbour:
    each API answer matches what is stored, each import's summary too, and every collector poll
    that answered left one reading per tariff, stored or refused."""
    sim, sim_url = _simulator("C")
    config = _config(tmp_path, database, _collector_lines(sim_url, tmp_path), meters=[])
    processes: list[subprocess.Popen[Any]] = []
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        subprocess.run(_amr("db", "upgrade", "-c", str(config)), env=ENV, timeout=60, check=True,
                       capture_output=True)
        key = _api_key(config, COLLECTED)
        with (tmp_path / "collect.log").open("wb") as log:
            collector = subprocess.Popen(_amr("collect", "-c", str(config), "--log-level", "info"), env=ENV,
                                         stdout=log, stderr=subprocess.STDOUT)
        processes.append(collector)
        server = subprocess.Popen(
            _amr("api", "-c", str(config), "--host", "127.0.0.1", "--port", str(port), "--workers", "3"),
            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        processes.append(server)
        _wait_ready(base, server)
        deadline = time.monotonic() + 30
        while not (first := _first_collected(database)):
            assert collector.poll() is None and time.monotonic() < deadline, (tmp_path / "collect.log").read_text()
            time.sleep(0.2)
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
        crafted = _crafted(start, first)
        imports = [
            subprocess.Popen(_amr("import", "-c", str(config), str(_csv_of(tmp_path / f"{name}.csv", crafted[name])),
                                  "--json"), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for name in ("a", "b")
        ]
        answers = _send_all(base, key, crafted["api"])
        outputs = [p.communicate(timeout=120) for p in imports]
        # the collector polls on through the crafted instants, behind values it cannot reach
        time.sleep(max(0.0, (start + timedelta(seconds=STEPS) - datetime.now(UTC)).total_seconds()))
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)
        sim.terminate()
        sim.communicate(timeout=10)
    assert collector.returncode == 0, (tmp_path / "collect.log").read_text()[-3000:]
    summaries = []
    for (out, err), process in zip(outputs, imports, strict=True):
        assert process.returncode == 0, err
        summaries.append(json.loads(out))

    with psycopg.connect(database) as conn:
        ids: dict[str, int] = dict(conn.execute("SELECT serial, id FROM meters").fetchall())
        series: dict[tuple[int, int], list[tuple[datetime, tuple[int | None, ...], int]]] = defaultdict(list)
        for meter_id, tariff, ts, a_plus, a_minus, r_plus, r_minus, flags in conn.execute(
            "SELECT meter_id, tariff, ts, a_plus, a_minus, r_plus, r_minus, flags FROM readings "
            "ORDER BY meter_id, tariff, ts"
        ):
            series[(meter_id, tariff)].append((ts, (a_plus, a_minus, r_plus, r_minus), flags))
        stored = Counter(conn.execute("SELECT meter_id, tariff, source FROM readings").fetchall())
        refused = Counter(conn.execute("SELECT meter_id, tariff, source FROM rejected_readings").fetchall())
        reasons = Counter(r for (text,) in conn.execute("SELECT reasons FROM rejected_readings")
                          for r in text.split(","))
        polls: dict[int, int] = dict(conn.execute("SELECT meter_id, polls - failures FROM meter_health").fetchall())

    lower = []
    for key_, readings in series.items():
        highest: list[int | None] = [None] * 4
        for ts, values, flags in readings:
            for channel, value in enumerate(values):
                top = highest[channel]
                if value is not None and top is not None and value < top and not flags & ROLLOVER_OR_OVERRIDDEN:
                    lower.append((key_, ts, channel, value, top))
                if value is not None:
                    highest[channel] = value if top is None else max(top, value)
    assert lower == [], f"{len(lower)} accepted values lower than an earlier accepted one, e.g. {lower[:3]}"
    assert set(reasons) <= ALLOWED, reasons

    def of(counter: Counter[tuple[int, int, str]], source: str, tariff: int | None = 0) -> int:
        return sum(n for (_, t, s), n in counter.items() if s == source and (tariff is None or t == tariff))

    api_sources = {s for (_, _, s) in stored + refused} - {"import", "askue:modbus"}
    assert len(api_sources) == 1, api_sources
    api_source = api_sources.pop()
    statuses = Counter(status for _, status in answers)
    assert len(answers) == len(crafted["api"])
    assert of(stored, api_source) == statuses[201] and of(refused, api_source) == statuses[422]
    assert statuses[422] > 0  # the second value of a second, lower than the first, at least
    for summary, name in zip(summaries, ("a", "b"), strict=True):
        assert summary["accepted"] + summary["refused"] == summary["total"] == len(crafted[name])
        assert summary["duplicate"] == 0 and set(summary["rejected"]) <= ALLOWED
    assert of(stored, "import") == sum(s["accepted"] for s in summaries)
    assert of(refused, "import") == sum(s["refused"] for s in summaries) > 0  # b is below a
    # every poll that answered: one reading per tariff, stored or refused; some refused as lower
    # than a crafted value accepted before it
    for serial in COLLECTED:
        meter = ids[serial]
        tariffs = {t for (m, t, s) in stored + refused if m == meter and s == "askue:modbus"}
        assert 0 in tariffs
        for tariff in tariffs:
            done = stored[(meter, tariff, "askue:modbus")] + refused[(meter, tariff, "askue:modbus")]
            assert done == polls[meter], (serial, tariff, done, polls[meter])
    assert of(refused, "askue:modbus") > 0


FIRST_METERS = 40  # over 8 objects, a point each


def _first_import_config(tmp: Path, url: str) -> Path:
    lines = [f'[database]\nurl = "{url}"\n[site]\ntimezone = "Europe/Moscow"\n']
    for i in range(FIRST_METERS):
        lines.append(f'[[meters]]\nserial = "F{i:03d}"\nobject = "дом {i % 8}"\npoint = "кв{i}"\n'
                     f'accounts = ["acc-F{i:03d}"]\n')
    path = tmp / "first.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.mark.parametrize("attempt", range(3))
def test_two_first_imports_on_an_empty_database_at_once_both_succeed_storing_everything_once(
    tmp_path: Path, attempt: int
) -> None:
    """Two `amr import` runs of the same rows started together on a database nothing has used yet
    (each migrates it and registers the meters, their objects and points): both end well, and
    every row is stored once — accepted by one run, a duplicate for the other."""
    with fresh_database() as url:
        config = _first_import_config(tmp_path, url)
        rows = ["meter,timestamp,tariff,a_plus,a_minus,r_plus,r_minus"]
        rows += [f"F{i:03d},{(BASE + timedelta(minutes=30 * step)).isoformat()},0,{100 + step}.000,,,"
                 for step in range(10) for i in range(FIRST_METERS)]
        files = []
        for name in ("a", "b"):
            files.append(tmp_path / f"{name}.csv")
            files[-1].write_text("\n".join(rows) + "\n", encoding="utf-8")
        imports = [subprocess.Popen(_amr("import", "-c", str(config), str(path), "--json"), env=ENV,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for path in files]
        outputs = [p.communicate(timeout=120) for p in imports]
        for (_, err), process in zip(outputs, imports, strict=True):
            assert process.returncode == 0, err
        summaries = [json.loads(out) for out, _ in outputs]
        with psycopg.connect(url) as conn:
            counts = [conn.execute(f"SELECT count(*) FROM {table}").fetchone()
                      for table in ("objects", "metering_points", "meters", "readings")]
            objects = sorted(name for (name,) in conn.execute("SELECT name FROM objects"))
    inputs = len(rows) - 1
    assert [c[0] for c in counts if c] == [8, FIRST_METERS, FIRST_METERS, inputs]
    assert objects == sorted(f"дом {i}" for i in range(8))
    assert sum(s["accepted"] for s in summaries) == inputs
    assert sum(s["duplicate"] for s in summaries) == inputs
    assert all(s["refused"] == 0 for s in summaries)
