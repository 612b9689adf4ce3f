"""The store: one facade over SQLite, PostgreSQL and TimescaleDB.

Library errors are translated here: `StoreUnavailable` when the database cannot be
reached, `StoreConflict` when a concurrent writer got there first or the server broke a
deadlock (re-validate and retry), `StoreError` for anything else.

Every write of readings goes through `Store.write`: one transaction holding the locks of
the series it judges (`amr.store.series_lock`), retried from the start on a conflict.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from amr.config import DatabaseConfig
from amr.core.domain import CHANNELS, Channel, Flag, StoredReading
from amr.core.gc_policy import paused_gc
from amr.core.intervals import IntervalSource, IntervalStatus, IntervalValue
from amr.core.meters import Meter
from amr.errors import ConfigError, InputError, NotFound, StoreError, StoreUnavailable
from amr.outputs.consumption import Step
from amr.store import migrate
from amr.store.aggregates import VIEWS, bucket_samples
from amr.store.context import changed_series, load_context
from amr.store.engine import Backend, make_engine, probe
from amr.store.intervals import (
    Check,
    IntervalRevision,
    IntervalWriter,
    IntervalWriteResult,
    interval_series,
    meter_ids,
    read_intervals,
    read_revisions,
)
from amr.store.meters import sync_meters
from amr.store.models import audit_log_table, readings_table, rejected_readings_table
from amr.store.rows import reading_from_row, reading_to_row
from amr.store.series_lock import SeriesLocks
from amr.store.writer import write_batch
from amr.validation.pipeline import BatchResult, ContextRequest, SeriesKey


class StoreConflict(StoreError):
    """Another writer stored a reading for the same key meanwhile; validate again."""


T = TypeVar("T")
RETRIES_ON_CONFLICT = 4
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock detected


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    """A refused reading as kept in the store."""

    id: int
    meter_serial: str
    meter_id: int | None
    ts: datetime | None
    tariff: int | None
    values: dict[Channel, int | None]
    source: str
    reasons: tuple[str, ...]
    message: str
    payload: dict[str, Any]
    received_at: datetime
    status: str
    resolved_by: str | None
    resolved_at: datetime | None
    resolution: str | None


@contextmanager
def translate_errors() -> Iterator[None]:
    """Turn SQLAlchemy and driver errors into the project's own."""
    try:
        yield
    except IntegrityError as exc:
        raise StoreConflict(f"a concurrent write conflicts with this one: {exc.orig}") from exc
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) in RETRYABLE_SQLSTATES:
            raise StoreConflict(f"a concurrent write conflicts with this one: {exc.orig}") from exc
        raise StoreUnavailable(f"the database is unavailable: {exc.orig}") from exc
    except SQLAlchemyError as exc:
        raise StoreError(f"the database refused the operation: {exc}") from exc


class Session:
    """One write transaction: lock the series, load the batch's context, write what the pipeline decided."""

    def __init__(self, conn: Connection, use_copy: bool) -> None:
        self.conn = conn
        self.use_copy = use_copy
        self.locks = SeriesLocks(conn)

    def lock(self, series: Iterable[SeriesKey]) -> None:
        """Hold the locks of `series` until the transaction ends."""
        self.locks.take(series)

    def load_context(self, requests: Sequence[ContextRequest]) -> dict[SeriesKey, list[StoredReading]]:
        """See `amr.validation.ContextLoader`; the series are locked first, so what is loaded stays
        true until this transaction commits."""
        self.lock((r.meter_id, r.tariff) for r in requests)
        return load_context(self.conn, requests)

    def changed(
        self, requests: Sequence[ContextRequest], seen: Mapping[SeriesKey, Sequence[StoredReading]]
    ) -> set[SeriesKey]:
        """Lock the series of `requests`, then those whose context is no longer `seen` (what
        `load_context` answered earlier, without the locks): one query, see `amr.store.context`."""
        self.lock((r.meter_id, r.tariff) for r in requests)
        return changed_series(self.conn, requests, seen)

    def write(self, result: BatchResult) -> None:
        """Write accepted and refused readings of a batch."""
        write_batch(self.conn, result, self.use_copy)


class Store:
    """Readings, refused readings, meters and the audit trail in one database."""

    def __init__(self, engine: Engine, backend: Backend, *, use_copy: bool, timescale: bool) -> None:
        self.engine = engine
        self.backend = backend
        self.use_copy = use_copy
        self.timescale = timescale

    @classmethod
    def open(cls, database: DatabaseConfig, timezone: str = "UTC", *, upgrade: bool = True) -> Store:
        """Connect, find out what the server can do, and bring an empty database to the schema."""
        with translate_errors():
            probe_engine = make_engine(database.url)
            backend = probe(probe_engine)
            engine = probe_engine
            if backend.single_session:
                probe_engine.dispose()
                engine = make_engine(database.url, single_session=True)
        use_copy = {"auto": backend.copy, "on": True, "off": False}[database.copy_mode]
        if use_copy and backend.dialect != "postgresql":
            raise ConfigError('database.copy = "on" needs PostgreSQL; use "auto"')
        timescale = {"auto": backend.timescale_available, "on": True, "off": False}[database.timescale]
        if timescale and not backend.timescale_available:
            raise ConfigError(
                'database.timescale = "on" but the timescaledb extension is not available '
                'on this server; install it or use "auto"'
            )
        store = cls(engine, backend, use_copy=use_copy, timescale=timescale)
        store.timezone = timezone
        if upgrade:
            store.upgrade()
        return store

    timezone: str = "UTC"

    def upgrade(self, revision: str = "heads") -> None:
        """Apply migrations up to `revision`."""
        with translate_errors():
            migrate.upgrade(self.engine, revision, timescale=self.timescale, timezone=self.timezone)

    def close(self) -> None:
        """Release connections."""
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A write transaction (on SQLite it begins IMMEDIATE: the write lock is held from the start,
        so what it reads cannot change before it writes). Prefer `write`, which also retries."""
        with translate_errors(), self.engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                # pysqlite begins lazily, before the first write; an explicit BEGIN takes over.
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield Session(conn, self.use_copy)

    def write(self, work: Callable[[Session], T], retries: int = RETRIES_ON_CONFLICT) -> T:
        """Run `work` in a write transaction and commit; on `StoreConflict` (a key taken meanwhile,
        a deadlock broken by the server) run it again from the start, up to `retries` times.

        `work` must judge what it writes inside the transaction (after `Session.lock` or through
        `Session.load_context`), so a retry judges again against what is stored now.
        """
        for attempt in range(retries):
            try:
                with self.session() as session:
                    return work(session)
            except StoreConflict:
                if attempt == retries - 1:
                    raise
        raise AssertionError("unreachable")

    def load_context(self, requests: Sequence[ContextRequest]) -> dict[SeriesKey, list[StoredReading]]:
        """See `amr.validation.ContextLoader` (read without locks, for previews and look-ahead)."""
        with translate_errors(), self.engine.connect() as conn:
            return load_context(conn, requests)

    def sync_meters(self, meters: Sequence[Meter]) -> list[Meter]:
        """Mirror configured meters into the store and return them with ids."""
        with translate_errors(), self.engine.begin() as conn:
            return sync_meters(conn, meters)

    def readings(
        self,
        meter_ids: Sequence[int],
        start: datetime | None = None,
        end: datetime | None = None,
        tariff: int | None = None,
        limit: int | None = None,
        descending: bool = False,
    ) -> list[StoredReading]:
        """Accepted readings of the meters with start <= ts <= end, in time order."""
        statement = select(readings_table).where(readings_table.c.meter_id.in_(meter_ids))
        if start is not None:
            statement = statement.where(readings_table.c.ts >= start)
        if end is not None:
            statement = statement.where(readings_table.c.ts <= end)
        if tariff is not None:
            statement = statement.where(readings_table.c.tariff == tariff)
        order = readings_table.c.ts.desc() if descending else readings_table.c.ts
        statement = statement.order_by(order, readings_table.c.meter_id, readings_table.c.tariff).limit(limit)
        with translate_errors(), self.engine.connect() as conn:
            rows = conn.execute(statement).mappings().all()
        return [reading_from_row(row) for row in rows]

    def consumption_series(
        self, meter: Meter, tariff: int, step: Step, start: datetime, end: datetime
    ) -> list[StoredReading]:
        """What consumption buckets need: on TimescaleDB the first reading of each bucket from its
        continuous aggregate (when the meter's ratio never changed), elsewhere every reading."""
        if self.timescale and step in VIEWS and len(meter.ratios) == 1:
            with translate_errors(), self.engine.connect() as conn:
                samples = bucket_samples(conn, meter.id, tariff, step, start, end)
            if samples is not None:
                return samples
        return self.readings([meter.id], start, end, tariff)

    def rejected(
        self, status: str | None = "open", meter_serial: str | None = None, limit: int = 1000, offset: int = 0
    ) -> list[RejectedRecord]:
        """Refused readings, newest first."""
        statement = select(rejected_readings_table)
        if status is not None:
            statement = statement.where(rejected_readings_table.c.status == status)
        if meter_serial is not None:
            statement = statement.where(rejected_readings_table.c.meter_serial == meter_serial)
        statement = statement.order_by(rejected_readings_table.c.id.desc()).limit(limit).offset(offset)
        with translate_errors(), self.engine.connect() as conn:
            return [rejected_from_row(row) for row in conn.execute(statement).mappings()]

    def get_rejected(self, rejected_id: int) -> RejectedRecord:
        """One refused reading; `NotFound` if there is none with that id."""
        with translate_errors(), self.engine.connect() as conn:
            row = (
                conn.execute(select(rejected_readings_table).where(rejected_readings_table.c.id == rejected_id))
                .mappings()
                .first()
            )
        if row is None:
            raise NotFound(f"no refused reading with id {rejected_id}")
        return rejected_from_row(row)

    def override(
        self, rejected_id: int, meter: Meter, actor: str, reason: str, now: datetime
    ) -> StoredReading:
        """Accept a refused reading against the rules, replacing any stored one at the same time; audited.

        One transaction under the series lock: the reading, the refused record's status and the
        audit record are written together or not at all, and only once however many ask at once.
        """
        record = self.get_rejected(rejected_id)
        if record.ts is None or record.tariff is None or record.meter_id is None:
            raise StoreError(
                f"refused reading {rejected_id} has no meter, time or tariff ({', '.join(record.reasons)}); "
                "it cannot be accepted, submit a corrected reading instead"
            )
        reading = StoredReading(
            meter_id=meter.id,
            ts=record.ts,
            tariff=record.tariff,
            values=dict(record.values),
            source=record.source,
            flags=int(Flag.OVERRIDDEN),
            received_at=now,
        )
        key = (
            readings_table.c.meter_id == meter.id,
            readings_table.c.tariff == record.tariff,
            readings_table.c.ts == record.ts,
        )

        def work(session: Session) -> StoredReading:
            conn = session.conn
            session.lock([(meter.id, reading.tariff)])
            claimed = conn.execute(
                update(rejected_readings_table)
                .where(rejected_readings_table.c.id == rejected_id, rejected_readings_table.c.status == "open")
                .values(status="accepted", resolved_by=actor, resolved_at=now, resolution=reason)
            ).rowcount
            if not claimed:
                raise StoreError(f"refused reading {rejected_id} is already {self.get_rejected(rejected_id).status}")
            replaced = conn.execute(select(readings_table).where(*key)).mappings().first()
            if replaced is not None:
                conn.execute(delete(readings_table).where(*key))
            conn.execute(insert(readings_table).values(**reading_to_row(reading)))
            details: dict[str, Any] = {"reasons": list(record.reasons), "values": _wh(record.values)}
            if replaced is not None:
                details["replaced"] = _wh(reading_from_row(replaced).values)
            _audit(conn, now, actor, "override", f"rejected/{rejected_id}", reason, details)
            return reading

        return self.write(work)

    def write_intervals(
        self,
        values: Sequence[IntervalValue],
        *,
        check: Check | None = None,
        now: datetime | None = None,
        actor: str | None = None,
    ) -> IntervalWriteResult:
        """Store interval values in one transaction under their series locks; see `amr.store.intervals`.

        Idempotent: the same value again is a duplicate. A measured value replaces an estimate
        (which is kept as a revision); a differing value of an equally good source is refused as
        a conflict; `check` adds the caller's rules (e.g. `amr.validation.intervals`). Refused
        values are kept with their reasons. Retried from the start on a conflict with another writer.
        """
        moment = now or datetime.now(UTC)
        with paused_gc():  # a batch makes a row tuple per value and no cycles
            return self.write(lambda s: IntervalWriter(s.conn, s.locks, s.use_copy, moment).write(values, check, actor))

    def substitute_interval(
        self, value: IntervalValue, actor: str, reason: str, now: datetime | None = None
    ) -> IntervalWriteResult:
        """A dispatcher's value for an interval, in force over anything stored (kept as a revision);
        audited (who, when, why, the value replaced) in the same transaction."""
        if not reason.strip():
            raise InputError("a substitution needs a reason")
        moment = now or datetime.now(UTC)
        manual = replace(value, source=IntervalSource.MANUAL, status=IntervalStatus.MEASURED, received_at=moment)

        def work(session: Session) -> IntervalWriteResult:
            found = meter_ids(session.conn, [value.serial])
            if value.serial in found:  # what it replaces is read under the lock the write takes
                session.lock([interval_series(found[value.serial], value.channel)])
            before = read_intervals(session.conn, value.serial, value.start, value.end, [value.channel])
            result = IntervalWriter(session.conn, session.locks, session.use_copy, moment).write([manual], None, actor)
            if result.refused:
                raise InputError(result.refused[0].message)
            details: dict[str, Any] = {
                "channel": value.channel.value,
                "start": value.start.isoformat(),
                "length_s": int(value.length.total_seconds()),
                "wh": value.wh,
            }
            if before:
                details["replaced"] = {
                    "wh": before[0].wh,
                    "status": before[0].status.value,
                    "source": before[0].source.value,
                    "method": before[0].method,
                }
            _audit(session.conn, moment, actor, "substitute_interval", f"intervals/{value.serial}", reason, details)
            return result

        return self.write(work)

    def intervals(
        self,
        serial: str,
        start: datetime | None = None,
        end: datetime | None = None,
        channels: Sequence[Channel] | None = None,
    ) -> list[IntervalValue]:
        """The meter's intervals in force with start <= interval start < end, by channel, then time."""
        with translate_errors(), self.engine.connect() as conn:
            return read_intervals(conn, serial, start, end, channels)

    def interval_revisions(
        self, serial: str, start: datetime | None = None, end: datetime | None = None, kind: str | None = None
    ) -> list[IntervalRevision]:
        """Values replaced (`kind` "replaced") or refused ("refused") for the meter's intervals."""
        with translate_errors(), self.engine.connect() as conn:
            return read_revisions(conn, serial, start, end, kind)

    def audit_log(self, limit: int = 100, actor: str | None = None) -> list[dict[str, Any]]:
        """The newest audit records (only `actor`'s when given)."""
        statement = select(audit_log_table).order_by(audit_log_table.c.id.desc()).limit(limit)
        if actor is not None:
            statement = statement.where(audit_log_table.c.actor == actor)
        with translate_errors(), self.engine.connect() as conn:
            rows = conn.execute(statement).mappings()
            return [{**r, "details": json.loads(r["details"] or "{}")} for r in rows]


def _wh(values: dict[Channel, int | None]) -> dict[str, int | None]:
    return {c.value: values.get(c) for c in CHANNELS}


def _audit(
    conn: Connection,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    reason: str,
    details: dict[str, Any],
) -> None:
    conn.execute(
        insert(audit_log_table).values(
            at=at,
            actor=actor,
            action=action,
            subject=subject,
            reason=reason,
            details=json.dumps(details, ensure_ascii=False),
        )
    )


def rejected_from_row(row: Any) -> RejectedRecord:
    """A `RejectedRecord` from a row of `rejected_readings`."""
    return RejectedRecord(
        id=row["id"],
        meter_serial=row["meter_serial"],
        meter_id=row["meter_id"],
        ts=row["ts"],
        tariff=row["tariff"],
        values={c: row[c.value] for c in CHANNELS},
        source=row["source"],
        reasons=tuple(r for r in row["reasons"].split(",") if r),
        message=row["message"],
        payload=json.loads(row["payload"]),
        received_at=row["received_at"],
        status=row["status"],
        resolved_by=row["resolved_by"],
        resolved_at=row["resolved_at"],
        resolution=row["resolution"],
    )


__all__ = ["RejectedRecord", "Session", "Store", "StoreConflict", "reading_from_row", "rejected_from_row"]
