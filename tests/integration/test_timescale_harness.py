"""The TimescaleDB test harness serves a real engine: hypertables, time_bucket, continuous aggregates."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy import exc as sa_exc

from tests.support.timescale import TimescaleServer, TimescaleStartError, start_timescale

pytestmark = pytest.mark.timescale

START = datetime(2024, 1, 1, tzinfo=UTC)  # 03:00 in Moscow (UTC+3)


@pytest.fixture(scope="module")
def server() -> Iterator[TimescaleServer]:
    """A server of its own, in memory; skipped off CI when it cannot start (like tests/conftest.py)."""
    try:
        started = start_timescale()
    except TimescaleStartError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"TimescaleDB could not be started: {exc}", pytrace=False)
        pytest.skip(f"TimescaleDB could not be started: {exc}")
    with started:
        yield started


@pytest.fixture
def conn(server: TimescaleServer) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    """One autocommit connection (CALL refresh_continuous_aggregate refuses a transaction block)."""
    with psycopg.connect(server.dsn, prepare_threshold=None, autocommit=True) as connection:
        connection.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        yield connection


def test_hypertable_time_bucket_and_continuous_aggregate(conn: psycopg.Connection[tuple[Any, ...]]) -> None:
    version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    assert version is not None
    assert version[0].startswith("2.")

    conn.execute(
        "CREATE TABLE harness_readings (meter_id int NOT NULL, ts timestamptz NOT NULL, tariff smallint NOT NULL,"
        " a_plus bigint NOT NULL, PRIMARY KEY (meter_id, tariff, ts))"
    )
    conn.execute("SELECT create_hypertable('harness_readings', by_range('ts', INTERVAL '1 day'))")
    # 48 hours of half-hourly readings: 2024-01-01 00:00Z .. 2024-01-02 23:30Z, a_plus = 10 * i
    rows = [(7, START + timedelta(minutes=30 * i), 1, 10 * i) for i in range(96)]
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO harness_readings VALUES (%s, %s, %s, %s)", rows)

    chunks = conn.execute("SELECT count(*) FROM show_chunks('harness_readings')").fetchone()
    assert chunks == (2,)  # one chunk per UTC day

    hourly = conn.execute(
        "SELECT time_bucket('1 hour', ts) AS b, count(*), sum(a_plus) FROM harness_readings GROUP BY b ORDER BY b"
    ).fetchall()
    assert len(hourly) == 48
    assert hourly[0] == (START, 2, 0 + 10)
    assert hourly[-1] == (START + timedelta(hours=47), 2, 940 + 950)

    # Moscow days start at 21:00Z: 42 readings on Jan 1, 48 on Jan 2, 6 on Jan 3 (local dates)
    moscow_day = "time_bucket('1 day', ts, 'Europe/Moscow')"
    daily_expected = [
        (datetime(2023, 12, 31, 21, tzinfo=UTC), 7, 0, 410, 42),
        (datetime(2024, 1, 1, 21, tzinfo=UTC), 7, 420, 890, 48),
        (datetime(2024, 1, 2, 21, tzinfo=UTC), 7, 900, 950, 6),
    ]
    daily = conn.execute(
        f"SELECT {moscow_day} AS b, meter_id, first(a_plus, ts), last(a_plus, ts), count(*)"
        " FROM harness_readings GROUP BY b, meter_id ORDER BY b"
    ).fetchall()
    assert daily == daily_expected

    conn.execute(
        "CREATE MATERIALIZED VIEW harness_daily"
        " WITH (timescaledb.continuous, timescaledb.materialized_only = true) AS"
        f" SELECT {moscow_day} AS bucket, meter_id, first(a_plus, ts) AS first_a, last(a_plus, ts) AS last_a,"
        " count(*) AS n FROM harness_readings GROUP BY bucket, meter_id WITH NO DATA"
    )
    select_view = "SELECT bucket, meter_id, first_a, last_a, n FROM harness_daily ORDER BY bucket"
    assert conn.execute(select_view).fetchall() == []

    conn.execute("CALL refresh_continuous_aggregate('harness_daily', NULL, NULL)")
    assert conn.execute(select_view).fetchall() == daily_expected

    # A late reading (Jan 3 00:00Z = 03:00 Moscow) shows only after the next refresh.
    conn.execute("INSERT INTO harness_readings VALUES (7, %s, 1, 960)", (START + timedelta(days=2),))
    assert conn.execute(select_view).fetchall() == daily_expected
    conn.execute("CALL refresh_continuous_aggregate('harness_daily', NULL, NULL)")
    assert conn.execute(select_view).fetchall() == [*daily_expected[:2], (daily_expected[2][0], 7, 900, 960, 7)]


def test_sqlalchemy_engine_with_a_single_connection_pool(server: TimescaleServer) -> None:
    # One pooled connection, never two: a second checkout waits (and times out) instead of sharing the session.
    engine = create_engine(
        server.url,
        pool_size=1,
        max_overflow=0,
        pool_timeout=0.5,
        connect_args={"prepare_threshold": None},
    )
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS timescaledb"))
            conn.execute(text("CREATE TABLE harness_sa (meter_id int NOT NULL, ts timestamptz NOT NULL, n int)"))
            conn.execute(text("SELECT create_hypertable('harness_sa', by_range('ts'))"))
            conn.execute(
                text("INSERT INTO harness_sa VALUES (1, :ts, :n)"),
                [{"ts": START + timedelta(minutes=10 * n), "n": n} for n in range(6)],  # executemany
            )
            with pytest.raises(sa_exc.TimeoutError):
                engine.connect()
        with engine.connect() as conn:
            hypertables = conn.execute(text("SELECT hypertable_name FROM timescaledb_information.hypertables"))
            assert "harness_sa" in set(hypertables.scalars())
            total = conn.execute(text("SELECT time_bucket('1 hour', ts), sum(n) FROM harness_sa GROUP BY 1")).one()
            assert tuple(total) == (START, 15)
    finally:
        engine.dispose()
