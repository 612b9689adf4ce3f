"""The one TOML configuration file, validated at load time.

Errors name the file, the key path, what is wrong and how to fix it. Environment
variables override the file: ``AMR_DATABASE_URL``, ``AMR_SITE_TIMEZONE`` and, in
general, ``AMR_<SECTION>_<KEY>`` for any key of a top-level table.
"""

from __future__ import annotations

import functools
import os
import tomllib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    SecretStr,
    SkipValidation,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from amr.core.durations import Duration as Duration  # re-exported: the settings modules take it from here
from amr.core.durations import format_duration
from amr.core.gc_policy import paused_gc
from amr.core.meters import Meter, RatioVersion
from amr.errors import ConfigError
from amr.operations.settings import ClockConfig, EventsConfig
from amr.operations.settings import reference_errors as clock_reference_errors


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseConfig(_Section):
    """``[database]``: where readings are kept."""

    url: str = "sqlite:///var/amr.sqlite"
    timescale: Literal["auto", "on", "off"] = "auto"
    copy_mode: Literal["auto", "on", "off"] = Field("auto", alias="copy")
    batch_size: int = Field(5000, ge=1, le=1_000_000)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:", "postgres:")):
            raise ValueError("use sqlite:///path/to/file.sqlite or postgresql://user@host:5432/dbname")
        return value


class SiteConfig(_Section):
    """``[site]``: the time zone readings are shown and billed in."""

    name: str = "АСКУЭ"
    timezone: str = "Europe/Moscow"
    clock_tolerance: Duration = timedelta(minutes=5)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Europe/Moscow") from None
        return value

    @property
    def tz(self) -> ZoneInfo:
        """The site's time zone."""
        return ZoneInfo(self.timezone)


class RatioStep(_Section):
    """One version of a transformer ratio: ``{ since = "2026-03-01", ratio = 40 }``."""

    since: datetime | date | None = None
    ratio: Decimal = Field(gt=0)


Ratio = Decimal | list[RatioStep]


class ScheduleConfig(_Section):
    """When to poll: an interval (``"30s"``) or a cron expression (``"*/30 * * * *"``), with offset and jitter."""

    every: Duration | None = None
    cron: str | None = None
    offset: Duration = timedelta(0)
    jitter: Duration = timedelta(0)
    misfire_grace: Duration = timedelta(minutes=5)

    @model_validator(mode="after")
    def _one_kind(self) -> ScheduleConfig:
        if (self.every is None) == (self.cron is None):
            raise ValueError('give either every = "30m" or cron = "*/30 * * * *"')
        if self.cron is not None and len(self.cron.split()) != 5:
            raise ValueError(f"cron {self.cron!r} needs 5 fields: minute hour day month weekday")
        if self.every is not None and self.every <= timedelta(0):
            raise ValueError("every must be longer than 0")
        return self

    def check(self, timeout: timedelta, where: str) -> None:
        """Refuse polls that would overlap their own timeout or whose jitter reaches the next poll
        (`ValueError` naming `where` and the fix)."""
        spacing = self.shortest_interval
        if timeout >= spacing:
            raise ValueError(
                f"{where}: timeout {format_duration(timeout)} is not shorter than the poll interval "
                f"{format_duration(spacing)}; "
                "shorten the timeout or poll less often"
            )
        if self.jitter >= spacing:
            raise ValueError(
                f"{where}: jitter {format_duration(self.jitter)} must be shorter than the poll interval "
                f"{format_duration(spacing)}"
            )

    @property
    def shortest_interval(self) -> timedelta:
        """The interval, or a lower bound of the cron's spacing (one minute when unknown)."""
        if self.every is not None:
            return self.every
        minute = (self.cron or "").split()[0]
        if minute.startswith("*/") and minute[2:].isdigit():
            return timedelta(minutes=int(minute[2:]))
        if "," in minute and all(p.isdigit() for p in minute.split(",")):
            marks = sorted(int(p) for p in minute.split(","))
            gaps = [b - a for a, b in zip(marks, [*marks[1:], marks[0] + 60], strict=True)]
            return timedelta(minutes=min(gaps))
        if minute.isdigit():
            return timedelta(hours=1)
        return timedelta(minutes=1)


def _schedule(value: object) -> object:
    if isinstance(value, str):
        text = value.strip()
        if len(text.split()) == 5:
            return {"cron": text}
        return {"every": text}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"every": value}
    return value


Schedule = Annotated[ScheduleConfig, BeforeValidator(_schedule)]


class ProtocolSettings(BaseModel):
    """A protocol's own keys of a bus or meter entry (flat in the TOML, beside the common keys).

    Each protocol declares its models in ``amr/drivers/<protocol>/settings.py`` and names them on
    its `DriverSpec`; the loader validates the keys that are not common through them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def of(cls, entry: BusConfig | MeterConfig) -> Self:
        """`entry`'s settings as this model: themselves when they are one, else validated from their keys
        (a meter built without its bus's kind, as a test or a tool may build one)."""
        settings = entry.settings
        if isinstance(settings, cls):
            return settings
        try:
            return cls.model_validate(settings.model_dump(exclude_unset=True))
        except ValidationError as exc:
            name = f"bus {entry.name!r}" if isinstance(entry, BusConfig) else f"meter {entry.serial}"
            problems = "; ".join(
                (f"{_format_location(tuple(e['loc']))}: " if e["loc"] else "") + _explain(e, str(e["msg"]))
                for e in exc.errors()
            )
            raise ConfigError(f"{name}: {problems.replace('Value error, ', '')}") from None

    def secrets(self) -> list[str]:
        """The values of its secret keys, to keep out of messages and logs: keys declared ``repr=False``
        or `SecretStr`, also within a table of its own (e.g. a protocol's security table)."""
        return _secrets(self, self._secret_keys())

    @classmethod
    def _secret_keys(cls) -> frozenset[str]:
        return frozenset(name for name, field in cls.model_fields.items() if not field.repr)


def _secrets(model: BaseModel, hidden: frozenset[str]) -> list[str]:
    found: list[str] = []
    for name, value in model:
        if isinstance(value, BaseModel):
            found += _secrets(value, frozenset(n for n, f in type(value).model_fields.items() if not f.repr))
        elif isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif value and name in hidden:
            found.append(str(value))
    return [secret for secret in found if secret]


class BusSettings(ProtocolSettings):
    """The base of a protocol's bus settings (none: a kind with no keys of its own)."""

    @property
    def reads_at_once(self) -> int:
        """How many meters of a bus that is no serial line the collector reads at once."""
        return 1


class MeterSettings(ProtocolSettings):
    """The base of a protocol's meter settings (none: a kind with no keys of its own)."""


class UnboundMeterSettings(MeterSettings):
    """The protocol keys of a meter validated without its bus's kind: kept as given."""

    model_config = ConfigDict(extra="allow", frozen=True)

    @classmethod
    def _secret_keys(cls) -> frozenset[str]:
        from amr.drivers.registry import PROTOCOLS

        return frozenset().union(*(spec.meter_settings._secret_keys() for spec in PROTOCOLS.values()))

    def __repr_args__(self) -> Any:
        hidden = self._secret_keys()
        return [(name, value) for name, value in super().__repr_args__() if name not in hidden]


_BUS_KEYS = ("name", "kind", "url", "timeout", "retries", "retry_backoff", "schedule")
_METER_KEYS = (
    "serial", "name", "model", "object", "point", "accounts", "digits", "decimals", "ct_ratio", "vt_ratio",
    "tariffs", "max_power_kw", "installed", "removed", "bus", "address", "schedule", "timeout", "retries",
)


@functools.cache
def _keys(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(f.alias or name for name, f in model.model_fields.items())


_COMMON: dict[tuple[str, ...], frozenset[str]] = {keys: frozenset(keys) for keys in (_BUS_KEYS, _METER_KEYS)}


def _line_errors(exc: ValidationError) -> list[InitErrorDetails]:
    """The errors of `exc` as they can be raised again (within a larger error)."""
    out: list[InitErrorDetails] = []
    for error in exc.errors():
        line = InitErrorDetails(type=error["type"], loc=tuple(error["loc"]), input=error["input"])
        if "ctx" in error:
            line["ctx"] = error["ctx"]
        out.append(line)
    return out


def _with_settings(
    title: str,
    data: dict[str, Any],
    common: tuple[str, ...],
    model: type[ProtocolSettings],
    takes: str,
    handler: Callable[[dict[str, Any]], Any],
) -> Any:
    """Validate `data`'s `common` keys by `handler` and the rest by the protocol's `model`, reporting
    the errors of both together; an unknown key is refused naming the keys `takes` (e.g. a kind's bus)."""
    errors: list[InitErrorDetails] = []
    shared = _COMMON[common]
    fields: dict[str, Any] = {}
    own: dict[str, Any] = {}
    for key, value in data.items():
        (fields if key in shared else own)[key] = value
    known = (_keys(model) if model.model_config.get("extra") != "allow" else _any_kinds_meter_keys()) if own else ()
    if not own.keys() <= set(known):
        for key in [key for key in own if key not in known]:
            keys = ", ".join((*common, *known))
            context = {"takes": takes, "keys": keys}
            refusal = PydanticCustomError("unknown_key", "unknown key; {takes} takes {keys}", context)
            errors.append(InitErrorDetails(type=refusal, loc=(key,), input=own.pop(key)))
    try:
        try:
            fields["settings"] = _scalar_settings(model, tuple((k, type(v), v) for k, v in own.items()))
        except TypeError:  # a list or table among the values: not shared
            fields["settings"] = model.model_validate(own)
    except ValidationError as exc:
        errors += _line_errors(exc)
    try:
        validated = handler(fields)
    except ValidationError as exc:
        errors = _line_errors(exc) + errors
    if errors:
        raise ValidationError.from_exception_data(title, errors)
    return validated


@functools.lru_cache(maxsize=1024)
def _scalar_settings(model: type[ProtocolSettings], items: tuple[tuple[str, type, Any], ...]) -> ProtocolSettings:
    """Settings of scalar values (each with its type: 1 is not true), validated once and shared (frozen)
    by the entries that give the same: thousands of meters name a few profiles and passwords."""
    return model.model_validate({key: value for key, _, value in items})


def _any_kinds_meter_keys() -> tuple[str, ...]:
    from amr.drivers.registry import PROTOCOLS

    return tuple(dict.fromkeys(key for spec in PROTOCOLS.values() for key in _keys(spec.meter_settings)))


class BusConfig(_Section):
    """One ``[[buses]]`` entry: the keys every kind has, and its kind's own keys in `settings`.

    The TOML keeps them flat: ``baudrate = 19200`` beside ``name``; the kind's `DriverSpec` names
    the model that validates them (e.g. `amr.drivers.modbus.settings.ModbusRtuBusSettings`).
    """

    name: str = Field(min_length=1)
    kind: str = Field(description="a registered bus kind (`amr.drivers.registry`)")
    url: str = Field(min_length=1)
    timeout: Duration = timedelta(seconds=1)
    retries: int = Field(2, ge=0, le=10)
    retry_backoff: Duration = timedelta(milliseconds=200)
    schedule: Schedule | None = None
    settings: SkipValidation[BusSettings] = Field(default_factory=BusSettings, exclude=True)

    @model_validator(mode="wrap")
    @classmethod
    def _kind_settings(cls, data: Any, handler: ModelWrapValidatorHandler[BusConfig]) -> BusConfig:
        if not isinstance(data, dict) or "settings" in data:
            return handler(data)
        from amr.drivers.registry import PROTOCOLS  # the registry names its specs only: no driver is imported

        known = PROTOCOLS.get(data.get("kind"))  # type: ignore[arg-type]
        if known is None:  # the kind itself is refused; its keys cannot be judged
            return handler({key: value for key, value in data.items() if key in _BUS_KEYS})
        model = known.bus_settings
        return _with_settings("BusConfig", data, _BUS_KEYS, model, f"a {known.kind} bus", handler)  # type: ignore[no-any-return]

    @field_validator("kind")
    @classmethod
    def _registered_kind(cls, kind: str) -> str:
        from amr.drivers.registry import spec

        spec(kind)
        return kind

    @field_validator("url")
    @classmethod
    def _url_fits_kind(cls, url: str, info: ValidationInfo) -> str:
        from amr.drivers.registry import PROTOCOLS

        known = PROTOCOLS.get(info.data.get("kind", ""))
        if known is not None:
            known.check_url(url)
        return url


class ApiConfig(_Section):
    """``[api]``: the HTTP service for cabinets, АСКУЭ users and dispatchers."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    token_ttl: Duration = timedelta(hours=12)
    login_attempts: int = Field(5, ge=1, le=100)  # failed logins allowed per window, per login and per address
    login_window: Duration = timedelta(minutes=15)
    public_submission: bool = True  # default for accounts whose holder has not chosen
    public_attempts: int = Field(10, ge=1, le=10000)  # submissions without login per window, per address
    public_window: Duration = timedelta(hours=1)
    moderated_sources: list[Literal["web", "mobile", "operator"]] = []
    idempotency_ttl: Duration = timedelta(hours=24)  # how long an Idempotency-Key answer is kept
    trusted_proxies: list[str] = []  # peers whose X-Forwarded-For names the client address


class ExportConfig(_Section):
    """``[export]``: who sends the макет 80020 files and for which area."""

    sender_inn: str = ""
    sender_name: str = ""
    area_inn: str = ""
    area_name: str = ""
    point_codes: dict[str, str] = {}  # metering point → its code in 80020 (e.g. the АТС code); default the point


class MeterConfig(_Section):
    """One ``[[meters]]`` entry."""

    serial: str = Field(min_length=1, max_length=64)
    name: str = ""
    model: str = ""
    object: str = ""
    point: str = ""
    accounts: list[str] = Field(default_factory=list)
    digits: int = Field(6, ge=1, le=12)
    decimals: int = Field(2, ge=0, le=3)
    ct_ratio: Ratio = Decimal(1)
    vt_ratio: Ratio = Decimal(1)
    tariffs: int = Field(1, ge=1, le=4)
    max_power_kw: Decimal | None = Field(None, gt=0)
    installed: datetime | date | None = None
    removed: datetime | date | None = None
    # Field side: how the collector reaches the meter; its bus's kind validates the rest (`settings`).
    bus: str | None = None
    address: int | str | None = None
    schedule: Schedule | None = None
    timeout: Duration | None = None
    retries: int | None = Field(None, ge=0, le=10)
    settings: SkipValidation[MeterSettings] = Field(default_factory=UnboundMeterSettings, exclude=True)

    @model_validator(mode="wrap")  # type: ignore[arg-type]  # pydantic's stub solves the info form to Never
    @classmethod
    def _kind_settings(
        cls, data: Any, handler: ModelWrapValidatorHandler[MeterConfig], info: ValidationInfo
    ) -> MeterConfig:
        """The meter's other keys by its bus's kind (``bus_kinds`` of the validation context, which
        `config_from_dict` gives); without it they are kept as given, each a key some kind takes."""
        if not isinstance(data, dict) or "settings" in data:
            return handler(data)
        kinds = (info.context or {}).get("bus_kinds", {})
        known = None
        if (kind := kinds.get(data.get("bus"))) is not None:  # a meter on no bus needs no registry
            from amr.drivers.registry import PROTOCOLS

            known = PROTOCOLS.get(kind)
        if known is None:
            return _with_settings(  # type: ignore[no-any-return]
                "MeterConfig", data, _METER_KEYS, UnboundMeterSettings, "a meter", handler
            )
        model = known.meter_settings
        return _with_settings(  # type: ignore[no-any-return]
            "MeterConfig", data, _METER_KEYS, model, f"a meter on a {known.kind} bus", handler
        )

    @field_validator("ct_ratio", "vt_ratio")
    @classmethod
    def _positive(cls, value: Ratio) -> Ratio:
        if isinstance(value, Decimal) and value <= 0:
            raise ValueError("a transformer ratio is a positive number, e.g. 40 for 200/5 A")
        if isinstance(value, list) and not value:
            raise ValueError("give at least one { since = ..., ratio = ... } step")
        return value

    @model_validator(mode="after")
    def _dates_in_order(self) -> MeterConfig:
        if (
            self.installed is not None
            and self.removed is not None
            and _as_naive_sort_key(self.removed) < _as_naive_sort_key(self.installed)
        ):
            raise ValueError("removed is before installed; swap them or fix the dates")
        return self


class CollectorConfig(_Section):
    """``[collector]``: how meters are polled and readings written (see `amr.collector`)."""

    buffer: str = Field(
        "var/buffer.sqlite",
        description="SQLite file that keeps readings while the store is unreachable; relative to the config file",
    )
    offline_after: int = Field(
        3, ge=1, le=1000, description="consecutive failed polls after which a meter is offline"
    )
    default_schedule: Schedule = Field(
        ScheduleConfig(cron="*/30 * * * *"),
        description="schedule of meters whose meter and bus give none (default: every 30 minutes at :00 and :30)",
    )
    write_interval: Duration = Field(
        timedelta(milliseconds=200), description="readings arriving within this time are written in one batch"
    )
    write_batch: int = Field(500, ge=1, le=100_000, description="a batch is written at once when this many wait")
    store_retry: Duration = Field(
        timedelta(seconds=1), description="first wait before writing buffered readings again; doubles each time"
    )
    store_retry_max: Duration = Field(timedelta(minutes=1), description="the longest wait between such attempts")
    read_limit: Duration | None = Field(
        None,
        description="safety net around one driver read (default: 10 × the meter's timeout + 5 s)",
    )
    leases: Literal["auto", "off"] = Field(
        "auto",
        description="share the buses with other collectors on the same PostgreSQL through leases "
        "(auto: on PostgreSQL; SQLite has one collector); off: this collector polls every bus",
    )
    lease_ttl: Duration = Field(
        timedelta(seconds=15),
        description="a lease not renewed for this long expires and another collector takes it; renewed every third",
    )
    lease_group: int = Field(
        64, ge=1, le=100_000, description="meters per lease on a Modbus TCP bus (a device is never split)"
    )
    name: str | None = Field(
        None, min_length=1, max_length=100,
        description="this collector's name in leases and --status (default: the host name; the pid is added)",
    )

    @field_validator("lease_ttl")
    @classmethod
    def _ttl_long_enough(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError(f"lease_ttl {format_duration(value)} is too short; give at least 1s (e.g. \"15s\")")
        return value


class RelayConfig(_Section):
    """``[relay]``: how relay commands wait and are carried out (see `amr.collector.operations`)."""

    deadline: Duration = Field(
        timedelta(hours=1), description="how long a command waits for its meter by default (the API may say less)"
    )
    max_deadline: Duration = Field(timedelta(days=7), description="the longest deadline the API accepts")
    retry: Duration = Field(timedelta(seconds=30), description="wait before trying a meter that did not answer again")
    check_every: Duration = Field(timedelta(seconds=1), description="how often the collector looks for commands")
    lease: Duration = Field(
        timedelta(minutes=2),
        description="a claimed command is the collector's for this long; then another may take it over",
    )


class QualityLimitConfig(_Section):
    """The bounds of one quantity; an event is raised outside them."""

    min: float | None = None
    max: float | None = None


def _default_limits() -> dict[str, QualityLimitConfig]:
    # ГОСТ 32144-2013: voltage within ±10 % of the nominal 230 V, frequency within ±0.2 Hz (normally allowed)
    return {"voltage": QualityLimitConfig(min=207, max=253), "frequency": QualityLimitConfig(min=49.8, max=50.2)}


class QualityConfig(_Section):
    """``[quality]``: instantaneous values (see `amr.collector.operations`) and their limits."""

    every: Duration | None = Field(
        None, description="how often meters whose driver can are asked for instantaneous values; none: never"
    )
    limits: dict[str, QualityLimitConfig] = Field(
        default_factory=_default_limits,
        description="quantity or group (voltage, current, power, power_factor, frequency) → { min, max }",
    )

    @field_validator("limits")
    @classmethod
    def _known_quantities(cls, value: dict[str, QualityLimitConfig]) -> dict[str, QualityLimitConfig]:
        groups = ("voltage", "current", "power", "power_factor")
        known = {"frequency", *groups, "power_total", "power_factor_total"}
        known |= {f"{group}_l{phase}" for group in groups for phase in (1, 2, 3)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown quantity {', '.join(unknown)}; limits take a group ({', '.join(groups)}, "
                             "frequency) or one quantity such as voltage_l1 or power_total")
        return value


class IntervalsConfig(_Section):
    """``[intervals]``: validation and estimation of interval data (see `amr.validation.intervals`)."""

    rated_power_kw: Decimal = Field(
        Decimal(100),
        gt=0,
        description="rated power of a meter (secondary side) when neither it nor its model gives one",
    )
    model_rated_power_kw: dict[str, Decimal] = Field(
        default_factory=dict, description="rated power by meter model (the meter's `model`), secondary side"
    )
    estimate_max_gap: Duration = Field(
        timedelta(hours=6), description="longest gap of intervals that estimation fills; longer ones stay missing"
    )
    shape_weeks: int = Field(
        4, ge=0, le=52, description="previous weeks whose same weekday gives the shape of an estimated gap"
    )
    edge_tolerance: Duration = Field(
        timedelta(minutes=1),
        description="how far from an interval boundary a register reading may be to serve as its edge when "
        "intervals are derived from registers (meters whose protocol keeps no profile)",
    )
    estimate_every: Duration | None = Field(
        None,
        description="how often the collector derives intervals from registers and estimates gaps of its meters "
        "(unset: never by itself; `amr estimate` does it on demand)",
    )
    estimate_back: Duration = Field(
        timedelta(days=2), description="how far back the collector's scheduled derivation and estimation look"
    )

    @field_validator("edge_tolerance")
    @classmethod
    def _short_tolerance(cls, value: timedelta) -> timedelta:
        if value < timedelta(0) or value >= timedelta(minutes=7, seconds=30):
            raise ValueError(
                "edge_tolerance must be at least 0 and shorter than half of a 15-minute interval, e.g. \"1m\""
            )
        return value

    @field_validator("estimate_every")
    @classmethod
    def _sensible_every(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < timedelta(minutes=1):
            raise ValueError("estimate_every must be at least one minute, e.g. \"1h\" (or leave it unset)")
        return value

    @field_validator("model_rated_power_kw")
    @classmethod
    def _positive_powers(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        for model, power in value.items():
            if power <= 0:
                raise ValueError(f"rated power of model {model!r} must be positive, e.g. 60 (kW)")
        return value


class BackfillConfig(_Section):
    """``[backfill]``: reading what meters kept in their profile memory (see `amr.collector.backfill`)."""

    enabled: bool = Field(True, description="the collector back-fills profiles of meters whose protocol reads them")
    every: Duration = Field(timedelta(minutes=10), description="how often the collector looks for missing intervals")
    chunk: Duration = Field(
        timedelta(hours=12), description="the longest span read from a meter in one turn on its bus"
    )
    depth: dict[str, Duration] = Field(
        default_factory=dict,
        description="memory depth by meter model or bus kind (e.g. mercury230 = \"85d\"); "
        "default: the driver's, or the meter's profile_depth",
    )
    first: Duration | None = Field(
        None, description="how far back a meter never back-filled before is read (default: its memory depth)"
    )


class RegistryConfig(_Section):
    """``[registry]``: where the collector, the API and the CLI take meters and buses from.

    ``source = "file"`` (the default): this file's ``[[meters]]`` and ``[[buses]]``, mirrored into
    the store at start. ``source = "database"``: the meter registry in the store (`amr.registry`),
    filled by ``amr registry apply``/``import`` or the admin API; a change reaches running
    processes within `watch_interval` (at once on PostgreSQL, through LISTEN/NOTIFY).
    """

    source: Literal["file", "database"] = "file"
    watch_interval: Duration = Field(
        timedelta(seconds=1), description="how often a running process checks the registry's version"
    )


class Config(_Section):
    """The whole configuration file."""

    database: DatabaseConfig = DatabaseConfig()
    site: SiteConfig = SiteConfig()
    api: ApiConfig = ApiConfig()
    export: ExportConfig = ExportConfig()
    buses: list[BusConfig] = []
    meters: list[MeterConfig] = []
    collector: CollectorConfig = CollectorConfig()
    relay: RelayConfig = RelayConfig()
    quality: QualityConfig = QualityConfig()
    intervals: IntervalsConfig = IntervalsConfig()
    backfill: BackfillConfig = BackfillConfig()
    clock: ClockConfig = ClockConfig()  # the clock policy (`amr.operations.settings`)
    events: EventsConfig = EventsConfig()  # journals and alarms
    registry: RegistryConfig = RegistryConfig()

    source_path: Path | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _cross_references(self) -> Config:
        errors = field_setting_errors(self.buses, self.meters, self.collector.default_schedule)
        errors += clock_reference_errors(self.clock, (b.name for b in self.buses), (m.serial for m in self.meters))
        if errors:
            raise ValueError("\n".join(errors))  # one line per error, each led by its key path
        return self

    def bus(self, name: str) -> BusConfig:
        """The bus named `name`."""
        for bus in self.buses:
            if bus.name == name:
                return bus
        raise ConfigError(f"no bus named {name!r}")

    def meter_objects(self) -> list[Meter]:
        """The configured meters as domain objects (ids still 0 until synced with a store)."""
        tz = self.site.tz
        with paused_gc():
            return [meter_object(m, tz) for m in self.meters]


def check_field_settings(config: Config) -> None:
    """Cross-field checks of buses and meters; raises ValueError naming each key path and its fix."""
    errors = field_setting_errors(config.buses, config.meters, config.collector.default_schedule)
    if errors:
        raise ValueError("\n".join(errors))


_STORED = ContextVar("amr_config_of_stored_entries", default=False)


@contextmanager
def stored_entries() -> Iterator[None]:
    """Validate what the registry already holds: meters' addresses are not judged by their drivers inside this
    block. An address was judged when it was written, or, written by a release whose drivers judged less, it
    fails that meter's polls (named in the log) until it is corrected; it never stops the registry from loading,
    and so from being corrected by `amr registry apply` or the admin API."""
    token = _STORED.set(True)
    try:
        yield
    finally:
        _STORED.reset(token)


def field_setting_errors(
    buses: Sequence[BusConfig | None],
    meters: Sequence[MeterConfig | None],
    default_schedule: ScheduleConfig,
    invalid_buses: frozenset[str] = frozenset(),
) -> list[str]:
    """Every cross-reference error of buses and meters, as ``key.path: what and the fix`` lines.

    None stands for an entry that failed its own validation (reported on its own), and
    `invalid_buses` are the names of such buses: meters on them are not called unknown.
    """
    errors: list[str] = []
    known: dict[str, BusConfig] = {}
    for index, bus in enumerate(buses):
        if bus is None:
            continue
        if bus.name in known:
            errors.append(f"buses[{index}].name {bus.name!r} appears twice; give every bus its own name")
        known[bus.name] = bus
    serials: set[str] = set()
    addresses: dict[tuple[str, str], str] = {}
    checked: set[tuple[int, timedelta]] = set()  # (schedule, timeout) pairs found good: thousands of meters share few
    for index, meter in enumerate(meters):
        if meter is None:
            continue
        where = f"meters[{index}] ({meter.serial})"
        if meter.serial in serials:
            errors.append(f"meters[{index}].serial {meter.serial!r} appears twice; a serial names one meter")
        serials.add(meter.serial)
        if meter.bus is None or meter.bus in invalid_buses:
            continue
        bus = known.get(meter.bus)
        if bus is None:
            names = ", ".join(sorted(known)) or "none is configured"
            errors.append(f"{where}.bus: unknown bus {meter.bus!r}; buses: {names}")
            continue
        from amr.drivers.registry import PROTOCOLS  # imported once there is a meter on a bus

        spec = PROTOCOLS[bus.kind]
        pushed = spec.push
        refused = (meter.address is not None and not _STORED.get()
                   and (problem := address_problem(meter, spec.check_address)) is not None)
        if refused:
            errors.append(f"{where}.address: {problem}")
        elif not pushed:
            if meter.address is None:
                errors.append(f"{where}.address: a meter on bus {bus.name!r} needs its address")
            else:
                key = (bus.name, str(meter.address))
                if key in addresses:
                    errors.append(
                        f"{where}.address: {meter.address} on bus {bus.name!r} is already meter {addresses[key]}; "
                        "every meter on a bus needs its own address"
                    )
                addresses[key] = meter.serial
        schedule = meter.schedule or bus.schedule
        if schedule is None and not pushed:  # a polled meter without its own: the collector's default
            schedule = default_schedule
        if schedule is not None and (id(schedule), timeout := meter.timeout or bus.timeout) not in checked:
            try:
                schedule.check(timeout, where)
                checked.add((id(schedule), timeout))
            except ValueError as exc:
                errors.append(str(exc))
    return errors


def address_problem(meter: MeterConfig, check: Callable[[MeterConfig], None]) -> str | None:
    """What `check`, the address check of the meter's bus kind (`DriverSpec.check_address`), finds wrong
    with `meter`'s address, with the fix (None: nothing)."""
    try:
        check(meter)
    except (ValueError, ConfigError) as exc:
        return str(exc)
    return None


def _lenient_cross_errors(data: dict[str, Any]) -> list[str]:
    """Cross-reference errors of raw data that failed validation: each entry validated on its own."""

    context = {"bus_kinds": _bus_kinds(data)}

    def each(raw: object, model: type[BaseModel]) -> list[Any]:
        if not isinstance(raw, list):
            return []
        out: list[Any] = []
        for item in raw:
            try:
                out.append(model.model_validate(item, context=context))
            except ValidationError:
                out.append(None)
        return out

    buses = each(data.get("buses"), BusConfig)
    meters = each(data.get("meters"), MeterConfig)
    invalid = frozenset(
        str(raw.get("name"))
        for raw, bus in zip(data.get("buses") or [], buses, strict=False)
        if bus is None and isinstance(raw, dict)
    )
    try:
        schedule = CollectorConfig.model_validate(data.get("collector") or {}).default_schedule
    except ValidationError:
        schedule = CollectorConfig().default_schedule
    errors = field_setting_errors(buses, meters, schedule, invalid)
    names = {bus.name for bus in buses if bus is not None} | invalid
    for index, (raw, meter) in enumerate(zip(data.get("meters") or [], meters, strict=False)):
        ref = raw.get("bus") if isinstance(raw, dict) else None
        if meter is None and isinstance(ref, str) and ref not in names:
            errors.append(f"meters[{index}].bus: unknown bus {ref!r}; buses: {', '.join(sorted(names)) or 'none'}")
    return errors


def _bus_kinds(data: dict[str, Any]) -> dict[str, str]:
    """Bus name → kind as written, for validating each meter's keys by its bus's kind."""
    buses = data.get("buses")
    if not isinstance(buses, list):
        return {}
    return {
        bus["name"]: bus["kind"]
        for bus in buses
        if isinstance(bus, dict) and isinstance(bus.get("name"), str) and isinstance(bus.get("kind"), str)
    }


def _as_naive_sort_key(value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        return (
            value.replace(tzinfo=None)
            if value.tzinfo is None
            else value.astimezone(UTC).replace(tzinfo=None)
        )
    return datetime.combine(value, time())


def to_utc(value: datetime | date, tz: ZoneInfo) -> datetime:
    """A config date or datetime as UTC; dates and naive datetimes are in the site's zone."""
    if not isinstance(value, datetime):
        value = datetime.combine(value, time())
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(UTC)


@functools.lru_cache(maxsize=4096)
def _utc(value: datetime | date, tz: ZoneInfo) -> datetime:
    """`to_utc`, once per date (meters installed together share their dates)."""
    return to_utc(value, tz)


@functools.lru_cache(maxsize=4096)
def _fraction(value: Decimal) -> Fraction:
    """A decimal as an exact fraction (cached: thousands of meters share a few ratios and powers)."""
    return Fraction(value)


def _ratio_steps(value: Ratio, tz: ZoneInfo) -> list[tuple[datetime | None, Fraction]]:
    if isinstance(value, Decimal):
        return [(None, _fraction(value))]
    steps = [(None if s.since is None else to_utc(s.since, tz), _fraction(s.ratio)) for s in value]
    return sorted(steps, key=lambda s: (s[0] is not None, s[0] or datetime.min))


@functools.lru_cache(maxsize=4096)
def _fixed_ratios(ct: Decimal, vt: Decimal) -> tuple[RatioVersion, ...]:
    """The one ratio version of meters whose ratios never change (shared: most meters are of a few kinds)."""
    return (RatioVersion(None, _fraction(ct), _fraction(vt)),)


def _ratio_versions(cfg: MeterConfig, tz: ZoneInfo) -> tuple[RatioVersion, ...]:
    if isinstance(cfg.ct_ratio, Decimal) and isinstance(cfg.vt_ratio, Decimal):
        return _fixed_ratios(cfg.ct_ratio, cfg.vt_ratio)
    ct = _ratio_steps(cfg.ct_ratio, tz)
    vt = _ratio_steps(cfg.vt_ratio, tz)
    boundaries = sorted({s for s, _ in ct + vt if s is not None})
    starts: list[datetime | None] = [None] if any(s is None for s, _ in ct + vt) else []
    starts += boundaries

    def at(steps: list[tuple[datetime | None, Fraction]], moment: datetime | None) -> Fraction:
        current = steps[0][1]
        for since, ratio in steps:
            if since is None or (moment is not None and since <= moment):
                current = ratio
        return current

    return tuple(RatioVersion(s, at(ct, s), at(vt, s)) for s in starts)


def meter_object(cfg: MeterConfig, tz: ZoneInfo) -> Meter:
    """The domain meter of a configured one (id 0 until synced with a store)."""
    versions = _ratio_versions(cfg, tz)
    return Meter(
        serial=cfg.serial,
        name=cfg.name or cfg.serial,
        object=cfg.object,
        point=cfg.point or cfg.serial,
        model=cfg.model,
        accounts=tuple(cfg.accounts),
        digits=cfg.digits,
        decimals=cfg.decimals,
        ratios=versions,
        tariffs=cfg.tariffs,
        max_power_kw=None if cfg.max_power_kw is None else _fraction(cfg.max_power_kw),
        installed=None if cfg.installed is None else _utc(cfg.installed, tz),
        removed=None if cfg.removed is None else _utc(cfg.removed, tz),
    )


def _format_location(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in (
            "Decimal",
            "decimal",
            "list[RatioStep]",
            "datetime",
            "date",
            "function-after[_positive(), union[decimal,list[RatioStep]]]",
        ):
            continue
        else:
            path += f".{part}" if path else str(part)
    return path or "(top level)"


_EXAMPLES: dict[str, str] = {
    "decimal": "40 or 0.5",
    "int": "3",
    "float": "0.5",
    "bool": "true or false",
    "string": '"text" in quotes',
    "list": '[ ... ] (a TOML array)',
    "dict": "{ key = value } (a TOML table)",
    "model": "{ key = value } (a TOML table)",
    "datetime": '2026-03-01T00:00:00 or 2026-03-01',
    "date": "2026-03-01",
}


def _explain(error: Any, message: str) -> str:
    """A pydantic error message with the value given and, for a wrong type, an example of a valid one."""
    kind = str(error["type"])
    if kind == "extra_forbidden":
        return "unknown key; check its spelling against the README's configuration reference"
    if kind == "missing":
        return "is required; add it"
    shown = repr(error.get("input"))
    if len(shown) > 60:
        shown = shown[:57] + "..."
    example = next((text for prefix, text in _EXAMPLES.items() if kind.startswith(prefix + "_")), None)
    if example is not None:
        return f"{message}; got {shown}; write e.g. {example}"
    if kind.startswith(("literal_", "enum")) or kind in ("greater_than", "less_than_equal", "greater_than_equal",
                                                          "less_than", "too_short", "too_long"):
        return f"{message}; got {shown}"
    return message


def _env_overrides(data: dict[str, Any], environ: dict[str, str]) -> None:
    """Apply ``AMR_<SECTION>_<KEY>`` variables onto the raw TOML tables (every top-level table)."""
    sections: dict[str, type[BaseModel]] = {
        "database": DatabaseConfig,
        "site": SiteConfig,
        "api": ApiConfig,
        "export": ExportConfig,
        "collector": CollectorConfig,
        "registry": RegistryConfig,
    }
    for section, model in sections.items():
        keys = set(model.model_fields) | {f.alias for f in model.model_fields.values() if f.alias is not None}
        for key in keys:
            env_name = f"AMR_{section}_{key}".upper()
            if env_name in environ:
                table = data.setdefault(section, {})
                if not isinstance(table, dict):
                    raise ConfigError(f"[{section}] must be a table to apply {env_name}")
                table[key] = environ[env_name]


def _resolve_sqlite_path(url: str, base: Path) -> str:
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite://":
        path = url[len(prefix) :]
        if path and path != ":memory:":
            return prefix + str((base / path).resolve())
    return url


def load_config(path: str | Path, environ: dict[str, str] | None = None) -> Config:
    """Read and validate a configuration file; raise `ConfigError` naming file, key and fix."""
    file = Path(path)
    env = dict(os.environ if environ is None else environ)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such file; pass the configuration with -c FILE") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot be read: {exc.strerror}") from None
    with paused_gc():  # a file of many meters makes a million objects and no cycles
        return _load(file, raw, env)


def _load(file: Path, raw: bytes, env: dict[str, str]) -> Config:
    try:
        data = _parse_toml(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{file}: is not UTF-8 text; save it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: is not valid TOML: {exc}") from None
    return config_from_dict(data, env, file)


def _parse_toml(text: str) -> dict[str, Any]:
    """TOML by the compiled parser (a file of 100,000 meters in a fraction of the time); a file it
    refuses is parsed again by the standard library, whose messages say where and what."""
    import rtoml

    try:
        return rtoml.loads(text)
    except rtoml.TomlParsingError:
        return tomllib.loads(text)


def config_from_dict(
    data: dict[str, Any], environ: dict[str, str] | None = None, file: Path | None = None
) -> Config:
    """Validate already-parsed configuration data (used by `load_config` and tests)."""
    name = str(file) if file is not None else "configuration"
    _env_overrides(data, dict(os.environ if environ is None else environ))
    context = {"bus_kinds": _bus_kinds(data)}
    given = data
    if isinstance(meters := data.get("meters"), list) and len(meters) > 1:
        from amr.config_alike import validated_alike

        alike = validated_alike(meters, lambda entry: MeterConfig.model_validate(entry, context=context))
        given = {**data, "meters": alike}
    try:
        config = Config.model_validate(given, context=context)
    except ValidationError as exc:
        lines = []
        cross_checked = False
        located: set[str] = set()
        for error in exc.errors():
            message = str(error["msg"]).removeprefix("Value error, ")
            if not error["loc"]:  # the cross-reference checks: one line per error, each with its key path
                lines += [f"{name}: {line}" for line in message.splitlines()]
                cross_checked = True
                continue
            where = _format_location(tuple(error["loc"]))
            if where in located:  # another branch of a union (a ratio is a number or a list): one is enough
                continue
            located.add(where)
            lines.append(f"{name}: {where}: {_explain(error, message)}")
        if not cross_checked:
            lines += [f"{name}: {line}" for line in _lenient_cross_errors(data)]
        raise ConfigError("\n".join(dict.fromkeys(lines))) from None
    base = file.parent if file is not None else Path.cwd()
    url = _resolve_sqlite_path(config.database.url, base)
    database = config.database.model_copy(update={"url": url})
    return config.model_copy(update={"database": database, "source_path": file})
