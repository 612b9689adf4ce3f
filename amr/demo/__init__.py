"""``amr demo``: a live АСКУЭ on this machine in one command, for newcomers and demonstrations.

Simulated meters of every kind (Modbus TCP and RTU, Mercury 230, IEC 62056-21, DLMS/COSEM, an MQTT
gateway), the collector polling them every 10-15 seconds, the API and the dashboard, over an embedded
SQLite store in a temporary folder (or ``--dir``). See `amr.demo.run` and `amr.demo.field`.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

DEFAULT_PORT = 8080


def add_parser(subparsers: Any) -> None:
    """Register ``amr demo`` on the `amr` command line."""
    text = "run a whole АСКУЭ here: simulated meters, the collector, the API and the dashboard"
    p = subparsers.add_parser("demo", help=text, description=text)
    p.add_argument("--dir", help="keep the demo's files (configuration, SQLite store) in this folder; "
                                 "default: a temporary folder removed on exit")
    p.add_argument("--port", type=int, default=None,
                   help=f"HTTP port on 127.0.0.1 (default {DEFAULT_PORT}, or a free one when it is taken; 0: any)")
    p.add_argument("--no-mqtt", action="store_true", help="no MQTT gateway (and no broker)")
    p.add_argument("--verbose", action="store_true", help="log the collector's INFO lines too")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo until Ctrl-C (SIGINT) or SIGTERM; 0 after a clean stop."""
    from zoneinfo import ZoneInfo

    from amr.demo.field import SITE_TIMEZONE
    from amr.demo.run import _folder, run_demo, setup_logging

    setup_logging(args.verbose, ZoneInfo(SITE_TIMEZONE))
    port = DEFAULT_PORT if args.port is None else args.port
    with _folder(args.dir) as folder:
        return asyncio.run(run_demo(folder, port, args.port is None, not args.no_mqtt, args.dir is None))


__all__ = ["add_parser", "cmd_demo"]
