"""``amr clock`` and ``amr events``: meters' clocks and their event journals from the command line.

``amr clock -c FILE [--meter S] [--sync] [--json]`` reads the clock of every polled meter (or
one) now and records the drift; with ``--sync`` it also corrects it by the policy (``[clock]``)
within the protocol's limits, even where the policy's ``correct`` is off. Meters whose protocol
reports its clock in a poll (IEC 62056-21, DLMS) are polled for it (nothing is stored but the
check). Exit code 0 when every asked meter was read, 1 otherwise.

``amr events -c FILE [--meter S] [--from D] [--to D] [--read] [--json]`` lists stored events,
newest first, times in the site's zone; ``--read`` first reads the journals of the meters whose
driver reads them (new events are stored once). Exit code 1 when a journal could not be read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from amr.app import App
from amr.cli import _when
from amr.collector.collector import Collector
from amr.errors import AmrError, NotFound
from amr.operations.clock import ClockOutcome
from amr.store.events import events_of


def add_parser(subparsers: Any) -> None:
    """Register ``clock`` and ``events`` on the `amr` command line's subparsers."""
    text = "read meters' clocks and record the drift; --sync corrects it within the protocol's limits"
    p = subparsers.add_parser("clock", help=text, description=text)
    p.add_argument("-c", "--config", required=True, help="the TOML configuration file")
    p.add_argument("--meter", help="one meter's serial (default: every polled meter)")
    p.add_argument("--sync", action="store_true", help="correct the drift by the [clock] policy")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_clock)
    text = "meters' events (journals and clock corrections), newest first"
    p = subparsers.add_parser("events", help=text, description=text)
    p.add_argument("-c", "--config", required=True, help="the TOML configuration file")
    p.add_argument("--meter", help="one meter's serial")
    p.add_argument("--from", dest="start", help="a date (site's zone) or ISO datetime")
    p.add_argument("--to", dest="end", help="a date (its whole day included) or ISO datetime")
    p.add_argument("--read", action="store_true", help="read the meters' journals first")
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_events)


async def with_collector(app: App, work: Any) -> Any:
    """`work(collector)` with a collector started without schedules or push buses, stopped after."""
    collector = Collector(app)
    await collector.start(schedule=False, push=False)
    try:
        return await work(collector)
    finally:
        await collector.stop()


def _targets(collector: Collector, meter: str | None) -> list[str]:
    if meter is None:
        return list(collector.polled)
    if meter not in collector.polled:
        why = "a push meter: it has no clock to read" if meter in collector.meters else "not a polled meter"
        raise NotFound(f"meter {meter!r}: {why}")
    return [meter]


def cmd_clock(args: argparse.Namespace) -> int:
    """``amr clock``."""
    with App.open(args.config) as app:

        async def work(collector: Collector) -> list[ClockOutcome]:
            serials = _targets(collector, args.meter)
            return [await collector.operations.sync_clock(s, correct=args.sync) for s in serials]

        outcomes: list[ClockOutcome] = asyncio.run(with_collector(app, work))
    if args.json:
        json.dump({"meters": [o.as_dict() for o in outcomes]}, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        for o in outcomes:
            drift = "—" if o.drift is None else f"{o.drift.total_seconds():+.1f} s"
            print(f"{o.serial:<14} {o.state:<14} {drift:>12}  {o.message}")
    return 0 if outcomes and all(o.state != "unread" for o in outcomes) else 1


def cmd_events(args: argparse.Namespace) -> int:
    """``amr events``."""
    with App.open(args.config) as app:
        tz = app.config.site.tz
        start = _when(args.start, tz) if args.start else None
        end = _when(args.end, tz, end=True) if args.end else None
        if args.meter is not None and args.meter not in app.meters:
            raise NotFound(f"no meter {args.meter!r} in the configuration")
        read_errors: dict[str, str] = {}
        if args.read:

            async def work(collector: Collector) -> None:
                for serial in _targets(collector, args.meter):
                    try:
                        await collector.operations.read_journal(serial)
                    except AmrError as exc:
                        read_errors[serial] = str(exc)

            asyncio.run(with_collector(app, work))
        meters = [app.meters[args.meter]] if args.meter else list(app.meters.values())
        found = events_of(app.store, {m.id: m.serial for m in meters}, start, end, limit=args.limit)
    if args.json:
        body = {"events": [e.as_dict("en") for e in found], "read_errors": read_errors}
        json.dump(body, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        for stored in found:
            e = stored.event
            print(f"{e.ts.astimezone(tz).isoformat(timespec='seconds')}  {stored.serial:<14} "
                  f"{e.severity.value:<8} {e.code:<22} {e.text('en')}")
        for serial, why in read_errors.items():
            print(f"{serial}: journal not read: {why}", file=sys.stderr)
        print(f"{len(found)} event(s)")
    return 1 if read_errors else 0


__all__ = ["add_parser", "cmd_clock", "cmd_events", "with_collector"]
