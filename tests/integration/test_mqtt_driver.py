"""The MQTT driver against the real Mosquitto on 127.0.0.1:1883.

Messages come from the ``mosquitto_pub`` command-line tool (a peer not written here) and from
our publisher simulator. Every test uses its own topic prefix and client ids, and sessions
expire 60 s after a test, so tests never see each other's messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from amr.config import BusConfig, MeterConfig
from amr.core.domain import Channel
from amr.demo.broker import mosquitto_binary, mosquitto_conf, started_mosquitto
from amr.drivers.base import MeterValues
from amr.drivers.mqtt.driver import MqttDriver, broker_address, subscription_filters
from amr.errors import ConfigError, ConnectError
from simulators.model import Faults, VirtualMeter
from simulators.mqtt_publisher import MqttPublisher
from tests.support.broker import HOST, PORT, require_broker

T = TypeVar("T")
EXPIRY = timedelta(seconds=60)


def run(coro: Coroutine[Any, Any, T], timeout: float = 15) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def unique(name: str = "t") -> str:
    return f"amrtest/{name}-{uuid.uuid4().hex[:12]}"


def bus(topics: list[str], **fields: Any) -> BusConfig:
    return BusConfig(name="mqtt-test", kind="mqtt", url=f"mqtt://{HOST}:{PORT}", topics=topics, **fields)


def driver(config: BusConfig, meters: list[MeterConfig] | None = None, client_id: str | None = None) -> MqttDriver:
    client = client_id or f"amrtest-{uuid.uuid4().hex[:10]}"
    return MqttDriver(config, meters or [], client_id=client, session_expiry=EXPIRY)


def mosquitto_pub(topic: str, *messages: str, qos: int = 1) -> None:
    for message in messages:
        cmd = ["mosquitto_pub", "-h", HOST, "-p", str(PORT), "-q", str(qos), "-t", topic, "-m", message]
        subprocess.run(cmd, check=True, timeout=10)


class Collect:
    """A sink that keeps what it is given."""

    def __init__(self) -> None:
        self.values: list[MeterValues] = []

    async def __call__(self, values: MeterValues) -> None:
        self.values.append(values)

    async def until(self, count: int, timeout: float = 5.0) -> list[MeterValues]:
        deadline = time.monotonic() + timeout
        while len(self.values) < count:
            assert time.monotonic() < deadline, f"got {len(self.values)} of {count}: {self.values[-3:]}"
            await asyncio.sleep(0.01)
        return self.values


@contextlib.asynccontextmanager
async def running(mqtt: MqttDriver, sink: Any) -> AsyncIterator[asyncio.Task[None]]:
    """Run the driver until the block ends; enter once it is subscribed."""
    task = asyncio.create_task(mqtt.run(sink))
    ready = asyncio.create_task(mqtt.wait_subscribed(5))
    await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        ready.cancel()
        task.result()
    await ready
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture(scope="module", autouse=True)
def broker() -> None:
    require_broker()


@pytest.mark.mqtt
def test_messages_from_mosquitto_pub_are_decoded() -> None:
    base = unique("pub")
    meters = [MeterConfig(serial="0012345678", address="gw-7"), MeterConfig(serial="77")]
    mqtt = driver(bus([f"{base}/+/energy"]), meters)
    amr = {"meter": "77", "ts": "2026-01-01T00:00:00+03:00",
           "tariffs": {"0": {"a_plus": "1234.567", "r_plus": 5.5}, "1": {"a_plus": "1000.001"}}}

    async def scenario() -> list[MeterValues]:
        sink = Collect()
        async with running(mqtt, sink):
            mosquitto_pub(f"{base}/x/energy", json.dumps(amr))
            mosquitto_pub(f"{base}/gw-7/energy", "this is not JSON", '{"a_minus": "0.5", "unit": "kWh"}')
            return await sink.until(3)

    first, garbled, flat = run(scenario())
    assert first.serial == "77"
    assert first.tariffs == {0: {Channel.A_PLUS: 1_234_567, Channel.R_PLUS: 5_500}, 1: {Channel.A_PLUS: 1_000_001}}
    assert first.meter_time is not None and first.meter_time.utcoffset() == timedelta(0)
    assert (garbled.serial, garbled.tariffs) == ("0012345678", {0: {}})  # the driver goes on after it
    assert garbled.raw["payload"] == "this is not JSON" and "payload" in garbled.errors
    assert (flat.serial, flat.tariffs) == ("0012345678", {0: {Channel.A_MINUS: 500}})


@pytest.mark.mqtt
def test_tasmota_sml_from_mosquitto_pub() -> None:
    base = unique("tasmota")
    mqtt = driver(bus([f"{base}/tele/+/SENSOR"], payload="tasmota-sml"), [MeterConfig(serial="E1", address="dev1")])
    message = '{"Time":"2026-01-01T12:00:00","SML":{"Total_in":1234.5678,"Total_out":12.0001,"Power_curr":431}}'

    async def scenario() -> list[MeterValues]:
        sink = Collect()
        async with running(mqtt, sink):
            mosquitto_pub(f"{base}/tele/dev1/SENSOR", message)
            return await sink.until(1)

    (values,) = run(scenario())
    assert values.serial == "E1"
    assert values.tariffs == {0: {Channel.A_PLUS: 1_234_568, Channel.A_MINUS: 12_000}}


@pytest.mark.mqtt
@pytest.mark.parametrize("payload", ["amr", "tasmota-sml"])
def test_publisher_simulator_to_driver(payload: Any) -> None:
    base = unique("sim")
    meters = [VirtualMeter(serial=f"SIM{n}", tariffs=1 + n % 3, solar_kw=n % 2 * 3.0) for n in range(5)]
    meters.append(VirtualMeter(serial="QUIET", faults=Faults(silent=True)))
    mqtt = driver(bus([f"{base}/+/data"], payload=payload), [MeterConfig(serial=m.serial) for m in meters])
    publisher = MqttPublisher(meters, payload=payload, topic=base + "/{serial}/data", record=True)

    async def scenario() -> list[MeterValues]:
        sink = Collect()
        async with running(mqtt, sink):
            with publisher:
                await publisher.run_async(count=2, period=0.05)
            return await sink.until(10)

    received = run(scenario())
    assert publisher.published == 10
    assert sorted((v.serial, v.tariffs) for v in received) == sorted((p.serial, p.tariffs) for p in publisher.sent)
    assert all(not v.errors for v in received)


@pytest.mark.mqtt
def test_messages_published_while_the_driver_is_down_arrive_after_restart() -> None:
    base = unique("persist")
    config = bus([f"{base}/+/energy"])
    client_id = f"amrtest-persist-{uuid.uuid4().hex[:8]}"

    async def scenario() -> tuple[list[MeterValues], list[MeterValues]]:
        before, after = Collect(), Collect()
        async with running(driver(config, client_id=client_id), before):
            mosquitto_pub(f"{base}/M0/energy", '{"a_plus": "1"}')
            await before.until(1)
        # the collector is down: QoS 1 messages wait in its session on the broker
        mosquitto_pub(f"{base}/M1/energy", '{"a_plus": "2"}', '{"a_plus": "3"}', '{"a_plus": "4"}')
        async with running(driver(config, client_id=client_id), after):
            await after.until(3)
            await asyncio.sleep(0.2)  # and nothing else comes
        return before.values, after.values

    before, after = run(scenario())
    assert [v.tariffs[0][Channel.A_PLUS] for v in before] == [1_000]
    assert [v.tariffs[0][Channel.A_PLUS] for v in after] == [2_000, 3_000, 4_000]


@pytest.mark.mqtt
def test_a_message_is_acknowledged_only_after_the_sink_returned() -> None:
    base = unique("ack")
    config = bus([f"{base}/+/energy"])
    client_id = f"amrtest-ack-{uuid.uuid4().hex[:8]}"

    async def failing(values: MeterValues) -> None:
        raise RuntimeError("the store went away")

    async def scenario() -> list[MeterValues]:
        crashing = driver(config, client_id=client_id)
        task = asyncio.create_task(crashing.run(failing))
        await crashing.wait_subscribed(5)
        mosquitto_pub(f"{base}/M1/energy", '{"a_plus": "7"}')
        with pytest.raises(RuntimeError, match="store went away"):
            await task
        assert crashing.delivered == 0
        again = Collect()
        async with running(driver(config, client_id=client_id), again):
            return await again.until(1)  # the broker sends the unacknowledged message again

    (values,) = run(scenario())
    assert values.tariffs == {0: {Channel.A_PLUS: 7_000}}


class Proxy:
    """A TCP relay to the broker whose connections can be cut, to make the driver reconnect."""

    def __init__(self) -> None:
        self.links: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._relay, HOST, 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(HOST, PORT)
        self.links += [writer, up_writer]

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self) -> None:
        for link in self.links:
            link.transport.abort()
        self.links.clear()


@pytest.mark.mqtt
def test_after_a_lost_connection_it_reconnects_and_nothing_is_lost() -> None:
    base = unique("reconnect")
    proxy = Proxy()
    release = asyncio.Event()
    seen: list[int | None] = []

    async def slow(values: MeterValues) -> None:
        seen.append(values.tariffs[0][Channel.A_PLUS])
        if len(seen) == 1:
            await release.wait()  # still in the sink when the connection goes

    async def scenario() -> None:
        port = await proxy.start()
        config = bus([f"{base}/+/energy"]).model_copy(update={"url": f"mqtt://{HOST}:{port}"})
        mqtt = driver(config)
        async with running(mqtt, slow):
            mosquitto_pub(f"{base}/M1/energy", '{"a_plus": "1"}')
            while not seen:
                await asyncio.sleep(0.01)
            proxy.cut()
            mosquitto_pub(f"{base}/M1/energy", '{"a_plus": "2"}')  # sent while we are away
            release.set()  # the sink returns after the connection was lost: no ack for it
            await mqtt.wait_subscribed(5)  # paho reconnected after its 1 s backoff
            deadline = time.monotonic() + 5
            while len(seen) < 3 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        proxy.server.close()

    run(scenario())
    assert seen == [1_000, 1_000, 2_000]  # the unacknowledged message again, then the one sent meanwhile


@pytest.mark.mqtt
def test_a_shared_subscription_splits_the_stream_without_loss_or_doubles() -> None:
    base, group = unique("share"), f"g{uuid.uuid4().hex[:8]}"
    config = bus([f"{base}/+/energy"], shared_group=group)
    meters = [VirtualMeter(serial=f"S{n:03d}") for n in range(60)]
    publisher = MqttPublisher(meters, topic=base + "/{serial}/energy")

    async def scenario() -> tuple[list[MeterValues], list[MeterValues]]:
        one, two = Collect(), Collect()
        async with running(driver(config), one), running(driver(config), two):
            with publisher:
                await asyncio.to_thread(publisher.publish_round)
            deadline = time.monotonic() + 5
            while len(one.values) + len(two.values) < 60 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
        return one.values, two.values

    one, two = run(scenario())
    serials = [v.serial for v in one + two]
    assert sorted(serials) == [m.serial for m in meters]  # each exactly once
    assert one and two  # both members took a share


@pytest.mark.mqtt
def test_a_burst_is_received_completely() -> None:
    # 900: Mosquitto drops messages for a subscriber beyond max_queued_messages (1000 by default)
    base = unique("burst")
    meters = [VirtualMeter(serial=f"B{n:03d}") for n in range(100)]
    mqtt = driver(bus([f"{base}/+/energy"]))
    publisher = MqttPublisher(meters, topic=base + "/{serial}/energy")

    async def scenario() -> tuple[int, float]:
        sink = Collect()
        async with running(mqtt, sink):
            started = time.perf_counter()
            with publisher:
                await asyncio.to_thread(publisher.publish_burst, 900)
            await sink.until(900, timeout=20)
            return len(sink.values), time.perf_counter() - started

    count, _seconds = run(scenario(), timeout=30)
    assert count == 900 and mqtt.delivered == 900


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])  # nobody listens here once the socket is closed


def test_no_broker_raises_connect_error_after_retries_with_backoff() -> None:
    port = closed_port()
    config = BusConfig(name="gone", kind="mqtt", url=f"mqtt://{HOST}:{port}", topics=["x/#"],
                       retries=2, retry_backoff=timedelta(milliseconds=100))
    started = time.monotonic()
    with pytest.raises(ConnectError, match=rf"{port} after 3 attempt\(s\)"):
        run(MqttDriver(config, []).run(Collect()))
    assert 0.3 <= time.monotonic() - started < 3  # waited 0.1 s, then 0.2 s


def test_cancel_while_retrying_stops_at_once() -> None:
    config = BusConfig(name="gone", kind="mqtt", url=f"mqtt://{HOST}:{closed_port()}", topics=["x/#"],
                       retries=5, retry_backoff=timedelta(seconds=10))

    async def scenario() -> float:
        task = asyncio.create_task(MqttDriver(config, []).run(Collect()))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return time.monotonic() - started

    assert run(scenario()) < 1


@pytest.mark.parametrize("url", ["mqtt://", "mqtt://host:0", "mqtt://host:99999", "mqtt://host:1883/path"])
def test_unusable_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match="mqtt://host:1883"):
        broker_address(url)


def test_shared_group_needs_client_ids_and_prefixes_topics() -> None:
    config = bus(["a/+/b", "c/#"], shared_group="collectors")
    with pytest.raises(ConfigError, match="client_id"):
        MqttDriver(config, [])
    assert subscription_filters(config) == ["$share/collectors/a/+/b", "$share/collectors/c/#"]
    assert broker_address("mqtt://10.0.0.5") == ("10.0.0.5", 1883)
    assert MqttDriver(bus(["a/+/b"]), []).client_id == "amr-mqtt-test"


@pytest.mark.parametrize(("topics", "group"), [(["a/#/b"], ""), (["a/b+"], ""), ([""], ""), (["a/+"], "g/1")])
def test_bad_topic_filters_and_groups_are_config_errors(topics: list[str], group: str) -> None:
    with pytest.raises(ConfigError, match=r"not an MQTT topic filter|must not contain"):
        subscription_filters(bus(topics, shared_group=group))


# Payloads as Tasmota devices publish them: energy monitoring with tariffs (Tasmota ≥ 8.3.1.2, from a
# POW device's log), the same before 8.3.1.2 ("Total": [total, T1, T2], from arendst/Tasmota#6429),
# and a thermometer on the same tele/+/SENSOR filter.
TASMOTA_TARIFFS = (
    '{"Time":"2024-11-12T23:01:05","ENERGY":{"TotalStartTime":"2024-02-20T22:54:12","Total":711.792,'
    '"TotalTariff":[96.965,614.826],"Yesterday":9.928,"Today":10.541,"Period":12,"Power":734,'
    '"ApparentPower":769,"ReactivePower":230,"Factor":0.95,"Voltage":242,"Current":3.182}}'
)
TASMOTA_EXPORT = (
    '{"Time":"2024-11-12T23:01:05","ENERGY":{"TotalStartTime":"2018-11-23T15:33:47","Total":0.017,'
    '"TotalTariff":[0.000,0.017],"Yesterday":0.000,"Today":0.002,"ExportActive":0.005,'
    '"ExportTariff":[0.001,0.004],"Period":0.00,"Power":0.00,"Voltage":234.31}}'
)
TASMOTA_OLD_TOTAL = (
    '{"Time":"2019-09-22T09:47:11","ENERGY":{"TotalStartTime":"2019-09-22T06:59:59","Total":[0.29,263.00,0.00],'
    '"Yesterday":0.00,"Today":0.29,"Period":2,"Power":759,"ApparentPower":1155,"ReactivePower":870,'
    '"Factor":0.66,"Voltage":233,"Current":4.95}}'
)
TASMOTA_THERMOMETER = '{"Time":"2024-11-12T23:01:05","DS18B20":{"Id":"01144C2D80AA","Temperature":21.4},"TempUnit":"C"}'


@pytest.mark.mqtt
def test_real_tasmota_energy_payloads_keep_their_tariffs_and_a_thermometer_is_counted_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    base = unique("tasmota-energy")
    meters = [MeterConfig(serial="POW-1", address="pow1"), MeterConfig(serial="POW-2", address="pow2"),
              MeterConfig(serial="POW-3", address="pow3")]
    mqtt = driver(bus([f"{base}/tele/+/SENSOR"], payload="tasmota-sml"), meters)

    async def scenario() -> list[MeterValues]:
        sink = Collect()
        async with running(mqtt, sink):
            mosquitto_pub(f"{base}/tele/thermo/SENSOR", TASMOTA_THERMOMETER, TASMOTA_THERMOMETER)
            mosquitto_pub(f"{base}/tele/pow1/SENSOR", TASMOTA_TARIFFS)
            mosquitto_pub(f"{base}/tele/pow2/SENSOR", TASMOTA_EXPORT)
            mosquitto_pub(f"{base}/tele/thermo/SENSOR", TASMOTA_THERMOMETER)
            mosquitto_pub(f"{base}/tele/pow3/SENSOR", TASMOTA_OLD_TOTAL, '{"ENERGY":{"Total":[1,"x"]}}')
            return await sink.until(4)

    with caplog.at_level("INFO", logger="amr.drivers.mqtt"):
        tariffs, export, old, bad = run(scenario())
    ap, am = Channel.A_PLUS, Channel.A_MINUS
    assert tariffs.serial == "POW-1"
    assert tariffs.tariffs == {0: {ap: 711_792}, 1: {ap: 96_965}, 2: {ap: 614_826}}
    assert export.tariffs == {0: {ap: 17, am: 5}, 1: {ap: 0, am: 1}, 2: {ap: 17, am: 4}}
    assert old.serial == "POW-3"
    assert old.tariffs == {0: {ap: 290}, 1: {ap: 263_000}, 2: {ap: 0}}
    assert bad.tariffs == {0: {ap: 1_000}, 1: {}}
    assert bad.errors == {"tariff 1 a_plus": "\"x\" is not a number; send a decimal such as \"1234.567\""}
    assert mqtt.ignored == {f"{base}/tele/thermo/SENSOR": 3}  # no refusal stored for them
    said = [r.getMessage() for r in caplog.records if "thermo" in r.getMessage()]
    assert len(said) == 1 and "no energy" in said[0]


def test_messages_show_plain_values_not_python_reprs() -> None:
    from amr.drivers.mqtt.payloads import PayloadDecoder

    decoder = PayloadDecoder("amr", meters=[MeterConfig(serial="77")])
    (values,) = decoder.decode("t", b'{"meter": "77", "a_plus": [150.1], "ts": 12.5e99}', datetime.now(UTC))
    text = " ".join(values.errors.values())
    assert "[150.1] is not a number" in text
    assert "Decimal" not in text


def publish_many(port: int, topic: str, count: int) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"amrtest-burst-{uuid.uuid4().hex[:8]}")
    client.max_inflight_messages_set(100)
    client.connect(HOST, port)
    client.loop_start()
    try:
        infos = [client.publish(topic, f'{{"a_plus": "{n}"}}', qos=1) for n in range(1, count + 1)]
        for info in infos:
            info.wait_for_publish(20)
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.mark.mqtt
@pytest.mark.parametrize(("max_queued", "delivered"), [(0, 1500), (1000, None)])
def test_broker_queue_limit_decides_what_waits_for_an_absent_collector(
    tmp_path: Path, max_queued: int, delivered: int | None
) -> None:
    """Mosquitto's default max_queued_messages (1000) drops QoS 1 messages of an absent persistent session;
    the brokers the project starts set 0 (no limit)."""
    binary = mosquitto_binary()
    if binary is None:
        pytest.fail("the mosquitto binary is needed (apt-get install mosquitto)", pytrace=False)
    base = unique("queue")
    client_id = f"amrtest-queue-{uuid.uuid4().hex[:8]}"

    async def scenario() -> list[MeterValues]:
        async with started_mosquitto(binary, tmp_path, max_queued) as port:
            assert port is not None
            config = BusConfig(name="q", kind="mqtt", url=f"mqtt://{HOST}:{port}", topics=[f"{base}/+/energy"])
            async with running(driver(config, client_id=client_id), Collect()):
                pass  # the persistent session exists; the collector goes away
            await asyncio.to_thread(publish_many, port, f"{base}/M1/energy", 1500)
            sink = Collect()
            async with running(driver(config, client_id=client_id), sink):
                if delivered:
                    await sink.until(delivered, timeout=20)
                await asyncio.sleep(1.0)
            return sink.values

    received = run(scenario(), timeout=60)
    if delivered:
        assert len(received) == delivered
        assert [v.tariffs[0][Channel.A_PLUS] for v in received] == [n * 1000 for n in range(1, 1501)]
    else:
        assert len(received) < 1500  # Mosquitto's default: the rest were dropped without a word


def test_the_demo_broker_configuration_lifts_the_queue_limit() -> None:
    assert "max_queued_messages 0\n" in mosquitto_conf(18830)


def test_the_bench_broker_configuration_lifts_the_queue_limit() -> None:
    """`.ci/run` starts Mosquitto with `config/mosquitto.conf` when none runs: no queue limit, loopback only."""
    root = Path(__file__).resolve().parents[2]
    lines = (root / "config" / "mosquitto.conf").read_text(encoding="utf-8").splitlines()
    assert "max_queued_messages 0" in lines
    assert "listener 1883 127.0.0.1" in lines
    assert "-c config/mosquitto.conf" in (root / ".ci" / "run").read_text(encoding="utf-8")
