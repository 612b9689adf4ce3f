"""Writing and reading interval data (load profiles) in the caller's transaction.

Every interval series — (meter, channel) — is judged and written under its series lock
(`amr.store.series_lock`, a slot of its own beside the readings' tariffs), so two processes
writing the same meter at once decide against what is really stored.

What an incoming value does to the value stored for its (meter, channel, start):

* nothing stored: it is **accepted**;
* the same energy and length: a **duplicate** (counted, nothing written) — also when a better
  value is stored (an estimate arriving for an interval already measured);
* a better source (`RANK`: estimated < derived < profile < manual): it **replaces** the stored
  value, which is kept in `interval_revisions` (kind `replaced`); a new estimate replaces an
  older estimate the same way;
* an equally good source with another energy or length: a **conflict**, refused and kept in
  `interval_revisions` (kind `refused`) with its reason; the stored value stays.

Values refused before that (unknown meter, malformed, negative, and the caller's rules such as
the meter's capacity) are kept in `interval_revisions` too. A refused value is kept once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from amr.core.domain import Channel
from amr.core.intervals import INTERVAL_LENGTHS, IntervalSource, IntervalStatus, IntervalValue, ProfileFlag
from amr.store.interval_models import IntervalRevisionRow, IntervalRow
from amr.store.models import MeterRow
from amr.store.series_lock import SeriesLocks
from amr.validation.reasons import Reason

CHANNEL_CODE: dict[Channel, int] = {Channel.A_PLUS: 1, Channel.A_MINUS: 2, Channel.R_PLUS: 3, Channel.R_MINUS: 4}
"""Channels as stored: the measuring channel codes of макет 80020 (01 A+, 02 A-, 03 R+, 04 R-)."""
CHANNEL_OF: dict[int, Channel] = {code: channel for channel, code in CHANNEL_CODE.items()}
INTERVAL_LOCK_BASE = 16
"""Interval series lock as series (meter, 16 + channel code): apart from the readings' tariffs 0..4."""
RANK: dict[IntervalSource, int] = {
    IntervalSource.ESTIMATED: 0,
    IntervalSource.DERIVED: 1,
    IntervalSource.PROFILE: 2,
    IntervalSource.MANUAL: 3,
}
"""How good a source is: a better one replaces a stored value, a worse one never does."""
REVISABLE = frozenset({IntervalSource.ESTIMATED, IntervalSource.MANUAL})
"""Sources whose newer value replaces an older one of the same source (a new estimate, a new substitution)."""
LENGTHS_S = frozenset(int(length.total_seconds()) for length in INTERVAL_LENGTHS)
WINDOW = 4096
"""Values per look-up of stored intervals (sorted by meter, channel and start: one narrow window each)."""
INSERT_CHUNK = 1000
INTERVAL_COLUMNS = (
    "meter_id",
    "channel",
    "start",
    "length_s",
    "wh",
    "status",
    "source",
    "method",
    "flags",
    "received_at",
)
INTERVALS_COPY = f"COPY intervals ({', '.join(INTERVAL_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
INTERVALS_COPY_TYPES = ("int4", "int2", "timestamptz", "int4", "int8", "text", "text", "text", "int2", "timestamptz")
"""The PostgreSQL types of `INTERVAL_COLUMNS`, in order, for binary COPY."""

Key = tuple[int, int, datetime]
Check = Callable[[IntervalValue, int], Sequence[tuple[Reason, str]]]
"""A caller's rule: (value, meter id) → the reasons (with a message) it is refused for; empty when none."""


@dataclass(frozen=True, slots=True)
class IntervalRefusal:
    """An interval value not stored, with why."""

    value: IntervalValue
    reasons: tuple[Reason, ...]
    message: str


@dataclass(slots=True)
class IntervalWriteResult:
    """What `write_intervals` did with a batch."""

    accepted: int = 0
    duplicate: int = 0
    replaced: int = 0
    refused: list[IntervalRefusal] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """accepted, duplicate, replaced and refused as numbers."""
        return {
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "replaced": self.replaced,
            "refused": len(self.refused),
        }

    def add(self, other: IntervalWriteResult) -> None:
        """Add `other`'s counts and refusals to these."""
        self.accepted += other.accepted
        self.duplicate += other.duplicate
        self.replaced += other.replaced
        self.refused.extend(other.refused)


@dataclass(frozen=True, slots=True)
class IntervalRevision:
    """A value once said of an interval and not in force: `kind` replaced or refused."""

    id: int
    value: IntervalValue
    kind: str
    reasons: tuple[str, ...]
    message: str
    recorded_at: datetime
    actor: str | None


def interval_series(meter_id: int, channel: Channel) -> tuple[int, int]:
    """The series-lock key of one meter's channel of intervals."""
    return meter_id, INTERVAL_LOCK_BASE + CHANNEL_CODE[channel]


def meter_ids(conn: Connection, serials: Iterable[str]) -> dict[str, int]:
    """Store ids of the meters with these serials (unknown serials are absent)."""
    wanted = sorted(set(serials))
    found: dict[str, int] = {}
    for offset in range(0, len(wanted), 1000):
        rows = conn.execute(
            select(MeterRow.serial, MeterRow.id).where(MeterRow.serial.in_(wanted[offset : offset + 1000]))
        )
        found.update((str(serial), int(meter_id)) for serial, meter_id in rows)
    return found


def structural_reasons(value: IntervalValue) -> list[tuple[Reason, str]]:
    """What makes a value unfit to be an interval at all: misaligned, of an unknown length, negative."""
    found: list[tuple[Reason, str]] = []
    length_s = value.length.total_seconds()
    if value.start.tzinfo is None or value.received_at.tzinfo is None:
        found.append((Reason.MALFORMED, "interval times must be timezone-aware (UTC)"))
        return found
    if length_s not in LENGTHS_S:
        found.append((Reason.MALFORMED, f"interval length {value.length} is not 15, 30 or 60 minutes"))
    elif int(value.start.timestamp()) % int(length_s) or value.start.microsecond:
        found.append((Reason.MALFORMED, f"interval start {value.start.isoformat()} is not aligned to {value.length}"))
    if value.wh < 0:
        found.append((Reason.NEGATIVE, f"negative energy {value.wh} Wh"))
    return found


def _stored(row: Any, serial: str) -> IntervalValue:
    return IntervalValue(
        serial=serial,
        channel=CHANNEL_OF[int(row.channel)],
        start=_utc(row.start),
        length=timedelta(seconds=int(row.length_s)),
        wh=int(row.wh),
        status=IntervalStatus(row.status),
        source=IntervalSource(row.source),
        received_at=_utc(row.received_at),
        method=row.method,
        flags=ProfileFlag(int(row.flags)),
    )


def _utc(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
    return value.astimezone(UTC)  # type: ignore[no-any-return]


def _row(meter_id: int, v: IntervalValue) -> dict[str, Any]:
    return {
        "meter_id": meter_id,
        "channel": CHANNEL_CODE[v.channel],
        "start": v.start,
        "length_s": int(v.length.total_seconds()),
        "wh": v.wh,
        "status": v.status.value,
        "source": v.source.value,
        "method": v.method,
        "flags": int(v.flags),
        "received_at": v.received_at,
    }


def _revision(
    meter_id: int | None,
    v: IntervalValue,
    kind: str,
    reasons: Sequence[Reason],
    message: str,
    now: datetime,
    actor: str | None,
) -> dict[str, Any]:
    row = _row(meter_id or 0, v)
    row["meter_id"] = meter_id
    codes = ",".join(r.value for r in reasons)
    fingerprint = None
    if kind == "refused":
        key = "|".join(
            [v.serial, v.channel.value, v.start.isoformat(), str(row["length_s"]), str(v.wh), v.source.value, codes]
        )
        fingerprint = hashlib.sha256(key.encode("utf-8")).hexdigest()
    return {
        **row,
        "serial": v.serial[:64],
        "kind": kind,
        "reasons": codes,
        "message": message,
        "recorded_at": now,
        "actor": actor,
        "fingerprint": fingerprint,
    }


class IntervalWriter:
    """Judges and writes one batch of interval values in the caller's transaction (see the module)."""

    def __init__(self, conn: Connection, locks: SeriesLocks, use_copy: bool, now: datetime) -> None:
        self.conn = conn
        self.locks = locks
        self.use_copy = use_copy
        self.now = now

    def write(
        self, values: Sequence[IntervalValue], check: Check | None = None, actor: str | None = None
    ) -> IntervalWriteResult:
        """Judge `values` against what is stored and write the outcome."""
        result = IntervalWriteResult()
        revisions: list[dict[str, Any]] = []
        ids = meter_ids(self.conn, (v.serial for v in values))
        fit: list[tuple[int, IntervalValue]] = []
        for v in values:
            meter_id = ids.get(v.serial)
            reasons = (
                structural_reasons(v) if meter_id is not None else [(Reason.UNKNOWN_METER, f"no meter {v.serial!r}")]
            )
            if not reasons and check is not None and meter_id is not None:
                reasons = list(check(v, meter_id))
            if reasons:
                self._refuse(result, revisions, meter_id, v, reasons)
            else:
                fit.append((meter_id, v))  # type: ignore[arg-type]
        serial_of = {meter_id: serial for serial, meter_id in ids.items()}
        fit.sort(key=lambda item: (item[0], CHANNEL_CODE[item[1].channel], item[1].start))
        self.locks.take({interval_series(m, v.channel) for m, v in fit})
        inserts: list[tuple[int, IntervalValue]] = []
        removed: list[Key] = []
        for offset in range(0, len(fit), WINDOW):
            part = fit[offset : offset + WINDOW]
            stored = self._load(part, serial_of)
            for meter_id, v in part:
                key = (meter_id, CHANNEL_CODE[v.channel], v.start)
                old = stored.get(key)
                if old is None:
                    stored[key] = v
                    inserts.append((meter_id, v))
                    result.accepted += 1
                    continue
                same = old.wh == v.wh and old.length == v.length
                better = RANK[v.source] > RANK[old.source] or (
                    v.source is old.source and v.source in REVISABLE and not same
                )
                if better:
                    revisions.append(
                        _revision(meter_id, old, "replaced", (), f"replaced by {v.source.value}", self.now, actor)
                    )
                    stored[key] = v
                    removed.append(key)
                    inserts.append((meter_id, v))
                    result.replaced += 1
                elif same or RANK[v.source] < RANK[old.source]:
                    result.duplicate += 1
                else:
                    message = (
                        f"{v.channel.value} of {v.start.isoformat()}: {v.wh} Wh over {v.length} differs from the "
                        f"stored {old.source.value} value {old.wh} Wh over {old.length}"
                    )
                    self._refuse(result, revisions, meter_id, v, [(Reason.CONFLICT, message)])
        self._delete(removed)
        self._insert(inserts)
        self._keep(revisions)
        return result

    def _refuse(
        self,
        result: IntervalWriteResult,
        revisions: list[dict[str, Any]],
        meter_id: int | None,
        v: IntervalValue,
        reasons: Sequence[tuple[Reason, str]],
    ) -> None:
        codes = tuple(r for r, _ in reasons)
        message = "; ".join(m for _, m in reasons)
        result.refused.append(IntervalRefusal(v, codes, message))
        if v.start.tzinfo is not None and v.received_at.tzinfo is not None:
            revisions.append(_revision(meter_id, v, "refused", codes, message, self.now, None))

    def _load(self, part: Sequence[tuple[int, IntervalValue]], serial_of: dict[int, str]) -> dict[Key, IntervalValue]:
        """Stored values for the keys of `part` (sorted), with one query over its window."""
        meters = sorted({m for m, _ in part})
        lo = min(v.start for _, v in part)
        hi = max(v.start for _, v in part)
        rows = self.conn.execute(
            select(IntervalRow).where(
                IntervalRow.meter_id.in_(meters), IntervalRow.start >= lo, IntervalRow.start <= hi
            )
        )
        return {
            (row.meter_id, row.channel, _utc(row.start)): _stored(row, serial_of[row.meter_id])
            for row in rows
        }

    def _delete(self, keys: Sequence[Key]) -> None:
        if not keys:
            return
        statement = delete(IntervalRow).where(
            IntervalRow.meter_id == bindparam("k_meter"),
            IntervalRow.channel == bindparam("k_channel"),
            IntervalRow.start == bindparam("k_start"),
        )
        rows = [{"k_meter": m, "k_channel": c, "k_start": s} for m, c, s in keys]
        for offset in range(0, len(rows), INSERT_CHUNK):
            self.conn.execute(statement, rows[offset : offset + INSERT_CHUNK])

    def _insert(self, values: Sequence[tuple[int, IntervalValue]]) -> None:
        if not values:
            return
        if self.use_copy:
            copy_intervals(self.conn, values)
            return
        rows = [_row(m, v) for m, v in values]
        for offset in range(0, len(rows), INSERT_CHUNK):
            self.conn.execute(insert(IntervalRow), rows[offset : offset + INSERT_CHUNK])

    def _keep(self, revisions: list[dict[str, Any]]) -> None:
        if not revisions:
            return
        maker = pg_insert if self.conn.dialect.name == "postgresql" else sqlite_insert
        statement = maker(IntervalRevisionRow).on_conflict_do_nothing(index_elements=["fingerprint"])
        for offset in range(0, len(revisions), INSERT_CHUNK):
            self.conn.execute(statement, revisions[offset : offset + INSERT_CHUNK])


def copy_intervals(conn: Connection, values: Sequence[tuple[int, IntervalValue]]) -> None:
    """Insert (meter id, value) pairs by binary COPY (PostgreSQL)."""
    raw = conn.connection.driver_connection
    codes = CHANNEL_CODE
    with raw.cursor() as cursor, cursor.copy(INTERVALS_COPY) as copy:  # type: ignore[union-attr]
        copy.set_types(list(INTERVALS_COPY_TYPES))
        write = copy.write_row
        seconds: dict[timedelta, int] = {}
        for meter_id, v in values:
            length = v.length
            length_s = seconds.get(length)
            if length_s is None:
                length_s = seconds[length] = int(length.total_seconds())
            write(
                (
                    meter_id,
                    codes[v.channel],
                    v.start,
                    length_s,
                    v.wh,
                    v.status.value,
                    v.source.value,
                    v.method,
                    int(v.flags),
                    v.received_at,
                )
            )


def read_intervals(
    conn: Connection,
    serial: str,
    start: datetime | None = None,
    end: datetime | None = None,
    channels: Sequence[Channel] | None = None,
) -> list[IntervalValue]:
    """Stored intervals of the meter `serial` with start <= interval start < end, by channel and time."""
    ids = meter_ids(conn, [serial])
    if serial not in ids:
        return []
    statement = select(IntervalRow).where(IntervalRow.meter_id == ids[serial])
    if start is not None:
        statement = statement.where(IntervalRow.start >= start)
    if end is not None:
        statement = statement.where(IntervalRow.start < end)
    if channels is not None:
        statement = statement.where(IntervalRow.channel.in_([CHANNEL_CODE[c] for c in channels]))
    statement = statement.order_by(IntervalRow.channel, IntervalRow.start)
    return [_stored(row, serial) for row in conn.execute(statement)]


def read_revisions(
    conn: Connection,
    serial: str,
    start: datetime | None = None,
    end: datetime | None = None,
    kind: str | None = None,
) -> list[IntervalRevision]:
    """Replaced and refused values of the meter `serial` (by interval start), oldest record first."""
    statement = select(IntervalRevisionRow).where(IntervalRevisionRow.serial == serial)
    if start is not None:
        statement = statement.where(IntervalRevisionRow.start >= start)
    if end is not None:
        statement = statement.where(IntervalRevisionRow.start < end)
    if kind is not None:
        statement = statement.where(IntervalRevisionRow.kind == kind)
    statement = statement.order_by(IntervalRevisionRow.id)
    return [
        IntervalRevision(
            id=row.id,
            value=_stored(row, serial),
            kind=row.kind,
            reasons=tuple(r for r in row.reasons.split(",") if r),
            message=row.message,
            recorded_at=_utc(row.recorded_at),
            actor=row.actor,
        )
        for row in conn.execute(statement)
    ]
