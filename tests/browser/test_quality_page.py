"""The meter page plots the stored power-quality samples of the last day, with the limits and the events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from amr.drivers.quality import QualitySample
from amr.store import quality as quality_store
from amr.store.quality import Limit
from tests.browser.conftest import Served, login, shot

pytestmark = pytest.mark.browser
LIMITS = {"voltage": Limit(207, 253), "frequency": Limit(49.8, 50.2)}


def store_samples(served: Served) -> list[float]:
    """Twelve samples of M1 over the last hour, the fifth a swell on phase A; the phase A voltages."""
    meter = served.app.meters["M1"]
    now = datetime.now(UTC).replace(microsecond=0)
    voltages = []
    for n in range(12):
        at = now - timedelta(minutes=5 * (12 - n))
        volts = 258.25 if n == 4 else 229.5 + n / 10
        voltages.append(volts)
        values = {"voltage_l1": volts, "voltage_l2": 231.0, "voltage_l3": 230.0, "frequency": 50.0 + n / 100,
                  "power_total": 1500.0}
        quality_store.save_sample(served.app.store, meter.id, QualitySample("M1", at, values), at, LIMITS)
    return voltages


def test_the_meter_page_plots_voltages_with_limits_and_marks_the_swell(page: Any, served: Served) -> None:
    voltages = store_samples(served)
    login(page, served)
    page.click("#meters-table tr[data-serial=M1] a")
    page.wait_for_selector("#quality-card:not([hidden]) #quality-chart polyline[data-quantity=voltage_l1]")
    plotted = page.eval_on_selector_all("#quality-chart circle[data-quantity=voltage_l1]",
                                        "dots => dots.map(d => Number(d.dataset.value))")
    assert plotted == pytest.approx(voltages)
    assert page.eval_on_selector_all("#quality-chart polyline", "lines => lines.length") == 3
    assert page.eval_on_selector_all("#quality-chart .q-limit", "ls => ls.map(l => l.dataset.limit)") == ["min", "max"]
    assert page.eval_on_selector_all("#quality-chart circle.q-event", "dots => dots.length") == 1
    assert "258,25" in page.text_content("#quality-events") and "выше предела" in page.text_content("#quality-events")
    shot(page, "20-meter-quality")
    page.select_option("#quality-group", "frequency")
    page.wait_for_selector("#quality-chart[data-group=frequency] polyline[data-quantity=frequency]")
    assert "Гц" in page.text_content("#quality-chart")
    assert "Выходов за пределы нет." in page.text_content("#quality-events")


def test_a_meter_without_samples_has_no_quality_card(page: Any, served: Served) -> None:
    login(page, served)
    page.click("#meters-table tr[data-serial=M2] a")
    page.wait_for_selector("#current-table tbody tr[data-tariff='0']")
    page.wait_for_function("document.querySelector('#quality-card') !== null")
    assert page.get_attribute("#quality-card", "hidden") is not None
