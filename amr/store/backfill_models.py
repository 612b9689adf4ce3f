"""The table of back-fill progress: per meter and channel, how far its profile has been read.

Named and declared as the tables of `amr.store.models`.
"""

from __future__ import annotations

from sqlalchemy import Column, Integer, SmallInteger, Table, Text

from amr.store.models import UTCDateTime, metadata

backfill_state_table = Table(
    "backfill_state",
    metadata,
    Column("meter_id", Integer, primary_key=True),
    Column("channel", SmallInteger, primary_key=True),  # 1 A+, 2 A-, 3 R+, 4 R- (as intervals)
    Column("read_until", UTCDateTime, nullable=False),
    Column("lost_from", UTCDateTime, nullable=True),  # the latest unrecoverable gap
    Column("lost_until", UTCDateTime, nullable=True),
    Column("lost_total_s", Integer, nullable=False, default=0),  # seconds declared unrecoverable, all told
    Column("last_error", Text, nullable=True),
    Column("last_attempt", UTCDateTime, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
)
"""One channel of one meter: every interval before `read_until` was asked of the meter or declared lost."""
