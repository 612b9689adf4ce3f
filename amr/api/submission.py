"""Readings typed in by people: parse the cabinet's form, judge it with the one VEE pipeline,
store it (all zones or none), or keep it for moderation; verdicts in Russian or English.

A submission is all or nothing: when one tariff zone is refused, the refused zones are kept
in the refused-readings queue (nothing is lost) and the valid ones are not stored
(``not_stored``), so the customer corrects the form and sends it again whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any, Literal

from sqlalchemy import Connection

from amr.api.context import ApiContext
from amr.api.errors import ApiError, Lang, invalid
from amr.api.present import human_time, kwh, local, parse_day, parse_moment, reading_id, unit_text
from amr.api.schemas import PreviousReading, ReadingInput, ReasonItem, SubmitResult, TariffVerdict
from amr.core.domain import (
    CHANNELS,
    Channel,
    Flag,
    IncomingReading,
    Source,
    StoredReading,
    ValueTooLarge,
    wh_from_kwh,
)
from amr.core.meters import Meter
from amr.errors import InputError
from amr.store import Session
from amr.store.audit_trail import audit
from amr.store.pending import NewPending
from amr.store.readings_api import previous_reading
from amr.validation import BatchResult, Outcome, Reason, describe

NOON = time(12)


@dataclass(frozen=True, slots=True)
class Form:
    """A parsed form: one meter, one time, one channel, a value (Wh) per tariff zone."""

    meter: Meter
    ts: datetime
    channel: Channel
    values: dict[int, int]
    raw: dict[str, str]


def parse_when(text: str | None, ctx: ApiContext) -> datetime:
    """The reading's time: now by default; a date means now if it is today, else noon of that day."""
    now = ctx.now()
    if not text:
        return now
    tz = ctx.tz
    if len(text) == 10:
        day = parse_day(text, "date")
        if day == now.astimezone(tz).date():
            return now
        return datetime.combine(day, NOON, tz).astimezone(UTC)
    return parse_moment(text, "date", tz)


def parse_form(ctx: ApiContext, body: ReadingInput, meter: Meter) -> Form:
    """Check the zones and values of a form; 422 naming the field otherwise."""
    zones = {"total": 0, "0": 0, **{str(t): t for t in range(1, meter.tariffs + 1)}}
    values: dict[int, int] = {}
    for key, text in body.values.items():
        where = f"values.{key}"
        tariff = zones.get(key.strip().lower())
        if tariff is None:
            names = ", ".join(["0 (total)", *[str(t) for t in range(1, meter.tariffs + 1)]])
            raise invalid(
                where,
                f"meter {meter.serial} has no tariff zone {key!r}; use {names}",
                f"у счётчика {meter.serial} нет тарифной зоны {key!r}; используйте {names}",
                code="unknown_tariff_zone",
            )
        if tariff in values:
            raise invalid(
                where,
                "the zone is given twice; give it once",
                "зона указана дважды; укажите её один раз",
                code="duplicate_tariff_zone",
            )
        try:
            wh = wh_from_kwh(text)
        except ValueTooLarge as exc:
            raise invalid(
                where,
                str(exc),
                f"{text} — слишком большое число: его не вмещает ни один регистр счётчика",
                code="malformed",
            ) from None
        except InputError as exc:
            raise invalid(
                where,
                str(exc),
                f"{text!r} — неверное число; пишите цифрами 0-9 со знаком и одной точкой, не больше трёх знаков "
                "после точки, например 1234.567",
                code="malformed",
            ) from None
        if wh < 0:
            raise invalid(
                where,
                "is negative; registers count up from 0",
                "отрицательное значение; счётчик считает от нуля",
                code="malformed",
            )
        values[tariff] = wh
    return Form(meter, parse_when(body.date, ctx), body.channel, values, dict(body.values))


def batch_of(form: Form, source: Source, received_at: datetime, payload: dict[str, Any]) -> list[IncomingReading]:
    """One incoming reading per tariff zone."""
    return [
        IncomingReading(
            meter=form.meter.serial,
            ts=form.ts,
            tariff=tariff,
            values={c: (wh if c is form.channel else None) for c in CHANNELS},
            source=source,
            payload={**payload, "tariff": tariff},
            received_at=received_at,
        )
        for tariff, wh in sorted(form.values.items())
    ]


def judge_and_store(
    session: Session, ctx: ApiContext, batch: list[IncomingReading], actor: str
) -> tuple[BatchResult, bool]:
    """In the caller's write transaction, under the batch's series locks: judge the batch and store it,
    or, when any reading is refused, keep only the refusals. Every stored reading gets an audit
    record naming `actor` (who typed it in)."""
    result = ctx.app.ingestor.judge(session, batch)
    refused = any(o.status == "rejected" for o in result.outcomes)
    session.write(BatchResult(outcomes=result.outcomes, rejected=result.rejected) if refused else result)
    if not refused:
        _audit_stored(session.conn, ctx, result, actor)
    return result, not refused


def store_all_or_none(ctx: ApiContext, batch: list[IncomingReading], actor: str) -> tuple[BatchResult, bool]:
    """Judge and store a batch in one transaction (`judge_and_store`); True when it was stored."""
    return ctx.store.write(lambda session: judge_and_store(session, ctx, batch, actor))


def _audit_stored(conn: Connection, ctx: ApiContext, result: BatchResult, actor: str) -> None:
    serials = {m.id: m.serial for m in ctx.meters.values()}
    now = ctx.now()
    for reading in result.accepted:
        subject = f"reading/{reading_id(serials[reading.meter_id], reading.tariff, reading.ts)}"
        values = {c.value: reading.values.get(c) for c in CHANNELS if reading.values.get(c) is not None}
        details = {
            "meter": serials[reading.meter_id],
            "tariff": reading.tariff,
            "ts": reading.ts.isoformat(),
            "source": reading.source,
            "values_wh": values,
        }
        audit(conn, now, actor, "submit_reading", subject, "", details)


def preview(ctx: ApiContext, batch: list[IncomingReading]) -> BatchResult:
    """Judge without storing (the cabinet's «Рассчитать»)."""
    return ctx.app.ingestor.preview(batch)


def _reason_text(
    reason: Reason, form: Form, tariff: int, previous: StoredReading | None, ctx: ApiContext, lang: Lang
) -> str:
    channel = form.channel
    unit = unit_text(channel, lang)
    value = kwh(form.values[tariff])
    zone = "" if tariff == 0 else (f"Т{tariff}: " if lang == "ru" else f"T{tariff}: ")
    if reason is Reason.LOWER_THAN_PREVIOUS and previous is not None:
        before = kwh(previous.values.get(channel))
        when = human_time(previous.ts, ctx.tz, lang)
        if lang == "ru":
            return (
                f"{zone}показание {channel.label} {value} {unit} меньше предыдущего принятого {before} {unit} от {when}"
            )
        return (
            f"{zone}{channel.label} {value} {unit} is lower than the previous accepted reading "
            f"{before} {unit} of {when}"
        )
    if reason is Reason.FUTURE_TIMESTAMP:
        when = human_time(form.ts, ctx.tz, lang)
        return f"{zone}дата показания {when} ещё не наступила" if lang == "ru" else f"{zone}{when} is in the future"
    text = describe(reason, lang)
    return zone + (text[:1].upper() + text[1:] if not zone else text)


Mode = Literal["preview", "stored", "withheld", "pending"]


def verdicts(
    ctx: ApiContext, form: Form, result: BatchResult, lang: Lang, mode: Mode, pending_ids: list[int] | None = None
) -> list[TariffVerdict]:
    """The verdict per tariff zone, with the previous reading and the consumption since it.

    `mode`: a preview (nothing stored), stored, withheld (another zone was refused) or pending.
    """
    found = []
    tariffs = sorted(form.values)
    for index, (tariff, outcome) in enumerate(zip(tariffs, result.outcomes, strict=True)):
        previous = outcome.previous.get(form.channel)
        if previous is None and outcome.status != "accepted":
            previous = previous_reading(ctx.store, form.meter.id, tariff, form.ts, form.channel)
        status = _status(outcome, mode)
        reasons = [r for r in outcome.reasons if r is not Reason.DUPLICATE or outcome.status == "duplicate"]
        items = [ReasonItem(code=r.value, message=_reason_text(r, form, tariff, previous, ctx, lang)) for r in reasons]
        consumption = outcome.consumption.get(form.channel)
        found.append(
            TariffVerdict(
                tariff=tariff,
                value=kwh(form.values[tariff]) or "0.000",
                status=status,
                previous=None
                if previous is None
                else PreviousReading(
                    value=kwh(previous.values.get(form.channel)) or "0.000",
                    timestamp=previous.ts,
                    local_time=local(previous.ts, ctx.tz),
                    source=previous.source,
                ),
                consumption=kwh(consumption),
                flags=Flag.names(outcome.flags),
                reasons=items,
                message="; ".join(i.message for i in items if outcome.status == "rejected"),
                detail=outcome.message,
                id=reading_id(form.meter.serial, tariff, form.ts)
                if mode == "stored" and status == "accepted"
                else None,
                pending_id=pending_ids[index] if pending_ids else None,
            )
        )
    return found


def _status(outcome: Outcome, mode: Mode) -> Literal["accepted", "duplicate", "rejected", "pending", "not_stored"]:
    if outcome.status == "rejected":
        return "rejected"
    if mode == "pending":
        return "pending"
    if outcome.status == "duplicate":
        return "duplicate"
    return "not_stored" if mode == "withheld" else "accepted"


def result_of(form: Form, readings: list[TariffVerdict], ctx: ApiContext) -> SubmitResult:
    """The answer body for a judged form."""
    statuses = {v.status for v in readings}
    overall = next((s for s in ("rejected", "pending", "accepted") if s in statuses), "duplicate")
    return SubmitResult(
        meter=form.meter.serial,
        timestamp=form.ts,
        local_time=local(form.ts, ctx.tz),
        channel=form.channel,
        unit=form.channel.unit,
        status=overall,
        readings=readings,
    )


def submit_form(
    ctx: ApiContext, form: Form, source: Source, actor: str, lang: Lang, payload: dict[str, Any]
) -> tuple[int, SubmitResult]:
    """Store a form (201), keep it for moderation (202), or refuse it (`ApiError` 422)."""
    now = ctx.now()
    batch = batch_of(form, source, now, {**payload, "submitted_by": actor})
    if source.value in ctx.api.moderated_sources:
        judged = preview(ctx, batch)
        if not any(o.status == "rejected" for o in judged.outcomes):
            ids = ctx.pending.add(
                [
                    NewPending(
                        form.meter.serial,
                        form.meter.id,
                        r.ts or form.ts,
                        r.tariff,
                        dict(r.values),
                        source.value,
                        r.payload,
                    )
                    for r in batch
                ],
                actor,
                now,
            )
            readings = verdicts(ctx, form, judged, lang, "pending", ids)
            _count(ctx, source, readings)
            return 202, result_of(form, readings, ctx)
    result, stored = store_all_or_none(ctx, batch, actor)
    readings = verdicts(ctx, form, result, lang, "stored" if stored else "withheld")
    _count(ctx, source, readings)
    if not stored:
        raise localized_refusal(readings, lang)
    return 201, result_of(form, readings, ctx)


def localized_refusal(readings: list[TariffVerdict], lang: Lang) -> ApiError:
    """422 whose message (in `lang`; the other language falls back to it) names what was wrong."""
    refused = [v for v in readings if v.status == "rejected"]
    code = refused[0].reasons[0].code if refused and refused[0].reasons else "rejected"
    text = "; ".join(v.message for v in refused if v.message)
    text = text or ("показание отклонено" if lang == "ru" else "the reading was refused")
    return ApiError(422, code, text, text, readings=readings)


def _count(ctx: ApiContext, source: Source, readings: list[TariffVerdict]) -> None:
    for verdict in readings:
        ctx.metrics.count_reading(source.value, verdict.status, [r.code for r in verdict.reasons])
