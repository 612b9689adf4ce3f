"""The IEC 62056-21 driver's parsing path (readout → MeterValues) on telegrams published by manufacturers."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from amr.core.domain import Channel
from amr.drivers.iec62056_21.driver import meter_clock, parse_readout, values_from_data_sets
from amr.errors import ProtocolError
from amr.protocols import iec62056_21 as iec
from tests.unit.protocols.test_iec62056_21 import EM4TII_DATA, EM4TII_READOUT, wire

A_PLUS, A_MINUS, R_PLUS, R_MINUS = Channel.A_PLUS, Channel.A_MINUS, Channel.R_PLUS, Channel.R_MINUS
POLLED = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)

# Landis+Gyr E350 series 2, 1-phase ZCF100Ax/Cx, User Manual D000030875 en q,
# section 5.5.5 "Data Readout Procedure via Optical Interface or AMR Module",
# Fig. 5.7 "Example of readout list", page 41/52 (published at manualshive.com,
# manual landis-and-gyr/e350-series-2, 673692, page 41). The manual prints the
# data lines one per row and leaves the BCC as "<BCC>", so it is computed here;
# it also prints a space after <STX>, which is layout, not a character sent.
E350_LINES = [
    "F.F(00)",  # error register (readout flag)
    "C.1.1(0000000074892473)",  # meter identification number 1
    "1.8.0(000065.3*kWh)",  # total active energy import
    "2.8.0(000003.5*kWh)",  # total active energy export
    "1.8.1(000021.5*kWh)",  # import, rate 1
    "1.8.2(00043.8*kWh)",  # import, rate 2 (five integer digits, as printed)
    "2.8.1(000001.5*kWh)",  # export, rate 1
    "2.8.2(00000.0*kWh)",  # export, rate 2
    "C.5.0(02)",  # status code (phase fail flag)
]


def e350_block(lines: list[str]) -> bytes:
    body = "".join(line + "\r\n" for line in lines) + "!\r\n"
    data = body.encode("ascii") + bytes((iec.ETX,))
    return bytes((iec.STX,)) + data + bytes((iec.bcc(data),))


def test_e350_readout_gives_exact_wh_per_tariff() -> None:
    values = parse_readout(e350_block(E350_LINES), serial="74892473", polled_at=POLLED)
    assert values.tariffs == {
        0: {A_PLUS: 65_300, A_MINUS: 3_500},
        1: {A_PLUS: 21_500, A_MINUS: 1_500},
        2: {A_PLUS: 43_800, A_MINUS: 0},
    }
    assert values.meter_time is None  # this readout list carries no 0.9.1/0.9.2
    assert values.errors == {}
    assert (values.serial, values.polled_at) == ("74892473", POLLED)


def test_e350_readout_with_a_damaged_bcc_is_refused() -> None:
    block = e350_block(E350_LINES)
    with pytest.raises(ProtocolError, match="BCC mismatch"):
        parse_readout(block[:-1] + bytes((block[-1] ^ 0x01,)), serial="x", polled_at=POLLED)


def test_a_bad_register_is_named_and_the_others_are_kept() -> None:
    # The E350 list with two registers spoiled: one without a unit, one with a reactive unit.
    lines = [line.replace("00043.8*kWh", "00043.8").replace("000001.5*kWh", "000001.5*kvarh") for line in E350_LINES]
    values = parse_readout(e350_block(lines), serial="x", polled_at=POLLED)
    assert values.tariffs == {0: {A_PLUS: 65_300, A_MINUS: 3_500}, 1: {A_PLUS: 21_500}, 2: {A_MINUS: 0}}
    assert set(values.errors) == {"1.8.2", "2.8.1"}
    assert "no unit" in values.errors["1.8.2"]
    assert "kvarh" in values.errors["2.8.1"]


def test_em4tii_readout_gives_four_channels_and_the_meter_clock() -> None:
    # LEM EM4T II manual, example 1 (see tests/unit/protocols/test_iec62056_21.py for the source):
    # 0.9.1(140253) and 0.9.2(121221) are 21 December 2012, 14:02:53 on the meter's clock.
    values = parse_readout(wire(EM4TII_READOUT), serial="03878504", polled_at=POLLED, tz=ZoneInfo("Europe/Berlin"))
    assert values.tariffs == {0: {A_PLUS: 0, A_MINUS: 0, R_PLUS: 0, R_MINUS: 0}}
    assert values.meter_time == datetime(2012, 12, 21, 13, 2, 53, tzinfo=UTC)  # CET is UTC+1 in December
    assert values.errors == {}


def test_em4tii_programming_mode_answers_give_the_clock() -> None:
    # Same manual, example 2: the answers to R5 0.9.2() and R5 0.9.1() on 03.01.2013 at 10:14:15,
    # each printed with its BCC ("9" and ":").
    date = iec.decode_data_message(wire(EM4TII_DATA))
    time = iec.decode_data_message(wire("<STX>0.9.1(101415)<ETX>:"))
    assert meter_clock(date + time, UTC) == datetime(2013, 1, 3, 10, 14, 15, tzinfo=UTC)
    values = values_from_data_sets(date + time, serial="x", polled_at=POLLED, tz=ZoneInfo("Europe/Moscow"))
    assert values.meter_time == datetime(2013, 1, 3, 6, 14, 15, tzinfo=UTC)  # Moscow kept UTC+4 in 2011-2014
    assert values.tariffs == {}


@pytest.mark.parametrize(
    ("date", "time", "expected"),
    [
        ("121221", "140253", datetime(2012, 12, 21, 14, 2, 53, tzinfo=UTC)),
        ("2012-12-21", "14:02:53", datetime(2012, 12, 21, 14, 2, 53, tzinfo=UTC)),
        ("121221", None, None),  # a date alone is not a clock reading
    ],
)
def test_meter_clock_formats(date: str, time: str | None, expected: datetime | None) -> None:
    sets = [iec.DataSet("1-0:0.9.2*255", date)]
    if time is not None:
        sets.append(iec.DataSet("0.9.1", time))
    assert meter_clock(sets) == expected


def test_an_impossible_clock_is_named_not_raised() -> None:
    sets = [iec.DataSet("0.9.2", "121399"), iec.DataSet("0.9.1", "250000"), iec.DataSet("1.8.0", "1.5", "kWh")]
    values = values_from_data_sets(sets, serial="x", polled_at=POLLED)
    assert values.tariffs == {0: {A_PLUS: 1_500}}
    assert values.meter_time is None
    assert "not a date" in values.errors["clock"]
