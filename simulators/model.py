"""The energy model of a virtual meter: load curve, export, reactive energy, tariff zones, wrap, faults.

Energy accumulates minute by minute from a daily load curve (morning and evening
peaks), minus a midday solar profile for prosumers (their surplus counts as A-),
with reactive energy at a fixed tan φ. Each minute's energy goes to the tariff zone
of that minute in the meter's local time; the total register is the sum. Registers
count Wh/varh and wrap at 10^digits kWh, as a real register does.
"""

from __future__ import annotations

import math
import random
import threading
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from amr.core.domain import CHANNELS, Channel, Values
from simulators.meter_journal import MeterJournal

MINUTE = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Faults:
    """Misbehaviour injected into one virtual meter (all off by default)."""

    silent: bool = False  # never answers
    delay: float = 0.0  # seconds added before every answer (a late answer)
    corrupt: float = 0.0  # probability of a corrupted CRC/BCC per answer
    exception: int | None = None  # Modbus: answer with this exception code
    drop: float = 0.0  # probability of dropping the connection instead of answering
    lower_by_wh: int = 0  # report A+ this much lower than the truth (a value lower than before)
    wrap_after: timedelta | None = None  # start the A+ register this long before it wraps through zero
    clock_drift: timedelta = timedelta(0)  # the meter's clock runs this far ahead (negative: behind)
    refuse: bool = False  # DLMS: refuse every association (AARE rejected-permanent)
    relay_delay: float = 0.0  # DLMS: seconds before the answer to a relay ACTION (the relay acts at once)
    voltage: float | None = None  # phase voltages held at this many volts (a sag or a swell); None: nominal


def zone_of(local: datetime, tariffs: int) -> int:
    """The tariff zone of a local time: 2 zones day 07-23 / night; 3 zones peak 07-10 and 17-21, half-peak, night."""
    hour = local.hour
    night = hour >= 23 or hour < 7
    if tariffs <= 1:
        return 1
    if tariffs == 2:
        return 2 if night else 1
    if night:
        return 3
    return 1 if 7 <= hour < 10 or 17 <= hour < 21 else 2


@dataclass
class VirtualMeter:
    """One simulated meter; thread-safe `registers()` gives what its registers show now."""

    serial: str
    address: int | str = 1
    digits: int = 6
    decimals: int = 2
    tariffs: int = 2
    base_kw: float = 1.5
    solar_kw: float = 0.0  # a prosumer's panel peak
    tan_phi: float = 0.35
    timezone: str = "Europe/Moscow"
    start: datetime = field(default_factory=lambda: datetime.now(UTC) - timedelta(days=1))
    seed: int = 0
    faults: Faults = field(default_factory=Faults)
    journal: MeterJournal = field(default_factory=MeterJournal)  # clock corrections and event journals
    _energy: dict[int, list[float]] = field(default_factory=dict, repr=False)
    _clock: datetime | None = field(default=None, repr=False)
    relay: str = "connected"  # the load switch: connected | disconnected | ready_for_reconnection
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        self._rng.seed(self.seed or zlib.crc32(self.serial.encode()))
        initial = self._rng.uniform(1000, 50_000) * 1000
        self._energy = {t: [0.0, 0.0, 0.0, 0.0] for t in range(1, max(self.tariffs, 1) + 1)}
        self._energy[1][0] = initial
        if self.faults.wrap_after is not None:
            modulus = 10**self.digits * 1000
            per_hour = self.base_kw * 1000
            self._energy[1][0] = modulus - per_hour * self.faults.wrap_after.total_seconds() / 3600
        self._clock = self.start

    @property
    def modulus_wh(self) -> int:
        """Registers wrap to zero at this many Wh."""
        return int(10**self.digits) * 1000

    def _load_kw(self, local: datetime) -> tuple[float, float]:
        load, solar = self._curve_kw(local)
        return load * (0.9 + 0.2 * self._rng.random()), solar

    def _curve_kw(self, local: datetime) -> tuple[float, float]:
        """(load, solar) of the daily curves at `local`, without the minute-to-minute noise."""
        hour = local.hour + local.minute / 60
        curve = 0.6 + 0.5 * math.exp(-((hour - 8) ** 2) / 4) + 0.9 * math.exp(-((hour - 19.5) ** 2) / 6)
        sun = max(0.0, math.sin(math.pi * (hour - 6) / 14)) if 6 <= hour <= 20 else 0.0
        return self.base_kw * curve, self.solar_kw * sun

    def _advance(self, until: datetime) -> None:
        tz = ZoneInfo(self.timezone)
        assert self._clock is not None
        while self._clock + MINUTE <= until:
            local = self._clock.astimezone(tz)
            load, solar = self._load_kw(local)
            net = load - solar
            zone = zone_of(local, self.tariffs)
            regs = self._energy[zone]
            if self.relay != "connected":  # the load switch is open: no energy flows either way
                self._clock += MINUTE
                continue
            kwh = abs(net) / 60
            if net >= 0:
                regs[0] += kwh * 1000
                regs[2] += kwh * 1000 * self.tan_phi
            else:
                regs[1] += kwh * 1000
                regs[3] += kwh * 1000 * self.tan_phi * 0.2
            self._clock += MINUTE

    def registers(self, now: datetime | None = None) -> dict[int, Values]:
        """Tariff → channel → Wh as the registers show at `now` (total in tariff 0), wrapped, faults applied."""
        now = now or datetime.now(UTC)
        with self._lock:
            self._advance(now)
            resolution = 1000 // 10**self.decimals
            result: dict[int, Values] = {}
            totals = [0.0, 0.0, 0.0, 0.0]
            for zone, regs in self._energy.items():
                totals = [a + b for a, b in zip(totals, regs, strict=True)]
                if self.tariffs > 1:
                    result[zone] = self._show(regs, resolution)
            result[0] = self._show(totals, resolution)
            if self.faults.lower_by_wh:
                for values in result.values():
                    a_plus = values[Channel.A_PLUS]
                    if a_plus is not None:
                        values[Channel.A_PLUS] = max(0, a_plus - self.faults.lower_by_wh)
            return result

    def _show(self, regs: list[float], resolution: int) -> Values:
        shown: Values = {}
        for channel, value in zip(CHANNELS, regs, strict=True):
            whole = int(value) % self.modulus_wh
            shown[channel] = whole - whole % resolution
        return shown

    def switch(self, state: str, now: datetime | None = None) -> None:
        """Set the load switch to `state` at `now`: energy counted up to then stays, none flows while it is open."""
        with self._lock:
            self._advance(now or datetime.now(UTC))
            self.relay = state

    def power_kw(self, now: datetime | None = None) -> tuple[float, float]:
        """(load, solar) in kW at `now` (the daily curves, without noise); (0, 0) while the load switch is open."""
        if self.relay != "connected":
            return 0.0, 0.0
        return self._curve_kw((now or datetime.now(UTC)).astimezone(ZoneInfo(self.timezone)))

    def clock(self, now: datetime | None = None) -> datetime:
        """The meter's own clock, drift included."""
        return (now or datetime.now(UTC)) + self.faults.clock_drift + self.journal.shift

    def roll(self, probability: float) -> bool:
        """True with `probability` (for random faults), from the meter's own generator."""
        return probability > 0 and self._rng.random() < probability
