"""Tables of interval data (load profiles): the final value of every interval and its revisions.

`intervals` holds one row per (meter, channel, start): the value in force, exact integer
Wh/varh at the primary side. `interval_revisions` keeps everything else that was said of an
interval: a value that was replaced (an estimate by a measured value, a measured value by a
dispatcher's substitution) and a value that was refused, with its reasons. Raw and final
are therefore both kept: the final value in `intervals`, what it replaced in the revisions.

Channels are stored as the codes of макет 80020 (1 A+, 2 A-, 3 R+, 4 R-), lengths in seconds.
Tables are named and declared as in `amr.store.models`.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, SmallInteger, String, Table, Text

from amr.store.models import UTCDateTime, metadata

intervals_table = Table(
    "intervals",
    metadata,
    Column("meter_id", Integer, primary_key=True),
    Column("channel", SmallInteger, primary_key=True),  # 1 A+, 2 A-, 3 R+, 4 R-
    Column("start", UTCDateTime, primary_key=True),
    Column("length_s", Integer, nullable=False),
    Column("wh", BigInteger, nullable=False),
    Column("status", String(12), nullable=False),  # measured | incomplete | estimated
    Column("source", String(16), nullable=False),  # profile | derived | estimated | manual
    Column("method", String(32), nullable=True),
    Column("flags", SmallInteger, nullable=False, default=0),
    Column("received_at", UTCDateTime, nullable=False),
)
"""The value in force of one interval of one channel of one meter."""

interval_revisions_table = Table(
    "interval_revisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("meter_id", Integer, nullable=True),  # None: unknown meter
    Column("serial", String(64), nullable=False),
    Column("channel", SmallInteger, nullable=False),
    Column("start", UTCDateTime, nullable=False),
    Column("length_s", Integer, nullable=False),
    Column("wh", BigInteger, nullable=False),
    Column("status", String(12), nullable=False),
    Column("source", String(16), nullable=False),
    Column("method", String(32), nullable=True),
    Column("flags", SmallInteger, nullable=False, default=0),
    Column("received_at", UTCDateTime, nullable=False),
    Column("kind", String(12), nullable=False),  # replaced | refused
    Column("reasons", String(300), nullable=False, default=""),
    Column("message", Text, nullable=False, default=""),
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("actor", String(100), nullable=True),
    # refused values are kept once: the same refused value again has the same fingerprint
    Column("fingerprint", String(64), nullable=True, unique=True),
    Index("ix_interval_revisions_key", "meter_id", "channel", "start"),
)
"""A value once said of an interval and not (or no longer) in force: replaced or refused."""

interval_mismatches_table = Table(
    "interval_mismatches",
    metadata,
    Column("meter_id", Integer, primary_key=True),
    Column("channel", SmallInteger, primary_key=True),
    Column("start", UTCDateTime, primary_key=True),  # the earlier reading's time
    Column("end", UTCDateTime, nullable=False),  # the later reading's time
    Column("register_wh", BigInteger, nullable=False),
    Column("intervals_wh", BigInteger, nullable=False),
    Column("tolerance_wh", BigInteger, nullable=False),
    Column("found_at", UTCDateTime, nullable=False),
)
"""A sum check that failed: the intervals between two register readings (`start`, `end`) of one
channel do not add up to the register delta within the register's resolution (`amr.store.sum_checks`)."""
