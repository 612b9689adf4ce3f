"""The DLMS drivers against the DLMS simulator: real sockets and a pty, configured as the loader reads them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from amr.config import BusConfig, MeterConfig
from amr.core.domain import CHANNELS
from amr.drivers.base import MeterValues
from amr.drivers.dlms.driver import DlmsHdlcDriver, DlmsTcpDriver
from amr.errors import ConnectError, DeviceError, DriverError, ProtocolError, ReadTimeout
from simulators.dlms import DlmsHdlcSimulator, DlmsWrapperSimulator
from simulators.model import Faults, VirtualMeter

NOW = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)


def virtual(serial: str, address: int, faults: Faults | None = None) -> VirtualMeter:
    return VirtualMeter(serial, address=address, tariffs=4, start=NOW - timedelta(hours=6), faults=faults or Faults())


def configured(serial: str, address: int, **dlms: Any) -> MeterConfig:
    return MeterConfig.model_validate({"serial": serial, "address": address, "tariffs": 4, "dlms": dlms})


def bus(kind: str, url: str, timeout: float = 2.0, **fields: Any) -> BusConfig:
    return BusConfig.model_validate({"name": "d", "kind": kind, "url": url, "timeout": timeout, "retries": 0,
                                     **fields})


def expected(meter: VirtualMeter) -> dict[int, dict[Any, int]]:
    shown = meter.registers(NOW)
    return {tariff: {c: shown[tariff][c] for c in CHANNELS} for tariff in range(5)}


async def read_all(driver: DlmsTcpDriver | DlmsHdlcDriver, meters: list[MeterConfig]) -> list[MeterValues]:
    await driver.open()
    try:
        return list(await asyncio.gather(*(driver.read(m) for m in meters)))
    finally:
        await driver.close()


def test_wrapper_public_client_reads_every_channel_and_tariff_in_exact_wh_and_the_drifting_clock() -> None:
    meters = [virtual("W1", 17), virtual("W2", 18, Faults(clock_drift=timedelta(minutes=7)))]

    async def scenario() -> list[MeterValues]:
        async with DlmsWrapperSimulator(meters, clock=lambda: NOW) as sim:
            driver = DlmsTcpDriver(bus("dlms-tcp", sim.url("W1")))
            config = [configured(m.serial, int(m.address), host=sim.url(m.serial)) for m in meters]
            return await read_all(driver, config)

    first, drifting = asyncio.run(asyncio.wait_for(scenario(), 30))
    for got, meter in ((first, meters[0]), (drifting, meters[1])):
        assert got.errors == {}
        assert got.tariffs == expected(meter)
    assert first.meter_time is not None and drifting.meter_time is not None
    assert abs(first.meter_time - NOW) < timedelta(seconds=1)
    assert abs(drifting.meter_time - NOW - timedelta(minutes=7)) < timedelta(seconds=1)


@pytest.mark.parametrize("transport", ["tcp", "pty"])
def test_hdlc_meters_sharing_one_line_are_read_one_at_a_time(transport: str) -> None:
    meters = [virtual(f"H{i}", 16 + i) for i in range(1, 4)]

    async def scenario() -> list[MeterValues]:
        async with DlmsHdlcSimulator(meters, transport=transport, baudrate=115200, clock=lambda: NOW) as sim:
            if transport == "pty":
                driver: DlmsTcpDriver | DlmsHdlcDriver = DlmsHdlcDriver(bus("dlms-hdlc", sim.url, baudrate=115200))
            else:
                url = "tcp://" + sim.url.split("://", 1)[1]
                driver = DlmsTcpDriver(bus("dlms-tcp", url, dlms={"transport": "hdlc"}))
            return await read_all(driver, [configured(m.serial, int(m.address)) for m in meters])

    results = asyncio.run(asyncio.wait_for(scenario(), 60))
    for got, meter in zip(results, meters, strict=True):
        assert got.errors == {}
        assert got.tariffs == expected(meter)


def test_lls_reader_and_a_refused_association_that_is_not_retried() -> None:
    meters = [virtual("L1", 17), virtual("L2", 18, Faults(refuse=True))]

    async def scenario() -> tuple[MeterValues, BaseException]:
        async with DlmsWrapperSimulator(meters, clock=lambda: NOW) as sim:
            driver = DlmsTcpDriver(bus("dlms-tcp", sim.url("L1"), dlms={"client": 32, "authentication": "lls"}))
            good = configured("L1", 17, host=sim.url("L1"), password="12345678")
            refused = configured("L2", 18, host=sim.url("L2"), password="12345678")
            values = await driver.read(good)
            with pytest.raises(DeviceError) as caught:
                await driver.read(refused)
            return values, caught.value

    values, error = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert values.raw["client"] == 32 and values.tariffs == expected(meters[0])
    assert getattr(error, "code", None) == "dlms.association_refused" and getattr(error, "retryable", None) is False
    assert "12345678" not in str(error)


@pytest.mark.parametrize(
    ("faults", "error", "code", "retryable"),
    [
        (Faults(silent=True), ReadTimeout, "timeout", True),  # the same code over TCP: see the next test
        (Faults(corrupt=1.0), ProtocolError, "dlms.hdlc_frame", None),
    ],
    ids=["silent", "corrupt"],
)
def test_hdlc_faults_are_coded_errors(
    faults: Faults, error: type[Exception], code: str, retryable: bool | None
) -> None:
    meters = [virtual("F1", 17, faults)]

    async def scenario() -> BaseException:
        async with DlmsHdlcSimulator(meters, transport="pty", baudrate=115200, clock=lambda: NOW) as sim:
            driver = DlmsHdlcDriver(bus("dlms-hdlc", sim.url, timeout=0.5, baudrate=115200))
            await driver.open()
            try:
                with pytest.raises(error) as caught:
                    await driver.read(configured("F1", 17))
            finally:
                await driver.close()
            return caught.value

    raised = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert getattr(raised, "code", None) == code
    if retryable is not None:
        assert getattr(raised, "retryable", None) is retryable


@pytest.mark.parametrize("transport", ["wrapper", "hdlc-tcp", "hdlc-pty"])
def test_no_answer_in_time_is_code_timeout_on_every_transport(transport: str) -> None:
    meters = [virtual("S1", 17, Faults(silent=True))]

    async def scenario() -> BaseException:
        driver: DlmsTcpDriver | DlmsHdlcDriver
        sim: DlmsWrapperSimulator | DlmsHdlcSimulator
        if transport == "wrapper":
            sim = DlmsWrapperSimulator(meters, clock=lambda: NOW)
        else:
            sim = DlmsHdlcSimulator(meters, transport=transport[5:], baudrate=115200, clock=lambda: NOW)
        async with sim:
            if isinstance(sim, DlmsWrapperSimulator):
                driver = DlmsTcpDriver(bus("dlms-tcp", sim.url("S1"), timeout=0.5))
            elif transport == "hdlc-tcp":
                url = "tcp://" + sim.url.split("://", 1)[1]
                driver = DlmsTcpDriver(bus("dlms-tcp", url, timeout=0.5, dlms={"transport": "hdlc"}))
            else:
                driver = DlmsHdlcDriver(bus("dlms-hdlc", sim.url, timeout=0.5, baudrate=115200))
            await driver.open()
            try:
                with pytest.raises(ReadTimeout) as caught:
                    await driver.read(configured("S1", 17))
            finally:
                await driver.close()
            return caught.value

    raised = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert getattr(raised, "code", None) == "timeout" and getattr(raised, "retryable", None) is True


def test_hls_gmac_configurator_and_segmented_hdlc_frames() -> None:
    meters = [virtual("G1", 17)]
    keys = {"client": 48, "authentication": "hls-gmac", "block_cipher_key": "000102030405060708090A0B0C0D0E0F",
            "authentication_key": "D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF"}

    async def scenario() -> list[MeterValues]:
        async with DlmsWrapperSimulator(meters, clock=lambda: NOW) as wrapper:
            ciphered = await DlmsTcpDriver(bus("dlms-tcp", wrapper.url("G1"), dlms=keys)).read(configured("G1", 17))
        async with DlmsHdlcSimulator(meters, transport="pty", baudrate=115200, clock=lambda: NOW) as line:
            # 32-byte information fields: the AARQ, the AARE and every answer go in segmented I-frames
            driver = DlmsHdlcDriver(bus("dlms-hdlc", line.url, baudrate=115200, dlms={"max_info_length": 32, **keys}))
            segmented = (await read_all(driver, [configured("G1", 17)]))[0]
        return [ciphered, segmented]

    for got in asyncio.run(asyncio.wait_for(scenario(), 60)):
        assert got.errors == {} and got.raw["authentication"] == "hls-gmac"
        assert got.tariffs == expected(meters[0])


def test_a_dropped_connection_is_a_retryable_error() -> None:
    meters = [virtual("D1", 17, Faults(drop=1.0))]

    async def scenario() -> BaseException:
        async with DlmsWrapperSimulator(meters, clock=lambda: NOW) as sim:
            with pytest.raises(DriverError) as caught:
                await DlmsTcpDriver(bus("dlms-tcp", sim.url("D1"), timeout=0.5)).read(configured("D1", 17))
            return caught.value

    raised = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert isinstance(raised, (ConnectError, ReadTimeout)), repr(raised)
    assert getattr(raised, "retryable", None) is True


@pytest.mark.parametrize("framing", ["wrapper", "hdlc"])
def test_object_list_through_get_blocks_from_the_simulator(framing: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from amr.drivers.dlms.session import Session
    from simulators.dlms.objects import OBJECTS

    target = virtual("L1", 17)
    sent: list[str] = []
    exchange = Session._exchange

    def counting(self: Session, request: Any) -> Any:
        sent.append(type(request).__name__)
        return exchange(self, request)

    monkeypatch.setattr(Session, "_exchange", counting)

    async def scenario() -> list[Any]:
        if framing == "wrapper":
            async with DlmsWrapperSimulator([target], clock=lambda: NOW) as sim:
                driver = DlmsTcpDriver(bus("dlms-tcp", sim.url("L1")))
                return await driver.objects(configured("L1", 17))
        async with DlmsHdlcSimulator([target], transport="tcp", clock=lambda: NOW) as line:
            url = "tcp://" + line.url.split("://", 1)[1]
            driver = DlmsTcpDriver(bus("dlms-tcp", url, dlms={"transport": "hdlc"}))
            return await driver.objects(configured("L1", 17))

    objects = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert [(o.class_id, o.obis) for o in objects] == [
        (o.class_id, ".".join(map(str, o.obis))) for o in OBJECTS.values()
    ]
    assert sent.count("GetRequestNext") >= 1  # longer than the meter's 512-byte PDU: it came in blocks


def test_a_tcp_bus_polls_as_many_meters_at_once_as_its_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    """More than the event loop's default executor holds (6 threads on two cores): the bus has its own."""
    import threading

    count = 12
    meters = [virtual(f"C{i}", 16 + i) for i in range(count)]
    together = threading.Barrier(count, timeout=10)  # broken unless all 12 polls run at the same time
    names: set[str] = set()
    on_port = DlmsTcpDriver._on_port

    def gathered(self: DlmsTcpDriver, meter: MeterConfig, work: Any) -> Any:
        names.add(threading.current_thread().name.rsplit("_", 1)[0])
        together.wait()
        return on_port(self, meter, work)

    monkeypatch.setattr(DlmsTcpDriver, "_on_port", gathered)

    async def scenario() -> list[MeterValues]:
        async with DlmsWrapperSimulator(meters, clock=lambda: NOW) as sim:
            driver = DlmsTcpDriver(bus("dlms-tcp", sim.url("C0"), concurrency=count))
            config = [configured(m.serial, int(m.address), host=sim.url(m.serial)) for m in meters]
            return await read_all(driver, config)

    results = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert [r.tariffs for r in results] == [expected(m) for m in meters]
    assert names == {"dlms-d"}
