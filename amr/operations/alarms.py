"""Alarms for tampering and power loss: an MQTT message and/or an HTTP webhook, retried until delivered.

An alarming event is stored with ``alarm = 'pending'`` in the same statement that stores the
event (`amr.store.events.save_events`), so an alarm is never lost: the sender delivers the
pending ones oldest first, marks each ``sent`` once every configured destination took it, and
after a failure tries again every ``[events.alarm] retry``; a restart finds what was left
pending in the table. A destination that took an alarm before a failure of the other may get
it twice: receivers key on ``id``.

The message (JSON, UTF-8), the same for both destinations::

    {"id": 17, "meter": "01100017", "timestamp": "2026-01-15T03:04:05+00:00", "code": "tamper.cover_opened",
     "category": "tamper", "severity": "critical", "text_ru": "...", "text_en": "...", "detail": "", "raw": {...}}

MQTT: published with QoS 1 to the topic of ``mqtt://host:port/topic`` (paho's blocking
``publish.single``, in a thread). Webhook: ``POST`` with ``Content-Type: application/json``; any
2xx answer is delivery.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from amr.errors import AmrError, StoreError
from amr.operations.settings import AlarmConfig
from amr.store import Store
from amr.store.events import StoredEvent, mark_alarm, pending_alarms

log = logging.getLogger("amr.alarms")


class DeliveryError(AmrError):
    """An alarm destination did not take the message."""


def message(event: StoredEvent) -> dict[str, Any]:
    """The alarm's JSON body."""
    body = event.as_dict()
    return {k: body[k] for k in ("id", "meter", "timestamp", "code", "category", "severity",
                                 "text_ru", "text_en", "detail", "raw")}


def publish_mqtt(url: str, payload: bytes, timeout: float) -> None:
    """Publish `payload` with QoS 1 to the topic of ``mqtt://host:port/topic``; `DeliveryError` on failure."""
    from paho.mqtt import publish

    parts = urlsplit(url)
    topic = parts.path.lstrip("/")
    try:
        publish.single(
            topic, payload, qos=1, hostname=parts.hostname or "127.0.0.1", port=parts.port or 1883,
            keepalive=max(5, int(timeout)),
        )
    except (OSError, ValueError) as exc:
        raise DeliveryError(f"MQTT {parts.hostname}:{parts.port or 1883}: {exc}") from exc


def post_webhook(url: str, payload: bytes, timeout: float) -> None:
    """POST `payload` as JSON; `DeliveryError` unless the answer is 2xx."""
    request = urllib.request.Request(url, data=payload, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # the URL is checked: http(s) only
            status = answer.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        raise DeliveryError(f"webhook {urlsplit(url).netloc}: {exc}") from exc
    if not 200 <= status < 300:
        raise DeliveryError(f"webhook {urlsplit(url).netloc} answered HTTP {status}")


class AlarmSender:
    """Delivers pending alarms until stopped."""

    def __init__(self, store: Store, serials: Mapping[int, str], config: AlarmConfig) -> None:
        """`serials`: meter id → serial."""
        self.store = store
        self.serials = serials
        self.config = config
        self.wake = asyncio.Event()

    def deliver(self, event: StoredEvent) -> None:
        """Send one alarm to every destination (blocking)."""
        payload = json.dumps(message(event), ensure_ascii=False).encode()
        timeout = self.config.timeout.total_seconds()
        if self.config.mqtt:
            publish_mqtt(self.config.mqtt, payload, timeout)
        if self.config.webhook:
            post_webhook(self.config.webhook, payload, timeout)

    def send_pending(self) -> tuple[int, int]:
        """One pass over the pending alarms (blocking): (sent, failed); stops at the first failure."""
        sent = 0
        for event in pending_alarms(self.store, self.serials):
            try:
                self.deliver(event)
            except DeliveryError as exc:
                mark_alarm(self.store, event.id, sent=False)
                log.warning("alarm %d (%s, meter %s) not delivered: %s", event.id, event.event.code, event.serial, exc)
                return sent, 1
            mark_alarm(self.store, event.id, sent=True)
            sent += 1
        return sent, 0

    async def run(self, stop: asyncio.Event) -> None:
        """Send pending alarms now, when woken, and every ``retry`` until `stop` is set."""
        retry = self.config.retry.total_seconds()
        while not stop.is_set():
            self.wake.clear()
            try:
                await asyncio.to_thread(self.send_pending)
            except StoreError as exc:
                log.warning("pending alarms not read: %s", exc)
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.wake.wait())]
            await asyncio.wait(waits, timeout=retry, return_when=asyncio.FIRST_COMPLETED)
            for waiting in waits:
                waiting.cancel()


__all__ = ["AlarmSender", "DeliveryError", "message", "post_webhook", "publish_mqtt"]
