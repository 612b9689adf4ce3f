"""How long one sweep of a serial bus holds the line: an estimate from frame sizes and speeds.

RS-485 carries one request at a time, so a bus whose meters together need more line time than
its schedule leaves can never keep that schedule. Per poll, handshake included (10 bits a
character for 8N1 and 7E1, 11 for Modbus RTU's 8E1/8N2 frames), plus the pause before each
request and the meter's reaction:

===============  =====================================================================
Mercury 230      open 11 + 4, serial 5 + 10, each tariff 6 + 19, close 4 + 4 characters
IEC 62056-21     sign-on, identification and option select at the sign-on speed (300
                 baud unless the bus sets one), then the readout (about 24 characters a
                 data set: every channel of every zone, serial, clock) at the speed the
                 meter switches to (9600 assumed; the sign-on speed when it cannot switch);
                 with a password, one read command and answer per register instead
Modbus RTU       each read of the meter's plan: 8 + 5 + 2 × registers characters, two gaps
===============  =====================================================================

`line_time_warnings` compares a bus's sweep with the shortest schedule interval of its meters.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from amr.config import BusConfig, Config, MeterConfig, ScheduleConfig
from amr.core.durations import format_duration
from amr.drivers.iec62056_21.settings import IecBusSettings, IecMeterSettings
from amr.drivers.modbus.settings import ModbusRtuBusSettings
from amr.drivers.serial_line import frame_pause, frame_time, rtu_gap
from amr.drivers.serial_settings import SerialBusSettings

REACTION = 0.02  # s: a meter's reaction before it answers (IEC "20 ms" meters, Mercury)
IEC_REACTION = 0.2  # s: the reaction an IEC meter announces unless it is a 20 ms one
IEC_SWITCHED = 9600  # baud an IEC meter is assumed to offer after sign-on
IEC_DATA_SET = 24  # characters of one readout line such as 1.8.1(001234.567*kWh) CR LF
IEC_IDENTIFICATION = 16  # /XXXZident CR LF


def mercury_poll(bus: BusConfig, meter: MeterConfig) -> float:
    """Seconds of line time one Mercury 230 poll of `meter` takes."""
    tariffs = 1 + (meter.tariffs if meter.tariffs > 1 else 0)
    exchanges = [(11, 4), (5, 10), *[(6, 19)] * tariffs, (4, 4)]
    line = SerialBusSettings.of(bus)
    pause = frame_pause(line) + REACTION
    return sum(frame_time(a + b, line.baudrate) + pause for a, b in exchanges)


def iec_speeds(bus: BusConfig) -> tuple[int, int]:
    """The sign-on speed of an IEC 62056-21 bus and the speed its readouts are assumed to run at."""
    own = IecBusSettings.of(bus)
    fixed = "baudrate" in own.model_fields_set or not own.baud_switch
    start = own.baudrate if fixed else 300
    stays = not own.baud_switch or bus.url.startswith("socket://")
    return start, start if stays else max(start, IEC_SWITCHED)


def iec_poll(bus: BusConfig, meter: MeterConfig) -> float:
    """Seconds of line time one IEC 62056-21 poll of `meter` takes, sign-on included."""
    start, speed = iec_speeds(bus)
    address = len(str(meter.address or ""))
    handshake = frame_time(5 + address + IEC_IDENTIFICATION + 6, start) + 2 * IEC_REACTION
    zones = 1 + (meter.tariffs if meter.tariffs > 1 else 0)
    if IecMeterSettings.of(meter).password is None:
        data = frame_time((4 * zones + 4) * IEC_DATA_SET, speed) + IEC_REACTION
    else:
        codes = 4 * zones + 2  # energy registers and the clock, one read each
        data = codes * (frame_time(15 + IEC_DATA_SET, speed) + IEC_REACTION) + frame_time(40, speed)
    return handshake + data


def modbus_rtu_poll(bus: BusConfig, meter: MeterConfig) -> float:
    """Seconds of line time one Modbus RTU poll of `meter` takes (every read of its plan)."""
    from amr.drivers.modbus.driver import register_map  # the driver module imports this one's neighbours

    line = ModbusRtuBusSettings.of(bus)
    try:
        blocks = register_map(meter, line.max_registers).plan()
    except Exception:  # an invalid map is reported by check-config on its own
        return 0.0
    pause = max(frame_pause(line), rtu_gap(line.baudrate))
    return sum(frame_time(13 + 2 * b.count, line.baudrate, 11) + rtu_gap(line.baudrate) + pause for b in blocks)


POLL_TIME = {"mercury230": mercury_poll, "iec62056-21": iec_poll, "modbus-rtu": modbus_rtu_poll}


def sweep_time(bus: BusConfig, meters: Sequence[MeterConfig]) -> float:
    """Seconds of line time one poll of every meter of `bus` takes (0 for buses that are no line)."""
    estimate = POLL_TIME.get(bus.kind)
    return 0.0 if estimate is None else sum(estimate(bus, meter) for meter in meters)


def line_time_warnings(config: Config) -> list[str]:
    """A sentence per serial bus whose sweep takes longer than its meters' shortest schedule interval."""
    warnings = []
    for bus in config.buses:
        meters = [m for m in config.meters if m.bus == bus.name]
        seconds = sweep_time(bus, meters)
        if not meters or not seconds:
            continue
        schedules: list[ScheduleConfig] = [
            m.schedule or bus.schedule or config.collector.default_schedule for m in meters
        ]
        interval = min(s.shortest_interval for s in schedules)
        if timedelta(seconds=seconds) <= interval:
            continue
        per_poll = seconds / len(meters)
        fix = "poll less often or spread the meters over more lines"
        if bus.kind == "iec62056-21" and iec_speeds(bus)[1] < IEC_SWITCHED:
            fix = "sign on at the line's speed (e.g. baudrate = 9600 and baud_switch = false), " + fix
        warnings.append(
            f"bus {bus.name!r}: one sweep of {len(meters)} meter(s) takes about {seconds:.1f} s of line time "
            f"({per_poll:.1f} s a poll at {_speed(bus)}, "
            f"handshake included), longer than its schedule's {format_duration(interval)}; {fix}"
        )
    return warnings


def _speed(bus: BusConfig) -> str:
    if bus.kind != "iec62056-21":
        return f"{SerialBusSettings.of(bus).baudrate} baud"
    start, speed = iec_speeds(bus)
    return f"{start} baud" if speed == start else f"{start} baud, then {speed}"
