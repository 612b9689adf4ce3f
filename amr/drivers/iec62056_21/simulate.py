"""`amr sim iec62056-21`: virtual IEC 62056-21 meters; over TCP a converter at a fixed speed."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from amr.drivers.spec import Serving, SimulatorHook


def iec_fixed_baud(args: argparse.Namespace) -> int | None:
    """IEC 62056-21 at a fixed speed (a converter): ``--baud``, by default 9600 over TCP; None: the
    standard 300 baud sign-on with a switch to the meter's offer (a pty without ``--baud``)."""
    if args.baud:
        return int(args.baud)
    return 9600 if args.transport == "tcp" else None


def _options(_group: argparse._ArgumentGroup) -> None:
    """IEC 62056-21 has no options of its own: the common --transport, --port and --baud."""


async def _serve(_kind: str, args: argparse.Namespace, meters: Sequence[Any], stack: contextlib.AsyncExitStack
) -> Serving:
    from simulators.serial_meters import IecSimulator

    simulator = IecSimulator(list(meters), transport=args.transport, port=args.port, baudrate=iec_fixed_baud(args))
    await stack.enter_async_context(simulator)
    return simulator.url, asyncio.Event().wait()


def _bus_lines(_kind: str, args: argparse.Namespace) -> list[str]:
    fixed = iec_fixed_baud(args)
    lines = [f"baudrate = {fixed or 300}", "bytesize = 7", 'parity = "E"']
    return [*lines, "baud_switch = false"] if fixed else lines


def _meter_lines(_kind: str, meter: Any) -> list[str]:
    return [f"address = {meter.address}"]


IEC62056_21 = SimulatorHook(_options, _serve, _bus_lines, _meter_lines)
