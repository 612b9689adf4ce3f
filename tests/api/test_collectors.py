"""``GET /api/v1/dispatch/collectors``: which collector holds which bus, for staff only."""

from __future__ import annotations

from datetime import timedelta

from amr.store.leases import LeaseTable
from tests.api.conftest import Env


def test_staff_see_who_holds_which_bus_and_the_heartbeats(env: Env) -> None:
    if env.backend == "sqlite":
        answer = env.client.get("/api/v1/dispatch/collectors", headers=env.h("disp"))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["sharing"] is False and "SQLite" in body["note"] and body["leases"] == []
        return
    table = LeaseTable(env.ctx.store.engine, "field-1:4242:ab12", timedelta(seconds=30))
    table.ensure({"line-1": ("line-1", 3), "line-2": ("line-2", 5)})
    table.round(["line-1", "line-2"])
    table.acquire(["line-1"], 1)
    answer = env.client.get("/api/v1/dispatch/collectors", headers=env.h("disp"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["sharing"] is True and body["ttl_seconds"] == 15
    leases = {item["lease"]: item for item in body["leases"]}
    assert leases["line-1"]["holder"] == "field-1:4242:ab12" and leases["line-1"]["since"] is not None
    assert leases["line-1"]["meters"] == 3
    assert leases["line-2"]["holder"] is None
    [collector] = body["collectors"]
    assert collector["host"] == "field-1" and collector["pid"] == 4242
    assert collector["alive"] is True and collector["leases"] == 1
    north = env.client.get("/api/v1/dispatch/collectors", headers=env.h("north")).json()
    assert north["leases"] == [] and north["collectors"] == []  # no bus of its objects' meters


def test_an_askue_user_may_not_see_the_collectors(env: Env) -> None:
    answer = env.client.get("/api/v1/dispatch/collectors", headers=env.h("ivan"))
    assert answer.status_code == 403
    assert answer.json()["code"]
