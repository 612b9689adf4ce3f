"""Retries of one meter's poll: which errors are worth another attempt, and how long a poll may cost.

Per error (decided by `is_transient`):

================================================  =========  ============================================
error                                             retried    why
================================================  =========  ============================================
`ReadTimeout`                                     yes        a busy line, a lost frame, a slow meter
`ConnectError`                                    yes        a converter or gateway reconnecting
`ProtocolError` (bad CRC/BCC, framing, length)    yes        noise on the line; the next answer is usually fine
`DeviceError`: Modbus 5 acknowledge, 6 busy,      yes        the device says "later"
10/11 gateway; Mercury 2 internal error,
5 channel not open
`DeviceError`: access denied, illegal function /  no         the meter will say the same again: fix the config
address / value, any other exception code
`ConfigError` (bad address, password format)      no         the configuration is wrong
anything else (a driver bug)                      no         reported as it is
================================================  =========  ============================================

Attempts are ``retries + 1`` (``meter.retries``, else ``bus.retries``); before the n-th retry
the poll waits ``bus.retry_backoff × 2^(n-1)``, without holding the bus. Each driver call has
``meter.timeout`` (else ``bus.timeout``) inside the driver and, as a safety net, an
`asyncio.wait_for` of ``[collector] read_limit`` (default 10 × timeout + 5 s) around it. A silent
meter therefore costs its bus at most ``timeout × (retries + 1)``, and its poll that plus the
backoff (`RetryPolicy.worst_case`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from amr.config import BusConfig, MeterConfig
from amr.errors import ConfigError, ConnectError, DeviceError, ProtocolError, ReadTimeout

TRANSIENT_MODBUS_CODES = frozenset({5, 6, 10, 11})  # acknowledge, busy, gateway path / target
TRANSIENT_MERCURY_STATUS = frozenset({2, 5})  # internal error, channel not open
SAFETY_FACTOR = 10
SAFETY_MARGIN = timedelta(seconds=5)
_MODBUS_CODE = re.compile(r"\((\d+)\)\s*$")


def is_transient(error: BaseException) -> bool:
    """True when another attempt may succeed (see the module's table)."""
    if isinstance(error, (ReadTimeout, ConnectError, ProtocolError)):
        return True
    if isinstance(error, ConfigError):
        return False
    if isinstance(error, DeviceError):
        status = getattr(error, "status", None)  # amr.protocols.mercury230.MercuryStatusError
        if isinstance(status, int):
            return status in TRANSIENT_MERCURY_STATUS
        text = str(error)
        if "access denied" in text:
            return False
        match = _MODBUS_CODE.search(text)  # "unit 3 answered server device busy (6)"
        return match is not None and int(match.group(1)) in TRANSIENT_MODBUS_CODES
    return False


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
