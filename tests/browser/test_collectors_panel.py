"""The overview's panel of collectors sharing the buses: shown when the store has leases (PostgreSQL).

The served store here is SQLite (no leases: the panel stays hidden); the route's answer on
PostgreSQL, as `tests/api/test_collectors.py` checks it against the real database, is given to the
page through Playwright's routing to see it drawn.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.browser.conftest import Served, login, shot


def _report() -> dict[str, Any]:
    now = datetime.now(UTC).replace(microsecond=0)
    iso = lambda moment: moment.isoformat()  # noqa: E731
    return {
        "sharing": True, "note": None, "now": iso(now), "ttl_seconds": 15.0,
        "leases": [
            {"lease": "tcp", "bus": "tcp", "meters": 1, "holder": "field-1:101:ab12",
             "since": iso(now - timedelta(hours=2)), "expires": iso(now + timedelta(seconds=12))},
            {"lease": "merc", "bus": "merc", "meters": 1, "holder": None, "since": None,
             "expires": iso(now - timedelta(seconds=40))},
        ],
        "collectors": [
            {"id": "field-1:101:ab12", "host": "field-1", "pid": 101, "started_at": iso(now - timedelta(hours=3)),
             "heartbeat_at": iso(now - timedelta(seconds=2)), "stopped_at": None, "alive": True, "leases": 1},
            {"id": "field-2:202:cd34", "host": "field-2", "pid": 202, "started_at": iso(now - timedelta(hours=3)),
             "heartbeat_at": iso(now - timedelta(seconds=55)), "stopped_at": None, "alive": False, "leases": 0},
        ],
    }


def test_the_overview_hides_the_panel_without_leases(page: Any, served: Served) -> None:
    login(page, served)
    page.wait_for_selector("#summary .stat[data-kind=online]")
    page.wait_for_selector("#meters-table tbody tr")
    assert page.is_hidden("#collectors")


def test_the_overview_shows_who_holds_which_bus_and_the_heartbeats(page: Any, served: Served) -> None:
    body = json.dumps(_report())
    page.route("**/api/v1/dispatch/collectors", lambda route: route.fulfill(
        status=200, content_type="application/json", body=body))
    login(page, served)
    page.wait_for_selector("#collectors-table tbody tr")
    states = page.eval_on_selector_all("#collectors-table tbody tr", "rows => rows.map(r => r.dataset.state)")
    assert states == ["alive", "dead"]
    assert "работает" in page.text_content("#collectors-table tr[data-state=alive]")
    assert "не отвечает" in page.text_content("#collectors-table tr[data-state=dead]")
    page.click("#collectors summary")
    leases = page.eval_on_selector_all("#leases-table tbody tr", "rows => rows.map(r => r.textContent)")
    assert "field-1:101:ab12" in leases[0] and "свободна" in leases[1]
    shot(page, "collectors-panel")
