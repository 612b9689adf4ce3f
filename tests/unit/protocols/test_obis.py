"""OBIS codes in data-set addresses and their energy meaning."""

from __future__ import annotations

import pytest

from amr.core.domain import Channel
from amr.protocols.obis import ObisCode, energy_code, energy_register, parse_obis


@pytest.mark.parametrize(
    ("address", "code"),
    [
        ("1.8.0", ObisCode(None, None, "1", "8", "0", None)),
        ("1-0:1.8.0*255", ObisCode(1, 0, "1", "8", "0", 255)),
        ("1-1:2.8.3", ObisCode(1, 1, "2", "8", "3", None)),
        ("0-0:C.1.0*255", ObisCode(0, 0, "C", "1", "0", 255)),
        ("F.F", ObisCode(None, None, "F", "F", None, None)),
        ("1.8.0*01", ObisCode(None, None, "1", "8", "0", 1)),
        ("1.8.0&02", ObisCode(None, None, "1", "8", "0", 2)),
        (" 1.8.0 ", ObisCode(None, None, "1", "8", "0", None)),
    ],
)
def test_parse(address: str, code: ObisCode) -> None:
    assert parse_obis(address) == code


@pytest.mark.parametrize("address", ["", "ET0PE", "1.8.0.0.0", "1-0:", "(1.8.0)", "1.8.0*x"])
def test_not_obis(address: str) -> None:
    assert parse_obis(address) is None


def test_str() -> None:
    assert str(parse_obis("1-0:1.8.0*255")) == "1-0:1.8.0*255"
    assert str(parse_obis("1.8.1")) == "1.8.1"
    assert str(parse_obis("1.8.0*01")) == "1.8.0*1"


@pytest.mark.parametrize(
    ("address", "register"),
    [
        ("1.8.0", (Channel.A_PLUS, 0)),
        ("2.8.0", (Channel.A_MINUS, 0)),
        ("3.8.0", (Channel.R_PLUS, 0)),
        ("4.8.0", (Channel.R_MINUS, 0)),
        ("1.8.1", (Channel.A_PLUS, 1)),
        ("1.8.4", (Channel.A_PLUS, 4)),
        ("2.8.2", (Channel.A_MINUS, 2)),
        ("3.8.3", (Channel.R_PLUS, 3)),
        ("4.8.4", (Channel.R_MINUS, 4)),
        ("1-0:1.8.0*255", (Channel.A_PLUS, 0)),
        ("1-0:4.8.2", (Channel.R_MINUS, 2)),
        ("1.8.5", None),  # tariff above 4
        ("1.8.0*01", None),  # billing period 1: a stored value
        ("0-0:1.8.0", None),  # abstract medium
        ("15.8.0", None),  # absolute active energy
        ("1.7.0", None),  # power, not energy
        ("1.8", None),  # no tariff group
        ("C.1.0", None),
    ],
)
def test_energy_register(address: str, register: tuple[Channel, int] | None) -> None:
    code = parse_obis(address)
    assert code is not None
    assert energy_register(code) == register


def test_energy_code() -> None:
    assert energy_code(Channel.A_PLUS, 0) == "1.8.0"
    assert energy_code(Channel.R_MINUS, 3) == "4.8.3"
    assert energy_code(Channel.A_MINUS, 0, full=True) == "1-0:2.8.0*255"
    with pytest.raises(ValueError, match="tariff"):
        energy_code(Channel.A_PLUS, 5)
    for channel in Channel:
        for tariff in range(5):
            code = parse_obis(energy_code(channel, tariff, full=tariff % 2 == 1))
            assert code is not None
            assert energy_register(code) == (channel, tariff)
