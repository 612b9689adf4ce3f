"""``amr backfill -c FILE [--meter S] [--from D] [--to D] [--json]``: read missing profile intervals now.

Reads, for every meter whose protocol reads profiles (or only `--meter`), what `amr.collector.backfill`
finds missing, buses at once and the meters of one bus one after another; `--from` / `--to` (dates
in the site's zone, the `--to` day included, or ISO times) narrow the range, and a `--from` before
what was already read reads that part again (writes are idempotent: duplicates change nothing).
On a terminal a progress bar on stderr shows the chunks done. Prints per meter the range read,
records, intervals written, and what was lost (older than the memory) or why it stopped.
Exit code 0 when every meter was read, 1 when one failed, 2 for a configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TextIO

from amr.app import App
from amr.collector.backfill import Backfill, ChunkDone, MeterReport, Plan
from amr.config import BusConfig, MeterConfig, load_config
from amr.drivers import poll_driver
from amr.drivers.profiles import ProfileReader, profile_reader
from amr.drivers.registry import PROTOCOLS
from amr.errors import ConfigError, InputError

BAR = 30  # characters of the progress bar


def add_parser(subparsers: Any) -> None:
    """Register ``backfill`` on the `amr` command line's subparsers."""
    text = "read the intervals missing from the store out of the meters' profile memory"
    p = subparsers.add_parser("backfill", help=text, description=text)
    p.add_argument("-c", "--config", required=True, help="the TOML configuration file")
    p.add_argument("--meter", help="only this meter (serial)")
    p.add_argument("--from", dest="start", help="from this date (site's zone) or ISO time")
    p.add_argument("--to", dest="end", help="up to this date (included) or ISO time")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_backfill)


class ProgressBar:
    """Chunks done of all planned, drawn on one terminal line."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total, self.done, self.stream = max(total, 1), 0, stream

    def __call__(self, chunk: ChunkDone) -> None:
        """One more chunk read (or failed)."""
        self.done += 1
        filled = BAR * self.done // self.total
        mark = "!" if chunk.error else " "
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (BAR - filled)}] {self.done}/{self.total} chunks{mark} {chunk.serial:<16}"
        )
        self.stream.flush()

    def close(self) -> None:
        """End the line."""
        self.stream.write("\n")
        self.stream.flush()


def profile_meters(
    config_meters: Sequence[MeterConfig], buses: dict[str, BusConfig], only: str | None
) -> list[MeterConfig]:
    """The meters to back-fill; `InputError` naming why `only` cannot be."""
    found = []
    for meter in config_meters:
        bus = buses.get(meter.bus or "")
        if bus is None or (only is not None and meter.serial != only):
            continue
        spec = PROTOCOLS.get(bus.kind)
        if spec is not None and "profiles" in spec.capabilities:
            found.append(meter)
        elif only is not None:
            names = ", ".join(k for k, s in PROTOCOLS.items() if "profiles" in s.capabilities)
            raise InputError(f"meter {only} is on a {bus.kind} bus, which reads no profiles ({names} do)")
    if only is not None and not found:
        raise InputError(f"no meter {only!r} on a polled bus in the configuration")
    return found


async def run(app: App, meters: list[MeterConfig], args: argparse.Namespace) -> list[MeterReport]:
    """Plan every meter, then read bus by bus (buses at once)."""
    from amr.cli import _when

    tz = app.config.site.tz
    start = _when(args.start, tz) if args.start else None
    end = _when(args.end, tz, end=True) if args.end else None
    if start is not None and end is not None and end <= start:
        raise InputError(f"--to {args.end} is not after --from {args.start}")
    buses = {bus.name: bus for bus in app.config.buses}
    engine = Backfill(app)
    by_bus: dict[str, list[MeterConfig]] = {}
    for meter in meters:
        by_bus.setdefault(meter.bus or "", []).append(meter)
    # Each serial line's blocking reads run in a worker thread: one per bus, besides the store's.
    # (asyncio's default pool has min(32, CPUs + 4) threads: on 2 cores, 6 — fewer than 10 lines.)
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(len(by_bus) + 4, "amr-backfill"))
    drivers: dict[str, Any] = {name: poll_driver(buses[name], tz) for name in by_bus}
    plans: dict[str, Plan] = {}
    for name, bus_meters in by_bus.items():
        reader = profile_reader(drivers[name])
        assert reader is not None
        for meter in bus_meters:
            plans[meter.serial] = await asyncio.to_thread(engine.plan_for, meter, reader, start, end)
    bar = ProgressBar(sum(len(p.chunks) for p in plans.values()), sys.stderr)
    show = bar if sys.stderr.isatty() and not args.json else None

    async def one_bus(name: str) -> list[MeterReport]:
        driver = drivers[name]
        reader: ProfileReader | None = profile_reader(driver)
        assert reader is not None
        reports = []
        with contextlib.suppress(Exception):  # each read opens it again and reports why it cannot
            await driver.open()
        try:
            for meter in by_bus[name]:
                reports.append(await engine.run_meter(meter, reader, start=start, end=end, progress=show))
        finally:
            await driver.close()
        return reports

    try:
        done = await asyncio.gather(*(one_bus(name) for name in by_bus))
    finally:
        if show is not None:
            bar.close()
    order = {m.serial: i for i, m in enumerate(meters)}
    return sorted((r for reports in done for r in reports), key=lambda r: order[r.serial])


def cmd_backfill(args: argparse.Namespace) -> int:
    """Back-fill as the command line asked; print the outcome."""
    config = load_config(args.config)
    buses = {bus.name: bus for bus in config.buses}
    meters = profile_meters(config.meters, buses, args.meter)
    if not meters:
        raise ConfigError("no meter on a bus whose protocol reads profiles is configured")
    with App.open(config) as app:
        reports = asyncio.run(run(app, meters, args))
    tz = config.site.tz
    failed = [r for r in reports if r.error]
    if args.json:
        import json

        summary = {
            "meters": [r.as_dict() for r in reports],
            "records": sum(r.records for r in reports),
            "written": sum(r.written for r in reports),
            "lost": sum(1 for r in reports if r.lost),
            "failed": len(failed),
        }
        json.dump(summary, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        for r in reports:
            span = "nothing missing"
            if r.read_from is not None and r.read_until is not None:
                span = f"{r.read_from.astimezone(tz):%Y-%m-%d %H:%M} .. {r.read_until.astimezone(tz):%Y-%m-%d %H:%M}"
            line = f"{r.serial}: {span}; {r.records} record(s), {r.written} interval value(s) written"
            if r.duplicate:
                line += f", {r.duplicate} already stored"
            if r.refused:
                line += f", {r.refused} refused"
            if r.lost:
                line += (
                    f"; lost (older than the meter's memory): {r.lost[0].astimezone(tz):%Y-%m-%d %H:%M}"
                    f" .. {r.lost[1].astimezone(tz):%Y-%m-%d %H:%M}"
                )
            if r.error:
                line += f"; stopped: {r.error}"
            print(line)
    return 1 if failed else 0
