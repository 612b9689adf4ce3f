"""Retries per error, backoff and timing math, and the bus rules, with scripted drivers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar

import pytest

from amr.collector.bus import BusWorker, Stopping
from amr.collector.retry import RetryPolicy, is_transient
from amr.config import BusConfig, MeterConfig
from amr.drivers.base import MeterValues, PollDriver
from amr.drivers.modbus.errors import ModbusExceptionError
from amr.errors import ConfigError, ConnectError, DeviceError, ProtocolError, ReadTimeout
from amr.protocols.mercury230 import MercuryStatusError

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 20))


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (ReadTimeout("no answer"), True),
        (ConnectError("refused"), True),
        (ProtocolError("CRC mismatch"), True),
        (MercuryStatusError(17, 3), False),  # access denied
        (MercuryStatusError(17, 1), False),  # illegal command
        (MercuryStatusError(17, 2), True),  # internal error
        (MercuryStatusError(17, 5), True),  # channel not open
        (ModbusExceptionError("tcp://h:502", 3, 2), False),  # illegal data address
        (ModbusExceptionError("tcp://h:502", 3, 6), True),  # server device busy
        (ModbusExceptionError("tcp://h:502", 3, 11), True),  # gateway target device failed to respond
        (DeviceError("IEC meter '42': access denied: the password was refused (NAK)", code="iec.access_denied"), False),
        (ConfigError("meter 1: a Modbus unit id is 1..247"), False),
        (ValueError("a driver bug"), False),
    ],
)
def test_which_errors_are_retried(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient


def bus(**fields: Any) -> BusConfig:
    base = {"name": "b", "kind": "mercury230", "url": "/dev/null", "timeout": "100ms", "retries": 2,
            "retry_backoff": "50ms"}
    return BusConfig.model_validate({**base, **fields})


def test_policy_comes_from_meter_then_bus_and_doubles_the_backoff() -> None:
    meter = MeterConfig(serial="1", timeout=timedelta(milliseconds=300), retries=3)
    policy = RetryPolicy.for_meter(meter, bus())
    assert (policy.timeout, policy.retries, policy.attempts, policy.backoff) == (0.3, 3, 4, 0.05)
    assert policy.delays() == [0.05, 0.1, 0.2]
    assert policy.bus_cost() == pytest.approx(1.2)
    assert policy.worst_case() == pytest.approx(1.55)
    assert policy.limit == pytest.approx(0.3 * 10 + 5)  # the safety net's default
    plain = RetryPolicy.for_meter(MeterConfig(serial="2"), bus(), read_limit=timedelta(seconds=2))
    assert (plain.timeout, plain.retries, plain.limit) == (0.1, 2, 2.0)
    assert RetryPolicy.for_meter(MeterConfig(serial="3", retries=0), bus()).worst_case() == pytest.approx(0.1)


Script = Callable[[MeterConfig, int], Coroutine[Any, Any, MeterValues]]


class Scripted(PollDriver):
    """Answers per meter from a script; records when each read ran."""

    kind: ClassVar[str] = "scripted"
    source: ClassVar[str] = "askue:serial"

    def __init__(self, config: BusConfig, script: Script, serial_line: bool = True) -> None:
        super().__init__(config)
        self.script = script
        self.serial_line = serial_line  # type: ignore[misc]
        self.calls: dict[str, int] = {}
        self.spans: list[tuple[str, float, float]] = []
        self.busy = self.peak = 0

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def read(self, meter: MeterConfig) -> MeterValues:
        count = self.calls[meter.serial] = self.calls.get(meter.serial, 0) + 1
        started = time.monotonic()
        self.busy += 1
        self.peak = max(self.peak, self.busy)
        try:
            return await self.script(meter, count)
        finally:
            self.busy -= 1
            self.spans.append((meter.serial, started, time.monotonic()))


def values(meter: MeterConfig) -> MeterValues:
    return MeterValues(meter.serial, {0: {}}, datetime.now(UTC))


async def silent(meter: MeterConfig, _: int) -> MeterValues:
    await asyncio.sleep(0.1)  # the driver's own timeout
    raise ReadTimeout("no answer within 0.1 s")


def test_a_silent_meter_costs_timeout_times_attempts_plus_backoff() -> None:
    async def scenario() -> tuple[float, int, int]:
        driver = Scripted(bus(), silent)
        worker = BusWorker(bus(), driver, asyncio.Event())
        started = time.monotonic()
        outcome = await worker.read(MeterConfig(serial="dead"))
        assert isinstance(outcome.error, ReadTimeout)
        return time.monotonic() - started, outcome.attempts, driver.calls["dead"]

    elapsed, attempts, calls = run(scenario())
    assert attempts == calls == 3
    assert 0.45 <= elapsed < 0.45 + 0.4  # 3 × 0.1 s + 0.05 s + 0.1 s


def test_a_transient_error_then_success() -> None:
    async def flaky(meter: MeterConfig, count: int) -> MeterValues:
        if count < 3:
            raise ProtocolError("CRC mismatch")
        return values(meter)

    async def scenario() -> None:
        worker = BusWorker(bus(), Scripted(bus(), flaky), asyncio.Event())
        outcome = await worker.read(MeterConfig(serial="m"))
        assert outcome.values is not None and outcome.attempts == 3 and outcome.error is None

    run(scenario())


def test_access_denied_is_not_retried() -> None:
    async def denied(meter: MeterConfig, _: int) -> MeterValues:
        raise MercuryStatusError(17, 3)

    async def scenario() -> None:
        driver = Scripted(bus(), denied)
        outcome = await BusWorker(bus(), driver, asyncio.Event()).read(MeterConfig(serial="m"))
        assert isinstance(outcome.error, DeviceError) and outcome.attempts == 1 and driver.calls["m"] == 1

    run(scenario())


def test_a_hung_driver_is_cut_off_by_the_safety_net() -> None:
    async def hung(meter: MeterConfig, _: int) -> MeterValues:
        await asyncio.sleep(3600)
        raise AssertionError

    async def scenario() -> float:
        worker = BusWorker(bus(retries=0), Scripted(bus(), hung), asyncio.Event(), timedelta(milliseconds=150))
        started = time.monotonic()
        outcome = await worker.read(MeterConfig(serial="m"))
        assert isinstance(outcome.error, ReadTimeout) and "within 0.15 s" in str(outcome.error)
        return time.monotonic() - started

    assert 0.15 <= run(scenario()) < 0.6


def test_the_backoff_does_not_hold_a_serial_line() -> None:
    async def script(meter: MeterConfig, count: int) -> MeterValues:
        if meter.serial == "dead":
            return await silent(meter, count)
        await asyncio.sleep(0.02)
        return values(meter)

    async def scenario() -> Scripted:
        driver = Scripted(bus(), script)
        worker = BusWorker(bus(), driver, asyncio.Event())
        dead = asyncio.create_task(worker.read(MeterConfig(serial="dead")))
        await asyncio.sleep(0.01)
        good = [asyncio.create_task(worker.read(MeterConfig(serial=f"ok{i}"))) for i in range(3)]
        await asyncio.gather(dead, *good)
        return driver

    driver = run(scenario())
    assert driver.peak == 1  # one transaction at a time on the line
    spans = sorted(driver.spans, key=lambda s: s[1])
    order = [serial for serial, _, _ in spans]
    assert order[:2] == ["dead", "ok0"]  # the others go while the dead meter backs off
    finished = {serial: end for serial, _, end in spans}
    assert max(finished[f"ok{i}"] for i in range(3)) < max(end for s, _, end in spans if s == "dead")


def test_a_tcp_bus_reads_up_to_its_concurrency_at_once() -> None:
    async def slow(meter: MeterConfig, _: int) -> MeterValues:
        await asyncio.sleep(0.1)
        return values(meter)

    async def scenario() -> tuple[float, int]:
        config = bus(kind="modbus-tcp", url="tcp://127.0.0.1:502", concurrency=3)
        driver = Scripted(config, slow, serial_line=False)
        worker = BusWorker(config, driver, asyncio.Event())
        started = time.monotonic()
        await asyncio.gather(*(worker.read(MeterConfig(serial=str(i))) for i in range(6)))
        return time.monotonic() - started, driver.peak

    elapsed, peak = run(scenario())
    assert peak == 3
    assert 0.2 <= elapsed < 0.5


def test_stopping_ends_retries_and_skips_reads_not_yet_on_the_bus() -> None:
    async def scenario() -> None:
        stopping = asyncio.Event()
        driver = Scripted(bus(), silent)
        worker = BusWorker(bus(), driver, stopping)
        first = asyncio.create_task(worker.read(MeterConfig(serial="a")))
        queued = asyncio.create_task(worker.read(MeterConfig(serial="b")))
        await asyncio.sleep(0.05)
        stopping.set()
        a, b = await asyncio.gather(first, queued)
        assert a.attempts == 1 and isinstance(a.error, ReadTimeout)  # the read on the line finished
        assert b.attempts == 0 and isinstance(b.error, Stopping)
        assert driver.calls == {"a": 1}

    run(scenario())


def test_a_read_no_longer_allowed_when_its_turn_comes_is_not_made() -> None:
    async def answer(meter: MeterConfig, _: int) -> MeterValues:
        return values(meter)

    async def scenario() -> None:
        driver = Scripted(bus(), answer)
        worker = BusWorker(bus(), driver, asyncio.Event())
        outcome = await worker.read(MeterConfig(serial="m"), allowed=lambda: False)  # the lease was lost meanwhile
        assert isinstance(outcome.error, Stopping) and outcome.attempts == 0 and "m" not in driver.calls
        outcome = await worker.read(MeterConfig(serial="m"), allowed=lambda: True)
        assert outcome.values is not None and driver.calls["m"] == 1

    run(scenario())
