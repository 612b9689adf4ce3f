"""Times in the API's refusal texts are in the site's zone with the zone named; JSON timestamps stay UTC."""

from __future__ import annotations

from datetime import timedelta

from tests.api.conftest import NOW, Env

DAY = timedelta(days=1)


def test_refusal_texts_name_the_site_zone(env: Env) -> None:
    env.put("M1", NOW - DAY, "1000", tariff=1)  # 2026-03-09 12:00 in Moscow, 09:00 UTC
    form = {"meter": "M1", "values": {"1": "999"}}
    russian = env.client.post("/api/v1/readings", json=form, headers=env.h("ivan"))
    assert russian.status_code == 422
    assert "от 09.03.2026 12:00 (MSK)" in russian.json()["message"]
    english = env.client.post("/api/v1/readings", json=form, headers=env.h("ivan", "en"))
    assert "of 2026-03-09 12:00 (MSK)" in english.json()["message"]
    # the refusal kept for the dispatcher says the same moment in the site's zone, with its offset
    kept = env.client.get("/api/v1/dispatch/rejected", headers=env.h("disp", "en")).json()[0]
    assert "of 2026-03-09 12:00+03:00" in kept["message"] and "09:00:00+00:00" not in kept["message"]
    assert kept["timestamp"].endswith("+00:00") or kept["timestamp"].endswith("Z")


def test_not_latest_names_the_later_reading_in_the_site_zone(env: Env) -> None:
    first = env.client.post(
        "/api/v1/readings", json={"meter": "M1", "values": {"2": "5"}, "date": "2026-03-09"}, headers=env.h("ivan")
    )
    assert first.status_code == 201, first.text
    env.put("M1", NOW - timedelta(hours=1), "6", tariff=2)  # 11:00 in Moscow
    older = env.client.delete(f"/api/v1/readings/{first.json()['readings'][0]['id']}", headers=env.h("ivan", "en"))
    assert older.status_code == 409 and older.json()["code"] == "not_latest"
    assert "(2026-03-10 11:00 (MSK))" in older.json()["message"]
