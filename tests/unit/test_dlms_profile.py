"""The DLMS load profile on bytes: the range descriptor, the capture objects, the buffer's entries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
from dlms_cosem import cosem, enumerations  # type: ignore[import-untyped]
from dlms_cosem.protocol import xdlms  # type: ignore[import-untyped]

from amr.core.domain import Channel
from amr.core.intervals import ProfileFlag
from amr.drivers.dlms import profile
from amr.drivers.dlms.values import ScalerUnit
from amr.errors import ProtocolError

MOSCOW = ZoneInfo("Europe/Moscow")
COLUMNS = bytes.fromhex(
    "0103"
    "0204 120008 0906 0000010000ff 0f02 120000"  # the clock 0.0.1.0.0.255, attribute 2
    "0204 120003 0906 0100011d00ff 0f02 120000"  # A+ energy of the period 1.0.1.29.0.255
    "0204 120001 0906 0000600a07ff 0f02 120000".replace(" ", "")  # status 0.0.96.10.7.255
)


def test_the_range_descriptor_asks_for_the_capture_times_of_the_intervals_in_local_time() -> None:
    # Blue Book, profile generic attribute 2, access selector 1: range_descriptor ::= structure {
    # restricting_object capture_object_definition, from_value, to_value, selected_values array }
    start = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
    access = profile.range_descriptor(start, start + timedelta(hours=1), timedelta(minutes=30), MOSCOW)
    target = cosem.CosemAttribute(enumerations.CosemInterface.PROFILE_GENERIC, cosem.Obis(1, 0, 99, 1, 0, 255), 2)
    apdu = bytes(xdlms.GetRequestNormal(cosem_attribute=target, access_selection=access).to_bytes())
    assert apdu.hex(" ") == (
        "c0 01 c1 00 07 01 00 63 01 00 ff 02 01 01 "  # Get-Request-Normal, selective access, range
        "02 04 02 04 12 00 08 09 06 00 00 01 00 00 ff 0f 02 12 00 00 "  # restricted by the clock's attribute 2
        "09 0c 07 ea 01 0f ff 0c 1e 00 00 ff 4c 00 "  # from 12:30 local (UTC+3: deviation -180 = FF4C)
        "09 0c 07 ea 01 0f ff 0d 00 00 00 ff 4c 00 "  # to 13:00 local, inclusive
        "01 00"  # every column
    )


def test_capture_objects_name_the_clock_the_channels_and_the_status() -> None:
    columns = profile.parse_capture_objects(COLUMNS)
    assert [c.obis for c in columns] == ["0.0.1.0.0.255", "1.0.1.29.0.255", "0.0.96.10.7.255"]
    layout = profile.layout_of(columns, 1800, {"1.0.1.29.0.255": ScalerUnit(-1, 30)})
    assert (layout.clock, layout.status, layout.period) == (0, 2, timedelta(minutes=30))
    assert layout.channels == {1: (Channel.A_PLUS, ScalerUnit(-1, 30))}
    with pytest.raises(ProtocolError, match="none of its columns is an energy"):
        profile.layout_of(columns, 1800, {})
    with pytest.raises(ProtocolError, match="not an array"):
        profile.parse_capture_objects(bytes.fromhex("0600000001"))


def _entry(stamp: bytes, tenths: int, status: int) -> str:
    return "0203" + stamp.hex() + "06" + tenths.to_bytes(4, "big").hex() + "11" + f"{status:02x}"


def test_entries_are_stamped_at_their_end_with_null_clocks_exact_energy_and_status_bits() -> None:
    layout = profile.layout_of(profile.parse_capture_objects(COLUMNS), 1800, {"1.0.1.29.0.255": ScalerUnit(-1, 30)})
    first = bytes.fromhex("090c07ea010f040d000000ff4c00")  # 13:00 local, UTC+3: the interval 09:30 UTC
    odd = bytes.fromhex("090c07ea010f040d070000ff4c00")  # 13:07: a capture on power-up, no interval
    buffer = bytes.fromhex("0104" + _entry(first, 4567, 0) + _entry(b"\x00", 10, 0x80)
                           + _entry(odd, 3, 0x80) + _entry(b"\x00", 1, 0x20))
    records = profile.records_from_buffer(buffer, layout, MOSCOW)
    assert [r.start for r in records] == [datetime(2026, 1, 15, 9, 30, tzinfo=UTC),
                                          datetime(2026, 1, 15, 10, 0, tzinfo=UTC)]
    assert records[0].exact == {Channel.A_PLUS: Fraction(4567, 10)} and records[0].energy == {Channel.A_PLUS: 457}
    assert records[1].flags == ProfileFlag.POWER_FAILURE
    with pytest.raises(ProtocolError, match="no clock and none before"):
        profile.records_from_buffer(bytes.fromhex("0101" + _entry(b"\x00", 1, 0)), layout, MOSCOW)


def test_a_channel_in_the_wrong_unit_is_refused() -> None:
    layout = profile.layout_of(profile.parse_capture_objects(COLUMNS), 1800, {"1.0.1.29.0.255": ScalerUnit(0, 32)})
    stamp = bytes.fromhex("090c07ea010f040d000000ff4c00")
    with pytest.raises(ProtocolError, match="unit varh, expected Wh"):
        profile.records_from_buffer(bytes.fromhex("0101" + _entry(stamp, 1, 0)), layout, MOSCOW)


def test_memory_depth_is_120_days_unless_the_meter_says() -> None:
    from amr.config import BusConfig, MeterConfig
    from amr.drivers.dlms.driver import DlmsTcpDriver

    driver = DlmsTcpDriver(BusConfig.model_validate({"name": "d", "kind": "dlms-tcp", "url": "tcp://127.0.0.1:4059"}))
    assert driver.memory_depth(MeterConfig(serial="a", address=17)) == timedelta(days=120)
    short = MeterConfig.model_validate({"serial": "b", "address": 17, "profile_depth": "60d"})
    assert driver.memory_depth(short) == timedelta(days=60)
