"""The dashboard in a real browser: Debian's chromium, headless, driven by Playwright (sync API),
against the API and dashboard served by uvicorn on 127.0.0.1 from a thread, over a SQLite store
with known readings.

Without playwright or chromium the tests are skipped on a developer's machine and fail loudly on
CI (``CI`` set): install them with ``pip install -e '.[dev]'`` and ``apt-get install chromium``.
Screenshots go to ``test-output/browser/``.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from argon2 import PasswordHasher

from amr.api import create_app
from amr.api.security import Passwords
from amr.app import App
from amr.config import config_from_dict
from amr.core.domain import Channel, IncomingReading, Source, wh_from_kwh
from amr.store.health import HealthRecord, save_health
from tests.conftest import IN_CI

ROOT = Path(__file__).parents[2]
SHOTS = ROOT / "test-output" / "browser"
CHROMIUM = os.environ.get("AMR_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TZ = ZoneInfo("Europe/Moscow")
PASSWORD = "s3cret-pass"
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)

METERS: list[dict[str, Any]] = [
    {"serial": "M1", "name": "Ввод Т-1", "object": "ПС Северная", "point": "north-t1", "tariffs": 1,
     "bus": "tcp", "address": 1, "profile": "eastron-sdm630", "max_power_kw": 100},
    {"serial": "M2", "name": "кв. 12", "object": "Дом 1", "point": "dom1-kv12", "tariffs": 2, "accounts": ["A1"],
     "bus": "merc", "address": 17, "max_power_kw": 30},
    {"serial": "M3", "name": "Коттедж 9", "object": "Посёлок", "point": "kot9", "bus": "mqtt", "max_power_kw": 30},
]
BUSES: list[dict[str, Any]] = [
    {"name": "tcp", "kind": "modbus-tcp", "url": "tcp://127.0.0.1:1"},
    {"name": "merc", "kind": "mercury230", "url": "socket://127.0.0.1:1"},
    {"name": "mqtt", "kind": "mqtt", "url": "mqtt://127.0.0.1:1", "topics": ["x/+/energy"]},
]
EXPORT = {"sender_inn": "7701234567", "sender_name": "АО «Сбыт»", "area_inn": "7709876543", "area_name": "РЭС"}
# M1's 30-minute A+ increments (Wh) over the known day; None: no reading at that half-hour (a gap)
STEPS = [400 + 37 * (i % 7) + (300 if 14 <= i < 20 else 0) for i in range(48)]
MISSING = {22, 23, 24}  # 11:00, 11:30 and 12:00 are not there: a gap from 10:30 to 12:30


@dataclass
class Served:
    """The API and dashboard under test."""

    url: str
    app: App
    day: date  # the day with M1's 30-minute profile (ten days ago, site's zone)
    rejected_id: int
    api: Any = None  # the FastAPI application (its state holds the poll log when a test keeps one)

    def local_midnight(self, day: date) -> datetime:
        return datetime.combine(day, dtime(), TZ).astimezone(UTC)


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed: pip install -e '.[dev]' (never `playwright install`)"
    if not os.access(CHROMIUM, os.X_OK):
        return f"Debian's chromium is not installed at {CHROMIUM}: apt-get install chromium"
    return None


def _profile(app: App, day: date) -> None:
    start = datetime.combine(day, dtime(), TZ).astimezone(UTC)
    value = wh_from_kwh("1000")
    batch = []
    for i in range(49):
        at = start + timedelta(minutes=30 * i)
        if i not in MISSING:
            batch.append(IncomingReading("M1", at, 0, {Channel.A_PLUS: value, Channel.R_PLUS: value // 4},
                                         Source.MODBUS, {}, received_at=at))
        if i < 48:
            value += STEPS[i]
    # the next days: one reading a day, so the month view has days too
    for n in range(1, 4):
        at = start + timedelta(days=n + 1)
        value += 20_000
        batch.append(IncomingReading("M1", at, 0, {Channel.A_PLUS: value, Channel.R_PLUS: value // 4},
                                     Source.MODBUS, {}, received_at=at))
    for n in range(5):
        at = start + timedelta(days=n)
        values = {Channel.A_PLUS: wh_from_kwh("500") + n * 7_000}
        batch.append(IncomingReading("M2", at, 0, values, Source.SERIAL, {}, received_at=at))
        batch.append(IncomingReading("M2", at, 1, {Channel.A_PLUS: wh_from_kwh("300") + n * 5_000}, Source.SERIAL, {},
                                     received_at=at))
    result = app.ingestor.submit(batch)
    assert all(o.status == "accepted" for o in result.outcomes), result.outcomes


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """uvicorn on 127.0.0.1 in a thread, over a fresh SQLite store with known readings and users."""
    folder = tmp_path_factory.mktemp("dashboard")
    config = config_from_dict(
        {"database": {"url": f"sqlite:///{folder / 'amr.sqlite'}"}, "site": {"timezone": "Europe/Moscow",
         "name": "РЭС Северный"}, "export": EXPORT, "buses": BUSES, "meters": METERS},
        environ={},
    )
    app = App.open(config)
    today = datetime.now(UTC).astimezone(TZ).date()
    day = today - timedelta(days=10)
    _profile(app, day)
    # a reading lower than the previous one: refused, waiting in the queue
    late = datetime.combine(day, dtime(), TZ).astimezone(UTC) + timedelta(days=5)
    refused = app.ingestor.submit(
        [IncomingReading("M1", late, 0, {Channel.A_PLUS: wh_from_kwh("1001")}, Source.MODBUS, {}, received_at=late)]
    )
    assert refused.outcomes[0].status == "rejected"
    [record] = app.store.rejected("open")
    now = datetime.now(UTC)
    ids = {s: m.id for s, m in app.meters.items()}
    save_health(app.store, [
        HealthRecord(ids["M1"], "online", now, now, polls=10),
        HealthRecord(ids["M2"], "degraded", now, now - timedelta(minutes=5), "tariff 2: no answer", now, 1, 12, 2),
        HealthRecord(ids["M3"], "offline", now, None, "no message for 1 h", now, 5, 9, 5),
    ])
    passwords = Passwords(FAST_HASHER)
    from amr.store.users import Users

    users = Users(app.store)
    users.add("disp", "dispatcher", passwords.hash(PASSWORD), now, "Диспетчер")
    users.add("ivan", "askue", passwords.hash(PASSWORD), now, "Иван")
    users.link("ivan", "account", ["A1"])
    api = create_app(app, passwords=passwords)
    try:
        with serving(api) as url:
            yield Served(url, app, day, record.id, api)
    finally:
        app.close()


@contextmanager
def serving(api: Any) -> Iterator[str]:
    """`api` served by uvicorn on a free port of 127.0.0.1 from a thread; its base URL."""
    import uvicorn

    sock = _free_socket()
    server = uvicorn.Server(uvicorn.Config(api, log_level="warning", access_log=False, lifespan="off", ws="none"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """Debian's chromium, headless (skipped off CI, failed on CI, when it or playwright is missing)."""
    why = browser_missing()
    if why is not None:
        if IN_CI:
            pytest.fail(f"browser tests need playwright and chromium on CI: {why}", pytrace=False)
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, served: Served, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh tab (Russian, 1400 × 900) on the dashboard; a screenshot of it is kept after the test."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="ru-RU", accept_downloads=True)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.set_default_timeout(10_000)
    try:
        yield tab
    finally:
        SHOTS.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(SHOTS / f"{request.node.name}-end.png"), full_page=True)
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def shot(tab: Any, name: str) -> None:
    """Keep a full-page screenshot under test-output/browser/."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def login(tab: Any, served: Served, user: str = "disp") -> None:
    """Open the dashboard and sign in."""
    tab.goto(served.url + "/")
    tab.fill("#login-form input[name=login]", user)
    tab.fill("#login-form input[name=password]", PASSWORD)
    tab.click("#login-form button[type=submit]")
    tab.wait_for_selector("#meters-table tbody tr")


__all__ = ["MISSING", "PASSWORD", "STEPS", "Served", "login", "serving", "shot"]
