"""A dispatcher commands a meter's relay from its page: the command is queued with its reason, and the
state read back by the collector is shown with the command's outcome."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from amr.api import create_app
from amr.api.security import Passwords
from amr.app import App
from amr.config import config_from_dict
from amr.store import relay_commands as commands
from amr.store.relay_commands import Outcome
from amr.store.users import Users
from tests.browser.conftest import FAST_HASHER, PASSWORD, Served, login, serving, shot

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """uvicorn on 127.0.0.1 over a store with a DLMS meter (never reached: the test plays the collector)."""
    folder: Path = tmp_path_factory.mktemp("relay")
    config = config_from_dict({
        "database": {"url": f"sqlite:///{folder / 'amr.sqlite'}"},
        "buses": [{"name": "dl", "kind": "dlms-tcp", "url": "tcp://127.0.0.1:1"}],
        "meters": [{"serial": "D1", "name": "кв. 7", "object": "Дом 2", "bus": "dl", "address": 17}],
    }, environ={})
    app = App.open(config)
    passwords = Passwords(FAST_HASHER)
    Users(app.store).add("disp", "dispatcher", passwords.hash(PASSWORD), datetime.now(UTC), "Диспетчер")
    try:
        with serving(create_app(app, passwords=passwords)) as url:
            yield Served(url, app, datetime.now(UTC).date(), 0)
    finally:
        app.close()

def test_a_disconnect_from_the_meter_page_is_queued_with_its_reason_and_its_outcome_shown(
    page: Any, served: Served
) -> None:
    page.on("dialog", lambda dialog: dialog.accept())  # "Disconnect the consumer?"
    login(page, served)
    page.click("#meters-table tr[data-serial=D1] a")
    page.wait_for_selector("#relay-card:not([hidden]) #relay-state:has-text('состояние неизвестно')")
    page.click("#relay-card button[data-action=disconnect]")
    page.wait_for_selector(".toast:has-text('Укажите причину')")  # no reason, nothing queued
    assert commands.of_meter(served.app.store, served.app.meters["D1"].id) == []
    page.fill("#relay-reason", "задолженность 3 мес.")
    page.click("#relay-card button[data-action=disconnect]")
    page.wait_for_selector("#relay-commands li[data-status=queued][data-action=disconnect]")
    [queued] = commands.of_meter(served.app.store, served.app.meters["D1"].id)
    assert (queued.reason, queued.requested_by, queued.action) == ("задолженность 3 мес.", "disp", "disconnect")
    now = datetime.now(UTC)
    [claimed] = commands.claim(served.app.store, [queued.meter_id], "collector:test", now, timedelta(minutes=1))
    commands.finish(served.app.store, claimed, "collector:test", Outcome("done", "disconnected", False, True), now)
    page.reload()  # the page would ask again within 5 s; the token stays in the tab
    page.wait_for_selector("#relay-state[data-state=disconnected]")
    assert "отключено" in page.text_content("#relay-state")
    assert page.get_attribute("#relay-commands li", "data-status") == "done"
    shot(page, "21-meter-relay")
