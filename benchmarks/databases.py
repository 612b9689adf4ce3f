"""The benchmarks' PostgreSQL: a fresh database per run, dropped after, and a plain binary COPY."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from amr.store.writer import READINGS_COPY, READINGS_COPY_TYPES

ADMIN_URL = os.environ.get("AMR_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def url(name: str) -> str:
    """The URL of database `name` on the benchmark's server."""
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + name


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new empty database's name; the database is dropped when the block ends, whatever happens."""
    name = f"amr_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def copy_readings(conn: psycopg.Connection[Any], rows: Iterable[tuple[Any, ...]]) -> None:
    """Binary COPY of `rows` (the columns of `READINGS_COPY`) into `readings`, as the store writes them."""
    with conn.cursor() as cur, cur.copy(READINGS_COPY) as copy:
        copy.set_types(list(READINGS_COPY_TYPES))
        for row in rows:
            copy.write_row(row)
