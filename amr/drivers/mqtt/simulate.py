"""`amr sim mqtt`: virtual meters publishing to a loopback broker."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Sequence
from typing import Any

from amr.core.durations import parse_duration
from amr.drivers.spec import Serving, SimulatorHook


def _options(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--topic", default="amr/sim/{serial}/energy", help="mqtt: topic pattern")
    group.add_argument("--payload", choices=["amr", "tasmota-sml"], default="amr", help="mqtt: payload format")
    group.add_argument("--broker-port", type=int, default=1883, help="mqtt: the loopback broker's port")
    group.add_argument("--period", default="10s", help="mqtt: publish every")


async def _serve(_kind: str, args: argparse.Namespace, meters: Sequence[Any], stack: contextlib.AsyncExitStack
) -> Serving:
    from simulators.mqtt_publisher import MqttPublisher

    publisher = stack.enter_context(
        MqttPublisher(list(meters), payload=args.payload, topic=args.topic, port=args.broker_port)
    )
    period = parse_duration(args.period).total_seconds()
    return f"mqtt://127.0.0.1:{args.broker_port}", publisher.run_async(duration=None, period=period)


def _bus_lines(_kind: str, args: argparse.Namespace) -> list[str]:
    return [f'topics = ["{args.topic.replace("{serial}", "+")}"]', f'payload = "{args.payload}"']


def _meter_lines(_kind: str, _meter: Any) -> list[str]:
    return []


MQTT = SimulatorHook(_options, _serve, _bus_lines, _meter_lines)
