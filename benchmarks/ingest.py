"""Validated ingest into PostgreSQL against a plain binary COPY of the same rows.

1,000,000 readings from 2,000 meters (500 half-hourly readings each, four channels),
with known bad readings injected. Prints:

* ingest ratio = COPY time / validated ingest time (goal >= 0.5). Both start from the rows in
  memory in their own input form: COPY from tuples, the ingest from `IncomingReading` objects
  (what the CSV parser or a driver hands over), built before the clock starts. A diagnostic
  line repeats the ingest with every reading built from its tuple during the run;
* validation ratio = naive per-reading SELECT validation time / pipeline time: the next
  readings of every meter judged (context query, every rule, verdicts) without writing,
  against one prepared SELECT of the previous reading per reading and a comparison (the
  naive one measured on a sample and scaled; the pipeline's time the median of 5 rounds;
  goal >= 50). Both get their input ready-made;
  ``Pipeline.run`` includes its store query;
* that exactly the injected readings were refused;
* peak memory (RSS) of the ingest: the peak, and how much the ingest added to what the
  benchmark held before it.
"""

from __future__ import annotations

import gc
import random
import resource
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg

from amr.config import config_from_dict
from amr.core.domain import CHANNELS, IncomingReading, Source
from amr.ingest.bulk import BulkIngest
from amr.ingest.ingestor import Ingestor
from amr.store import Store
from amr.validation import Pipeline
from benchmarks.databases import copy_readings, fresh_database, url

START = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 1, tzinfo=UTC)
Row = tuple[int, datetime, int, int, int, int]
VALIDATION_ROUNDS = 5  # the validation stage is short: its median over rounds, on a noisy machine


def make_rows(meters: int, per_meter: int, seed: int = 7) -> tuple[list[Row], int]:
    """Readings as compact tuples (meter index, ts, A+, A-, R+, R-) in Wh, time-major; and the bad count."""
    rng = random.Random(seed)
    levels = [[rng.randrange(0, 50_000_000) for _ in range(4)] for _ in range(meters)]
    rows: list[Row] = []
    bad = 0
    for step in range(per_meter):
        ts = START + timedelta(minutes=30 * step)
        for m in range(meters):
            level = levels[m]
            level[0] += rng.randrange(0, 2000)
            level[1] += rng.randrange(0, 200)
            level[2] += rng.randrange(0, 800)
            level[3] += rng.randrange(0, 100)
            if step > 0 and rng.random() < 0.001:  # injected: lower than the previous reading
                rows.append((m, ts, level[0] - 5000, level[1], level[2], level[3]))
                bad += 1
                continue
            rows.append((m, ts, level[0], level[1], level[2], level[3]))
    return rows, bad


def _bad_in(fresh: list[Row], stored: list[Row], meters: int) -> int:
    """How many of `fresh` are lower than the previous good reading of their meter (the injected ones)."""
    last: dict[int, tuple[int, int, int, int]] = {}
    for m, _, ap, am, rp, rm in stored:
        if m not in last or ap >= last[m][0]:
            last[m] = (ap, am, rp, rm)
    bad = 0
    for m, _, ap, am, rp, rm in fresh:
        if any(v < p for v, p in zip((ap, am, rp, rm), last[m], strict=True)):
            bad += 1
        else:
            last[m] = (ap, am, rp, rm)
    return bad


def _serial(m: int) -> str:
    return f"BM{m:06d}"


def incoming(rows: list[Row]) -> Iterator[IncomingReading]:
    """The rows as the pipeline receives them from a driver or a CSV parser."""
    a_plus, a_minus, r_plus, r_minus = CHANNELS
    serials = [_serial(m) for m in range(max(r[0] for r in rows) + 1)] if rows else []
    for m, ts, ap, am, rp, rm in rows:
        yield IncomingReading(
            serials[m],
            ts,
            0,
            {a_plus: ap, a_minus: am, r_plus: rp, r_minus: rm},
            Source.MODBUS,
            received_at=NOW,
        )


def _open(name: str, meters: int) -> tuple[Store, Ingestor]:
    config = config_from_dict(
        {
            "database": {"url": url(name)},
            "meters": [{"serial": _serial(m), "digits": 8, "decimals": 2} for m in range(meters)],
        },
        environ={},
    )
    store = Store.open(config.database, "Europe/Moscow")
    synced = store.sync_meters(config.meter_objects())
    return store, Ingestor(store, synced, now=lambda: NOW)


def baseline_copy(name: str, rows: list[Row], ids: dict[str, int]) -> float:
    """Plain binary COPY of the same rows into the same table with the same keys."""
    with psycopg.connect(url(name)) as conn:
        started = time.perf_counter()
        copy_readings(
            conn, ((ids[_serial(m)], 0, ts, ap, am, rp, rm, "askue:modbus", 0, NOW) for m, ts, ap, am, rp, rm in rows)
        )
        conn.commit()
        return time.perf_counter() - started


def naive_validation(name: str, rows: list[Row], ids: dict[str, int]) -> tuple[float, int]:
    """One prepared SELECT of the previous reading per incoming reading, then the comparison."""
    refused = 0
    query = (
        "SELECT a_plus, a_minus, r_plus, r_minus FROM readings WHERE meter_id = %s AND tariff = 0 "
        "AND ts < %s ORDER BY ts DESC LIMIT 1"
    )
    with psycopg.connect(url(name)) as conn, conn.cursor() as cur:
        started = time.perf_counter()
        for m, ts, ap, am, rp, rm in rows:
            prev = cur.execute(query, (ids[_serial(m)], ts), prepare=True).fetchone()
            if prev is not None and any(v < p for v, p in zip((ap, am, rp, rm), prev, strict=True)):
                refused += 1
        return time.perf_counter() - started, refused


def _rss_mib() -> float:
    """Peak resident set size of this process so far, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _on_the_fly(rows: list[Row], meters: int, batch: int, copy_time: float) -> None:
    """Diagnostic: the same ingest into a fresh database, each reading built from its tuple as it is read."""
    with fresh_database() as name:
        store, ingestor = _open(name, meters)
        started = time.perf_counter()
        BulkIngest(ingestor, batch).run(incoming(rows))
        seconds = time.perf_counter() - started
        store.close()
    print(
        f"  diagnostic, not the figure: readings built during the ingest {seconds:8.2f} s "
        f"(COPY / that {copy_time / seconds:.2f})"
    )


def run(quick: bool = False) -> None:
    meters, per_meter = (200, 100) if quick else (2000, 500)
    batch = 50_000
    rows, bad = make_rows(meters, per_meter)
    gc.collect()
    gc.freeze()  # the benchmark's own million rows are not the ingest's garbage to scan
    print(f"ingest benchmark: {len(rows):,} readings from {meters:,} meters, {bad} injected bad readings")

    with fresh_database() as copy_db, fresh_database() as ingest_db:
        store, ingestor = _open(copy_db, meters)
        ids = {s: m.id for s, m in ingestor.meters.items()}
        store.close()
        copy_time = baseline_copy(copy_db, rows, ids)
        print(f"  baseline binary COPY          {copy_time:8.2f} s  ({len(rows) / copy_time:,.0f} rows/s)")

        store, ingestor = _open(ingest_db, meters)
        readings = list(incoming(rows))  # what a parser or a driver hands over, as COPY gets its rows ready
        gc.collect()
        gc.freeze()
        rss_before = _rss_mib()
        started = time.perf_counter()
        summary = BulkIngest(ingestor, batch).run(readings)
        ingest_time = time.perf_counter() - started
        rss_peak = _rss_mib()
        del readings
        print(
            f"  validated ingest              {ingest_time:8.2f} s  ({len(rows) / ingest_time:,.0f} rows/s)"
        )
        print(f"  ingest ratio (COPY / ingest)  {copy_time / ingest_time:8.2f}   goal >= 0.5")
        print(
            f"  refused {summary.refused} of {bad} injected; exact: "
            f"{summary.refused == bad and summary.rejected.get('lower_than_previous') == bad}"
        )
        print(
            f"  peak RSS {rss_peak:,.0f} MiB: the ingest itself took {rss_peak - rss_before:,.0f} MiB more than the "
            f"{rss_before:,.0f} MiB held before it (the benchmark's rows and readings)"
        )
        if not quick:
            _on_the_fly(rows, meters, batch, copy_time)

        # The validation stage alone: the next readings of every meter, judged without writing.
        steps = 10 if quick else 50
        fresh, fresh_bad = make_rows(meters, per_meter + steps, seed=7)
        fresh = fresh[len(rows) :] if len(fresh) > len(rows) else fresh
        fresh = [r for r in fresh if r[1] >= START + timedelta(minutes=30 * per_meter)]
        fresh.sort(key=lambda r: (r[0], r[1]))  # meter by meter: each batch holds whole runs of its meters
        fresh_bad = _bad_in(fresh, rows, meters)
        pipeline = Pipeline(ingestor.meters, store, now=lambda: NOW)
        # built before the clock starts, as the naive baseline gets its rows ready-made
        batches = [list(incoming(fresh[offset : offset + batch])) for offset in range(0, len(fresh), batch)]
        times, refused = [], 0
        for _ in range(VALIDATION_ROUNDS):  # judging writes nothing: every round sees the same store
            started = time.perf_counter()
            refused = sum(len(pipeline.run(readings).rejected) for readings in batches)
            times.append(time.perf_counter() - started)
        pipeline_time = statistics.median(times)
        sample = fresh[:: max(1, len(fresh) // 5000)]
        naive_time, _ = naive_validation(ingest_db, sample, {s: m.id for s, m in ingestor.meters.items()})
        naive_scaled = naive_time * len(fresh) / len(sample)
        print(
            f"  validation stage: pipeline    {pipeline_time:8.2f} s for {len(fresh):,} new readings "
            f"({len(fresh) / pipeline_time:,.0f}/s; median of {VALIDATION_ROUNDS} rounds, "
            f"{min(times):.2f}..{max(times):.2f} s), refused {refused} of {fresh_bad} injected"
        )
        print(
            f"  validation stage: naive       {naive_scaled:8.2f} s (one prepared SELECT per reading; "
            f"{len(sample):,} measured, scaled)"
        )
        print(f"  validation ratio (naive / pipeline) {naive_scaled / pipeline_time:8.1f}   goal >= 50")
        store.close()
