"""`GET /api/v1/dispatch/backfill`: back-fill progress per meter and channel, for staff, scoped."""

from __future__ import annotations

from datetime import timedelta

from amr.core.domain import CHANNELS
from amr.store.backfill_state import BackfillState
from tests.api.conftest import NOW, Env


def test_staff_see_progress_lost_ranges_and_errors_of_their_meters(env: Env) -> None:
    state = BackfillState(env.app.store)
    start = NOW - timedelta(days=100)
    for serial in ("M1", "M3"):
        state.begin(serial, CHANNELS, start, NOW)
    state.lose("M1", CHANNELS, start, NOW - timedelta(days=85), NOW)
    state.advance("M1", CHANNELS, NOW - timedelta(days=85), NOW - timedelta(hours=2), NOW)
    state.fail("M3", "bus line: no answer within 0.5 s", NOW)

    everything = env.client.get("/api/v1/dispatch/backfill", headers=env.h("disp"))
    assert everything.status_code == 200
    by_serial = {m["serial"]: m for m in everything.json()}
    assert set(by_serial) == {"M1", "M3"}  # M2 was never back-filled
    m1 = by_serial["M1"]
    assert m1["behind_hours"] == 2.0
    a_plus = next(c for c in m1["channels"] if c["channel"] == "a_plus")
    assert a_plus["lost_hours"] == 15 * 24 and a_plus["last_error"] is None
    assert a_plus["lost_until"] == (NOW - timedelta(days=85)).isoformat().replace("+00:00", "Z")
    assert by_serial["M3"]["channels"][0]["last_error"] == "bus line: no answer within 0.5 s"

    # a dispatcher of one object sees its meters only; a customer is refused
    north = env.client.get("/api/v1/dispatch/backfill", headers=env.h("north")).json()
    assert [m["serial"] for m in north] == ["M3"]
    assert env.client.get("/api/v1/dispatch/backfill?meter=M1", headers=env.h("north")).json() == []
    assert env.client.get("/api/v1/dispatch/backfill", headers=env.h("ivan")).status_code == 403
    assert env.client.get("/api/v1/dispatch/backfill?meter=", headers=env.h("disp")).status_code == 422
