"""The OpenAPI document states the forms the API takes, and the API takes every value of those
forms: the document's patterns agree with the parsers, integer bounds are JSON Schema bounds, and
refusals the schema cannot state (an empty period, a zone the meter lacks, a foreign cursor) have
codes of their own, apart from the format codes ``invalid_input`` and ``malformed``."""

from __future__ import annotations

import re
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amr.api import create_app
from amr.api.present import parse_day, parse_moment
from amr.api.schemas import DAY_PATTERN, KWH_PATTERN, MOMENT_PATTERN, PLAIN_TEXT_PATTERN, has_control
from amr.app import App
from amr.config import config_from_dict
from amr.core.domain import MAX_WH, wh_from_kwh
from tests.api.conftest import Env

MSK = ZoneInfo("Europe/Moscow")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    unopened = App(config_from_dict({}, environ={}), None, {}, None)  # type: ignore[arg-type]
    return create_app(unopened).openapi()


def _parameter(document: dict[str, Any], path: str, name: str, method: str = "get") -> dict[str, Any]:
    found = [p for p in document["paths"][path][method]["parameters"] if p["name"] == name]
    schema: dict[str, Any] = found[0]["schema"]
    return next((s for s in schema.get("anyOf", [schema]) if s.get("type") != "null"), schema)


def test_integer_bounds_are_json_schema_bounds(document: dict[str, Any]) -> None:
    """They were written ``ge``/``le``, which no client or generator reads: tariff=99 looked valid."""
    tariff = _parameter(document, "/api/v1/meters/{serial}/readings", "tariff")
    assert (tariff["minimum"], tariff["maximum"]) == (0, 4) and "ge" not in tariff
    limit = _parameter(document, "/api/v1/dispatch/rejected", "limit")
    assert (limit["minimum"], limit["maximum"]) == (1, 1000)
    pending = _parameter(document, "/api/v1/moderation/pending/{pending_id}/accept", "pending_id", "post")
    assert pending["minimum"] == 1


def test_dates_values_and_texts_say_their_form(document: dict[str, Any]) -> None:
    since = document["paths"]["/api/v1/meters/{serial}/readings"]["get"]["parameters"]
    start = next(p for p in since if p["name"] == "from")["schema"]["anyOf"]
    assert {s.get("format") for s in start} >= {"date", "date-time"}
    day = _parameter(document, "/api/v1/export/80020", "date")
    assert day["format"] == "date" and day["pattern"] == DAY_PATTERN and "8999-12-31" in day["description"]
    values = document["components"]["schemas"]["ReadingInput"]["properties"]["values"]
    assert values["additionalProperties"] is False
    (value,) = values["patternProperties"].values()
    assert value["pattern"] == KWH_PATTERN
    assert _parameter(document, "/api/v1/dispatch/rejected", "meter")["pattern"] == PLAIN_TEXT_PATTERN
    login = document["components"]["schemas"]["LoginRequest"]["properties"]["login"]
    assert login["pattern"] == PLAIN_TEXT_PATTERN


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.from_regex(KWH_PATTERN).filter(lambda t: len(t) <= 40))
def test_every_value_the_pattern_allows_is_read_exactly(text: str) -> None:
    wh = wh_from_kwh(text)
    assert 0 <= wh <= MAX_WH


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.dates(min_value=date(1900, 1, 1), max_value=date(8999, 12, 31)), st.integers(-1439, 1439))
def test_every_date_and_datetime_the_patterns_allow_is_taken(day: date, offset: int) -> None:
    text = day.isoformat()
    assert re.fullmatch(DAY_PATTERN, text) and parse_day(text, "date") == day
    sign, minutes = "+-"[offset < 0], abs(offset)
    moment = f"{text}T23:59:59{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    assert re.fullmatch(MOMENT_PATTERN, moment)
    parse_moment(moment, "from", MSK)
    parse_moment(f"{text}T00:00:00.5{sign}{minutes // 60:02d}:{minutes % 60:02d}", "to", MSK, end=True)


def test_the_text_pattern_is_the_control_character_rule() -> None:
    for text in ["M1", "кв. 1\tдом", "a\nb", "\x00", "a\x7f", "\x85", "x\x1f"]:
        assert bool(re.fullmatch(PLAIN_TEXT_PATTERN, text)) is not has_control(text), repr(text)


@pytest.mark.parametrize(
    "params",
    [
        {"from": "1900-01-01T00:00:00+05:00"},
        {"to": "8999-12-31T23:00:00-05:00"},
        {"from": "1900-01-01T00:00:00+05:00", "to": "8999-12-31T23:00:00-05:00"},
    ],
)
def test_datetimes_at_the_ends_of_the_range_are_taken_whatever_their_offset(env: Env, params: dict[str, str]) -> None:
    """Their own date lies in the range the document states; in UTC they fall a few hours outside it."""
    answer = env.client.get("/api/v1/meters/M2/readings", params=params, headers=env.h("root", "en"))
    assert answer.status_code == 200, answer.text


def test_refusals_the_schema_cannot_state_have_their_own_codes(env: Env) -> None:
    headers = env.h("root", "en")
    backwards = env.client.get(
        "/api/v1/meters/M2/readings", params={"from": "2026-02-01", "to": "2026-01-01"}, headers=headers
    )
    assert backwards.status_code == 422 and backwards.json()["code"] == "invalid_period"
    series = env.client.get(
        "/api/v1/meters/M2/consumption",
        params={"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
        headers=headers,
    )
    assert series.json()["code"] == "invalid_period"
    cursor = env.client.get("/api/v1/meters/M2/readings", params={"cursor": "QUJD"}, headers=headers)
    assert cursor.status_code == 422 and cursor.json()["code"] == "invalid_cursor"
    zone = env.client.post("/api/v1/readings/preview", json={"meter": "M2", "values": {"3": "1"}}, headers=headers)
    assert zone.status_code == 422 and zone.json()["code"] == "unknown_tariff_zone"
    twice = env.client.post(
        "/api/v1/readings/preview", json={"meter": "M2", "values": {"0": "1", "total": "1"}}, headers=headers
    )
    assert twice.status_code == 422 and twice.json()["code"] == "duplicate_tariff_zone"
    year = env.client.get(
        "/api/v1/export/readings.csv", params={"from": "2024-01-01", "to": "2026-01-01"}, headers=headers
    )
    assert year.status_code == 422 and year.json()["code"] == "period_too_long"


@pytest.mark.parametrize("limit", ["1_000", "١", " 5"])
def test_dashboard_limits_take_ascii_digits_only(env: Env, limit: str) -> None:
    answer = env.client.get("/api/v1/dashboard/audit", params={"limit": limit}, headers=env.h("root", "en"))
    assert answer.status_code == 422 and answer.json()["code"] == "malformed", answer.text
