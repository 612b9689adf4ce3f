"""The questions the dashboard asks the store, one function each.

Counts of refusals for the overview and the queue, and the schedule each meter is
polled on (what completeness is measured against). Health is `amr.store.health.load_health`,
completeness `amr.store.health.completeness_of`, the audit trail `Store.audit_log`.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import func, select

from amr.config import Config, ScheduleConfig
from amr.store.models import rejected_readings_table
from amr.store.store import Store, translate_errors


def refused_count(
    store: Store,
    serials: Collection[str] | None,
    status: str | None = None,
    received_since: datetime | None = None,
) -> int:
    """Refused readings (of the serials, or of every serial when None), with `status` and received
    at or after `received_since` when given."""
    statement = select(func.count()).select_from(rejected_readings_table)
    if status is not None:
        statement = statement.where(rejected_readings_table.c.status == status)
    if received_since is not None:
        statement = statement.where(rejected_readings_table.c.received_at >= received_since)
    if serials is not None:
        statement = statement.where(rejected_readings_table.c.meter_serial.in_(list(serials)))
    with translate_errors(), store.engine.connect() as conn:
        return int(conn.execute(statement).scalar_one())


def meter_schedules(config: Config, serials: Collection[str]) -> dict[str, ScheduleConfig]:
    """The schedule each meter is polled on: its own, its bus's, or the collector's default (also for
    meters the collector does not poll, such as push meters and meters read by people)."""
    from amr.collector.schedule import schedule_for  # the scheduling rules live with the collector

    buses = {bus.name: bus for bus in config.buses}
    configured = {m.serial: m for m in config.meters}
    default = config.collector.default_schedule
    found = {}
    for serial in serials:
        meter = configured.get(serial)
        found[serial] = default if meter is None else schedule_for(meter, buses.get(meter.bus or ""), default)
    return found


__all__ = ["meter_schedules", "refused_count"]
