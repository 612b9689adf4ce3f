"""The relay command queue on SQLite and the real PostgreSQL: claimed once, leased, expired, audited."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from amr.config import DatabaseConfig
from amr.store import Store
from amr.store import relay_commands as commands
from amr.store.relay_commands import Outcome
from tests.conftest import _clean
from tests.support.builders import meters

NOW = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
LEASE = timedelta(minutes=2)
HOUR = timedelta(hours=1)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        opened = Store.open(DatabaseConfig(url=f"sqlite:///{tmp_path / 'amr.sqlite'}"), "Europe/Moscow")
    else:
        opened = request.getfixturevalue("postgres_store")
        _clean(opened)
    opened.sync_meters(meters({"serial": "R1"}, {"serial": "R2"}, ids=False))
    yield opened
    if request.param == "sqlite":
        opened.close()


def ids(store: Store) -> dict[str, int]:
    return {m.serial: m.id for m in store.sync_meters(meters({"serial": "R1"}, {"serial": "R2"}, ids=False))}


def test_a_command_is_claimed_once_done_and_audited_with_who_when_why_and_the_state(store: Store) -> None:
    meter = ids(store)["R1"]
    queued = commands.enqueue(store, meter, "R1", "disconnect", "долг за 3 месяца", "disp", NOW, NOW + HOUR)
    assert queued.status == "queued" and queued.attempts == 0
    [claimed] = commands.claim(store, [meter], "c1", NOW, LEASE)
    assert claimed.status == "running" and claimed.claimed_by == "c1" and claimed.attempts == 1
    assert commands.claim(store, [meter], "c2", NOW + timedelta(seconds=5), LEASE) == []  # held by c1
    done = commands.finish(store, claimed, "c1", Outcome("done", "disconnected", False, True),
                           NOW + timedelta(seconds=1))
    assert done is not None and done.status == "done" and done.state == "disconnected" and done.acted is True
    assert commands.claim(store, [meter], "c2", NOW + HOUR / 2, LEASE) == []
    trail = store.audit_log()
    assert [(r["actor"], r["action"]) for r in reversed(trail)] == [
        ("disp", "relay_disconnect_requested"), ("c1", "relay_disconnect_done")]
    assert all(r["reason"] == "долг за 3 месяца" and r["subject"] == "meter R1" for r in trail)
    assert trail[0]["details"]["state"] == "disconnected" and trail[0]["details"]["requested_by"] == "disp"


def test_a_meter_that_does_not_answer_is_tried_again_until_the_deadline_then_the_command_expires(store: Store) -> None:
    meter = ids(store)["R1"]
    commands.enqueue(store, meter, "R1", "reconnect", "оплачено", "disp", NOW, NOW + timedelta(minutes=2))
    [first] = commands.claim(store, [meter], "c1", NOW, LEASE)
    silent = Outcome("retry", error="no answer within 1 s", error_code="timeout")
    again = commands.finish(store, first, "c1", silent, NOW, retry_at=NOW + timedelta(seconds=30))
    assert again is not None and again.status == "queued" and again.error == "no answer within 1 s"
    assert commands.claim(store, [meter], "c1", NOW + timedelta(seconds=10), LEASE) == []  # not due yet
    [second] = commands.claim(store, [meter], "c1", NOW + timedelta(seconds=30), LEASE)
    assert second.attempts == 2
    over = commands.finish(store, second, "c1", silent, NOW + timedelta(seconds=31),
                           retry_at=NOW + timedelta(minutes=3))  # the next try would be past the deadline
    assert over is not None and over.status == "expired" and over.error_code == "timeout"
    assert over.error is not None and "deadline" in over.error and "2 attempt(s)" in over.error
    assert store.audit_log()[0]["action"] == "relay_reconnect_expired"


def test_a_queued_command_nobody_reaches_expires_at_its_deadline(store: Store) -> None:
    meter = ids(store)["R2"]
    queued = commands.enqueue(store, meter, "R2", "disconnect", "проверка", "disp", NOW, NOW + timedelta(minutes=5))
    assert commands.expire_overdue(store, NOW + timedelta(minutes=4)) == 0
    assert commands.expire_overdue(store, NOW + timedelta(minutes=5)) == 1
    expired = commands.get(store, queued.id)
    assert expired is not None and expired.status == "expired" and expired.attempts == 0
    assert expired.error is not None and "before any collector reached the meter" in expired.error
    assert commands.claim(store, [meter], "c1", NOW + timedelta(minutes=6), LEASE) == []


def test_a_collector_that_stopped_mid_command_leaves_it_to_another_after_the_lease(store: Store) -> None:
    meter = ids(store)["R1"]
    commands.enqueue(store, meter, "R1", "disconnect", "долг", "disp", NOW, NOW + HOUR)
    [held] = commands.claim(store, [meter], "c1", NOW, LEASE)
    assert commands.claim(store, [meter], "c2", NOW + LEASE - timedelta(seconds=1), LEASE) == []
    [taken] = commands.claim(store, [meter], "c2", NOW + LEASE, LEASE)
    assert taken.id == held.id and taken.claimed_by == "c2" and taken.attempts == 2
    late = commands.finish(store, held, "c1", Outcome("done", "disconnected", False, True), NOW + LEASE)
    assert late is None  # c1's claim is gone: its outcome does not count
    done = commands.finish(store, taken, "c2", Outcome("done", "disconnected", False, False), NOW + LEASE)
    assert done is not None and done.status == "done" and done.acted is False


def test_a_meters_commands_run_one_at_a_time_in_the_order_given(store: Store) -> None:
    meter = ids(store)["R1"]
    first = commands.enqueue(store, meter, "R1", "disconnect", "долг", "disp", NOW, NOW + HOUR)
    second = commands.enqueue(store, meter, "R1", "reconnect", "ошибка", "disp", NOW, NOW + HOUR)
    assert [c.id for c in commands.claim(store, [meter], "c1", NOW, LEASE)] == [first.id]
    assert commands.claim(store, [meter], "c2", NOW, LEASE) == []  # the meter is busy with the first
    running = commands.get(store, first.id)
    assert running is not None
    commands.finish(store, running, "c1", Outcome("failed", error="denied"), NOW)
    assert [c.id for c in commands.claim(store, [meter], "c2", NOW, LEASE)] == [second.id]


def test_two_collectors_claiming_at_once_take_each_command_exactly_once(store: Store) -> None:
    table = ids(store)
    for n in range(20):
        serial = "R1" if n % 2 else "R2"
        commands.enqueue(store, table[serial], serial, "read", f"n{n}", "disp", NOW, NOW + HOUR)
    taken: dict[str, list[int]] = {"a": [], "b": []}
    barrier = threading.Barrier(2)

    def collector(name: str) -> None:
        barrier.wait()
        taken[name] = claim_and_finish(store, list(table.values()), name)

    threads = [threading.Thread(target=collector, args=(name,)) for name in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    every = taken["a"] + taken["b"]
    assert sorted(every) == sorted(set(every)) and len(every) == 20


def claim_and_finish(store: Store, meter_ids: list[int], name: str) -> list[int]:
    """What collector `name` claims and finishes over 40 one-second steps: the command ids."""
    taken = []
    for step in range(40):
        at = NOW + timedelta(seconds=step)
        for command in commands.claim(store, meter_ids, name, at, LEASE):
            taken.append(command.id)
            commands.finish(store, command, name, Outcome("done", "connected", True, False), at)
    return taken


def _collector_process(url: str, meter_ids: list[int], name: str, begin: float) -> list[int]:
    store = Store.open(DatabaseConfig(url=url), "Europe/Moscow")
    try:
        time.sleep(max(0.0, begin - time.time()))  # both processes start claiming at the same moment
        return claim_and_finish(store, meter_ids, name)
    finally:
        store.close()


@pytest.mark.postgres
def test_two_collector_processes_claiming_at_once_take_each_command_exactly_once(
    postgres_store: Store, postgres_url: str
) -> None:
    _clean(postgres_store)
    table = ids(postgres_store)
    for n in range(40):
        serial = "R1" if n % 2 else "R2"
        commands.enqueue(postgres_store, table[serial], serial, "read", f"n{n}", "disp", NOW, NOW + HOUR)
    begin = time.time() + 3  # after both processes have started and opened the store
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.starmap(_collector_process, [(postgres_url, list(table.values()), n, begin) for n in "ab"])
    every = results[0] + results[1]
    assert sorted(every) == sorted(set(every)) and len(every) == 40, results


def test_only_due_or_overdue_commands_count_as_something_to_claim(store: Store) -> None:
    meter = ids(store)["R1"]
    assert not commands.anything_due(store, [meter], NOW)
    queued = commands.enqueue(store, meter, "R1", "read", "проверка", "disp", NOW, NOW + HOUR)
    assert commands.anything_due(store, [meter], NOW) and not commands.anything_due(store, [ids(store)["R2"]], NOW)
    [claimed] = commands.claim(store, [meter], "c1", NOW, LEASE)
    assert not commands.anything_due(store, [meter], NOW + LEASE / 2)  # running under its lease
    assert commands.anything_due(store, [meter], NOW + LEASE)  # the lease has ended
    assert claimed.id == queued.id


def test_the_lease_must_outlast_an_attempt() -> None:
    from amr.collector.operations import lease_check

    assert lease_check(timedelta(minutes=2), 15.0) is None
    warning = lease_check(timedelta(seconds=10), 15.0)
    assert warning is not None and "not longer than one attempt" in warning
