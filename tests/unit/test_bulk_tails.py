"""The in-memory tails of a bulk import: after a batch, each series' tail holds, per channel, the
newest accepted reading having that channel, however the batch's readings are ordered."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from amr.core.domain import CHANNELS, StoredReading
from amr.ingest.bulk import _Tail, _TailLoader
from amr.validation import BatchResult, ContextRequest

START = datetime(2026, 1, 1, tzinfo=UTC)


def _reading(meter_id: int, step: int, rng: random.Random) -> StoredReading:
    values = {c: (step * 10 if rng.random() < 0.6 else None) for c in CHANNELS}
    return StoredReading(meter_id, START + timedelta(minutes=30 * step), 0, values, "import", 0, START)


def _expected(readings: list[StoredReading]) -> dict[tuple[int, int], dict[str, datetime]]:
    newest: dict[tuple[int, int], dict[str, datetime]] = {}
    for r in readings:
        held = newest.setdefault((r.meter_id, r.tariff), {})
        for c in CHANNELS:
            if r.values.get(c) is not None and (c.value not in held or held[c.value] < r.ts):
                held[c.value] = r.ts
    return newest


def _tails(loader: _TailLoader) -> dict[tuple[int, int], dict[str, datetime]]:
    return {key: {c.value: r.ts for c, r in tail.last.items()} for key, tail in loader.tails.items()}


@pytest.mark.parametrize("shuffled", [False, True], ids=["in runs", "mixed"])
@pytest.mark.parametrize("seed", range(20))
def test_remember_keeps_the_newest_reading_of_each_channel(seed: int, shuffled: bool) -> None:
    rng = random.Random(seed)
    series = rng.randint(1, 6)
    earlier = [_reading(m, s, rng) for m in range(series) for s in range(rng.randint(0, 4))]
    batch = [_reading(m, s, rng) for m in range(series) for s in range(5, 5 + rng.randint(0, 12))]
    if shuffled:
        rng.shuffle(batch)
    loader = _TailLoader(None, lambda: None)  # type: ignore[arg-type]
    for m in range(series):
        loader.tails[(m, 0)] = _Tail()
    loader.remember(BatchResult(accepted=earlier))
    loader.remember(BatchResult(accepted=batch))
    expected = _expected(earlier + batch)
    assert _tails(loader) == {(m, 0): expected.get((m, 0), {}) for m in range(series)}


def test_remember_leaves_series_without_a_tail_alone() -> None:
    loader = _TailLoader(None, lambda: None)  # type: ignore[arg-type]
    loader.tails[(1, 0)] = _Tail()
    rng = random.Random(1)
    loader.remember(BatchResult(accepted=[_reading(m, s, rng) for m in (1, 2) for s in range(10)]))
    assert set(loader.tails) == {(1, 0)}


class _Store:
    """Answers every context request with what it holds, and records what it was asked."""

    def __init__(self) -> None:
        self.held: dict[tuple[int, int], list[StoredReading]] = {}
        self.asked: list[list[tuple[int, int]]] = []

    def load_context(self, requests: list[ContextRequest]) -> dict[tuple[int, int], list[StoredReading]]:
        self.asked.append([(r.meter_id, r.tariff) for r in requests])
        return {(r.meter_id, r.tariff): self.held.get((r.meter_id, r.tariff), []) for r in requests}


def test_only_a_series_an_earlier_batch_touched_waits_for_the_writes() -> None:
    """New series (a file by meter brings new meters in every batch) are asked for at once; a series an
    earlier batch of the run touched, and that must be asked for again, waits until that batch is written."""
    store, waits = _Store(), []
    loader = _TailLoader(SimpleNamespace(store=store), lambda: waits.append(len(store.asked)))  # type: ignore[arg-type]
    end = START + timedelta(hours=1)
    store.held[(2, 0)] = [StoredReading(2, START, 0, dict.fromkeys(CHANNELS, 10), "import", 0, START)]
    first = [ContextRequest(m, 0, START + timedelta(minutes=30), end) for m in (1, 2)]
    loader.load_context(first)
    assert waits == [] and store.asked == [[(1, 0), (2, 0)]]
    loader.load_context([ContextRequest(m, 0, START, end) for m in (3, 4)])  # the next meters of a file by meter
    assert waits == []
    back_fill = START - timedelta(hours=1)  # before series 2's tail: the store must be asked again
    loader.load_context([ContextRequest(5, 0, START, end), ContextRequest(2, 0, back_fill, back_fill)])
    assert waits == [2] and store.asked[-1] == [(5, 0), (2, 0)]
    loader.invalidate([(3, 0)])  # another process wrote series 3: its tail is dropped, asked again after the writes
    loader.load_context([ContextRequest(3, 0, end, end)])
    assert waits == [2, 3]
