"""``amr collect -c FILE [--once | --status] [--json]``: run the collector, poll every meter once, or
show which collector holds which bus.

Without ``--once`` the collector runs until SIGTERM or SIGINT, then stops gracefully (exit 0).
If the store cannot be reached at start it waits for it, trying again with backoff.

``--once`` polls every meter on a polled bus once and prints, per meter, the channels of tariff
0 at the primary side in kWh / kvarh, or why nothing was read. Push buses (MQTT) are skipped:
their meters report by themselves and are listed as skipped. ``--json`` prints one object::

    {"meters": [{"serial", "bus", "ok", "error", "error_kind", "attempts", "seconds", "status", "polled_at",
                 "values": {"a_plus": "1234.567", ...} | null, "errors": {where: why},
                 "accepted", "duplicate", "rejected": {reason: n}, "buffered"}],
     "answered", "failed", "accepted", "duplicate", "rejected": {reason: n}, "buffered", "skipped": [serial]}

The exit code is 0 when at least one meter answered, 1 when none did (or none is configured),
2 for a configuration error. Errors are one clear line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import tzinfo
from typing import Any

from amr.app import App
from amr.collector.collector import Collector
from amr.collector.result import PollResult
from amr.collector.status import lease_status, status_text
from amr.config import Config, load_config
from amr.core.domain import CHANNELS
from amr.core.logs import log_to_stderr
from amr.errors import StoreError, StoreUnavailable
from amr.store import Store

log = logging.getLogger("amr.collector")
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def add_parser(subparsers: Any) -> None:
    """Register ``collect`` on the `amr` command line's subparsers."""
    text = "poll and receive meter readings on schedule (or once) into the store"
    p = subparsers.add_parser("collect", help=text, description=text)
    p.add_argument("-c", "--config", required=True, help="the TOML configuration file")
    p.add_argument("--once", action="store_true", help="poll every polled meter once, print what was read, exit")
    p.add_argument(
        "--status", action="store_true",
        help="show which collector holds which bus (leases on PostgreSQL) and each collector's last heartbeat",
    )
    p.add_argument("--json", action="store_true", help="with --once or --status: print one JSON object")
    p.add_argument(
        "--log-level", choices=sorted(LEVELS), default=None,
        help="log to stderr from this level (default: info; warning with --once)",
    )
    p.set_defaults(func=cmd_collect)


def cmd_collect(args: argparse.Namespace) -> int:
    """Run the collector (``--once``: one sweep) as the command line asked."""
    config = load_config(args.config)
    if args.status:
        if args.once:
            print("error: give either --once or --status", file=sys.stderr)
            return 2
        return show_status(config, as_json=args.json)
    level = args.log_level or ("warning" if args.once else "info")
    _setup_logging(LEVELS[level], config.site.tz)
    if args.once:
        return asyncio.run(once(config, as_json=args.json))
    return asyncio.run(serve(config))


def _setup_logging(level: int, tz: tzinfo) -> None:
    if not log_to_stderr(level, tz):
        return  # the host process (or a test runner) has configured logging already
    logging.getLogger("amr").setLevel(level)
    logging.getLogger("apscheduler").setLevel(max(level, logging.WARNING))  # not a line per job run


async def serve(config: Config) -> int:
    """Collect until SIGTERM or SIGINT; 0 after a graceful stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        app = await _open_app(config, stop)
        if app is None:
            return 0
        try:
            if app.registry_version is not None:  # [registry] source = "database": follow its changes
                from amr.registry.collecting import collect

                await collect(app, stop)
            else:
                await Collector(app).run(stop)
        finally:
            app.close()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
    return 0


async def _open_app(config: Config, stop: asyncio.Event) -> App | None:
    """Open the store, waiting for it while it is unreachable; None when stopped meanwhile."""
    delay, warned = config.collector.store_retry.total_seconds(), False
    while True:
        try:
            return await asyncio.to_thread(App.open, config)
        except StoreUnavailable as exc:
            level = logging.DEBUG if warned else logging.WARNING
            log.log(level, "the store cannot be reached (%s); trying again in %g s", exc, delay)
            warned = True
        try:
            await asyncio.wait_for(stop.wait(), delay)
            return None
        except TimeoutError:
            delay = min(delay * 2, config.collector.store_retry_max.total_seconds())


async def once(config: Config, *, as_json: bool = False) -> int:
    """Poll every polled meter once and print the results; 1 when no meter answered."""
    app = await asyncio.to_thread(App.open, config)
    try:
        collector = Collector(app)
        await collector.start(schedule=False, push=False)
        try:
            results = await collector.poll_all()
        finally:
            await collector.stop()
        skipped = sorted(set(collector.meters) - set(collector.polled))
    finally:
        app.close()
    report = sweep_report(results, skipped)
    if as_json:
        json.dump(report, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        _print_text(report)
    if not report["answered"]:
        print("error: no meter answered" if results else "error: no meter on a polled bus is configured",
              file=sys.stderr)
        return 1
    return 0


def show_status(config: Config, *, as_json: bool = False) -> int:
    """Print the leases and collectors (``--status``); 1 when the store cannot be reached."""
    try:
        store = Store.open(config.database, config.site.timezone)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        report = lease_status(config, store)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    if as_json:
        json.dump(report, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        print("\n".join(status_text(report, config.site.tz)))
    return 0


def sweep_report(results: Sequence[PollResult], skipped: Sequence[str]) -> dict[str, Any]:
    """The whole ``--once --json`` report."""
    meters = [r.as_dict() for r in results]
    rejected: Counter[str] = Counter()
    for entry in meters:
        rejected.update(entry["rejected"])
    return {
        "meters": meters,
        "answered": sum(1 for m in meters if m["ok"]),
        "failed": sum(1 for m in meters if not m["ok"]),
        "accepted": sum(m["accepted"] for m in meters),
        "duplicate": sum(m["duplicate"] for m in meters),
        "rejected": dict(sorted(rejected.items())),
        "buffered": sum(1 for m in meters if m["buffered"]),
        "skipped": list(skipped),
    }


def _print_text(report: dict[str, Any]) -> None:
    units = {c.value: c.unit for c in CHANNELS}
    labels = {c.value: c.label for c in CHANNELS}
    for m in report["meters"]:
        head = f"{m['serial']:<14} {m['bus']:<12}"
        if not m["ok"]:
            print(f"{head} FAILED after {m['attempts']} attempt(s): {m['error']}")
            continue
        values = m["values"] or {}
        shown = ", ".join(f"{labels[k]} {v} {units[k]}" for k, v in values.items() if v is not None) or "no values"
        fate = "buffered (store unreachable)" if m["buffered"] else (
            f"accepted {m['accepted']}" + (f", duplicate {m['duplicate']}" if m["duplicate"] else "")
            + "".join(f", {reason} {n}" for reason, n in m["rejected"].items())
        )
        print(f"{head} {shown} ({fate})")
        for where, why in m["errors"].items():
            print(f"{'':<27} {where}: {why}")
    for serial in report["skipped"]:
        print(f"{serial:<14} {'':<12} skipped: on a push bus, it reports by itself")
    print(
        f"{report['answered']} of {report['answered'] + report['failed']} meter(s) answered; "
        f"{report['accepted']} reading(s) accepted, {report['duplicate']} duplicate, "
        f"{sum(report['rejected'].values())} refused, {report['buffered']} meter(s) buffered"
    )
