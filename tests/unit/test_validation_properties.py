"""Properties of the pipeline over any arrival order (hypothesis)."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amr.core.domain import CHANNELS, Flag
from amr.validation import Pipeline
from tests.support.builders import NOW, meters, reading
from tests.support.memory import MemoryLoader

# A tiny register (2 digits, 100 kWh) so that wraps happen often.
METERS = {
    m.serial: m
    for m in meters(
        {"serial": "M", "digits": 2, "decimals": 0, "tariffs": 1},
        {"serial": "N", "digits": 2, "decimals": 0, "max_power_kw": 30},
    )
}

values = st.one_of(st.none(), st.integers(min_value=0, max_value=99).map(str))
readings = st.builds(
    lambda meter, hour, a, r, tariff: reading(meter, hour, a, r_plus=r, tariff=tariff),
    st.sampled_from(["M", "N", "X"]),
    st.integers(min_value=0, max_value=30),
    values,
    values,
    st.sampled_from([0, 1]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(readings, max_size=40), st.lists(st.integers(min_value=1, max_value=8), min_size=1, max_size=10)
)
def test_accepted_series_never_decreases_except_across_a_flagged_rollover(incoming, batch_sizes) -> None:  # type: ignore[no-untyped-def]
    loader = MemoryLoader()
    pipeline = Pipeline(METERS, loader, timedelta(minutes=5), now=lambda: NOW)
    position, size_index = 0, 0
    while position < len(incoming):
        size = batch_sizes[size_index % len(batch_sizes)]
        batch = incoming[position : position + size]
        result = pipeline.run(batch)
        statuses = [o.status for o in result.outcomes]
        assert len(statuses) == len(batch)
        assert statuses.count("accepted") == len(result.accepted)
        assert statuses.count("rejected") == len(result.rejected)
        assert all(s in ("accepted", "duplicate", "rejected") for s in statuses)
        assert all(o.reasons for o in result.outcomes if o.status == "rejected")
        loader.apply(result)
        position += size
        size_index += 1

    for meter in METERS.values():
        for tariff in (0, 1):
            series = loader.series(meter.id, tariff)
            for channel in CHANNELS:
                points = [r for r in series if r.values.get(channel) is not None]
                for prev, cur in zip(points, points[1:], strict=False):
                    prev_value, value = prev.values[channel], cur.values[channel]
                    assert prev_value is not None and value is not None
                    if value < prev_value:
                        assert cur.flags & Flag.ROLLOVER, (channel, prev, cur)


@st.composite
def mostly_increasing_runs(draw: st.DrawFn) -> list:  # type: ignore[type-arg]
    """A run of one meter's readings that usually passes (so the bulk path is taken) and sometimes not."""
    start = draw(st.integers(min_value=0, max_value=100))
    kinds = st.sampled_from(["a", "a", "a", "ar", "ar", "ar", "r", "none"])  # channels given; rarely none at all
    steps = draw(st.lists(st.tuples(st.integers(1, 3), st.integers(-2, 12), kinds), min_size=1, max_size=30))
    hour, level, out = start, draw(st.integers(min_value=0, max_value=60)), []
    for gap, rise, kind in steps:
        hour += gap
        level = max(0, level + rise) % 100
        a_plus = str(level) if "a" in kind else None
        out.append(reading("N", hour, a_plus, r_plus=str(level // 2) if "r" in kind else None))
    return out


@settings(max_examples=200, deadline=None)
@given(mostly_increasing_runs(), mostly_increasing_runs())
def test_the_bulk_path_gives_the_same_verdicts_as_judging_one_by_one(first, second) -> None:  # type: ignore[no-untyped-def]
    import amr.validation.pipeline as pipeline_module

    verdicts = []
    for bulk_min in (1, 10**9):
        original = pipeline_module.BULK_MIN
        pipeline_module.BULK_MIN = bulk_min
        try:
            loader = MemoryLoader()
            pipeline = Pipeline(METERS, loader, timedelta(minutes=5), now=lambda: NOW)
            outcomes = []
            for batch in (first, second):
                result = pipeline.run(batch)
                loader.apply(result)
                outcomes.append([(o.status, o.reasons, o.flags) for o in result.outcomes])
            verdicts.append((outcomes, loader.series(METERS["N"].id)))
        finally:
            pipeline_module.BULK_MIN = original
    assert verdicts[0] == verdicts[1]
