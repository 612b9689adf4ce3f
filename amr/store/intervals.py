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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from operator import itemgetter, lt
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from amr.core.domain import Channel
from amr.core.intervals import INTERVAL_LENGTHS, IntervalSource, IntervalStatus, IntervalValue, ProfileFlag
from amr.store.interval_models import interval_revisions_table, intervals_table
from amr.store.models import meters_table
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
"""Values per look-up of stored intervals (sorted by meter and start: one narrow window each)."""
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
Row = tuple[int, int, datetime, int, int, str, str, str | None, int, datetime]
"""A value on its way to the table: the columns of `INTERVAL_COLUMNS` (the key first; start in UTC)."""
_KEY = itemgetter(0, 2, 1)
"""The order of a batch: by meter, start and channel (the order of a meter's profile records)."""
_SERIES = itemgetter(0, 1)
STATUS_TEXT = {status: status.value for status in IntervalStatus}
SOURCE_TEXT = {source: source.value for source in IntervalSource}
LENGTH_SECONDS = {length: int(length.total_seconds()) for length in INTERVAL_LENGTHS}
LENGTH_MINUTES = {length: seconds // 60 for length, seconds in LENGTH_SECONDS.items()}
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
            select(meters_table.c.serial, meters_table.c.id).where(
                meters_table.c.serial.in_(wanted[offset : offset + 1000])
            )
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


def _unknown(value: IntervalValue) -> str:
    return f"no meter {value.serial!r}; add it to the configuration"


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
        ids = meter_ids(self.conn, {v.serial for v in values})
        fit: list[Row] = []
        codes, minutes, status_text, source_text = CHANNEL_CODE, LENGTH_MINUTES, STATUS_TEXT, SOURCE_TEXT
        for v in values:
            meter_id = ids.get(v.serial)
            start = v.start
            step = minutes.get(v.length)
            if (
                meter_id is None
                or step is None
                or start.tzinfo is not UTC
                or v.wh < 0
                or start.minute % step
                or start.second
                or start.microsecond
                or v.received_at.tzinfo is None
            ):  # not plainly fit: judged in full (an aligned start in another zone is fit)
                reasons = structural_reasons(v) if meter_id is not None else [(Reason.UNKNOWN_METER, _unknown(v))]
                if reasons:
                    self._refuse(result, revisions, meter_id, v, reasons)
                    continue
                start = start.astimezone(UTC)
                step = LENGTH_MINUTES[v.length]
            if check is not None:
                found = check(v, meter_id)  # type: ignore[arg-type]
                if found:
                    self._refuse(result, revisions, meter_id, v, found)
                    continue
            fit.append(
                (
                    meter_id,  # type: ignore[arg-type]
                    codes[v.channel],
                    start,
                    step * 60,
                    v.wh,
                    status_text[v.status],
                    source_text[v.source],
                    v.method,
                    v.flags,
                    v.received_at,
                )
            )
        keys = list(map(_KEY, fit))
        once = all(map(lt, keys, islice(keys, 1, None)))  # in order, no key twice: as profile records come
        if not once:
            fit.sort(key=_KEY)  # a key given twice is now met twice in a row
            once = len(set(keys)) == len(keys)
        del keys
        self.locks.take({(m, INTERVAL_LOCK_BASE + c) for m, c in set(map(_SERIES, fit))})
        serial_of = {meter_id: serial for serial, meter_id in ids.items()}
        inserts: list[Row] = []
        removed: list[Key] = []
        last_key: Key | None = None
        in_force: IntervalValue | None = None  # the value in force for `last_key`
        pending = False  # that value is the last of `inserts` (accepted in this batch), not a stored one
        for offset in range(0, len(fit), WINDOW):
            part = fit[offset : offset + WINDOW]
            stored = self._load(part, serial_of)
            if once and not stored:  # all new: the common case of a profile read or back-fill
                inserts.extend(part)
                result.accepted += len(part)
                continue
            for row in part:
                key: Key = row[:3]
                if key != last_key:
                    last_key, in_force, pending = key, stored.get(key), False
                    if in_force is None:
                        inserts.append(row)
                        result.accepted += 1
                        pending = True
                        continue
                elif pending:
                    in_force = _value(inserts[-1], serial_of)
                if self._replaces(result, revisions, row[0], _value(row, serial_of), in_force, actor):  # type: ignore[arg-type]
                    if pending:
                        inserts[-1] = row
                    else:
                        removed.append(key)
                        inserts.append(row)
                    pending = True
        self._delete(removed)
        self._insert(inserts)
        self._keep(revisions)
        return result

    def _replaces(
        self,
        result: IntervalWriteResult,
        revisions: list[dict[str, Any]],
        meter_id: int,
        v: IntervalValue,
        old: IntervalValue,
        actor: str | None,
    ) -> bool:
        """The verdict on `v` against `old`, the value in force: True when `v` replaces it."""
        same = old.wh == v.wh and old.length == v.length
        better = RANK[v.source] > RANK[old.source] or (v.source is old.source and v.source in REVISABLE and not same)
        if better:
            note = f"replaced by {v.source.value}"
            revisions.append(_revision(meter_id, old, "replaced", (), note, self.now, actor))
            result.replaced += 1
            return True
        if same or RANK[v.source] < RANK[old.source]:
            result.duplicate += 1
            return False
        message = (
            f"{v.channel.value} of {v.start.isoformat()}: {v.wh} Wh over {v.length} differs from the "
            f"stored {old.source.value} value {old.wh} Wh over {old.length}"
        )
        self._refuse(result, revisions, meter_id, v, [(Reason.CONFLICT, message)])
        return False

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

    def _load(self, part: Sequence[Row], serial_of: dict[int, str]) -> dict[Key, IntervalValue]:
        """Stored values for the keys of `part` (sorted), with one query over its window."""
        meters = sorted({item[0] for item in part})
        lo = min(item[2] for item in part)
        hi = max(item[2] for item in part)
        rows = self.conn.execute(
            select(intervals_table).where(
                intervals_table.c.meter_id.in_(meters), intervals_table.c.start >= lo, intervals_table.c.start <= hi
            )
        )
        return {(row.meter_id, row.channel, _utc(row.start)): _stored(row, serial_of[row.meter_id]) for row in rows}

    def _delete(self, keys: Sequence[Key]) -> None:
        if not keys:
            return
        statement = delete(intervals_table).where(
            intervals_table.c.meter_id == bindparam("k_meter"),
            intervals_table.c.channel == bindparam("k_channel"),
            intervals_table.c.start == bindparam("k_start"),
        )
        rows = [{"k_meter": m, "k_channel": c, "k_start": s} for m, c, s in keys]
        for offset in range(0, len(rows), INSERT_CHUNK):
            self.conn.execute(statement, rows[offset : offset + INSERT_CHUNK])

    def _insert(self, rows: Sequence[Row]) -> None:
        if not rows:
            return
        if self.use_copy:
            copy_intervals(self.conn, rows)
            return
        dicts = [{**dict(zip(INTERVAL_COLUMNS, row, strict=True)), "flags": int(row[8])} for row in rows]
        for offset in range(0, len(dicts), INSERT_CHUNK):
            self.conn.execute(insert(intervals_table), dicts[offset : offset + INSERT_CHUNK])

    def _keep(self, revisions: list[dict[str, Any]]) -> None:
        if not revisions:
            return
        maker = pg_insert if self.conn.dialect.name == "postgresql" else sqlite_insert
        statement = maker(interval_revisions_table).on_conflict_do_nothing(index_elements=["fingerprint"])
        for offset in range(0, len(revisions), INSERT_CHUNK):
            self.conn.execute(statement, revisions[offset : offset + INSERT_CHUNK])


def copy_intervals(conn: Connection, rows: Sequence[Row]) -> None:
    """Insert `rows` by binary COPY (PostgreSQL)."""
    raw = conn.connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(INTERVALS_COPY) as copy:  # type: ignore[union-attr]
        copy.set_types(list(INTERVALS_COPY_TYPES))
        write = copy.write_row
        for row in rows:
            write(row)


def _value(row: Row, serial_of: dict[int, str]) -> IntervalValue:
    """The value of a row on its way to the table."""
    return IntervalValue(
        serial=serial_of[row[0]],
        channel=CHANNEL_OF[row[1]],
        start=row[2],
        length=timedelta(seconds=row[3]),
        wh=row[4],
        status=IntervalStatus(row[5]),
        source=IntervalSource(row[6]),
        received_at=row[9],
        method=row[7],
        flags=ProfileFlag(row[8]),
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
    statement = select(intervals_table).where(intervals_table.c.meter_id == ids[serial])
    if start is not None:
        statement = statement.where(intervals_table.c.start >= start)
    if end is not None:
        statement = statement.where(intervals_table.c.start < end)
    if channels is not None:
        statement = statement.where(intervals_table.c.channel.in_([CHANNEL_CODE[c] for c in channels]))
    statement = statement.order_by(intervals_table.c.channel, intervals_table.c.start)
    return [_stored(row, serial) for row in conn.execute(statement)]


def read_revisions(
    conn: Connection,
    serial: str,
    start: datetime | None = None,
    end: datetime | None = None,
    kind: str | None = None,
) -> list[IntervalRevision]:
    """Replaced and refused values of the meter `serial` (by interval start), oldest record first."""
    statement = select(interval_revisions_table).where(interval_revisions_table.c.serial == serial)
    if start is not None:
        statement = statement.where(interval_revisions_table.c.start >= start)
    if end is not None:
        statement = statement.where(interval_revisions_table.c.start < end)
    if kind is not None:
        statement = statement.where(interval_revisions_table.c.kind == kind)
    statement = statement.order_by(interval_revisions_table.c.id)
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


@dataclass(frozen=True, slots=True)
class IntervalCompleteness:
    """A meter's intervals in a period: how many its profile period makes (while in service) and how
    many are stored (of its most complete channel)."""

    expected: int
    received: int

    @property
    def share(self) -> float:
        """received ÷ expected (0..1; 0 when none is expected)."""
        return min(1.0, self.received / self.expected) if self.expected else 0.0


def interval_completeness(
    conn: Connection, spans: Mapping[int, tuple[datetime, datetime]]
) -> dict[int, IntervalCompleteness]:
    """Per meter id with intervals in its span [since, until) (its service within the period): the
    intervals expected at its profile period (the length most of them have) and those stored. One query."""
    by_span: dict[tuple[datetime, datetime], list[int]] = {}
    for meter_id, span in spans.items():
        by_span.setdefault(span, []).append(meter_id)
    counts: dict[int, dict[int, int]] = {}
    lengths: dict[int, dict[int, int]] = {}
    for (since, until), ids in by_span.items():  # usually one: the period, for every meter in service
        rows = conn.execute(
            select(intervals_table.c.meter_id, intervals_table.c.channel, intervals_table.c.length_s, func.count())
            .where(
                intervals_table.c.meter_id.in_(ids), intervals_table.c.start >= since, intervals_table.c.start < until
            )
            .group_by(intervals_table.c.meter_id, intervals_table.c.channel, intervals_table.c.length_s)
        )
        for meter_id, channel, length_s, count in rows:
            per_channel = counts.setdefault(meter_id, {})
            per_channel[channel] = per_channel.get(channel, 0) + int(count)
            per_length = lengths.setdefault(meter_id, {})
            per_length[length_s] = per_length.get(length_s, 0) + int(count)
    result = {}
    for meter_id, per_channel in counts.items():
        since, until = spans[meter_id]
        length_s = max(lengths[meter_id], key=lambda k: lengths[meter_id][k])
        first = int(since.timestamp()) // length_s * length_s
        first += length_s if first < since.timestamp() else 0
        expected = max(0, (int(until.timestamp()) - first) // length_s)
        result[meter_id] = IntervalCompleteness(expected, max(per_channel.values()))
    return result
