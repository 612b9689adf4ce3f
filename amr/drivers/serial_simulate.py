"""What the simulator hooks of the serial-line protocols share: the line speed, the meter's
address line, and serving virtual meters of `simulators.serial_meters` on a pty or TCP socket."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from amr.drivers.spec import Serving, SimulatorHook, load


def line_baud(args: argparse.Namespace) -> int:
    """The simulated line speed of a serial simulator: ``--baud``, by default 9600."""
    return int(args.baud or 9600)


def common_options(_group: argparse._ArgumentGroup) -> None:
    """No options of the protocol's own: the common --transport, --port and --baud."""


def address_line(_kind: str, meter: Any) -> list[str]:
    """A meter's key of the printed configuration: its address on the line."""
    return [f"address = {meter.address}"]


def serial_meters_hook(
    simulator: str,
    baudrate: Callable[[argparse.Namespace], int | None],
    bus_lines: Callable[[str, argparse.Namespace], list[str]],
) -> SimulatorHook:
    """The hook of a protocol whose virtual meters are `simulator` (``module:Class`` of
    `simulators.serial_meters`, imported when started) at the line speed `baudrate` gives."""

    async def serve(
        _kind: str, args: argparse.Namespace, meters: Sequence[Any], stack: contextlib.AsyncExitStack
    ) -> Serving:
        running = load(simulator)(list(meters), transport=args.transport, port=args.port, baudrate=baudrate(args))
        await stack.enter_async_context(running)
        return running.url, asyncio.Event().wait()

    return SimulatorHook(common_options, serve, bus_lines, address_line)
