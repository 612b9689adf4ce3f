"""Series locks on PostgreSQL: a writer of one meter waits for another writer of that meter only."""

from __future__ import annotations

import threading

import pytest

from amr.ingest.ingestor import Ingestor
from amr.store import Store
from tests.support.builders import NOW, meters, reading

pytestmark = pytest.mark.postgres


def test_a_held_series_lock_blocks_its_meter_only(postgres_store: Store) -> None:
    from tests.conftest import _clean

    _clean(postgres_store)
    synced = postgres_store.sync_meters(meters({"serial": "A"}, {"serial": "B"}, ids=False))
    ingestor = Ingestor(postgres_store, synced, now=lambda: NOW)
    a, b = ingestor.meters["A"], ingestor.meters["B"]
    done: dict[str, str] = {}

    def submit(serial: str) -> None:
        done[serial] = ingestor.submit([reading(serial, 1, "5.0")]).outcomes[0].status

    with postgres_store.session() as held:
        held.lock([(a.id, 0)])  # another writer of meter A, in the middle of its transaction
        other = threading.Thread(target=submit, args=("B",))
        other.start()
        other.join(10)
        assert done.get("B") == "accepted", "a writer of meter B must not wait for meter A's lock"
        same = threading.Thread(target=submit, args=("A",))
        same.start()
        same.join(1.0)
        assert same.is_alive() and "A" not in done, "a writer of meter A waits for A's lock"
    same.join(10)
    assert done.get("A") == "accepted"
    assert sorted(r.meter_id for r in postgres_store.readings([a.id, b.id])) == sorted([a.id, b.id])
