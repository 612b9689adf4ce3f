"""Reading an IEC 62056-21 meter's load profile ``P.01`` by time range, in programming mode.

    -> /?address!CR LF                   <- /XXXZident CR LF
    -> ACK 0 Z 1 CR LF                   programming mode; both switch to Z
    <- SOH P0 STX (seed) ETX BCC         -> SOH P1 STX (password) ETX BCC     <- ACK
    -> SOH R1 STX 0.9.1() ETX BCC        <- STX 0.9.1(hhmmss) ETX BCC          the meter's clock,
    -> SOH R1 STX 0.9.2() ETX BCC        <- STX 0.9.2(YYMMDD) ETX BCC          to know what it closed
    -> SOH R5 STX P.01(from;to) ETX BCC  <- STX P.01(...)... EOT BCC  -> ACK  <- ... ETX BCC
    -> SOH B0 ETX BCC

The meter's ``password`` is required (programming mode). Text in `amr.protocols.iec62056_21.profile`;
the profile's periods are stamped at their end, so the range asked for runs from `start` to `end`
(inclusive) and only periods starting in [start, end) are kept. The meter lists closed periods
only; a period its clock has not closed yet (a clock behind ours) is reported as not final
(`ProfileRecords.complete_until`), so back-fill reads it on a later turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, tzinfo

from amr.config import BusConfig, MeterConfig
from amr.core.intervals import ProfileRecord, floor_interval
from amr.drivers.iec62056_21.settings import IecMeterSettings
from amr.drivers.profiles import ProfileReader, ProfileRecords, configured_depth
from amr.drivers.serial_line import SerialLine
from amr.errors import ConfigError, DriverError, ProtocolError
from amr.protocols import iec62056_21 as iec
from amr.protocols.iec62056_21 import profile as p01
from amr.protocols.iec62056_21.framing import ascii_text, check_block

DEFAULT_DEPTH = timedelta(days=60)  # a typical P.01 memory at 30 minutes; the meter's profile_depth overrides it


class IecProfiles(ProfileReader):
    """The ``profiles`` capability of `Iec62056Driver` (uses its line, lock, zone and sign-on)."""

    bus: BusConfig
    line: SerialLine
    tz: tzinfo
    _lock: threading.Lock
    # the driver's: sign on in programming mode with a password (returns the address); one block
    programming_session: Callable[[MeterConfig, bytes, float], str]
    _block: Callable[[bytes | None, float], bytes]

    def memory_depth(self, meter: MeterConfig) -> timedelta:
        """60 days, or the meter's ``profile_depth``."""
        return configured_depth(meter, DEFAULT_DEPTH)

    def cannot_read(self, meter: MeterConfig) -> str | None:
        """P.01 is read in programming mode: without a password it is not."""
        if IecMeterSettings.of(meter).password is None:
            return f"meter {meter.serial}: the P.01 profile is read in programming mode: set the meter's password"
        return None

    async def read_profile(self, meter: MeterConfig, start: datetime, end: datetime) -> list[ProfileRecord]:
        """The periods of [start, end) in the meter's profile, in a worker thread."""
        return await asyncio.to_thread(self.read_profile_sync, meter, start, end)

    def read_profile_sync(self, meter: MeterConfig, start: datetime, end: datetime) -> list[ProfileRecord]:
        """The blocking profile read."""
        given = IecMeterSettings.of(meter).password
        if given is None:
            raise ConfigError(self.cannot_read(meter) or "no password")
        timeout = (meter.timeout or self.bus.timeout).total_seconds()
        with self._lock:
            self.programming_session(meter, iec.encode_password(given), timeout)
            try:
                clock = self._meter_clock(timeout)
                request = iec.encode_command(iec.CommandMessage("R", "5", p01.request_data(start, end, self.tz)))
                text = self._profile_text(request, timeout)
            finally:
                with contextlib.suppress(DriverError):
                    self.line.send(iec.encode_break())
        entries = [e for e in p01.decode_profile(text, self.tz) if start <= e.start < end]
        found = ProfileRecords(
            ProfileRecord(
                start=e.start,
                length=e.period,
                energy={c: round(v) for c, v in e.energy().items()},
                flags=e.flags,
                raw="".join(f"({v})" for v, _ in e.values.values()),
                exact=e.energy(),
            )
            for e in entries
        )
        if clock is not None:
            period = entries[-1].period if entries else timedelta(minutes=30)
            found.complete_until = floor_interval(clock, period)
        return found

    def _meter_clock(self, timeout: float) -> datetime | None:
        """The meter's clock from 0.9.1 and 0.9.2 (None when it does not give them)."""
        from amr.drivers.iec62056_21.driver import meter_clock

        data_sets: list[iec.DataSet] = []
        for code in ("0.9.1", "0.9.2"):
            answer = self._block(iec.encode_command(iec.CommandMessage("R", "1", f"{code}()")), timeout)
            if answer != bytes((iec.NAK,)):
                data_sets += iec.decode_data_message(answer)
        return meter_clock(data_sets, self.tz)

    def _profile_text(self, request: bytes, timeout: float) -> str:
        """The P.01 answer's text, partial blocks (EOT) acknowledged and joined."""
        parts: list[str] = []
        block = self._block(request, timeout)
        while True:
            if block == bytes((iec.NAK,)):
                raise ProtocolError("the meter refused the P.01 read command (NAK)")
            if block[:1] != bytes((iec.STX,)):
                raise ProtocolError(f"a P.01 answer starts with STX; got {block[:12]!r}")
            parts.append(ascii_text(check_block(block), "P.01 answer"))
            if block[-2] == iec.ETX:
                return "".join(parts)
            block = self._block(bytes((iec.ACK,)), timeout)  # EOT: a partial block, ask for the next
