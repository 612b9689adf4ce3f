"""Reading a Mercury 230/234 power profile (memory 3) by time range; bytes in `amr.protocols.mercury230_profile`.

One read of [start, end)::

    -> 01 open (user level)          <- status OK
    -> 08 00 serial number           <- refused (`MeterMismatch`) when another meter is at the address
    -> 08 12 variant                 <- meter constant, once per meter (unless ``constant`` is configured)
    -> 08 13 last record             <- its address L, start tL, period T, overflow bit
    -> 06 03 [address] 0F            <- one 15-byte record, as often as needed
    -> 02 close

Records follow one another in memory 16 bytes apart, one per period the meter was powered, so the
first record at or after a time t lies at L − 16 × ⌊(tL − t) / T⌋ or later (an outage writes no
records, which moves older records nearer to L), and every record before that address is older
than t. The reader reads there; when that record is older than t (an outage came after it), the
one sought lies within the periods still missing, found by bisection. It then reads on, one
record at a time, until `end` or the newest record. When the memory does not reach back to t
(the array went round, or was never full), reading starts at the oldest record held. The newest
record's interval is still running and is not taken. Record times are the meter's clock, which
keeps the site's local time (`tz` of the driver).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo

from amr.config import BusConfig, MeterConfig
from amr.core.intervals import ProfileFlag, ProfileRecord
from amr.drivers.mercury230.settings import MercuryMeterSettings
from amr.drivers.profiles import ProfileReader, ProfileRecords, configured_depth
from amr.drivers.serial_line import SerialLine
from amr.errors import DriverError
from amr.protocols import mercury230 as merc
from amr.protocols import mercury230_profile as prof
from amr.protocols.crc import crc_ok

ON_THE_WIRE = 0.9  # share of request and answer time slept before reading the answer
Exchange = Callable[[bytes, int], bytes]
"""Send a request, return the answer of the given length (or a 4-byte status answer)."""


def waiter(expected: int) -> Callable[[bytes], bool]:
    """A completion predicate: `expected` bytes, or a 4-byte status answer with a correct CRC."""

    def done(received: bytes) -> bool:
        return len(received) >= expected or (len(received) == merc.STATUS_ANSWER_LENGTH and crc_ok(received))

    return done


class ProfileSession:
    """The reads of one open channel to the meter at `address`."""

    def __init__(self, exchange: Exchange, address: int, tz: tzinfo) -> None:
        """`exchange` does one request and answer on the line."""
        self.exchange = exchange
        self.address = address
        self.tz = tz
        self.reads = 0  # memory reads made
        self.newest: datetime | None = None  # the start of the running record, once asked (UTC)

    def constant(self) -> int:
        """The meter constant from the variant (08 12)."""
        answer = self.exchange(merc.encode_parameter_request(self.address, merc.Parameter.VARIANT), 9)
        return prof.constant_of_variant(merc.decode_variant_answer(answer, self.address))

    def last_record(self) -> prof.LastRecord:
        """Where the newest record is (08 13)."""
        answer = self.exchange(prof.encode_last_record_request(self.address), prof.LAST_RECORD_ANSWER_LENGTH)
        return prof.decode_last_record_answer(answer, self.address, self.tz)

    def record(self, memory_address: int) -> prof.PowerRecord | None:
        """The record at `memory_address` (None: erased)."""
        self.reads += 1
        answer = self.exchange(prof.encode_read_request(self.address, memory_address), prof.RECORD_LENGTH + 3)
        return prof.decode_record(prof.decode_read_answer(answer, self.address), self.tz)

    def records(self, start: datetime, end: datetime) -> list[prof.PowerRecord]:
        """The finished records whose intervals start in [start, end), oldest first (not the newest: it runs)."""
        last = self.last_record()
        step, newest = last.period, last.start.astimezone(UTC)
        self.newest = newest
        oldest = (last.memory_address + prof.RECORD_STEP) % prof.MEMORY_SIZE if last.overflowed else 0
        held = ((last.memory_address - oldest) % prof.MEMORY_SIZE) // prof.RECORD_STEP  # index of the newest
        if start > newest:
            return []
        cache: dict[int, prof.PowerRecord | None] = {}

        def at(index: int) -> datetime | None:  # the start of the record at `index` (0: oldest held)
            if index not in cache:
                cache[index] = self.record((oldest + index * prof.RECORD_STEP) % prof.MEMORY_SIZE)
            record = cache[index]
            return None if record is None else record.start.astimezone(UTC)

        # Each record after index i is at least one period later, so the first record at or after
        # `start` has an index of at least `first`; every record before it is older than `start`.
        first = max(0, held - int((newest - start) / step))
        found_at = at(first)
        if found_at is None or found_at < start:
            # An outage after `first`: the record sought is within the periods still missing.
            missing = (start - found_at) / step if found_at is not None else held - first
            low, high = first + 1, min(held, first + max(1, math.ceil(missing)))
            while low < high:  # the first index in [low, high] whose record is at or after `start`
                middle = (low + high) // 2
                moment = at(middle)
                if moment is None or moment < start:
                    low = middle + 1
                else:
                    high = middle
            first = low
            moment = at(first) if first <= held else None
            if moment is None or moment < start:
                return []
        found: list[prof.PowerRecord] = []
        for index in range(first, held):  # the newest record (`held`) is the period running now
            moment = at(index)
            record = cache[index]
            if moment is None or record is None:
                continue
            if moment >= end:
                break
            found.append(record)
        return found


def to_profile_record(record: prof.PowerRecord, constant: int) -> ProfileRecord:
    """A decoded Mercury record as the shared vocabulary (UTC, exact Wh, status as flags)."""
    exact = record.energy(constant)
    return ProfileRecord(
        start=record.start.astimezone(UTC),
        length=record.period,
        energy={c: round(v) for c, v in exact.items()},
        flags=ProfileFlag.PARTIAL if record.incomplete else ProfileFlag.NONE,
        raw=prof.encode_record(record),
        exact=exact,
    )


class MercuryProfiles(ProfileReader):
    """The ``profiles`` capability of `Mercury230Driver` (uses its line, lock and zone)."""

    bus: BusConfig
    line: SerialLine
    tz: tzinfo
    _lock: threading.Lock

    def _check_serial(self, meter: MeterConfig, session: ProfileSession) -> None:
        """The meter at the address must be the configured one (08 00), as in a register poll: a
        swapped meter's profile never goes into another's series."""
        from amr.drivers.mercury230.driver import MeterMismatch, same_serial

        request = merc.encode_parameter_request(session.address, merc.Parameter.SERIAL_AND_DATE)
        identity = merc.decode_serial_answer(session.exchange(request, merc.SERIAL_ANSWER_LENGTH), session.address)
        if not same_serial(meter.serial, identity.serial):
            raise MeterMismatch(
                f"meter {meter.serial}: the meter at address {session.address} on bus {self.bus.name} reports "
                f"serial {identity.serial}; its profile was not read: fix the address or the serial"
            )

    def _constant(self, serial: str, session: ProfileSession) -> int:
        """The meter's constant from its variant, asked once per meter and driver (it never changes)."""
        known: dict[str, int] = self.__dict__.setdefault("_profile_constants", {})
        if serial not in known:
            known[serial] = session.constant()
        return known[serial]

    def memory_depth(self, meter: MeterConfig) -> timedelta:
        """4096 records of 30 minutes (85 days 8 hours), or the meter's ``profile_depth``."""
        return configured_depth(meter, prof.RECORDS * timedelta(minutes=30))

    async def read_profile(self, meter: MeterConfig, start: datetime, end: datetime) -> list[ProfileRecord]:
        """The finished records of [start, end) in the meter's memory, in a worker thread."""
        return await asyncio.to_thread(self.read_profile_sync, meter, start, end)

    def read_profile_sync(self, meter: MeterConfig, start: datetime, end: datetime) -> list[ProfileRecord]:
        """The blocking profile read: open, constant, last record, records, close."""
        from amr.drivers.mercury230.driver import meter_address, meter_password

        address = meter_address(meter)
        timeout = (meter.timeout or self.bus.timeout).total_seconds()

        def exchange(request: bytes, expected: int) -> bytes:
            # Sleep through most of both frames' time on the wire before reading: a record's answer
            # is then taken in one or two reads instead of a wake-up per character (10 busy lines in
            # one process otherwise spend their CPU on it). The read deadline is unchanged.
            self.line.send(request)
            time.sleep(self.line.frame_time(len(request) + expected) * ON_THE_WIRE)
            return self.line.receive(waiter(expected), timeout)

        with self._lock:
            self.line.open()
            opened = exchange(merc.encode_open_request(address, merc.AccessLevel.USER, meter_password(meter)), 4)
            merc.decode_status_answer(opened, address)
            session = ProfileSession(exchange, address, self.tz)
            self._check_serial(meter, session)
            constant = MercuryMeterSettings.of(meter).constant or self._constant(meter.serial, session)
            records = session.records(start.astimezone(UTC), end.astimezone(UTC))
            with contextlib.suppress(DriverError):  # the records are read; the channel closes by itself
                merc.decode_status_answer(exchange(merc.encode_close_request(address), 4), address)
        found = ProfileRecords(to_profile_record(r, constant) for r in records)
        found.complete_until = session.newest  # the newest record is the one running now
        return found
