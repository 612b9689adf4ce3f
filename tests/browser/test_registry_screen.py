"""The registry screen in a real browser: an admin finds a meter on the server, edits its entry,
gives it a new ratio from a date, and the process serves the change."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from amr.api import create_app
from amr.api.security import Passwords
from amr.app import App
from amr.config import config_from_dict
from amr.registry.changes import apply
from amr.store.users import Users
from tests.browser.conftest import BUSES, FAST_HASHER, METERS, PASSWORD, _free_socket, shot


@pytest.fixture(scope="module")
def registry_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, App]]:
    """uvicorn over a SQLite store whose registry holds the dashboard's meters; an admin `root`."""
    import uvicorn

    folder: Path = tmp_path_factory.mktemp("registry")
    data: dict[str, Any] = {"database": {"url": f"sqlite:///{folder / 'amr.sqlite'}"},
                            "site": {"timezone": "Europe/Moscow"}, "registry": {"source": "database"}}
    filled = config_from_dict({**data, "buses": BUSES, "meters": METERS}, environ={})
    app = App.open(filled)  # migrates; then the registry is filled and the app reloads it
    apply(app.store, filled)
    app.close()
    app = App.open(config_from_dict(data, environ={}))
    passwords = Passwords(FAST_HASHER)
    Users(app.store).add("root", "admin", passwords.hash(PASSWORD), datetime.now(UTC), "Админ")
    sock = _free_socket()
    server = uvicorn.Server(uvicorn.Config(create_app(app, passwords=passwords), log_level="warning",
                                           access_log=False, ws="none"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", app
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
        app.close()


@pytest.fixture
def tab(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="ru-RU")
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    opened.on("dialog", lambda dialog: dialog.accept())
    opened.set_default_timeout(10_000)
    try:
        yield opened
    finally:
        shot(opened, f"{request.node.name}-end")
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def test_an_admin_finds_edits_and_rerates_a_meter(tab: Any, registry_url: tuple[str, App]) -> None:
    url, app = registry_url
    tab.goto(url + "/")
    tab.fill("#login-form input[name=login]", "root")
    tab.fill("#login-form input[name=password]", PASSWORD)
    tab.click("#login-form button[type=submit]")
    tab.click("#nav a[data-nav=registry]")
    tab.wait_for_selector("#registry-table tbody tr[data-serial=M3]")
    assert tab.locator("#registry-table tbody tr").count() == 3

    tab.fill("#registry-search", "кв")
    tab.press("#registry-search", "Enter")
    tab.wait_for_function("document.querySelectorAll('#registry-table tbody tr').length === 1")
    assert tab.locator("#registry-table tbody tr").first.get_attribute("data-serial") == "M2"

    tab.fill("#registry-search", "")
    tab.press("#registry-search", "Enter")
    tab.click("#registry-table tbody tr[data-serial=M1]")
    entry = tab.input_value("#registry-entry")
    assert '"profile": "eastron-sdm630"' in entry
    tab.fill("#registry-entry", entry.replace('"Ввод Т-1"', '"Ввод Т-1 (новый)"'))
    tab.fill("#registry-reason", "переименован")
    tab.click("#registry-save")
    tab.wait_for_selector("#registry-table tbody tr[data-serial=M1] >> text=Ввод Т-1 (новый)")

    tab.fill("#ratio-since", "2026-04-01")
    tab.fill("#ratio-ct", "40")
    tab.click("#ratio-add")
    tab.wait_for_selector("#registry-table tbody tr[data-serial=M1] >> text=1 → 40 (2026-03-31) × 1 → 1 (2026-03-31)")
    shot(tab, "registry-edited")

    deadline = time.monotonic() + 10  # the server's own watch reloads the registry within its interval
    while app.meters["M1"].ratio_at(datetime(2026, 4, 2, tzinfo=UTC)) != 40 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert app.meters["M1"].ratio_at(datetime(2026, 4, 2, tzinfo=UTC)) == 40
    assert app.meters["M1"].name == "Ввод Т-1 (новый)"
