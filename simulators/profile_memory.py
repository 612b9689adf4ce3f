"""The power-profile memory of a virtual Mercury 230 (memory 3), with outages and clock changes to inject.

    memory = ProfileMemory(meter, start=now - timedelta(days=90), outages=[(t1, t2)])
    MercurySimulator([meter], profiles={meter.serial: memory})

Since `start` the meter writes one record per period (30 minutes) while it has power, into a ring of
4096 records of 16 bytes (`amr.protocols.mercury230_profile`): after 85 days the oldest are
overwritten and the overflow bit is set. An outage writes no records; the record of the period in
which power came back is marked incomplete (status 0x02), with the energy of the powered part
only. A clock change marks the record of its period incomplete. Each record is stamped with the
end of its period, as the meter does (`amr.protocols.mercury230_profile` writes the end from the
start kept here). The newest record is the period running now. Energy per period follows the
meter's daily load curve (`VirtualMeter.base_kw`), drawn from a generator seeded by serial and
period, so a record reads the same every time; it is not tied to the meter's registers.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from amr.core.domain import Channel
from amr.core.intervals import floor_interval
from amr.protocols import mercury230 as merc
from amr.protocols import mercury230_profile as prof
from amr.protocols.iec62056_21 import profile as p01
from simulators.model import VirtualMeter

Outage = tuple[datetime, datetime]  # power off from, power back at (UTC)
IEC_CHANNELS = (
    ("1.5.0", Channel.A_PLUS, "kW"),
    ("2.5.0", Channel.A_MINUS, "kW"),
    ("3.5.0", Channel.R_PLUS, "kvar"),
    ("4.5.0", Channel.R_MINUS, "kvar"),
)  # the channels of a simulated IEC meter's P.01 profile: average powers of the period


class ProfileMemory:
    """Memory 3 of one virtual Mercury 230."""

    def __init__(
        self,
        meter: VirtualMeter,
        *,
        start: datetime | None = None,
        period: timedelta = timedelta(minutes=30),
        constant: int = 500,
        outages: Iterable[Outage] = (),
        clock_changes: Iterable[datetime] = (),
        records: int = prof.RECORDS,
    ) -> None:
        """Records from `start` (default: the meter's start); `constant` in pulses per kWh (variant code 3: 500);
        `records`: how many the memory holds (Mercury: 4096)."""
        self.records = records
        self.meter = meter
        self.period = period
        self.constant = constant
        self.start = floor_interval(start or meter.start, period)
        self.outages: list[Outage] = sorted(outages)
        self.clock_changes = list(clock_changes)
        self.zone = ZoneInfo(meter.timezone)
        self._times: list[datetime] = []  # the start of every record ever written, oldest first
        self._next = self.start  # the next period to consider

    def _powered(self, begin: datetime, end: datetime) -> timedelta:
        """How long the meter had power within [begin, end)."""
        off = timedelta(0)
        for down, up in self.outages:
            overlap = min(end, up) - max(begin, down)
            if overlap > timedelta(0):
                off += overlap
        return end - begin - off

    def powered(self, now: datetime) -> bool:
        """False while an outage lasts (the meter then answers nothing)."""
        return not any(down <= now < up for down, up in self.outages)

    def _advance(self, now: datetime) -> None:
        """Write the records of every period begun up to `now` (the running one included)."""
        while self._next <= now:
            if self._powered(self._next, self._next + self.period) > timedelta(0):
                self._times.append(self._next)
            self._next += self.period

    def records_written(self, now: datetime) -> int:
        """How many records the meter has written by `now` (more than 4096: the ring went round)."""
        self._advance(now)
        return len(self._times)

    def times(self, now: datetime) -> Sequence[datetime]:
        """The starts of the records still held at `now`, oldest first."""
        self._advance(now)
        return self._times[-self.records :]

    def cause(self, begin: datetime) -> str | None:
        """Why the period starting at `begin` is incomplete: "power", "clock" or None."""
        end = begin + self.period
        if self._powered(begin, end) < self.period:
            return "power"
        return "clock" if any(begin <= c < end for c in self.clock_changes) else None

    def iec_entries(self, start: datetime, end: datetime, now: datetime) -> list[p01.ProfileEntry]:
        """The closed periods with an end in [start, end], as P.01 entries: average powers in kW
        (exact: 1 Wh a pulse at the default constant), status 0x80 after a power failure, 0x20 after
        a clock change (`amr.protocols.iec62056_21.profile`)."""
        now = self.meter.clock(now)
        entries = []
        hours = Decimal(int(self.period.total_seconds())) / 3600
        for begin in self.times(now)[:-1]:
            if not start <= begin + self.period <= end:
                continue
            pulses = self.pulses(begin, now)
            values = {}
            for code, channel, unit in IEC_CHANNELS:
                wh = Decimal(pulses[channel] or 0) * 500 / self.constant
                values[code] = ((wh / 1000 / hours).normalize(), unit)
            status = {"power": 0x80, "clock": 0x20, None: 0}[self.cause(begin)]
            entries.append(p01.ProfileEntry(begin + self.period, self.period, status, values))
        return entries

    def _status(self, begin: datetime) -> int:
        end = begin + self.period
        incomplete = self._powered(begin, end) < self.period or any(begin <= c < end for c in self.clock_changes)
        return prof.INCOMPLETE if incomplete else 0

    def pulses(self, begin: datetime, now: datetime) -> dict[Channel, int | None]:
        """The stored pulse counts of the period starting at `begin` (up to `now` for the running one)."""
        end = min(begin + self.period, now)
        powered = self._powered(begin, end) / self.period
        local = begin.astimezone(self.zone)
        hour = local.hour + local.minute / 60
        curve = 0.6 + 0.5 * math.exp(-((hour - 8) ** 2) / 4) + 0.9 * math.exp(-((hour - 19.5) ** 2) / 6)
        rng = random.Random(zlib.crc32(f"{self.meter.serial}|{begin.isoformat()}".encode()))
        kw = self.meter.base_kw * curve * (0.9 + 0.2 * rng.random())
        wh = kw * 1000 * self.period.total_seconds() / 3600 * max(0.0, powered)
        pulses = round(wh * 2 * self.constant / 1000)
        return {
            Channel.A_PLUS: pulses,
            Channel.A_MINUS: 0,
            Channel.R_PLUS: round(pulses * self.meter.tan_phi),
            Channel.R_MINUS: 0,
        }

    def record(self, begin: datetime, now: datetime) -> prof.PowerRecord:
        """The record of the period starting at `begin` (by the meter's clock), in the meter's zone."""
        return prof.PowerRecord(begin.astimezone(self.zone), self.period, self._status(begin), self.pulses(begin, now))

    def last_record_answer(self, address: int, now: datetime) -> bytes:
        """The answer to 08 13 (`now` by our clock; the meter's own runs `clock_drift` off)."""
        now = self.meter.clock(now)
        written = self.records_written(now)
        if not written:
            return merc.encode_status_answer(address, merc.Status.INTERNAL_ERROR)
        newest = self._times[-1]
        status = prof.OVERFLOW if written > prof.RECORDS else 0
        memory_address = (written - 1) * prof.RECORD_STEP % prof.MEMORY_SIZE
        shown = newest.astimezone(self.zone)
        return prof.encode_last_record_answer(address, memory_address, shown, self.period, status)

    def read_answer(self, address: int, request: prof.ReadRequest, now: datetime) -> bytes:
        """The answer to 06 03 [address] [count]: whole records of 16 bytes, the 16th byte 00."""
        if request.memory != prof.PROFILE_MEMORY:
            return merc.encode_status_answer(address, merc.Status.ILLEGAL_COMMAND)
        now = self.meter.clock(now)
        written = self.records_written(now)
        data = bytearray()
        memory_address = request.memory_address
        while len(data) < request.count:
            slot, offset = divmod(memory_address % prof.MEMORY_SIZE, prof.RECORD_STEP)
            # The record in `slot` is the latest written there: number slot + 4096 × k below `written`.
            index = slot + (written - 1 - slot) // prof.RECORDS * prof.RECORDS if written > slot else -1
            if index < 0:
                raw = b"\xff" * prof.RECORD_STEP
            else:
                raw = prof.encode_record(self.record(self._times[index], now)) + b"\x00"
            data += raw[offset:]
            memory_address += prof.RECORD_STEP - offset
        return prof.encode_read_answer(address, bytes(data[: request.count]))
