"""The meter page's event timeline in a real browser: the meter's events newest first, coloured by
severity, and for a dispatcher the clock's last check; an АСКУЭ user sees the events of its own meter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from amr.core.events import MeterEvent
from amr.store.events import ClockCheck, save_clock, save_events
from tests.browser.conftest import Served, login, shot

pytestmark = pytest.mark.browser


def seed(served: Served) -> None:
    app = served.app
    ids = {s: m.id for s, m in app.meters.items()}
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=5)
    save_events(app.store, ids, [
        MeterEvent("M2", at, "power.off"),
        MeterEvent("M2", at + timedelta(minutes=7), "power.on"),
        MeterEvent("M2", at + timedelta(hours=2), "tamper.cover_opened"),
        MeterEvent("M2", at + timedelta(hours=3), "clock.corrected", source="head-end", detail="shift -42.0 s"),
    ], at)
    save_clock(app.store, ClockCheck(ids["M2"], at + timedelta(hours=3), "corrected", None, 42_000,
                                     "shifted by -42.0 s", at + timedelta(hours=3), -42_000))


def test_the_timeline_shows_the_meter_s_events_and_its_clock(page: Any, served: Served) -> None:
    seed(served)
    login(page, served)
    page.click("#meters-table tr[data-serial=M2] a")
    page.wait_for_selector("#meter-events li[data-code='tamper.cover_opened']")
    codes = page.eval_on_selector_all("#meter-events li", "items => items.map(i => i.dataset.code)")
    assert codes[:4] == ["clock.corrected", "tamper.cover_opened", "power.on", "power.off"]
    cover = page.text_content("#meter-events li[data-code='tamper.cover_opened']")
    assert "Вскрытие крышки счётчика" in cover
    assert "bad" in (page.get_attribute("#meter-events li[data-code='tamper.cover_opened']", "class") or "")
    page.wait_for_selector("#meter-clock[data-state='corrected']")
    clock = page.text_content("#meter-clock")
    assert "скорректированы" in clock and "+42.0" in clock
    assert page.is_visible("#clock-correct")
    shot(page, "10-meter-events")


def test_an_askue_user_sees_the_events_of_its_meter_but_not_the_clock(page: Any, served: Served) -> None:
    seed(served)
    login(page, served, "ivan")
    page.goto(served.url + "/dashboard/#/meter/M2")
    page.wait_for_selector("#meter-events li[data-code='power.off']")
    assert page.query_selector("#meter-clock") is None and page.query_selector("#clock-correct") is None
