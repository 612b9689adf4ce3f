"""Loading the accepted neighbours of a batch: one query per batch (on SQLite, in chunks of keys)."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, text

from amr.core.domain import CHANNELS, StoredReading
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


_STAMPS = "CAST(CAST(:{} AS text[]) AS timestamptz[])"
"""An array of times sent as ISO 8601 text: psycopg quotes every element of a timestamptz array
(its text has a space), which costs more than the query itself for a few thousand keys."""


def _stamps(times: Iterable[datetime]) -> list[str]:
    """Aware times as ISO 8601 text, exact to the microsecond (see `_STAMPS`)."""
    return [t.isoformat() for t in times]


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
        f"{_STAMPS.format('s')}, {_STAMPS.format('e')})) "
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
            "s": _stamps([r.start for r in requests]),
            "e": _stamps([r.end for r in requests]),
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


# What a batch was judged against, checked again under its locks before it is written.
#
# The context of a request is exactly the readings inside [start, end] and, for every channel,
# the nearest before start and after end having it. For channel c let b_c be the time of that
# nearest before (or the dawn of time when there was none) and a_c of the nearest after (or the
# end of time). A reading is *relevant* when it lies inside [start, end], or before start with
# some channel c and at or after b_c, or after end with some channel c and at or before a_c.
# When nothing changed, the relevant readings are exactly the context (any other reading with c
# between b_c and start would have been the nearest); any store, replacement or deletion that
# changes the context changes the relevant set. So the check fetches only the relevant readings,
# a range scan of each series between the oldest b_c and the newest a_c (usually one row: the
# previous reading), and compares them, column by column, with what the batch saw.

DAWN = datetime(1, 1, 1, tzinfo=UTC)
END_OF_TIME = datetime(9999, 12, 31, tzinfo=UTC)
_CHECK_COLUMNS = ("meter_id", "tariff", "ts", *(c.value for c in CHANNELS), "flags", "source", "received_at")
_BOUNDS = ("m", "t", "s", "e", "lo", "hi", *(f"b{i}" for i in range(len(CHANNELS))),
           *(f"a{i}" for i in range(len(CHANNELS))))
_TIMES = _BOUNDS[2:]
CHECK_CHUNK = 2000 // len(_BOUNDS)  # keys per statement on SQLite


def _relevant(alias: str) -> list[str]:
    """The relevant readings of one key of k (see above), as conditions on `readings` aliased, one
    per part: inside the range, and per channel the readings with it back to its nearest before and
    on to its nearest after. Each part is an index range scan (A- and R- through their partial
    indexes), so a channel a series never had costs one empty probe, not a scan of its history."""
    r = alias
    key = f"{r}.meter_id = k.m AND {r}.tariff = k.t"
    parts = [f"{key} AND {r}.ts >= k.s AND {r}.ts <= k.e"]
    for i, c in enumerate(CHANNELS):
        parts.append(f"{key} AND {r}.{c.value} IS NOT NULL AND {r}.ts >= k.b{i} AND {r}.ts < k.s")
        parts.append(f"{key} AND {r}.{c.value} IS NOT NULL AND {r}.ts > k.e AND {r}.ts <= k.a{i}")
    return parts


_CHECK_SELECT = ", ".join(f"r.{c}" for c in _CHECK_COLUMNS)
_CHECK_TYPES = {"ts": UTCDateTime(), "received_at": UTCDateTime()}


@functools.lru_cache(maxsize=1)
def _postgres_check() -> Any:
    # A bound equal to the series' widest one travels as NULL (most are: every channel's nearest
    # before is usually the same reading), the widest as NULL when unbounded.
    arrays = ", ".join(
        "CAST(:m AS integer[])" if name == "m" else "CAST(:t AS smallint[])" if name == "t" else _STAMPS.format(name)
        for name in _BOUNDS
    )
    count = len(CHANNELS)
    k = ", ".join(
        ["u.m", "u.t", "u.s", "u.e", "COALESCE(u.lo, '-infinity')", "COALESCE(u.hi, 'infinity')"]
        + [f"COALESCE(u.b{i}, u.lo, '-infinity')" for i in range(count)]
        + [f"COALESCE(u.a{i}, u.hi, 'infinity')" for i in range(count)]
    )
    return text(
        f"WITH u({', '.join(_BOUNDS)}) AS (SELECT * FROM unnest({arrays})), k({', '.join(_BOUNDS)}) AS (SELECT {k} "
        f"FROM u) SELECT {_CHECK_SELECT} FROM k CROSS JOIN LATERAL ("
        + " UNION ALL ".join(f"SELECT * FROM readings r WHERE {part}" for part in _relevant("r"))
        + ") r"
    )


def _postgres_bounds(bounds: Sequence[tuple[Any, ...]]) -> dict[str, list[Any]]:
    """The parameters of `_postgres_check`: times as text, NULL for a bound implied by a wider one."""
    columns = list(zip(*bounds, strict=True)) if bounds else [()] * len(_BOUNDS)
    m, t, s, e, lo, hi = columns[:6]
    params: dict[str, list[Any]] = {
        "m": list(m),
        "t": list(t),
        "s": _stamps(s),
        "e": _stamps(e),
        "lo": [None if x == DAWN else x.isoformat() for x in lo],
        "hi": [None if x == END_OF_TIME else x.isoformat() for x in hi],
    }
    count = len(CHANNELS)
    for i in range(count):
        params[f"b{i}"] = [None if x == w else x.isoformat() for x, w in zip(columns[6 + i], lo, strict=True)]
        params[f"a{i}"] = [None if x == w else x.isoformat() for x, w in zip(columns[6 + count + i], hi, strict=True)]
    return params


@functools.lru_cache(maxsize=64)
def _sqlite_check(count: int) -> Any:
    rows = ", ".join("(" + ", ".join(f":{name}{i}" for name in _BOUNDS) + ")" for i in range(count))
    sql = f"WITH k({', '.join(_BOUNDS)}) AS (VALUES {rows}) " + " UNION ALL ".join(
        f"SELECT {_CHECK_SELECT} FROM k JOIN readings r ON {part}" for part in _relevant("r")
    )
    params = [bindparam(f"{name}{i}", type_=UTCDateTime()) for i in range(count) for name in _TIMES]
    return text(sql).bindparams(*params).columns(**_CHECK_TYPES)


def _row(reading: StoredReading) -> tuple[Any, ...]:
    """A reading as the check's statement returns it."""
    return (reading.meter_id, reading.tariff, reading.ts, *(reading.values.get(c) for c in CHANNELS),
            reading.flags, reading.source, reading.received_at)


def _expected(request: ContextRequest, seen: Sequence[StoredReading]) -> tuple[tuple[Any, ...], set[tuple[Any, ...]]]:
    """The bounds of `request` given what the batch saw (in the order of `_BOUNDS`), and the
    readings the check must find."""
    start, end = request.start, request.end
    before = [DAWN] * len(CHANNELS)  # per channel: the newest reading seen before start with it
    after = [END_OF_TIME] * len(CHANNELS)  # and the oldest after end
    rows = set()
    outside = []
    for r in seen:
        ts = r.ts
        if start <= ts <= end:
            rows.add(_row(r))
            continue
        have = [i for i, c in enumerate(CHANNELS) if r.values.get(c) is not None]
        outside.append((r, have))
        if ts < start:
            for i in have:
                if ts > before[i]:
                    before[i] = ts
        else:
            for i in have:
                if ts < after[i]:
                    after[i] = ts
    for r, have in outside:  # relevant: the nearest of one of its channels
        nearest = before if r.ts < start else after
        if any(nearest[i] == r.ts for i in have):
            rows.add(_row(r))
    return (request.meter_id, request.tariff, start, end, min(before), max(after), *before, *after), rows


def changed_series(
    conn: Connection, requests: Sequence[ContextRequest], seen: Mapping[SeriesKey, Sequence[StoredReading]]
) -> set[SeriesKey]:
    """The series of `requests` whose context in the store is no longer `seen` (what `load_context`
    answered when the batch was judged): another writer stored, replaced or deleted a reading of it."""
    bounds: list[tuple[Any, ...]] = []
    expected: dict[SeriesKey, set[tuple[Any, ...]]] = {}
    for request in requests:
        key = (request.meter_id, request.tariff)
        bound, rows = _expected(request, seen.get(key, ()))
        bounds.append(bound)
        expected[key] = rows
    found: dict[SeriesKey, set[tuple[Any, ...]]] = defaultdict(set)
    if conn.dialect.name == "postgresql":
        statements = [(_postgres_check(), _postgres_bounds(bounds))]
    else:
        statements = []
        for offset in range(0, len(bounds), CHECK_CHUNK):
            chunk = bounds[offset : offset + CHECK_CHUNK]
            params = {f"{name}{i}": value for i, b in enumerate(chunk) for name, value in zip(_BOUNDS, b, strict=True)}
            statements.append((_sqlite_check(len(chunk)), params))
    for statement, params in statements:
        for row in conn.execute(statement, params):
            found[(row[0], row[1])].add(tuple(row))
    return {key for key, rows in expected.items() if found.get(key, set()) != rows}
