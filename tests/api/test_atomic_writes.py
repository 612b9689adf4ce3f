"""A moderation accept that fails after the reading is written changes nothing."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from tests.api.conftest import NOW, Env, moderated

DAY = timedelta(days=1)
TRIGGERS = {
    "postgresql": [
        "CREATE FUNCTION amr_test_fail() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'injected'; END $$ "
        "LANGUAGE plpgsql",
        "CREATE TRIGGER amr_test_fail BEFORE UPDATE ON pending_readings FOR EACH ROW EXECUTE FUNCTION amr_test_fail()",
    ],
    "sqlite": [
        "CREATE TRIGGER amr_test_fail BEFORE UPDATE ON pending_readings BEGIN SELECT RAISE(ABORT, 'injected'); END",
    ],
}
DROP = {
    "postgresql": ["DROP TRIGGER amr_test_fail ON pending_readings", "DROP FUNCTION amr_test_fail()"],
    "sqlite": ["DROP TRIGGER amr_test_fail"],
}


def test_moderation_accept_failing_between_store_and_resolve_changes_nothing(env: Env) -> None:
    moderated(env, ["web"])
    env.put("M1", NOW - DAY, "100", tariff=1)
    sent = env.client.post("/api/v1/readings", json={"meter": "M1", "values": {"1": "120"}}, headers=env.h("ivan"))
    pending_id = sent.json()["readings"][0]["pending_id"]
    store = env.app.store
    dialect = store.engine.dialect.name
    audits = len(store.audit_log(1000))
    with store.engine.begin() as conn:  # the item's update fails after the reading is written
        for statement in TRIGGERS[dialect]:
            conn.execute(text(statement))
    try:
        failed = env.client.post(f"/api/v1/moderation/pending/{pending_id}/accept", json={"reason": "ok"},
                                 headers=env.h("disp"))
        assert failed.status_code >= 400, failed.text  # SQLite reports the abort as a conflict (409)
    finally:
        with store.engine.begin() as conn:
            for statement in DROP[dialect]:
                conn.execute(text(statement))
    meter = env.app.ingestor.meters["M1"]
    assert len(store.readings([meter.id], tariff=1)) == 1, "the reading must not stay stored"
    assert len(store.audit_log(1000)) == audits
    listed = env.client.get("/api/v1/moderation/pending", headers=env.h("disp")).json()
    assert [p["id"] for p in listed] == [pending_id], "the item is still pending, not stuck in processing"
    again = env.client.post(f"/api/v1/moderation/pending/{pending_id}/accept", json={"reason": "ok"},
                            headers=env.h("disp"))
    assert again.status_code == 200 and again.json()["pending"]["status"] == "accepted"
    assert len(store.readings([meter.id], tariff=1)) == 2
