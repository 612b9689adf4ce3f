"""The queue of relay commands (table ``relay_commands``): enqueue, claim once, finish, expire; audited.

A command's life::

    queued ──claim──► running ──finish──► done | failed
      ▲                  │ (a transient failure: queued again, next_try_at later)
      └──────────────────┘
    queued / running past its deadline ──► expired

`claim` takes due commands in one transaction: on PostgreSQL ``SELECT … FOR UPDATE SKIP LOCKED``
(a command another collector is claiming at that moment is skipped, not waited for, never taken
twice), on SQLite under the database's write lock (``BEGIN IMMEDIATE``). A claim is a lease
(``claimed_until``): a collector that stopped while running a command leaves it to be claimed
again when the lease ends; the driver reads the switch before acting, so what reached the meter
before is not done again. `finish` only counts for the collector holding the claim. Every
request and every outcome writes an audit record (who, when, why, result) in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, and_, insert, or_, select, update

from amr.store.audit_trail import audit
from amr.store.operations_models import relay_commands_table
from amr.store.store import Store, translate_errors

Status = Literal["queued", "running", "done", "failed", "expired"]
FINAL: tuple[Status, ...] = ("done", "failed", "expired")


@dataclass(frozen=True, slots=True)
class RelayCommand:
    """One relay command as stored (times UTC)."""

    id: int
    meter_id: int
    serial: str
    action: str
    reason: str
    requested_by: str
    requested_at: datetime
    deadline: datetime
    status: Status
    attempts: int
    next_try_at: datetime
    claimed_by: str | None
    claimed_until: datetime | None
    finished_at: datetime | None
    state: str | None
    supplied: bool | None
    acted: bool | None
    error: str | None
    error_code: str | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt ended: ``done`` with the state read back, ``retry`` (transient) or ``failed``."""

    kind: Literal["done", "retry", "failed"]
    state: str | None = None
    supplied: bool | None = None
    acted: bool | None = None
    error: str | None = None
    error_code: str | None = None


_FIELDS = tuple(RelayCommand.__dataclass_fields__)


def _command(row: Any) -> RelayCommand:
    return RelayCommand(**{name: row[name] for name in _FIELDS})


def _subject(serial: str) -> str:
    return f"meter {serial}"


def enqueue(store: Store, meter_id: int, serial: str, action: str, reason: str, actor: str, now: datetime,
            deadline: datetime) -> RelayCommand:
    """Queue a command and audit the request, in one transaction."""
    with store.session() as session:
        conn = session.conn
        new_id = conn.execute(
            insert(relay_commands_table).values(
                meter_id=meter_id, serial=serial, action=action, reason=reason, requested_by=actor,
                requested_at=now, deadline=deadline, status="queued", attempts=0, next_try_at=now,
            ).returning(relay_commands_table.c.id)
        ).scalar_one()
        audit(conn, now, actor, f"relay_{action}_requested", _subject(serial), reason,
              {"command": new_id, "deadline": deadline.isoformat()})
        return _load(conn, new_id)


def _load(conn: Connection, command_id: int) -> RelayCommand:
    row = conn.execute(select(relay_commands_table).where(relay_commands_table.c.id == command_id)).mappings().one()
    return _command(row)


def get(store: Store, command_id: int) -> RelayCommand | None:
    """One command, None when there is no such id."""
    with translate_errors(), store.engine.connect() as conn:
        row = conn.execute(
            select(relay_commands_table).where(relay_commands_table.c.id == command_id)
        ).mappings().one_or_none()
    return None if row is None else _command(row)


def of_meter(store: Store, meter_id: int, limit: int = 20) -> list[RelayCommand]:
    """A meter's newest commands first."""
    statement = (select(relay_commands_table).where(relay_commands_table.c.meter_id == meter_id)
                 .order_by(relay_commands_table.c.id.desc()).limit(limit))
    with translate_errors(), store.engine.connect() as conn:
        return [_command(row) for row in conn.execute(statement).mappings()]


def last_known_state(store: Store, meter_id: int) -> RelayCommand | None:
    """The newest command that read the switch back (its state is the meter's last known one)."""
    statement = (select(relay_commands_table)
                 .where(relay_commands_table.c.meter_id == meter_id, relay_commands_table.c.status == "done")
                 .order_by(relay_commands_table.c.finished_at.desc(), relay_commands_table.c.id.desc()).limit(1))
    with translate_errors(), store.engine.connect() as conn:
        row = conn.execute(statement).mappings().one_or_none()
    return None if row is None else _command(row)


def _expire(conn: Connection, rows: Sequence[Any], now: datetime, actor: str) -> None:
    for row in rows:
        was_running = row["status"] == "running"
        why = (f"the deadline {row['deadline'].isoformat()} passed after {row['attempts']} attempt(s)"
               + ("; the last one was cut off, the switch was not read back" if was_running else "")
               + (f"; last error: {row['error']}" if row["error"] else "")
               if row["attempts"] else
               f"the deadline {row['deadline'].isoformat()} passed before any collector reached the meter")
        conn.execute(
            update(relay_commands_table).where(relay_commands_table.c.id == row["id"])
            .values(status="expired", finished_at=now, claimed_by=None, claimed_until=None, error=why,
                    error_code=row["error_code"] or "relay.deadline")
        )
        audit(conn, now, actor, f"relay_{row['action']}_expired", _subject(row["serial"]), row["reason"],
              {"command": row["id"], "requested_by": row["requested_by"], "attempts": row["attempts"], "error": why})


def expire_overdue(store: Store, now: datetime, actor: str = "system") -> int:
    """Expire every queued (or abandoned running) command whose deadline has passed; how many.

    A read comes first: with nothing overdue (the usual case) no write transaction is opened."""
    with translate_errors(), store.engine.connect() as conn:
        if (
            conn.execute(_overdue(conn, now, lock=False).with_only_columns(relay_commands_table.c.id).limit(1)).first()
            is None
        ):
            return 0
    with store.session() as session:
        return _expire_overdue(session.conn, now, actor)


def anything_due(store: Store, meter_ids: Sequence[int], now: datetime) -> bool:
    """True when a command of `meter_ids` is due or overdue (a read, without locks: `claim` decides)."""
    table = relay_commands_table
    statement = select(table.c.id).where(
        table.c.meter_id.in_(list(meter_ids)),
        or_(and_(table.c.status == "queued", or_(table.c.next_try_at <= now, table.c.deadline <= now)),
            and_(table.c.status == "running", table.c.claimed_until <= now)),
    ).limit(1)
    with translate_errors(), store.engine.connect() as conn:
        return conn.execute(statement).first() is not None


def _overdue(conn: Connection, now: datetime, lock: bool = True) -> Any:
    table = relay_commands_table
    statement = select(table).where(
        table.c.deadline <= now,
        or_(table.c.status == "queued", and_(table.c.status == "running", table.c.claimed_until <= now)),
    )
    if lock and conn.dialect.name == "postgresql":
        statement = statement.with_for_update(skip_locked=True)
    return statement


def _expire_overdue(conn: Connection, now: datetime, actor: str) -> int:
    rows = conn.execute(_overdue(conn, now)).mappings().all()
    _expire(conn, rows, now, actor)
    return len(rows)


def claim(store: Store, meter_ids: Sequence[int], worker: str, now: datetime, lease: timedelta,
          limit: int = 100) -> list[RelayCommand]:
    """Take the due commands of `meter_ids` for `worker` until ``now + lease``; overdue ones expire.

    Due: queued with ``next_try_at`` reached, or running under a lease that has ended (its
    collector stopped). Each meter gets at most one command per claim, oldest first, so a meter's
    commands run in the order they were given.
    """
    if not meter_ids:
        return []
    table = relay_commands_table
    with store.session() as session:
        conn = session.conn
        _expire_overdue(conn, now, worker)
        statement = (
            select(table)
            .where(
                table.c.meter_id.in_(list(meter_ids)),
                table.c.deadline > now,
                or_(and_(table.c.status == "queued", table.c.next_try_at <= now),
                    and_(table.c.status == "running", table.c.claimed_until <= now)),
            )
            .order_by(table.c.id)
            .limit(limit)
        )
        if conn.dialect.name == "postgresql":
            statement = statement.with_for_update(skip_locked=True)
        rows = conn.execute(statement).mappings().all()
        busy = set(conn.execute(
            select(table.c.meter_id).where(table.c.status == "running", table.c.claimed_until > now,
                                         table.c.meter_id.in_(list(meter_ids)))
        ).scalars())
        taken: list[int] = []
        for row in rows:
            if row["meter_id"] in busy:
                continue
            busy.add(row["meter_id"])
            earlier = conn.execute(  # an older command of the meter still waiting goes first
                select(table.c.id).where(table.c.meter_id == row["meter_id"], table.c.id < row["id"],
                                       table.c.status.in_(("queued", "running"))).limit(1)
            ).first()
            if earlier is not None:
                continue
            conn.execute(
                update(table).where(table.c.id == row["id"])
                .values(status="running", claimed_by=worker, claimed_until=now + lease,
                        attempts=table.c.attempts + 1)
            )
            taken.append(row["id"])
        return [_load(conn, command_id) for command_id in taken]


def finish(store: Store, command: RelayCommand, worker: str, outcome: Outcome, now: datetime,
           retry_at: datetime | None = None) -> RelayCommand | None:
    """Record how `worker`'s attempt at `command` ended, and audit it when the command is over.

    A ``retry`` outcome queues the command again for `retry_at`, or expires it when that is past its
    deadline. None when `worker` no longer holds the claim (its lease ended and another took it).
    """
    table = relay_commands_table
    with store.session() as session:
        conn = session.conn
        row = conn.execute(
            select(table).where(table.c.id == command.id, table.c.status == "running",
                                          table.c.claimed_by == worker)
        ).mappings().one_or_none()
        if row is None:
            return None
        values: dict[str, Any] = {"error": outcome.error, "error_code": outcome.error_code}
        if outcome.kind == "retry":
            if retry_at is None or retry_at >= row["deadline"]:
                conn.execute(update(table).where(table.c.id == command.id).values(**values))
                _expire(conn, [{**row, **values}], now, worker)
                return _load(conn, command.id)
            values.update(status="queued", next_try_at=retry_at, claimed_by=None, claimed_until=None)
            conn.execute(update(table).where(table.c.id == command.id).values(**values))
            return _load(conn, command.id)
        values.update(status=outcome.kind, finished_at=now, claimed_until=None, state=outcome.state,
                      supplied=outcome.supplied, acted=outcome.acted)
        conn.execute(update(table).where(table.c.id == command.id).values(**values))
        details: dict[str, Any] = {"command": command.id, "requested_by": row["requested_by"],
                                   "attempts": row["attempts"], "collector": worker}
        if outcome.kind == "done":
            details.update(state=outcome.state, supplied=outcome.supplied, acted=outcome.acted)
        else:
            details.update(error=outcome.error, error_code=outcome.error_code)
        audit(conn, now, worker, f"relay_{row['action']}_{outcome.kind}", _subject(row["serial"]), row["reason"],
              details)
        return _load(conn, command.id)
