"""``/api/v1/meters/{serial}/intervals`` by role, the dispatcher's substitution, and consumption from intervals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from amr.core.domain import Channel
from amr.core.intervals import IntervalSource, IntervalStatus, IntervalValue, ProfileFlag
from tests.api.conftest import NOW, Env

HALF = timedelta(minutes=30)
DAY_START = datetime(2026, 3, 8, 21, tzinfo=UTC)  # 2026-03-09 00:00 in Moscow
DAY = "from=2026-03-09&to=2026-03-09"


def _seed(env: Env, serial: str = "M1", missing: tuple[int, ...] = (20, 21)) -> list[IntervalValue]:
    values = [
        IntervalValue(
            serial, Channel.A_PLUS, DAY_START + i * HALF, HALF, 100 + i,
            IntervalStatus.INCOMPLETE if i == 5 else IntervalStatus.MEASURED, IntervalSource.PROFILE, NOW,
            flags=ProfileFlag.POWER_FAILURE if i == 5 else ProfileFlag.NONE,
        )
        for i in range(48)
        if i not in missing
    ]
    assert env.app.store.write_intervals(values).accepted == len(values)
    return values


def test_a_customer_sees_its_own_meters_profile_and_no_one_elses(env: Env) -> None:
    _seed(env)
    _seed(env, "M3", ())
    answer = env.client.get(f"/api/v1/meters/M1/intervals?{DAY}", headers=env.h("ivan"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["counts"] == {"measured": 45, "incomplete": 1, "estimated": 0, "missing": 2}
    first, sixth = body["intervals"][0], body["intervals"][5]
    assert (first["local_start"], first["value"], first["minutes"]) == ("2026-03-09T00:00:00+03:00", "0.100", 30)
    assert sixth["status"] == "incomplete" and sixth["flags"] == ["power_failure"]
    assert [i["local_start"][11:16] for i in body["intervals"] if i["status"] == "missing"] == ["10:00", "10:30"]
    cabinet = env.client.get(f"/api/v1/meters/M1/intervals?{DAY}", headers={"X-API-Key": env.api_keys["cab"]})
    assert cabinet.status_code == 200 and cabinet.json()["counts"] == body["counts"]
    for login, serial in (("petr", "M1"), ("ivan", "M3"), ("north", "M1")):
        refused = env.client.get(f"/api/v1/meters/{serial}/intervals?{DAY}", headers=env.h(login))
        assert refused.status_code == 404 and refused.json()["code"] == "not_found", (login, serial)
    assert env.client.get(f"/api/v1/meters/M3/intervals?{DAY}", headers=env.h("north")).status_code == 200
    assert env.client.get(f"/api/v1/meters/M1/intervals?{DAY}").status_code == 401


def test_bad_periods_and_channels_are_4xx_with_a_code(env: Env) -> None:
    h = env.h("disp")
    backwards = env.client.get("/api/v1/meters/M1/intervals?from=2026-03-09&to=2026-03-01", headers=h)
    assert backwards.status_code == 422 and backwards.json()["code"] == "invalid_period"
    long = env.client.get("/api/v1/meters/M1/intervals?from=2025-01-01&to=2026-03-01", headers=h)
    assert long.status_code == 422 and long.json()["code"] == "period_too_long"
    assert env.client.get("/api/v1/meters/M1/intervals?channel=a_plux", headers=h).status_code == 422
    empty = env.client.get("/api/v1/meters/M1/intervals", headers=h)
    assert empty.status_code == 200 and empty.json()["intervals"] == []  # no profile: nothing is "missing"


def test_a_dispatcher_substitutes_an_interval_audited(env: Env) -> None:
    _seed(env)
    body = {"channel": "a_plus", "start": "2026-03-09T10:00:00+03:00", "value": "0.25", "reason": "meter was off"}
    assert env.client.put("/api/v1/dispatch/meters/M1/intervals", json=body, headers=env.h("ivan")).status_code == 403
    answer = env.client.put("/api/v1/dispatch/meters/M1/intervals", json=body, headers=env.h("disp"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["value"] == "0.250" and answer.json()["source"] == "manual"
    shown = env.client.get(f"/api/v1/meters/M1/intervals?{DAY}", headers=env.h("ivan")).json()
    assert shown["counts"]["missing"] == 1
    [audit] = [a for a in env.app.store.audit_log(10) if a["action"] == "substitute_interval"]
    assert audit["actor"] == "disp" and audit["reason"] == "meter was off" and audit["details"]["wh"] == 250
    misaligned = {**body, "start": "2026-03-09T10:10:00+03:00"}
    wrong = env.client.put("/api/v1/dispatch/meters/M1/intervals", json=misaligned, headers=env.h("disp"))
    assert wrong.status_code == 422 and "aligned" in wrong.json()["message"]
    bad_value = env.client.put(
        "/api/v1/dispatch/meters/M1/intervals", json={**body, "value": "-1"}, headers=env.h("disp")
    )
    assert bad_value.status_code == 422


def test_consumption_says_which_buckets_come_from_intervals(env: Env) -> None:
    values = _seed(env, missing=())
    answer = env.client.get(f"/api/v1/meters/M1/consumption?{DAY}&step=day", headers=env.h("ivan"))
    assert answer.status_code == 200, answer.text
    [day] = answer.json()["buckets"]
    assert day["basis"] == "intervals" and day["complete"]
    assert day["intervals"] == {"measured": 47, "incomplete": 1, "estimated": 0, "missing": 0}
    assert day["value"] == f"{sum(v.wh for v in values) / 1000:.3f}"
    by_tariff = env.client.get(f"/api/v1/meters/M1/consumption?{DAY}&step=day&tariff=1", headers=env.h("ivan"))
    assert by_tariff.json()["buckets"][0]["basis"] == "registers"


def test_completeness_counts_intervals(env: Env) -> None:
    _seed(env)  # 46 of the 48 half-hours of 2026-03-09
    answer = env.client.get("/api/v1/dispatch/meters?date=2026-03-09", headers=env.h("disp"))
    assert answer.status_code == 200, answer.text
    by_serial = {m["serial"]: m for m in answer.json()["items"]}
    m1 = by_serial["M1"]
    assert (m1["intervals_expected"], m1["intervals_received"]) == (48, 46)
    assert m1["interval_completeness"] == round(46 / 48, 4)
    assert by_serial["M2"]["intervals_expected"] is None  # no interval data: nothing to count
    today = env.client.get("/api/v1/dispatch/meters", headers=env.h("disp")).json()
    assert {m["serial"]: m["intervals_expected"] for m in today["items"]}["M1"] is None  # none stored today
