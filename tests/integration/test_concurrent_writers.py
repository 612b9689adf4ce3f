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
from collections import defaultdict
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


def _config(tmp: Path, url: str) -> Path:
    lines = [
        f'database = {{ url = "{url}", batch_size = 60 }}',
        '[site]\ntimezone = "Europe/Moscow"',
        "[api]\npublic_attempts = 10000",
    ]
    for serial in API_METERS + IMPORT_METERS:
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


def _api_key(config: Path) -> str:
    """A cabinet's service account linked to the API meters; its API key."""
    done = subprocess.run(
        _amr("users", "add", "portal", "--role", "cabinet", "--no-password", "--api-key", "-c", str(config)),
        capture_output=True, text=True, env=ENV, timeout=60, check=True,
    )
    links = [arg for serial in API_METERS for arg in ("--meter", serial)]
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
