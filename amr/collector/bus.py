"""One worker per polled bus: who may talk on the bus when, and one meter's read with its retries.

- A serial line (``driver.serial_line``: Modbus RTU, IEC 62056-21, Mercury 230) carries one
  transaction at a time: one slot per bus, first come first served. The driver keeps
  the inter-frame pause itself.
- A TCP bus (Modbus TCP) reads up to its ``concurrency`` meters at once (as many slots); the
  driver keeps one connection per device.

The bus is held for one attempt, never during the backoff before a retry, so a silent meter
costs the others on its line at most ``timeout × (retries + 1)``, and meters on other buses
(or other TCP devices) nothing. A retry takes the next free turn, ahead of first attempts
(`BusSlots`), so a silent meter's poll ends soon after its last timeout, not after the
sweep. Retry rules: `amr.collector.retry`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from amr.collector.retry import RetryPolicy, is_transient
from amr.collector.slots import BusSlots
from amr.config import BusConfig, MeterConfig
from amr.drivers.base import MeterValues, PollDriver
from amr.errors import AmrError, ReadTimeout

log = logging.getLogger("amr.collector")


class Stopping(AmrError):
    """The collector is shutting down; the poll was not started."""


@dataclass(slots=True)
class ReadOutcome:
    """The end of one meter's read: values, or the last error; attempts made."""

    values: MeterValues | None
    error: BaseException | None
    attempts: int


def describe(error: BaseException) -> str:
    """An error as one line for health and output: the project's own messages as they are."""
    if isinstance(error, AmrError):
        return str(error) or type(error).__name__
    return f"{type(error).__name__}: {error}"


class BusWorker:
    """A polled bus: its driver and its access rule."""

    def __init__(
        self,
        bus: BusConfig,
        driver: PollDriver,
        stopping: asyncio.Event,
        read_limit: timedelta | None = None,
    ) -> None:
        """`stopping`: once set, reads not yet on the bus are not started and retries end."""
        self.bus = bus
        self.driver = driver
        self.stopping = stopping
        self.read_limit = read_limit
        self.serial_line = driver.serial_line
        self.slots = BusSlots(1 if driver.serial_line else bus.settings.reads_at_once)

    def policy(self, meter: MeterConfig) -> RetryPolicy:
        """Timeout, retries and backoff of `meter` on this bus."""
        return RetryPolicy.for_meter(meter, self.bus, self.read_limit)

    async def open(self) -> None:
        """Open the bus; a failure is logged and the reads open it again."""
        timeout = self.bus.timeout.total_seconds() * 2 + 1
        try:
            await asyncio.wait_for(self.driver.open(), timeout)
        except TimeoutError:
            log.warning("bus %s: not opened within %g s; every poll tries again", self.bus.name, timeout)
        except Exception as exc:
            log.warning("bus %s: %s; every poll tries again", self.bus.name, describe(exc))

    async def close(self) -> None:
        """Close the driver; never raises."""
        try:
            await asyncio.wait_for(self.driver.close(), self.bus.timeout.total_seconds() * 2 + 1)
        except Exception as exc:
            log.debug("bus %s: close: %s", self.bus.name, describe(exc))

    async def read(self, meter: MeterConfig, allowed: Callable[[], bool] | None = None) -> ReadOutcome:
        """Read `meter`, retrying transient errors with backoff; never raises a driver error.

        `allowed` is asked when the bus gives the read its turn: False (e.g. the lease of the meter's
        bus was lost while the read waited) ends it there, as `Stopping` when no attempt was made."""
        policy = self.policy(meter)
        error: BaseException | None = None
        attempts = 0
        for attempt in range(1, policy.attempts + 1):
            if attempt > 1:
                if self.stopping.is_set():
                    break
                await asyncio.sleep(policy.delay(attempt - 1))
            async with self.slots.hold(retry=attempt > 1):
                if self.stopping.is_set():
                    return ReadOutcome(None, error or Stopping("the collector is stopping"), attempts)
                if allowed is not None and not allowed():
                    return ReadOutcome(None, error or Stopping("no longer this collector's to poll"), attempts)
                attempts = attempt
                try:
                    async with asyncio.timeout(policy.limit):
                        values = await self.driver.read(meter)
                    return ReadOutcome(values, None, attempts)
                except TimeoutError:
                    error = ReadTimeout(
                        f"bus {self.bus.name}: the driver gave no result for meter {meter.serial} "
                        f"within {policy.limit:g} s"
                    )
                except Exception as exc:
                    error = exc
                    if not isinstance(exc, AmrError):
                        log.debug("meter %s: unexpected driver error", meter.serial, exc_info=True)
            if not is_transient(error):
                break
            log.debug("meter %s: attempt %d of %d failed: %s", meter.serial, attempt, policy.attempts, error)
        return ReadOutcome(None, error, attempts)
