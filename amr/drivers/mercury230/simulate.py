"""`amr sim mercury230`: virtual Mercury 230 meters on a pty or a TCP socket."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from amr.drivers.modbus.simulate import line_baud
from amr.drivers.spec import Serving, SimulatorHook


def _options(_group: argparse._ArgumentGroup) -> None:
    """Mercury has no options of its own: the common --transport, --port and --baud."""


async def _serve(_kind: str, args: argparse.Namespace, meters: Sequence[Any], stack: contextlib.AsyncExitStack
) -> Serving:
    from simulators.serial_meters import MercurySimulator

    simulator = MercurySimulator(list(meters), transport=args.transport, port=args.port, baudrate=line_baud(args))
    await stack.enter_async_context(simulator)
    return simulator.url, asyncio.Event().wait()


def _bus_lines(_kind: str, args: argparse.Namespace) -> list[str]:
    return [f"baudrate = {line_baud(args)}"]


def _meter_lines(_kind: str, meter: Any) -> list[str]:
    return [f"address = {meter.address}"]


MERCURY230 = SimulatorHook(_options, _serve, _bus_lines, _meter_lines)
