"""shift_time on the clock of a simulated СПОДЭС meter (class 8, method 6; Blue Book, Clock).

    C3 01 II 00 08 00 00 01 00 00 FF 06 01 10 SS SS     Action-Request-Normal: shift_time(long seconds)
    C7 01 II 00 RR                                      Action-Response-Normal: RR the action result

Only the configurator (client 48) may shift it (read-write-denied otherwise); the shift must be a long
within −900..900 s (other-reason beyond, type-unmatched for another type). SET of attribute 2 is
`simulators.dlms.association`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from dlms_cosem import enumerations as enums  # type: ignore[import-untyped]
from dlms_cosem.protocol import xdlms  # type: ignore[import-untyped]

from simulators.dlms.objects import CLOCK, CLOCK_OBIS, Reading

SHIFT_TIME = 6
MAX_SHIFT_S = 900
LONG = 0x10
SHIFTS: dict[str, list[int]] = {}  # serial → the shifts it carried out, in seconds (tests look)


def is_shift(apdu: bytes) -> bool:
    """An Action-Request-Normal for shift_time on the clock."""
    return (len(apdu) >= 12 and apdu[1] == 1 and int.from_bytes(apdu[3:5], "big") == CLOCK
            and tuple(apdu[5:11]) == CLOCK_OBIS and apdu[11] == SHIFT_TIME)


def shift(apdu: bytes, client_sap: int, configurator: int, reading: Reading,
          set_clock: Callable[[datetime], None]) -> bytes:
    """The Action-Response-Normal to shift_time, the clock moved when it succeeds."""
    invoke = xdlms.InvokeIdAndPriority.from_bytes(apdu[2:3])
    parameters = apdu[12:]
    status = enums.ActionResultStatus.SUCCESS
    if client_sap != configurator:
        status = enums.ActionResultStatus.READ_WRITE_DENIED
    elif len(parameters) != 4 or parameters[0] != 1 or parameters[1] != LONG:
        status = enums.ActionResultStatus.TYPE_UNMATCHED
    else:
        seconds = int.from_bytes(parameters[2:4], "big", signed=True)
        if abs(seconds) > MAX_SHIFT_S:
            status = enums.ActionResultStatus.OTHER_REASON
        else:
            set_clock(reading.clock + timedelta(seconds=seconds))
            serial = getattr(reading.meter, "serial", "")
            SHIFTS.setdefault(serial, []).append(seconds)
    return bytes(xdlms.ActionResponseNormal(status=status, invoke_id_and_priority=invoke).to_bytes())
