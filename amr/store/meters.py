"""Mirroring configured meters, points and objects into the store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal

from sqlalchemy import Connection, delete, insert, select, update

from amr.meters import Meter
from amr.store.models import MeterAccountRow, MeterRatioRow, MeterRow, ObjectRow, PointRow


def _id_for(
    conn: Connection, table: type[ObjectRow] | type[PointRow], column: str, value: str, **extra: object
) -> int:
    key = getattr(table, column)
    found = conn.execute(select(table.id).where(key == value)).scalar_one_or_none()
    if found is not None:
        if extra:
            conn.execute(update(table).where(key == value).values(**extra))
        return int(found)
    return int(conn.execute(insert(table).values({column: value, **extra}).returning(table.id)).scalar_one())


def sync_meters(conn: Connection, meters: Sequence[Meter]) -> list[Meter]:
    """Insert or update every configured meter; return them with their store ids."""
    synced = []
    for meter in meters:
        object_id = _id_for(conn, ObjectRow, "name", meter.object or "—")
        point_id = _id_for(conn, PointRow, "code", meter.point, object_id=object_id)
        fields = {
            "point_id": point_id,
            "name": meter.name,
            "model": meter.model,
            "digits": meter.digits,
            "decimals": meter.decimals,
            "tariffs": meter.tariffs,
            "max_power_kw": None
            if meter.max_power_kw is None
            else Decimal(meter.max_power_kw.numerator) / meter.max_power_kw.denominator,
            "installed": meter.installed,
            "removed": meter.removed,
        }
        meter_id = conn.execute(
            select(MeterRow.id).where(MeterRow.serial == meter.serial)
        ).scalar_one_or_none()
        if meter_id is None:
            statement = insert(MeterRow).values(serial=meter.serial, **fields).returning(MeterRow.id)
            meter_id = conn.execute(statement).scalar_one()
        else:
            conn.execute(update(MeterRow).where(MeterRow.id == meter_id).values(**fields))
        conn.execute(delete(MeterAccountRow).where(MeterAccountRow.meter_id == meter_id))
        if meter.accounts:
            conn.execute(
                insert(MeterAccountRow),
                [{"meter_id": meter_id, "account": a} for a in dict.fromkeys(meter.accounts)],
            )
        conn.execute(delete(MeterRatioRow).where(MeterRatioRow.meter_id == meter_id))
        conn.execute(
            insert(MeterRatioRow),
            [
                {
                    "meter_id": meter_id,
                    "version": i,
                    "since": v.since,
                    "ct": Decimal(v.ct.numerator) / v.ct.denominator,
                    "vt": Decimal(v.vt.numerator) / v.vt.denominator,
                }
                for i, v in enumerate(meter.ratios)
            ],
        )
        synced.append(replace(meter, id=int(meter_id)))
    return synced
