"""MQTT ingest: QoS 1 messages from a publisher process through the collector into a store, against a bare subscriber.

The benchmark starts its own Mosquitto on a free loopback port (``max_queued_messages 0``: a
persistent session queues without limit, so nothing is dropped when a consumer falls behind) and
stops it at the end. A separate publisher process (`MqttPublisher` in this module's ``--publish``
mode) renders every message first — `METERS` virtual meters in the ``amr`` JSON, each message a
new minute of its meter, so every message is its own reading — and then, on the word, publishes
them all at QoS 1 as fast as the broker acknowledges them (at most `WINDOW` unacknowledged:
paho's message ids are 16 bits).

Consumers, one after the other, each of the same number of messages on its own topics:

* baseline: a bare paho subscriber (MQTT 5, persistent session, Receive Maximum 100 as the
  driver's, QoS 1) that only counts;
* the collector: `Collector` with an ``mqtt`` bus (`MqttDriver` → `normalise` → `Writer` →
  `Ingestor` → SQLite), with its default ``[collector]`` settings, and again with
  ``write_interval = "0ms"`` (the setting that helps most: each message is written at once
  instead of waiting up to 200 ms for company that never comes, since the driver hands over
  one message at a time and acknowledges it before taking the next).

Time: from the publisher's start to the last message counted, or acknowledged by the driver
(which acknowledges a message only after its reading was stored). A collector that has not
finished by its time limit is stopped and reported with its rate and what all would take.
Then every message is accounted for: the readings in the store, and what the broker still
holds in the collector's persistent session (drained with its client id after it stopped);
lost = published − (stored ∪ left on the broker) − refused; "delivered twice" = acknowledged
messages whose reading was already stored.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, cast

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from amr.app import App
from amr.collector.collector import Collector
from amr.config import config_from_dict
from amr.drivers.mqtt.driver import RECEIVE_MAXIMUM, MqttDriver
from benchmarks.children import end, readline
from simulators.model import VirtualMeter
from simulators.mqtt_publisher import MqttPublisher, render_amr

ROOT = Path(__file__).resolve().parents[1]  # the subprocesses run `python -m benchmarks.<module>` here
HOST = "127.0.0.1"
METERS = 1000
MOSQUITTO = "/usr/sbin/mosquitto"
WINDOW = 20_000  # messages the publisher has out unacknowledged at most
PUBLISH_TIMEOUT = 300.0  # the publisher waits this long at most for the broker's acknowledgements
LIFETIME = 900.0  # the publisher process ends by itself after this long, whatever happens


def _serial(index: int) -> str:
    return f"MQ{index:05d}"


# --- the broker ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def mosquitto(directory: Path) -> Iterator[int]:
    """Our own Mosquitto on a free loopback port: unlimited queues, no persistence to disk; stopped on exit."""
    port = _free_port()
    conf = directory / "mosquitto.conf"
    conf.write_text(
        f"listener {port} {HOST}\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 0\nmax_queued_bytes 0\nmax_inflight_messages 0\n"
        f"log_dest file {directory / 'mosquitto.log'}\nlog_type error\nlog_type warning\n",
        encoding="utf-8",
    )
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mosquitto did not start on {HOST}:{port}; see {directory}") from None
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# --- the publisher process ----------------------------------------------------------------


def _publish(port: int, base: str, meters: int, messages: int) -> None:
    """Render `messages` messages of `meters` meters, say ready, wait for "go", publish, report."""
    per_meter = -(-messages // meters)
    start = (datetime.now(UTC) - timedelta(minutes=per_meter + 10)).replace(second=0, microsecond=0)
    virtual = [VirtualMeter(_serial(i), address=i + 1, tariffs=1, start=start) for i in range(meters)]
    topic = base + "/{serial}/energy"
    rendered = []
    for n in range(messages):
        meter = virtual[n % meters]
        body, registers = render_amr(meter, start + timedelta(minutes=n // meters + 1))
        rendered.append((meter, topic.format(serial=meter.serial), body, registers))
    with MqttPublisher(virtual, port=port, client_id=f"amr-bench-pub-{uuid.uuid4().hex[:8]}") as publisher:
        print(json.dumps({"ready": len(rendered)}), flush=True)
        if sys.stdin.readline().strip() != "go":
            return
        started = time.perf_counter()
        deadline = time.monotonic() + PUBLISH_TIMEOUT
        infos: list[paho.MQTTMessageInfo] = []
        acknowledged = 0
        for n, (meter, t, body, regs) in enumerate(rendered):
            if n >= WINDOW:  # paho's message ids are 16 bits: never more than WINDOW unacknowledged
                acknowledged += _acknowledged(infos[n - WINDOW], deadline)
            info = publisher.publish(meter, start, (t, body, regs))
            assert info is not None  # no meter is silent
            infos.append(info)
        for info in infos[max(0, len(infos) - WINDOW) :]:
            acknowledged += _acknowledged(info, deadline)
        seconds = time.perf_counter() - started
    print(json.dumps({"published": acknowledged, "seconds": seconds}), flush=True)


def _acknowledged(info: paho.MQTTMessageInfo, deadline: float) -> bool:
    info.wait_for_publish(max(0.0, deadline - time.monotonic()))
    return info.is_published()


class Publisher:
    """The publisher process: started and rendering on enter; `go` publishes; `result` waits for its report."""

    def __init__(self, port: int, base: str, meters: int, messages: int) -> None:
        self.args = [sys.executable, "-m", "benchmarks.mqtt_ingest", "--publish", str(port), base,
                     str(meters), str(messages)]
        self.proc: subprocess.Popen[str] | None = None
        self.started = 0.0

    def __enter__(self) -> Publisher:
        self.proc = subprocess.Popen(
            self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
        )
        try:
            assert self.proc.stdout is not None
            json.loads(_readline(self.proc.stdout, 120.0))  # rendered and connected
        except BaseException:
            self.__exit__()
            raise
        return self

    def go(self) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.started = time.perf_counter()
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def result(self, timeout: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        report: dict[str, Any] = json.loads(_readline(self.proc.stdout, timeout))
        return report

    def __exit__(self, *_: object) -> None:
        if self.proc is not None:
            end([self.proc])


def _readline(stream: IO[str], timeout: float) -> str:
    return readline(stream, timeout, "the publisher process ended or said nothing")


# --- the consumers --------------------------------------------------------------------------

Key = tuple[str, datetime]  # a reading: meter serial, time


@dataclass
class Outcome:
    """What one consumer got."""

    label: str
    messages: int
    received: int  # counted (baseline) or acknowledged after the sink returned (collector)
    seconds: float  # publisher start → last message received, or the time limit
    finished: bool
    published: int
    publish_seconds: float
    stored: int = 0
    refused: int = 0
    acknowledged: int = 0  # collector: messages it acknowledged by the time it had stopped
    drained: int = 0  # left on the broker in the collector's session after it stopped
    drained_stored: int = 0  # of those, already stored (the collector stopped before acknowledging them)
    lost: int = 0  # published, neither stored nor refused nor left on the broker

    @property
    def rate(self) -> float:
        return self.received / self.seconds if self.seconds else 0.0


def _session_properties() -> Properties:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 600
    props.ReceiveMaximum = RECEIVE_MAXIMUM
    return props


def bare_subscriber(port: int, messages: int, limit: float) -> Outcome:
    """A paho subscriber that only counts: MQTT 5, persistent session, Receive Maximum as the driver's, QoS 1."""
    base = f"amrbench/bare-{uuid.uuid4().hex[:8]}"
    count = 0
    last = 0.0
    done = threading.Event()
    subscribed = threading.Event()

    def on_message(_: paho.Client, __: Any, ___: paho.MQTTMessage) -> None:
        nonlocal count, last
        count += 1
        last = time.perf_counter()
        if count >= messages:
            done.set()

    def on_connect(client: paho.Client, *_: Any) -> None:
        client.subscribe(f"{base}/+/energy", qos=1)

    def on_subscribe(*_: Any) -> None:
        subscribed.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"amr-bench-bare-{uuid.uuid4().hex[:8]}",
                         protocol=paho.MQTTv5)
    client.on_message, client.on_connect, client.on_subscribe = on_message, on_connect, on_subscribe
    client.connect(HOST, port, keepalive=30, clean_start=False, properties=_session_properties())
    client.loop_start()
    try:
        if not subscribed.wait(10):
            raise RuntimeError("the bare subscriber was not subscribed within 10 s")
        with Publisher(port, base, METERS, messages) as publisher:
            publisher.go()
            finished = done.wait(limit)
            report = publisher.result(PUBLISH_TIMEOUT)
            end = last if finished else time.perf_counter()
            return Outcome("bare paho subscriber", messages, count, end - publisher.started, finished,
                           report["published"], report["seconds"])
    finally:
        client.disconnect()
        client.loop_stop()


def drain(port: int, client_id: str, limit: float) -> list[Key]:
    """Connect with `client_id`'s persistent session and take what the broker still holds for it (idle 1 s: done)."""
    keys: list[Key] = []
    last = time.monotonic()
    connected = threading.Event()

    def on_message(_: paho.Client, __: Any, message: paho.MQTTMessage) -> None:
        nonlocal last
        doc = json.loads(message.payload)
        keys.append((str(doc["meter"]), datetime.fromisoformat(doc["ts"])))
        last = time.monotonic()

    def on_connect(*_: Any) -> None:
        connected.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    client.on_message, client.on_connect = on_message, on_connect
    client.connect(HOST, port, keepalive=30, clean_start=False, properties=_session_properties())
    client.loop_start()
    try:
        if not connected.wait(10):
            raise RuntimeError("the drain did not connect within 10 s")
        deadline = time.monotonic() + limit
        last = time.monotonic()
        while time.monotonic() - last < 1.0 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        client.disconnect()
        client.loop_stop()
    return keys


async def _collector_run(
    port: int, messages: int, limit: float, directory: Path, label: str, settings: dict[str, Any]
) -> Outcome:
    base = f"amrbench/collector-{uuid.uuid4().hex[:8]}"
    client_id = f"amr-bench-{uuid.uuid4().hex[:8]}"
    config = config_from_dict(
        {
            "database": {"url": f"sqlite:///{directory / 'amr.sqlite'}"},
            "buses": [{"name": "mqtt", "kind": "mqtt", "url": f"mqtt://{HOST}:{port}", "topics": [f"{base}/+/energy"],
                       "client_id": client_id}],
            "meters": [{"serial": _serial(i), "bus": "mqtt"} for i in range(METERS)],
            "collector": {"buffer": str(directory / "buffer.sqlite"), **settings},
        },
        environ={},
        file=directory / "amr.toml",
    )
    app = await asyncio.to_thread(App.open, config)
    try:
        collector = Collector(app)
        await collector.start(schedule=False)
        try:
            driver = cast(MqttDriver, collector.pushers[0].driver)
            await driver.wait_subscribed(10)
            with Publisher(port, base, METERS, messages) as publisher:
                publisher.go()
                deadline = publisher.started + limit
                last, seen = publisher.started, 0
                while driver.delivered < messages and time.perf_counter() < deadline:
                    await asyncio.sleep(0.01)
                    if driver.delivered != seen:
                        seen, last = driver.delivered, time.perf_counter()
                finished = driver.delivered >= messages
                received = driver.delivered
                end = last if finished else time.perf_counter()
                report = await asyncio.to_thread(publisher.result, PUBLISH_TIMEOUT)
        finally:
            await collector.stop()
        acknowledged = driver.delivered
        serials = {meter.id: serial for serial, meter in app.meters.items()}
        stored = {(serials[r.meter_id], r.ts) for r in await asyncio.to_thread(app.store.readings, list(serials))}
    finally:
        app.close()
    outcome = Outcome(label, messages, received, end - publisher.started, finished, report["published"],
                      report["seconds"])
    left = await asyncio.to_thread(drain, port, client_id, PUBLISH_TIMEOUT)
    with contextlib.closing(sqlite3.connect(directory / "amr.sqlite")) as db:
        outcome.refused = int(db.execute("SELECT count(*) FROM rejected_readings").fetchone()[0])
    outcome.acknowledged, outcome.stored, outcome.drained = acknowledged, len(stored), len(left)
    outcome.drained_stored = sum(key in stored for key in left)
    outcome.lost = outcome.published - len(stored | set(left)) - outcome.refused
    return outcome


def collector_run(port: int, messages: int, limit: float, label: str, **settings: Any) -> Outcome:
    """The collector with `settings` in its ``[collector]`` table (none: the defaults)."""
    with tempfile.TemporaryDirectory(prefix="amr-bench-mqtt-") as tmp:
        return asyncio.run(_collector_run(port, messages, limit, Path(tmp), label, settings))


def _report(outcome: Outcome, bare: Outcome | None = None) -> None:
    state = "all" if outcome.finished else f"stopped at the {outcome.seconds:.0f} s limit"
    print(
        f"  {outcome.label:<37} {outcome.received:>7,} of {outcome.messages:,} in {outcome.seconds:7.2f} s "
        f"({outcome.rate:8,.0f} msg/s; {state}); publisher: {outcome.published:,} acknowledged by the broker "
        f"in {outcome.publish_seconds:.2f} s"
    )
    if bare is None:
        return
    # acknowledged messages whose reading was stored before: what the store counted as duplicates
    twice = outcome.acknowledged - (outcome.stored - outcome.drained_stored) - outcome.refused
    print(
        f"      store: {outcome.stored:,} readings, {outcome.refused} refused; acknowledged {outcome.acknowledged:,} "
        f"by the time it stopped; left on the broker in its session {outcome.drained:,} (of which already stored: "
        f"{outcome.drained_stored}); lost {outcome.lost}; delivered twice {twice}"
    )
    line = f"      ingest ratio (collector rate / bare rate) {outcome.rate / bare.rate:.3f}   goal >= 0.5, zero loss"
    if not outcome.finished and outcome.rate:
        line += f"; all {outcome.messages:,} would take {outcome.messages / outcome.rate:,.0f} s"
    print(line)


def run(quick: bool = False) -> None:
    logging.getLogger("amr").setLevel(logging.ERROR)
    messages, limits = (5_000, (5.0, 6.0)) if quick else (100_000, (30.0, 120.0))
    print(
        f"MQTT ingest benchmark: {messages:,} QoS 1 messages ({METERS:,} meters, amr JSON, one reading each) "
        f"from a publisher process through our own mosquitto; SQLite store"
    )
    with tempfile.TemporaryDirectory(prefix="amr-bench-mosquitto-") as tmp, mosquitto(Path(tmp)) as port:
        bare = bare_subscriber(port, messages, 120.0)
        _report(bare)
        _report(collector_run(port, messages, limits[0], "collector, default [collector]"), bare)
        _report(collector_run(port, messages, limits[1], 'collector, write_interval = "0ms"', write_interval="0ms"),
                bare)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mqtt_ingest")
    parser.add_argument("--publish", nargs=4, metavar=("PORT", "BASE", "METERS", "MESSAGES"), required=True,
                        help="be the publisher process (the benchmark starts it itself)")
    args = parser.parse_args(argv)
    port, base, meters, messages = args.publish
    timer = threading.Timer(LIFETIME, lambda: os._exit(1))
    timer.daemon = True
    timer.start()
    _publish(int(port), base, int(meters), int(messages))


if __name__ == "__main__":
    main()
