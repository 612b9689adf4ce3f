"""One validation pipeline (VEE) for every reading from every source.

A batch is grouped by (meter, tariff); the store loads, in one query per batch, the
accepted readings around each group's time range; then every reading is judged per
channel against its neighbours in time: the last accepted reading before it and the
first after it (late, back-filled readings are common). The pipeline decides; it
writes nothing. `amr.ingest` writes what it decided.
"""

from __future__ import annotations

import operator
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from itertools import repeat
from typing import Any, Literal, Protocol

from amr.core.domain import CHANNELS, SOURCE_TEXT, Channel, Flag, IncomingReading, StoredReading, kwh_from_wh
from amr.core.energy import consumption_wh
from amr.core.gc_policy import paused_gc
from amr.core.meters import Meter
from amr.core.timetext import local_text
from amr.validation.bulk import BULK_MIN, acceptable_in_bulk
from amr.validation.reasons import Reason
from amr.validation.rules import Step, static_reasons, step
from amr.validation.series import Series, with_rollover

Status = Literal["accepted", "duplicate", "rejected"]
SeriesKey = tuple[int, int]
_TS = operator.attrgetter("ts")
_TARIFF = operator.attrgetter("tariff")
_VALUES = operator.attrgetter("values")
_SOURCE = operator.attrgetter("source")
_RECEIVED_AT = operator.attrgetter("received_at")
_FOUR = len(CHANNELS)
_METER = operator.attrgetter("meter")
_ID = operator.attrgetter("id")
_PROBLEMS = operator.attrgetter("problems")


@dataclass(frozen=True, slots=True)
class ContextRequest:
    """Ask the store for the accepted readings of (meter, tariff) around [start, end]."""

    meter_id: int
    tariff: int
    start: datetime
    end: datetime


class ContextLoader(Protocol):
    """What the pipeline needs from a store."""

    def load_context(self, requests: Sequence[ContextRequest]) -> Mapping[SeriesKey, Sequence[StoredReading]]:
        """For each request: accepted readings with start <= ts <= end, plus for every
        channel the last reading before start and the first after end that has it."""
        ...


class _NoEntries(Mapping[Any, Any]):
    """An empty, immutable, hashable mapping: the shared default of outcome fields."""

    def __getitem__(self, key: Any) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[Any]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __hash__(self) -> int:
        return 0


_EMPTY: Mapping[Any, Any] = _NoEntries()


@dataclass(frozen=True, slots=True)
class Outcome:
    """The verdict on one incoming reading."""

    status: Status
    reasons: tuple[Reason, ...] = ()
    messages: tuple[str, ...] = ()
    flags: int = 0
    meter: Meter | None = None
    previous: Mapping[Channel, StoredReading] = _EMPTY
    consumption: Mapping[Channel, int] = _EMPTY
    reading: StoredReading | None = None

    @property
    def message(self) -> str:
        """All messages in one line."""
        return "; ".join(self.messages)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refused reading, to be kept with its reasons and original payload."""

    incoming: IncomingReading
    meter_id: int | None
    reasons: tuple[Reason, ...]
    message: str


@dataclass(slots=True)
class BatchResult:
    """What the pipeline decided for a batch, in input order."""

    outcomes: list[Outcome] = field(default_factory=list)
    accepted: list[StoredReading] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    flag_updates: dict[tuple[int, int, datetime], StoredReading] = field(default_factory=dict)

    def summary(self) -> Summary:
        """Counts of accepted, duplicate, flagged and rejected readings."""
        result = Summary()
        result.add(self)
        return result


@dataclass(slots=True)
class Summary:
    """Running counts over one or more batches."""

    accepted: int = 0
    duplicate: int = 0
    flagged: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    total: int = 0

    def add(self, batch: BatchResult) -> None:
        """Count a batch's outcomes (each distinct outcome once, times how often it occurs: a run
        accepted at once shares one)."""
        outcomes = batch.outcomes
        self.total += len(outcomes)
        times = Counter(map(id, outcomes))
        for outcome in dict(zip(map(id, outcomes), outcomes, strict=True)).values():
            count = times[id(outcome)]
            if outcome.status == "accepted":
                self.accepted += count
                for name in Flag.names(outcome.flags):
                    self.flagged[name] += count
            elif outcome.status == "duplicate":
                self.duplicate += count
            else:
                for reason in outcome.reasons:
                    self.rejected[reason.value] += count

    @property
    def refused(self) -> int:
        """Readings refused (a reading with two reasons counts once)."""
        return self.total - self.accepted - self.duplicate

    def as_dict(self) -> dict[str, object]:
        """The JSON form printed by ``amr import --json``."""
        return {
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "flagged": dict(sorted(self.flagged.items())),
            "rejected": dict(sorted(self.rejected.items())),
            "refused": self.refused,
            "total": self.total,
        }


def _utcnow() -> datetime:
    return datetime.now(UTC)


ROLLOVER = int(Flag.ROLLOVER)
_ROLLOVER_REASONS = (Reason.ROLLOVER,)
_ROLLOVER_MESSAGES = ("a register wrapped through zero",)


def _fmt(channel: Channel, value: int) -> str:
    return f"{kwh_from_wh(value)} {channel.unit}"


def _previous_problem(
    move: Step, meter: Meter, channel: Channel, prev: StoredReading, value: int, tz: tzinfo
) -> tuple[Reason, str]:
    prev_value = prev.values[channel]
    assert prev_value is not None
    was = f"{_fmt(channel, prev_value)} of {local_text(prev.ts, tz)}"
    if move is Step.LOWER:
        return (
            Reason.LOWER_THAN_PREVIOUS,
            f"{channel.label} {_fmt(channel, value)} is lower than the previous accepted reading {was}",
        )
    return (
        Reason.IMPLAUSIBLE_CONSUMPTION,
        f"{channel.label} rose to {_fmt(channel, value)} from {was}: more than "
        f"{meter.max_power_kw} kW × ratio {meter.ratio_at(prev.ts)} can pass in that time",
    )


def _next_problem(
    move: Step, channel: Channel, value: int, nxt: StoredReading, tz: tzinfo
) -> tuple[Reason, str]:
    next_value = nxt.values[channel]
    assert next_value is not None
    then = f"{_fmt(channel, next_value)} of {local_text(nxt.ts, tz)}"
    if move is Step.LOWER:
        return (
            Reason.HIGHER_THAN_NEXT,
            f"{channel.label} {_fmt(channel, value)} is higher than the next accepted reading {then}",
        )
    return (
        Reason.IMPLAUSIBLE_CONSUMPTION,
        f"{channel.label} {_fmt(channel, value)} leaves more consumption until the next reading "
        f"{then} than the meter can pass",
    )


class Pipeline:
    """Validate batches of incoming readings against configured meters and stored series.

    `tz` is the site's time zone: the times in the refusal messages, which people read, are in it.
    """

    def __init__(
        self,
        meters: Mapping[str, Meter],
        loader: ContextLoader,
        clock_tolerance: timedelta = timedelta(minutes=5),
        now: Callable[[], datetime] = _utcnow,
        tz: tzinfo = UTC,
    ) -> None:
        self.meters = meters
        self.loader = loader
        self.clock_tolerance = clock_tolerance
        self.now = now
        self.tz = tz

    def run(self, batch: Sequence[IncomingReading]) -> BatchResult:
        """Judge every reading of `batch`; later readings see earlier accepted ones."""
        with paused_gc():
            return self._run(batch)

    def _run(self, batch: Sequence[IncomingReading]) -> BatchResult:
        now = self.now()
        result = BatchResult(outcomes=[Outcome("rejected")] * len(batch))
        groups = self._plain_groups(batch)
        if groups is None:
            groups = defaultdict(list)
            find, tolerance = self.meters.get, self.clock_tolerance
            for index, reading in enumerate(batch):
                meter = find(reading.meter)
                if meter is None:
                    # a row garbled in its meter cell is malformed first: its own problems name the line and the fix
                    found = [(Reason.MALFORMED, p) for p in reading.problems]
                    found.append((Reason.UNKNOWN_METER, f"no meter with serial {reading.meter!r} is configured"))
                    self._reject(result, index, reading, None, found)
                elif reading.problems or reading.ts is None:
                    problems = static_reasons(reading, meter, now, tolerance, self.tz)
                    self._reject(result, index, reading, meter, problems)
                else:
                    groups[(meter.id, reading.tariff)].append(index)
        if not groups:
            return result
        requests = []
        runs: dict[SeriesKey, list[IncomingReading]] = {}
        for (meter_id, tariff), indices in groups.items():
            run = runs[(meter_id, tariff)] = list(map(batch.__getitem__, indices))
            stamps: list[datetime] = [r.ts for r in run]  # type: ignore[misc]
            if not all(map(operator.le, stamps, stamps[1:])):  # most runs come in time order
                indices.sort(key=lambda i: batch[i].ts)  # type: ignore[arg-type,return-value]
                run = runs[(meter_id, tariff)] = list(map(batch.__getitem__, indices))
                stamps = [r.ts for r in run]  # type: ignore[misc]
            requests.append(ContextRequest(meter_id, tariff, stamps[0], stamps[-1]))
        context = self.loader.load_context(requests)
        latest_allowed = now + self.clock_tolerance
        for key, indices in groups.items():
            series = Series(list(context.get(key, ())))
            run = runs[key]
            meter = self.meters[run[0].meter]
            if len(run) >= BULK_MIN and acceptable_in_bulk(meter, key[1], run, series, latest_allowed):
                self._accept_run(result, meter, indices, run, now)  # the common case: nothing to add to `series`
            else:
                self._judge_run(result, meter, key[1], indices, run, series, now, latest_allowed)
        return result

    def _plain_groups(self, batch: Sequence[IncomingReading]) -> dict[SeriesKey, list[int]] | None:
        """The positions of each series' readings (series in order of first appearance) when every
        reading is of a known meter, has a time and no problems; None otherwise (judge one by one)."""
        meters = list(map(self.meters.get, map(_METER, batch)))
        # all(meters): no None among them, without calling Meter.__eq__ for each as `None in` would
        if not all(meters) or any(map(_PROBLEMS, batch)) or None in list(map(_TS, batch)):
            return None
        found: defaultdict[SeriesKey, list[int]] = defaultdict(list)
        keys = map(found.__getitem__, zip(map(_ID, meters), map(_TARIFF, batch), strict=True))
        deque(map(list.append, keys, range(len(batch))), maxlen=0)  # a series' list made as it first appears
        return found

    def _judge_run(
        self,
        result: BatchResult,
        meter: Meter,
        tariff: int,
        indices: list[int],
        run: list[IncomingReading],
        series: Series,
        now: datetime,
        latest_allowed: datetime,
    ) -> None:
        """A run that failed the bulk test: its halves are tried again (most of a long run is usually
        fine), down to short pieces judged reading by reading. Each piece sees every reading accepted
        before it, so the verdicts are those of judging the whole run one by one."""
        if len(run) >= 2 * BULK_MIN:
            half = len(run) // 2
            for part in (slice(None, half), slice(half, None)):
                piece = run[part]
                if acceptable_in_bulk(meter, tariff, piece, series, latest_allowed):
                    self._accept_run(result, meter, indices[part], piece, now)
                    for stored in result.accepted[len(result.accepted) - len(piece) :]:
                        series.add(stored)
                else:
                    self._judge_run(result, meter, tariff, indices[part], piece, series, now, latest_allowed)
            return
        for index, reading in zip(indices, run, strict=True):
            problems = static_reasons(reading, meter, now, self.clock_tolerance, self.tz)
            if problems:
                self._reject(result, index, reading, meter, problems)
            else:
                self._judge(result, index, reading, series, now)

    def _accept_run(
        self, result: BatchResult, meter: Meter, indices: list[int], run: list[IncomingReading], now: datetime
    ) -> None:
        value_maps: list[dict[Channel, int | None]] = list(map(_VALUES, run))
        if not all(map(_FOUR.__eq__, map(len, value_maps))):
            value_maps = [v if len(v) == _FOUR else {c: v.get(c) for c in CHANNELS} for v in value_maps]
        received = list(map(_RECEIVED_AT, run))
        if None in received:
            received = [at or now for at in received]
        result.accepted.extend(
            map(
                StoredReading,
                repeat(meter.id),
                map(_TS, run),
                map(_TARIFF, run),
                value_maps,
                map(SOURCE_TEXT.__getitem__, map(_SOURCE, run)),
                repeat(0),
                received,
            )
        )
        deque(map(result.outcomes.__setitem__, indices, repeat(Outcome("accepted", meter=meter))), maxlen=0)

    def _reject(
        self,
        result: BatchResult,
        index: int,
        reading: IncomingReading,
        meter: Meter | None,
        problems: list[tuple[Reason, str]],
        previous: Mapping[Channel, StoredReading] = _EMPTY,
    ) -> None:
        reasons = tuple(dict.fromkeys(r for r, _ in problems))
        messages = tuple(m for _, m in problems)
        result.outcomes[index] = Outcome("rejected", reasons, messages, meter=meter, previous=previous)
        result.rejected.append(
            Rejection(reading, None if meter is None else meter.id, reasons, "; ".join(messages))
        )

    def _judge(
        self, result: BatchResult, index: int, reading: IncomingReading, series: Series, now: datetime
    ) -> None:
        meter = self.meters[reading.meter]
        ts = reading.ts
        assert ts is not None
        values = {c: reading.values.get(c) for c in CHANNELS}
        existing = series.by_ts.get(ts)
        if existing is not None:
            if all(existing.values.get(c) == values[c] for c in CHANNELS):
                result.outcomes[index] = Outcome(
                    "duplicate", (Reason.DUPLICATE,), meter=meter, reading=existing
                )
            else:
                shown = ", ".join(
                    f"{c.label} {_fmt(c, v)}" for c in CHANNELS if (v := existing.values.get(c)) is not None
                )
                self._reject(
                    result,
                    index,
                    reading,
                    meter,
                    [(Reason.CONFLICT, f"a reading for {local_text(ts, self.tz)} is already stored: {shown}")],
                )
            return
        problems: list[tuple[Reason, str]] = []
        previous: dict[Channel, StoredReading] = {}
        consumption: dict[Channel, int] = {}
        wrapped = False
        followers: list[StoredReading] = []
        for channel in CHANNELS:
            value = values[channel]
            if value is None:
                continue
            prev, nxt = series.around(channel, ts)
            if prev is not None:
                prev_value: int = prev.values[channel]  # type: ignore[assignment]
                previous[channel] = prev
                move = step(meter, prev.ts, prev_value, ts, value)
                if move is Step.OK or move is Step.WRAP:
                    wrap = move is Step.WRAP
                    wrapped |= wrap
                    consumption[channel] = consumption_wh(meter, prev.ts, prev_value, ts, value, wrap)
                else:
                    problems.append(_previous_problem(move, meter, channel, prev, value, self.tz))
            if nxt is not None:
                next_value: int = nxt.values[channel]  # type: ignore[assignment]
                move = step(meter, ts, value, nxt.ts, next_value)
                if move is Step.OK or move is Step.WRAP:
                    if nxt not in followers:
                        followers.append(nxt)
                else:
                    problems.append(_next_problem(move, channel, value, nxt, self.tz))
        if problems:
            self._reject(result, index, reading, meter, problems, previous)
            return
        flags = ROLLOVER if wrapped else 0
        stored = StoredReading(
            meter.id, ts, reading.tariff, values, SOURCE_TEXT[reading.source], flags, reading.received_at or now
        )
        series.add(stored)
        result.accepted.append(stored)
        for follower in followers:
            self._reflag(result, meter, series, follower)
        if wrapped:
            result.outcomes[index] = Outcome(
                "accepted", _ROLLOVER_REASONS, _ROLLOVER_MESSAGES, flags, meter, previous, consumption, stored
            )
        else:
            result.outcomes[index] = Outcome("accepted", (), (), 0, meter, previous, consumption, stored)

    def _reflag(self, result: BatchResult, meter: Meter, series: Series, reading: StoredReading) -> None:
        """Recompute a later reading's rollover flag after a reading was inserted before it."""
        current = series.by_ts[reading.ts]
        wrapped = False
        for channel in CHANNELS:
            value = current.values.get(channel)
            prev = series.previous(channel, current.ts) if value is not None else None
            if prev is not None and value is not None:
                prev_value = prev.values[channel]
                assert prev_value is not None
                wrapped |= step(meter, prev.ts, prev_value, current.ts, value) is Step.WRAP
        flags = with_rollover(current.flags, wrapped)
        if flags != current.flags:
            updated = series.set_flags(current, flags)
            key = (updated.meter_id, updated.tariff, updated.ts)
            for position, accepted in enumerate(result.accepted):
                if (accepted.meter_id, accepted.tariff, accepted.ts) == key:
                    result.accepted[position] = updated
                    return
            result.flag_updates[key] = updated
