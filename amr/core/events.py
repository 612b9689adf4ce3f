"""Meter events: one normalised model for what every protocol's journal says, and what the head-end did.

A `MeterEvent` is one thing that happened at a meter: its serial, when (UTC), a stable `code`
from `CATALOGUE` (``power.off``, ``cover.opened``, ``clock.corrected``...), the severity, the
text in Russian and English, and the raw record it was read from (bytes as hex, the protocol's
own code), so nothing of the original is lost. An event is stored once however often the
journal is read: the store's key is (meter, time, code, detail).

Codes are grouped by category (the part before the dot). Two categories raise an alarm when
configured (`ALARM_CATEGORIES`): ``tamper`` (cover or terminal cover opened, magnetic field) and
``power`` (the meter or a phase lost its supply).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


class Severity(str, enum.Enum):
    """How much an event matters to a dispatcher."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class EventKind:
    """One code of the catalogue: its severity, category and texts."""

    code: str
    severity: Severity
    ru: str
    en: str

    @property
    def category(self) -> str:
        """The group of the code: ``power``, ``phase``, ``tamper``, ``clock``..."""
        return self.code.partition(".")[0]


def _kinds(*kinds: EventKind) -> dict[str, EventKind]:
    return {k.code: k for k in kinds}


W, N, C = Severity.WARNING, Severity.INFO, Severity.CRITICAL  # warning, notice (info), critical
CATALOGUE: dict[str, EventKind] = _kinds(
    EventKind("power.off", W, "Отключение питания счётчика", "Meter power off"),
    EventKind("power.on", N, "Включение питания счётчика", "Meter power on"),
    EventKind("power.phase_off", W, "Пропадание напряжения фазы", "Phase voltage lost"),
    EventKind("power.phase_on", N, "Восстановление напряжения фазы", "Phase voltage restored"),
    EventKind("tamper.cover_opened", C, "Вскрытие крышки счётчика", "Meter cover opened"),
    EventKind("tamper.cover_closed", N, "Закрытие крышки счётчика", "Meter cover closed"),
    EventKind("tamper.terminal_opened", C, "Вскрытие клеммной крышки", "Terminal cover opened"),
    EventKind("tamper.terminal_closed", N, "Закрытие клеммной крышки", "Terminal cover closed"),
    EventKind("tamper.magnetic", C, "Воздействие магнитного поля", "Magnetic field applied"),
    EventKind("tamper.magnetic_end", N, "Окончание воздействия магнитного поля", "Magnetic field removed"),
    EventKind("clock.changed", N, "Время счётчика изменено (журнал счётчика)", "Meter time changed (meter journal)"),
    EventKind("clock.corrected", N, "Время счётчика скорректировано", "Meter clock corrected"),
    EventKind("clock.set", W, "Время счётчика установлено", "Meter clock set"),
    EventKind("clock.refused", W, "Счётчик отказал в коррекции времени", "Meter refused the clock correction"),
    EventKind("clock.uncorrectable", W, "Уход часов не может быть исправлен", "Clock drift cannot be corrected"),
    EventKind("access.denied", W, "Попытка доступа с неверным паролем", "Access with a wrong password"),
    EventKind("voltage.high", W, "Превышение напряжения", "Overvoltage"),
    EventKind("voltage.low", W, "Снижение напряжения", "Undervoltage"),
    EventKind("voltage.normal", N, "Напряжение в норме", "Voltage back to normal"),
    EventKind("diagnostic.error", W, "Ошибка самодиагностики", "Self-diagnosis error"),
    EventKind("other", N, "Событие счётчика", "Meter event"),
)
ALARM_CATEGORIES = frozenset({"tamper", "power"})


def kind_of(code: str) -> EventKind:
    """The catalogue's entry of `code` (``other`` for a code it does not know)."""
    return CATALOGUE.get(code) or CATALOGUE["other"]


@dataclass(frozen=True, slots=True)
class MeterEvent:
    """One event of one meter, normalised; `raw` keeps the record as the meter sent it."""

    serial: str
    ts: datetime  # UTC, as the meter's clock (or the head-end's, for its own actions) put it
    code: str
    raw: dict[str, Any] = field(default_factory=dict)
    source: str = "meter"  # "meter" (its journal) or "head-end" (what the collector did or saw)
    detail: str = ""  # e.g. "phase 2", "shift +38 s"

    def __post_init__(self) -> None:
        if self.ts.tzinfo is None:
            raise ValueError("an event's time must be timezone-aware")

    @property
    def kind(self) -> EventKind:
        """The catalogue's entry of the code."""
        return kind_of(self.code)

    @property
    def severity(self) -> Severity:
        """The code's severity."""
        return self.kind.severity

    def text(self, language: str = "ru") -> str:
        """The event for people, with its detail: «Пропадание напряжения фазы (phase 2)»."""
        base = self.kind.ru if language == "ru" else self.kind.en
        return f"{base} ({self.detail})" if self.detail else base

    @property
    def alarming(self) -> bool:
        """True for tampering and power loss (the categories an alarm is raised for)."""
        return self.kind.category in ALARM_CATEGORIES and self.severity is not Severity.INFO

    def utc(self) -> datetime:
        """The time in UTC."""
        return self.ts.astimezone(UTC)


__all__ = ["ALARM_CATEGORIES", "CATALOGUE", "EventKind", "MeterEvent", "Severity", "kind_of"]
