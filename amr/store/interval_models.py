"""Tables of interval data (load profiles): the final value of every interval and its revisions.

`intervals` holds one row per (meter, channel, start): the value in force, exact integer
Wh/varh at the primary side. `interval_revisions` keeps everything else that was said of an
interval: a value that was replaced (an estimate by a measured value, a measured value by a
dispatcher's substitution) and a value that was refused, with its reasons. Raw and final
are therefore both kept: the final value in `intervals`, what it replaced in the revisions.

Channels are stored as the codes of макет 80020 (1 A+, 2 A-, 3 R+, 4 R-), lengths in seconds.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from amr.store.models import Base, UTCDateTime


class IntervalRow(Base):
    """The value in force of one interval of one channel of one meter."""

    __tablename__ = "intervals"
    meter_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[int] = mapped_column(SmallInteger, primary_key=True)  # 1 A+, 2 A-, 3 R+, 4 R-
    start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    length_s: Mapped[int] = mapped_column(Integer)
    wh: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(12))  # measured | incomplete | estimated
    source: Mapped[str] = mapped_column(String(16))  # profile | derived | estimated | manual
    method: Mapped[str | None] = mapped_column(String(32), nullable=True)
    flags: Mapped[int] = mapped_column(SmallInteger, default=0)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class IntervalRevisionRow(Base):
    """A value once said of an interval and not (or no longer) in force: replaced or refused."""

    __tablename__ = "interval_revisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    meter_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # None: unknown meter
    serial: Mapped[str] = mapped_column(String(64))
    channel: Mapped[int] = mapped_column(SmallInteger)
    start: Mapped[datetime] = mapped_column(UTCDateTime)
    length_s: Mapped[int] = mapped_column(Integer)
    wh: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(12))
    source: Mapped[str] = mapped_column(String(16))
    method: Mapped[str | None] = mapped_column(String(32), nullable=True)
    flags: Mapped[int] = mapped_column(SmallInteger, default=0)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(12))  # replaced | refused
    reasons: Mapped[str] = mapped_column(String(300), default="")
    message: Mapped[str] = mapped_column(Text, default="")
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # refused values are kept once: the same refused value again has the same fingerprint
    fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)

    __table_args__ = (Index("ix_interval_revisions_key", "meter_id", "channel", "start"),)


class IntervalMismatchRow(Base):
    """A sum check that failed: the intervals between two register readings (`start`, `end`) of one
    channel do not add up to the register delta within the register's resolution (`amr.store.sum_checks`)."""

    __tablename__ = "interval_mismatches"
    meter_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)  # the earlier reading's time
    end: Mapped[datetime] = mapped_column(UTCDateTime)  # the later reading's time
    register_wh: Mapped[int] = mapped_column(BigInteger)
    intervals_wh: Mapped[int] = mapped_column(BigInteger)
    tolerance_wh: Mapped[int] = mapped_column(BigInteger)
    found_at: Mapped[datetime] = mapped_column(UTCDateTime)
