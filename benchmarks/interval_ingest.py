"""Interval ingest into PostgreSQL through `Store.write_intervals` against a plain binary COPY.

10,000,000 interval values (``--rows`` for fewer): 2,000 meters' half-hour profile of four
channels, meter by meter as profile readers deliver it, in batches of 50,000 values (ten
meters' stretch of profile). Each batch is written twice, alternately: through the store API
(series locks, the look-up of what is stored, the verdicts, binary COPY, one transaction) into
`intervals`, and by a plain binary COPY of the same rows in one transaction into a table of the
same shape (`LIKE intervals INCLUDING ALL`: the same primary key). Both get their input built
before their clock starts: `IntervalValue` objects for the API, tuples for COPY. Alternating
spreads a loaded machine's noise over both. Prints:

* ratio = COPY time / API time over all batches (goal >= 0.5), and the range of the ratio over
  tenths of the run;
* that every value was accepted and every row is stored;
* peak memory (RSS) of the process.
"""

from __future__ import annotations

import gc
import resource
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg

from amr.config import config_from_dict
from amr.core.domain import CHANNELS
from amr.core.intervals import IntervalSource, IntervalStatus, IntervalValue
from amr.store import Store
from amr.store.intervals import CHANNEL_CODE, INTERVAL_COLUMNS, INTERVALS_COPY_TYPES
from benchmarks.databases import fresh_database, url

START = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 1, tzinfo=UTC)
HALF = timedelta(minutes=30)
ROWS = 10_000_000
METERS = 2_000
BATCH = 50_000
COPY_SQL = f"COPY intervals_copy ({', '.join(INTERVAL_COLUMNS)}) FROM STDIN (FORMAT BINARY)"


def _serial(m: int) -> str:
    return f"IV{m:06d}"


def batches(rows: int, meters: int) -> Iterator[list[tuple[int, int, int, int]]]:
    """Batches of (meter, channel index, slot, Wh), meter by meter, all channels of each slot."""
    per_meter = rows // meters
    slots = per_meter // len(CHANNELS)
    batch: list[tuple[int, int, int, int]] = []
    for m in range(meters):
        for slot in range(slots):
            for c in range(len(CHANNELS)):
                batch.append((m, c, slot, (m * 7 + slot * 13 + c * 101) % 5000))
                if len(batch) == BATCH:
                    yield batch
                    batch = []
    if batch:
        yield batch


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(quick: bool = False, rows: int | None = None) -> None:
    total = rows or (200_000 if quick else ROWS)
    meters = max(1, min(METERS, total // 5000))
    total = (total // meters // len(CHANNELS)) * meters * len(CHANNELS)
    print(f"interval ingest benchmark: {total:,} interval values of {meters:,} meters, batches of {BATCH:,}")
    with fresh_database() as name:
        config = config_from_dict(
            {"database": {"url": url(name)}, "meters": [{"serial": _serial(m)} for m in range(meters)]}, environ={}
        )
        store = Store.open(config.database, "Europe/Moscow")
        ids = {m.serial: m.id for m in store.sync_meters(config.meter_objects())}
        with psycopg.connect(url(name)) as conn:
            conn.execute("CREATE TABLE intervals_copy (LIKE intervals INCLUDING ALL)")
            conn.commit()
            api_times: list[float] = []
            copy_times: list[float] = []
            starts = [START + slot * HALF for slot in range(total // meters // len(CHANNELS))]
            serials = [_serial(m) for m in range(meters)]
            codes = [CHANNEL_CODE[c] for c in CHANNELS]
            accepted = 0
            for batch in batches(total, meters):
                values = [
                    IntervalValue(
                        serials[m],
                        CHANNELS[c],
                        starts[s],
                        HALF,
                        wh,
                        IntervalStatus.MEASURED,
                        IntervalSource.PROFILE,
                        NOW,
                    )
                    for m, c, s, wh in batch
                ]
                tuples = [
                    (ids[serials[m]], codes[c], starts[s], 1800, wh, "measured", "profile", None, 0, NOW)
                    for m, c, s, wh in batch
                ]
                gc.collect()
                began = time.perf_counter()
                result = store.write_intervals(values, now=NOW)
                api_times.append(time.perf_counter() - began)
                accepted += result.accepted
                del values
                began = time.perf_counter()
                with conn.cursor() as cur, cur.copy(COPY_SQL) as copy:
                    copy.set_types(list(INTERVALS_COPY_TYPES))
                    for row in tuples:
                        copy.write_row(row)
                conn.commit()
                copy_times.append(time.perf_counter() - began)
                del tuples
            stored = conn.execute("SELECT count(*) FROM intervals").fetchone()
        store.close()
    api, copied = sum(api_times), sum(copy_times)
    tenth = max(1, len(api_times) // 10)
    ratios = [sum(copy_times[i : i + tenth]) / sum(api_times[i : i + tenth]) for i in range(0, len(api_times), tenth)]
    print(f"  baseline binary COPY      {copied:8.2f} s  ({total / copied:,.0f} values/s)")
    print(f"  Store.write_intervals     {api:8.2f} s  ({total / api:,.0f} values/s)")
    print(
        f"  ratio (COPY / API)        {copied / api:8.2f}   goal >= 0.5; over tenths of the run "
        f"{min(ratios):.2f}..{max(ratios):.2f}"
    )
    print(f"  accepted {accepted:,} of {total:,}; stored {stored[0] if stored else 0:,}")
    print(f"  peak RSS {_rss_mib():,.0f} MiB (batches are built and dropped one at a time)")
