"""Макет 80020: valid against the schema written from the format description, sums match the readings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from lxml import etree

import amr
from amr.outputs.consumption import Bucket
from amr.outputs.export80020 import STATUS_GAP, STATUS_OK, periods
from tests.api.conftest import Env

SCHEMA = etree.XMLSchema(etree.parse(str(Path(amr.__file__).parent / "outputs" / "export80020.xsd")))
MIDNIGHT = datetime(2026, 3, 8, 21, 0, tzinfo=UTC)  # 2026-03-09 00:00 in Moscow
MSK = __import__("zoneinfo").ZoneInfo("Europe/Moscow")


def _parse(body: bytes) -> etree._Element:
    assert body.startswith(b'<?xml version="1.0" encoding="windows-1251"?>')
    root = etree.fromstring(body)
    SCHEMA.assertValid(root)
    return root


def test_export_is_valid_and_sums_match_readings(env: Env) -> None:
    # M1: a full day of half-hours, 0.37 kWh and 0.123 kvarh each; M3 (CT 1) only until 06:00.
    env.profile("M1", MIDNIGHT, 49, step_kwh="0.37", r_plus="0.123")
    env.profile("M3", MIDNIGHT, 13, step_kwh="12.345", first="5000")
    answer = env.client.get("/api/v1/export/80020", params={"date": "2026-03-09"}, headers=env.h("disp"))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/xml; charset=windows-1251"
    assert "80020_7709876543_20260309_" in answer.headers["content-disposition"]
    root = _parse(answer.content)
    assert root.get("class") == "80020" and root.get("version") == "2" and int(root.get("number")) >= 1
    assert root.findtext("datetime/day") == "20260309"
    assert root.findtext("datetime/timestamp") == "20260310120000"
    assert root.findtext("datetime/daylightsavingtime") == "0"
    assert root.findtext("sender/name") == "АО «Сбыт»" and root.findtext("area/inn") == "7709876543"
    points = {p.get("code"): p for p in root.iter("measuringpoint")}
    assert set(points) == {"dom1-kv1", "dom1-kv2", "north-t1"}
    assert points["dom1-kv1"].get("name") == "Дом 1, кв. 1"

    def channel(point: str, code: str) -> list[tuple[str, str, int, str]]:
        node = points[point].find(f"measuringchannel[@code='{code}']")
        return [(p.get("start"), p.get("end"), int(p.findtext("value")), p.find("value").get("status"))
                for p in node.iter("period")]

    a_plus = channel("dom1-kv1", "01")
    assert (a_plus[0][:2], a_plus[-1][:2]) == (("0000", "0030"), ("2330", "0000"))
    assert sum(v for _, _, v, _ in a_plus) == round(Decimal("0.37") * 48) == 18
    assert {s for *_, s in a_plus} == {STATUS_OK}
    exact = [Decimal("0.37") * (i + 1) for i in range(48)]
    running = [sum(v for _, _, v, _ in a_plus[: i + 1]) for i in range(48)]
    assert all(abs(r - e) <= Decimal("0.5") for r, e in zip(running, exact, strict=True)), "carried rounding"
    r_plus = channel("dom1-kv1", "03")
    assert sum(v for _, _, v, _ in r_plus) == 6  # 48 × 0.123 = 5.904
    a_minus = channel("dom1-kv1", "02")
    assert {(v, s) for _, _, v, s in a_minus} == {(0, STATUS_GAP)}, "a channel never read is a gap, not zero use"
    north = channel("north-t1", "01")
    assert [v for _, _, v, _ in north[:12]] == [12, 13, 12, 12, 13, 12, 12, 13, 12, 12, 13, 12]
    assert sum(v for _, _, v, _ in north[:12]) == round(Decimal("12.345") * 12)
    assert [s for *_, s in north] == [STATUS_OK] * 12 + [STATUS_GAP] * 36
    again = env.client.get("/api/v1/export/80020", params={"date": "2026-03-09"}, headers=env.h("disp"))
    assert int(_parse(again.content).get("number")) == int(root.get("number")) + 1, "every file gets a new number"


def test_export_needs_sender_and_area(env: Env) -> None:
    config = env.app.config
    env.app.config = config.model_copy(update={"export": config.export.model_copy(update={"sender_inn": ""})})
    answer = env.client.get("/api/v1/export/80020", params={"date": "2026-03-09"}, headers=env.h("disp"))
    assert answer.status_code == 409 and answer.json()["code"] == "export_not_configured"
    assert env.client.get("/api/v1/export/80020", params={"date": "2026-02-30"},
                          headers=env.h("disp")).status_code == 422


def test_carried_rounding_keeps_the_day_total() -> None:
    start = datetime(2026, 3, 8, 21, 0, tzinfo=UTC)
    buckets = [
        Bucket(start + timedelta(minutes=30 * i), start + timedelta(minutes=30 * (i + 1)), 400 + (i % 3) * 333)
        for i in range(48)
    ]
    buckets[5].value = None
    buckets[5].gaps.append((buckets[5].start, buckets[5].end))
    found = periods(buckets, MSK)
    total = sum(b.value or 0 for b in buckets)
    assert sum(p.value for p in found) == (total + 500) // 1000
    assert found[5].status == STATUS_GAP and found[5].value == 0
    assert all(p.value >= 0 for p in found)
    assert [p.start for p in found[:3]] == ["0000", "0030", "0100"] and found[-1].end == "0000"


def test_half_hours_come_from_intervals_with_a_status_for_what_is_not_measured(env: Env) -> None:
    from amr.core.domain import Channel
    from amr.core.intervals import IntervalSource, IntervalStatus, IntervalValue

    half = timedelta(minutes=30)
    now = datetime(2026, 3, 10, 9, tzinfo=UTC)

    def value(i: int, wh: int, source: IntervalSource = IntervalSource.PROFILE) -> IntervalValue:
        status = IntervalStatus.ESTIMATED if source is IntervalSource.ESTIMATED else IntervalStatus.MEASURED
        if i == 3:
            status = IntervalStatus.INCOMPLETE
        return IntervalValue("M1", Channel.A_PLUS, MIDNIGHT + i * half, half, wh, status, source, now,
                             "linear" if source is IntervalSource.ESTIMATED else None)

    values = [value(i, 2000) for i in range(48) if i not in (1, 2, 10)]
    values.append(value(1, 3000, IntervalSource.ESTIMATED))
    assert env.app.store.write_intervals(values).accepted == 46  # half-hour 2 (00:30-01:00) stays missing
    env.app.store.substitute_interval(value(5, 2500), "disp", "clock set wrong", now)
    answer = env.client.get("/api/v1/export/80020", params={"date": "2026-03-09"}, headers=env.h("disp"))
    root = _parse(answer.content)
    point = next(p for p in root.iter("measuringpoint") if p.get("code") == "dom1-kv1")
    node = point.find("measuringchannel[@code='01']")
    got = [(p.get("start"), int(p.findtext("value")), p.find("value").get("status")) for p in node.iter("period")]
    assert got[0] == ("0000", 2, STATUS_OK)
    assert got[1] == ("0030", 3, STATUS_GAP)  # estimated
    assert got[2] == ("0100", 0, STATUS_GAP)  # missing: no interval, no readings
    assert got[3][2] == STATUS_GAP  # incomplete: the meter's status bits
    assert got[5] == ("0230", 3, STATUS_GAP)  # a dispatcher's substitution (2.5 kWh, carried rounding)
    assert got[10][2] == STATUS_GAP and got[11][2] == STATUS_OK
    assert sum(v for _, v, _ in got) == round((2000 * 44 + 3000 + 2500) / 1000)
