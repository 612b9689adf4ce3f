"""The sum check kept: a dispatcher lists the mismatches of the meters it sees; ``/metrics`` counts them."""

from __future__ import annotations

from datetime import timedelta

from amr.core.domain import Channel
from amr.core.intervals import IntervalSource, IntervalStatus, IntervalValue
from amr.store.sum_checks import record_sum_check
from tests.api.conftest import NOW, Env
from tests.api.test_intervals_api import DAY_START, HALF, _seed

GAUGE = 'amr_interval_sum_mismatches{channel="a_plus"}'


def _gauge(env: Env) -> float:
    text = env.client.get("/metrics").text
    [line] = [line for line in text.splitlines() if line.startswith(GAUGE)]
    return float(line.split()[-1])


def test_a_kept_mismatch_is_listed_for_its_dispatchers_counted_and_goes_when_corrected(env: Env) -> None:
    _seed(env)  # 100 + i Wh in the i-th half-hour
    env.put("M1", DAY_START, "1000.000")
    env.put("M1", DAY_START + 4 * HALF, "1005.406")  # the registers say 5406 Wh, the intervals 406
    env.put("M1", DAY_START + 8 * HALF, "1005.828")  # 422 Wh: as the intervals say
    meter = env.app.meters["M1"]
    [found] = record_sum_check(env.app.store, meter, DAY_START, DAY_START + timedelta(days=1), NOW)
    assert (found.register_wh, found.intervals_wh, found.tolerance_wh) == (5406, 406, 20)
    assert _gauge(env) == 1

    answer = env.client.get("/api/v1/dispatch/sum-mismatches?from=2026-03-09&to=2026-03-09", headers=env.h("disp"))
    assert answer.status_code == 200, answer.text
    [item] = answer.json()
    assert item["serial"] == "M1" and item["reason"] == "sum_mismatch" and item["channel"] == "a_plus"
    assert (item["registers"], item["intervals"], item["tolerance"]) == ("5.406", "0.406", "0.020")
    assert item["local_start"] == "2026-03-09T00:00:00+03:00"
    assert env.client.get("/api/v1/dispatch/sum-mismatches", headers=env.h("north")).json() == []  # not its meter
    assert env.client.get("/api/v1/dispatch/sum-mismatches?meter=M3", headers=env.h("disp")).json() == []
    assert env.client.get("/api/v1/dispatch/sum-mismatches", headers=env.h("ivan")).status_code == 403
    bad = env.client.get("/api/v1/dispatch/sum-mismatches?from=2026-03-09&to=2026-03-01", headers=env.h("disp"))
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_period"

    # the dispatcher finds the half-hour the profile lost energy in and substitutes it: the mismatch goes
    fixed = IntervalValue("M1", Channel.A_PLUS, DAY_START + 2 * HALF, HALF, 5102, IntervalStatus.MEASURED,
                          IntervalSource.MANUAL, NOW)
    assert env.app.store.write_intervals([fixed]).replaced == 1
    assert record_sum_check(env.app.store, meter, DAY_START, DAY_START + timedelta(days=1), NOW) == []
    assert env.client.get("/api/v1/dispatch/sum-mismatches", headers=env.h("disp")).json() == []
    assert _gauge(env) == 0
