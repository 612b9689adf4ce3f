"""`amr sim modbus-tcp` / `amr sim modbus-rtu`: virtual meters on the built-in SDM630 profile."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from amr.drivers.serial_simulate import common_options, line_baud
from amr.drivers.spec import Serving, SimulatorHook

PROFILE = "eastron-sdm630"


async def _serve(kind: str, args: argparse.Namespace, meters: Sequence[Any], stack: contextlib.AsyncExitStack
) -> Serving:
    from simulators.modbus import ModbusRtuSimulator, ModbusTcpSimulator

    simulator: ModbusTcpSimulator | ModbusRtuSimulator
    if kind == "modbus-tcp":
        simulator = ModbusTcpSimulator(list(meters), profile=PROFILE, port=args.port)
    else:
        simulator = ModbusRtuSimulator(
            list(meters), transport=args.transport, baudrate=line_baud(args), profile=PROFILE, port=args.port
        )
    await stack.enter_async_context(simulator)
    return simulator.url, asyncio.Event().wait()


def _bus_lines(kind: str, args: argparse.Namespace) -> list[str]:
    return [f"baudrate = {line_baud(args)}"] if kind == "modbus-rtu" else []


def _meter_lines(_kind: str, meter: Any) -> list[str]:
    return [f"address = {meter.address}", f'profile = "{PROFILE}"']


MODBUS_TCP = MODBUS_RTU = SimulatorHook(common_options, _serve, _bus_lines, _meter_lines)
