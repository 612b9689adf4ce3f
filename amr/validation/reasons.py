"""Stable reason codes of the validation pipeline (VEE), shown by APIs, exports and the dashboard."""

from __future__ import annotations

import enum


class Reason(str, enum.Enum):
    """Why a reading was refused (or, for `ROLLOVER` and `DUPLICATE`, what was noticed)."""

    LOWER_THAN_PREVIOUS = "lower_than_previous"
    HIGHER_THAN_NEXT = "higher_than_next"
    ROLLOVER = "rollover"
    OVER_CAPACITY = "over_capacity"
    IMPLAUSIBLE_CONSUMPTION = "implausible_consumption"
    FUTURE_TIMESTAMP = "future_timestamp"
    BEFORE_INSTALLATION = "before_installation"
    AFTER_REMOVAL = "after_removal"
    MALFORMED = "malformed"
    UNKNOWN_METER = "unknown_meter"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    # interval data (load profiles): see `amr.validation.intervals`
    NEGATIVE = "negative"
    ABOVE_CAPACITY = "above_capacity"
    SUM_MISMATCH = "sum_mismatch"


DESCRIPTIONS: dict[Reason, tuple[str, str]] = {
    Reason.LOWER_THAN_PREVIOUS: (
        "lower than the previous accepted reading",
        "показание меньше предыдущего принятого",
    ),
    Reason.HIGHER_THAN_NEXT: (
        "higher than the next accepted reading",
        "показание больше следующего принятого",
    ),
    Reason.ROLLOVER: ("register wrapped through zero", "переход счётчика через ноль"),
    Reason.OVER_CAPACITY: ("does not fit the register", "значение не помещается в регистр"),
    Reason.IMPLAUSIBLE_CONSUMPTION: (
        "consumption exceeds what the meter can pass",
        "расход больше, чем может пропустить счётчик",
    ),
    Reason.FUTURE_TIMESTAMP: ("timestamp in the future", "дата показания в будущем"),
    Reason.BEFORE_INSTALLATION: (
        "before the meter was installed",
        "раньше даты установки счётчика",
    ),
    Reason.AFTER_REMOVAL: ("after the meter was removed", "позже даты снятия счётчика"),
    Reason.MALFORMED: ("malformed reading", "некорректное показание"),
    Reason.UNKNOWN_METER: ("no such meter", "счётчик не найден"),
    Reason.DUPLICATE: ("already stored", "показание уже сохранено"),
    Reason.CONFLICT: (
        "a different reading is stored for this time",
        "на это время сохранено другое показание",
    ),
    Reason.NEGATIVE: ("negative interval energy", "отрицательная энергия за интервал"),
    Reason.ABOVE_CAPACITY: (
        "interval energy exceeds what the meter can pass in the interval",
        "энергия за интервал больше, чем может пропустить счётчик",
    ),
    Reason.SUM_MISMATCH: (
        "intervals do not add up to the register delta",
        "сумма интервалов не равна приращению показаний",
    ),
}


def describe(reason: Reason, language: str = "en") -> str:
    """A short human description of a reason code in English ("en") or Russian ("ru")."""
    english, russian = DESCRIPTIONS[reason]
    return russian if language == "ru" else english
