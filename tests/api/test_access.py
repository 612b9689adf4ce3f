"""Access: another user's meters, readings, accounts and queues are 404 on every route; roles,
disabled users, expired tokens, API keys and brute-force throttling."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from amr.store.auth_models import api_users_table
from tests.api.conftest import NOW, PASSWORD, Env, moderated

DAY = timedelta(days=1)


def _seed(env: Env) -> dict[str, Any]:
    """Data of account A1 (meter M1): a manual reading, a refused one, a pending one."""
    env.put("M1", NOW - DAY, "100", tariff=1)
    env.put("M3", NOW - DAY, "5000")
    stored = env.client.post("/api/v1/readings", json={"meter": "M1", "values": {"1": "110"}}, headers=env.h("ivan"))
    env.clock.advance(timedelta(hours=1))
    env.client.post("/api/v1/readings", json={"meter": "M1", "values": {"1": "50"}}, headers=env.h("ivan"))
    moderated(env, ["mobile"])
    env.clock.advance(timedelta(hours=1))
    pending = env.client.post(
        "/api/v1/readings", json={"meter": "M1", "values": {"1": "111"}, "source": "mobile"}, headers=env.h("ivan")
    )
    assert pending.status_code == 202, pending.text
    rejected = env.client.get("/api/v1/dispatch/rejected", headers=env.h("root")).json()
    return {
        "reading": stored.json()["readings"][0]["id"],
        "rejected": rejected[0]["id"],
        "pending": pending.json()["readings"][0]["pending_id"],
    }


OTHER_ACCOUNT_ROUTES = [
    ("GET", "/api/v1/meters/M1/readings", None),
    ("GET", "/api/v1/meters/M1/consumption", None),
    ("GET", "/api/v1/accounts/A1/meters", None),
    ("GET", "/api/v1/accounts/A1/settings", None),
    ("PUT", "/api/v1/accounts/A1/settings", {"public_submission": False}),
    ("POST", "/api/v1/readings/preview", {"meter": "M1", "values": {"1": "200"}}),
    ("POST", "/api/v1/readings", {"meter": "M1", "values": {"1": "200"}}),
    ("DELETE", "/api/v1/readings/{reading}", None),
    ("GET", "/api/v1/export/readings.csv?from=2026-03-01&to=2026-03-10&meter=M1", None),
]


@pytest.mark.parametrize("caller", ["petr", "cab_other"])
def test_another_accounts_data_is_not_found_on_every_route(env: Env, caller: str) -> None:
    ids = _seed(env)
    if caller == "cab_other":
        env.user("cab2", "cabinet", key=True, account=["A2"])
        headers = {"X-API-Key": env.api_keys["cab2"]}
    else:
        headers = env.h(caller)
    for method, path, body in OTHER_ACCOUNT_ROUTES:
        answer = env.client.request(method, path.format(**ids), json=body, headers=headers)
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.json()["code"] == "not_found"
    assert [r["serial"] for r in env.client.get("/api/v1/askue/meters", headers=headers).json()] == ["M2"]
    csv_all = env.client.get("/api/v1/export/readings.csv?from=2026-03-01&to=2026-03-10", headers=headers)
    assert "M1" not in csv_all.text
    assert env.client.get("/api/v1/meters/NOSUCH/readings", headers=headers).json()["code"] == "not_found"
    still = env.client.get("/api/v1/meters/M1/readings", headers=env.h("ivan")).json()["items"]
    assert [i["a_plus"] for i in [x["values"] for x in still]] == ["110.000", "100.000"], "nothing changed"


STAFF_ROUTES = [
    ("GET", "/api/v1/dispatch/meters", None),
    ("GET", "/api/v1/dispatch/rejected", None),
    ("POST", "/api/v1/dispatch/rejected/{rejected}/accept", {"reason": "x"}),
    ("POST", "/api/v1/dispatch/meters/M1/poll", None),
    ("GET", "/api/v1/moderation/pending", None),
    ("POST", "/api/v1/moderation/pending/{pending}/accept", {"reason": "x"}),
    ("POST", "/api/v1/moderation/pending/{pending}/refuse", {"reason": "x"}),
    ("GET", "/api/v1/export/80020?date=2026-03-09", None),
]


def test_dispatcher_of_other_objects_sees_nothing_of_them(env: Env) -> None:
    ids = _seed(env)
    headers = env.h("north")
    for method, path, body in STAFF_ROUTES:
        answer = env.client.request(method, path.format(**ids), json=body, headers=headers)
        if method == "GET":
            assert answer.status_code == 200, (path, answer.text)
            assert "M1" not in answer.text and "dom1" not in answer.text, path
        else:
            assert answer.status_code == 404, (method, path, answer.text)
    for method, path, body in OTHER_ACCOUNT_ROUTES:
        answer = env.client.request(method, path.format(**ids), json=body, headers=headers)
        assert answer.status_code in (403, 404), (method, path, answer.text)
    assert [m["serial"] for m in env.client.get("/api/v1/dispatch/meters", headers=headers).json()["items"]] == ["M3"]
    assert env.client.get("/api/v1/meters/M3/readings", headers=headers).status_code == 200


def test_customers_may_not_use_staff_routes(env: Env) -> None:
    ids = _seed(env)
    for login in ("ivan", "cab"):
        for method, path, body in STAFF_ROUTES:
            answer = env.client.request(method, path.format(**ids), json=body, headers=env.h(login))
            assert answer.status_code == 403, (login, path, answer.text)
            assert answer.json()["code"] == "forbidden"
    put = env.client.put("/api/v1/accounts/A1/settings", json={"public_submission": False}, headers=env.h("disp"))
    assert put.status_code == 403


def test_no_credentials_bad_token_expired_token(env: Env) -> None:
    assert env.client.get("/api/v1/askue/meters").json()["code"] == "unauthorized"
    bad = env.client.get("/api/v1/askue/meters", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.headers["WWW-Authenticate"] == "Bearer"
    assert env.client.get("/api/v1/askue/meters", headers={"X-API-Key": "amrk_nope"}).status_code == 401
    env.clock.advance(timedelta(hours=12))
    expired = env.client.get("/api/v1/askue/meters", headers=env.h("ivan"))
    assert expired.status_code == 401 and expired.json()["code"] == "token_expired"
    assert env.client.get("/api/v1/askue/meters", headers={"X-API-Key": env.api_keys["cab"]}).status_code == 200


def test_disabled_user_loses_access_at_once(env: Env) -> None:
    assert env.client.get("/api/v1/askue/meters", headers=env.h("ivan")).status_code == 200
    with env.app.store.engine.begin() as conn:  # the flag alone: checked on every request
        conn.execute(update(api_users_table).where(api_users_table.c.login.in_(["ivan", "cab"])).values(disabled=True))
    answer = env.client.get("/api/v1/askue/meters", headers=env.h("ivan"))
    assert answer.status_code == 401 and answer.json()["code"] == "user_disabled"
    assert env.client.get("/api/v1/askue/meters", headers={"X-API-Key": env.api_keys["cab"]}).status_code == 401
    login = env.client.post("/api/v1/auth/token", json={"login": "ivan", "password": PASSWORD})
    assert login.status_code == 401 and login.json()["code"] == "user_disabled"
    env.ctx.users.set_disabled("petr", True)
    assert env.client.get("/api/v1/askue/meters", headers=env.h("petr")).status_code == 401
    env.ctx.users.set_disabled("petr", False)
    relogin = env.client.post("/api/v1/auth/token", json={"login": "petr", "password": PASSWORD})
    assert relogin.status_code == 200


def test_logout_and_me(env: Env) -> None:
    me = env.client.get("/api/v1/auth/me", headers=env.h("north")).json()
    assert me == {"login": "north", "name": "North", "role": "dispatcher", "accounts": [], "meters": [],
                  "objects": ["ПС Северная"]}
    assert env.client.post("/api/v1/auth/logout", headers=env.h("north")).status_code == 204
    assert env.client.get("/api/v1/auth/me", headers=env.h("north")).status_code == 401


def test_brute_force_is_throttled_per_login_and_per_address(env: Env) -> None:
    for i in range(5):
        wrong = env.client.post("/api/v1/auth/token", json={"login": "ivan", "password": f"guess{i}"},
                                headers={"X-Forwarded-For": f"10.1.0.{i}"})
        assert wrong.status_code == 401 and wrong.json()["code"] == "unauthorized"
    blocked = env.client.post("/api/v1/auth/token", json={"login": "ivan", "password": PASSWORD},
                              headers={"X-Forwarded-For": "10.1.1.1", "Accept-Language": "en"})
    assert blocked.status_code == 429, "even the right password waits once the login is throttled"
    assert blocked.json()["code"] == "throttled" and "try again in" in blocked.json()["message"]
    assert 0 < int(blocked.headers["Retry-After"]) <= 15 * 60
    other = env.client.post("/api/v1/auth/token", json={"login": "petr", "password": PASSWORD},
                            headers={"X-Forwarded-For": "10.1.1.1"})
    assert other.status_code == 200, "another login from a clean address is not affected"
    for i in range(5):
        env.client.post("/api/v1/auth/token", json={"login": f"user{i}", "password": "x"},
                        headers={"X-Forwarded-For": "10.2.0.1"})
    by_address = env.client.post("/api/v1/auth/token", json={"login": "petr", "password": PASSWORD},
                                 headers={"X-Forwarded-For": "10.2.0.1"})
    assert by_address.status_code == 429
    env.clock.advance(timedelta(minutes=16))
    later = env.client.post("/api/v1/auth/token", json={"login": "ivan", "password": PASSWORD},
                            headers={"X-Forwarded-For": "10.1.1.1"})
    assert later.status_code == 200, "the window passed"
