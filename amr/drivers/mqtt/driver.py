"""The MQTT push driver: subscribe to gateways' topics and hand every meter's values to a sink.

Delivery is at least once, and nothing published while the collector is down is lost:

- MQTT 5 with a fixed client id, ``clean_start`` False and a Session Expiry Interval (default
  7 days): the broker keeps the subscriptions and queues QoS 1 messages while we are away or
  busy. Mosquitto drops what exceeds ``max_queued_messages`` per client (1000 by default):
  raise it (0 = no limit) on an АСКУЭ broker.
- Manual acknowledgement: a QoS 1/2 message is acknowledged only after the sink returned for
  every meter in it. A message in hand when the process dies, or when the connection drops, is
  not acknowledged and the broker sends it again; the store treats the repeat as ``duplicate``.
- Receive Maximum bounds the unacknowledged messages the broker sends ahead, so the hand-off
  queue stays small when the sink is slow.
- Optional shared subscription ``$share/<shared_group>/<topic>``: collectors in one group split
  the stream; each needs its own ``client_id``.

paho runs its network thread (``loop_start``) and passes messages to asyncio with
``call_soon_threadsafe``; decoding (`amr.drivers.mqtt.payloads`) and the sink run on the event
loop. `MqttDriver.run` raises `ConnectError` when the broker cannot be reached at start (after
``bus.retries`` retries, waiting ``bus.retry_backoff`` doubled each time; ``bus.timeout`` per
attempt) or refuses us (credentials, client id) or a subscription; once connected, paho
reconnects on its own with exponential backoff from 1 s to 60 s, and messages keep coming.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from amr.config import BusConfig, MeterConfig
from amr.drivers.base import PushDriver, Sink
from amr.drivers.mqtt.payloads import PayloadDecoder
from amr.drivers.mqtt.settings import MqttBusSettings
from amr.errors import ConfigError, ConnectError

log = logging.getLogger(__name__)

DEFAULT_PORT = 1883
SESSION_EXPIRY = timedelta(days=7)
RECEIVE_MAXIMUM = 1000
KEEPALIVE_S = 30
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 60


def broker_address(url: str) -> tuple[str, int]:
    """Host and port of ``mqtt://host:port`` (or ``tcp://``); `ConfigError` when the URL is unusable."""
    parts = urlsplit(url)
    try:
        port = DEFAULT_PORT if parts.port is None else parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname or port < 1 or parts.path not in ("", "/"):
        raise ConfigError(f"bus url {url!r}: write it as mqtt://host:1883")
    return parts.hostname, port


def subscription_filters(bus: BusConfig) -> list[str]:
    """The topic filters subscribed to: the bus's ``topics``, under ``$share/<group>/`` with a shared group."""
    own = MqttBusSettings.of(bus)
    for topic in own.topics:
        levels = topic.split("/")
        # MQTT: + and # fill a whole level, # only the last one; no NUL characters
        if not topic or "\0" in topic or any(
            ("+" in level and level != "+") or ("#" in level and (level != "#" or i < len(levels) - 1))
            for i, level in enumerate(levels)
        ):
            raise ConfigError(f"bus {bus.name!r}: {topic!r} is not an MQTT topic filter; e.g. meters/+/energy")
    if any(c in own.shared_group for c in "/+#"):
        raise ConfigError(f"bus {bus.name!r}: shared_group {own.shared_group!r} must not contain / + #")
    if own.shared_group:
        return [f"$share/{own.shared_group}/{topic}" for topic in own.topics]
    return list(own.topics)


@dataclass(frozen=True, slots=True)
class _Incoming:
    generation: int  # the connection it came on; an ack on a later one would hit another message
    mid: int
    qos: int
    topic: str
    payload: bytes
    received_at: datetime


class MqttDriver(PushDriver):
    """Subscribes to the bus's ``topics`` on an MQTT broker and delivers decoded `MeterValues` to a sink."""

    kind = "mqtt"
    source = "askue:mqtt"

    def __init__(
        self,
        bus: BusConfig,
        meters: Sequence[MeterConfig],
        *,
        client_id: str | None = None,
        tz: tzinfo | None = None,
        session_expiry: timedelta = SESSION_EXPIRY,
    ) -> None:
        super().__init__(bus, meters, tz=tz or UTC)
        if bus.kind != "mqtt":
            raise ConfigError(f"bus {bus.name!r} is {bus.kind}, not mqtt")
        self.host, self.port = broker_address(bus.url)
        self.settings = own = MqttBusSettings.of(bus)
        chosen = client_id or own.client_id
        if own.shared_group and not chosen:
            raise ConfigError(
                f"bus {bus.name!r}: with shared_group every collector needs its own client_id"
            )
        self.client_id = chosen or f"amr-{bus.name}"
        self.filters = subscription_filters(bus)
        self.session_expiry = session_expiry
        self.decoder = PayloadDecoder(own.payload, own.mapping, self.meters, self.filters, tz)
        self.delivered = 0  # messages handed to the sink and acknowledged since construction
        self._lock = threading.Lock()
        self._generation = 0
        self._subscribed: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None

    def _event(self) -> asyncio.Event:
        loop = asyncio.get_running_loop()
        if self._subscribed is None or self._subscribed[0] is not loop:
            self._subscribed = (loop, asyncio.Event())
        return self._subscribed[1]

    async def wait_subscribed(self, timeout: float | None = None) -> None:
        """Wait until `run` is connected and subscribed (raises TimeoutError after `timeout` s)."""
        async with asyncio.timeout(timeout):
            await self._event().wait()

    async def run(self, sink: Sink) -> None:
        """Deliver values to `sink` until cancelled; acknowledge each message after the sink returned."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[_Incoming | BaseException] = asyncio.Queue()
        started: asyncio.Future[None] = loop.create_future()
        subscribed = self._event()
        subscribed.clear()
        client = self._client(loop, queue, started, subscribed)
        try:
            await self._connect(client)
            client.loop_start()
            try:
                async with asyncio.timeout(KEEPALIVE_S):
                    await started
            except TimeoutError:
                where = f"{self.host}:{self.port}"
                raise ConnectError(f"MQTT broker {where} did not answer in {KEEPALIVE_S} s") from None
            in_flight: collections.deque[tuple[_Incoming, asyncio.Task[None]]] = collections.deque()
            failed: list[BaseException] = []

            def acknowledge(_: object = None) -> None:
                # MQTT requires PUBACKs in the order the PUBLISHes came: ack the done prefix only.
                while in_flight and in_flight[0][1].done() and not failed:
                    item, task = in_flight.popleft()
                    error = asyncio.CancelledError() if task.cancelled() else task.exception()
                    if error is not None:
                        failed.append(error)
                        queue.put_nowait(error)  # wake the loop below: `run` ends with the sink's error
                        return
                    self._ack(client, item)

            try:
                while True:
                    item = await queue.get()
                    if isinstance(item, BaseException):
                        raise item
                    if failed:
                        raise failed[0]
                    # Messages are handled concurrently (up to the broker's Receive Maximum in flight),
                    # so a backlog fills the writer's batches instead of waiting one message at a time.
                    task = asyncio.create_task(self._deliver(sink, item))
                    in_flight.append((item, task))
                    task.add_done_callback(acknowledge)
            finally:
                for _, task in in_flight:
                    task.cancel()
                await asyncio.gather(*(t for _, t in in_flight), return_exceptions=True)
        finally:
            subscribed.clear()
            await asyncio.shield(asyncio.to_thread(_stop, client))

    async def _deliver(self, sink: Sink, item: _Incoming) -> None:
        decoded = self.decoder.decode(item.topic, item.payload, item.received_at)
        if not decoded and self.decoder.ignored[item.topic] == 1:
            log.info(
                "MQTT %s: %s carries no energy and names no configured meter; its messages are counted "
                "(MqttDriver.ignored), not stored, and this is said once", self.bus.name, item.topic,
            )
        for values in decoded:
            await sink(values)

    @property
    def ignored(self) -> Mapping[str, int]:
        """Messages without energy from devices that are no configured meter, by topic."""
        return self.decoder.ignored

    async def _connect(self, client: paho.Client) -> None:
        """Open the connection; `bus.retries` more attempts with exponential backoff, then `ConnectError`."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = int(self.session_expiry.total_seconds())
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        delay = self.bus.retry_backoff.total_seconds()
        for attempt in range(1, self.bus.retries + 2):
            trying = asyncio.ensure_future(asyncio.to_thread(
                client.connect, self.host, self.port, KEEPALIVE_S, clean_start=False, properties=props
            ))
            try:
                await asyncio.shield(trying)
                return
            except OSError as exc:  # refused, unreachable, timeout, unknown host
                error = exc
            except asyncio.CancelledError:  # let the attempt (at most bus.timeout) end before closing
                await asyncio.wait([trying])
                raise
            log.warning("MQTT %s: cannot reach %s:%s (attempt %d): %s", self.bus.name, self.host, self.port,
                        attempt, error)
            if attempt <= self.bus.retries:
                await asyncio.sleep(delay)
                delay *= 2
        raise ConnectError(
            f"cannot reach the MQTT broker at {self.host}:{self.port} after {attempt} attempt(s): {error}"
        )

    def _ack(self, client: paho.Client, item: _Incoming) -> None:
        with self._lock:
            if item.qos and item.generation == self._generation:
                client.ack(item.mid, item.qos)
            elif item.qos:
                log.info("MQTT %s: reconnected before the ack of %s; it comes again", self.bus.name, item.mid)
            self.delivered += 1

    def _client(
        self,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[_Incoming | BaseException],
        started: asyncio.Future[None],
        subscribed: asyncio.Event,
    ) -> paho.Client:
        name, where = self.bus.name, f"{self.host}:{self.port}"

        def post(callback: Any, *args: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the event loop is closed: run() has ended
                loop.call_soon_threadsafe(callback, *args)

        def fail(error: BaseException) -> None:
            if not started.done():
                started.set_exception(error)
            else:
                queue.put_nowait(error)

        def start(error: BaseException | None) -> None:
            if started.done():
                return
            if error is None:
                started.set_result(None)
            else:
                started.set_exception(error)

        def on_connect(
            client: paho.Client, _: Any, flags: paho.ConnectFlags, reason: ReasonCode, __: Any
        ) -> None:
            if reason.is_failure:
                log.warning("MQTT %s: broker %s refused the connection: %s", name, where, reason)
                post(start, ConnectError(f"MQTT broker {where} refused the connection: {reason}"))
                return
            with self._lock:
                self._generation += 1
            log.info("MQTT %s: connected to %s as %s (session present: %s)", name, where, self.client_id,
                     flags.session_present)
            # retained messages only for a new subscription, not again on every reconnect
            options = SubscribeOptions(self.settings.qos, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
            try:
                client.subscribe([(topic, options) for topic in self.filters])
            except Exception as exc:  # an exception here would end paho's thread
                post(fail, ConnectError(f"MQTT {name}: cannot subscribe to {self.filters}: {exc}"))

        def on_subscribe(_: paho.Client, __: Any, mid: int, reasons: list[ReasonCode], ___: Any) -> None:
            refused = [f"{t}: {r}" for t, r in zip(self.filters, reasons, strict=False) if r.is_failure]
            if refused:
                post(fail, ConnectError(f"MQTT broker {where} refused the subscription {'; '.join(refused)}"))
                return
            post(subscribed.set)
            post(start, None)

        def on_message(_: paho.Client, __: Any, message: paho.MQTTMessage) -> None:
            try:
                topic = message.topic
            except UnicodeDecodeError:
                topic = "<topic is not UTF-8>"
            payload = bytes(message.payload)
            item = _Incoming(self._generation, message.mid, message.qos, topic, payload, _now())
            post(queue.put_nowait, item)

        def on_disconnect(_: paho.Client, __: Any, ___: Any, reason: ReasonCode, ____: Any) -> None:
            with self._lock:
                self._generation += 1
            post(subscribed.clear)
            if reason.is_failure:
                log.warning("MQTT %s: lost the connection to %s (%s); reconnecting", name, where, reason)

        def on_connect_fail(_: paho.Client, __: Any) -> None:
            log.warning("MQTT %s: cannot reach the broker at %s; retrying with backoff", name, where)

        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=paho.MQTTv5, manual_ack=True
        )
        if self.settings.username:
            client.username_pw_set(self.settings.username, self.settings.password or None)
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.connect_timeout = self.bus.timeout.total_seconds()
        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        client.on_disconnect = on_disconnect
        client.on_connect_fail = on_connect_fail
        return client


def _now() -> datetime:
    return datetime.now(UTC)


def _stop(client: paho.Client) -> None:
    """Disconnect cleanly (the session stays on the broker) and end paho's thread."""
    client.disconnect()
    client.loop_stop()
