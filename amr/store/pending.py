"""Manual readings waiting for an operator (table ``pending_readings``).

A reading from a source listed in ``[api] moderated_sources`` is kept here, not counted,
until an operator accepts it (then it goes through the validation pipeline) or refuses it.
Statuses: ``pending`` → ``accepted`` | ``rejected`` (refused by the pipeline) | ``refused``
(by the operator). Accepting is one transaction with the judging and storing of the reading
(`resolve_in`), so an item is never left half done; ``processing`` is only found in rows
left by earlier versions.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from amr.core.domain import CHANNELS, Channel
from amr.errors import NotFound
from amr.store.audit_trail import audit
from amr.store.auth_models import pending_readings_table
from amr.store.store import Store, translate_errors


@dataclass(frozen=True, slots=True)
class PendingRecord:
    """One reading waiting for (or past) moderation."""

    id: int
    meter_serial: str
    meter_id: int
    ts: datetime
    tariff: int
    values: dict[Channel, int | None]
    source: str
    payload: dict[str, Any]
    submitted_by: str
    submitted_at: datetime
    status: str
    resolved_by: str | None
    resolved_at: datetime | None
    resolution: str | None


@dataclass(frozen=True, slots=True)
class NewPending:
    """A reading to keep for moderation."""

    meter_serial: str
    meter_id: int
    ts: datetime
    tariff: int
    values: dict[Channel, int | None]
    source: str
    payload: dict[str, Any]


class PendingReadings:
    """Add, list, claim and resolve readings waiting for moderation."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, items: list[NewPending], submitted_by: str, now: datetime) -> list[int]:
        """Keep readings for moderation; their ids in order."""
        ids = []
        with translate_errors(), self.store.engine.begin() as conn:
            for item in items:
                ids.append(
                    int(
                        conn.execute(
                            insert(pending_readings_table)
                            .values(
                                meter_serial=item.meter_serial,
                                meter_id=item.meter_id,
                                ts=item.ts,
                                tariff=item.tariff,
                                **{c.value: item.values.get(c) for c in CHANNELS},
                                source=item.source,
                                payload=json.dumps(item.payload, ensure_ascii=False, default=str),
                                submitted_by=submitted_by[:100],
                                submitted_at=now,
                                status="pending",
                            )
                            .returning(pending_readings_table.c.id)
                        ).scalar_one()
                    )
                )
        return ids

    def find(self, status: str | None, serials: Collection[str] | None, limit: int, offset: int) -> list[PendingRecord]:
        """Readings by status (None: all), oldest first; `serials` limits the meters (None: all)."""
        statement = select(pending_readings_table)
        if status is not None:
            statement = statement.where(pending_readings_table.c.status == status)
        if serials is not None:
            statement = statement.where(pending_readings_table.c.meter_serial.in_(list(serials)))
        statement = statement.order_by(pending_readings_table.c.id).limit(limit).offset(offset)
        with translate_errors(), self.store.engine.connect() as conn:
            return [_record(row) for row in conn.execute(statement).mappings()]

    def get(self, pending_id: int) -> PendingRecord:
        """One reading; `NotFound` if there is none."""
        with translate_errors(), self.store.engine.connect() as conn:
            row = (
                conn.execute(select(pending_readings_table).where(pending_readings_table.c.id == pending_id))
                .mappings()
                .first()
            )
        if row is None:
            raise NotFound(f"no pending reading with id {pending_id}")
        return _record(row)

    def resolve(
        self, pending_id: int, status: str, actor: str, reason: str, now: datetime, expect: str = "pending"
    ) -> bool:
        """Record the outcome of moderation, audited; False if the reading was not in status `expect`."""
        with translate_errors(), self.store.engine.begin() as conn:
            return resolve_in(conn, pending_id, status, actor, reason, now, expect)


def resolve_in(
    conn: Connection, pending_id: int, status: str, actor: str, reason: str, now: datetime, expect: str = "pending"
) -> bool:
    """`PendingReadings.resolve` in the caller's transaction (with the reading's write, when accepted)."""
    done = _set_status(
        conn, pending_id, expect, status=status, resolved_by=actor[:100], resolved_at=now, resolution=reason
    )
    if done:
        audit(conn, now, actor, f"moderation_{status}", f"pending/{pending_id}", reason, {"status": status})
    return bool(done)


def _set_status(conn: Connection, pending_id: int, expect: str, **values: Any) -> int:
    statement = (
        update(pending_readings_table)
        .where(pending_readings_table.c.id == pending_id, pending_readings_table.c.status == expect)
        .values(**values)
    )
    return int(conn.execute(statement).rowcount)


def _record(row: Any) -> PendingRecord:
    return PendingRecord(
        id=row["id"],
        meter_serial=row["meter_serial"],
        meter_id=row["meter_id"],
        ts=row["ts"],
        tariff=row["tariff"],
        values={c: row[c.value] for c in CHANNELS},
        source=row["source"],
        payload=json.loads(row["payload"] or "{}"),
        submitted_by=row["submitted_by"],
        submitted_at=row["submitted_at"],
        status=row["status"],
        resolved_by=row["resolved_by"],
        resolved_at=row["resolved_at"],
        resolution=row["resolution"],
    )
