"""Back-fill efficiency: 3 days of missed profile for 200 Mercury 230 meters on 10 RS-485 lines at
9600 baud, against the frame-time limit of those reads.

Two simulator processes serve 5 ptys each (the line-time sleeps of 10 busy lines would otherwise
share one event loop); every line carries `METERS_PER_LINE` Mercury 230 meters whose profile
memory (`simulators.profile_memory`) runs from 4 days back. `amr backfill`'s engine
(`amr.collector.backfill_command.run`: buses at once, one meter after another on a bus, chunks of
``[backfill] chunk``, every chunk written as intervals into an SQLite store before the next)
reads the last `DAYS` days (``[backfill] first``) of every meter.

The limit is what the records alone take on the wire: each record is one request of 8 bytes and
one answer of 18 (10 bits a character, 8N1) with the 3.5-character gap (11 bits a character)
before each frame: (8 + 18) × 10 / 9600 + 2 × 4.01 ms = 35.10 ms a record. A line's limit is its
records × that; the lines run at once, so the run's limit is the busiest line's. The measured
time includes everything else: opening each meter's channel, the variant and the last-record
request of every chunk, decoding, the interval writes, the state. Ratio = limit / measured
(goal >= 0.7). The baselines measured in the same run are bare pyserial loops reading records
with nothing else: on one line alone (the practical ceiling the simulator allows), and on all
lines at once (what the machine allows at that moment: on a machine shared with other work the
simulators' line-time sleeps stretch, and so does every figure here).
Each back-fill runs twice on fresh stores; the range of the two is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import serial

from amr.app import App
from amr.collector.backfill_command import run as backfill
from amr.config import Config, config_from_dict
from amr.drivers.serial_line import frame_time, rtu_gap
from amr.protocols import mercury230 as merc
from amr.protocols import mercury230_profile as prof
from benchmarks.children import end, readline
from simulators.model import VirtualMeter
from simulators.profile_memory import ProfileMemory
from simulators.serial_meters import MercurySimulator

ROOT = Path(__file__).resolve().parents[1]
BAUD = 9600
LINES = 10
METERS_PER_LINE = 20
PROCESSES = 2
DAYS = 3
SIM_LIFETIME = 1800.0


def serial_of(line: int, n: int) -> str:
    return f"{41_000_000 + line * 100 + n:08d}"


def record_limit() -> float:
    """Seconds one record read takes on the wire: both frames and a gap before each."""
    return frame_time(prof.READ_REQUEST_LENGTH + prof.RECORD_LENGTH + 3, BAUD) + 2 * rtu_gap(BAUD)


# --- the simulator processes -----------------------------------------------------------------------


async def _serve(lines: list[int], meters: int) -> None:
    now = datetime.now(UTC)
    sims = []
    for line in lines:
        virtual = [
            VirtualMeter(serial_of(line, n), address=n + 1, start=now - timedelta(days=DAYS + 1))
            for n in range(meters)
        ]
        profiles = {m.serial: ProfileMemory(m, start=now - timedelta(days=DAYS + 1)) for m in virtual}
        sim = MercurySimulator(virtual, profiles=profiles, baudrate=BAUD)
        await sim.start()
        sims.append(sim)
    print(json.dumps({"urls": [s.url for s in sims]}), flush=True)
    line = asyncio.ensure_future(asyncio.to_thread(sys.stdin.readline))
    await asyncio.wait({line}, timeout=SIM_LIFETIME)  # the benchmark closes stdin when done
    for sim in sims:
        await sim.stop()
    os._exit(0)  # the thread reading stdin may still be blocked


class Simulators:
    """`PROCESSES` simulator processes; `urls` the ptys of all lines."""

    def __init__(self, lines: int, meters: int) -> None:
        self.lines, self.meters = lines, meters
        self.procs: list[subprocess.Popen[str]] = []
        self.urls: list[str] = []

    def __enter__(self) -> Simulators:
        try:
            for part in range(min(PROCESSES, self.lines)):
                mine = [line for line in range(self.lines) if line % PROCESSES == part]
                proc = subprocess.Popen(
                    [sys.executable, "-m", "benchmarks.backfill", "--serve", *map(str, mine),
                     "--meters", str(self.meters)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                )  # fmt: skip
                self.procs.append(proc)
            found: dict[int, str] = {}
            for part, proc in enumerate(self.procs):
                assert proc.stdout is not None
                urls = json.loads(_readline(proc.stdout, 60.0))["urls"]
                mine = [line for line in range(self.lines) if line % PROCESSES == part]
                found.update(zip(mine, urls, strict=True))
            self.urls = [found[line] for line in range(self.lines)]
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        end(self.procs)


def _readline(stream: IO[str], timeout: float) -> str:
    return readline(stream, timeout, "the simulator process did not answer")


# --- the baseline: a bare loop ---------------------------------------------------------------------


def bare_loop(url: str, records: int) -> float:
    """Seconds to read `records` records of meter 1 straight after one another, keeping the gap."""
    answer_size = prof.RECORD_LENGTH + 3
    gap = rtu_gap(BAUD)
    with serial.serial_for_url(url, baudrate=BAUD, timeout=1.0) as port:
        port.write(merc.encode_open_request(1))
        port.read(merc.STATUS_ANSWER_LENGTH)
        idle = time.perf_counter()
        started = idle
        for n in range(records):
            time.sleep(max(0.0, idle + gap - time.perf_counter()))
            port.write(prof.encode_read_request(1, (n * prof.RECORD_STEP) % prof.MEMORY_SIZE))
            answer = port.read(answer_size)
            idle = time.perf_counter()
            if len(answer) != answer_size:
                raise RuntimeError(f"record {n}: {len(answer)} bytes")
        return time.perf_counter() - started


def bare_lines(urls: list[str], records: int) -> float:
    """Seconds for bare loops on every line at once (one thread a line), `records` records each."""
    from concurrent.futures import ThreadPoolExecutor

    started = time.perf_counter()
    with ThreadPoolExecutor(len(urls)) as pool:
        list(pool.map(lambda url: bare_loop(url, records), urls))
    return time.perf_counter() - started


# --- the back-fill ----------------------------------------------------------------------------------


def config_for(urls: list[str], directory: Path, meters: int, days: int, chunk: str) -> Config:
    buses = [{"name": f"line{i}", "kind": "mercury230", "url": url, "baudrate": BAUD, "timeout": "500ms"}
             for i, url in enumerate(urls)]  # fmt: skip
    data: dict[str, Any] = {
        "database": {"url": f"sqlite:///{directory / 'amr.sqlite'}"},
        "site": {"timezone": "Europe/Moscow"},
        "buses": buses,
        "meters": [
            {"serial": serial_of(line, n), "bus": f"line{line}", "address": n + 1}
            for line in range(len(urls))
            for n in range(meters)
        ],
        "backfill": {"first": f"{days * 24}h", "chunk": chunk},
    }
    return config_from_dict(data, environ={}, file=directory / "amr.toml")


def backfill_run(urls: list[str], meters: int, days: int, chunk: str) -> tuple[float, int, int, int, list[int]]:
    """Seconds, records read, interval rows stored, meters failed, records per line."""
    with tempfile.TemporaryDirectory(prefix="amr-bench-backfill-") as tmp:
        config = config_for(urls, Path(tmp), meters, days, chunk)
        with App.open(config) as app:
            args = argparse.Namespace(start=None, end=None, json=True)
            started = time.perf_counter()
            reports = asyncio.run(backfill(app, list(config.meters), args))
            seconds = time.perf_counter() - started
        with contextlib.closing(sqlite3.connect(Path(tmp) / "amr.sqlite")) as db:
            stored = int(db.execute("SELECT count(*) FROM intervals").fetchone()[0])
    per_line = [0] * len(urls)
    for report in reports:
        per_line[(int(report.serial) - 41_000_000) // 100] += report.records
    failed = sum(1 for r in reports if r.error)
    return seconds, sum(r.records for r in reports), stored, failed, per_line


def run(quick: bool = False) -> None:
    logging.getLogger("amr").setLevel(logging.ERROR)
    lines, meters, days = (LINES, 4, 1) if quick else (LINES, METERS_PER_LINE, DAYS)
    chunk = "24h"
    limit = record_limit()
    print(
        f"back-fill benchmark: {days} day(s) of 30-minute profile for {lines * meters} Mercury 230 meters "
        f"on {lines} ptys at {BAUD} baud ({meters} a line), chunks of {chunk}, SQLite store"
    )
    print(
        f"  limit from frame times: (8 + 18) characters × 10 bits / {BAUD} baud + 2 gaps of 3.5 characters "
        f"= {limit * 1000:.2f} ms a record"
    )
    with Simulators(lines, meters) as sims:
        bare_records = 96
        bare = bare_loop(sims.urls[0], bare_records)
        print(
            f"  baseline, bare pyserial loop: {bare_records} records in {bare:.2f} s = "
            f"{bare / bare_records * 1000:.2f} ms a record; ratio to the limit {limit * bare_records / bare:.3f}"
        )
        together = bare_lines(sims.urls, bare_records)
        print(
            f"  baseline, bare loops on all {lines} lines at once: {bare_records} records each in {together:.2f} s; "
            f"ratio to the limit {limit * bare_records / together:.3f} (what this machine allows now)"
        )
        ratios = []
        for attempt in (1, 2):
            seconds, records, stored, failed, per_line = backfill_run(sims.urls, meters, days, chunk)
            line_limit = max(per_line) * limit
            ratio = line_limit / seconds
            ratios.append(ratio)
            print(
                f"  run {attempt}: {records:,} records ({stored:,} interval values stored, {failed} meter(s) failed) "
                f"in {seconds:.1f} s; busiest line {max(per_line)} records, limit {line_limit:.1f} s; "
                f"ratio {ratio:.3f} (goal >= 0.7); to the bare loop {ratio / (limit * bare_records / bare):.3f}, "
                f"to the bare loops at once {ratio / (limit * bare_records / together):.3f}"
            )
        print(f"  ratio to the limit: {min(ratios):.3f} .. {max(ratios):.3f}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.backfill")
    parser.add_argument("--serve", type=int, nargs="+", metavar="LINE", required=True,
                        help="serve these simulated lines (the benchmark starts this itself)")
    parser.add_argument("--meters", type=int, default=METERS_PER_LINE)
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.serve, args.meters))


if __name__ == "__main__":
    main()
