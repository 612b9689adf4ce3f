"""Mercury 230 instantaneous values: one 08 11 [BWRI] request a quantity (`amr.protocols.mercury230_instant`).

A session on the line like a poll: open the channel at the user level, ask each quantity, close.
A quantity the meter refuses (a single-phase variant, an older firmware) is named in the sample's
errors and the others are kept; silence ends the session.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from amr.config import MeterConfig
from amr.drivers.mercury230.driver import meter_address, meter_password
from amr.drivers.quality import QualitySample
from amr.errors import DeviceError, DriverError, ProtocolError
from amr.protocols import mercury230 as merc
from amr.protocols import mercury230_instant as aux

if TYPE_CHECKING:
    from amr.drivers.mercury230.driver import Mercury230Driver


def read_sync(driver: Mercury230Driver, meter: MeterConfig) -> QualitySample:
    """The blocking session reading every auxiliary value of `meter` (holding the line)."""
    address, password = meter_address(meter), meter_password(meter)
    timeout = (meter.timeout or driver.bus.timeout).total_seconds()
    found: dict[str, float] = {}
    problems: dict[str, str] = {}
    with driver._lock:
        driver.line.open()
        measured_at = datetime.now(UTC)
        opened = driver._ask(merc.encode_open_request(address, merc.AccessLevel.USER, password), timeout)
        merc.decode_status_answer(opened, address)
        try:
            for quantity, (bwri, _) in aux.QUANTITIES.items():
                request = aux.encode_request(address, bwri)
                try:
                    answer = driver.line.exchange(request, aux.is_complete, timeout)
                    found[quantity] = aux.decode_answer(answer, address, quantity)
                except (DeviceError, ProtocolError) as exc:
                    problems[quantity] = str(exc)
        finally:
            with contextlib.suppress(DriverError):
                merc.decode_status_answer(driver._ask(merc.encode_close_request(address), timeout), address)
    if not found:
        first = next(iter(problems.values()), "nothing answered")
        raise DeviceError(f"meter {meter.serial}: no auxiliary value could be read: {first}")
    return QualitySample(meter.serial, measured_at, found, problems)

