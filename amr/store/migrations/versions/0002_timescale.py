"""TimescaleDB: readings as a hypertable, compression, continuous aggregates per 30 minutes, day and month.

Runs only on PostgreSQL with the timescaledb extension enabled for this store
(``[database] timescale``); elsewhere it is a no-op, so one revision history serves
every backend. Buckets are in the site's time zone, given at migration time.

Each aggregate keeps, per meter, tariff and bucket, the first and last reading's time
and values and the number of readings flagged as a rollover: enough to compute
consumption between bucket starts exactly without reading every row.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import context, op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

AGGREGATES = {"readings_30min": "30 minutes", "readings_daily": "1 day", "readings_monthly": "1 month"}
CHANNELS = ("a_plus", "a_minus", "r_plus", "r_minus")


def _enabled() -> bool:
    return op.get_bind().dialect.name == "postgresql" and bool(context.config.attributes.get("timescale"))


def upgrade() -> None:
    if not _enabled():
        return
    zone = str(context.config.attributes.get("timezone") or "UTC").replace("'", "")
    op.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    op.execute("SELECT create_hypertable('readings', by_range('ts', INTERVAL '7 days'), migrate_data => true)")
    op.execute(
        "ALTER TABLE readings SET (timescaledb.compress, timescaledb.compress_segmentby = 'meter_id, tariff', "
        "timescaledb.compress_orderby = 'ts')"
    )
    op.execute("SELECT add_compression_policy('readings', INTERVAL '60 days')")
    firsts = ", ".join(f"first({c}, ts) AS first_{c}" for c in CHANNELS)
    lasts = ", ".join(f"last({c}, ts) AS last_{c}" for c in CHANNELS)
    for view, width in AGGREGATES.items():
        op.execute(
            f"CREATE MATERIALIZED VIEW {view} WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS "
            f"SELECT meter_id, tariff, time_bucket(INTERVAL '{width}', ts, '{zone}') AS bucket, "
            f"min(ts) AS first_ts, first(flags, ts) AS first_flags, {firsts}, max(ts) AS last_ts, {lasts}, "
            "count(*) AS readings, sum(flags & 1) AS rollovers "
            "FROM readings GROUP BY meter_id, tariff, bucket WITH NO DATA"
        )
        op.execute(
            f"SELECT add_continuous_aggregate_policy('{view}', start_offset => NULL, "
            "end_offset => INTERVAL '30 minutes', schedule_interval => INTERVAL '30 minutes')"
        )


def downgrade() -> None:
    if not _enabled():
        return
    for view in AGGREGATES:
        op.execute(f"DROP MATERIALIZED VIEW IF EXISTS {view}")
