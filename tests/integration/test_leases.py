"""Leases on the real PostgreSQL: atomic under concurrency, expiry and takeover, a fair share without flapping."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from amr.cli import main
from amr.collector.lease_units import LeaseUnit
from amr.collector.leasing import LeaseKeeper
from amr.collector.status import lease_status, status_text
from amr.config import config_from_dict
from amr.core.domain import Channel, IncomingReading, Source
from amr.ingest.ingestor import Ingestor
from amr.store import Store
from amr.store.leases import LeaseTable, Taken, load_status
from amr.store.polled import polled_since
from tests.conftest import _clean
from tests.support.builders import meters

pytestmark = pytest.mark.postgres

KEYS = [f"bus-{i}" for i in range(8)]


@pytest.fixture
def pg(postgres_store: Store) -> Store:
    _clean(postgres_store)
    return postgres_store


def _table(store: Store, me: str, ttl: float = 5.0, keys: list[str] = KEYS) -> LeaseTable:
    table = LeaseTable(store.engine, me, timedelta(seconds=ttl))
    table.ensure({key: (key, 1) for key in keys})
    return table


def test_concurrent_acquirers_never_share_a_lease(pg: Store) -> None:
    tables = [_table(pg, f"host:{i}:0000") for i in range(4)]
    for table in tables:
        table.round(KEYS)
    got: dict[str, list[str]] = {}
    barrier = threading.Barrier(len(tables))

    def grab(table: LeaseTable) -> None:
        barrier.wait()
        got[table.me] = [t.lease for t in table.acquire(KEYS, len(KEYS))]

    threads = [threading.Thread(target=grab, args=(t,)) for t in tables]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    owners = Counter(lease for leases in got.values() for lease in leases)
    assert set(owners) == set(KEYS) and set(owners.values()) == {1}
    with pg.engine.connect() as conn:
        status = load_status(conn, timedelta(seconds=5))
    assert {s.lease: s.owner for s in status.leases} == {
        lease: me for me, leases in got.items() for lease in leases
    }


def test_an_expired_lease_is_taken_with_who_held_it(pg: Store) -> None:
    dead, taker = _table(pg, "dead:1:0000", ttl=0.5), _table(pg, "taker:2:0000", ttl=0.5)
    dead.round(KEYS)
    assert len(dead.acquire(KEYS, 3)) == 3
    taker.round(KEYS)
    assert [t.lease for t in taker.acquire(KEYS[:3], 3)] == []  # held: nothing to take
    time.sleep(0.7)  # the dead one renews no more
    taken = taker.acquire(KEYS[:3], 3)
    assert [t.lease for t in taken] == KEYS[:3]
    assert {t.previous_owner for t in taken} == {"dead:1:0000"}
    assert all(t.previous_expiry is not None for t in taken)
    assert dead.round(KEYS).renewed == frozenset()  # the dead one, back, learns they are gone


def _keeper(table: LeaseTable, log: list[str], keys: list[str] = KEYS) -> LeaseKeeper:
    units = [LeaseUnit(key, key, ("m",)) for key in keys]

    async def taken(items: list[Taken]) -> None:
        log.extend(f"{table.me} took {t.lease}" for t in items)

    async def release(units: list[LeaseUnit]) -> None:
        log.extend(f"{table.me} gave {unit.key}" for unit in units)

    return LeaseKeeper(table, units, table.ttl, taken, release)


def test_a_returning_collector_gets_its_share_one_lease_a_round_and_shares_settle(pg: Store) -> None:
    log: list[str] = []
    first = _keeper(_table(pg, "a:1:0000"), log)
    second = _keeper(_table(pg, "b:2:0000"), log)
    third = _keeper(_table(pg, "c:3:0000"), log)

    async def run() -> list[tuple[int, int, int]]:
        await first.step()
        assert len(first.held) == 8  # alone: everything
        shares = []
        for _ in range(8):
            for keeper in (first, second, third):
                await keeper.step()
                await keeper.handed_over()
            shares.append((len(first.held), len(second.held), len(third.held)))
        return shares

    shares = asyncio.run(run())
    gave = [line for line in log if " gave " in line]
    assert shares[-1] == shares[-3]  # settled: nothing moves any more
    assert sorted(shares[-1]) == [2, 3, 3]  # 8 leases, 3 collectors: a difference of one stays
    for before, after in zip(shares, shares[1:], strict=False):
        assert before[0] - after[0] <= 1  # the first gives back at most one a round
    assert len(gave) == 8 - shares[-1][0]  # only the first gave any back, each lease once: no flapping
    held = [set(k.held) for k in (first, second, third)]
    assert not (held[0] & held[1] or held[0] & held[2] or held[1] & held[2])


def test_many_leases_move_a_tenth_a_round_and_each_once(pg: Store) -> None:
    keys = [f"group-{i:02d}" for i in range(40)]
    log: list[str] = []
    first = _keeper(_table(pg, "a:1:0000", keys=keys), log, keys)
    second = _keeper(_table(pg, "b:2:0000", keys=keys), log, keys)

    async def run() -> list[tuple[int, int]]:
        await first.step()
        shares = []
        for _ in range(8):
            await first.step()
            await first.handed_over()
            await second.step()
            shares.append((len(first.held), len(second.held)))
        return shares

    shares = asyncio.run(run())
    assert shares[-1] == (20, 20) and shares.index((20, 20)) <= 5  # settled within a few rounds
    assert all(before[0] - after[0] <= 4 for before, after in zip(shares, shares[1:], strict=False))
    gave = Counter(line.split()[-1] for line in log if " gave " in line)
    assert len(gave) == 20 and set(gave.values()) == {1}


def test_polled_since_sees_readings_of_the_slot_only(pg: Store) -> None:
    stored = pg.sync_meters(meters({"serial": "P1"}, {"serial": "P2"}, {"serial": "P3"}, ids=False))
    ids = {m.serial: m.id for m in stored}
    slot = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=10)
    ingestor = Ingestor(pg, stored, timedelta(minutes=5))

    def polled(serial: str, at: datetime) -> IncomingReading:
        return IncomingReading(serial, at, 0, {Channel.A_PLUS: 1000}, Source.MODBUS, received_at=at)

    ingestor.submit([polled("P1", slot + timedelta(seconds=2)), polled("P2", slot - timedelta(seconds=5))])
    found = polled_since(pg.engine, {ids["P1"]: slot, ids["P2"]: slot, ids["P3"]: slot})
    assert found == {ids["P1"]}


def test_status_on_sqlite_says_one_collector_polls_everything(tmp_path: Path) -> None:
    config = config_from_dict({"database": {"url": f"sqlite:///{tmp_path / 'a.sqlite'}"}}, environ={})
    store = Store.open(config.database)
    try:
        report = lease_status(config, store)
    finally:
        store.close()
    assert report["sharing"] is False
    assert status_text(report, config.site.tz) == ["SQLite: one collector polls every bus (leases need PostgreSQL)"]


def test_collect_status_prints_holders_since_when_and_heartbeats(
    pg: Store, postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "amr.toml"
    config.write_text(f'[database]\nurl = "{postgres_url}"\n[collector]\nlease_ttl = "30s"\n', encoding="utf-8")
    holder = _table(pg, "field-7:31:beef", ttl=30)
    holder.round(KEYS)
    holder.acquire(KEYS[:2], 2)
    code = main(["collect", "-c", str(config), "--status"])
    out = capsys.readouterr().out
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "field-7:31:beef" in lines["bus-0"] and "+03:00" in lines["bus-0"]  # since, in the site's zone
    assert "(free" in lines["bus-5"]
    assert "alive" in lines["field-7:31:beef"] and " 2 " in lines["field-7:31:beef"]
    assert "s ago" in lines["field-7:31:beef"]
    assert main(["collect", "-c", str(config), "--status", "--once"]) == 2
    assert "either --once or --status" in capsys.readouterr().err


@pytest.mark.parametrize("leases", ["auto", "off"])
def test_a_collector_on_postgresql_shares_unless_told_not_to(
    pg: Store, postgres_url: str, tmp_path: Path, leases: str
) -> None:
    from amr.app import App
    from amr.collector.collector import Collector

    config = config_from_dict({
        "database": {"url": postgres_url},
        "collector": {"buffer": str(tmp_path / "buffer.sqlite"), "leases": leases},
        "buses": [{"name": "line", "kind": "modbus-tcp", "url": "tcp://127.0.0.1:9", "timeout": "200ms",
                   "schedule": "1h"}],
        "meters": [{"serial": "S1", "bus": "line", "address": 1, "profile": "eastron-sdm630"}],
    }, environ={})

    async def run() -> tuple[bool, dict[str, str | None]]:
        app = await asyncio.to_thread(App.open, config)
        try:
            collector = Collector(app)
            await collector.start()
            sharing = collector.sharing is not None
            with pg.engine.connect() as conn:
                status = load_status(conn, timedelta(seconds=15))
            await collector.stop()
            return sharing, {s.lease: s.owner for s in status.leases}
        finally:
            app.close()

    sharing, owners = asyncio.run(run())
    assert sharing is (leases == "auto")
    if leases == "auto":
        assert list(owners) == ["line"] and owners["line"] is not None  # held while it ran
    else:
        assert owners == {}
