"""Meters of one shape validated once: the same models and the same errors as validating each."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

import amr.config_alike
from amr.config import MeterConfig, config_from_dict
from amr.config_alike import OWN_TEXT, SERIAL_LENGTH, validated_alike
from amr.errors import ConfigError

BUSES = [
    {"name": "line1", "kind": "modbus-rtu", "url": "socket://127.0.0.1:4001", "schedule": "30s"},
    {"name": "tcp", "kind": "modbus-tcp", "url": "tcp://127.0.0.1:5020", "schedule": "30s"},
]


def _meters() -> list[dict[str, Any]]:
    """Meters of a few shapes, with what each meter has of its own and values that look alike but are not."""
    moscow = timezone(timedelta(hours=3))
    meters: list[dict[str, Any]] = []
    for i in range(40):
        meter: dict[str, Any] = {"serial": f"S{i}", "object": f"house {i // 10}", "point": f"kv{i}", "digits": 8}
        if i % 4 == 1:
            meter |= {"bus": "line1", "address": i, "profile": "eastron-sdm630", "ct_ratio": 40}
        elif i % 4 == 2:
            meter |= {"bus": "tcp", "address": f"{i}", "profile": "eastron-sdm120", "accounts": [f"A{i}", "B"]}
        elif i % 4 == 3:  # the same instant written with two offsets, a date, float ratios
            utc = datetime(2026, 1, 1, tzinfo=timezone.utc)
            installed = utc.astimezone(moscow) if i % 8 == 3 else utc
            meter |= {"installed": installed, "removed": date(2027, 1, 1), "ct_ratio": 0.5 if i % 3 else 1.0}
        meters.append(meter)
    return meters


def _one_by_one(meters: list[dict[str, Any]]) -> list[MeterConfig]:
    context = {"bus_kinds": {b["name"]: b["kind"] for b in BUSES}}
    return [MeterConfig.model_validate(m, context=context) for m in meters]


def test_alike_meters_are_the_models_each_validation_makes() -> None:
    meters = _meters()
    config = config_from_dict({"buses": BUSES, "meters": meters}, environ={})
    each = _one_by_one(meters)
    assert [m.model_dump() for m in config.meters] == [m.model_dump() for m in each]
    assert [m.model_fields_set for m in config.meters] == [m.model_fields_set for m in each]
    assert [m.settings for m in config.meters] == [m.settings for m in each]
    assert [m.installed for m in config.meters] == [m.installed for m in each]
    assert [str(m.installed) for m in config.meters] == [str(m.installed) for m in each]  # offsets kept
    assert [type(m.address) for m in config.meters] == [type(m.address) for m in each]


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"serial": "x" * 65}, "meters[5].serial: String should have at most 64 characters"),
        ({"serial": ""}, "meters[5].serial: String should have at least 1 character"),
        ({"serial": 7}, "meters[5].serial: Input should be a valid string"),
        ({"object": 7}, "meters[5].object: Input should be a valid string"),
        ({"address": 1.5}, "meters[5].address"),
        ({"accounts": ["A", 1]}, "meters[5].accounts[1]: Input should be a valid string"),
        ({"digits": 13}, "meters[5].digits: Input should be less than or equal to 12"),
        ({"profile": "acme-9000"}, "meters[5].profile: Value error, unknown profile 'acme-9000'"),
        ({"tarif": 2}, "meters[5].tarif: unknown key"),
        ({"address": 1}, "meters[5] (S5).address: 1 on bus 'line1' is already meter S1"),
    ],
)
def test_a_meter_unlike_its_shape_is_refused_as_before(
    change: dict[str, Any], fragment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    meters = _meters()
    meters[5] = meters[5] | change  # a meter of the shape of meters[1], validated first
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"buses": BUSES, "meters": meters}, environ={})
    message = str(caught.value)
    assert fragment.replace("Value error, ", "") in message
    monkeypatch.setattr(amr.config_alike, "validated_alike", lambda entries, validate: list(entries))
    with pytest.raises(ConfigError) as each:  # nothing shared: every meter validated on its own
        config_from_dict({"buses": BUSES, "meters": meters}, environ={})
    assert str(each.value) == message


def test_a_shape_whose_first_meter_fails_is_judged_meter_by_meter() -> None:
    meters = [{"serial": f"S{i}", "digits": 13} for i in range(3)]
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"meters": meters}, environ={})
    assert [f"meters[{i}].digits" in str(caught.value) for i in range(3)] == [True, True, True]


def test_what_the_shortcut_checks_is_what_the_model_asks() -> None:
    """The shortcut vouches for a meter's own values by type alone: the model must ask no more."""
    fields = MeterConfig.model_fields
    for key in OWN_TEXT:
        assert fields[key].annotation is str
        constraints = list(fields[key].metadata)
        if key == "serial":
            assert {type(c).__name__ for c in constraints} == {"MinLen", "MaxLen"}
            assert (constraints[0].min_length, constraints[1].max_length) == SERIAL_LENGTH
        else:
            assert constraints == []
    assert fields["address"].metadata == [] and fields["accounts"].metadata == []


def test_entries_it_cannot_vouch_for_stay_as_given() -> None:
    steps = {"serial": "R", "ct_ratio": [{"since": date(2026, 1, 1), "ratio": 40}]}
    given: list[Any] = [steps, dict(steps, serial="R2"), "not a table", {"name": "no serial"}]
    validated = validated_alike(given, lambda entry: MeterConfig.model_validate(entry))
    assert validated == given
