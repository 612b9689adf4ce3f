"""Back-fill progress in the store (`backfill_state`): read, advance, declare lost, note an error.

Every change is one statement guarded by what it expects (``read_until`` only moves forward, and
only over a range that starts at or before it), so two collectors back-filling the same meter at
once can neither move it back nor jump a range neither has read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, and_, case, insert, select, update
from sqlalchemy.exc import IntegrityError

from amr.core.domain import Channel
from amr.store.backfill_models import backfill_state_table
from amr.store.intervals import CHANNEL_CODE, CHANNEL_OF, meter_ids
from amr.store.models import meters_table
from amr.store.store import Store, translate_errors


@dataclass(frozen=True, slots=True)
class ChannelProgress:
    """How far one channel of one meter has been back-filled."""

    serial: str
    channel: Channel
    read_until: datetime  # every interval before it was read from the meter or declared lost
    lost_from: datetime | None
    lost_until: datetime | None
    lost_total_s: int
    last_error: str | None
    last_attempt: datetime | None
    updated_at: datetime


class BackfillState:
    """`backfill_state` of one store."""

    def __init__(self, store: Store) -> None:
        """Use `store`'s engine."""
        self.store = store

    def load(self, serials: Iterable[str] | None = None) -> dict[str, dict[Channel, ChannelProgress]]:
        """serial → channel → progress (meters never back-filled are absent); all meters when `serials` is None."""
        table = backfill_state_table
        statement = select(meters_table.c.serial, *table.columns).join(
            meters_table, meters_table.c.id == table.c.meter_id
        )
        if serials is not None:
            statement = statement.where(meters_table.c.serial.in_(list(serials)))
        found: dict[str, dict[Channel, ChannelProgress]] = {}
        with translate_errors(), self.store.engine.connect() as conn:
            for row in conn.execute(statement).mappings():
                channel = CHANNEL_OF[row["channel"]]
                found.setdefault(row["serial"], {})[channel] = ChannelProgress(
                    row["serial"], channel, row["read_until"], row["lost_from"], row["lost_until"],
                    row["lost_total_s"], row["last_error"], row["last_attempt"], row["updated_at"],
                )  # fmt: skip
        return found

    def begin(self, serial: str, channels: Sequence[Channel], start: datetime, now: datetime) -> None:
        """Rows for channels not yet tracked, reading from `start`."""
        with translate_errors(), self.store.engine.begin() as conn:
            meter_id = self._meter_id(conn, serial)
            have = set(
                conn.execute(
                    select(backfill_state_table.c.channel).where(backfill_state_table.c.meter_id == meter_id)
                ).scalars()
            )
            for channel in channels:
                code = CHANNEL_CODE[channel]
                if code in have:
                    continue
                try:
                    with conn.begin_nested():
                        conn.execute(
                            insert(backfill_state_table).values(
                                meter_id=meter_id, channel=code, read_until=start, lost_total_s=0, updated_at=now
                            )
                        )
                except IntegrityError:
                    pass  # another collector began it at the same moment

    def advance(
        self, serial: str, channels: Sequence[Channel], start: datetime, end: datetime, now: datetime
    ) -> None:
        """[start, end) has been read: move ``read_until`` to `end` where it lies within [start, end)."""
        self._update(serial, channels, start, end, now, {"last_error": None})

    def lose(self, serial: str, channels: Sequence[Channel], start: datetime, end: datetime, now: datetime) -> None:
        """[start, end) is older than the meter's memory: declared lost, never asked for again."""
        lost = int((end - start).total_seconds())
        self._update(
            serial, channels, start, end, now,
            {"lost_from": start, "lost_until": end, "lost_total_s": backfill_state_table.c.lost_total_s + lost},
        )  # fmt: skip

    def fail(self, serial: str, error: str, now: datetime) -> None:
        """A read of the meter's profile failed; progress stays where it is."""
        with translate_errors(), self.store.engine.begin() as conn:
            meter_id = self._meter_id(conn, serial)
            conn.execute(
                update(backfill_state_table)
                .where(backfill_state_table.c.meter_id == meter_id)
                .values(last_error=error[:2000], last_attempt=now, updated_at=now)
            )

    def _update(
        self,
        serial: str,
        channels: Sequence[Channel],
        start: datetime,
        end: datetime,
        now: datetime,
        extra: dict[str, object],
    ) -> None:
        codes = [CHANNEL_CODE[c] for c in channels]
        with translate_errors(), self.store.engine.begin() as conn:
            meter_id = self._meter_id(conn, serial)
            moves = and_(backfill_state_table.c.read_until >= start, backfill_state_table.c.read_until < end)
            conn.execute(
                update(backfill_state_table)
                .where(backfill_state_table.c.meter_id == meter_id, backfill_state_table.c.channel.in_(codes))
                .values(
                    read_until=case((moves, end), else_=backfill_state_table.c.read_until),
                    last_attempt=now,
                    updated_at=now,
                    **{k: case((moves, v), else_=backfill_state_table.c[k]) for k, v in extra.items()},
                )
            )

    @staticmethod
    def _meter_id(conn: Connection, serial: str) -> int:
        ids = meter_ids(conn, [serial])
        if serial not in ids:
            from amr.errors import NotFound

            raise NotFound(f"no meter {serial!r} in the store")
        return ids[serial]
