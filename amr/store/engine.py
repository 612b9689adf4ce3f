"""Engines for the supported backends: SQLite (embedded, WAL), PostgreSQL, TimescaleDB.

Errors from the driver are translated here into `StoreError` / `StoreUnavailable`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from amr.errors import StoreError, StoreUnavailable


@dataclass(frozen=True, slots=True)
class Backend:
    """What the connected database can do."""

    dialect: str  # "sqlite" or "postgresql"
    copy: bool  # bulk writes through binary COPY
    timescale_available: bool  # the timescaledb extension can be created
    single_session: bool  # the server shares one session among connections (PGlite)


def normalise_url(url: str) -> str:
    """Pick psycopg 3 for PostgreSQL URLs written without a driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str, *, single_session: bool = False) -> Engine:
    """An engine for `url`; `single_session` keeps one connection (for PGlite-served TimescaleDB)."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() != "postgresql":
        raise StoreError(
            f"unsupported database URL {parsed.render_as_string()}; use sqlite:/// or postgresql://"
        )
    if single_session:
        # One connection at a time: a second checkout waits instead of sharing the one session
        # (PGlite shares one backend session among all connections and cannot prepare statements).
        return create_engine(
            url, pool_size=1, max_overflow=0, pool_timeout=120, connect_args={"prepare_threshold": None}
        )
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5, connect_args={"connect_timeout": 5})


def probe(engine: Engine) -> Backend:
    """Ask the server what it is and what it can do."""
    if engine.dialect.name == "sqlite":
        return Backend("sqlite", copy=False, timescale_available=False, single_session=False)
    try:
        with engine.connect() as conn:  # one round trip
            version, available = conn.execute(
                text(
                    "SELECT version(), EXISTS (SELECT FROM pg_available_extensions WHERE name = 'timescaledb')"
                )
            ).one()
            version = str(version)
    except OperationalError as exc:
        raise StoreUnavailable(f"cannot reach the database: {exc.orig}") from exc
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot probe the database: {exc}") from exc
    wasm = "emscripten" in version.lower() or "wasm" in version.lower()
    return Backend("postgresql", copy=not wasm, timescale_available=bool(available), single_session=wasm)
