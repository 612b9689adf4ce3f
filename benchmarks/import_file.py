"""`amr import` of a CSV file end to end against psql's ``\\copy`` of the same file.

Generates a CSV of 500,000 rows over 2,000 meters (A+ and R+, half-hourly) in two orders:
by meter (each meter's readings, then the next meter's) and by time (every meter at 00:30,
then at 01:00, ...: how АСКУЭ exports usually come), and a configuration of those meters.
For each order, repeated:

* baseline: ``psql -c "\\copy ... FROM file WITH (FORMAT csv, HEADER)"`` into a fresh table of
  the file's shape keyed like the store's readings (meter, tariff, timestamp);
* ``amr import -c amr.toml FILE --json`` as a process, start-up included (configuration, store,
  parsing, validation, writing), on a database in use: migrated and holding the meters, as every
  import after a site's first finds it (an import of the CSV's header alone, untimed, prepares it);
  and the first import ever, on a fresh database (migrations and meter sync included), as well;

and prints the ratio copy time / import time (goal >= 0.3) with its range (each ratio of one
repetition: the two measured one after the other), the import's CPU time (user + system: the
machine may be busy with other work) and its peak RSS. Sizes: ``AMR_BENCH_IMPORT_ROWS`` (default 500,000; 50,000 with
``--quick``), ``AMR_BENCH_IMPORT_METERS`` (2,000; 500 with ``--quick``),
``AMR_BENCH_IMPORT_REPEAT`` (3; 1 with ``--quick``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import psycopg

from benchmarks.databases import fresh_database, url

HEADER = "meter,timestamp,tariff,a_plus,a_minus,r_plus,r_minus\n"
START = datetime(2026, 1, 1, tzinfo=UTC)
BASELINE_TABLE = """CREATE TABLE csv_readings (
    meter text NOT NULL, ts timestamptz NOT NULL, tariff smallint NOT NULL,
    a_plus numeric, a_minus numeric, r_plus numeric, r_minus numeric,
    PRIMARY KEY (meter, tariff, ts))"""


def _serial(index: int) -> str:
    return f"{1_000_000 + index}"


def write_config(path: Path, meters: int, database_url: str) -> None:
    """A configuration of `meters` meters (8 digits, 3 decimals, CT 40 on every other one)."""
    with path.open("w", encoding="utf-8") as out:
        out.write(f'[database]\nurl = "{database_url}"\n\n[site]\ntimezone = "Europe/Moscow"\n')
        for i in range(meters):
            out.write(
                f'\n[[meters]]\nserial = "{_serial(i)}"\nobject = "house {i // 50}"\npoint = "kv{i}"\n'
                f"digits = 8\ndecimals = 3\nct_ratio = {40 if i % 2 else 1}\n"
            )


def write_csv(path: Path, rows: int, meters: int, by_time: bool) -> None:
    """`rows` readings, half-hourly, increasing per meter; by time or by meter."""
    steps = rows // meters
    moscow = timezone(timedelta(hours=3))
    stamps = [(START + timedelta(minutes=30 * s)).astimezone(moscow).isoformat() for s in range(steps)]
    order = (
        ((m, s) for s in range(steps) for m in range(meters))
        if by_time
        else ((m, s) for m in range(meters) for s in range(steps))
    )
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(HEADER)
        out.writelines(
            f"{_serial(m)},{stamps[s]},0,{1000 + m + s * 1.25:.3f},,{200 + m + s * 0.5:.3f},\n" for m, s in order
        )


def copy_seconds(csv_path: Path) -> float:
    """psql's \\copy of the file into a fresh keyed table, timed as a process."""
    with fresh_database() as name:
        with psycopg.connect(url(name), autocommit=True) as conn:
            conn.execute(BASELINE_TABLE)
        started = time.perf_counter()
        subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url(name), "-c",
             f"\\copy csv_readings (meter, ts, tariff, a_plus, a_minus, r_plus, r_minus) "
             f"FROM '{csv_path}' WITH (FORMAT csv, HEADER)"],
            check=True,
        )
        return time.perf_counter() - started


def import_run(
    csv_path: Path, config_path: Path, meters: int, rows: int, *, first: bool = False
) -> tuple[float, int, float]:
    """`amr import` as a process on a database in use (`first`: a fresh one): its wall seconds, peak RSS
    (KiB) and CPU seconds (user + system)."""
    with fresh_database() as name, tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        write_config(config_path, meters, url(name))
        if not first:
            header = csv_path.with_suffix(".header.csv")
            with csv_path.open() as source:
                header.write_text(source.readline())
            subprocess.run([sys.executable, "-m", "amr", "import", "-c", str(config_path), str(header), "--json"],
                           check=True, stdout=subprocess.DEVNULL)
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "amr", "import", "-c", str(config_path), str(csv_path), "--json"],
            stdout=out,
            stderr=err,
        )
        _, status, usage = os.wait4(proc.pid, 0)  # the child's own rusage: its peak RSS
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"amr import failed: {err.read()}")
        summary = json.loads(out.read())
        if summary["accepted"] != rows:
            raise RuntimeError(f"expected {rows} accepted, got {summary}")
    return seconds, usage.ru_maxrss, usage.ru_utime + usage.ru_stime


def run(quick: bool = False) -> None:
    """Print copy/import ratios for a file by meter and one by time."""
    rows = int(os.environ.get("AMR_BENCH_IMPORT_ROWS", 50_000 if quick else 500_000))
    meters = int(os.environ.get("AMR_BENCH_IMPORT_METERS", 500 if quick else 2_000))
    repeat = int(os.environ.get("AMR_BENCH_IMPORT_REPEAT", 1 if quick else 3))
    if shutil.which("psql") is None:
        raise SystemExit("the import benchmark needs psql (apt-get install postgresql-client)")
    rows -= rows % meters
    print(f"import: {rows:,} rows over {meters:,} meters, {repeat} run(s) of each")
    with tempfile.TemporaryDirectory(prefix="amr-bench-import-") as folder:
        base = Path(folder)
        config_path = base / "amr.toml"
        for by_time in (False, True):
            order = "by time" if by_time else "by meter"
            csv_path = base / f"readings-{order.replace(' ', '-')}.csv"
            write_csv(csv_path, rows, meters, by_time)
            copies, imports, peaks, cpus, firsts = [], [], [], [], []
            for _ in range(repeat):
                copies.append(copy_seconds(csv_path))
                seconds, peak, cpu = import_run(csv_path, config_path, meters, rows)
                imports.append(seconds)
                peaks.append(peak)
                cpus.append(cpu)
                firsts.append(import_run(csv_path, config_path, meters, rows, first=True)[0])
            ratios = [c / i for c, i in zip(copies, imports, strict=True)]
            first_ratios = [c / i for c, i in zip(copies, firsts, strict=True)]
            print(
                f"  {order:<9} copy/import {min(ratios):.2f}–{max(ratios):.2f} (goal >= 0.3): "
                f"\\copy {min(copies):.2f}–{max(copies):.2f} s, amr import {min(imports):.2f}–{max(imports):.2f} s "
                f"({rows / min(imports):,.0f} rows/s), CPU {min(cpus):.2f}–{max(cpus):.2f} s; "
                f"import peak RSS {max(peaks) / 1024:.0f} MiB; first import on a fresh database "
                f"{min(firsts):.2f}–{max(firsts):.2f} s (copy/import {min(first_ratios):.2f}–{max(first_ratios):.2f})"
            )
