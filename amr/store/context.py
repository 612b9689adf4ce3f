"""Loading the accepted neighbours of a batch: one query per batch (on SQLite, in chunks of keys)."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, text

from amr.domain import CHANNELS, StoredReading
from amr.store.models import UTCDateTime
from amr.store.rows import READING_COLUMNS, reading_from_row
from amr.validation.pipeline import ContextRequest, SeriesKey

CHUNK = 200  # keys per statement on SQLite (4 parameters each; SQLite allows 32,766)
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


@functools.lru_cache(maxsize=8)
def _postgres_statement(parts: Parts) -> Any:
    # The keys travel as four arrays: the text is the same for any number of keys (parsed and
    # planned once), and LATERAL makes every part an index scan per key (the planner cannot see
    # through a list of keys otherwise).
    inner = " UNION ALL ".join(f"(SELECT {_COLUMNS} FROM readings r WHERE {_part(kind, c, 'r')})" for kind, c in parts)
    return text(
        "WITH k(m, t, s, e) AS (SELECT * FROM unnest(CAST(:m AS integer[]), CAST(:t AS smallint[]), "
        "CAST(:s AS timestamptz[]), CAST(:e AS timestamptz[]))) "
        f"SELECT q.* FROM k CROSS JOIN LATERAL ({inner}) q"
    )


@functools.lru_cache(maxsize=64)
def _sqlite_statement(count: int, parts: Parts) -> Any:
    # SQLite has no LATERAL; it runs k as the outer loop of each part, with an index probe per key.
    rows = ", ".join(f"(:m{i}, :t{i}, :s{i}, :e{i})" for i in range(count))
    sql = f"WITH k(m, t, s, e) AS (VALUES {rows}) " + " UNION ALL ".join(
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


def _chunks(conn: Connection, requests: Sequence[ContextRequest], parts: Parts) -> Iterator[tuple[Any, dict[str, Any]]]:
    """Statements and parameters covering `requests`: one on PostgreSQL, chunks of `CHUNK` keys on SQLite."""
    if conn.dialect.name == "postgresql":
        yield _postgres_statement(parts), {
            "m": [r.meter_id for r in requests],
            "t": [r.tariff for r in requests],
            "s": [r.start for r in requests],
            "e": [r.end for r in requests],
        }
        return
    for offset in range(0, len(requests), CHUNK):
        chunk = requests[offset : offset + CHUNK]
        params: dict[str, Any] = {}
        for i, request in enumerate(chunk):
            params.update({f"m{i}": request.meter_id, f"t{i}": request.tariff, f"s{i}": request.start,
                           f"e{i}": request.end})
        yield _sqlite_statement(len(chunk), parts), params


def _query(
    conn: Connection,
    requests: Sequence[ContextRequest],
    parts: Parts,
    found: dict[SeriesKey, dict[Any, StoredReading]],
) -> None:
    for statement, params in _chunks(conn, requests, parts):
        for row in conn.execute(statement, params).mappings():
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
