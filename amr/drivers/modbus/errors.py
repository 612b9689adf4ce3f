"""What a Modbus exception response means: its name, stable code and whether to ask again."""

from __future__ import annotations

from typing import NamedTuple

from amr.errors import DeviceError


class ModbusException(NamedTuple):
    """One Modbus exception code (the byte after the function code | 0x80)."""

    name: str
    code: str
    retryable: bool


EXCEPTIONS: dict[int, ModbusException] = {
    1: ModbusException("illegal function", "modbus.illegal_function", False),
    2: ModbusException("illegal data address", "modbus.illegal_address", False),
    3: ModbusException("illegal data value", "modbus.illegal_value", False),
    4: ModbusException("server device failure", "modbus.device_failure", False),
    5: ModbusException("acknowledge", "modbus.acknowledge", True),  # accepted, still working: ask later
    6: ModbusException("server device busy", "modbus.busy", True),
    8: ModbusException("memory parity error", "modbus.memory_parity", False),
    10: ModbusException("gateway path unavailable", "modbus.gateway_path", True),  # a gateway restarting
    11: ModbusException("gateway target device failed to respond", "modbus.gateway_target", True),
}
EXCEPTION_NAMES = {number: meaning.name for number, meaning in EXCEPTIONS.items()}
ILLEGAL_DATA_ADDRESS = 2  # the exception of a read that reaches a register the device lacks


class ModbusExceptionError(DeviceError):
    """The device answered a Modbus exception; `exception_code` is its number, `code` its meaning."""

    def __init__(self, where: str, unit: int, exception_code: int) -> None:
        meaning = EXCEPTIONS.get(exception_code, ModbusException("exception", "modbus.exception", False))
        super().__init__(
            f"{where}: unit {unit} answered {meaning.name} ({exception_code})",
            code=meaning.code,
            retryable=meaning.retryable,
        )
        self.exception_code = exception_code
