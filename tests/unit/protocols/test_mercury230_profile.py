"""Mercury 230 power profile bytes (Incotex protocol: 08 13, 06 03, record layout) and the range search."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest

from amr.core.domain import Channel
from amr.core.intervals import ProfileFlag
from amr.drivers.mercury230.profile import ProfileSession, to_profile_record
from amr.errors import ProtocolError
from amr.protocols import mercury230 as merc
from amr.protocols import mercury230_profile as prof
from amr.protocols.crc import append_crc
from simulators.model import VirtualMeter
from simulators.profile_memory import ProfileMemory

MSK = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 3, 1, 12, 10, tzinfo=UTC)
HALF = timedelta(minutes=30)


def test_last_record_answer_by_the_layout() -> None:
    # [addr 4D] [address 0F F0] [status 01: bit 0, overflowed] [13 30 28 12 22: 13:30 28.12.2022 BCD] [T 1E = 30 min]
    answer = append_crc(bytes.fromhex("4D 0F F0 01 13 30 28 12 22 1E"))
    last = prof.decode_last_record_answer(answer, 0x4D, MSK)
    assert last.memory_address == 0x0FF0
    assert last.overflowed
    assert last.start == datetime(2022, 12, 28, 13, 0, tzinfo=MSK)  # stamped with the end, 13:30
    assert last.period == HALF
    assert prof.encode_last_record_answer(0x4D, 0x0FF0, last.start, HALF, 0x01) == answer


def test_only_bit_0_of_the_last_record_status_says_overflowed() -> None:
    # status 0A: winter time (bit 3) and an incomplete newest record (bit 1), the array not gone round;
    # status 80: a bit the overflow is not (an older reading of the document took it for the flag)
    for status in (0x0A, 0x80):
        answer = append_crc(bytes((0x4D, 0x0F, 0xF0, status)) + bytes.fromhex("13 30 28 12 22 1E"))
        assert not prof.decode_last_record_answer(answer, 0x4D, MSK).overflowed
    answer = append_crc(bytes.fromhex("4D 0F F0 09 13 30 28 12 22 1E"))  # winter time and overflowed
    assert prof.decode_last_record_answer(answer, 0x4D, MSK).overflowed


def test_record_by_the_layout_and_energy_from_the_meter_constant() -> None:
    # status 02 (incomplete), stamped 09:00 15.01.26 (the end), T = 30: the interval 08:30-09:00,
    # P+ = 0x0203 pulses (low byte first), P- none, Q+ 5, Q- 0
    data = bytes.fromhex("02 09 00 15 01 26 1E 03 02 FF FF 05 00 00 00")
    record = prof.decode_record(data, MSK)
    assert record is not None
    assert record.start == datetime(2026, 1, 15, 8, 30, tzinfo=MSK)
    assert record.incomplete
    assert record.pulses == {Channel.A_PLUS: 0x0203, Channel.A_MINUS: None, Channel.R_PLUS: 5, Channel.R_MINUS: 0}
    # N / (2 A) kWh: A = 5000 → 515 pulses are 51.5 Wh, exactly
    assert record.energy(5000)[Channel.A_PLUS] == Fraction(515, 10)
    shared = to_profile_record(record, 5000)
    assert shared.start == datetime(2026, 1, 15, 5, 30, tzinfo=UTC)
    assert shared.flags == ProfileFlag.PARTIAL
    assert shared.energy == {Channel.A_PLUS: 52, Channel.R_PLUS: 0, Channel.R_MINUS: 0}  # rounded; `exact` kept
    assert shared.exact is not None and shared.exact[Channel.R_PLUS] == Fraction(1, 2)
    assert prof.encode_record(record) == data
    assert prof.decode_record(b"\xff" * 15, MSK) is None


def test_requests_and_refusals() -> None:
    assert prof.encode_read_request(0x11, 0x1230) == append_crc(bytes.fromhex("11 06 03 12 30 0F"))
    assert prof.encode_last_record_request(0x11) == append_crc(bytes.fromhex("11 08 13"))
    request = prof.decode_read_request(prof.encode_read_request(0x11, 0xFFF0, 15))
    assert (request.memory, request.memory_address, request.count) == (3, 0xFFF0, 15)
    with pytest.raises(merc.MercuryStatusError):
        prof.decode_read_answer(merc.encode_status_answer(0x11, merc.Status.CHANNEL_NOT_OPEN), 0x11)
    with pytest.raises(ProtocolError, match="not BCD"):
        prof.decode_record(bytes.fromhex("00 0A 00 15 01 26 1E 00 00 00 00 00 00 00 00"), MSK)
    with pytest.raises(ProtocolError, match="period"):
        prof.decode_record(bytes.fromhex("00 09 00 15 01 26 00 00 00 00 00 00 00 00 00"), MSK)


def test_variant_gives_the_constant() -> None:
    assert prof.constant_of_variant(bytes((0xB4, 0xE3, 0, 0, 0, 0))) == 500
    assert prof.constant_of_variant(bytes((0xB4, 0x10, 0, 0, 0, 0))) == 5000
    with pytest.raises(ProtocolError):
        prof.constant_of_variant(bytes((0, 0x0F, 0, 0, 0, 0)))


def session_on(memory: ProfileMemory, now: datetime) -> ProfileSession:
    """A session whose line is the memory itself (bytes both ways, no pty)."""

    def exchange(request: bytes, expected: int) -> bytes:
        decoded = merc.decode_request(request)
        if isinstance(decoded, merc.ParameterRequest):
            return memory.last_record_answer(decoded.address, now)
        return memory.read_answer(decoded.address, prof.decode_read_request(request), now)

    return ProfileSession(exchange, 1, MSK)


def test_a_range_is_read_exactly_around_outages_and_the_ring() -> None:
    meter = VirtualMeter("41000001", address=1, start=NOW - timedelta(days=100))
    outages = [(NOW - timedelta(days=2, minutes=10), NOW - timedelta(days=1, hours=20, minutes=5))]
    memory = ProfileMemory(meter, start=NOW - timedelta(days=100), outages=outages)
    session = session_on(memory, NOW)
    held = memory.times(NOW)
    assert memory.records_written(NOW) > prof.RECORDS  # the ring went round: 100 days > 85
    start, end = NOW - timedelta(days=3), NOW - timedelta(days=1)
    records = session.records(start, end)
    expected = [t for t in held if start <= t < end]
    assert [r.start.astimezone(UTC) for r in records] == expected
    assert len(expected) < 96  # the outage left its gap
    after = next(r for r in records if r.start.astimezone(UTC) >= outages[0][1] - HALF)
    assert after.incomplete  # the period power came back in is marked
    assert session.reads < len(expected) + 12  # a few reads to find the start, then one per record
    # older than the memory: from the oldest record held; the newest (running) record is never taken
    old = session.records(NOW - timedelta(days=95), NOW - timedelta(days=84))
    assert old[0].start.astimezone(UTC) == held[0]
    assert session.records(NOW - timedelta(hours=1), NOW + HALF)[-1].start.astimezone(UTC) == held[-2]
    assert session.records(NOW + HALF, NOW + 4 * HALF) == []
