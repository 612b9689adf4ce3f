"""A meter's address is judged by its bus kind's driver when the configuration is validated, not at poll time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from amr.cli import main
from amr.config import config_from_dict
from amr.errors import ConfigError

BUSES: list[dict[str, Any]] = [
    {"name": "tcp", "kind": "modbus-tcp", "url": "tcp://127.0.0.1:502"},
    {"name": "rtu", "kind": "modbus-rtu", "url": "/dev/ttyUSB0"},
    {"name": "merc", "kind": "mercury230", "url": "/dev/ttyUSB1"},
    {"name": "iec", "kind": "iec62056-21", "url": "/dev/ttyUSB2"},
    {"name": "hdlc", "kind": "dlms-hdlc", "url": "/dev/ttyUSB3"},
    {"name": "mqtt", "kind": "mqtt", "url": "mqtt://127.0.0.1:1883", "topics": ["amr/+/energy"]},
]
OWN: dict[str, dict[str, Any]] = {"tcp": {"profile": "eastron-sdm630"}, "rtu": {"profile": "eastron-sdm630"}}


def _meter(bus: str, address: Any, **keys: Any) -> dict[str, Any]:
    return {"serial": "X1", "bus": bus, "address": address, **OWN.get(bus, {}), **keys}


def _refusal(meter: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"buses": BUSES, "meters": [meter]}, {})
    return str(caught.value)


@pytest.mark.parametrize(
    ("bus", "address", "keys", "message"),
    [
        ("tcp", "abc", {}, "'abc' is not a Modbus unit id; write a whole number 0..255, or \"host:port/unit\""),
        ("tcp", "99999999999999999999", {}, "'99999999999999999999' is not a Modbus unit id; write a whole number"),
        ("tcp", 99999999999999999999, {}, "99999999999999999999 is not a Modbus unit id"),
        ("tcp", 256, {}, "256 is not a Modbus unit id; write a whole number 0..255"),
        ("tcp", "-1", {}, "'-1' is not a Modbus unit id"),
        ("tcp", "10.0.0.7:70000/3", {}, "'10.0.0.7:70000/3': '10.0.0.7:70000' is not host:port"),
        ("tcp", "10.0.0.7:502/x", {}, "'10.0.0.7:502/x': after the gateway, 'x' is not a Modbus unit id"),
        ("rtu", 0, {}, "0 is not a Modbus unit id; write a whole number 1..247 (0 is the broadcast address"),
        ("rtu", 248, {}, "248 is not a Modbus unit id; write a whole number 1..247"),
        ("rtu", "10.0.0.7:502/3", {}, "'10.0.0.7:502/3' is not a Modbus unit id"),
        ("merc", 0, {}, "0 is not a Mercury 230 address; write a whole number 1..240"),
        ("merc", 241, {}, "241 is not a Mercury 230 address"),
        ("merc", "x1", {}, "'x1' is not a Mercury 230 address"),
        ("iec", "12/34", {}, "'12/34' is not an IEC 62056-21 device address; write up to 32 letters, digits or spaces"),
        ("iec", "1!", {}, "'1!' is not an IEC 62056-21 device address"),
        ("iec", "1" * 33, {}, repr("1" * 33) + " is not an IEC 62056-21 device address"),
        ("hdlc", "abc", {}, "'abc' is not an HDLC physical address; write a whole number 0..16383"),
        ("hdlc", 16384, {}, "16384 is not an HDLC physical address"),
        ("hdlc", 200, {"dlms": {"address_size": 2}}, "200: a 2-byte HDLC server address holds 7-bit parts"),
    ],
)
def test_an_address_the_driver_cannot_use_is_refused_naming_meter_value_and_fix(
    bus: str, address: Any, keys: dict[str, Any], message: str
) -> None:
    assert f"configuration: meters[0] (X1).address: {message}" in _refusal(_meter(bus, address, **keys))


@pytest.mark.parametrize(
    ("bus", "address", "keys"),
    [
        ("tcp", 0, {}), ("tcp", 255, {}), ("tcp", "17", {}), ("tcp", "10.0.0.7:502/3", {}), ("tcp", "gw.local/1", {}),
        ("tcp", "tcp://10.0.0.7:1502/255", {}),
        ("rtu", 1, {}), ("rtu", 247, {}),
        ("merc", 1, {}), ("merc", 240, {}), ("merc", "17", {}),
        ("iec", "1001", {}), ("iec", 45678903, {}), ("iec", "", {}), ("iec", "A1 b2", {}), ("iec", "9" * 32, {}),
        ("hdlc", 145, {}), ("hdlc", 16383, {}), ("hdlc", "", {}), ("hdlc", "x", {"dlms": {"physical_address": 5}}),
        ("mqtt", "gw-7", {}),
    ],
)
def test_every_address_a_driver_takes_is_accepted(bus: str, address: Any, keys: dict[str, Any]) -> None:
    config = config_from_dict({"buses": BUSES, "meters": [_meter(bus, address, **keys)]}, {})
    assert config.meters[0].address == address


def test_check_config_names_the_file_the_meter_the_value_and_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "amr.toml"
    path.write_text(
        '[[buses]]\nname = "tcp"\nkind = "modbus-tcp"\nurl = "tcp://127.0.0.1:502"\n\n'
        '[[meters]]\nserial = "MB-9"\nbus = "tcp"\naddress = "abc"\nprofile = "eastron-sdm630"\n\n'
        '[[meters]]\nserial = "MB-10"\nbus = "tcp"\naddress = 3\nprofile = "eastron-sdm630"\n',
        encoding="utf-8",
    )
    assert main(["check-config", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: meters[0] (MB-9).address: 'abc' is not a Modbus unit id; write a whole number 0..255" in err
    assert "MB-10" not in err
