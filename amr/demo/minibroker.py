"""A tiny MQTT broker for the demo, used only when no real broker can be had.

Loopback only, in memory, one asyncio task per client. It speaks enough of MQTT 3.1.1 and 5.0
for the demo's publisher (paho, 3.1.1, QoS 1) and the collector's MQTT driver (paho, MQTT 5,
QoS 1, manual acknowledgement): CONNECT/CONNACK, PUBLISH with QoS 0 and 1 (PUBACK), SUBSCRIBE
and UNSUBSCRIBE with ``+`` / ``#`` filters and ``$share/<group>/`` prefixes, PINGREQ and
DISCONNECT. No retained messages, no wills, no persistent sessions, no QoS 2 (refused), no
authentication. It is not a broker for anything but `amr demo`; use Mosquitto for real work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from simulators.serving import LOOPBACK, Connections, Service

log = logging.getLogger("amr.demo.broker")

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC = 1, 2, 3, 4, 5
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14


class ProtocolViolation(Exception):
    """The client sent something this broker does not understand."""


def encode_length(length: int) -> bytes:
    """MQTT's variable byte integer."""
    out = bytearray()
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out)


def encode_string(text: str) -> bytes:
    """A UTF-8 string with its two-byte length."""
    data = text.encode("utf-8")
    return len(data).to_bytes(2, "big") + data


def packet(kind: int, flags: int, body: bytes) -> bytes:
    """A whole control packet."""
    return bytes([kind << 4 | flags]) + encode_length(len(body)) + body


class Reader:
    """Reads fields off one packet's body."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, count: int) -> bytes:
        if self.pos + count > len(self.data):
            raise ProtocolViolation("packet shorter than its fields")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def string(self) -> str:
        return self.take(self.u16()).decode("utf-8")

    def binary(self) -> bytes:
        return self.take(self.u16())

    def varint(self) -> int:
        value, shift = 0, 0
        while True:
            byte = self.byte()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 21:
                raise ProtocolViolation("malformed variable byte integer")

    def skip_properties(self) -> None:
        self.take(self.varint())

    def rest(self) -> bytes:
        return self.take(len(self.data) - self.pos)

    @property
    def left(self) -> int:
        return len(self.data) - self.pos


def topic_matches(pattern: str, topic: str) -> bool:
    """True when `topic` matches the filter `pattern` (``+`` one level, ``#`` the rest)."""
    if pattern.startswith("$share/"):
        pattern = pattern.split("/", 2)[2] if pattern.count("/") >= 2 else ""
    if topic.startswith("$") and not pattern.startswith("$"):
        return False
    wanted, levels = pattern.split("/"), topic.split("/")
    for index, part in enumerate(wanted):
        if part == "#":
            return True
        if index >= len(levels) or (part != "+" and part != levels[index]):
            return False
    return len(wanted) == len(levels)


@dataclass(eq=False)
class _Client:
    client_id: str
    version: int
    writer: asyncio.StreamWriter
    filters: dict[str, int] = field(default_factory=dict)
    next_id: int = 0

    def packet_id(self) -> int:
        self.next_id = self.next_id % 65535 + 1
        return self.next_id

    def send(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)


class MiniBroker(Service):
    """``async with MiniBroker() as broker:`` listens on 127.0.0.1:`broker.port` until the block ends."""

    def __init__(self, port: int = 0) -> None:
        """Listen on `port` (0: any free port)."""
        self.port = port
        self.clients: dict[str, _Client] = {}
        self.delivered = 0
        self._server: asyncio.Server | None = None
        self._connections = Connections()

    async def start(self) -> None:
        """Start listening on the loopback interface."""
        self._server = await asyncio.start_server(self._serve, LOOPBACK, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close every connection and stop listening."""
        await self._connections.close(self._server)
        self._server = None

    async def _read_packet(self, reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
        first = (await reader.readexactly(1))[0]
        length, shift = 0, 0
        while True:
            byte = (await reader.readexactly(1))[0]
            length |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift > 21:
                raise ProtocolViolation("malformed remaining length")
        return first >> 4, first & 0x0F, await reader.readexactly(length)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._connections.serving(writer):
            client: _Client | None = None
            try:
                kind, _, body = await asyncio.wait_for(self._read_packet(reader), 10)
                if kind != CONNECT:
                    return
                client = self._connect(body, writer)
                while True:
                    kind, flags, body = await self._read_packet(reader)
                    if kind == PUBLISH:
                        self._publish(client, flags, body)
                    elif kind == SUBSCRIBE:
                        self._subscribe(client, body)
                    elif kind == UNSUBSCRIBE:
                        self._unsubscribe(client, body)
                    elif kind == PINGREQ:
                        client.send(packet(PINGRESP, 0, b""))
                    elif kind == DISCONNECT:
                        return
                    elif kind not in (PUBACK,):
                        raise ProtocolViolation(f"packet type {kind} is not supported by the demo broker")
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, asyncio.CancelledError):
                pass
            except (ProtocolViolation, UnicodeDecodeError) as exc:
                log.debug("demo broker: dropping a client: %s", exc)
            finally:
                if client is not None and self.clients.get(client.client_id) is client:
                    del self.clients[client.client_id]
                writer.close()

    def _connect(self, body: bytes, writer: asyncio.StreamWriter) -> _Client:
        r = Reader(body)
        if r.string() not in ("MQTT", "MQIsdp"):
            raise ProtocolViolation("not MQTT")
        version = r.byte()
        flags = r.byte()
        r.u16()  # keep alive: the demo does not time clients out
        if version == 5:
            r.skip_properties()
        client_id = r.string() or f"auto-{id(writer):x}"
        if flags & 0x04:  # will
            if version == 5:
                r.skip_properties()
            r.string()
            r.binary()
        old = self.clients.get(client_id)
        if old is not None:
            old.writer.close()  # a client id is one session: the newer connection takes over
        client = _Client(client_id, version, writer)
        self.clients[client_id] = client
        if version == 5:
            client.send(packet(CONNACK, 0, bytes([0, 0]) + encode_length(0)))
        else:
            client.send(packet(CONNACK, 0, bytes([0, 0])))
        return client

    def _publish(self, sender: _Client, flags: int, body: bytes) -> None:
        qos = (flags >> 1) & 0x03
        r = Reader(body)
        topic = r.string()
        packet_id = r.u16() if qos else 0
        if sender.version == 5:
            r.skip_properties()
        payload = r.rest()
        if qos == 2:
            raise ProtocolViolation("QoS 2 is not supported by the demo broker")
        if qos == 1:
            sender.send(packet(PUBACK, 0, packet_id.to_bytes(2, "big")))
        for client in list(self.clients.values()):
            granted = max((q for f, q in client.filters.items() if topic_matches(f, topic)), default=None)
            if granted is None:
                continue
            out_qos = min(qos, granted)
            header = encode_string(topic)
            if out_qos:
                header += client.packet_id().to_bytes(2, "big")
            if client.version == 5:
                header += encode_length(0)
            client.send(packet(PUBLISH, out_qos << 1, header + payload))
            self.delivered += 1

    def _subscribe(self, client: _Client, body: bytes) -> None:
        r = Reader(body)
        packet_id = r.u16()
        if client.version == 5:
            r.skip_properties()
        codes = bytearray()
        while r.left:
            topic = r.string()
            options = r.byte()
            qos = min(options & 0x03, 1)
            client.filters[topic] = qos
            codes.append(qos)
        props = encode_length(0) if client.version == 5 else b""
        client.send(packet(SUBACK, 0, packet_id.to_bytes(2, "big") + props + bytes(codes)))

    def _unsubscribe(self, client: _Client, body: bytes) -> None:
        r = Reader(body)
        packet_id = r.u16()
        if client.version == 5:
            r.skip_properties()
        codes = bytearray()
        while r.left:
            found = client.filters.pop(r.string(), None)
            codes.append(0 if found is not None else 0x11)
        extra = encode_length(0) + bytes(codes) if client.version == 5 else b""
        client.send(packet(UNSUBACK, 0, packet_id.to_bytes(2, "big") + extra))


async def serve_forever(port: int = 1883) -> None:
    """Run a broker until cancelled (``python -m amr.demo.minibroker``)."""
    async with MiniBroker(port) as broker:
        print(f"demo MQTT broker on {LOOPBACK}:{broker.port}", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever())
