"""Mercury 230/234 auxiliary parameters (вспомогательные параметры): instantaneous values, no I/O.

Incotex, "Протокол обмена счётчиков Меркурий 230/231/234/236", command 08h parameter 11h: read one
auxiliary parameter chosen by the byte BWRI (the parameter in the high nibble, the phase or the kind
in the low one)::

    -> [addr] 08 11 [BWRI] [CRC]
    <- [addr] [b1] [b2] [b3] [CRC]        3 data bytes, or a 4-byte status answer (a refusal)

BWRI: 0x0K power, K = (kind << 2) | phase with kind 0 P, 1 Q, 2 S and phase 0 the sum, 1..3 a phase;
0x1N voltage of phase N; 0x2N current of phase N; 0x3N power factor (0 the sum, 1..3 a phase);
0x40 frequency. The 3-byte value is sent with its most significant byte first, then the least
significant, then the middle one (the 3-byte form of the protocol's B1 B0 B3 B2 order); in the most
significant byte bit 7 is the direction of active power, bit 6 of reactive power (1: negative,
export), masked off the value (& 0x3F). Resolutions: voltage 0.01 V, current 0.001 A, power 0.01 W,
power factor 0.001, frequency 0.01 Hz.

Checked against two public implementations (November 2026), which agree with all of the above:

- the Rapid SCADA driver KpMercury23x (A. Burakhin): the 3 bytes first most significant, then the
  least, then the middle one; 0x800000 the active and 0x400000 the reactive direction bit, masked
  off (& 0x3FFFFF); BWRI 0x00 P, 0x04 Q, 0x08 S, 0x1N voltage, 0x2N current, 0x30 power factor,
  0x40 frequency; resolutions 0.01 (power, voltage, frequency) and 0.001 (current, power factor);
- github SVS1170/mercury_230, mercury230.py: ``08 11`` with BWRI 0x11..0x13 (voltage / 100),
  0x21..0x23 (current / 1000), 0x40 (frequency / 100), 0x00..0x03 (power / 100, bits 7 and 6 of
  the first byte the directions, the value first byte & 0x3F, then the third, then the second).
"""

from __future__ import annotations

from amr.errors import ProtocolError
from amr.protocols.crc import append_crc, crc_ok
from amr.protocols.mercury230 import STATUS_ANSWER_LENGTH, decode_status_answer

READ_PARAMETER, AUXILIARY = 0x08, 0x11
ANSWER_LENGTH = 6  # address, 3 data bytes, CRC
ACTIVE_NEGATIVE, REACTIVE_NEGATIVE, DIRECTION_MASK = 0x80, 0x40, 0x3F

# quantity → (BWRI, resolution)
QUANTITIES: dict[str, tuple[int, float]] = {
    **{f"voltage_l{n}": (0x10 | n, 0.01) for n in (1, 2, 3)},
    **{f"current_l{n}": (0x20 | n, 0.001) for n in (1, 2, 3)},
    **{f"power_l{n}": (0x00 | n, 0.01) for n in (1, 2, 3)},
    "power_total": (0x00, 0.01),
    **{f"power_factor_l{n}": (0x30 | n, 0.001) for n in (1, 2, 3)},
    "power_factor_total": (0x30, 0.001),
    "frequency": (0x40, 0.01),
}


def encode_request(address: int, bwri: int) -> bytes:
    """``[addr] 08 11 [BWRI] [CRC]``."""
    if not 0 <= address <= 0xFF or not 0 <= bwri <= 0xFF:
        raise ValueError(f"address and BWRI are bytes; got {address}, {bwri}")
    return append_crc(bytes((address, READ_PARAMETER, AUXILIARY, bwri)))


def is_complete(received: bytes) -> bool:
    """True when `received` holds a whole answer: 6 bytes, or a 4-byte status answer with a correct CRC."""
    return len(received) >= ANSWER_LENGTH or (len(received) == STATUS_ANSWER_LENGTH and crc_ok(received))


def decode_answer(answer: bytes, address: int, quantity: str) -> float:
    """The value of `quantity` in an answer; `DeviceError` for a refusal, `ProtocolError` for a garbled one."""
    if len(answer) == STATUS_ANSWER_LENGTH:
        decode_status_answer(answer, address)  # raises DeviceError naming the status
        raise ProtocolError(f"{quantity}: a status answer where 3 data bytes were expected")
    if len(answer) != ANSWER_LENGTH or not crc_ok(answer):
        raise ProtocolError(f"{quantity}: {len(answer)} bytes with a bad CRC or length: {answer.hex(' ')}")
    if answer[0] != address:
        raise ProtocolError(f"{quantity}: answer from address {answer[0]}, asked {address}")
    high, low, middle = answer[1], answer[2], answer[3]
    raw = (high & DIRECTION_MASK) << 16 | middle << 8 | low
    value = raw * QUANTITIES[quantity][1]
    if quantity.startswith("power_") and not quantity.startswith("power_factor") and high & ACTIVE_NEGATIVE:
        value = -value
    return value


def encode_answer(address: int, quantity: str, value: float) -> bytes:
    """The meter's answer carrying `value` (the simulator's side)."""
    raw = round(abs(value) / QUANTITIES[quantity][1])
    if raw > 0x3FFFFF:
        raise ValueError(f"{quantity} {value} does not fit 22 bits")
    negative = value < 0 and quantity.startswith("power_") and not quantity.startswith("power_factor")
    high = raw >> 16 | (ACTIVE_NEGATIVE if negative else 0)
    return append_crc(bytes((address, high, raw & 0xFF, raw >> 8 & 0xFF)))


def quantity_of(bwri: int) -> str | None:
    """The quantity a BWRI asks for (None: one this module does not read)."""
    return next((q for q, (code, _) in QUANTITIES.items() if code == bwri), None)

