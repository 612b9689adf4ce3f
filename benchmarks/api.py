"""Latency of ``GET /api/v1/askue/meters`` for a user with 10 meters, at a concurrency of 16.

500 meters × one year of 30-minute readings (8.76 million rows) are loaded into a fresh
PostgreSQL database with binary COPY; the API runs as `amr api` in its own process. Printed:
p50 and p99 of the route, of a naive ``DISTINCT ON`` query over the readings (the usual
"latest per meter" view, then filtered to the user's meters), and of the best raw SQL for
the same answer (one index probe per meter with LATERAL), each at a concurrency of 16, with
the ratios the goals are stated in: naive / API (goal >= 100) and API / raw SQL at p99
(goal <= 10).
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from amr.api.security import Passwords
from amr.app import App
from amr.store.users import Users
from benchmarks.databases import copy_readings, fresh_database, url

START = datetime(2025, 11, 1, tzinfo=UTC)
CONCURRENCY = 16
PASSWORD = "bench-password-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(folder: Path, database: str, meters: int, port: int) -> Path:
    lines = [
        "[database]",
        f'url = "{url(database)}"',
        "[api]",
        f"port = {port}",
        "login_attempts = 100",
    ]
    for m in range(meters):
        lines += [
            "[[meters]]",
            f'serial = "B{m:05d}"',
            f'name = "Ввод {m}"',
            f'object = "ПС {m // 20}"',
            f'accounts = ["{700000 + m}"]',
            "digits = 8",
        ]
    path = folder / "bench.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _load(database: str, ids: list[int], steps: int) -> None:
    def rows() -> Iterator[tuple[object, ...]]:
        for step in range(steps):
            ts = START + timedelta(minutes=30 * step)
            for meter_id in ids:
                v = step * 500 + meter_id
                yield (meter_id, 0, ts, v, step, v // 3, step // 2, "askue:modbus", 0, ts)

    with psycopg.connect(url(database)) as conn:
        copy_readings(conn, rows())
        conn.commit()
        conn.execute("ANALYZE readings")


def _measure(call: Callable[[], None], total: int) -> list[float]:
    """Latencies (ms) of `total` calls spread over CONCURRENCY threads."""
    latencies: list[float] = []
    lock = threading.Lock()
    per_thread = total // CONCURRENCY

    def worker() -> None:
        mine = []
        for _ in range(per_thread):
            started = time.perf_counter()
            call()
            mine.append((time.perf_counter() - started) * 1000)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(CONCURRENCY)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies


def _p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _sql_caller(database: str, sql: str, params: tuple[object, ...]) -> Callable[[], None]:
    local = threading.local()

    def call() -> None:
        if not hasattr(local, "conn"):
            local.conn = psycopg.connect(url(database), autocommit=True)
        local.conn.execute(sql, params, prepare=True).fetchall()

    return call


def _api_caller(port: int, token: str) -> Callable[[], None]:
    local = threading.local()

    def call() -> None:
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        local.conn.request("GET", "/api/v1/askue/meters", headers={"Authorization": f"Bearer {token}"})
        response = local.conn.getresponse()
        body = response.read()
        if response.status != 200 or len(json.loads(body)) != 10:
            raise RuntimeError(f"unexpected answer {response.status}: {body[:200]!r}")

    return call


def run(quick: bool = False) -> None:
    meters, days = (50, 14) if quick else (500, 365)
    steps = days * 48
    with fresh_database() as database:
        server: subprocess.Popen[bytes] | None = None
        try:
            with tempfile.TemporaryDirectory() as folder:
                port = _free_port()
                config = _config(Path(folder), database, meters, port)
                with App.open(config) as app:
                    ids = [m.id for m in app.meters.values()]
                    users = Users(app.store)
                    users.add("bench", "askue", Passwords().hash(PASSWORD), datetime.now(UTC))
                    mine = sorted(app.meters.values(), key=lambda m: m.serial)[:: meters // 10][:10]
                    users.link("bench", "meter", [m.serial for m in mine])
                    my_ids = [m.id for m in mine]
                started = time.perf_counter()
                _load(database, ids, steps)
                print(
                    f"askue/meters benchmark: {meters} meters × {days} days of 30-minute readings "
                    f"({meters * steps:,} rows, loaded in {time.perf_counter() - started:.0f} s); "
                    f"a user with 10 meters; concurrency {CONCURRENCY}"
                )
                server = subprocess.Popen(
                    [sys.executable, "-m", "amr", "api", "-c", str(config), "--port", str(port), "--workers", "2"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                token = _login(port)
                api = _api_caller(port, token)
                for _ in range(50):
                    api()
                api_ms = _measure(api, 1600)
                naive_sql = (
                    "SELECT * FROM (SELECT DISTINCT ON (meter_id) meter_id, ts, a_plus, a_minus, r_plus, r_minus "
                    "FROM readings WHERE tariff = 0 ORDER BY meter_id, ts DESC) latest WHERE meter_id = ANY(%s)"
                )
                naive_ms = _measure(_sql_caller(database, naive_sql, (my_ids,)), 32 if not quick else 160)
                best_sql = (
                    "SELECT r.* FROM unnest(%s::integer[]) AS k(m) CROSS JOIN LATERAL (SELECT meter_id, ts, a_plus, "
                    "a_minus, r_plus, r_minus FROM readings WHERE meter_id = k.m AND tariff = 0 "
                    "ORDER BY ts DESC LIMIT 1) r"
                )
                best_ms = _measure(_sql_caller(database, best_sql, (my_ids,)), 1600)
            for label, values in (
                ("API GET /api/v1/askue/meters", api_ms),
                ("naive DISTINCT ON", naive_ms),
                ("best raw SQL (LATERAL)", best_ms),
            ):
                print(
                    f"  {label:<30} p50 {_p(values, 50):9.2f} ms   p99 {_p(values, 99):9.2f} ms   ({len(values)} calls)"
                )
            print(f"  naive p50 / API p50            {_p(naive_ms, 50) / _p(api_ms, 50):9.1f}   goal >= 100")
            print(f"  API p99 / raw SQL p99          {_p(api_ms, 99) / _p(best_ms, 99):9.1f}   goal <= 10")
        finally:
            if server is not None:
                server.send_signal(signal.SIGINT)
                server.wait(timeout=30)


def _login(port: int) -> str:
    deadline = time.monotonic() + 60
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            body = json.dumps({"login": "bench", "password": PASSWORD})
            conn.request("POST", "/api/v1/auth/token", body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            answer = json.loads(response.read())
            if response.status != 200:
                raise RuntimeError(f"login failed: {answer}")
            return str(answer["access_token"])
        except (ConnectionRefusedError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
