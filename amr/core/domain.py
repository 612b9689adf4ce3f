"""The domain's vocabulary: channels, tariffs, sources, flags and readings.

Energy is kept exact: every channel value is an integer number of Wh (active) or
varh (reactive) at the primary side of the instrument transformers. Conversion to
and from kWh/kvarh happens only at the edges (`wh_from_kwh`, `kwh_from_wh`).
Timestamps are timezone-aware UTC.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from amr.errors import InputError

WH_PER_KWH = 1000


class Channel(str, enum.Enum):
    """The four cumulative energy registers of a meter."""

    A_PLUS = "a_plus"  # active import, kWh
    A_MINUS = "a_minus"  # active export, kWh
    R_PLUS = "r_plus"  # reactive forward, kvarh
    R_MINUS = "r_minus"  # reactive reverse, kvarh

    @property
    def unit(self) -> str:
        """The unit shown at the edges: kWh for active channels, kvarh for reactive ones."""
        return "kWh" if self in (Channel.A_PLUS, Channel.A_MINUS) else "kvarh"

    @property
    def label(self) -> str:
        """The customary short name: A+, A-, R+, R-."""
        return {"a_plus": "A+", "a_minus": "A-", "r_plus": "R+", "r_minus": "R-"}[self.value]


CHANNELS: tuple[Channel, ...] = tuple(Channel)

TARIFF_TOTAL = 0
TARIFFS: tuple[int, ...] = (0, 1, 2, 3, 4)


class Source(str, enum.Enum):
    """Where a reading came from."""

    MODBUS = "askue:modbus"
    SERIAL = "askue:serial"
    MQTT = "askue:mqtt"
    DLMS = "askue:dlms"
    WEB = "web"
    MOBILE = "mobile"
    OPERATOR = "operator"
    IMPORT = "import"

    @property
    def is_manual(self) -> bool:
        """True for readings typed in by a person."""
        return self in (Source.WEB, Source.MOBILE, Source.OPERATOR)


SOURCE_TEXT: dict[Source, str] = {s: s.value for s in Source}
"""Source → its stored text, for hot loops (faster than `.value`)."""


class Flag(enum.IntFlag):
    """Marks on an accepted reading, stored as a bit mask."""

    NONE = 0
    ROLLOVER = 1  # a register wrapped through zero before this reading
    ESTIMATED = 2  # filled in by estimation, not measured
    OVERRIDDEN = 4  # refused by validation, then accepted by a dispatcher

    @classmethod
    def names(cls, value: int) -> list[str]:
        """The lower-case names of the flags set in `value`, e.g. ``["rollover"]``."""
        return list(_flag_names(value))

    @classmethod
    def parse(cls, names: list[str]) -> Flag:
        """The mask for flag names such as ``["rollover"]``."""
        result = cls.NONE
        for name in names:
            result |= cls[name.upper()]
        return result


@functools.cache
def _flag_names(value: int) -> tuple[str, ...]:
    return tuple(f.name.lower() for f in Flag if f and f.name and value & f)


Values = dict[Channel, int | None]
"""Channel → value in Wh/varh at the primary side; None when the meter did not report it."""


class ValueTooLarge(InputError):
    """A value no meter register (and no store column) can hold."""


MAX_WH = 2**63 - 1
"""The largest value a store column holds (a signed 64-bit integer); far beyond any register."""

NUMBER_FORM = "digits 0-9 with an optional sign and one decimal point, e.g. 1234.567"
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_INTEGER = re.compile(r"[+-]?[0-9]+")


def wh_from_kwh(value: Decimal | str | int) -> int:
    """Exact Wh from kWh; raises `InputError` when the value is not a plain decimal number
    (ASCII digits, optional sign and decimal point: no exponent, no other scripts' digits, no
    ``_``), has finer resolution than 1 Wh, or is too large for any register."""
    if isinstance(value, Decimal):
        dec = value
    else:
        text = str(value).strip()
        if len(text) > 40 or not _NUMBER.fullmatch(text):
            raise InputError(f"{value!r} is not a number; write {NUMBER_FORM}")
        dec = Decimal(text)
    if not dec.is_finite():
        raise InputError(f"{value!r} is not a finite number; write {NUMBER_FORM}")
    if dec.adjusted() > 18:
        raise ValueTooLarge(f"{value} is too large: no meter register holds it")
    wh = dec * WH_PER_KWH
    if wh != wh.to_integral_value():
        raise InputError(f"{value} has more than 3 decimals; values are kept exactly to 1 Wh (0.001 kWh)")
    if abs(wh) > MAX_WH:
        raise ValueTooLarge(f"{value} is too large: no meter register holds it")
    return int(wh)


def parse_int(text: str) -> int:
    """A whole number written in ASCII digits with an optional sign; `InputError` otherwise
    (Python's own `int` also takes other scripts' digits, ``_`` and spaces)."""
    stripped = text.strip()
    if len(stripped) > 20 or not _INTEGER.fullmatch(stripped):
        raise InputError(f"{text!r} is not a whole number; write ASCII digits 0-9, e.g. 2")
    return int(stripped)


def kwh_from_wh(value: int) -> Decimal:
    """kWh (or kvarh) as an exact decimal with three places."""
    return (Decimal(value) / WH_PER_KWH).quantize(Decimal("0.001"))


def utc(dt: datetime) -> datetime:
    """`dt` converted to UTC; naive datetimes are refused."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise InputError(f"timestamp {dt.isoformat()} has no UTC offset; add one, e.g. +03:00")
    return dt.astimezone(UTC)


Payload = dict[str, Any]
"""The original input of a reading, kept with it when it is refused."""


@dataclass(slots=True, init=False, eq=False)
class IncomingReading:
    """A reading as it arrives, before validation.

    `values` are Wh/varh at the primary side. `problems` carries parse errors found
    before the pipeline (e.g. a malformed CSV cell); such a reading is refused as
    `malformed`. `payload` is the original input, kept with a refused reading; it may be
    given as a function that builds it, called the first time it is asked for (most
    readings are accepted and their payload never read: a file's rows keep only their cells).
    Treated as immutable (not frozen only because frozen dataclasses are slow to build).
    """

    meter: str
    ts: datetime | None
    tariff: int
    values: Values
    source: Source
    _payload: Payload | Callable[[], Payload] = field(repr=False)
    problems: tuple[str, ...] = ()
    received_at: datetime | None = None

    def __init__(
        self,
        meter: str,
        ts: datetime | None,
        tariff: int,
        values: Values,
        source: Source,
        payload: Payload | Callable[[], Payload] | None = None,
        problems: tuple[str, ...] = (),
        received_at: datetime | None = None,
    ) -> None:
        self.meter = meter
        self.ts = ts
        self.tariff = tariff
        self.values = values
        self.source = source
        self._payload = {} if payload is None else payload
        self.problems = problems
        self.received_at = received_at

    @property
    def payload(self) -> Payload:
        """The original input (built on first use when it was given as a function)."""
        found = self._payload
        if not isinstance(found, dict):
            found = self._payload = found()
        return found

    def __repr__(self) -> str:
        return (
            f"IncomingReading(meter={self.meter!r}, ts={self.ts!r}, tariff={self.tariff!r}, values={self.values!r}, "
            f"source={self.source!r}, payload={self.payload!r}, problems={self.problems!r}, "
            f"received_at={self.received_at!r})"
        )

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, IncomingReading)
        return (
            self.meter == other.meter
            and self.ts == other.ts
            and self.tariff == other.tariff
            and self.values == other.values
            and self.source == other.source
            and self.payload == other.payload
            and self.problems == other.problems
            and self.received_at == other.received_at
        )

    __hash__ = None  # type: ignore[assignment]


@dataclass(slots=True)
class StoredReading:
    """An accepted reading as kept in the store (treated as immutable)."""

    meter_id: int
    ts: datetime
    tariff: int
    values: Values
    source: str
    flags: int
    received_at: datetime

    def value(self, channel: Channel) -> int | None:
        """The value of one channel, or None when absent."""
        return self.values.get(channel)
