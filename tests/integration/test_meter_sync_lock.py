"""The meter sync and the registry's writers take turns on PostgreSQL: the sync holds the registry's lock
while it compares and writes objects, points and meters, so a registry write in progress is waited for,
and the sync then inserts only what is still missing (no duplicate key, nothing written twice)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psycopg
import pytest

from amr.config import config_from_dict
from amr.store import Store
from amr.store.meters import REGISTRY_LOCK
from tests.api.live import fresh_database

pytestmark = pytest.mark.postgres


@pytest.fixture
def database() -> Iterator[str]:
    with fresh_database() as url:
        yield url


def test_the_sync_waits_for_a_registry_write_and_inserts_what_is_still_missing(database: str) -> None:
    config = config_from_dict({
        "database": {"url": database},
        "meters": [{"serial": "M1", "object": "house 0", "point": "kv1"},
                   {"serial": "M2", "object": "house 0", "point": "kv2"}],
    }, {})
    store = Store.open(config.database, "Europe/Moscow")
    failed: list[BaseException] = []

    def sync() -> None:
        try:
            store.sync_meters(config.meter_objects())
        except BaseException as exc:  # reported by the test below
            failed.append(exc)

    try:
        with psycopg.connect(database, autocommit=True) as conn:
            object_id = conn.execute("INSERT INTO objects (name) VALUES ('house 0') RETURNING id").fetchone()
        assert object_id is not None
        with psycopg.connect(database) as registry_write:  # as `amr.registry.stored.transaction` writes
            registry_write.execute("SELECT pg_advisory_xact_lock(%s)", [REGISTRY_LOCK])
            registry_write.execute("INSERT INTO metering_points (code, object_id) VALUES ('kv1', %s)", object_id)
            syncing = threading.Thread(target=sync)
            syncing.start()
            syncing.join(1.0)
            assert syncing.is_alive()  # waiting for the registry's lock
            registry_write.commit()
        syncing.join(30)
        assert not syncing.is_alive() and failed == []
        with psycopg.connect(database) as conn:
            points = conn.execute("SELECT p.code, o.name FROM metering_points p JOIN objects o ON o.id = p.object_id "
                                  "ORDER BY p.code").fetchall()
            meters = conn.execute("SELECT m.serial, p.code FROM meters m JOIN metering_points p ON p.id = m.point_id "
                                  "ORDER BY m.serial").fetchall()
        assert points == [("kv1", "house 0"), ("kv2", "house 0")]
        assert meters == [("M1", "kv1"), ("M2", "kv2")]
    finally:
        store.close()
