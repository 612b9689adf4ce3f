"""The DLMS/COSEM simulator against the ``dlms-cosem`` 21.3.2 client, over the TCP wrapper, HDLC over TCP and a pty.

The client runs in a worker thread (it blocks) while the simulator serves real sockets and a real
pty in the event loop. Values are checked against the meter's model at a fixed clock.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest
import serial
from dlms_cosem import cosem, enumerations, exceptions, utils
from dlms_cosem import time as dlms_time
from dlms_cosem.clients.dlms_client import DataResultError, DlmsClient
from dlms_cosem.clients.hdlc_transport import SerialHdlcTransport

from amr.core.domain import Channel
from amr.protocols import dlms_hdlc as hdlc
from simulators.dlms import DlmsHdlcSimulator, DlmsWrapperSimulator
from simulators.dlms.association import CONFIGURATOR, READER
from simulators.dlms.objects import OBJECTS
from simulators.dlms.server import AUTHENTICATION_KEY, ENCRYPTION_KEY
from simulators.model import Faults, VirtualMeter
from simulators.serving import Service

logging.getLogger("dlms_cosem").setLevel(logging.WARNING)  # dlms-cosem's frame log

T = TypeVar("T")
NOW = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
KINDS = ["wrapper", "hdlc-tcp", "hdlc-pty"]
REGISTERS = {Channel.A_PLUS: 1, Channel.A_MINUS: 2, Channel.R_PLUS: 3, Channel.R_MINUS: 4}
Interface = enumerations.CosemInterface


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 30))


def meter(serial: str = "m1", address: int = 17, faults: Faults | None = None, **fields: Any) -> VirtualMeter:
    return VirtualMeter(serial, address=address, start=NOW - timedelta(hours=6), faults=faults or Faults(), **fields)


def simulator(kind: str, meters: list[VirtualMeter], **options: Any) -> Service:
    if kind == "wrapper":
        return DlmsWrapperSimulator(meters, clock=lambda: NOW, **options)
    transport = "pty" if kind == "hdlc-pty" else "tcp"
    return DlmsHdlcSimulator(meters, transport=transport, baudrate=115200, clock=lambda: NOW, **options)


def client(
    sim: Service, target: VirtualMeter, sap: int = 16, password: bytes | None = None, **security: Any
) -> DlmsClient:
    """A dlms-cosem client for `target` behind `sim`, as client `sap` (LLS when a `password` is given)."""
    options: dict[str, Any] = {"password": password, **security}
    if password is not None:
        options["authentication_method"] = enumerations.AuthenticationMechanism.LLS
    if isinstance(sim, DlmsWrapperSimulator):
        return DlmsClient.with_tcp_transport("127.0.0.1", sim.ports[target.serial], sap, 1, timeout=3, **options)
    assert isinstance(sim, DlmsHdlcSimulator)
    line = serial.serial_for_url(sim.url, baudrate=115200, timeout=3)  # a pty, or socket://127.0.0.1:PORT
    transport = SerialHdlcTransport(
        client_logical_address=sap,
        server_logical_address=1,
        serial_port=sim.url,
        server_physical_address=int(target.address),
        timeout=3,
        serial=line,
    )
    return DlmsClient(client_logical_address=sap, server_logical_address=1, io_interface=transport, **options)


def attribute(interface: Interface, obis: str, index: int) -> cosem.CosemAttribute:
    return cosem.CosemAttribute(interface, cosem.Obis.from_string(obis), index)


def clock_attribute() -> cosem.CosemAttribute:
    return attribute(Interface.CLOCK, "0.0.1.0.0.255", 2)


def read_meter(c: DlmsClient, tariffs: int = 0) -> dict[str, Any]:
    """Inside a session: the four total registers (value, scaler-unit), tariff registers, the clock."""
    found: dict[str, Any] = {}
    for channel, code in REGISTERS.items():
        found[channel.value] = utils.parse_as_dlms_data(c.get(attribute(Interface.REGISTER, f"1.0.{code}.8.0.255", 2)))
        scaler_unit = c.get(attribute(Interface.REGISTER, f"1.0.{code}.8.0.255", 3))
        found[f"{channel.value}/unit"] = utils.parse_as_dlms_data(scaler_unit)
    for tariff in range(1, tariffs + 1):
        found[f"T{tariff}"] = utils.parse_as_dlms_data(c.get(attribute(Interface.REGISTER, f"1.0.1.8.{tariff}.255", 2)))
    raw = utils.parse_as_dlms_data(c.get(clock_attribute()))
    found["clock"], found["status"] = dlms_time.datetime_from_bytes(raw)
    return found


async def in_thread(work: Callable[[], T]) -> T:
    return await asyncio.to_thread(work)


@pytest.mark.parametrize("kind", KINDS)
def test_public_client_reads_registers_with_scaler_unit_and_the_clock(kind: str) -> None:
    m = meter(tariffs=2)

    async def scenario() -> dict[str, Any]:
        async with simulator(kind, [m]) as sim:

            def work() -> dict[str, Any]:
                with client(sim, m).session() as c:
                    return read_meter(c, tariffs=2)

            return await in_thread(work)

    found = run(scenario())
    truth = m.registers(NOW)
    for channel in REGISTERS:
        assert found[channel.value] == truth[0][channel]
        unit = 30 if channel in (Channel.A_PLUS, Channel.A_MINUS) else 32  # Wh, varh
        assert found[f"{channel.value}/unit"] == [0, unit]
    assert found["T1"] == truth[1][Channel.A_PLUS]
    assert found["T2"] == truth[2][Channel.A_PLUS]
    assert found["T1"] + found["T2"] == found[Channel.A_PLUS.value]
    assert found["clock"] == NOW
    assert found["clock"].utcoffset() == timedelta(hours=3)  # Moscow, deviation -180
    assert not found["status"].daylight_saving_active


@pytest.mark.parametrize("kind", KINDS)
def test_object_list_comes_through_get_blocks(kind: str) -> None:
    m = meter()

    async def scenario() -> tuple[bytes, Any]:
        async with simulator(kind, [m]) as sim:

            def work() -> tuple[bytes, Any]:
                with client(sim, m).session() as c:
                    raw = c.get(attribute(Interface.ASSOCIATION_LN, "0.0.40.0.0.255", 2))
                    return raw, c.dlms_connection.max_pdu_size

            return await in_thread(work)

    raw, _ = run(scenario())
    assert len(raw) > 512  # longer than the meter's PDU: it went in blocks
    entries = utils.parse_as_dlms_data(raw)
    assert len(entries) == len(OBJECTS)
    listed = {(e[0], bytes(e[2])) for e in entries}
    assert (3, bytes((1, 0, 1, 8, 0, 255))) in listed
    assert (8, bytes((0, 0, 1, 0, 0, 255))) in listed
    clock = next(e for e in entries if e[0] == 8)
    assert [2, 3, None] in clock[3][0]  # attribute 2 of the clock: read-write


@pytest.mark.parametrize("kind", ["wrapper", "hdlc-tcp"])
def test_unknown_object_is_object_undefined_and_the_session_goes_on(kind: str) -> None:
    m = meter()

    async def scenario() -> tuple[str, int]:
        async with simulator(kind, [m]) as sim:

            def work() -> tuple[str, int]:
                with client(sim, m).session() as c:
                    with pytest.raises(DataResultError) as caught:
                        c.get(attribute(Interface.REGISTER, "1.0.99.8.0.255", 2))
                    value = utils.parse_as_dlms_data(c.get(attribute(Interface.REGISTER, "1.0.1.8.0.255", 2)))
                    return str(caught.value), value

            return await in_thread(work)

    message, value = run(scenario())
    assert "OBJECT_UNDEFINED" in message
    assert value == m.registers(NOW)[0][Channel.A_PLUS]


@pytest.mark.parametrize("kind", ["wrapper", "hdlc-tcp"])
def test_reader_with_password_and_a_wrong_password(kind: str) -> None:
    m = meter()

    async def scenario() -> tuple[int, str]:
        async with simulator(kind, [m]) as sim:

            def work() -> tuple[int, str]:
                with client(sim, m, sap=READER, password=b"12345678").session() as c:
                    value = utils.parse_as_dlms_data(c.get(attribute(Interface.REGISTER, "1.0.1.8.0.255", 2)))
                wrong = client(sim, m, sap=READER, password=b"00000000")
                wrong.connect()
                try:
                    with pytest.raises(exceptions.DlmsClientException) as caught:
                        wrong.associate()
                finally:
                    wrong.disconnect()
                return value, str(caught.value)

            return await in_thread(work)

    value, refused = run(scenario())
    assert value == m.registers(NOW)[0][Channel.A_PLUS]
    assert "REJECTED_PERMANENT" in refused
    assert "AUTHENTICATION_FAILED" in refused


@pytest.mark.parametrize("kind", ["wrapper", "hdlc-tcp"])
def test_configurator_sets_the_clock_a_reader_may_not(kind: str) -> None:
    m = meter()
    wanted = NOW + timedelta(minutes=7)

    async def scenario() -> tuple[Any, Any, datetime]:
        async with simulator(kind, [m]) as sim:

            def work() -> tuple[Any, Any, datetime]:
                data = bytes((0x09, 12)) + dlms_time.datetime_to_bytes(wanted.astimezone(ZoneInfo(m.timezone)))
                with client(sim, m, sap=READER, password=b"12345678").session() as c:
                    denied = c.set(clock_attribute(), data)
                with client(sim, m, sap=CONFIGURATOR, password=b"1234567812345678").session() as c:
                    done = c.set(clock_attribute(), data)
                with client(sim, m).session() as c:
                    clock, _ = dlms_time.datetime_from_bytes(utils.parse_as_dlms_data(c.get(clock_attribute())))
                return denied, done, clock

            return await in_thread(work)

    denied, done, clock = run(scenario())
    assert denied.result == enumerations.DataAccessResult.READ_WRITE_DENIED
    assert done.result == enumerations.DataAccessResult.SUCCESS
    assert clock == wanted


@pytest.mark.parametrize("kind", ["wrapper", "hdlc-tcp"])
def test_refuse_fault_answers_aare_rejected_authentication_failure(kind: str) -> None:
    m = meter()

    async def scenario() -> str:
        async with simulator(kind, [m], refused={m.serial}) as sim:

            def work() -> str:
                c = client(sim, m)
                c.connect()
                try:
                    with pytest.raises(exceptions.DlmsClientException) as caught:
                        c.associate()
                finally:
                    c.disconnect()
                return str(caught.value)

            return await in_thread(work)

    message = run(scenario())
    assert "REJECTED_PERMANENT" in message
    assert "AUTHENTICATION_FAILED" in message


@pytest.mark.parametrize("kind", KINDS)
def test_lower_wrap_and_drift_act_through_the_model(kind: str) -> None:
    plain = meter("p1", 17, seed=7)
    lower = meter("p2", 18, Faults(lower_by_wh=5000), seed=7)  # the same seed: the same energy as `plain`
    wrap = meter("w1", 19, Faults(wrap_after=timedelta(hours=1)))
    drift = meter("d1", 20, Faults(clock_drift=timedelta(seconds=90)))
    meters = [plain, lower, wrap, drift]

    async def scenario() -> list[dict[str, Any]]:
        async with simulator(kind, meters) as sim:

            def work() -> list[dict[str, Any]]:
                results = []
                for target in meters:
                    with client(sim, target).session() as c:
                        results.append(read_meter(c))
                return results

            return await in_thread(work)

    found = run(scenario())
    a_plus = Channel.A_PLUS.value
    assert found[0][a_plus] - found[1][a_plus] == 5000
    assert found[2][a_plus] < 20_000  # went through zero an hour after the start (about 1.5 kW for 5 h)
    assert found[2][a_plus] == wrap.registers(NOW)[0][Channel.A_PLUS]
    assert found[3]["clock"] == NOW + timedelta(seconds=90)
    assert found[0]["clock"] == NOW


def test_hdlc_meters_share_a_line_by_physical_address() -> None:
    meters = [meter(f"s{i}", 16 + i) for i in range(1, 4)]

    async def scenario() -> list[int]:
        async with simulator("hdlc-pty", meters) as sim:

            def work() -> list[int]:
                values = []
                for target in meters:
                    with client(sim, target).session() as c:
                        raw = c.get(attribute(Interface.REGISTER, "1.0.1.8.0.255", 2))
                        values.append(utils.parse_as_dlms_data(raw))
                return values

            return await in_thread(work)

    values = run(scenario())
    assert values == [m.registers(NOW)[0][Channel.A_PLUS] for m in meters]
    assert len(set(values)) == len(meters)


def test_a_four_byte_server_address_reaches_a_meter_past_127() -> None:
    # dlms-cosem 21.3 drops the zero bytes of a 4-byte address, so this one is checked at frame level
    meters = [meter("near", 17), meter("far", 300)]

    async def scenario() -> hdlc.Frame:
        async with simulator("hdlc-tcp", meters) as sim:
            assert isinstance(sim, DlmsHdlcSimulator)

            def work() -> hdlc.Frame:
                raw = RawHdlc(hdlc_port(sim))
                try:
                    raw.server = hdlc.ServerAddress(1, 300, 4).encode()
                    raw.send(hdlc.SNRM | hdlc.POLL_FINAL)
                    return hdlc.decode(raw.receive())
                finally:
                    raw.close()

            return await in_thread(work)

    ua = run(scenario())
    assert ua.kind == "UA"
    assert ua.source == bytes((0x00, 0x02, 0x04, 0x59))  # logical 1, physical 300


# --- HDLC at frame level: negotiation, segmentation, DISC/DM, faults -------------------------------------------

CLIENT = bytes((16 << 1 | 1,))


def server_address(physical: int) -> bytes:
    return hdlc.ServerAddress(1, physical, 2).encode()


class RawHdlc:
    """A bare HDLC client on a TCP socket, to see the frames themselves."""

    def __init__(self, port: int, physical: int = 17, timeout: float = 1.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.server = server_address(physical)
        self.buffer = bytearray()
        self.ns = self.nr = 0

    def send(self, control: int, information: bytes = b"", segmented: bool = False) -> None:
        self.sock.sendall(hdlc.Frame(self.server, CLIENT, control, information, segmented).encode())

    def receive(self) -> bytes:
        while (frame := hdlc.take_frame(self.buffer)) is None:
            data = self.sock.recv(4096)
            if not data:
                raise ConnectionError("closed")
            self.buffer += data
        return frame

    def info(self, information: bytes, segmented: bool = False) -> None:
        self.send(self.nr << 5 | hdlc.POLL_FINAL | self.ns << 1, information, segmented)
        self.ns = (self.ns + 1) % 8

    def close(self) -> None:
        self.sock.close()


AARQ_PUBLIC = bytes.fromhex("601DA109060760857405080101BE10040E01000000065F1F0400001E1DFFFF")  # Gurux, LN, SAP 16
GET_OBJECT_LIST = bytes.fromhex("C001C1000F0000280000FF0200")


def hdlc_port(sim: DlmsHdlcSimulator) -> int:
    return int(sim.url.rsplit(":", 1)[1])


def test_snrm_negotiates_and_long_answers_come_segmented() -> None:
    m = meter()

    async def scenario() -> list[hdlc.Frame]:
        async with simulator("hdlc-tcp", [m]) as sim:
            assert isinstance(sim, DlmsHdlcSimulator)

            def work() -> list[hdlc.Frame]:
                raw = RawHdlc(hdlc_port(sim))
                try:
                    # proposes 0x80 bytes transmit, 0x40 receive, window 1 (the client's view)
                    params = bytes.fromhex("818012050180060140070400000001080400000001")
                    raw.send(hdlc.SNRM | hdlc.POLL_FINAL, params)
                    frames = [hdlc.decode(raw.receive())]
                    raw.info(hdlc.LLC_REQUEST + AARQ_PUBLIC)
                    frames.append(hdlc.decode(raw.receive()))
                    raw.nr = (raw.nr + 1) % 8
                    raw.info(hdlc.LLC_REQUEST + GET_OBJECT_LIST)
                    while True:
                        frame = hdlc.decode(raw.receive())
                        frames.append(frame)
                        raw.nr = (frame.send_sequence + 1) % 8
                        if not frame.segmented:
                            break
                        raw.send(raw.nr << 5 | hdlc.POLL_FINAL | hdlc.RR)
                    raw.send(hdlc.DISC | hdlc.POLL_FINAL)
                    frames.append(hdlc.decode(raw.receive()))
                    raw.send(hdlc.DISC | hdlc.POLL_FINAL)
                    frames.append(hdlc.decode(raw.receive()))
                    raw.info(hdlc.LLC_REQUEST + GET_OBJECT_LIST)  # not connected any more
                    frames.append(hdlc.decode(raw.receive()))
                    return frames
                finally:
                    raw.close()

            return await in_thread(work)

    frames = run(scenario())
    ua, aare, *answer, disc_ua, disc_dm, late = frames
    assert ua.kind == "UA"
    assert ua.information == bytes.fromhex("818012050140060180070400000001080400000001")  # 64 out, 128 in
    assert aare.kind == "I" and aare.information.startswith(hdlc.LLC_RESPONSE + b"\x61")
    assert len(answer) > 3
    assert all(f.kind == "I" and len(f.information) <= 0x40 for f in answer)
    assert [f.segmented for f in answer] == [True] * (len(answer) - 1) + [False]
    assert [f.send_sequence for f in answer] == [(1 + i) % 8 for i in range(len(answer))]
    body = b"".join(f.information for f in answer)
    assert body.startswith(hdlc.LLC_RESPONSE + bytes((0xC4, 0x02)))  # get-response-with-datablock
    assert (disc_ua.kind, disc_dm.kind, late.kind) == ("UA", "DM", "DM")


def test_hdlc_faults_silent_corrupt_drop_delay() -> None:
    meters = [
        meter("ok", 17),
        meter("silent", 18, Faults(silent=True)),
        meter("corrupt", 19, Faults(corrupt=1.0)),
        meter("drop", 20, Faults(drop=1.0)),
        meter("late", 21, Faults(delay=0.5)),
    ]

    async def scenario() -> dict[str, Any]:
        async with simulator("hdlc-tcp", meters) as sim:
            assert isinstance(sim, DlmsHdlcSimulator)

            def work() -> dict[str, Any]:
                seen: dict[str, Any] = {}
                for target in meters:
                    raw = RawHdlc(hdlc_port(sim), int(target.address), timeout=1.5)
                    started = time.monotonic()
                    try:
                        raw.send(hdlc.SNRM | hdlc.POLL_FINAL)
                        frame = raw.receive()
                        try:
                            seen[target.serial] = hdlc.decode(frame).kind
                        except hdlc.FrameError as exc:
                            seen[target.serial] = str(exc)
                    except TimeoutError:
                        seen[target.serial] = "timeout"
                    except ConnectionError:
                        seen[target.serial] = "closed"
                    finally:
                        raw.close()
                    seen[f"{target.serial}/s"] = time.monotonic() - started
                return seen

            return await in_thread(work)

    seen = run(scenario())
    assert seen["ok"] == "UA"
    assert seen["silent"] == "timeout"
    assert seen["corrupt"] == "bad FCS"
    assert seen["drop"] == "closed"
    assert seen["late"] == "UA"
    assert seen["late/s"] >= 0.5 > seen["ok/s"]


def test_wrapper_faults_silent_corrupt_drop_delay() -> None:
    meters = [
        meter("ok", 1),
        meter("silent", 2, Faults(silent=True)),
        meter("corrupt", 3, Faults(corrupt=1.0)),
        meter("drop", 4, Faults(drop=1.0)),
        meter("late", 5, Faults(delay=0.5)),
    ]
    aarq = bytes.fromhex("0001001000010000") + AARQ_PUBLIC
    aarq = aarq[:6] + len(AARQ_PUBLIC).to_bytes(2, "big") + aarq[8:]

    async def scenario() -> dict[str, Any]:
        async with simulator("wrapper", meters) as sim:
            assert isinstance(sim, DlmsWrapperSimulator)

            def work() -> dict[str, Any]:
                seen: dict[str, Any] = {}
                for target in meters:
                    started = time.monotonic()
                    with socket.create_connection(("127.0.0.1", sim.ports[target.serial]), timeout=1.5) as sock:
                        sock.sendall(aarq)
                        try:
                            answer = sock.recv(4096)
                            seen[target.serial] = answer[:2].hex() if answer else "closed"
                        except TimeoutError:
                            seen[target.serial] = "timeout"
                    seen[f"{target.serial}/s"] = time.monotonic() - started
                return seen

            return await in_thread(work)

    seen = run(scenario())
    assert seen["ok"] == "0001"
    assert seen["silent"] == "timeout"
    assert seen["corrupt"] == "dead"  # the wrapper version garbled: a client must throw the answer away
    assert seen["drop"] == "closed"
    assert seen["late"] == "0001"
    assert seen["late/s"] >= 0.5 > seen["ok/s"]


def test_pty_paces_answers_at_the_line_speed() -> None:
    m = meter()

    async def scenario() -> float:
        async with DlmsHdlcSimulator([m], transport="pty", baudrate=9600, clock=lambda: NOW) as sim:

            def work() -> float:
                fd = os.open(sim.url, os.O_RDWR | os.O_NOCTTY)
                try:
                    started = time.monotonic()
                    os.write(fd, hdlc.Frame(server_address(17), CLIENT, hdlc.SNRM | hdlc.POLL_FINAL).encode())
                    got = b""
                    while not got.endswith(b"\x7e") or len(got) < 9:
                        got += os.read(fd, 100)
                    assert hdlc.decode(got).kind == "UA"
                    return (time.monotonic() - started) / (len(got) + 9)
                finally:
                    os.close(fd)

            return await in_thread(work)

    per_byte = run(scenario())
    assert per_byte >= 10 / 9600 * 0.9  # request and answer at 10 bits a character


def test_amr_sim_dlms_prints_a_configuration_and_serves() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "amr", "sim", "dlms", "--meters", "2", "--fault", "2:refuse"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "2 simulated dlms-tcp meter(s)" in first
        lines: list[str] = []
        while len([line for line in lines if line.startswith("dlms = { host")]) < 2:
            lines.append(proc.stdout.readline().strip())
        assert 'kind = "dlms-tcp"' in lines
        assert 'dlms = { transport = "wrapper", client = 16, authentication = "none" }' in lines
        ports = [int(line.split('"')[1].rsplit(":", 1)[1]) for line in lines if line.startswith("dlms = { host")]
        with DlmsClient.with_tcp_transport("127.0.0.1", ports[0], 16, 1, timeout=3).session() as c:
            assert utils.parse_as_dlms_data(c.get(attribute(Interface.REGISTER, "1.0.1.8.0.255", 2))) > 0
        refused = DlmsClient.with_tcp_transport("127.0.0.1", ports[1], 16, 1, timeout=3)
        refused.connect()
        with pytest.raises(exceptions.DlmsClientException, match="AUTHENTICATION_FAILED"):
            refused.associate()
        refused.disconnect()
    finally:
        proc.send_signal(signal.SIGINT)
        _, errors = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "Traceback" not in errors


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fault", "9:refuse", "--meters", "2"], "no simulated meter '9'"),
        (["--transport", "pty", "--framing", "wrapper"], "on a pty use --framing hdlc"),
    ],
)
def test_amr_sim_dlms_names_a_bad_option(args: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "amr", "sim", "dlms", *args], capture_output=True, text=True, timeout=30
    )
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def hls_client(sim: Service, target: VirtualMeter, encryption_key: bytes = ENCRYPTION_KEY) -> DlmsClient:
    """The configurator with HLS-GMAC: ciphered APDUs (general-glo-ciphering) with the meter's global keys."""
    return client(
        sim,
        target,
        sap=CONFIGURATOR,
        authentication_method=enumerations.AuthenticationMechanism.HLS_GMAC,
        encryption_key=encryption_key,
        authentication_key=AUTHENTICATION_KEY,
        client_system_title=b"AMRTEST1",
    )


@pytest.mark.parametrize("kind", ["wrapper", "hdlc-tcp"])
def test_configurator_with_hls_gmac_reads_ciphered_and_wrong_keys_are_refused(kind: str) -> None:
    m = meter()

    async def scenario() -> tuple[int, int, datetime, str]:
        async with simulator(kind, [m]) as sim:

            def work() -> tuple[int, int, datetime, str]:
                with hls_client(sim, m).session() as c:
                    value = utils.parse_as_dlms_data(c.get(attribute(Interface.REGISTER, "1.0.1.8.0.255", 2)))
                    listed = len(
                        utils.parse_as_dlms_data(c.get(attribute(Interface.ASSOCIATION_LN, "0.0.40.0.0.255", 2)))
                    )
                    data = bytes((0x09, 12)) + dlms_time.datetime_to_bytes(
                        (NOW + timedelta(hours=1)).astimezone(ZoneInfo(m.timezone))
                    )
                    assert c.set(clock_attribute(), data).result == enumerations.DataAccessResult.SUCCESS
                    clock, _ = dlms_time.datetime_from_bytes(utils.parse_as_dlms_data(c.get(clock_attribute())))
                wrong = hls_client(sim, m, encryption_key=bytes(16))
                wrong.connect()
                try:
                    with pytest.raises(exceptions.DlmsClientException) as caught:
                        wrong.associate()
                finally:
                    wrong.disconnect()
                return value, listed, clock, str(caught.value)

            return await in_thread(work)

    value, listed, clock, refused = run(scenario())
    assert value == m.registers(NOW)[0][Channel.A_PLUS]
    assert listed == len(OBJECTS)  # the object list in blocks, each block ciphered
    assert clock == NOW + timedelta(hours=1)
    assert "AUTHENTICATION_FAILED" in refused


def test_segmented_request_is_reassembled_and_addresses_pick_meters() -> None:
    alone = meter()

    async def scenario() -> dict[str, Any]:
        async with simulator("hdlc-tcp", [alone]) as sim:
            assert isinstance(sim, DlmsHdlcSimulator)

            def work() -> dict[str, Any]:
                seen: dict[str, Any] = {}
                raw = RawHdlc(hdlc_port(sim))
                try:
                    raw.server = bytes((1 << 1 | 1,))  # logical device 1, no physical address: the meter alone
                    raw.send(hdlc.SNRM | hdlc.POLL_FINAL)
                    seen["one-byte address"] = hdlc.decode(raw.receive()).kind
                    request = hdlc.LLC_REQUEST + AARQ_PUBLIC
                    raw.info(request[:20], segmented=True)
                    rr = hdlc.decode(raw.receive())
                    seen["rr"] = (rr.kind, rr.receive_sequence)
                    raw.info(request[20:])
                    aare = hdlc.decode(raw.receive())
                    seen["aare"] = aare.information[3:4]
                    raw.server = server_address(99)  # nobody at 99
                    raw.send(hdlc.SNRM | hdlc.POLL_FINAL)
                    try:
                        raw.receive()
                        seen["99"] = "answered"
                    except TimeoutError:
                        seen["99"] = "silence"
                finally:
                    raw.close()
                return seen

            return await in_thread(work)

    seen = run(scenario())
    assert seen == {"one-byte address": "UA", "rr": ("RR", 1), "aare": b"\x61", "99": "silence"}


def test_a_window_of_three_segments_goes_out_before_each_rr() -> None:
    m = meter()

    async def scenario() -> tuple[bytes, list[list[hdlc.Frame]]]:
        async with simulator("hdlc-tcp", [m]) as sim:
            assert isinstance(sim, DlmsHdlcSimulator)

            def work() -> tuple[bytes, list[list[hdlc.Frame]]]:
                raw = RawHdlc(hdlc_port(sim))
                try:
                    # 64-byte information fields and a window of 3 both ways
                    raw.send(hdlc.SNRM | hdlc.POLL_FINAL, bytes.fromhex("818012050140060140070400000003080400000003"))
                    ua = hdlc.decode(raw.receive())
                    raw.info(hdlc.LLC_REQUEST + AARQ_PUBLIC)
                    hdlc.decode(raw.receive())
                    raw.nr = 1
                    raw.info(hdlc.LLC_REQUEST + GET_OBJECT_LIST)
                    windows: list[list[hdlc.Frame]] = [[]]
                    while True:
                        frame = hdlc.decode(raw.receive())
                        windows[-1].append(frame)
                        raw.nr = (frame.send_sequence + 1) % 8
                        if not frame.segmented:
                            return ua.information, windows
                        if frame.poll:
                            raw.send(raw.nr << 5 | hdlc.POLL_FINAL | hdlc.RR)
                            windows.append([])
                finally:
                    raw.close()

            return await in_thread(work)

    ua_information, windows = run(scenario())
    assert ua_information == bytes.fromhex("818012050140060140070400000003080400000003")
    assert len(windows) > 2
    assert all(len(w) == 3 for w in windows[:-1])
    assert all([f.poll for f in w] == [False] * (len(w) - 1) + [True] for w in windows)
