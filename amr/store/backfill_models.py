"""The table of back-fill progress: per meter and channel, how far its profile has been read."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, SmallInteger, Text
from sqlalchemy.orm import Mapped, mapped_column

from amr.store.models import Base, UTCDateTime


class BackfillRow(Base):
    """One channel of one meter: every interval before `read_until` was asked of the meter or declared lost."""

    __tablename__ = "backfill_state"
    meter_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[int] = mapped_column(SmallInteger, primary_key=True)  # 1 A+, 2 A-, 3 R+, 4 R- (as intervals)
    read_until: Mapped[datetime] = mapped_column(UTCDateTime)
    lost_from: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)  # the latest unrecoverable gap
    lost_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lost_total_s: Mapped[int] = mapped_column(Integer, default=0)  # seconds declared unrecoverable, all told
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_attempt: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
