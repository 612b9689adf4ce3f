"""MQTT payload decoding: the amr schema, mappings, Tasmota SML, exactness and bad payloads."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amr.config import MeterConfig
from amr.core.domain import Channel
from amr.drivers.base import MeterValues
from amr.drivers.mqtt.payloads import (
    PayloadDecoder,
    PayloadError,
    energy_wh,
    match_wildcards,
    parse_mapping,
)
from amr.errors import ConfigError
from simulators.model import VirtualMeter
from simulators.mqtt_publisher import render_amr, render_tasmota

A, AM, R, RM = Channel.A_PLUS, Channel.A_MINUS, Channel.R_PLUS, Channel.R_MINUS
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
METERS = [MeterConfig(serial="0012345678", address="gw-7"), MeterConfig(serial="SML-1", address="plug1")]


def amr(payload: object, topic: str = "amr/gw-7/energy", raw: bytes | None = None) -> MeterValues:
    decoder = PayloadDecoder("amr", meters=METERS, filters=["amr/+/energy"])
    (values,) = decoder.decode(topic, raw if raw is not None else json.dumps(payload).encode(), NOW)
    return values


def test_amr_tariffs_form_is_exact() -> None:
    values = amr(
        {
            "meter": "0012345678",
            "ts": "2026-01-01T00:00:00+03:00",
            "tariffs": {"0": {"a_plus": "1234.567", "a_minus": "0", "r_plus": "99999999.999", "r_minus": None},
                        "1": {"a_plus": "1000.001"}},
        }
    )
    assert values.serial == "0012345678"
    assert values.tariffs == {0: {A: 1_234_567, AM: 0, R: 99_999_999_999, RM: None}, 1: {A: 1_000_001}}
    assert values.meter_time == datetime(2025, 12, 31, 21, 0, tzinfo=UTC)
    assert values.polled_at == NOW
    assert values.errors == {}
    assert values.raw["topic"] == "amr/gw-7/energy"


def test_json_numbers_are_read_as_decimals_not_floats() -> None:
    # float(1234.567) * 1000 == 1234566.9999999998: only a Decimal parse keeps it exact
    values = amr(raw=b'{"meter": "0012345678", "a_plus": 1234.567, "r_plus": 0.001, "a_minus": 12}', payload=None)
    assert values.tariffs == {0: {A: 1_234_567, R: 1, AM: 12_000}}


def test_flat_form_with_labels_tariff_unit_and_serial_from_the_topic_address() -> None:
    values = amr({"tariff": 2, "unit": "Wh", "A+": 15, "R-": "7"}, topic="amr/gw-7/energy")
    assert values.serial == "0012345678"  # "gw-7" is that meter's address
    assert values.tariffs == {2: {A: 15, RM: 7}}
    assert amr({"unit": "MWh", "a_plus": "1.5"}).tariffs == {0: {A: 1_500_000}}


def test_an_unknown_name_is_kept_for_unknown_meter_downstream() -> None:
    assert amr({"a_plus": "1"}, topic="amr/nobody/energy").serial == "nobody"
    assert amr({"meter": 4711, "a_plus": "1"}).serial == "4711"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("NaN", "not a finite number"),
        ("Infinity", "not a finite number"),
        ("-1.5", "negative"),
        ("12,5", "not a number"),
        ("", "not a number"),
        (True, "not a number"),
        ({"v": 1}, "not a number"),
        ("1.0001", "finer than 1 Wh"),
        ("1e999999", "too large"),
    ],
)
def test_a_bad_value_refuses_its_tariff_and_keeps_the_others(value: object, message: str) -> None:
    values = amr({"meter": "0012345678", "tariffs": {"0": {"a_plus": "5"}, "1": {"a_plus": value, "r_plus": "1"}}})
    assert values.tariffs == {0: {A: 5_000}, 1: {}}
    assert message in values.errors["tariff 1 a_plus"]


def test_json_nan_and_infinity_tokens_are_refused() -> None:
    values = amr(raw=b'{"a_plus": NaN, "a_minus": -Infinity}', payload=None)
    assert values.tariffs == {0: {}}
    assert set(values.errors) == {"tariff 0 a_plus", "tariff 0 a_minus"}


@pytest.mark.parametrize(
    ("payload", "key"),
    [
        ({"a_plus": "1", "ts": "2026-01-01T00:00:00"}, "ts"),  # no UTC offset
        ({"a_plus": "1", "ts": "yesterday"}, "ts"),
        ({"a_plus": "1", "unit": "kWt"}, "unit"),
        ({"a_plus": "1", "power": 5}, "payload"),
        ({"a_plus": "1", "tariffs": {"0": {"a_plus": "1"}}}, "tariffs"),
        ({"tariffs": {"7": {"a_plus": "1"}}}, "tariffs"),
        ({"tariffs": {"0": {"a_plus": "1", "q_plus": "1"}}}, "tariff 0 q_plus"),
        ({"meter": True, "a_plus": "1"}, "meter"),
        ({"meter": "0012345678"}, "payload"),  # no channel at all
    ],
)
def test_a_malformed_message_gives_an_empty_reading_with_the_reason(payload: object, key: str) -> None:
    values = amr(payload)
    assert all(not channels for channels in values.tariffs.values())
    assert key in values.errors
    assert values.raw["payload"] == json.dumps(payload)


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b"\xff\xfe\x00garbage", b"", b'{"a": ' * 5000])
def test_undecodable_payloads_are_reported_with_the_original_bytes(raw: bytes) -> None:
    values = amr(payload=None, raw=raw)
    assert values.serial == "0012345678"
    assert values.tariffs == {0: {}}
    assert "payload" in values.errors
    if raw.isascii():
        assert values.raw["payload"] == raw.decode()
    else:
        assert values.raw["payload_hex"] == raw.hex()


def test_no_serial_anywhere() -> None:
    decoder = PayloadDecoder("amr", filters=["fixed/topic"])
    (values,) = decoder.decode("fixed/topic", b'{"a_plus": "1"}', NOW)
    assert values.serial == ""
    assert "meter" in values.errors and values.tariffs == {0: {}}


def test_mapping_syntax() -> None:
    rules = parse_mapping({"ENERGY.Total": "a_plus", "d.0.v": "r_minus@3:Mvarh", "+2": "serial", "Time": "time"})
    assert [(r.path, r.wildcard, r.target, r.channel, r.tariff, r.unit) for r in rules] == [
        (("ENERGY", "Total"), None, "value", A, 0, "kWh"),
        (("d", "0", "v"), None, "value", RM, 3, "Mvarh"),
        ((), 1, "serial", None, 0, "kWh"),
        (("Time",), None, "time", None, 0, "kWh"),
    ]


@pytest.mark.parametrize(
    "mapping",
    [
        {"ENERGY.Total": "a_pluss"},
        {"ENERGY.Total": "a_plus@5"},
        {"ENERGY.Total": "r_plus:kWh"},
        {"ENERGY.Total": "a_plus:kvarh"},
        {"ENERGY..Total": "a_plus"},
        {"+": "a_plus"},
        {"+": "time"},
        {"+0": "serial"},
    ],
)
def test_bad_mapping_entries_are_config_errors(mapping: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="mapping entry"):
        parse_mapping(mapping)


def test_mapping_decodes_paths_lists_tariffs_units_time_and_topic_serial() -> None:
    mapping = {
        "ENERGY.Total": "a_plus",
        "ENERGY.Tariffs.0": "a_plus@1",
        "ENERGY.Export": "a_minus:Wh",
        "Q.in": "r_plus:varh",
        "+2": "serial",
        "Time": "time",
    }
    decoder = PayloadDecoder("mapping", mapping, METERS, ["site/+/meter/+"], tz=ZoneInfo("Europe/Moscow"))
    payload = b'{"Time": "2026-01-01T12:00:00", "ENERGY": {"Total": 12.3456, "Tariffs": [7.5], "Export": 42}}'
    (values,) = decoder.decode("site/north/meter/plug1", payload, NOW)
    assert values.serial == "SML-1"
    # 12.3456 kWh is 12345.6 Wh: rounded half-even like amr.protocols.units.to_wh
    assert values.tariffs == {0: {A: 12_346, AM: 42, R: None}, 1: {A: 7_500}}
    assert values.meter_time == datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    (missing,) = decoder.decode("site/north/meter/plug1", b'{"other": 1}', NOW)
    assert missing.tariffs == {0: {}, 1: {}} and "payload" in missing.errors


@pytest.mark.parametrize(
    ("kind", "mapping"),
    [("amr", {"a": "a_plus"}), ("mapping", {}), ("mapping", {"a": "serial"}), ("tasmota-sml", {"a": "a_plus"})],
)
def test_mapping_that_does_not_fit_the_payload_kind(kind: str, mapping: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        PayloadDecoder(kind, mapping)  # type: ignore[arg-type]


def tasmota(payload: str, topic: str = "tele/plug1/SENSOR", **kwargs: object) -> list[MeterValues]:
    decoder = PayloadDecoder("tasmota-sml", meters=METERS, filters=["tele/+/SENSOR"], **kwargs)  # type: ignore[arg-type]
    return decoder.decode(topic, payload.encode(), NOW)


def test_tasmota_sml_total_in_out_with_device_as_address() -> None:
    (values,) = tasmota(
        '{"Time": "2026-01-01T12:00:00", "SML": {"Total_in": 1234.5678, "Total_out": 0.0004, "Power_curr": 420}}',
        tz=ZoneInfo("Europe/Moscow"),
    )
    assert values.serial == "SML-1"
    assert values.tariffs == {0: {A: 1_234_568, AM: 0}}
    assert values.meter_time == datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    assert values.raw["section"] == "SML"


def test_tasmota_obis_names_tariff_suffixes_and_time() -> None:
    payload = {
        "Time": "2026-01-01T12:00:00+01:00",
        "MT175": {"E_in": "10", "E_out": 2, "1_8_1": 6, "1.8.2": 4, "1-0:3.8.0": 1.5, "4_8_0": 0.25,
                  "Total_in_T3": 0.001, "Voltage_L1": 230.1},
    }
    (values,) = tasmota(json.dumps(payload))
    assert values.tariffs == {0: {A: 10_000, AM: 2_000, R: 1_500, RM: 250}, 1: {A: 6_000}, 2: {A: 4_000}, 3: {A: 1}}
    assert values.meter_time == datetime(2026, 1, 1, 11, 0, tzinfo=UTC)


def test_tasmota_naive_time_without_tz_falls_back_to_the_receive_time() -> None:
    (values,) = tasmota('{"Time": "2026-01-01T12:00:00", "SML": {"Total_in": 1}}')
    assert values.meter_time is None and values.errors == {}


def test_tasmota_several_meters_in_one_message() -> None:
    payload = '{"Time": "x", "A": {"E_in": 1}, "B": {"E_in": 2, "Meter_id": "SML-1"}, "DS18B20": {"Temperature": 4}}'
    first, second = tasmota(payload, topic="tele/dev9/SENSOR", tz=timezone(timedelta(hours=3)))
    assert (first.serial, second.serial) == ("dev9/A", "SML-1")
    assert "ts" in first.errors and first.tariffs == {0: {}}  # "x" is no time


def test_tasmota_serial_from_a_mapping_and_energy_section() -> None:
    decoder = PayloadDecoder("tasmota-sml", {"ENERGY.Id": "serial"}, METERS, ["tele/+/SENSOR"])
    payload = b'{"ENERGY": {"Id": "0012345678", "Total": 3.25, "ExportActive": 1, "Power": 5}}'
    (values,) = decoder.decode("tele/x/SENSOR", payload, NOW)
    assert values.serial == "0012345678" and values.tariffs == {0: {A: 3_250, AM: 1_000}}


@pytest.mark.parametrize("payload", ['{"Time": "2026-01-01T00:00:00", "DS18B20": {"Temperature": 4}}', "[]", "7"])
def test_tasmota_without_energy_is_reported(payload: str) -> None:
    (values,) = tasmota(payload)
    assert values.serial == "SML-1" and values.tariffs == {0: {}} and "payload" in values.errors


@pytest.mark.parametrize(
    ("filters", "topic", "segments"),
    [
        (["a/+/c"], "a/b/c", ("b",)),
        (["$share/g/a/+/+"], "a/b/c", ("b", "c")),
        (["x/#", "a/+/#"], "a/b/c/d", ("b",)),
        (["a/+"], "a/b/c", ()),
        (["a/b"], "a/b", ()),
    ],
)
def test_match_wildcards(filters: list[str], topic: str, segments: tuple[str, ...]) -> None:
    assert match_wildcards(filters, topic) == segments


def test_energy_wh_exact_and_rounded() -> None:
    assert energy_wh("0.001", "kWh") == 1
    assert energy_wh("2.5", "Mvarh") == 2_500_000
    assert energy_wh("0.0025", "kWh", exact=False) == 2  # ties to even
    with pytest.raises(PayloadError):
        energy_wh("0.0025", "kWh")


@pytest.mark.parametrize("kind", ["amr", "tasmota-sml"])
def test_simulator_messages_round_trip_exactly(kind: str) -> None:
    meter = VirtualMeter(serial="0012345678", tariffs=3, solar_kw=4.0, start=NOW - timedelta(days=3))
    if kind == "amr":
        body, registers = render_amr(meter, NOW)
        decoder = PayloadDecoder("amr", meters=METERS)
    else:
        body, registers = render_tasmota(meter, NOW, meter_id=True)
        decoder = PayloadDecoder("tasmota-sml", meters=METERS, filters=["tele/+/SENSOR"])
    (values,) = decoder.decode("tele/x/SENSOR", body, NOW)
    assert values.serial == "0012345678" and values.errors == {}
    assert values.tariffs == registers


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                st.sampled_from(["meter", "ts", "tariffs", "0", "a_plus", "A-", "SML", "Total_in", "unit", "x"]),
                inner, max_size=5),
            max_leaves=12,
        ).map(lambda doc: json.dumps(doc).encode()),
    ),
    st.sampled_from(["amr", "tasmota-sml"]),
)
def test_decode_never_raises_and_always_yields_a_reading(payload: bytes, kind: str) -> None:
    decoder = PayloadDecoder(kind, meters=METERS, filters=["t/+/SENSOR"])  # type: ignore[arg-type]
    for values in decoder.decode("t/dev/SENSOR", payload, NOW):
        assert values.tariffs
        assert all(v is None or v >= 0 for channels in values.tariffs.values() for v in channels.values())
        assert "payload" in values.raw or "payload_hex" in values.raw
