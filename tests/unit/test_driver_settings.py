"""Each protocol owns its settings: the loader validates a bus's and its meters' own keys by the kind's models."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from amr.config import BusSettings, MeterSettings, config_from_dict
from amr.drivers import registry
from amr.drivers.registry import KINDS, PROTOCOLS
from amr.drivers.spec import DriverSpec
from amr.errors import ConfigError

URLS = {"modbus-tcp": "tcp://127.0.0.1:502", "mqtt": "mqtt://127.0.0.1:1883", "dlms-tcp": "tcp://127.0.0.1:4059"}


def bus(kind: str, **fields: Any) -> dict[str, Any]:
    own = {"topics": ["a/+/b"]} if kind == "mqtt" else {}
    return {"name": "b", "kind": kind, "url": URLS.get(kind, "/dev/ttyUSB0"), **own, **fields}


def refusal(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        config_from_dict(data, {})
    return str(caught.value)


@pytest.mark.parametrize("kind", KINDS)
def test_every_protocol_has_its_settings_models(kind: str) -> None:
    spec = PROTOCOLS[kind]
    assert issubclass(spec.bus_settings, BusSettings) and spec.bus_settings is not BusSettings
    assert issubclass(spec.meter_settings, MeterSettings) and spec.meter_settings is not MeterSettings
    config = config_from_dict({"buses": [bus(kind)]}, {})
    assert isinstance(config.buses[0].settings, spec.bus_settings)


@pytest.mark.parametrize("kind", KINDS)
def test_an_unknown_bus_key_is_refused_naming_the_kinds_keys(kind: str) -> None:
    text = refusal({"buses": [bus(kind, bauds=9600)]})
    assert f"buses[0].bauds: unknown key; a {kind} bus takes name, kind, url, timeout" in text
    for key in PROTOCOLS[kind].bus_settings.model_fields:
        assert key in text.split("takes", 1)[1]


def test_a_key_of_another_protocol_is_refused_on_a_bus_and_on_its_meters() -> None:
    text = refusal({
        "buses": [bus("modbus-tcp", baud_switch=False)],
        "meters": [{"serial": "1", "bus": "b", "address": 1, "profile": "eastron-sdm630", "password": "x"}],
    })
    assert "buses[0].baud_switch: unknown key; a modbus-tcp bus takes" in text
    assert "concurrency, max_registers" in text
    assert "meters[0].password: unknown key; a meter on a modbus-tcp bus takes" in text
    assert "profile, registers, max_gap" in text
    assert "'x'" not in text  # a refused password is not shown


def test_each_kind_reads_its_own_keys_flat_from_the_entry() -> None:
    config = config_from_dict({
        "buses": [bus("modbus-rtu", baudrate=19200, max_registers=60), {**bus("iec62056-21"), "name": "i",
                                                                        "baud_switch": False}],
        "meters": [
            {"serial": "1", "bus": "b", "address": 1, "registers": [
                {"channel": "a_plus", "address": 0, "type": "uint32"}], "max_gap": 0},
            {"serial": "2", "bus": "i", "address": "2", "password": "secret"},
        ],
    }, {})
    rtu, iec = config.buses
    assert (rtu.settings.baudrate, rtu.settings.max_registers) == (19200, 60)  # type: ignore[attr-defined]
    assert iec.settings.baud_switch is False and iec.settings.model_fields_set == {"baud_switch"}  # type: ignore[attr-defined]
    modbus, serial = config.meters
    assert modbus.settings.max_gap == 0 and modbus.settings.registers[0].type == "uint32"  # type: ignore[attr-defined]
    assert serial.settings.secrets() == ["secret"] and "secret" not in repr(serial)


def test_errors_of_common_and_protocol_keys_come_together() -> None:
    text = refusal({"buses": [bus("modbus-rtu", retries=-1, baudrate="fast", parity="X")]})
    assert "buses[0].retries" in text
    assert "buses[0].baudrate: Input should be a valid integer" in text and "got 'fast'" in text
    assert "buses[0].parity" in text


class _LineBus(BusSettings):
    line_speed: int = Field(9600, ge=300)


class _Security(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    client: int = 16
    password: SecretStr | None = None


class _LineMeter(MeterSettings):
    logical_device: int = Field(1, ge=0)
    security: _Security = _Security()  # a table of its own: ``security = { password = "..." }``


def test_a_new_protocols_settings_plug_in_with_its_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    base = PROTOCOLS["mercury230"]
    spec = DriverSpec(**{**{f: getattr(base, f) for f in base.__dataclass_fields__}, "kind": "newline",
                         "bus_settings": _LineBus, "meter_settings": _LineMeter})
    monkeypatch.setitem(PROTOCOLS, "newline", spec)
    monkeypatch.setattr(registry, "KINDS", (*KINDS, "newline"))
    config = config_from_dict({
        "buses": [{"name": "l", "kind": "newline", "url": "/dev/ttyUSB1", "line_speed": 19200}],
        "meters": [{"serial": "1", "bus": "l", "address": 5, "logical_device": 3}],
    }, {})
    assert config.buses[0].settings == _LineBus(line_speed=19200)
    assert config.meters[0].settings == _LineMeter(logical_device=3)
    secured = config_from_dict({
        "buses": [{"name": "l", "kind": "newline", "url": "/dev/ttyUSB1"}],
        "meters": [{"serial": "1", "bus": "l", "address": 5, "security": {"client": 32, "password": "12345678"}}],
    }, {})
    assert secured.meters[0].settings.secrets() == ["12345678"] and "12345678" not in repr(secured.meters[0])
    text = refusal({
        "buses": [{"name": "l", "kind": "newline", "url": "/dev/ttyUSB1", "line_speed": 100, "baudrate": 9600}],
        "meters": [{"serial": "1", "bus": "l", "address": 5, "logical_device": -1, "security": {"clients": 1}}],
    })
    assert "buses[0].line_speed: Input should be greater than or equal to 300; got 100" in text
    assert "buses[0].baudrate: unknown key; a newline bus takes" in text and "line_speed" in text
    assert "meters[0].logical_device: Input should be greater than or equal to 0; got -1" in text
    assert "meters[0].security.clients: unknown key" in text


def test_a_meter_built_without_its_buss_kind_is_read_by_the_drivers_model() -> None:
    from pydantic import ValidationError

    from amr.config import MeterConfig
    from amr.drivers.modbus.settings import ModbusMeterSettings

    meter = MeterConfig(serial="7", profile="eastron-sdm630", max_gap=0)  # type: ignore[call-arg]
    assert ModbusMeterSettings.of(meter) == ModbusMeterSettings(profile="eastron-sdm630", max_gap=0)
    with pytest.raises(ConfigError, match=r"meter 8: max_gap: Input should be greater than or equal to 0; got -1"):
        ModbusMeterSettings.of(MeterConfig(serial="8", profile="eastron-sdm630", max_gap=-1))  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="unknown key; a meter takes serial, name"):
        MeterConfig(serial="9", baudrate=9600)  # type: ignore[call-arg]
