"""An MQTT gateway of many virtual meters: publishes their registers, QoS 1, to a loopback broker.

Every period each `VirtualMeter` is published to ``topic`` (``{serial}`` and ``{address}`` are
filled in) in the project's ``amr`` JSON or as a Tasmota SML ``SENSOR`` message. Runs are
bounded (a count of rounds, a duration, or until cancelled). From code::

    with MqttPublisher(meters, payload="tasmota-sml") as pub:
        pub.run(count=3, period=1.0)           # or: await pub.run_async(duration=10)
        seconds = pub.publish_burst(10_000)    # a benchmark: N messages as fast as the broker takes them

or ``python -m simulators.mqtt_publisher --meters 100 --count 5``. Faults: a ``silent`` meter
publishes nothing; ``corrupt`` is the chance of a garbled payload. Only 127.0.0.1 is allowed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from amr.core.domain import Channel, Values, kwh_from_wh
from amr.errors import ConnectError
from simulators.model import VirtualMeter

Format = Literal["amr", "tasmota-sml"]
DEFAULT_TOPICS: dict[str, str] = {"amr": "amr/sim/{serial}/energy", "tasmota-sml": "tele/{serial}/SENSOR"}
LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_INFLIGHT = 1000


def render_amr(meter: VirtualMeter, now: datetime) -> tuple[bytes, dict[int, Values]]:
    """The ``amr`` JSON of a meter's registers at `now` (exact kWh strings), and the registers."""
    registers = meter.registers(now)
    tariffs = {
        str(zone): {ch.value: None if wh is None else str(kwh_from_wh(wh)) for ch, wh in values.items()}
        for zone, values in registers.items()
    }
    doc = {"meter": meter.serial, "ts": meter.clock(now).isoformat(), "unit": "kWh", "tariffs": tariffs}
    return json.dumps(doc).encode(), registers


def render_tasmota(
    meter: VirtualMeter, now: datetime, power_w: int = 0, section: str = "SML", meter_id: bool = False
) -> tuple[bytes, dict[int, Values]]:
    """A Tasmota SML ``SENSOR`` message (local ``Time`` without offset, kWh with 4 decimals)."""
    registers = meter.registers(now)
    total = registers[0]
    local = meter.clock(now).astimezone(ZoneInfo(meter.timezone)).replace(tzinfo=None, microsecond=0)

    def kwh4(wh: int | None) -> str:
        return f"{Decimal(wh or 0) / 1000:.4f}"

    fields = [
        ("Total_in", kwh4(total[Channel.A_PLUS])),
        ("Total_out", kwh4(total[Channel.A_MINUS])),
        ("Power_curr", str(power_w)),
    ]
    if meter_id:
        fields.append(("Meter_id", json.dumps(meter.serial)))
    body = ",".join(f'"{name}":{value}' for name, value in fields)  # numbers written as exact JSON text
    text = f'{{"Time":"{local.isoformat()}","{section}":{{{body}}}}}'
    shown = {Channel.A_PLUS: total[Channel.A_PLUS], Channel.A_MINUS: total[Channel.A_MINUS]}
    return text.encode(), {0: shown}


@dataclass(frozen=True, slots=True)
class Published:
    """One message sent (kept with ``record=True``): where, whose, when and the registers it carried."""

    topic: str
    serial: str
    at: datetime
    tariffs: dict[int, Values]


class MqttPublisher:
    """Publishes `meters` to a loopback MQTT broker; a context manager that connects and disconnects."""

    def __init__(
        self,
        meters: Sequence[VirtualMeter],
        *,
        payload: Format = "amr",
        topic: str | None = None,
        host: str = "127.0.0.1",
        port: int = 1883,
        qos: int = 1,
        client_id: str = "",
        record: bool = False,
    ) -> None:
        if host not in LOOPBACK:
            raise ValueError(f"the simulator publishes only to the loopback broker (127.0.0.1), not {host!r}")
        self.meters = list(meters)
        self.payload: Format = payload
        self.topic = topic or DEFAULT_TOPICS[payload]
        self.host, self.port, self.qos = host, port, qos
        self.record = record
        self.sent: list[Published] = []
        self.published = 0
        self._last: dict[str, tuple[datetime, int]] = {}  # serial → (time, A+ Wh), for Power_curr
        self._connected = threading.Event()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311)
        self._client.max_inflight_messages_set(MAX_INFLIGHT)
        self._client.on_connect = self._on_connect

    def _on_connect(self, _: paho.Client, __: Any, ___: Any, reason: Any, ____: Any) -> None:
        if not reason.is_failure:
            self._connected.set()

    def connect(self, timeout: float = 5.0) -> None:
        """Connect and start paho's network thread; `ConnectError` when the broker is not there."""
        try:
            self._client.connect(self.host, self.port, keepalive=30)
        except OSError as exc:
            raise ConnectError(f"cannot reach the MQTT broker at {self.host}:{self.port}: {exc}") from None
        self._client.loop_start()
        if not self._connected.wait(timeout):
            self.close()
            raise ConnectError(f"the MQTT broker at {self.host}:{self.port} did not accept the connection")

    def close(self) -> None:
        """Disconnect (after queued messages went out) and stop the network thread."""
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> MqttPublisher:
        self.connect()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def render(self, meter: VirtualMeter, now: datetime) -> tuple[str, bytes, dict[int, Values]]:
        """Topic, payload and registers of one meter's message at `now`."""
        topic = self.topic.format(serial=meter.serial, address=meter.address)
        if self.payload == "amr":
            return (topic, *render_amr(meter, now))
        power = 0
        registers = meter.registers(now)
        a_plus = registers[0][Channel.A_PLUS] or 0
        if (last := self._last.get(meter.serial)) is not None and now > last[0]:
            power = max(0, round((a_plus - last[1]) * 3600 / (now - last[0]).total_seconds()))
        self._last[meter.serial] = (now, a_plus)
        return (topic, *render_tasmota(meter, now, power))

    def publish(
        self, meter: VirtualMeter, now: datetime, rendered: tuple[str, bytes, dict[int, Values]] | None = None
    ) -> paho.MQTTMessageInfo | None:
        """Queue one meter's message (None for a silent meter); paho sends it from its thread."""
        if meter.faults.silent:
            return None
        topic, body, registers = rendered or self.render(meter, now)
        if meter.roll(meter.faults.corrupt):
            body = body[: len(body) // 2]
        if self.record:
            self.sent.append(Published(topic, meter.serial, now, registers))
        self.published += 1
        return self._client.publish(topic, body, qos=self.qos)

    def publish_round(self, now: datetime | None = None, timeout: float = 30.0) -> int:
        """Publish every meter once and wait until the broker acknowledged them; the count sent."""
        moment = now or datetime.now(UTC)
        infos = [info for meter in self.meters if (info := self.publish(meter, moment)) is not None]
        self._wait(infos, timeout)
        return len(infos)

    def publish_burst(self, count: int, timeout: float = 120.0) -> float:
        """Publish `count` messages, cycling through the meters, as fast as possible; seconds taken."""
        moment = datetime.now(UTC)
        rendered = [self.render(meter, moment) for meter in self.meters]  # same moment: same message
        started = time.perf_counter()
        infos = []
        for index in range(count):
            slot = index % len(self.meters)
            info = self.publish(self.meters[slot], moment, rendered[slot])
            if info is not None:
                infos.append(info)
        self._wait(infos, timeout)
        return time.perf_counter() - started

    def _wait(self, infos: Sequence[paho.MQTTMessageInfo], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for info in infos:
            info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            if not info.is_published():
                raise ConnectError(f"the broker did not acknowledge message {info.mid} within {timeout} s")

    def run(
        self,
        count: int | None = None,
        duration: float | None = None,
        period: float = 1.0,
        stop: threading.Event | None = None,
    ) -> int:
        """A round every `period` s for `count` rounds or `duration` s, or until `stop` is set; messages sent.

        A run is bounded: by `count`, `duration` or a `stop` event (which `run_async` always has).
        """
        if count is None and duration is None and stop is None:
            raise ValueError("give count (rounds), duration (seconds) or a stop event: a run is bounded")
        stop = stop or threading.Event()
        end = None if duration is None else time.monotonic() + duration
        sent = rounds = 0
        while not stop.is_set() and (count is None or rounds < count):
            if end is not None and time.monotonic() >= end:
                break
            sent += self.publish_round()
            rounds += 1
            if (count is None or rounds < count) and stop.wait(period):
                break
        return sent

    async def run_async(
        self, count: int | None = None, duration: float | None = None, period: float = 1.0
    ) -> int:
        """`run` in a worker thread, until `count` rounds or `duration` s, or cancelled (after the current round)."""
        stop = threading.Event()
        try:
            return await asyncio.to_thread(self.run, count, duration, period, stop)
        finally:
            stop.set()


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: publish N virtual meters for a number of rounds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--meters", type=int, default=10)
    parser.add_argument("--payload", choices=["amr", "tasmota-sml"], default="amr")
    parser.add_argument("--topic", default=None)
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--count", type=int, default=1, help="rounds")
    parser.add_argument("--period", type=float, default=1.0)
    parser.add_argument("--burst", type=int, default=0, help="instead: N messages as fast as possible")
    args = parser.parse_args(argv)
    meters = [VirtualMeter(serial=f"SIM{n:06d}", address=n + 1) for n in range(args.meters)]
    with MqttPublisher(meters, payload=args.payload, topic=args.topic, port=args.port) as pub:
        if args.burst:
            seconds = pub.publish_burst(args.burst)
            print(f"{args.burst} messages in {seconds:.2f} s ({args.burst / seconds:.0f}/s)")
        else:
            print(f"{pub.run(count=args.count, period=args.period)} messages published")


if __name__ == "__main__":
    main()
