"""The dashboard's registry screen at 100,000 meters: its requests end to end over HTTP, against the
same page's SQL run directly and against ``GET /healthz``.

On a fresh PostgreSQL database, ``amr registry apply`` fills the registry with
``AMR_BENCH_REGISTRY_PAGES_METERS`` Modbus TCP meters (default 100,000; 2,000 with ``--quick``;
the file of `benchmarks.registry_startup`: object, point ``kvN``, account, ratio, address,
profile); then one ``amr api`` process (``--workers 1``) serves an admin logged in with a password. Each request
the registry screen (`amr/dashboard/static/registry.js`, `registry_lists.js`) sends is
``GET /api/v1/registry/<list>?limit=50[&search=][&after=]``:

* meters: the first page; the next page (``after`` = the first page's ``next``); a deep page
  (``after`` a serial 1,000 from the end: keyset paging, as fast wherever it starts); a search by
  the start of a serial (100 meters match); a search by metering point (``kv`` and a number: one
  match, a scan of names and points); a search that finds nothing (the whole scan, the worst case
  of a typing user);
* metering points (100,000): the first page, a deep page, a search by code;
* objects (2,000, 50 meters each): the first page, a search by name;
* buses (500): the first page, a search by name.

Each is sent ``AMR_BENCH_REGISTRY_PAGES_REPEAT`` times (default 30; 5 with ``--quick``) over one
kept-alive connection, as a browser does, after one unmeasured warm-up. Baselines in the same
run: ``GET /healthz`` on the same connection (the HTTP and framework floor), and the statements
the API runs for that page, caught from the function that pages the list and replayed through
psycopg on a kept connection (the database's share). Printed: median and range of each, and the
ratios median / SQL and median / healthz.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg
from sqlalchemy import event

from amr.config import load_config
from amr.registry import edits
from amr.registry.pages import page_of_buses, page_of_objects, page_of_points
from amr.store import Store
from benchmarks.databases import fresh_database, url
from benchmarks.registry_startup import write_registry
from benchmarks.startup import AMR, _answers, _free_port, timed

PASSWORD = "bench-registry-pages"
PAGE = 50  # registry.js: 50 meters a page
FIRST_SERIAL = 1000000  # write_registry's serials: 1000000 + i


def _cases(meters: int) -> list[tuple[str, str, dict[str, str]]]:
    """(label, the list, the screen's query parameters beyond `limit`) of each request measured."""
    last = FIRST_SERIAL + meters - 1
    houses = (meters + 49) // 50
    return [
        ("first page", "meters", {}),
        ("next page", "meters", {"after": str(FIRST_SERIAL + PAGE - 1)}),
        ("deep page (1,000 from the end)", "meters", {"after": str(last - 1000)}),
        ("search: start of a serial", "meters", {"search": str(last - 99)[:-2]}),
        ("search: metering point", "meters", {"search": f"kv{meters // 2}"}),
        ("search: nothing found", "meters", {"search": "no such meter"}),
        ("points: first page", "points", {}),
        ("points: deep page", "points", {"after": f"kv{meters - 1000}"}),
        ("points: search by code", "points", {"search": f"kv{meters // 2}"}),
        ("objects: first page", "objects", {}),
        ("objects: search by name", "objects", {"search": f"house {houses - 1}"}),
        ("buses: first page", "buses", {}),
        ("buses: search by name", "buses", {"search": "tcp49"}),
    ]


def _page(store: Store, listed: str, params: dict[str, str]) -> None:
    """What the API runs for one page of `listed`."""
    search, after = params.get("search"), params.get("after")
    if listed == "meters":
        edits.page_of_meters(store, search, after, PAGE)
    elif listed == "points":
        page_of_points(store, search, after, PAGE)
    elif listed == "objects":
        page_of_objects(store, search, after, PAGE)
    else:
        page_of_buses(store, search, after, PAGE, edits.bus_entries)


def _timings(call: Callable[[], object], repeat: int) -> list[float]:
    call()  # warm-up: connection, plans, caches
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        out.append(time.perf_counter() - started)
    return out


def _token(config: Path, port: int) -> str:
    """A bearer token of a new admin (API keys are for cabinets' service accounts only)."""
    subprocess.run([*AMR, "users", "add", "bench-admin", "--role", "admin", "-c", str(config)], input=PASSWORD,
                   capture_output=True, text=True, check=True, timeout=120)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", "/api/v1/auth/token", body=json.dumps({"login": "bench-admin", "password": PASSWORD}),
                 headers={"Content-Type": "application/json"})
    answer = conn.getresponse()
    body = json.loads(answer.read())
    conn.close()
    if answer.status != 200:
        raise RuntimeError(f"login: {answer.status} {body}")
    return str(body["access_token"])


def _statements(store: Store, listed: str, params: dict[str, str]) -> list[tuple[str, Any]]:
    """The SQL statements (with their parameters) the API runs for one page of the registry's `listed`."""
    caught: list[tuple[str, Any]] = []

    def catch(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        caught.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", catch)
    try:
        _page(store, listed, params)
    finally:
        event.remove(store.engine, "before_cursor_execute", catch)
    return caught


class _Client:
    """One kept-alive HTTP connection to the API, as a browser tab holds."""

    def __init__(self, port: int, token: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str) -> bytes:
        self.conn.request("GET", path, headers=self.headers)
        answer = self.conn.getresponse()
        body = answer.read()
        if answer.status not in (200, 503):  # /healthz: 503 when no collector runs
            raise RuntimeError(f"GET {path}: {answer.status} {body[:300]!r}")
        return body


def _line(label: str, times: list[float], sql: float | None = None, health: float = 1.0) -> str:
    median = statistics.median(times)
    text = f"    {label:<32} {median * 1000:7.1f} ms ({min(times) * 1000:.1f}–{max(times) * 1000:.1f})"
    return text if sql is None else f"{text}, ×{median / sql:5.1f} its SQL, ×{median / health:5.1f} healthz"


def _measure(database_url: str, config: Path, meters: int, repeat: int) -> None:
    store = Store.open(load_config(config).database, upgrade=False)
    port = _free_port()
    api = subprocess.Popen([*AMR, "api", "-c", str(config), "--host", "127.0.0.1", "--port", str(port),
                            "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not _answers(port):
            if api.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("amr api did not answer /healthz")
            time.sleep(0.05)
        client = _Client(port, _token(config, port))
        health = _timings(lambda: client.get("/healthz"), repeat)
        health_median = statistics.median(health)
        print(_line("GET /healthz (baseline)", health))
        with psycopg.connect(database_url, autocommit=True) as raw:
            for label, listed, params in _cases(meters):
                path = f"/api/v1/registry/{listed}?" + urlencode({"limit": str(PAGE), **params})
                through_api = _timings(lambda p=path: client.get(p), repeat)  # type: ignore[misc]
                statements = _statements(store, listed, params)

                def replay(todo: list[tuple[str, Any]] = statements) -> None:
                    for statement, parameters in todo:
                        raw.execute(statement, parameters).fetchall()

                sql = _timings(replay, repeat)
                print(_line(label, through_api, statistics.median(sql), health_median))
                print(f"    {'  its SQL through psycopg':<32} {statistics.median(sql) * 1000:7.1f} ms "
                      f"({min(sql) * 1000:.1f}–{max(sql) * 1000:.1f}), {len(statements)} statement(s)")
        client.conn.close()
    finally:
        api.terminate()
        api.wait(30)
        store.engine.dispose()


def run(quick: bool = False) -> None:
    """Print the registry screen's request times at N meters, against their SQL and /healthz."""
    meters = int(os.environ.get("AMR_BENCH_REGISTRY_PAGES_METERS", 2000 if quick else 100000))
    repeat = int(os.environ.get("AMR_BENCH_REGISTRY_PAGES_REPEAT", 5 if quick else 30))
    with tempfile.TemporaryDirectory(prefix="amr-bench-registry-pages-") as folder, fresh_database() as name:
        base = Path(folder)
        registry, config = base / "registry.toml", base / "run.toml"
        write_registry(registry, meters, url(name))
        config.write_text(f'[database]\nurl = "{url(name)}"\n\n[registry]\nsource = "database"\n',
                          encoding="utf-8")
        applied = timed([*AMR, "registry", "apply", "-c", str(registry)])
        print(f"registry pages: {meters:,} meters in the registry (apply {applied[0]:.1f} s); "
              f"{repeat} requests of each, median (range); amr api --workers 1, one kept-alive connection")
        _measure(url(name), config, meters, repeat)
