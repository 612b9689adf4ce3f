"""The project's one exception hierarchy.

Every library error (SQLAlchemy, psycopg, pymodbus, pyserial, paho) is translated
into one of these at the boundary where it is raised::

    AmrError
    ├── ConfigError            a configuration file or override is wrong
    ├── InputError             a value given by a user (CSV row, CLI flag) is wrong
    ├── StoreError             the database refused or could not be reached
    │   └── StoreUnavailable   the database cannot be reached at all (retry later)
    ├── NotFound               a meter, reading or record does not exist (or is not visible)
    └── DriverError            talking to a meter failed
        ├── ConnectError       the bus or device could not be opened
        ├── ReadTimeout        the device did not answer in time
        ├── ProtocolError      the answer was garbled (CRC/BCC, framing, unexpected length)
        └── DeviceError        the device answered with an error (exception code, access denied)

A `DriverError` carries a stable `code` (``timeout``, ``connect``, ``modbus.busy``,
``mercury.access_denied``, ``iec.bcc``...) and `retryable`: whether another attempt may
succeed. Both are set where the protocol's answer is decoded (each driver package's
``errors`` module); the collector retries by `retryable` and records the code.

Validation verdicts are not exceptions: a refused reading is data (see
`amr.validation`), kept with its reason codes.
"""

from __future__ import annotations


class AmrError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(AmrError):
    """A configuration file, key or override is wrong; the message says where and how to fix it."""


class InputError(AmrError, ValueError):
    """A value supplied by a user is wrong; the message names it and the fix."""


class StoreError(AmrError):
    """The store refused an operation."""


class StoreUnavailable(StoreError):
    """The store cannot be reached; the operation may succeed later."""


class NotFound(AmrError, LookupError):
    """The thing asked for does not exist or is not visible to the caller."""


class DriverError(AmrError):
    """Talking to a meter failed; `code` says what it means, `retryable` whether to try again."""

    code: str = "driver"
    retryable: bool = False

    def __init__(self, *args: object, code: str | None = None, retryable: bool | None = None) -> None:
        super().__init__(*args)
        if code is not None:
            self.code = code
        if retryable is not None:
            self.retryable = retryable


class ConnectError(DriverError):
    """The bus or the device could not be opened or the connection was lost (a converter reconnecting)."""

    code = "connect"
    retryable = True


class ReadTimeout(DriverError):
    """The device did not answer within the timeout (a busy line, a lost frame, a slow meter)."""

    code = "timeout"
    retryable = True


class ProtocolError(DriverError):
    """The answer could not be understood: bad checksum, framing or length (noise: the next is usually fine)."""

    code = "protocol"
    retryable = True


class DeviceError(DriverError):
    """The device answered with an error of its own; by default it will say the same again."""

    code = "device"
