"""The day chart of a meter with interval data draws measured, estimated and missing half-hours apart."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from amr.core.domain import Channel
from amr.core.intervals import IntervalSource, IntervalStatus, IntervalValue
from tests.browser.conftest import TZ, Served, login, shot

pytestmark = pytest.mark.browser
HALF = timedelta(minutes=30)
ESTIMATED = (10, 11, 12)
MISSING = (20, 21)


def test_day_chart_marks_estimated_and_missing_intervals(page: Any, served: Served) -> None:
    day = served.day - timedelta(days=12)  # M3 has no readings at all: the chart can only come from intervals
    start = datetime.combine(day, time(), TZ).astimezone(UTC)
    values = []
    for i in range(48):
        if i in MISSING:
            continue
        source = IntervalSource.ESTIMATED if i in ESTIMATED else IntervalSource.PROFILE
        status = IntervalStatus.ESTIMATED if i in ESTIMATED else IntervalStatus.MEASURED
        values.append(IntervalValue("M3", Channel.A_PLUS, start + i * HALF, HALF, 1000 + 10 * i, status, source,
                                    start, "linear" if i in ESTIMATED else None))
    assert served.app.store.write_intervals(values).accepted == 46
    login(page, served)
    page.click("#meters-table tr[data-serial=M3] a")
    page.wait_for_selector("#meter-title")
    page.fill("#chart-date", day.isoformat())
    page.dispatch_event("#chart-date", "change")
    page.wait_for_function("document.querySelectorAll('#chart rect.bar').length === 46")
    estimated = page.eval_on_selector_all("#chart rect.bar.estimated", "bars => bars.map(b => b.dataset.start)")
    assert len(estimated) == 3
    assert {page.get_attribute(f"#chart rect.bar[data-start='{s}']", "data-basis") for s in estimated} == {"intervals"}
    assert len(page.eval_on_selector_all("#chart g.gap", "gaps => gaps.length ? gaps : []")) == 2
    title = page.text_content("#chart rect.bar.estimated title")
    assert "оценка" in title
    assert page.eval_on_selector_all("#chart rect.bar[data-status=measured]", "b => b.length") == 43
    shot(page, "09-meter-day-intervals")


def test_a_late_answer_for_an_earlier_choice_does_not_replace_the_chart(page: Any, served: Served) -> None:
    """The meter page asks for its first chart, then the user picks a day; the first answer arrives last (a slow
    server): the chart stays the day picked."""
    day = served.day - timedelta(days=13)
    start = datetime.combine(day, time(), TZ).astimezone(UTC)
    values = [IntervalValue("M3", Channel.A_PLUS, start + i * HALF, HALF, 500 + i, IntervalStatus.MEASURED,
                            IntervalSource.PROFILE, start, None) for i in range(48)]
    assert served.app.store.write_intervals(values).accepted == 48
    held: list[Any] = []

    def hold_the_first(route: Any) -> None:
        if f"from={day.isoformat()}" in route.request.url:
            route.continue_()
        else:
            held.append(route)  # answered only once the day picked is drawn

    login(page, served)
    page.route("**/meters/M3/consumption?*", hold_the_first)
    try:
        page.click("#meters-table tr[data-serial=M3] a")
        page.wait_for_selector("#meter-title")
        for _ in range(200):  # the page's own first chart is asked for (and held) before the user picks a day
            if held:
                break
            page.wait_for_timeout(25)
        assert held
        page.fill("#chart-date", day.isoformat())
        page.dispatch_event("#chart-date", "change")
        page.wait_for_function("document.querySelectorAll('#chart rect.bar').length === 48")
        for route in held:
            route.continue_()
        page.wait_for_timeout(500)
        assert page.eval_on_selector_all("#chart rect.bar", "bars => bars.length") == 48
    finally:
        page.unroute("**/meters/M3/consumption?*")
