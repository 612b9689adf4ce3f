"""The registry screen in a real browser: an admin finds a meter on the server, edits its entry,
gives it a new ratio from a date (shown as the site's date), replaces it on its point; creates, edits
and removes metering points, objects and buses; sees the API's refusals in the chosen language; and
the process serves the changes. The tests share one server and run in order."""

from __future__ import annotations

import json
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


def admin(tab: Any, url: str, where: str = "#/registry") -> None:
    """Sign in as the admin `root` and open `where`."""
    tab.goto(url + "/")
    tab.fill("#login-form input[name=login]", "root")
    tab.fill("#login-form input[name=password]", PASSWORD)
    tab.click("#login-form button[type=submit]")
    tab.wait_for_selector("#nav a[data-nav=registry]")
    tab.evaluate(f"location.hash = {where!r}")


def wait_refreshed(app: App, check: Any) -> None:
    """Until the server's own watch has reloaded the registry so that `check()` holds."""
    deadline = time.monotonic() + 10
    while not check() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert check()


def test_an_admin_finds_edits_and_rerates_a_meter(tab: Any, registry_url: tuple[str, App]) -> None:
    url, app = registry_url
    tab.goto(url + "/")
    tab.fill("#login-form input[name=login]", "root")
    tab.fill("#login-form input[name=password]", PASSWORD)
    tab.click("#login-form button[type=submit]")
    tab.click("#nav a[data-nav=registry]")
    tab.wait_for_selector("#registry-table tbody tr[data-key=M3]")
    assert tab.locator("#registry-table tbody tr").count() == 3

    tab.fill("#registry-search", "кв")
    tab.press("#registry-search", "Enter")
    tab.wait_for_function("document.querySelectorAll('#registry-table tbody tr').length === 1")
    assert tab.locator("#registry-table tbody tr").first.get_attribute("data-key") == "M2"

    tab.fill("#registry-search", "")
    tab.press("#registry-search", "Enter")
    tab.click("#registry-table tbody tr[data-key=M1]")
    entry = tab.input_value("#registry-entry")
    assert '"profile": "eastron-sdm630"' in entry
    tab.fill("#registry-entry", entry.replace('"Ввод Т-1"', '"Ввод Т-1 (новый)"'))
    tab.fill("#registry-editor-reason", "переименован")
    tab.click("#registry-save")
    tab.wait_for_selector("#registry-table tbody tr[data-key=M1] >> text=Ввод Т-1 (новый)")

    # the ratio in effect is there to start from; only what changes is sent
    assert (tab.input_value("#ratio-ct"), tab.input_value("#ratio-vt")) == ("1", "1")
    sent: list[Any] = []
    tab.on("request", lambda r: sent.append(r.post_data_json) if r.url.endswith("/ratios") else None)
    tab.fill("#ratio-since", "2026-04-01")  # the site's midnight: 2026-03-31 21:00 UTC
    tab.fill("#ratio-ct", "40")
    tab.click("#ratio-add")
    tab.wait_for_selector("#registry-table tbody tr[data-key=M1] >> text=1 → 40 (01.04.2026) × 1 → 1 (01.04.2026)")
    assert sent == [{"since": "2026-04-01", "reason": "переименован", "ct_ratio": "40"}]
    assert '"since": "2026-04-01"' in tab.input_value("#registry-entry")  # the site's date, not the UTC one
    assert (tab.input_value("#ratio-ct"), tab.input_value("#ratio-vt")) == ("40", "1")
    shot(tab, "registry-edited")

    # the entry saved back as shown (dates as the site's) keeps the ratio's start where it was
    tab.fill("#registry-entry", tab.input_value("#registry-entry").replace("(новый)", "(новый, 2)"))
    tab.click("#registry-save")
    tab.wait_for_selector("#registry-table tbody tr[data-key=M1] >> text=Ввод Т-1 (новый, 2)")
    assert "1 → 40 (01.04.2026)" in tab.text_content("#registry-table tbody tr[data-key=M1]")
    wait_refreshed(app, lambda: app.meters["M1"].name == "Ввод Т-1 (новый, 2)")
    assert app.meters["M1"].ratio_at(datetime(2026, 3, 31, 21, tzinfo=UTC)) == 40
    assert app.meters["M1"].ratio_at(datetime(2026, 3, 31, 20, 59, tzinfo=UTC)) == 1


def test_a_refusal_is_shown_in_the_chosen_language(tab: Any, registry_url: tuple[str, App]) -> None:
    url, _ = registry_url
    admin(tab, url, "#/registry/meters?open=M2")
    tab.wait_for_selector("#registry-editor:not([hidden])")
    tab.fill("#ratio-since", "2026-05-01")
    tab.fill("#ratio-ct", "сорок")
    tab.click("#ratio-add")
    tab.wait_for_selector("#registry-editor-error:has-text('не коэффициент')")
    assert tab.text_content("#registry-editor-error") == (
        "ct_ratio: 'сорок' — не коэффициент; пишите положительное число, например 40 или 0.5")

    tab.click("#lang-switch button[data-lang=en]")
    tab.evaluate("location.hash = '#/registry/objects'")
    tab.click("#objects-table tbody tr[data-key='Посёлок']")
    tab.click("#object-remove")
    tab.wait_for_selector("#object-editor-error:has-text('metering point')")
    refusal = tab.text_content("#object-editor-error")
    assert refusal == "object 'Посёлок' has 1 metering point(s); move or remove them first"
    shot(tab, "registry-refused")


def test_an_object_created_renamed_and_removed(tab: Any, registry_url: tuple[str, App]) -> None:
    url, _ = registry_url
    admin(tab, url, "#/registry/objects")
    tab.wait_for_selector("#objects-table tbody tr[data-key='Дом 1']")
    tab.click("#object-new")
    tab.fill("#object-name", "ТП-7")
    tab.fill("#object-editor-reason", "новая подстанция")
    tab.click("#object-save")
    tab.wait_for_selector("#objects-table tbody tr[data-key='ТП-7']")
    assert tab.text_content("#objects-table tbody tr[data-key='ТП-7']") == "ТП-700"

    tab.fill("#object-name", "ТП-7А")
    tab.click("#object-save")
    tab.wait_for_selector("#objects-table tbody tr[data-key='ТП-7А']")
    assert tab.locator("#objects-table tbody tr[data-key='ТП-7']").count() == 0
    tab.fill("#objects-filter", "тп")
    tab.wait_for_function("document.querySelectorAll('#objects-table tbody tr').length === 1")

    tab.click("#object-remove")
    tab.wait_for_selector("#objects-table tbody tr[data-key='ТП-7А']", state="detached")
    assert tab.is_hidden("#object-editor")


def test_a_point_created_moved_and_removed(tab: Any, registry_url: tuple[str, App]) -> None:
    url, _ = registry_url
    admin(tab, url, "#/registry/points")
    tab.wait_for_selector("#points-table tbody tr[data-key=kot9]")
    assert tab.text_content("#points-table tbody tr[data-key=kot9]") == "kot9ПосёлокM31"
    tab.click("#point-new")
    tab.fill("#point-code", "kot10")
    tab.fill("#point-object", "Посёлок")
    tab.click("#point-save")
    tab.wait_for_selector("#points-table tbody tr[data-key=kot10]")
    assert tab.text_content("#points-table tbody tr[data-key=kot10]") == "kot10Посёлок—0"
    assert tab.get_attribute("#point-code", "readonly") is not None  # a point keeps its code

    tab.fill("#point-object", "Посёлок, улица 2")  # a new object is made for it
    tab.click("#point-save")
    tab.wait_for_selector("#points-table tbody tr[data-key=kot10] >> text=Посёлок, улица 2")
    tab.fill("#points-search", "улица")
    tab.press("#points-search", "Enter")
    tab.wait_for_function("document.querySelectorAll('#points-table tbody tr').length === 1")

    # a point no meter has been on can go; one with a meter cannot
    tab.click("#points-table tbody tr[data-key=kot10]")
    tab.click("#point-remove")
    tab.wait_for_selector("#points-table tbody tr[data-key=kot10]", state="detached")
    tab.fill("#points-search", "")
    tab.press("#points-search", "Enter")
    tab.click("#points-table tbody tr[data-key=kot9]")
    tab.click("#point-remove")
    tab.wait_for_selector("#point-editor-error:has-text('kot9')")
    assert "409" not in tab.text_content("#point-editor-error")

    # the object's points, from the objects tab
    tab.evaluate("location.hash = '#/registry/objects'")
    tab.click("#objects-table tbody tr[data-key='Посёлок, улица 2']")
    tab.click("#object-points")
    tab.wait_for_selector("#points-of-object:has-text('Посёлок, улица 2')")
    tab.wait_for_selector("#points-empty:not([hidden])")
    tab.click("#point-new")
    assert tab.input_value("#point-object") == "Посёлок, улица 2"


def test_a_bus_created_edited_and_removed(tab: Any, registry_url: tuple[str, App]) -> None:
    url, app = registry_url
    admin(tab, url, "#/registry/buses")
    tab.wait_for_selector("#buses-table tbody tr[data-key=merc]")
    tab.click("#bus-new")
    entry = {"name": "rtu2", "kind": "modbus-rtu", "url": "tcp://127.0.0.1:1"}
    tab.fill("#bus-entry", json.dumps(entry))
    tab.click("#bus-save")  # a serial-line protocol over TCP: refused, with the configuration's words
    tab.wait_for_selector("#bus-editor-error:has-text('modbus-rtu')")
    assert tab.text_content("#bus-editor-error").startswith("запись не принята: ")

    entry = {"name": "tcp2", "kind": "modbus-tcp", "url": "tcp://127.0.0.1:5020", "schedule": "15m"}
    tab.fill("#bus-entry", json.dumps(entry))
    tab.click("#bus-save")
    tab.wait_for_selector("#buses-table tbody tr[data-key=tcp2] >> text=tcp://127.0.0.1:5020")
    assert tab.text_content("#bus-editor-error") == ""
    wait_refreshed(app, lambda: any(b.name == "tcp2" for b in app.config.buses))

    edited = json.loads(tab.input_value("#bus-entry"))
    tab.fill("#bus-entry", json.dumps({**edited, "url": "tcp://127.0.0.1:5021"}))
    tab.click("#bus-save")
    tab.wait_for_selector("#buses-table tbody tr[data-key=tcp2] >> text=tcp://127.0.0.1:5021")

    tab.click("#bus-remove")
    tab.wait_for_selector("#buses-table tbody tr[data-key=tcp2]", state="detached")
    tab.click("#buses-table tbody tr[data-key=merc]")
    tab.click("#bus-remove")
    tab.wait_for_selector("#bus-editor-error:has-text('merc')")


def test_a_meter_replaced_on_its_point_at_a_time(tab: Any, registry_url: tuple[str, App]) -> None:
    url, app = registry_url
    admin(tab, url, "#/registry/points")
    tab.click("#points-table tbody tr[data-key=kot9]")
    tab.click("#point-meter")  # to the meter in service there
    tab.wait_for_selector("#registry-editor-title:has-text('M3')")
    tab.fill("#replace-serial", "M4")
    tab.fill("#replace-at", "2026-05-10T12:00")  # the site's time: 09:00 UTC
    tab.fill("#registry-editor-reason", "сгорел")
    tab.click("#replace-go")
    tab.wait_for_selector("#registry-table tbody tr[data-key=M4]")
    assert "снят 10.05.2026 12:00" in tab.text_content("#registry-table tbody tr[data-key=M3]")
    assert tab.text_content("#registry-editor-title").startswith("M4")
    assert '"installed": "2026-05-10T12:00:00+03:00"' in tab.input_value("#registry-entry")

    wait_refreshed(app, lambda: "M4" in app.meters)
    assert app.meters["M4"].point == "kot9" and app.meters["M4"].installed == datetime(2026, 5, 10, 9, tzinfo=UTC)
    tab.evaluate("location.hash = '#/registry/points'")
    tab.wait_for_selector("#points-table tbody tr[data-key=kot9] >> text=M4")


def test_the_registry_screens_fit_a_phone(browser: Any, registry_url: tuple[str, App]) -> None:
    url, _ = registry_url
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="ru-RU", is_mobile=True)
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    try:
        admin(tab, url, "#/registry/meters?open=M1")
        for where, shown in (("meters?open=M1", "#registry-editor:not([hidden])"), ("points", "#points-table tbody tr"),
                             ("objects", "#objects-table tbody tr"), ("buses", "#buses-table tbody tr")):
            tab.evaluate(f"location.hash = '#/registry/{where}'")
            tab.wait_for_selector(shown)
            if where != "meters?open=M1":
                tab.click(f"#{where}-table tbody tr")
            tab.wait_for_selector(".editor:not([hidden])")
            assert tab.evaluate("document.documentElement.scrollWidth") <= 390, where
            for box in tab.locator(".editor button, .editor input, .editor textarea, #registry-tabs a").all():
                place = box.bounding_box()
                assert place is None or (place["x"] >= 0 and place["x"] + place["width"] <= 390), (where, place)
            shot(tab, f"registry-phone-{where.split('?')[0]}")
    finally:
        context.close()
