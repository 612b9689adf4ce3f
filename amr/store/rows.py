"""Conversions between store rows and domain objects."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from amr.core.domain import CHANNELS, StoredReading

READING_COLUMNS = (
    "meter_id",
    "tariff",
    "ts",
    "a_plus",
    "a_minus",
    "r_plus",
    "r_minus",
    "source",
    "flags",
    "received_at",
)

MAX_LISTED = 10_000
"""Ids named in a query at most; more are filtered here (PostgreSQL takes at most 65,535 parameters)."""


def listed_ids(ids: Iterable[int] | None) -> tuple[list[int] | None, set[int] | None]:
    """`ids` (None: every one) as the ids to name in a query's ``IN`` (None: read every row) and the
    ids whose rows to keep (None: every row)."""
    if ids is None:
        return None, None
    wanted = set(ids)
    return (sorted(wanted) if len(wanted) <= MAX_LISTED else None), wanted


def _utc(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
    if value.tzinfo is not UTC:
        return value.astimezone(UTC)  # type: ignore[no-any-return]
    return value  # type: ignore[no-any-return]


def reading_from_row(row: Mapping[Any, Any]) -> StoredReading:
    """A `StoredReading` from a row of `readings` fetched with raw SQL (UTC on every backend)."""
    return StoredReading(
        meter_id=int(row["meter_id"]),
        ts=_utc(row["ts"]),
        tariff=int(row["tariff"]),
        values={c: (None if row[c.value] is None else int(row[c.value])) for c in CHANNELS},
        source=str(row["source"]),
        flags=int(row["flags"]),
        received_at=_utc(row["received_at"]),
    )


def reading_to_row(reading: StoredReading) -> dict[str, Any]:
    """The column values of a reading."""
    row: dict[str, Any] = {
        "meter_id": reading.meter_id,
        "tariff": reading.tariff,
        "ts": reading.ts,
        "source": reading.source,
        "flags": reading.flags,
        "received_at": reading.received_at,
    }
    for channel in CHANNELS:
        row[channel.value] = reading.values.get(channel)
    return row
