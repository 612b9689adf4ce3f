"""The store contract: every backend (SQLite, PostgreSQL, TimescaleDB) must pass all of it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from sqlalchemy import delete

from amr.core.domain import Channel, Flag, StoredReading
from amr.ingest.bulk import BulkIngest
from amr.ingest.ingestor import Ingestor
from amr.outputs.consumption import Step, boundaries, consumption
from amr.store import Session, Store
from amr.store.models import readings_table
from amr.validation import ContextRequest, Pipeline, Reason, Summary
from tests.support.builders import NOW, T0, meters, reading
from tests.support.memory import MemoryLoader

T = TypeVar("T")
SPECS = (
    {"serial": "A1", "object": "ПС Северная", "point": "p1", "accounts": ["111"], "max_power_kw": 100},
    {"serial": "B2", "object": "ПС Северная", "point": "p2", "ct_ratio": 4000, "tariffs": 2},
)


def ingestor(store: Store, *specs: dict[str, object]) -> Ingestor:
    synced = store.sync_meters(meters(*(specs or SPECS), ids=False))
    return Ingestor(store, synced, now=lambda: NOW)


def test_sync_meters_is_idempotent_and_assigns_ids(store: Store) -> None:
    first = store.sync_meters(meters(*SPECS, ids=False))
    again = store.sync_meters(meters(*SPECS, ids=False))
    assert [m.id for m in first] == [m.id for m in again]
    assert all(m.id > 0 for m in first)


def test_readings_round_trip_exactly_in_time_order(store: Store) -> None:
    ing = ingestor(store)
    huge = "3999999960.00"  # 999999.99 kWh behind a ratio of 4000: needs 64 bits in Wh
    result = ing.submit(
        [
            reading("B2", 2, huge, a_minus="0.001", r_plus="1.5", r_minus=None),
            reading("A1", 1, "2.000"),
            reading("A1", 0, "1.000"),
        ]
    )
    assert result.summary().accepted == 3
    b2 = ing.meters["B2"]
    [stored] = store.readings([b2.id])
    assert stored.values == {
        Channel.A_PLUS: 3_999_999_960_000,
        Channel.A_MINUS: 1,
        Channel.R_PLUS: 1500,
        Channel.R_MINUS: None,
    }
    assert stored.ts == T0 + timedelta(hours=2) and stored.ts.tzinfo is not None
    a1 = store.readings([ing.meters["A1"].id])
    assert [r.values[Channel.A_PLUS] for r in a1] == [1000, 2000]
    window = store.readings([ing.meters["A1"].id], start=T0 + timedelta(minutes=30))
    assert len(window) == 1


def test_context_has_each_channels_nearest_neighbours(store: Store) -> None:
    ing = ingestor(store)
    ing.submit(
        [
            reading("A1", 0, "1.0", r_plus="1.0"),
            reading("A1", 1, "2.0"),  # no R+
            reading("A1", 5, "6.0", r_plus="3.0"),
            reading("A1", 9, "9.0"),
            reading("A1", 10, "9.5", r_plus="4.0"),
        ]
    )
    meter_id = ing.meters["A1"].id
    context = store.load_context([ContextRequest(meter_id, 0, T0 + timedelta(hours=3), T0 + timedelta(hours=6))])
    hours = sorted(int((r.ts - T0).total_seconds() // 3600) for r in context[(meter_id, 0)])
    assert hours == [0, 1, 5, 9, 10]  # A+ before: 1; R+ before: 0; within: 5; A+ after: 9; R+ after: 10


def test_context_check_finds_each_change_of_a_batch_context_and_nothing_else(store: Store) -> None:
    # What a batch was judged against (`load_context`, without locks) is checked again under the
    # locks before it is written: only a store, replacement or deletion that changes that context
    # counts, and every such change does.
    ing = ingestor(store)
    ing.submit([reading("A1", 0, "1.0", r_plus="1.0"), reading("A1", 2, "3.0"), reading("A1", 8, "9.0", r_plus="5.0")])
    meter = ing.meters["A1"]
    key = (meter.id, 0)
    requests = [ContextRequest(meter.id, 0, T0 + timedelta(hours=4), T0 + timedelta(hours=5))]
    seen = store.load_context(requests)  # A+ before: 2 h; R+ before: 0 h; both after: 8 h

    def changed() -> set[tuple[int, int]]:
        with store.session() as session:
            found = session.changed(requests, seen)
        reloaded = store.load_context(requests)
        assert (found == {key}) == (_rows(reloaded) != _rows(seen))  # the check agrees with reloading
        return found

    assert changed() == set()
    ing.submit([reading("A1", 1, "2.0")])  # A+ only, before A+'s nearest and after R+'s: not in the context
    ing.submit([reading("A1", 9, "9.5")])  # after the next reading seen
    assert changed() == set()
    ing.submit([reading("A1", 1.5, "2.5", r_plus="1.5")])  # R+ nearer than the one seen
    assert changed() == {key}
    seen = store.load_context(requests)
    ing.submit([reading("A1", 4.5, "5.0")])  # inside the batch's range
    assert changed() == {key}
    seen = store.load_context(requests)
    ing.submit([reading("A1", 6, "6.0")])  # between the batch and the next reading seen
    assert changed() == {key}
    seen = store.load_context(requests)
    ing.submit([reading("A1", 2, "3.5")])  # refused (a conflict), then accepted against the rules
    [conflict] = store.rejected()
    store.override(conflict.id, meter, "dispatcher1", "replaced", NOW)
    assert changed() == {key}
    seen = store.load_context(requests)
    with store.engine.begin() as conn:  # another writer deletes the nearest reading after the batch
        conn.execute(delete(readings_table).where(readings_table.c.meter_id == meter.id,
                                              readings_table.c.ts == T0 + timedelta(hours=6)))
    assert changed() == {key}
    seen = store.load_context(requests)
    assert changed() == set()
    other = (ing.meters["B2"].id, 0)  # a series with nothing stored, then something stored
    empty = [ContextRequest(other[0], 0, T0, T0)]
    with store.session() as session:
        assert session.changed(empty, {}) == set()
    ing.submit([reading("B2", 100, "1.0")])
    with store.session() as session:
        assert session.changed(empty, {}) == {other}


def _rows(context: dict[tuple[int, int], list[StoredReading]]) -> set[tuple[object, ...]]:
    return {(r.ts, r.flags, r.received_at, *r.values.values()) for readings in context.values() for r in readings}


def test_bulk_ingest_judges_a_batch_again_when_another_writer_changed_its_series_meanwhile(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    ing = ingestor(store)
    other = Ingestor(store, list(ing.meters.values()), now=lambda: NOW)
    write = store.write
    interfered: list[Summary] = []

    def interfering(work: Callable[[Session], T], retries: int = 4) -> T:
        if not interfered:  # after the first batch was judged, before it is written
            interfered.append(Summary())
            interfered[0].add(other.submit([reading("A1", 2.5, "20.0")]))
        return write(work, retries)

    monkeypatch.setattr(store, "write", interfering)
    bulk = BulkIngest(ing, batch_size=4)
    summary = bulk.run([reading("A1", h, f"{10 + h}.0") for h in range(8)])

    assert interfered[0].accepted == 1
    assert bulk.rejudged >= 1
    # judged again under the locks: 3 h onwards is lower than the other writer's 20 kWh at 2.5 h
    assert summary.accepted == 3 and summary.rejected == {"lower_than_previous": 5}
    stored = store.readings([ing.meters["A1"].id])
    assert [(r.ts - T0, r.values[Channel.A_PLUS]) for r in stored] == [
        (timedelta(hours=0), 10_000),
        (timedelta(hours=1), 11_000),
        (timedelta(hours=2), 12_000),
        (timedelta(hours=2.5), 20_000),
    ]


def test_refused_readings_are_kept_once_with_reason_and_payload(store: Store) -> None:
    ing = ingestor(store)
    ing.submit([reading("A1", 0, "10.0")])
    bad = [reading("A1", 1, "9.0"), reading("ZZ", 1, "1.0")]
    ing.submit(bad)
    ing.submit(bad)  # re-import: refused again, kept once
    records = store.rejected()
    assert sorted(r.reasons for r in records) == [("lower_than_previous",), ("unknown_meter",)]
    lower = next(r for r in records if r.meter_serial == "A1")
    assert lower.values[Channel.A_PLUS] == 9000
    assert lower.payload == {"test": True}
    assert "10.000 kWh" in lower.message
    assert lower.status == "open"


def test_override_is_audited_and_replaces_a_conflicting_reading(store: Store) -> None:
    ing = ingestor(store)
    ing.submit([reading("A1", 0, "10.0")])
    ing.submit([reading("A1", 0, "10.5")])
    [conflict] = store.rejected()
    assert conflict.reasons == ("conflict",)
    meter = ing.meters["A1"]
    when = datetime(2026, 6, 1, 12, tzinfo=UTC)
    store.override(conflict.id, meter, "dispatcher1", "meter photo confirms 10.5", when)
    [stored] = store.readings([meter.id])
    assert stored.values[Channel.A_PLUS] == 10_500
    assert stored.flags & Flag.OVERRIDDEN
    assert store.rejected() == []
    assert store.get_rejected(conflict.id).status == "accepted"
    [audit] = store.audit_log()
    assert audit["actor"] == "dispatcher1"
    assert audit["reason"] == "meter photo confirms 10.5"
    assert audit["details"]["replaced"]["a_plus"] == 10_000


def test_rollover_flag_moves_when_a_late_reading_arrives(store: Store) -> None:
    ing = ingestor(store)
    ing.submit([reading("A1", 0, "999998.0"), reading("A1", 20, "3.0")])
    ing.submit([reading("A1", 10, "1.0")])
    flags = [r.flags for r in store.readings([ing.meters["A1"].id])]
    assert flags == [0, int(Flag.ROLLOVER), 0]


def test_bulk_batch(store: Store) -> None:
    ing = ingestor(store)
    batch = [reading("A1", h / 2, f"{h}.0") for h in range(5000)]
    result = ing.submit(batch)
    assert result.summary().accepted == 5000
    assert len(store.readings([ing.meters["A1"].id])) == 5000


def test_bulk_ingest_across_batches_agrees_with_judging_batch_by_batch(store: Store) -> None:
    # BulkIngest judges a batch against its in-memory tails of the series, not the store: the
    # verdicts and what is stored must be those of judging each batch against everything before.
    ing = ingestor(store)
    stream = []
    a_plus, r_plus = 100.0, 50.0
    for step in range(80):
        hour = step / 2
        a_plus, r_plus = a_plus + 1.5, r_plus + 0.5
        if step % 13 == 6:
            stream.append(reading("A1", hour, f"{a_plus - 40:.1f}", r_plus=f"{r_plus:.1f}"))  # A+ went back
        elif step % 5 == 0:
            stream.append(reading("A1", hour, f"{a_plus:.1f}"))  # no R+: R+'s newest stays an older reading
        elif step % 5 == 1 and step % 2:
            stream.append(reading("A1", hour, f"{a_plus:.1f}", r_plus=f"{r_plus - 2:.1f}"))  # below that R+
        else:
            stream.append(reading("A1", hour, f"{a_plus:.1f}", r_plus=f"{r_plus:.1f}"))
        stream.append(reading("B2", hour, f"{a_plus:.1f}", tariff=step % 3))
    stream.insert(100, reading("A1", 10.25, "116.0", r_plus="55.2"))  # a back-fill between stored readings
    stream.insert(130, reading("A1", 4.0, "110.0"))  # an existing time with another value: conflict

    expected, loader = Summary(), MemoryLoader()
    pipeline = Pipeline(ing.meters, loader, ing.clock_tolerance, ing.now)
    for offset in range(0, len(stream), 7):
        result = pipeline.run(stream[offset : offset + 7])
        loader.apply(result)
        expected.add(result)
    bulk = BulkIngest(ing, batch_size=7)
    summary = bulk.run(stream)

    assert bulk.rejudged == 0  # nobody else wrote: the check under the locks finds every batch's context as seen
    assert summary.as_dict() == expected.as_dict()
    assert summary.rejected["lower_than_previous"] >= 10 and summary.rejected["conflict"] == 1
    for serial in ("A1", "B2"):
        meter_id = ing.meters[serial].id
        for tariff in range(3):
            stored = [(r.ts, r.values, r.flags) for r in store.readings([meter_id], tariff=tariff)]
            assert stored == [(r.ts, r.values, r.flags) for r in loader.series(meter_id, tariff)]


def test_daily_consumption_from_the_store_in_the_site_zone(store: Store) -> None:
    ing = ingestor(store)
    moscow_midnight = datetime(2026, 1, 1, 21, tzinfo=UTC)  # 2026-01-02 00:00 MSK
    batch = [reading("A1", moscow_midnight + timedelta(minutes=30 * i), f"{i}.5") for i in range(0, 97)]
    ing.submit(batch)
    meter = ing.meters["A1"]
    from zoneinfo import ZoneInfo

    edges = boundaries(moscow_midnight, moscow_midnight + timedelta(days=2), Step.DAY, ZoneInfo("Europe/Moscow"))
    series = [(meter, store.readings([meter.id], edges[0], edges[-1], 0))]
    buckets = consumption(series, Channel.A_PLUS, edges)
    assert [b.value for b in buckets] == [48_000, 48_000]
    assert all(b.complete for b in buckets)


@pytest.mark.parametrize("count", [3])
def test_tariffs_are_stored_separately(store: Store, count: int) -> None:
    ing = ingestor(store)
    ing.submit([reading("B2", 1, "5.0", tariff=t) for t in range(count)])
    assert sorted(r.tariff for r in store.readings([ing.meters["B2"].id])) == [0, 1, 2]


@pytest.mark.parametrize("step", [Step.HALF_HOUR, Step.DAY, Step.MONTH])
def test_consumption_series_agrees_with_every_reading(store: Store, step: Step) -> None:
    from zoneinfo import ZoneInfo

    ing = ingestor(store, {"serial": "W", "digits": 4, "decimals": 2, "max_power_kw": 50})
    meter = ing.meters["W"]
    start = datetime(2026, 1, 30, 21, tzinfo=UTC)  # 2026-01-31 00:00 Moscow
    values, level = [], 9000.0
    for i in range(4 * 48 + 1):  # four days, half-hourly; the 10000 kWh register wraps on the way
        level = (level + 12.5 + (i % 7)) % 10000
        values.append(reading("W", start + timedelta(minutes=30 * i), f"{level:.2f}"))
    assert ing.submit(values).summary().accepted == len(values)
    edges = boundaries(start, start + timedelta(days=4), step, ZoneInfo("Europe/Moscow"))
    raw = consumption([(meter, store.readings([meter.id], edges[0], edges[-1], 0))], Channel.A_PLUS, edges)
    sampled = consumption(
        [(meter, store.consumption_series(meter, 0, step, edges[0], edges[-1]))], Channel.A_PLUS, edges
    )
    assert [(b.value, b.gaps) for b in sampled] == [(b.value, b.gaps) for b in raw]
    assert sum(1 for r in store.readings([meter.id]) if r.flags & Flag.ROLLOVER) == 1
    assert sum(b.value or 0 for b in raw) == sum(int((12.5 + i % 7) * 1000) for i in range(1, 4 * 48 + 1))


@pytest.mark.timescale
def test_timescale_objects(timescale_store: Store) -> None:
    from sqlalchemy import text

    assert timescale_store.timescale and not timescale_store.use_copy  # COPY kills PGlite: batched INSERT
    with timescale_store.engine.connect() as conn:
        hypertables = conn.execute(text("SELECT hypertable_name FROM timescaledb_information.hypertables")).scalars()
        views = conn.execute(text("SELECT view_name FROM timescaledb_information.continuous_aggregates")).scalars()
        jobs = conn.execute(text("SELECT proc_name FROM timescaledb_information.jobs")).scalars().all()
        assert sorted(hypertables) == ["intervals", "readings"]
        assert sorted(views) == ["readings_30min", "readings_daily", "readings_monthly"]
        assert jobs.count("policy_compression") == 2 and jobs.count("policy_refresh_continuous_aggregate") == 3


def test_preview_answers_previous_and_consumption_and_stores_nothing(store: Store) -> None:
    ing = ingestor(store)
    ing.submit([reading("A1", 0, "100.0")])
    [ok] = ing.preview([reading("A1", 24, "112.5")]).outcomes
    assert ok.status == "accepted" and ok.consumption[Channel.A_PLUS] == 12_500
    assert ok.previous[Channel.A_PLUS].values[Channel.A_PLUS] == 100_000
    [lower] = ing.preview([reading("A1", 24, "99.0")]).outcomes
    assert lower.reasons == (Reason.LOWER_THAN_PREVIOUS,) and "100.000 kWh" in lower.message
    assert len(store.readings([ing.meters["A1"].id])) == 1 and store.rejected() == []
