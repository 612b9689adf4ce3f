"""IEC 62056-21 P.01 load profile text: published answers of real meters, the request, the round trip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest

from amr.core.domain import Channel
from amr.core.intervals import ProfileFlag
from amr.errors import ProtocolError
from amr.protocols.iec62056_21 import profile as p01

BERLIN = ZoneInfo("Europe/Berlin")
MSK = ZoneInfo("Europe/Moscow")

# As an EMH meter sends it (32-bit status, C.D codes, average powers in kW, 15-minute periods)
EMH = (
    "P.01(1220823161500)(00000000)(15)(6)(1.5)(kW)(2.5)(kW)(5.5)(kvar)(6.5)(kvar)(7.5)(kvar)(8.5)(kvar)\r\n"
    "(0.18374)(0.00078)(0.00000)(0.00006)(0.00087)(0.02431)\r\n"
    "(0.16832)(0.00000)(0.00000)(0.00000)(0.00000)(0.02686)\r\n"
)
# As a Metcom meter sends it (status 08: summer time, codes with the 1-0: prefix)
METCOM = (
    "P.01(1220401010000)(08)(15)(6)(1-0:1.5.0)(kW)(1-0:2.5.0)(kW)(1-0:5.5.0)(kvar)(1-0:6.5.0)(kvar)"
    "(1-0:7.5.0)(kvar)(1-0:8.5.0)(kvar)\r\n"
    "(0.30499)(0.00000)(0.00000)(0.00000)(0.00000)(0.00728)\r\n"
    "(0.31774)(0.00000)(0.00001)(0.00000)(0.00000)(0.00480)\r\n"
)
# Energies per period (the 1.9 / 3.9 form)
ENERGIES = (
    "P.01(1210430001500)(00)(15)(4)(1.9)(kWh)(3.9)(kVArh)(2.9)(kWh)(4.9)(kVArh)\r\n(0.116)(0.060)(0.000)(0.022)\r\n"
)


def test_emh_answer_average_powers_become_exact_energy() -> None:
    first, second = p01.decode_profile(EMH, BERLIN)
    assert first.end == datetime(2022, 8, 23, 14, 15, tzinfo=UTC)  # 16:15 summer time in Berlin; the end
    assert first.start == datetime(2022, 8, 23, 14, 0, tzinfo=UTC)
    assert second.end == first.end + timedelta(minutes=15)
    assert first.values["1.5"] == (Decimal("0.18374"), "kW")
    energy = first.energy()
    assert energy[Channel.A_PLUS] == Fraction(18374, 100000) * 1000 / 4  # 0.18374 kW for 15 minutes = 45.935 Wh
    assert energy[Channel.R_PLUS] == Fraction(6, 100000) * 1000 / 4  # Q1 + Q2
    assert energy[Channel.R_MINUS] == (Fraction(87, 100000) + Fraction(2431, 100000)) * 1000 / 4  # Q3 + Q4
    assert first.flags == ProfileFlag.NONE


def test_metcom_answer_with_the_summer_time_bit_only() -> None:
    entries = p01.decode_profile(METCOM, BERLIN)
    first = datetime(2022, 3, 31, 23, 0, tzinfo=UTC)  # 01:00 summer time in Berlin
    assert [e.end for e in entries] == [first, first + timedelta(minutes=15)]
    assert entries[0].status == 0x08 and entries[0].flags == ProfileFlag.NONE  # summer time is not a fault
    assert entries[1].energy()[Channel.R_PLUS] == Fraction(1, 100000) * 1000 / 4


def test_energies_per_period_and_a_direct_reactive_channel() -> None:
    (entry,) = p01.decode_profile(ENERGIES, BERLIN)
    assert entry.energy() == {
        Channel.A_PLUS: Fraction(116),
        Channel.R_PLUS: Fraction(60),
        Channel.A_MINUS: Fraction(0),
        Channel.R_MINUS: Fraction(22),
    }


def test_a_power_failure_header_and_the_request() -> None:
    text = ENERGIES + "P.01(0211104120000)(80)(30)(1)(1.29.0)(kWh)\r\n(0.5)\r\n(0.7)\r\n"
    *_, failed, after = p01.decode_profile(text, MSK)
    assert failed.flags == ProfileFlag.POWER_FAILURE and after.flags == ProfileFlag.NONE  # the first period only
    assert failed.end == datetime(2021, 11, 4, 9, 0, tzinfo=UTC) and after.end == failed.end + timedelta(minutes=30)
    start = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
    assert p01.request_data(start, start + timedelta(days=1), MSK) == "P.01(02601151200;02601161200)"
    assert p01.request_data(start, None, UTC) == "P.01(22601150900;)"
    assert p01.decode_profile("P.01(ERROR)\r\n", MSK) == []


def test_the_repeated_hour_of_a_clock_change_by_the_season_digit() -> None:
    assert p01.parse_stamp("1221030023000", BERLIN) == datetime(2022, 10, 30, 0, 30, tzinfo=UTC)  # summer
    assert p01.parse_stamp("0221030023000", BERLIN) == datetime(2022, 10, 30, 1, 30, tzinfo=UTC)  # winter


def test_round_trip_and_bad_answers() -> None:
    entries = p01.decode_profile(EMH + METCOM.replace("(08)", "(A0)"), BERLIN)
    assert p01.decode_profile(p01.encode_profile(entries, BERLIN), BERLIN) == entries
    with pytest.raises(ProtocolError, match="values"):
        p01.decode_profile(EMH + "(1)(2)\r\n", BERLIN)
    with pytest.raises(ProtocolError, match="before any header"):
        p01.decode_profile("(1)(2)\r\n", BERLIN)
    with pytest.raises(ProtocolError, match="not a number"):
        p01.decode_profile(ENERGIES + "(x)(1)(1)(1)\r\n", BERLIN)
