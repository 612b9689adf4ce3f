"""MQTT payloads → `MeterValues`: pure decoding, no I/O. A bus's ``payload`` (`MqttBusSettings`) picks the format.

``amr``, the project's own JSON, one meter per message::

    {"meter": "0012345678",              # serial or address; else the topic's first + segment
     "ts": "2026-01-01T00:00:00+03:00",  # meter time, ISO 8601 with offset or epoch seconds; optional
     "unit": "kWh",                      # kWh (kWh/kvarh, default), Wh (Wh/varh) or MWh (MWh/Mvarh)
     "tariffs": {"0": {"a_plus": "1234.567", "a_minus": "0", "r_plus": 321.5, "r_minus": null},
                 "1": {"a_plus": "1000.123"}}}

  or flat, one zone: ``{"meter": "...", "ts": "...", "tariff": 0, "a_plus": "1234.567", "R+": 3.5}``.
  Channels: ``a_plus a_minus r_plus r_minus`` or ``A+ A- R+ R-``; values: decimal strings or JSON
  numbers (read as exact decimals) in whole Wh (≤ 3 decimals in kWh), ``null`` = not reported.
  Any other key is an error.

``mapping``: any JSON read through the bus's ``mapping``, source → target, e.g.
  ``{"ENERGY.Total" = "a_plus", "ENERGY.T1" = "a_plus@1", "ENERGY.Exp" = "a_minus:Wh",
  "dev.id" = "serial", "Time" = "time"}``. A source is a dotted path (list items by index,
  ``data.0.v``) or ``+`` / ``+2``: the topic segment under the first / second ``+`` of the
  subscribed filter. A target is ``serial``, ``time`` or ``<channel>[@<tariff 0..4>][:<unit>]``
  (Wh kWh MWh / varh kvarh Mvarh; default kWh / kvarh; finer than 1 Wh is rounded). Without a
  serial source the first ``+`` segment names the meter.

``tasmota-sml``: Tasmota's Smart Meter Interface on ``tele/<device>/SENSOR``, e.g.
  ``{"Time": "2026-01-01T12:00:00", "SML": {"Total_in": 1234.5678, "Total_out": 0.5, "Power_curr": 420}}``.
  Each object with energy keys is a meter: ``Total_in``/``E_in`` → A+, ``Total_out``/``E_out`` → A-,
  OBIS-named ``1_8_0``..``4_8_4`` (or ``1.8.1``, ``1-0:2.8.0``) → channel and tariff, suffix
  ``_T1``..``_T4`` → tariff; also Tasmota's energy monitoring: ``ENERGY.Total`` → A+ and
  ``ENERGY.ExportActive`` → A-, their arrays ``TotalTariff``/``ExportTariff`` → tariff zones 1..n,
  and the form before Tasmota 8.3.1.2, ``"Total": [total, T1, T2]`` (the total, then the zones).
  kWh/kvarh, rounded to whole Wh as `amr.protocols.units.to_wh` does (Tasmota prints 4 decimals).
  Named by a mapping ``serial`` source, ``Meter_id``/``Meter_number``, ``<device>/<object>``, or
  ``<device>`` for a single meter.
  A ``Time`` without offset is read in `tz` (without `tz` the receive time is used). A message
  without any energy object from a device that is not a configured meter (a thermometer on the
  same ``tele/+/SENSOR`` filter) is no reading: `decode` returns nothing for it and counts it in
  `PayloadDecoder.ignored` by topic.

Names from payload or topic are looked up among the meters' serials, then addresses; a name
matching none stays the serial (refused as ``unknown_meter`` downstream).

`PayloadDecoder.decode` never raises. An unreadable message, or a wrong meter/ts/unit, gives
its tariffs (or tariff 0) with no values; a bad value (NaN, infinity, negative, not a number,
finer than 1 Wh) empties its zone. Validation refuses an empty reading as ``malformed``;
``errors`` says why and ``raw`` keeps the topic and original payload: nothing is lost.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any, Literal

from amr.config import BusConfig, MeterConfig
from amr.core.domain import Channel, Values
from amr.core.intervals import ProfileRecord
from amr.drivers.base import MeterValues
from amr.drivers.mqtt.intervals import decode_intervals
from amr.drivers.mqtt.settings import MqttBusSettings
from amr.errors import ConfigError, ProtocolError
from amr.protocols.units import UNITS, to_wh, unit_factor, unit_fits_channel

PayloadKind = Literal["amr", "mapping", "tasmota-sml"]
CHANNEL_NAMES: dict[str, Channel] = {c.value: c for c in Channel} | {c.label: c for c in Channel}
AMR_UNITS = {"Wh": ("Wh", "varh"), "kWh": ("kWh", "kvarh"), "MWh": ("MWh", "Mvarh")}  # active, reactive
_REACTIVE = (Channel.R_PLUS, Channel.R_MINUS)
_AMR_KEYS = {"meter", "ts", "unit", "tariffs", "tariff", "intervals"}  # intervals: `amr.drivers.mqtt.intervals`
_SML = {"total_in": Channel.A_PLUS, "e_in": Channel.A_PLUS}
_SML |= {"total_out": Channel.A_MINUS, "e_out": Channel.A_MINUS}
_TASMOTA_ENERGY = {"total": Channel.A_PLUS, "exportactive": Channel.A_MINUS}
_TASMOTA_TARIFFS = {"totaltariff": Channel.A_PLUS, "exporttariff": Channel.A_MINUS}  # arrays of zones 1..n
_SML_TARIFF = re.compile(r"^(.+)_t([1-4])$")
_OBIS_KEY = re.compile(r"^(?:1-0[:_.])?([1-4])[._]8[._]([0-4])$")  # OBIS C.D.E: C=1..4 channel, E tariff
_METER_ID_KEYS = ("meter_id", "meter_number", "meterid", "server_id")
_TARGET = re.compile(r"^(a_plus|a_minus|r_plus|r_minus)(?:@([0-4]))?(?::(\w+))?$")


class PayloadError(ProtocolError):
    """A payload or one of its values cannot be read; the message says what and how it should look."""


class NotAMeter(PayloadError):
    """A message that carries no energy at all (another kind of device on the same topic filter)."""


def plain(value: object) -> str:
    """A payload value as JSON shows it (``[150.1]``, ``"abc"``), for messages a person reads."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(plain(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k), ensure_ascii=False)}: {plain(v)}" for k, v in value.items()) + "}"
    if value is None or isinstance(value, (bool, str, int, float)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def energy_wh(value: object, unit: str, *, exact: bool = True) -> int:
    """`value` (a decimal string or number in `unit`, e.g. kWh) as whole Wh/varh.

    Finer than 1 Wh is refused when `exact`, else rounded half-even as `amr.protocols.units.to_wh`.
    """
    dec: Decimal | None = None
    if isinstance(value, (int, Decimal, str)) and not isinstance(value, bool):
        try:
            dec = value if isinstance(value, Decimal) else Decimal(str(value).strip())
        except InvalidOperation:
            dec = None
    if dec is None:
        raise PayloadError(f"{plain(value)} is not a number; send a decimal such as \"1234.567\"")
    if not dec.is_finite():
        raise PayloadError(f"{value} is not a finite number")
    if dec < 0:
        raise PayloadError(f"{value} is negative; registers count up from 0")
    if dec.adjusted() > 15:
        raise PayloadError(f"{value} is too large for an energy register")
    if not exact:
        return to_wh(dec, unit)
    with localcontext() as context:
        context.prec = 60
        wh = dec * unit_factor(unit)
    if wh != wh.to_integral_value():
        raise PayloadError(f"{value} is finer than 1 Wh; values are kept exactly to 1 Wh (0.001 kWh)")
    return int(wh)


def parse_time(value: object, tz: tzinfo | None = None) -> datetime | None:
    """An ISO 8601 or epoch-seconds time in UTC; a naive one is read in `tz`, or None without `tz`."""
    try:
        if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
            return datetime.fromtimestamp(float(value), UTC)
        moment = datetime.fromisoformat(value.strip()) if isinstance(value, str) else None
    except (ValueError, OverflowError, OSError):
        moment = None
    if moment is None:
        raise PayloadError(f"time {plain(value)} is not ISO 8601 such as \"2026-01-01T00:00:00+03:00\"")
    if moment.utcoffset() is None:
        if tz is None:
            return None
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(UTC)


def parse_json(payload: bytes) -> Any:
    """JSON with every non-integer number as an exact `Decimal` (NaN and Infinity too, to be refused)."""
    try:
        return json.loads(payload, parse_float=Decimal, parse_constant=Decimal)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise PayloadError(f"the payload is not JSON: {exc}") from None


def match_wildcards(filters: Sequence[str], topic: str) -> tuple[str, ...]:
    """The segments under ``+`` in the first of `filters` matching `topic` (``$share/<group>/`` skipped)."""
    parts = topic.split("/")
    for pattern in filters:
        if pattern.startswith("$share/"):
            pattern = pattern.split("/", 2)[-1]
        levels = pattern.split("/")
        if levels[-1] == "#":
            levels, rest_ok = levels[:-1], True
        else:
            rest_ok = False
        if len(parts) < len(levels) or (len(parts) > len(levels) and not rest_ok):
            continue
        if all(level in ("+", part) for level, part in zip(levels, parts, strict=False)):
            return tuple(part for level, part in zip(levels, parts, strict=False) if level == "+")
    return ()


@dataclass(frozen=True, slots=True)
class Rule:
    """One mapping entry: a JSON path or topic wildcard → serial, time or a channel of a tariff zone."""

    path: tuple[str, ...]
    wildcard: int | None
    target: Literal["serial", "time", "value"]
    channel: Channel | None = None
    tariff: int = 0
    unit: str = "kWh"

    def source(self, doc: Any, wild: Sequence[str]) -> Any:
        """The value this rule reads from a document and the topic's wildcard segments; None if absent."""
        if self.wildcard is not None:
            return wild[self.wildcard] if self.wildcard < len(wild) else None
        for part in self.path:
            if isinstance(doc, dict):
                doc = doc.get(part)
            elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
                doc = doc[int(part)]
            else:
                return None
        return doc


def parse_mapping(mapping: Mapping[str, str]) -> tuple[Rule, ...]:
    """Check and compile a bus's ``mapping``; raise `ConfigError` naming the entry and the fix."""
    rules = []
    for source, target in mapping.items():
        where = f"mapping entry {source!r} = {target!r}"
        wildcard = int(source[1:] or 1) - 1 if re.fullmatch(r"\+[1-9]?", source) else None
        if wildcard is None and (not source or "" in source.split(".") or source.startswith("+")):
            raise ConfigError(f"{where}: give a dotted JSON path such as ENERGY.Total, or + / +2 for the topic")
        path = () if wildcard is not None else tuple(source.split("."))
        found = _TARGET.fullmatch(target)
        if target == "serial" or (target == "time" and wildcard is None):
            rules.append(Rule(path, wildcard, "serial" if target == "serial" else "time"))
            continue
        if found is None or wildcard is not None:
            raise ConfigError(
                f"{where}: a target is serial, time or <channel>[@<tariff>][:<unit>], e.g. a_plus@1:kWh; "
                "channels a_plus a_minus r_plus r_minus, tariffs 0..4; only serial may come from the topic"
            )
        channel = Channel(found[1])
        unit = found[3] or ("kvarh" if channel in _REACTIVE else "kWh")
        if unit not in UNITS or not unit_fits_channel(unit, channel):
            allowed = "varh kvarh Mvarh" if channel in _REACTIVE else "Wh kWh MWh"
            raise ConfigError(f"{where}: unit {unit!r} does not suit {channel.label}; use one of {allowed}")
        rules.append(Rule(path, None, "value", channel, int(found[2] or 0), unit))
    return tuple(rules)


def _name(value: object) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value.strip() or None if isinstance(value, str) else None


@dataclass
class _Draft:
    """One meter's values as they are being decoded."""

    names: list[str]
    tariffs: dict[int, Values] = field(default_factory=dict)
    meter_time: datetime | None = None
    errors: dict[str, str] = field(default_factory=dict)
    bad: set[int] = field(default_factory=set)  # zones refused for a bad value
    fatal: bool = False  # the whole message is refused
    extra: dict[str, object] = field(default_factory=dict)
    profile: list[ProfileRecord] = field(default_factory=list)

    def fail(self, key: str, message: str) -> None:
        self.errors[key] = message
        self.fatal = True

    def put(self, tariff: int, channel: Channel, value: object, unit: str, exact: bool) -> None:
        values = self.tariffs.setdefault(tariff, {})
        try:
            values[channel] = None if value is None else energy_wh(value, unit, exact=exact)
        except PayloadError as exc:
            self.errors[f"tariff {tariff} {channel.value}"] = str(exc)
            self.bad.add(tariff)

    def time(self, value: object, tz: tzinfo | None, need_offset: bool = False) -> None:
        try:
            self.meter_time = parse_time(value, tz)
        except PayloadError as exc:
            self.fail("ts", str(exc))
        else:
            if self.meter_time is None and need_offset:
                self.fail("ts", f"time {plain(value)} has no UTC offset; add one, e.g. +03:00")

    def values(self, serial: str, topic: str, received_at: datetime, text: dict[str, object]) -> MeterValues:
        if not self.names:
            self.fail("meter", "nothing in the payload or the topic names the meter")
        if self.profile and not self.tariffs and not self.fatal:  # intervals only: no register reading
            raw = {"topic": topic, **self.extra, **text}
            return MeterValues(serial, {}, received_at, self.meter_time, self.errors, raw, self.profile)
        if not self.tariffs or self.fatal:
            self.tariffs = {t: {} for t in self.tariffs or (0,)}
            self.errors = self.errors or {"payload": "no channel values found"}
        self.tariffs.update({t: {} for t in self.bad})
        raw = {"topic": topic, **self.extra, **text}
        profile = [] if self.fatal else self.profile
        return MeterValues(serial, self.tariffs, received_at, self.meter_time, self.errors, raw, profile)


class PayloadDecoder:
    """Decodes one bus's messages; `decode` never raises (see the module docstring)."""

    def __init__(
        self,
        kind: PayloadKind,
        mapping: Mapping[str, str] | None = None,
        meters: Sequence[MeterConfig] = (),
        filters: Sequence[str] = (),
        tz: tzinfo | None = None,
    ) -> None:
        self.kind, self.filters, self.tz = kind, tuple(filters), tz
        self.ignored: Counter[str] = Counter()  # topic → messages without energy from devices that are no meter
        self.rules = parse_mapping(mapping or {})
        self._serials = {m.serial for m in meters}
        self._addresses = {str(m.address): m.serial for m in meters if m.address is not None}
        targets = {r.target for r in self.rules}
        if kind == "amr" and targets:
            raise ConfigError('a mapping is read with payload = "mapping" or "tasmota-sml"; remove it')
        if kind == "tasmota-sml" and targets - {"serial"}:
            raise ConfigError('payload = "tasmota-sml" takes only a serial mapping: {"SML.id" = "serial"}')
        if kind == "mapping" and "value" not in targets:
            raise ConfigError('payload = "mapping" needs a channel in mapping: {"ENERGY.Total" = "a_plus"}')

    @classmethod
    def for_bus(
        cls, bus: BusConfig, meters: Sequence[MeterConfig], tz: tzinfo | None = None
    ) -> PayloadDecoder:
        """The decoder for an ``[[buses]]`` entry and its meters."""
        own = MqttBusSettings.of(bus)
        return cls(own.payload, own.mapping, meters, own.topics, tz)

    def _is_meter(self, names: Sequence[str]) -> bool:
        return any(name in self._serials or name in self._addresses for name in names)

    def resolve(self, names: Sequence[str]) -> str:
        """The configured serial a payload or topic name refers to; else the first name, or ""."""
        for name in names:
            if name in self._serials or name in self._addresses:
                return name if name in self._serials else self._addresses[name]
        return names[0] if names else ""

    def decode(self, topic: str, payload: bytes, received_at: datetime) -> list[MeterValues]:
        """The values of every meter in one message; faults are reported in `MeterValues.errors`."""
        wild = match_wildcards(self.filters, topic)
        try:
            doc = parse_json(payload)
            if self.kind == "tasmota-sml":
                drafts = self._tasmota(doc, wild, topic)
            else:
                drafts = [self._amr(doc, wild) if self.kind == "amr" else self._mapping(doc, wild)]
        except NotAMeter as exc:
            if not self._is_meter(exc.args[1]):
                self.ignored[topic] += 1
                return []
            drafts = [_Draft(list(exc.args[1]))]
            drafts[0].fail("payload", str(exc.args[0]))
        except Exception as exc:  # a payload must never stop the driver
            drafts = [_Draft(list(wild[:1]))]
            reason = str(exc) if isinstance(exc, PayloadError) else f"the decoder failed: {exc!r}"
            drafts[0].fail("payload", reason)
        try:
            text: dict[str, object] = {"payload": payload.decode("utf-8")}
        except UnicodeDecodeError:
            text = {"payload_hex": payload.hex()}
        return [d.values(self.resolve(d.names), topic, received_at, text) for d in drafts]

    def _amr(self, doc: Any, wild: tuple[str, ...]) -> _Draft:
        if not isinstance(doc, dict):
            raise PayloadError('an amr payload is a JSON object: {"meter": ..., "tariffs": {...}}')
        meter, unit = doc.get("meter"), doc.get("unit", "kWh")
        draft = _Draft([name] if (name := _name(meter)) else list(wild[:1]))
        if meter is not None and name is None:
            draft.fail("meter", f"meter {plain(meter)} is not a serial; send it as text")
        if doc.get("ts") is not None:
            draft.time(doc["ts"], None, need_offset=True)
        if unit not in AMR_UNITS:
            draft.fail("unit", f"unknown unit {plain(unit)}; use kWh, Wh or MWh")
        units = AMR_UNITS.get(unit, AMR_UNITS["kWh"])
        if unknown := sorted(set(doc) - _AMR_KEYS - set(CHANNEL_NAMES)):
            draft.fail("payload", f"unknown key(s) {', '.join(unknown)}; see the amr schema")
        flat = {k: v for k, v in doc.items() if k in CHANNEL_NAMES}
        if "intervals" in doc:
            draft.profile = decode_intervals(doc["intervals"], units, CHANNEL_NAMES, draft.errors)
            if not flat and "tariffs" not in doc and "tariff" not in doc:
                return draft
        zones = doc.get("tariffs", {str(doc.get("tariff", 0)): flat})
        if "tariffs" in doc and (flat or "tariff" in doc or not isinstance(zones, dict)):
            draft.fail("tariffs", 'give "tariffs": {"0": {"a_plus": ...}} or flat channels, not both')
            return draft
        for zone, channels in zones.items():
            if zone not in ("0", "1", "2", "3", "4") or not isinstance(channels, dict):
                draft.fail("tariffs", f"tariff {plain(zone)} must be 0..4 holding an object of channels")
                continue
            for key, value in channels.items():
                if key in CHANNEL_NAMES:
                    channel = CHANNEL_NAMES[key]
                    draft.put(int(zone), channel, value, units[channel in _REACTIVE], exact=True)
                else:
                    draft.tariffs.setdefault(int(zone), {})
                    draft.errors[f"tariff {zone} {key}"] = f"unknown channel {plain(key)}; use a_plus .. r_minus"
                    draft.bad.add(int(zone))
        return draft

    def _mapping(self, doc: Any, wild: tuple[str, ...]) -> _Draft:
        draft, present = _Draft([]), False
        for rule in self.rules:
            value = rule.source(doc, wild)
            if rule.target == "serial" and (name := _name(value)) is not None:
                draft.names.append(name)
            elif rule.target == "time" and value is not None:
                draft.time(value, self.tz)
            elif rule.channel is not None:
                present = present or value is not None
                draft.put(rule.tariff, rule.channel, value, rule.unit, exact=False)
        if not any(r.target == "serial" for r in self.rules):
            draft.names.extend(wild[:1])
        if not present:
            draft.fail("payload", "none of the mapped fields is in the payload")
        return draft

    def _tasmota(self, doc: Any, wild: tuple[str, ...], topic: str) -> list[_Draft]:
        if not isinstance(doc, dict):
            raise PayloadError('a Tasmota SENSOR payload is a JSON object: {"Time": ..., "SML": {...}}')
        device = wild[0] if wild else topic.split("/")[-2 if "/" in topic else -1]
        found = [
            (k, v) for k, v in doc.items() if isinstance(v, dict) and any(_is_energy_key(k, n, x) for n, x in v.items())
        ]
        mapped = [n for rule in self.rules if (n := _name(rule.source(doc, wild))) is not None]
        if not found:
            message = "no object with Total_in, Total_out, E_in, E_out, 1_8_0 .. 4_8_4 or ENERGY.Total keys"
            raise NotAMeter(message, [*mapped, device])
        drafts = []
        for section, values in found:
            own = [n for k, v in values.items() if k.lower() in _METER_ID_KEYS and (n := _name(v))]
            single = [device] if len(found) == 1 else []
            draft = _Draft([*mapped, *own, f"{device}/{section}", *single], extra={"section": section})
            if doc.get("Time") is not None:
                draft.time(doc["Time"], self.tz)
            for key, value in values.items():
                try:
                    entries = _energy_entries(section, key, value)
                except PayloadError as exc:
                    draft.errors[key] = str(exc)
                    continue
                for channel, tariff, item in entries:
                    unit = "kvarh" if channel in _REACTIVE else "kWh"
                    draft.put(tariff, channel, item, unit, exact=False)
            drafts.append(draft)
        return drafts


def _is_energy_key(section: str, key: str, value: object) -> bool:
    try:
        return bool(_energy_entries(section, key, value))
    except PayloadError:
        return True


def _energy_entries(section: str, key: str, value: object) -> list[tuple[Channel, int, object]]:
    """(channel, tariff zone, value) of one Tasmota key; [] for a key that is no energy register."""
    name = key.lower()
    if section.upper() == "ENERGY" and isinstance(value, list):
        if name in _TASMOTA_TARIFFS:  # "TotalTariff": [T1, T2, ...]
            zones = [(i + 1, v) for i, v in enumerate(value)]
            channel = _TASMOTA_TARIFFS[name]
        elif name in _TASMOTA_ENERGY:  # before Tasmota 8.3.1.2: "Total": [total, T1, T2, ...]
            zones = list(enumerate(value))
            channel = _TASMOTA_ENERGY[name]
        else:
            return []
        if len(zones) and zones[-1][0] > 4:
            raise PayloadError(f"{key} {plain(value)} has more than 4 tariff zones")
        return [(channel, zone, v) for zone, v in zones]
    spec = _sml_key(section, key)
    return [] if spec is None else [(spec[0], spec[1], value)]


def _sml_key(section: str, key: str) -> tuple[Channel, int] | None:
    """The channel and tariff zone a Tasmota key names, or None."""
    name = key.lower()
    if section.upper() == "ENERGY":
        return (_TASMOTA_ENERGY[name], 0) if name in _TASMOTA_ENERGY else None
    if (obis := _OBIS_KEY.fullmatch(name)) is not None:
        return list(Channel)[int(obis[1]) - 1], int(obis[2])
    tariff = 0
    if (suffix := _SML_TARIFF.fullmatch(name)) is not None:
        name, tariff = suffix[1], int(suffix[2])
    return (_SML[name], tariff) if name in _SML else None
