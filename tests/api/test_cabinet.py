"""The cabinet's readings functions through the API, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from tests.api.conftest import NOW, Env, moderated

DAY = timedelta(days=1)


def test_cabinet_flow_preview_submit_refuse_delete_history(env: Env) -> None:
    env.put("M1", NOW - 10 * DAY, "1000", tariff=1)
    env.put("M1", NOW - 10 * DAY, "400", tariff=2)
    form = {"meter": "M1", "values": {"1": "1100.5", "2": "450"}}

    preview = env.client.post("/api/v1/readings/preview", json=form, headers=env.h("ivan"))
    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert body["status"] == "accepted"
    first = body["readings"][0]
    assert first["tariff"] == 1
    assert first["previous"]["value"] == "1000.000"
    assert first["previous"]["source"] == "askue:modbus"
    assert first["consumption"] == "100.500"
    assert first["id"] is None
    assert env.client.get("/api/v1/meters/M1/readings", headers=env.h("ivan")).json()["items"][0]["source"] == (
        "askue:modbus"
    ), "a preview stores nothing"

    submitted = env.client.post("/api/v1/readings", json={**form, "source": "web"}, headers=env.h("ivan"))
    assert submitted.status_code == 201, submitted.text
    stored = submitted.json()["readings"]
    assert [r["status"] for r in stored] == ["accepted", "accepted"]
    reading_ids = [r["id"] for r in stored]
    submits = [a for a in env.app.store.audit_log() if a["action"] == "submit_reading"]
    assert {(a["actor"], a["subject"]) for a in submits} == {("ivan", f"reading/{i}") for i in reading_ids}

    env.clock.advance(timedelta(hours=1))
    lower = env.client.post(
        "/api/v1/readings", json={"meter": "M1", "values": {"1": "1099", "2": "460"}}, headers=env.h("ivan")
    )
    assert lower.status_code == 422
    error = lower.json()
    assert error["code"] == "lower_than_previous"
    assert "1100.500" in error["message"] and "меньше предыдущего" in error["message"]
    assert [r["status"] for r in error["readings"]] == ["rejected", "not_stored"]
    english = env.client.post(
        "/api/v1/readings", json={"meter": "M1", "values": {"1": "1099"}}, headers=env.h("ivan", "en-GB,en;q=0.9")
    )
    assert english.status_code == 422
    assert "lower than the previous accepted reading 1100.500 kWh" in english.json()["message"]
    refused = env.client.get("/api/v1/dispatch/rejected", headers=env.h("disp")).json()
    assert {r["reasons"][0]["code"] for r in refused} == {"lower_than_previous"}, "refusals are kept"

    for reading_id in reading_ids:
        deleted = env.client.delete(f"/api/v1/readings/{reading_id}", params={"reason": "typo"}, headers=env.h("ivan"))
        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["deleted"]["source"] == "web"
    again = env.client.delete(f"/api/v1/readings/{reading_ids[0]}", headers=env.h("ivan"))
    assert again.status_code == 404
    audit = env.app.store.audit_log()
    assert [a["action"] for a in audit[:2]] == ["delete_reading", "delete_reading"]
    assert audit[0]["actor"] == "ivan" and audit[0]["reason"] == "typo"

    resubmit = env.client.post(
        "/api/v1/readings",
        json={"meter": "M1", "values": {"1": "1099", "2": "460"}, "source": "mobile"},
        headers=env.h("ivan"),
    )
    assert resubmit.status_code == 201, resubmit.text
    history = env.client.get("/api/v1/meters/M1/readings", headers=env.h("ivan")).json()["items"]
    assert [(i["tariff"], i["source"]) for i in history] == [(1, "mobile"), (2, "mobile"), (1, "askue:modbus"),
                                                             (2, "askue:modbus")]
    assert history[0]["consumption"]["a_plus"] == "99.000"
    assert history[1]["consumption"]["a_plus"] == "60.000"
    web_only = env.client.get("/api/v1/meters/M1/readings", params={"source": "askue"}, headers=env.h("ivan"))
    assert {i["source"] for i in web_only.json()["items"]} == {"askue:modbus"}


def test_submission_choices_and_field_errors(env: Env) -> None:
    headers = env.h("ivan")
    bad_zone = env.client.post("/api/v1/readings", json={"meter": "M1", "values": {"3": "1"}}, headers=headers)
    assert bad_zone.status_code == 422
    assert bad_zone.json()["field"] == "values.3"
    bad_number = env.client.post("/api/v1/readings", json={"meter": "M1", "values": {"1": "1,5"}}, headers=headers)
    assert bad_number.status_code == 422
    assert bad_number.json()["code"] == "malformed"
    missing = env.client.post("/api/v1/readings", json={"values": {"1": "1"}}, headers=env.h("ivan", "en"))
    assert missing.status_code == 422
    assert missing.json() == {
        "code": "invalid_input",
        "message": "meter: is required; add it",
        "field": "meter",
        "errors": [{"field": "meter", "message": "is required; add it"}],
    }
    not_json = env.client.post(
        "/api/v1/readings", content=b"{", headers={**headers, "Content-Type": "application/json"}
    )
    assert not_json.status_code == 422 and not_json.json()["code"] == "invalid_input"
    operator = env.client.post(
        "/api/v1/readings", json={"meter": "M1", "values": {"1": "5"}, "source": "operator"}, headers=headers
    )
    assert operator.status_code == 403 and operator.json()["code"] == "forbidden"
    future = env.client.post(
        "/api/v1/readings/preview", json={"meter": "M1", "values": {"1": "5"}, "date": "2026-04-01"}, headers=headers
    )
    assert future.json()["readings"][0]["reasons"][0]["code"] == "future_timestamp"
    past_day = env.client.post(
        "/api/v1/readings", json={"meter": "M1", "values": {"total": 7}, "date": "2026-03-01"}, headers=headers
    )
    assert past_day.status_code == 201
    assert past_day.json()["local_time"] == "2026-03-01T12:00:00+03:00", "another day means its noon"
    today = env.client.post(
        "/api/v1/readings", json={"meter": "M1", "values": {"0": "8"}, "date": "2026-03-10"}, headers=headers
    )
    assert today.json()["timestamp"] == "2026-03-10T09:00:00Z", "today means now"


def test_idempotency_key_replays_the_first_answer(env: Env) -> None:
    headers = {**env.h("ivan"), "Idempotency-Key": "k-1"}
    form = {"meter": "M1", "values": {"1": "10"}}
    first = env.client.post("/api/v1/readings", json=form, headers=headers)
    env.clock.advance(timedelta(minutes=5))
    second = env.client.post("/api/v1/readings", json=form, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert len(env.client.get("/api/v1/meters/M1/readings", headers=env.h("ivan")).json()["items"]) == 1
    other = env.client.post("/api/v1/readings", json={"meter": "M1", "values": {"1": "11"}}, headers=headers)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    refused_headers = {**env.h("ivan"), "Idempotency-Key": "k-2"}
    lower = {"meter": "M1", "values": {"1": "1"}}
    refused = env.client.post("/api/v1/readings", json=lower, headers=refused_headers)
    assert refused.status_code == 422
    assert env.client.post("/api/v1/readings", json=lower, headers=refused_headers).json() == refused.json()
    peer = env.client.post("/api/v1/readings", json=form, headers={**env.h("cab"), "Idempotency-Key": "k-1"})
    assert peer.status_code == 201 and peer.json()["readings"][0]["status"] == "accepted", "keys are per user"


def test_delete_rules(env: Env) -> None:
    env.put("M1", NOW - DAY, "50", tariff=1)
    auto = env.client.get("/api/v1/meters/M1/readings", headers=env.h("ivan")).json()["items"][0]["id"]
    refused = env.client.delete(f"/api/v1/readings/{auto}", headers=env.h("ivan"))
    assert refused.status_code == 409 and refused.json()["code"] == "not_manual_source"
    env.clock.advance(timedelta(hours=1))
    operator = env.client.post(
        "/api/v1/readings", json={"meter": "M1", "values": {"1": "60"}, "source": "operator"}, headers=env.h("disp")
    )
    assert operator.status_code == 201
    operator_id = operator.json()["readings"][0]["id"]
    assert env.client.delete(f"/api/v1/readings/{operator_id}", headers=env.h("ivan")).status_code == 403
    first = env.client.post("/api/v1/readings", json={"meter": "M1", "values": {"2": "5"}, "date": "2026-03-09"},
                            headers=env.h("ivan"))
    env.put("M1", NOW - timedelta(hours=1), "6", tariff=2)
    older = env.client.delete(f"/api/v1/readings/{first.json()['readings'][0]['id']}", headers=env.h("ivan"))
    assert older.status_code == 409 and older.json()["code"] == "not_latest"
    assert env.client.delete(f"/api/v1/readings/{operator_id}", headers=env.h("disp")).status_code == 200
    assert env.client.delete("/api/v1/readings/not-an-id", headers=env.h("ivan")).status_code == 404


def test_public_submission_forbidden_by_holder_and_throttled(env: Env) -> None:
    form = {"account": "A1", "meter": "M1", "values": {"1": "12"}}
    ok = env.client.post("/api/v1/public/readings", json=form, headers={"X-Forwarded-For": "10.0.0.1"})
    assert ok.status_code == 201, ok.text
    assert ok.json()["readings"][0]["status"] == "accepted"
    wrong = env.client.post("/api/v1/public/readings", json={**form, "account": "A2"},
                            headers={"X-Forwarded-For": "10.0.0.2"})
    assert wrong.status_code == 404
    put = env.client.put("/api/v1/accounts/A1/settings", json={"public_submission": False}, headers=env.h("ivan"))
    assert put.status_code == 200 and put.json() == {"account": "A1", "public_submission": False}
    assert env.client.get("/api/v1/accounts/A1/settings", headers=env.h("cab")).json()["public_submission"] is False
    forbidden = env.client.post("/api/v1/public/readings", json=form, headers={"X-Forwarded-For": "10.0.0.3"})
    assert forbidden.status_code == 403 and forbidden.json()["code"] == "public_submission_forbidden"
    assert env.app.store.audit_log()[0]["action"] == "account_settings"
    for _ in range(10):
        env.client.post("/api/v1/public/readings", json=form, headers={"X-Forwarded-For": "10.0.0.9"})
    throttled = env.client.post("/api/v1/public/readings", json=form, headers={"X-Forwarded-For": "10.0.0.9"})
    assert throttled.status_code == 429
    assert throttled.json()["code"] == "throttled" and int(throttled.headers["Retry-After"]) > 0


def test_moderation_accept_and_refuse(env: Env) -> None:
    moderated(env, ["web"])
    env.put("M1", NOW - DAY, "100", tariff=1)
    sent = env.client.post("/api/v1/readings", json={"meter": "M1", "values": {"1": "120"}}, headers=env.h("ivan"))
    assert sent.status_code == 202, sent.text
    pending_id = sent.json()["readings"][0]["pending_id"]
    assert sent.json()["status"] == "pending"
    history = env.client.get("/api/v1/meters/M1/readings", headers=env.h("ivan")).json()["items"]
    assert [i["source"] for i in history] == ["askue:modbus"], "pending readings are not counted"
    queue = env.client.get("/api/v1/moderation/pending", headers=env.h("disp")).json()
    assert [(p["id"], p["meter"], p["values"]["a_plus"]) for p in queue] == [(pending_id, "M1", "120.000")]
    accepted = env.client.post(f"/api/v1/moderation/pending/{pending_id}/accept", json={"reason": "checked"},
                               headers=env.h("disp"))
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["pending"]["status"] == "accepted"
    assert accepted.json()["verdict"]["consumption"] == "20.000"
    again = env.client.post(f"/api/v1/moderation/pending/{pending_id}/accept", headers=env.h("disp"))
    assert again.status_code == 409 and again.json()["code"] == "already_resolved"

    env.clock.advance(timedelta(hours=1))
    second = env.client.post("/api/v1/readings", json={"meter": "M1", "values": {"1": "130"}}, headers=env.h("ivan"))
    second_id = second.json()["readings"][0]["pending_id"]
    no_reason = env.client.post(f"/api/v1/moderation/pending/{second_id}/refuse", json={}, headers=env.h("disp"))
    assert no_reason.status_code == 422 and no_reason.json()["field"] == "reason"
    refused = env.client.post(f"/api/v1/moderation/pending/{second_id}/refuse", json={"reason": "photo unreadable"},
                              headers=env.h("disp"))
    assert refused.status_code == 200 and refused.json()["pending"]["status"] == "refused"
    assert [a["action"] for a in env.app.store.audit_log()[:2]] == ["moderation_refused", "moderation_accepted"]
    lower_pending = env.client.post("/api/v1/readings", json={"meter": "M1", "values": {"1": "110"}},
                                    headers=env.h("ivan"))
    assert lower_pending.status_code == 422, "an obviously wrong reading is refused at once, not queued"
