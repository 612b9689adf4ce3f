"""Read routes: the АСКУЭ table, accounts, history, consumption, dispatch, exports, health and metrics."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from amr.core.domain import Source
from tests.api.conftest import NOW, Env

DAY = timedelta(days=1)
MIDNIGHT = datetime(2026, 3, 8, 21, 0, tzinfo=UTC)  # 2026-03-09 00:00 in Moscow


def test_askue_table_shows_latest_reading_of_each_visible_meter(env: Env) -> None:
    env.put("M1", NOW - 2 * DAY, "10", a_minus="1", r_plus="2", r_minus="3")
    env.put("M1", NOW - DAY, "11.5", a_minus="1.25", r_plus="2", r_minus="3.001")
    env.put("M1", NOW - DAY, "99", tariff=1)
    env.put("M2", NOW - DAY, "7")
    rows = env.client.get("/api/v1/askue/meters", headers=env.h("ivan")).json()
    assert rows == [
        {
            "object": "Дом 1", "meter": "кв. 1", "serial": "M1", "a_plus": "11.500", "a_minus": "1.250",
            "r_plus": "2.000", "r_minus": "3.001", "obtained_at": "2026-03-09T09:00:00Z",
            "local_time": "2026-03-09T12:00:00+03:00",
        }
    ]
    everything = env.client.get("/api/v1/askue/meters", headers=env.h("root")).json()
    assert [(r["serial"], r["a_plus"]) for r in everything] == [("M1", "11.500"), ("M2", "7.000"), ("M3", None)]
    by_key = env.client.get("/api/v1/askue/meters", headers={"X-API-Key": env.api_keys["cab"]})
    assert [r["serial"] for r in by_key.json()] == ["M1"]


def test_account_meters_with_latest_per_tariff(env: Env) -> None:
    env.put("M1", NOW - 2 * DAY, "10", tariff=1)
    env.put("M1", NOW - DAY, "12", tariff=1)
    env.put("M1", NOW - DAY, "5", tariff=2)
    body = env.client.get("/api/v1/accounts/A1/meters", headers=env.h("cab")).json()
    assert body["account"] == "A1" and body["public_submission"] is True
    [meter] = body["meters"]
    assert meter["serial"] == "M1" and meter["tariffs"] == 2
    assert [(r["tariff"], r["a_plus"], r["local_time"][:10]) for r in meter["latest"]] == [
        (1, "12.000", "2026-03-09"),
        (2, "5.000", "2026-03-09"),
    ]
    assert env.client.get("/api/v1/accounts/A1/meters", headers=env.h("disp")).status_code == 200
    assert env.client.get("/api/v1/accounts/NOPE/meters", headers=env.h("root")).status_code == 404


def test_history_pages_filters_and_billing_month(env: Env) -> None:
    env.profile("M2", datetime(2026, 1, 31, 20, 0, tzinfo=UTC), 5, step_kwh="1")  # 23:00 Jan 31 .. 01:00 Feb 1
    headers = env.h("petr")
    page = env.client.get("/api/v1/meters/M2/readings", params={"limit": 2}, headers=headers).json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    seen = [i["timestamp"] for i in page["items"]]
    while page["next_cursor"]:
        page = env.client.get(
            "/api/v1/meters/M2/readings", params={"limit": 2, "cursor": page["next_cursor"]}, headers=headers
        ).json()
        seen += [i["timestamp"] for i in page["items"]]
    assert len(seen) == 5 and seen == sorted(seen, reverse=True)
    january = env.client.get("/api/v1/meters/M2/readings", params={"billing_month": "2026-01"}, headers=headers)
    assert [i["billing_month"] for i in january.json()["items"]] == ["2026-01", "2026-01"]
    items = env.client.get("/api/v1/meters/M2/readings", params={"from": "2026-02-01"}, headers=headers).json()
    assert [i["consumption"]["a_plus"] for i in items["items"]] == ["1.000", "1.000", "1.000"]
    bad = env.client.get("/api/v1/meters/M2/readings", params={"cursor": "garbage"}, headers=headers)
    assert bad.status_code == 422 and bad.json()["field"] == "cursor"
    month = env.client.get("/api/v1/meters/M2/readings", params={"billing_month": "2026-13"}, headers=headers)
    assert month.status_code == 422
    wrong = env.client.get("/api/v1/meters/M2/readings", params={"from": "2026-02-02", "to": "2026-02-01"},
                           headers=headers)
    assert wrong.status_code == 422 and wrong.json()["field"] == "to"


def test_consumption_series_marks_gaps(env: Env) -> None:
    env.profile("M2", MIDNIGHT, 13, step_kwh="0.5")  # 00:00 .. 06:00
    env.profile("M2", MIDNIGHT + timedelta(hours=8), 3, step_kwh="0.25", first="110")  # 08:00 .. 09:00
    answer = env.client.get(
        "/api/v1/meters/M2/consumption",
        params={"from": "2026-03-09T00:00:00+03:00", "to": "2026-03-09T10:00:00+03:00", "step": "hour"},
        headers=env.h("petr"),
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["unit"] == "kWh" and body["timezone"] == "Europe/Moscow" and body["complete"] is False
    values = [(b["local_start"][11:16], b["value"], b["complete"]) for b in body["buckets"]]
    assert values[:6] == [(f"0{h}:00", "1.000", True) for h in range(6)]
    assert values[6] == ("06:00", None, False)
    assert values[8] == ("08:00", "0.500", True)
    assert body["buckets"][6]["gaps"] == [{"start": "2026-03-09T03:00:00Z", "end": "2026-03-09T04:00:00Z"}]
    assert body["total"] == "6.500"
    days = env.client.get("/api/v1/meters/M2/consumption", params={"step": "day"}, headers=env.h("petr"))
    assert days.status_code == 200 and len(days.json()["buckets"]) >= 31
    too_many = env.client.get("/api/v1/meters/M2/consumption", params={"step": "30min", "from": "2020-01-01"},
                              headers=env.h("petr"))
    assert too_many.status_code == 422 and too_many.json()["field"] == "step"


def test_dispatch_meters_status_and_completeness(env: Env) -> None:
    env.profile("M1", MIDNIGHT, 24)  # 00:00 .. 11:30: 24 of the 24 slots until 12:00
    env.profile("M2", MIDNIGHT, 6)
    body = env.client.get("/api/v1/dispatch/meters", params={"date": "2026-03-09"}, headers=env.h("disp")).json()
    by_serial = {m["serial"]: m for m in body["items"]}
    assert body["total"] == 3
    assert by_serial["M1"]["readings_expected"] == 48 and by_serial["M1"]["readings_received"] == 24
    assert by_serial["M1"]["completeness"] == 0.5
    today = env.client.get("/api/v1/dispatch/meters", headers=env.h("disp")).json()
    assert {m["status"] for m in today["items"]} == {"unknown"}
    assert today["items"][0]["readings_expected"] == 24, "today: the slots until now"
    with env.app.store.engine.begin() as conn:
        conn.execute(text("DELETE FROM meter_health"))
        conn.execute(
            text("INSERT INTO meter_health (meter_id, status, last_poll_at, last_error, consecutive_failures, polls, "
                 "failures) VALUES (:m, 'offline', :at, 'timeout after 1 s', 3, 10, 3)"),
            {"m": env.app.meters["M2"].id, "at": NOW - timedelta(minutes=5)},
        )
    offline = env.client.get("/api/v1/dispatch/meters", params={"status": "offline"}, headers=env.h("disp")).json()
    [m2] = offline["items"]
    assert m2["serial"] == "M2" and m2["last_error"] == "timeout after 1 s"
    assert m2["last_poll"] == "2026-03-10T08:55:00Z"
    search = env.client.get("/api/v1/dispatch/meters", params={"search": "т-1"}, headers=env.h("disp")).json()
    assert [m["serial"] for m in search["items"]] == ["M3"]
    month = env.client.get("/api/v1/dispatch/meters", params={"period": "month", "object": "Дом 1"},
                           headers=env.h("disp")).json()
    assert {m["serial"] for m in month["items"]} == {"M1", "M2"} and month["start"] == "2026-02-28T21:00:00Z"


def test_health_reads_unknown_without_the_collector_table(env: Env) -> None:
    with env.app.store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE meter_health RENAME TO meter_health_away"))
    try:
        body = env.client.get("/api/v1/dispatch/meters", headers=env.h("disp")).json()
    finally:
        with env.app.store.engine.begin() as conn:
            conn.execute(text("ALTER TABLE meter_health_away RENAME TO meter_health"))
    assert {m["status"] for m in body["items"]} == {"unknown"}


def test_rejected_queue_and_override(env: Env) -> None:
    env.put("M2", NOW - DAY, "100")
    refused = env.client.post("/api/v1/readings", json={"meter": "M2", "values": {"0": "90"}}, headers=env.h("petr"))
    assert refused.status_code == 422
    [item] = env.client.get("/api/v1/dispatch/rejected", headers=env.h("disp", "en")).json()
    assert item["meter"] == "M2" and item["reasons"] == [
        {"code": "lower_than_previous", "message": "lower than the previous accepted reading"}
    ]
    missing_reason = env.client.post(f"/api/v1/dispatch/rejected/{item['id']}/accept", json={}, headers=env.h("disp"))
    assert missing_reason.status_code == 422
    accepted = env.client.post(
        f"/api/v1/dispatch/rejected/{item['id']}/accept", json={"reason": "meter replaced"}, headers=env.h("disp")
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["reading"]["flags"] == ["overridden"]
    assert env.client.get("/api/v1/dispatch/rejected", headers=env.h("disp")).json() == []
    again = env.client.post(
        f"/api/v1/dispatch/rejected/{item['id']}/accept", json={"reason": "x"}, headers=env.h("disp")
    )
    assert again.status_code == 409
    audit = env.app.store.audit_log()[0]
    assert (audit["actor"], audit["action"], audit["reason"]) == ("disp", "override", "meter replaced")
    assert env.client.post("/api/v1/dispatch/rejected/999/accept", json={"reason": "x"},
                           headers=env.h("disp")).status_code == 404


def test_poll_now_without_and_with_a_poller(env: Env) -> None:
    answer = env.client.post("/api/v1/dispatch/meters/M1/poll", headers=env.h("disp"))
    assert answer.status_code == 503 and answer.json()["code"] == "collector_not_running"

    class FakePoller:
        async def poll_now(self, serial: str) -> dict[str, object]:
            return {"serial": serial, "ok": True}

    env.ctx.poller = FakePoller()
    polled = env.client.post("/api/v1/dispatch/meters/M1/poll", headers=env.h("disp"))
    assert polled.json() == {"serial": "M1", "result": {"serial": "M1", "ok": True}}
    assert env.client.get("/healthz").json() == {"status": "ok", "database": "ok", "collector": "running"}


def test_csv_export_can_be_imported_again(env: Env) -> None:
    env.profile("M1", MIDNIGHT, 3, r_plus="0.1")
    env.put("M2", NOW - DAY, "5", source=Source.WEB)
    answer = env.client.get("/api/v1/export/readings.csv", params={"from": "2026-03-09", "to": "2026-03-09"},
                            headers=env.h("disp"))
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [(r["meter"], r["a_plus"], r["r_plus"], r["source"]) for r in rows] == [
        ("M1", "100.000", "0.000", "askue:modbus"),
        ("M1", "100.500", "0.100", "askue:modbus"),
        ("M1", "101.000", "0.200", "askue:modbus"),
        ("M2", "5.000", "", "web"),
    ]
    assert rows[0]["timestamp"] == "2026-03-09T00:00:00+03:00"
    from amr.ingest.csvfile import read_readings

    parsed = list(read_readings(io.StringIO(answer.text), "export.csv"))
    assert len(parsed) == 4 and not any(r.problems for r in parsed)
    long = env.client.get("/api/v1/export/readings.csv", params={"from": "2024-01-01", "to": "2026-01-01"},
                          headers=env.h("disp"))
    assert long.status_code == 422


def test_healthz_metrics_and_errors(env: Env) -> None:
    assert env.client.get("/healthz").json() == {"status": "ok", "database": "ok", "collector": "absent"}
    env.client.post("/api/v1/readings", json={"meter": "M1", "values": {"1": "1"}}, headers=env.h("ivan"))
    env.clock.advance(timedelta(minutes=1))
    env.client.post("/api/v1/readings", json={"meter": "M1", "values": {"1": "0.5"}}, headers=env.h("ivan"))
    metrics = env.client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'amr_api_readings_total{reason="",result="accepted",source="web"} 1.0' in metrics.text
    assert 'amr_api_readings_total{reason="lower_than_previous",result="rejected",source="web"} 1.0' in metrics.text
    assert 'route="/api/v1/readings"' in metrics.text
    unknown = env.client.get("/api/v1/nothing-here")
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
    wrong_method = env.client.put("/healthz")
    assert wrong_method.status_code == 405 and wrong_method.json()["code"] == "method_not_allowed"
    assert env.client.get("/docs").status_code == 200



def test_an_unexpected_error_is_still_a_json_body(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("amr.api.routes.askue.latest_readings", broken)
    client = TestClient(env.client.app, raise_server_exceptions=False)
    answer = client.get("/api/v1/askue/meters", headers=env.h("ivan", "en"))
    assert answer.status_code == 500
    assert answer.json() == {"code": "internal_error", "message": "internal error"}
