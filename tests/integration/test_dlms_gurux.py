"""The DLMS drivers against a Gurux DLMS server (a different implementation) over real TCP sockets.

The TCP wrapper, HDLC over a TCP connection (``dlms-tcp`` with ``transport = "hdlc"``), HDLC
through a ``socket://`` converter and HDLC on a serial line, a pty (``dlms-hdlc``).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction

import pytest

from amr.config import BusConfig, MeterConfig
from amr.core.domain import Channel
from amr.drivers.base import MeterValues
from amr.drivers.dlms.driver import DlmsHdlcDriver, DlmsTcpDriver
from amr.errors import DeviceError, ReadTimeout
from amr.protocols import dlms_hdlc as hdlc
from tests.support.gurux_server import GuruxLine, MeterSpec, serving

REGISTERS = {
    "1.0.1.8.0.255": (123456, 0, 30),  # A+ 123456 Wh
    "1.0.2.8.0.255": (12, 3, 30),  # A- 12 kWh as value 12, scaler 3
    "1.0.3.8.0.255": (7, 3, 32),  # R+ 7 kvarh
}
PASSWORD = "S3cretLLS"
MOSCOW = timezone(timedelta(hours=3))  # Gurux writes an aware time's offset as the deviation (-180)


def _bus(port: int, timeout: float = 2.0, **dlms: object) -> BusConfig:
    """A ``dlms-tcp`` bus as the configuration loader validates it, `dlms` its ``[buses.dlms]`` table."""
    return BusConfig.model_validate(
        {"name": "dlms", "kind": "dlms-tcp", "url": f"tcp://127.0.0.1:{port}", "timeout": timeout, "dlms": dlms}
    )


def _read(driver: DlmsTcpDriver, meter: MeterConfig) -> object:
    return asyncio.run(driver.read(meter))


@pytest.mark.parametrize("framing", [False, True], ids=["wrapper", "hdlc-over-tcp"])
def test_public_client_reads_registers_and_clock(framing: bool) -> None:
    spec = MeterSpec(registers=REGISTERS, clock=datetime(2026, 1, 15, 10, 30), physical_address=17)
    with serving(spec, hdlc=framing) as meter:
        driver = DlmsTcpDriver(_bus(meter.port, transport="hdlc" if framing else "wrapper"))
        values = asyncio.run(driver.read(MeterConfig(serial="m1", address=17)))
        assert meter.errors == []
    assert values.tariffs == {0: {Channel.A_PLUS: 123456, Channel.A_MINUS: 12000, Channel.R_PLUS: 7000}}
    assert set(values.errors) == {"r_minus"}  # the meter lacks R-: named, the others kept
    assert values.raw["codes"] == {"r_minus": "dlms.object_unavailable"}
    assert values.meter_time is not None and values.meter_time.tzinfo is not None


def test_lls_association_with_the_right_password() -> None:
    spec = MeterSpec(registers=REGISTERS, client=32, authentication="lls", password=PASSWORD)
    with serving(spec, hdlc=False) as meter:
        driver = DlmsTcpDriver(_bus(meter.port, transport="wrapper", client=32, authentication="lls"))
        values = asyncio.run(driver.read(MeterConfig(serial="m1", password=PASSWORD)))
    assert values.tariffs[0][Channel.A_PLUS] == 123456
    assert values.raw["client"] == 32


def test_wrong_password_is_an_association_refused_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    spec = MeterSpec(registers=REGISTERS, client=32, authentication="lls", password=PASSWORD)
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ngPassw0rd"
    with serving(spec, hdlc=False) as meter:
        driver = DlmsTcpDriver(_bus(meter.port, transport="wrapper", client=32, authentication="lls"))
        with pytest.raises(DeviceError) as caught:
            asyncio.run(driver.read(MeterConfig.model_validate({"serial": "m1", "dlms": {"password": wrong}})))
    assert caught.value.code == "dlms.association_refused"  # type: ignore[attr-defined]
    assert caught.value.retryable is False  # type: ignore[attr-defined]
    link = driver.link_of(MeterConfig(serial="m1", password=wrong))
    shown = caplog.text + str(caught.value) + repr(link) + repr(driver.settings)
    assert wrong not in shown and PASSWORD not in shown


def test_secrets_never_in_logs_errors_or_raw(caplog: pytest.LogCaptureFixture) -> None:
    spec = MeterSpec(registers=REGISTERS, client=32, authentication="lls", password=PASSWORD)
    caplog.set_level(logging.DEBUG)
    with serving(spec, hdlc=False) as meter:
        driver = DlmsTcpDriver(_bus(meter.port, transport="wrapper", client=32, authentication="lls"))
        values = asyncio.run(driver.read(MeterConfig(serial="m1", password=PASSWORD)))
    assert values.tariffs
    shown = caplog.text + repr(values) + repr(driver.settings) + repr(driver.link_of(MeterConfig(serial="m1",
                                                                                                  password=PASSWORD)))
    assert PASSWORD not in shown


def test_a_silent_meter_is_a_timeout() -> None:
    with serving(MeterSpec(silent=True), hdlc=False) as meter:
        driver = DlmsTcpDriver(_bus(meter.port, timeout=0.3, transport="wrapper"))
        started = datetime.now(UTC)
        with pytest.raises(ReadTimeout) as caught:
            asyncio.run(driver.read(MeterConfig(serial="m1")))
    assert caught.value.code == "timeout"  # type: ignore[attr-defined]
    assert caught.value.retryable is True  # type: ignore[attr-defined]
    assert datetime.now(UTC) - started < timedelta(seconds=3)


def _frames(chunks: list[bytes]) -> list[hdlc.Frame]:
    """The HDLC frames in what the server received (frames may share a closing flag or a chunk)."""
    data, found = b"".join(chunks), []
    while (start := data.find(bytes([hdlc.FLAG]))) >= 0 and (length := hdlc.frame_length(data[start:])):
        found.append(hdlc.decode(data[start : start + length]))
        data = data[start + length :]
    return found


def test_hdlc_through_a_socket_converter_with_lls_segmented_frames_and_two_polls_on_one_line() -> None:
    spec = MeterSpec(registers=REGISTERS, clock=datetime(2026, 1, 15, 10, 30, tzinfo=MOSCOW), physical_address=17,
                     client=32, authentication="lls", password=PASSWORD)
    with serving(spec, hdlc=True) as meter:
        bus = BusConfig.model_validate({
            "name": "line", "kind": "dlms-hdlc", "url": f"socket://127.0.0.1:{meter.port}", "timeout": 2,
            "dlms": {"client": 32, "authentication": "lls", "max_info_length": 32},
        })
        driver = DlmsHdlcDriver(bus)

        async def two_polls() -> list[MeterValues]:
            await driver.open()
            try:
                return [await driver.read(MeterConfig(serial="m1", address=17, password=PASSWORD)) for _ in range(2)]
            finally:
                await driver.close()

        first, second = asyncio.run(two_polls())
        assert meter.errors == []
    for values in (first, second):
        assert values.tariffs == {0: {Channel.A_PLUS: 123456, Channel.A_MINUS: 12000, Channel.R_PLUS: 7000}}
        assert values.meter_time == datetime(2026, 1, 15, 7, 30, tzinfo=UTC)  # 10:30 at UTC+3
    frames = _frames(meter.received)
    # the line stays open: each poll is SNRM … DISC, to server address 1/17 (2 bytes) from client 32
    assert [f.kind for f in frames].count("SNRM") == 2 and [f.kind for f in frames].count("DISC") == 2
    assert {(f.destination, f.source) for f in frames} == {(hdlc.server_address(1, 17, 2), hdlc.client_address(32))}
    # the 32-byte information field splits the AARQ: a segmented I-frame, then the rest
    assert any(f.kind == "I" and f.segmented for f in frames)
    assert max(len(f.information) for f in frames) <= 32
    # Gurux's answers came segmented too (the AARE is longer than 32 bytes): we asked for the rest with RR
    assert any(f.kind == "RR" for f in frames)


def test_hdlc_on_a_serial_line_with_lls() -> None:
    spec = MeterSpec(registers=REGISTERS, clock=datetime(2026, 1, 15, 10, 30, tzinfo=MOSCOW), physical_address=17,
                     client=32, authentication="lls", password=PASSWORD)
    with GuruxLine(spec) as line:
        driver = DlmsHdlcDriver(BusConfig.model_validate({
            "name": "line", "kind": "dlms-hdlc", "url": line.path, "baudrate": 9600, "timeout": 2,
            "dlms": {"client": 32, "authentication": "lls"},
        }))

        async def poll() -> MeterValues:
            await driver.open()
            try:
                return await driver.read(MeterConfig(serial="m1", address=17, password=PASSWORD))
            finally:
                await driver.close()

        values = asyncio.run(poll())
        assert line.errors == []
    assert values.tariffs == {0: {Channel.A_PLUS: 123456, Channel.A_MINUS: 12000, Channel.R_PLUS: 7000}}
    assert values.meter_time == datetime(2026, 1, 15, 7, 30, tzinfo=UTC)
    kinds = [f.kind for f in _frames(line.received)]
    assert kinds[0] == "SNRM" and kinds[-1] == "DISC"


def test_hdlc_to_another_physical_address_is_not_answered() -> None:
    spec = MeterSpec(registers=REGISTERS, physical_address=17)
    with serving(spec, hdlc=True) as meter:
        driver = DlmsTcpDriver(_bus(meter.port, timeout=0.5, transport="hdlc"))
        with pytest.raises(ReadTimeout) as caught:
            asyncio.run(driver.read(MeterConfig(serial="m1", address=18)))
    assert caught.value.code == "timeout"  # type: ignore[attr-defined]


@pytest.mark.parametrize("framing", [False, True], ids=["wrapper", "hdlc-over-tcp"])
def test_object_list_longer_than_the_pdu_comes_through_get_blocks(framing: bool) -> None:
    registers = {f"1.0.{c}.8.{t}.255": (c * 1000 + t, 0, 30 if c < 3 else 32) for c in range(1, 5) for t in range(5)}
    spec = MeterSpec(registers=registers, clock=datetime(2026, 1, 15, 10, 30, tzinfo=MOSCOW), physical_address=17,
                     max_pdu=128)
    with serving(spec, hdlc=framing) as meter:
        driver = DlmsTcpDriver(_bus(meter.port, transport="hdlc" if framing else "wrapper", max_pdu_size=128))
        objects = asyncio.run(driver.objects(MeterConfig(serial="m1", address=17)))
        assert meter.errors == []
    listed = {(o.class_id, o.obis) for o in objects}
    assert listed == {(3, obis) for obis in registers} | {(8, "0.0.1.0.0.255"), (15, "0.0.40.0.0.255")}
    # 22 entries of about 20 bytes in 128-byte PDUs: the first block, then GetRequestNext for each of the others
    asked_next = sum(chunk.count(bytes.fromhex("c002c1")) for chunk in meter.received)
    assert asked_next >= 3


def test_the_load_profile_by_range_from_another_implementation() -> None:
    start = datetime(2026, 1, 15, 0, 0, tzinfo=MOSCOW)
    rows = [(start + timedelta(minutes=30 * i), 1000 + 5 * i, 0x80 if i == 7 else 0) for i in range(20)]
    spec = MeterSpec(clock=datetime(2026, 1, 15, 12, 0, tzinfo=MOSCOW), physical_address=17, max_pdu=128, profile=rows)
    with serving(spec, hdlc=False) as meter:
        driver = DlmsTcpDriver(_bus(meter.port, max_pdu_size=128))
        since, until = datetime(2026, 1, 14, 23, 0, tzinfo=UTC), datetime(2026, 1, 15, 3, 0, tzinfo=UTC)
        records = asyncio.run(driver.read_profile(MeterConfig(serial="m1", address=17), since, until))
        assert meter.errors == []
    # captured at 02:30..06:00 Moscow, the ends of the intervals starting 23:00..02:30 UTC
    assert [r.start for r in records] == [since + timedelta(minutes=30 * i) for i in range(8)]
    assert records[0].exact == {Channel.A_PLUS: Fraction(1025, 10)}  # row 5: 1025 tenths of Wh
    assert [bool(r.flags) for r in records] == [i == 2 for i in range(8)]  # row 7: power down
    assert sum(chunk.count(bytes.fromhex("c002c1")) for chunk in meter.received) >= 1  # GET blocks
