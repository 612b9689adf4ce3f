"""The context of a batch costs the same however long a series' history is, on PostgreSQL.

Most consumers' meters never report A- or R-: the nearest reading "with A-" before a batch
does not exist. Without the partial indexes of migration 0006 both the context load and the
check under the series' locks walked the series' whole history to find that out.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from amr.store import Store
from amr.store.context import PER_CHANNEL, _expected, _postgres_bounds, _postgres_check, _postgres_statement, _stamps
from amr.validation import ContextRequest
from tests.contract.test_store_contract import ingestor
from tests.support.builders import T0, reading

pytestmark = pytest.mark.postgres
HISTORY = 3000


def rows_touched(store: Store, statement: Any, params: dict[str, Any]) -> int:
    """Rows every plan node produced or filtered away, from EXPLAIN ANALYZE."""
    with store.engine.begin() as conn:
        plan = conn.execute(text("EXPLAIN (ANALYZE, FORMAT JSON) " + statement.text), params).scalar_one()
    if isinstance(plan, str):
        plan = json.loads(plan)

    def walk(node: dict[str, Any]) -> Iterator[int]:
        loops = int(node.get("Actual Loops", 1))
        yield int(node.get("Actual Rows", 0)) * loops + int(node.get("Rows Removed by Filter", 0)) * loops
        for child in node.get("Plans", []):
            yield from walk(child)

    return sum(walk(plan[0]["Plan"]))


def test_a_channel_a_series_never_had_costs_no_scan_of_its_history(postgres_store: Store) -> None:
    from tests.conftest import _clean

    _clean(postgres_store)
    ing = ingestor(postgres_store, {"serial": "A1"})
    ing.submit([reading("A1", h / 2, f"{1000 + h}.0", r_plus=f"{h}.0") for h in range(HISTORY)])
    with postgres_store.engine.begin() as conn:
        conn.execute(text("ANALYZE readings"))
    meter = ing.meters["A1"]
    start = T0 + timedelta(hours=HISTORY / 2 + 1)
    request = ContextRequest(meter.id, 0, start, start + timedelta(hours=1))
    seen = postgres_store.load_context([request])
    assert [r.ts for r in seen[(meter.id, 0)]] == [T0 + timedelta(hours=(HISTORY - 1) / 2)]

    load = rows_touched(
        postgres_store,
        _postgres_statement(PER_CHANNEL),
        {"m": [meter.id], "t": [0], "s": _stamps([request.start]), "e": _stamps([request.end])},
    )
    bounds, _ = _expected(request, seen[(meter.id, 0)])
    check = rows_touched(postgres_store, _postgres_check(), _postgres_bounds([bounds]))
    assert load < 50, f"the per-channel context load touched {load} rows of a {HISTORY}-reading history"
    assert check < 50, f"the check under the locks touched {check} rows of a {HISTORY}-reading history"
    with postgres_store.session() as session:
        assert session.changed([request], seen) == set()
