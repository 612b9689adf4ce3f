"""Bad input always gets a 4xx naming the field: huge and foreign-script numbers, dates at the
ends of the calendar, NUL bytes — on SQLite and on PostgreSQL (which refuses NUL in text and
integers beyond 64 bits)."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pytest

from tests.api.conftest import NOW, Env

HUGE = ["9223372036854776", "9223372036854775808", "99999999999999999999", "1e400", "1e999999"]
FOREIGN = ["١٢٣", "１２３", "1_000", "1e3", " 12 3", "0x10", "Infinity", "NaN"]


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("value", HUGE)
@pytest.mark.parametrize("path", ["/api/v1/readings", "/api/v1/readings/preview"])
def test_a_huge_value_is_malformed(env: Env, path: str, value: str) -> None:
    admin = env.client.post(path, json={"meter": "M2", "values": {"0": value}}, headers=env.h("root", "en"))
    assert admin.status_code == 422 and admin.json()["code"] in ("malformed", "over_capacity"), admin.text
    assert admin.json()["field"] == "values.0" or admin.json()["code"] == "over_capacity"
    assert "register" in admin.json()["message"] or "digits 0-9" in admin.json()["message"]


@pytest.mark.parametrize("value", [10**30, 1e300, "9223372036854776"])
def test_a_huge_value_without_login_is_refused_not_stored(env: Env, value: Any) -> None:
    body = {"account": "A2", "meter": "M2", "values": {"0": value}}
    answer = env.client.post("/api/v1/public/readings", json=body, headers={"Accept-Language": "en"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] in ("malformed", "over_capacity")
    assert "register" in answer.json()["message"] or "number" in answer.json()["message"]


@pytest.mark.parametrize("value", FOREIGN)
def test_digits_of_other_scripts_and_separators_are_malformed(env: Env, value: str) -> None:
    answer = env.client.post(
        "/api/v1/readings/preview", json={"meter": "M2", "values": {"0": value}}, headers=env.h("root", "en")
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "malformed"
    assert "digits 0-9" in answer.json()["message"]


def test_the_accepted_number_forms_still_pass(env: Env) -> None:
    for value in ("12", "12.5", "0012.500", "+12", 12, 12.5):
        answer = env.client.post(
            "/api/v1/readings/preview", json={"meter": "M2", "values": {"0": value}}, headers=env.h("root")
        )
        assert answer.status_code == 200, (value, answer.text)


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": _b64("0001-01-01T00:00:00+00:00|0")},
        {"cursor": _b64("9999-12-31T23:59:59+00:00|0")},
        {"cursor": _b64(f"{NOW.isoformat()}|99999")},
        {"cursor": _b64(f"{NOW.isoformat()}|99999999999999999999999")},
        {"cursor": _b64(f"{NOW.isoformat()}|١")},
        {"billing_month": "0001-01"},
        {"billing_month": "9999-12"},
        {"to": "0001-01-01"},
        {"from": "0001-01-01"},
        {"to": "9999-12-31"},
        {"from": "9999-12-31T23:59:59-05:00"},
        {"from": "0001-01-01T00:00:00+05:00"},
        {"to": "0001-01-01T00:00"},
    ],
)
def test_readings_at_the_ends_of_the_calendar(env: Env, params: dict[str, str]) -> None:
    answer = env.client.get("/api/v1/meters/M2/readings", params=params, headers=env.h("root", "en"))
    assert answer.status_code in (200, 422), answer.text
    if answer.status_code == 422:
        assert answer.json()["field"] in params, answer.json()


@pytest.mark.parametrize(
    "params",
    [
        {"from": "0001-01-01", "to": "0001-01-02"},
        {"from": "9999-12-30", "to": "9999-12-31"},
        {"from": "0001-01-01T00:00:00+00:00", "to": "0001-01-01T12:00:00+00:00"},
    ],
)
def test_consumption_at_the_ends_of_the_calendar(env: Env, params: dict[str, str]) -> None:
    answer = env.client.get("/api/v1/meters/M2/consumption", params=params, headers=env.h("root", "en"))
    assert answer.status_code in (200, 422), answer.text


@pytest.mark.parametrize(
    "params",
    [
        {"from": "", "to": ""},
        {"from": "", "to": "2026-01-01"},
        {"from": "0001-01-01", "to": "0001-01-02"},
        {"from": "9999-12-30", "to": "9999-12-31"},
        {"from": "2026-01-01", "to": "2026-01-02", "meter": "M\x002"},
    ],
)
def test_csv_export_bad_periods(env: Env, params: dict[str, str]) -> None:
    answer = env.client.get("/api/v1/export/readings.csv", params=params, headers=env.h("root", "en"))
    assert answer.status_code in (200, 422), answer.text
    if answer.status_code == 422:
        assert answer.json()["field"] in params


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
@pytest.mark.parametrize("path", ["/api/v1/dispatch/meters", "/api/v1/export/80020"])
def test_dispatch_and_80020_at_the_ends_of_the_calendar(env: Env, path: str, day: str) -> None:
    params = {"date": day}
    answer = env.client.get(path, params=params, headers=env.h("root", "en"))
    assert answer.status_code in (200, 422), answer.text
    if answer.status_code == 422:
        assert answer.json()["field"] == "date"
    month = env.client.get(path, params={**params, "period": "month"}, headers=env.h("root", "en"))
    assert month.status_code in (200, 422), month.text


@pytest.mark.parametrize("tariff", ["99999", "99999999999999999999999", "-1", "١"])
def test_deleting_a_reading_id_with_a_wild_tariff_is_not_found(env: Env, tariff: str) -> None:
    micros = int((NOW - timedelta(days=1)).timestamp() * 1_000_000)
    answer = env.client.delete(f"/api/v1/readings/{_b64(f'M2|{tariff}|{micros}')}", headers=env.h("root", "en"))
    assert answer.status_code == 404, answer.text


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "field"),
    [
        ("GET", "/api/v1/dispatch/rejected", {"params": {"meter": "M\x001"}}, "meter"),
        ("GET", "/api/v1/meters/M%001/readings", {}, "serial"),
        ("POST", "/api/v1/auth/token", {"json": {"login": "iv\x00an", "password": "x"}}, "login"),
        ("POST", "/api/v1/auth/token", {"json": {"login": "ivan", "password": "x\x00"}}, "password"),
        ("POST", "/api/v1/dispatch/rejected/1/accept", {"json": {"reason": "ok\x00"}}, "reason"),
        ("POST", "/api/v1/moderation/pending/1/accept", {"json": {"reason": "ok\x00"}}, "reason"),
        ("POST", "/api/v1/moderation/pending/1/refuse", {"json": {"reason": "no\x00"}}, "reason"),
        ("POST", "/api/v1/readings", {"json": {"meter": "M\x002", "values": {"0": "1"}}}, "meter"),
        ("POST", "/api/v1/readings", {"json": {"meter": "M2", "values": {"0\x00": "1"}}}, "values"),
        ("POST", "/api/v1/readings", {"json": {"meter": "M2", "date": "2026-01-01\x00", "values": {"0": "1"}}}, "date"),
        ("DELETE", "/api/v1/readings/x", {"params": {"reason": "oops\x00"}}, "reason"),
        ("GET", "/api/v1/dispatch/meters", {"params": {"search": "M\x00"}}, "search"),
        ("GET", "/api/v1/dispatch/meters", {"params": {"object": "Дом\x001"}}, "object"),
        ("GET", "/api/v1/accounts/A%001/meters", {}, "account"),
    ],
)
def test_a_nul_byte_is_refused_naming_the_field(
    env: Env, method: str, path: str, kwargs: dict[str, Any], field: str
) -> None:
    answer = env.client.request(method, path, headers=env.h("root", "en"), **kwargs)
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["field"].split(".")[0] == field, body
    assert "control character" in body["message"], body
    ru = env.client.request(method, path, headers=env.h("root", "ru"), **kwargs)
    assert "управляющ" in ru.json()["message"], ru.json()


def test_a_nul_in_a_public_submission_is_refused(env: Env) -> None:
    body = {"account": "A\x002", "meter": "M2", "values": {"0": "1"}}
    answer = env.client.post("/api/v1/public/readings", json=body)
    assert answer.status_code == 422 and answer.json()["field"] == "account", answer.text


@pytest.mark.parametrize(
    "day", ["0001-01-01", "9999-12-31", "9999-12-31T23:59:59-05:00", "2026-02-30", "２０２６-01-01"]
)
def test_a_submission_dated_outside_the_calendar_names_the_date(env: Env, day: str) -> None:
    body = {"meter": "M2", "date": day, "values": {"0": "1"}}
    answer = env.client.post("/api/v1/readings/preview", json=body, headers=env.h("root", "en"))
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == "date"


@pytest.mark.parametrize("text", ["1_000", "1.0", "١", "１", "2e0"])
@pytest.mark.parametrize(
    ("path", "name"),
    [("/api/v1/meters/M2/readings", "tariff"), ("/api/v1/meters/M2/readings", "limit"),
     ("/api/v1/meters/M2/consumption", "tariff"), ("/api/v1/dispatch/rejected", "offset"),
     ("/api/v1/moderation/pending", "limit")],
)
def test_a_whole_number_parameter_takes_ascii_digits_only(env: Env, path: str, name: str, text: str) -> None:
    answer = env.client.get(path, params={name: text}, headers=env.h("root", "en"))
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "malformed" and answer.json()["field"] == name, answer.json()
    assert "ASCII digits 0-9" in answer.json()["message"]
    assert env.client.get(path, params={name: "1"}, headers=env.h("root")).status_code == 200
