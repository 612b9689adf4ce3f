"""The dashboard as a dispatcher uses it: sign in, the meters, a meter's charts against the store,
accepting a refused reading, exports, the language switch, and an АСКУЭ user's narrower view."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from amr.core.domain import Channel, kwh_from_wh
from amr.outputs.consumption import Step, boundaries, consumption
from tests.browser.conftest import STEPS, TZ, Served, login, shot

pytestmark = pytest.mark.browser


def expected_buckets(served: Served, serial: str, step: Step, start: datetime, end: datetime) -> list[tuple[str, str]]:
    """(bucket start UTC ISO, kWh) of every bucket with a value, computed from the store."""
    app = served.app
    meter = app.meters[serial]
    edges = boundaries(start, end, step, TZ)
    series = [(meter, app.store.consumption_series(meter, 0, step, edges[0], edges[-1]))]
    return [
        (b.start.astimezone(UTC).isoformat(), str(kwh_from_wh(b.value)))
        for b in consumption(series, Channel.A_PLUS, edges)
        if b.value is not None
    ]


def plotted(page: Any) -> list[tuple[str, str]]:
    """(data-start, data-value) of the chart's bars."""
    pairs = page.eval_on_selector_all(
        "#chart rect.bar", "bars => bars.map(b => [b.dataset.start, b.dataset.value])"
    )
    return [(datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(UTC).isoformat(), v) for s, v in pairs]


def settled(page: Any, want: list[tuple[str, str]], seconds: float = 10) -> list[tuple[str, str]]:
    """The chart's bars once they equal `want`, or as they are after `seconds` (the page's own refresh
    may redraw the chart while it is read)."""
    deadline = time.monotonic() + seconds
    while (got := plotted(page)) != want and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    return got


def test_sign_in_shows_every_meter_with_status_and_channels(page: Any, served: Served) -> None:
    page.goto(served.url + "/")
    page.wait_for_selector("#login-form")
    assert page.url.endswith("/dashboard/")
    shot(page, "01-login")
    page.fill("input[name=login]", "disp")
    page.fill("input[name=password]", "wrong")
    page.click("button[type=submit]")
    page.wait_for_function("document.querySelector('#login-error').textContent.length > 0")
    assert "неверный логин или пароль" in page.text_content("#login-error")
    login(page, served)
    page.wait_for_selector("#summary .stat[data-kind=online]")
    rows = page.eval_on_selector_all(
        "#meters-table tbody tr", "rows => rows.map(r => [r.dataset.serial, r.dataset.status])"
    )
    assert rows == [["M2", "degraded"], ["M1", "online"], ["M3", "offline"]]  # by object, as the API sorts
    counts = {
        kind: page.get_attribute(f"#summary .stat[data-kind={kind}] .value", "data-value")
        for kind in ("total", "online", "degraded", "offline")
    }
    assert counts == {"total": "3", "online": "1", "degraded": "1", "offline": "1"}
    # the four channels of M1's latest reading, exact
    latest = served.app.store.readings([served.app.meters["M1"].id], tariff=0)[-1]
    cell = page.get_attribute("#meters-table tr[data-serial=M1] td[data-channel=a_plus]", "data-value")
    assert cell == str(kwh_from_wh(latest.values[Channel.A_PLUS]))
    assert "Modbus TCP" in page.text_content("#meters-table tr[data-serial=M1]")
    # search and filters
    page.fill("#search", "кв. 12")
    page.wait_for_function("document.querySelectorAll('#meters-table tbody tr').length === 1")
    page.fill("#search", "")
    page.select_option("#filter-status", "offline")
    page.wait_for_function("document.querySelectorAll('#meters-table tbody tr').length === 1")
    assert page.get_attribute("#meters-table tbody tr", "data-serial") == "M3"
    page.select_option("#filter-status", "")
    page.select_option("#filter-protocol", "mercury230")  # the filter's choices and names come from the registry
    page.wait_for_function("document.querySelectorAll('#meters-table tbody tr').length === 1")
    assert page.get_attribute("#meters-table tbody tr", "data-serial") == "M2"
    assert page.eval_on_selector("#filter-protocol option:checked", "o => o.textContent") == "Меркурий 230"
    page.select_option("#filter-protocol", "")
    shot(page, "02-overview")


def test_meter_page_plots_the_stored_readings(page: Any, served: Served) -> None:
    login(page, served)
    page.click("#meters-table tr[data-serial=M1] a")
    page.wait_for_selector("#meter-title:has-text('Ввод Т-1')")
    page.wait_for_selector("#current-table tbody tr[data-tariff='0']")
    page.fill("#chart-date", served.day.isoformat())
    page.dispatch_event("#chart-date", "change")
    start = served.local_midnight(served.day)
    want = expected_buckets(served, "M1", Step.HALF_HOUR, start, start + timedelta(days=1))
    assert len(want) == 48 - 4  # the three missing readings leave four half-hours without a value
    page.wait_for_function(f"document.querySelectorAll('#chart rect.bar').length === {len(want)}")
    assert settled(page, want) == want
    gaps = page.eval_on_selector_all("#chart g.gap", "gaps => gaps.map(g => g.dataset.start)")
    assert len(gaps) == 4
    assert page.get_attribute("#chart", "data-unit") == "kWh"
    assert "кВт·ч" in page.text_content("#chart")
    total = page.get_attribute("#chart-total strong", "data-value")
    assert total == str(kwh_from_wh(sum(s for i, s in enumerate(STEPS) if i not in range(21, 25))))
    shot(page, "03-meter-day")

    page.click("button[data-step=day]")
    first = served.day.replace(day=1)
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    month_start = served.local_midnight(first)
    month = expected_buckets(served, "M1", Step.DAY, month_start, served.local_midnight(following))
    page.wait_for_function(
        f"document.querySelector('#chart').dataset.step === 'day' && "
        f"document.querySelectorAll('#chart rect.bar').length === {len(month)}"
    )
    assert settled(page, month) == month
    shot(page, "04-meter-month")

    page.click("button[data-step=month]")
    year_start = served.local_midnight(served.day.replace(month=1, day=1))
    year = expected_buckets(
        served, "M1", Step.MONTH, year_start, served.local_midnight(served.day.replace(year=served.day.year + 1,
                                                                                       month=1, day=1))
    )
    page.wait_for_function(
        f"document.querySelector('#chart').dataset.step === 'month' && "
        f"document.querySelectorAll('#chart rect.bar').length === {len(year)}"
    )
    assert settled(page, year) == year
    # the history lists readings with their sources
    page.wait_for_selector("#history tbody tr[data-source='askue:modbus']")
    assert "АСКУЭ · Modbus" in page.text_content("#history")


def test_accepting_a_refused_reading_removes_it_from_the_queue_and_audits_it(page: Any, served: Served) -> None:
    login(page, served)
    page.click("#nav a[data-nav=rejected]")
    row = f"#rejected-table tbody tr[data-id='{served.rejected_id}']"
    page.wait_for_selector(row)
    assert "lower_than_previous" in page.text_content(row)
    assert page.get_attribute(f"{row} td.value [data-channel=a_plus]", "data-value") == "1001.000"
    previous = page.get_attribute(f"{row} td.previous [data-channel=a_plus]", "data-value")
    assert previous is not None and float(previous) > 1001
    shot(page, "05-rejected")
    page.click(f"{row} button.accept")  # no reason: refused by the form
    assert page.is_visible(row)
    page.fill(f"{row} input.reason", "замена трансформатора тока, проверено на месте")
    page.click(f"{row} button.accept")
    page.wait_for_selector(row, state="detached")
    page.wait_for_selector(f"#audit-table tbody tr[data-subject='rejected/{served.rejected_id}']")
    audit_row = page.text_content(f"#audit-table tbody tr[data-subject='rejected/{served.rejected_id}']")
    assert "disp" in audit_row and "замена трансформатора тока" in audit_row
    record = served.app.store.get_rejected(served.rejected_id)
    assert record.status == "accepted" and record.resolved_by == "disp"
    [entry] = [a for a in served.app.store.audit_log() if a["subject"] == f"rejected/{served.rejected_id}"]
    assert entry["action"] == "override" and entry["actor"] == "disp"
    page.click(".tabs button[data-status=accepted]")
    page.wait_for_selector(f"{row}[data-status=accepted]")
    shot(page, "06-rejected-accepted")


def test_exports_download_csv_and_80020_of_a_day(page: Any, served: Served) -> None:
    login(page, served)
    page.click("#nav a[data-nav=exports]")
    page.fill("#export-date", served.day.isoformat())
    page.dispatch_event("#export-date", "change")
    with page.expect_download() as csv_download:
        page.click("#export-csv")
    csv_file = csv_download.value
    assert csv_file.suggested_filename == f"readings_{served.day:%Y%m%d}.csv"
    text = Path(csv_file.path()).read_text(encoding="utf-8")
    assert text.splitlines()[0] == "meter,timestamp,tariff,a_plus,a_minus,r_plus,r_minus,source"
    assert sum(1 for line in text.splitlines() if line.startswith("M1,")) == 48 - 3
    with page.expect_download() as xml_download:
        page.click("#export-80020")
    xml = Path(xml_download.value.path()).read_bytes()
    assert b'class="80020"' in xml and b"windows-1251" in xml[:100]
    shot(page, "07-exports")


def test_language_switch_changes_the_texts_to_english_and_back(page: Any, served: Served) -> None:
    login(page, served)
    assert page.text_content("#nav a[data-nav=overview]") == "Обзор"
    assert "Счётчиков" in page.text_content("#summary")
    page.click("#lang-switch button[data-lang=en]")
    page.wait_for_function("document.querySelector('#nav a[data-nav=overview]').textContent === 'Overview'")
    assert page.text_content("#nav a[data-nav=rejected]") == "Refused"
    page.wait_for_selector("#summary .stat[data-kind=total]")
    assert "Meters" in page.text_content("#summary")
    assert "OBJECT" in page.text_content("#meters-table thead").upper()
    assert page.get_attribute("html", "lang") == "en"
    assert "offline" in page.text_content("#meters-table tr[data-serial=M3]")
    shot(page, "08-overview-en")
    page.reload()  # the choice is remembered
    page.wait_for_selector("#meters-table tbody tr")
    assert page.text_content("#logout") == "Sign out"
    page.click("#lang-switch button[data-lang=ru]")
    page.wait_for_function("document.querySelector('#logout').textContent === 'Выйти'")


def test_askue_user_sees_only_own_meters_without_the_dispatch_screens(page: Any, served: Served) -> None:
    login(page, served, "ivan")
    serials = page.eval_on_selector_all("#meters-table tbody tr", "rows => rows.map(r => r.dataset.serial)")
    assert serials == ["M2"]
    assert page.query_selector("#summary") is None
    assert page.query_selector("#nav a[data-nav=rejected]") is None
    page.click("#meters-table tr[data-serial=M2] a")
    page.wait_for_selector("#current-table tbody tr[data-tariff='1']")
    shot(page, "09-askue-meter")
