"""What a person sees: a meter that answers in part, collector errors in their language, units in
their own case, the unfinished day and month, and the header on a phone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from typing import Any

import pytest

from amr.collector.result import PollResult
from amr.core.domain import Channel, IncomingReading, Source
from amr.dashboard.polls import PollLog
from amr.drivers.base import MeterValues
from amr.drivers.modbus.driver import register_map
from amr.store.health import HealthRecord, save_health
from tests.browser.conftest import SHOTS, TZ, Served, login, shot

pytestmark = pytest.mark.browser
LABELS = {Channel.A_PLUS: "A+", Channel.A_MINUS: "A-", Channel.R_PLUS: "R+", Channel.R_MINUS: "R-"}


@pytest.fixture(scope="module")
def polled(served: Served) -> Iterator[dict[str, Any]]:
    """M1 answered its last poll in part (one Modbus block refused by the meter) after a poll that
    could not connect; M2 has readings today."""
    app = served.app
    config = next(m for m in app.config.meters if m.serial == "M1")
    block = register_map(config, 125).plan()[-1]
    where = f"fc{block.function}:{block.address}+{block.count}"
    answer = "tcp://127.0.0.1:1: unit 1 answered illegal data address (2)"
    channels = sorted(
        LABELS[c] if t == 0 else f"T{t} {LABELS[c]}"
        for (c, t), spec in register_map(config, 125).registers.items()
        if spec in block.specs
    )
    now = datetime.now(UTC)
    log = PollLog()
    failed = PollResult("M1", "tcp", now - timedelta(minutes=30), now - timedelta(minutes=29), attempts=3,
                        error="tcp://127.0.0.1:1: connection refused", error_kind="ConnectError", status="degraded")
    values = MeterValues("M1", {0: {Channel.A_PLUS: 1_000_000}}, now, errors={where: answer})
    reading = IncomingReading("M1", now, 0, {Channel.A_PLUS: 1_000_000}, Source.MODBUS, {})
    partial = PollResult("M1", "tcp", now, now + timedelta(seconds=1), attempts=1, values=values, readings=[reading],
                         status="degraded")
    log.add(failed)
    log.add(partial)
    served.api.state.poll_log = log
    m1 = app.meters["M1"].id
    save_health(app.store, [HealthRecord(m1, "degraded", now, now, f"{where}: {answer}", now, 0, 11, 1)])
    # M2 today: midnight and half-way to now, so today and this month have consumption so far
    midnight = datetime.combine(now.astimezone(TZ).date(), dtime(), TZ).astimezone(UTC)
    last = app.store.readings([app.meters["M2"].id], tariff=0)[-1]
    first = max(midnight, last.ts + timedelta(seconds=1))  # just after midnight the history may reach past it
    later = first + max(timedelta(seconds=1), (now - first) / 2)
    start = last.values[Channel.A_PLUS] or 0
    batch = [
        IncomingReading("M2", at, 0, {Channel.A_PLUS: start + n}, Source.SERIAL, {}, received_at=at)
        for n, at in ((1, first), (3, later))  # Wh: plausible however soon after midnight
    ]
    outcomes = app.ingestor.submit(batch).outcomes
    assert all(o.status == "accepted" for o in outcomes), [(o.status, o.reasons, o.message) for o in outcomes]
    try:
        yield {"where": where, "answer": answer, "channels": channels}
    finally:
        served.api.state.poll_log = None


def test_a_meter_answering_in_part_shows_what_is_missing_and_why(
    page: Any, served: Served, polled: dict[str, Any]
) -> None:
    login(page, served)
    assert page.get_attribute("#meters-table tr[data-serial=M1]", "data-status") == "degraded"
    page.click("#meters-table tr[data-serial=M1] a")
    page.wait_for_selector("#polls li[data-kind=partial]")
    badge = page.locator(".subtitle .badge[data-status=degraded]")
    assert badge.evaluate("b => getComputedStyle(b).color") == "rgb(154, 95, 0)"  # amber
    partial = page.locator("#polls li[data-kind=partial]")
    assert "ответил не полностью" in partial.inner_text()
    assert "не считано: " + ", ".join(polled["channels"]) in partial.inner_text()
    assert partial.evaluate("li => getComputedStyle(li).borderLeftColor") == "rgb(199, 124, 2)"
    # the problems list names it too: no "no errors" for a meter that answers in part
    problems = page.locator("#problems")
    assert "Ошибок нет" not in problems.inner_text()
    item = problems.locator("li[data-kind=partial]")
    assert "счётчик ответил не полностью" in item.inner_text()
    # the device's answer is there on demand
    assert polled["answer"] not in item.inner_text()
    item.locator("details summary").first.click()
    assert polled["answer"] in item.inner_text()
    failed = problems.locator("li[data-code=ConnectError]")
    assert "нет связи со счётчиком или линией" in failed.inner_text()
    assert "connection refused" not in failed.inner_text()
    failed.locator("details summary").click()
    assert "connection refused" in failed.inner_text()
    last_error = page.locator("dd[data-fact=last_error]")
    assert "счётчик ответил не полностью" in last_error.inner_text()
    shot(page, "10-meter-partial-ru")

    page.click("#lang-switch button[data-lang=en]")
    page.wait_for_selector("#polls li[data-kind=partial]:has-text('answered in part')")
    assert "the meter answered in part" in page.locator("#problems li[data-kind=partial]").inner_text()
    assert "no connection to the meter or its line" in page.locator("#problems li[data-code=ConnectError]").inner_text()
    shot(page, "11-meter-partial-en")
    page.click("#lang-switch button[data-lang=ru]")


def test_units_keep_their_case(page: Any, served: Served) -> None:
    login(page, served)
    head = page.inner_text("#meters-table thead")
    assert "A+, кВт·ч" in head and "R+, квар·ч" in head and "КВТ" not in head
    page.click("#lang-switch button[data-lang=en]")
    page.wait_for_selector("#meters-table thead:has-text('kWh')")
    head = page.inner_text("#meters-table thead")
    assert "A+, kWh" in head and "R+, kvarh" in head and "KWH" not in head
    page.click("#lang-switch button[data-lang=ru]")


def test_the_current_day_and_month_are_drawn_as_partial(page: Any, served: Served, polled: dict[str, Any]) -> None:
    login(page, served)
    page.click("#meters-table tr[data-serial=M2] a")
    page.wait_for_selector("#meter-title:has-text('кв. 12')")
    today = datetime.now(UTC).astimezone(TZ).date()
    page.click("button[data-step=day]")  # this month by day
    page.wait_for_selector("#chart[data-step=day] rect.bar[data-current=true]")
    bar = page.locator("#chart rect.bar[data-current=true]")
    assert datetime.fromisoformat(bar.get_attribute("data-local") or "").date() == today
    assert "partial" in (bar.get_attribute("class") or "")
    assert "на сегодня" in bar.locator("title").text_content()
    assert page.locator("#chart rect.bar[data-current=true]").count() == 1
    shot(page, "12-month-to-date")
    page.click("button[data-step=month]")  # this year by month
    page.wait_for_selector("#chart[data-step=month] rect.bar[data-current=true]")
    bar = page.locator("#chart rect.bar[data-current=true]")
    assert (bar.get_attribute("data-local") or "")[:7] == today.isoformat()[:7]
    assert "partial" in (bar.get_attribute("class") or "") and "на сегодня" in bar.locator("title").text_content()
    full = page.locator("#chart rect.bar[data-current=false]")
    assert all("current" not in (full.nth(i).get_attribute("class") or "") for i in range(full.count()))
    shot(page, "13-year-to-date")


def test_the_header_on_a_phone_keeps_the_language_switch_and_sign_out(browser: Any, served: Served) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="ru-RU", is_mobile=True)
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    try:
        login(tab, served)
        for selector in ("#lang-switch button[data-lang=en]", "#logout"):
            box = tab.locator(selector).bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, (selector, box)
        assert tab.evaluate("document.documentElement.scrollWidth") <= 390
        tab.screenshot(path=str(SHOTS / "14-phone-header.png"))
        tab.click("#lang-switch button[data-lang=en]")
        tab.wait_for_selector("#logout:has-text('Sign out')")
        tab.click("#logout")
        tab.wait_for_selector("#login-form")
        assert tab.locator("#topbar").is_hidden()
    finally:
        context.close()
