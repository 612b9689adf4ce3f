"""Retries of one meter's poll: which errors are worth another attempt, and how long a poll may cost.

Whether an error is worth another attempt is the driver's to say: each `DriverError` carries
`retryable` (and a stable `code`), set where the protocol's answer is decoded — a timeout, a
lost connection or a garbled frame (CRC/BCC, framing) is retried; a Modbus busy / acknowledge /
gateway exception or a Mercury internal error / closed channel is retried; an access denial,
an illegal function / address / value, a meter mismatch is not (the meter will say the same
again: fix the configuration). A `ConfigError` and anything else (a driver bug) are not retried.

Attempts are ``retries + 1`` (``meter.retries``, else ``bus.retries``); before the n-th retry
the poll waits ``bus.retry_backoff × 2^(n-1)``, without holding the bus. Each driver call has
``meter.timeout`` (else ``bus.timeout``) inside the driver and, as a safety net, an
`asyncio.wait_for` of ``[collector] read_limit`` (default 10 × timeout + 5 s) around it. A silent
meter therefore costs its bus at most ``timeout × (retries + 1)``, and its poll that plus the
backoff (`RetryPolicy.worst_case`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from amr.config import BusConfig, MeterConfig
from amr.errors import DriverError

SAFETY_FACTOR = 10
SAFETY_MARGIN = timedelta(seconds=5)


def is_transient(error: BaseException) -> bool:
    """True when another attempt may succeed: the driver error says so (see the module's text)."""
    return isinstance(error, DriverError) and error.retryable


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Timeout, retries and backoff of one meter's poll."""

    timeout: float  # seconds, the driver's per-request timeout
    retries: int
    backoff: float  # seconds before the first retry; doubles
    limit: float  # seconds, the safety net around one driver call

    @classmethod
    def for_meter(cls, meter: MeterConfig, bus: BusConfig, read_limit: timedelta | None = None) -> RetryPolicy:
        """The policy from the meter's and its bus's settings."""
        timeout = meter.timeout or bus.timeout
        retries = bus.retries if meter.retries is None else meter.retries
        limit = read_limit or timeout * SAFETY_FACTOR + SAFETY_MARGIN
        return cls(timeout.total_seconds(), retries, bus.retry_backoff.total_seconds(), limit.total_seconds())

    @property
    def attempts(self) -> int:
        """Attempts in one poll."""
        return self.retries + 1

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (1-based): backoff, 2 × backoff, 4 × backoff ..."""
        return self.backoff * float(1 << (retry - 1))

    def delays(self) -> list[float]:
        """The waits before each retry."""
        return [self.delay(n) for n in range(1, self.retries + 1)]

    def bus_cost(self) -> float:
        """The most a silent meter holds its bus: one timeout per attempt."""
        return self.timeout * self.attempts

    def worst_case(self) -> float:
        """The longest a poll of a silent meter takes: every attempt's timeout plus the backoff."""
        return self.bus_cost() + sum(self.delays())
