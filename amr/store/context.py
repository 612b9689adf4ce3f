"""Loading the accepted neighbours of a batch: one query per batch (in chunks of keys)."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, text

from amr.domain import CHANNELS, StoredReading
from amr.store.models import UTCDateTime
from amr.store.rows import READING_COLUMNS, reading_from_row
from amr.validation.pipeline import ContextRequest, SeriesKey

CHUNK = 200
_COLUMNS = ", ".join(f"r.{c}" for c in READING_COLUMNS)


def _part(kind: str, channel: str | None, alias: str) -> str:
    """Rows of `readings` (aliased) for one key of k: inside [k.s, k.e], or the nearest before/after with `channel`."""
    where = f"{alias}.meter_id = k.m AND {alias}.tariff = k.t"
    if kind == "within":
        return f"{where} AND {alias}.ts >= k.s AND {alias}.ts <= k.e"
    op, order, bound = ("<", "DESC", "k.s") if kind == "before" else (">", "ASC", "k.e")
    having = f" AND {alias}.{channel} IS NOT NULL" if channel else ""
    return f"{where} AND {alias}.ts {op} {bound}{having} ORDER BY {alias}.ts {order} LIMIT 1"


Parts = tuple[tuple[str, str | None], ...]
NEAREST: Parts = (("within", None), ("before", None), ("after", None))
PER_CHANNEL: Parts = tuple((d, c.value) for d in ("before", "after") for c in CHANNELS)


@functools.lru_cache(maxsize=64)
def _statement(count: int, dialect: str, parts: tuple[tuple[str, str | None], ...]) -> Any:
    rows = ", ".join(f"(:m{i}, :t{i}, :s{i}, :e{i})" for i in range(count))
    head = f"WITH k(m, t, s, e) AS (VALUES {rows}) "
    if dialect == "postgresql":
        # LATERAL: every part is an index scan per key (the planner cannot see through the VALUES list otherwise).
        inner = " UNION ALL ".join(
            f"(SELECT {_COLUMNS} FROM readings r WHERE {_part(kind, c, 'r')})" for kind, c in parts
        )
        sql = head + f"SELECT q.* FROM k CROSS JOIN LATERAL ({inner}) q"
    else:
        # SQLite has no LATERAL; it runs k as the outer loop of each part, with an index probe per key.
        sql = head + " UNION ALL ".join(
            f"SELECT {_COLUMNS} FROM k JOIN readings r ON {_part(kind, c, 'r')}"
            if kind == "within"
            else f"SELECT {_COLUMNS} FROM k JOIN readings r ON r.meter_id = k.m AND r.tariff = k.t AND r.ts = "
            f"(SELECT x.ts FROM readings x WHERE {_part(kind, c, 'x')})"
            for kind, c in parts
        )
    params = []
    for i in range(count):
        params.append(bindparam(f"s{i}", type_=UTCDateTime()))
        params.append(bindparam(f"e{i}", type_=UTCDateTime()))
    return text(sql).bindparams(*params)


def _query(
    conn: Connection,
    requests: Sequence[ContextRequest],
    parts: Parts,
    found: dict[SeriesKey, dict[Any, StoredReading]],
) -> None:
    dialect = conn.dialect.name
    for offset in range(0, len(requests), CHUNK):
        chunk = requests[offset : offset + CHUNK]
        params: dict[str, Any] = {}
        for i, request in enumerate(chunk):
            params.update(
                {
                    f"m{i}": request.meter_id,
                    f"t{i}": request.tariff,
                    f"s{i}": request.start,
                    f"e{i}": request.end,
                }
            )
        for row in conn.execute(_statement(len(chunk), dialect, parts), params).mappings():
            reading = reading_from_row(row)
            found[(reading.meter_id, reading.tariff)][reading.ts] = reading


def _lacks_a_channel(request: ContextRequest, readings: dict[Any, StoredReading]) -> bool:
    """True when the nearest reading before or after the range misses a channel (look further for it)."""
    before = [r for t, r in readings.items() if t < request.start]
    after = [r for t, r in readings.items() if t > request.end]
    nearest = [max(before, key=lambda r: r.ts)] if before else []
    nearest += [min(after, key=lambda r: r.ts)] if after else []
    return any(v is None for r in nearest for v in r.values.values())


def load_context(
    conn: Connection, requests: Sequence[ContextRequest]
) -> dict[SeriesKey, list[StoredReading]]:
    """Accepted readings inside each request's range plus each channel's nearest outside it.

    One query for the readings inside and the nearest on either side; a second one, for
    the few series whose nearest reading lacks a channel, finds that channel's nearest.
    """
    found: dict[SeriesKey, dict[Any, StoredReading]] = defaultdict(dict)
    _query(conn, requests, NEAREST, found)
    further = [r for r in requests if _lacks_a_channel(r, found.get((r.meter_id, r.tariff), {}))]
    if further:
        _query(conn, further, PER_CHANNEL, found)
    return {key: list(readings.values()) for key, readings in found.items()}
