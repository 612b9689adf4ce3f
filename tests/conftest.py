"""Shared fixtures: a store on every backend (SQLite, the real PostgreSQL, TimescaleDB)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from amr.config import DatabaseConfig
from amr.store import Store
from amr.store.models import metadata

POSTGRES_URL = os.environ.get("AMR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = bool(os.environ.get("CI"))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database on the real PostgreSQL; fails (never skips) when the server is missing."""
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is required at {POSTGRES_URL} (set AMR_TEST_POSTGRES_URL to change it): {exc}",
            pytrace=False,
        )
    name = f"amr_test_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="session")
def timescale_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """TimescaleDB served from the npm package; skipped off CI when it cannot be started, failed on CI."""
    from tests.support.timescale import TimescaleStartError, start_timescale

    try:
        server = start_timescale()
    except TimescaleStartError as exc:
        if IN_CI:
            pytest.fail(f"TimescaleDB could not be started: {exc}", pytrace=False)
        pytest.skip(f"TimescaleDB could not be started: {exc}")
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_store(postgres_url: str) -> Iterator[Store]:
    """One migrated store on the real PostgreSQL for the whole session."""
    opened = Store.open(DatabaseConfig(url=postgres_url), "Europe/Moscow")
    yield opened
    opened.close()


@pytest.fixture(scope="session")
def timescale_store(timescale_url: str) -> Iterator[Store]:
    """One migrated store on TimescaleDB for the whole session."""
    opened = Store.open(DatabaseConfig(url=timescale_url), "Europe/Moscow")
    yield opened
    opened.close()


def _clean(store: Store) -> None:
    tables = [t.name for t in reversed(metadata.sorted_tables)]
    with store.engine.begin() as conn:
        if store.backend.dialect == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture(params=["sqlite", "postgres", "timescale"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty, migrated store on each backend."""
    if request.param == "sqlite":
        opened = Store.open(DatabaseConfig(url=f"sqlite:///{tmp_path / 'amr.sqlite'}"), "Europe/Moscow")
        yield opened
        opened.close()
        return
    shared: Store = request.getfixturevalue(f"{request.param}_store")
    _clean(shared)
    yield shared


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database on each backend: a new SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'amr.sqlite'}"
        return
    from tests.api.live import fresh_database

    with fresh_database() as url:
        yield url
