"""`amr intervals`, `amr estimate` and `amr consumption` on interval data, end to end on a real store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from amr.app import App
from amr.core.domain import Channel
from amr.core.intervals import IntervalSource, IntervalStatus, IntervalValue
from tests.integration.test_cli import config, run

__all__ = ["config"]
HALF = timedelta(minutes=30)
MISSING = (10, 11, 12)


def _profile_of_the_first_day(cfg: Path, capsys: pytest.CaptureFixture[str]) -> list[IntervalValue]:
    """The 48 half-hours of 2026-01-01 (Moscow) of meter 01123456, from its half-hourly registers."""
    run(capsys, "import", "-c", str(cfg), str(cfg.parent / "readings.csv"), "--json")
    code, out, _ = run(capsys, "readings", "-c", str(cfg), "--meter", "01123456", "--from", "2026-01-01",
                       "--to", "2026-01-02", "--json")
    assert code == 0
    points = [(datetime.fromisoformat(r["timestamp"]), int(Decimal(r["a_plus"]) * 1000)) for r in json.loads(out)]
    received = datetime(2026, 1, 3, tzinfo=UTC)
    return [
        IntervalValue("01123456", Channel.A_PLUS, t1, HALF, w2 - w1, IntervalStatus.MEASURED, IntervalSource.PROFILE,
                      received)
        for (t1, w1), (t2, w2) in zip(points[:48], points[1:49], strict=True)
        if t2 - t1 == HALF
    ]


def test_profile_estimate_and_consumption_from_intervals(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    profile = _profile_of_the_first_day(config, capsys)
    assert len(profile) == 48
    with App.open(config) as app:
        kept = [v for i, v in enumerate(profile) if i not in MISSING]
        assert app.store.write_intervals(kept).accepted == 45

    args = ["-c", str(config), "--meter", "01123456", "--from", "2026-01-01", "--to", "2026-01-01"]
    code, out, _ = run(capsys, "intervals", *args, "--channel", "a_plus", "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["counts"] == {"measured": 45, "incomplete": 0, "estimated": 0, "missing": 3}
    assert [i["local_start"] for i in shown["intervals"] if i["status"] == "missing"] == [
        "2026-01-01T05:00+03:00", "2026-01-01T05:30+03:00", "2026-01-01T06:00+03:00",
    ]
    assert shown["sum_check"] == []  # intervals add up to the registers wherever both are known

    code, out, _ = run(capsys, "consumption", *args, "--step", "day", "--json")
    [day] = json.loads(out)
    assert day["basis"] == "registers" and day["intervals"]["missing"] == 3

    code, out, _ = run(capsys, "estimate", *args, "--json")
    assert code == 0
    [report] = json.loads(out)
    assert report["accepted"] == 3 and report["filled"][0]["method"] == "linear"

    code, out, _ = run(capsys, "intervals", *args, "--channel", "a_plus", "--json")
    shown = json.loads(out)
    estimated = [i for i in shown["intervals"] if i["status"] == "estimated"]
    # the three add up to what the registers say of those 90 minutes, exactly, split evenly
    assert sum(i["wh"] for i in estimated) == sum(profile[i].wh for i in MISSING) == 14_120_000
    assert [i["wh"] for i in estimated] == [4_706_667, 4_706_667, 4_706_666]
    assert {i["method"] for i in estimated} == {"linear"}

    code, out, _ = run(capsys, "consumption", *args, "--step", "day", "--json")
    [day] = json.loads(out)
    assert day["basis"] == "intervals" and day["intervals"] == {
        "measured": 45, "incomplete": 0, "estimated": 3, "missing": 0,
    }
    assert Decimal(day["value"]) * 1000 == sum(v.wh for v in profile)

    code, out, _ = run(capsys, "intervals", *args)
    assert code == 0 and "45 measured, 0 incomplete, 3 estimated, 0 missing" in out
    code, _, err = run(capsys, "intervals", "-c", str(config), "--meter", "nope")
    assert code == 1 and "nope" in err
