"""DLMS errors: the project's `DriverError` classes with a stable ``code`` and ``retryable``.

Codes (``dlms.*``) say what went wrong where it was decoded; nothing downstream parses
message text. No answer in time is ``timeout`` and a lost connection ``connect``, as for
every driver, over either transport. ``retryable`` is False where asking again cannot help
(a wrong password, a missing object, an answer that will be the same next time).
"""

from __future__ import annotations

from amr.errors import ConnectError, DeviceError, DriverError, ProtocolError, ReadTimeout

ASSOCIATION_REFUSED = "dlms.association_refused"
ACCESS_DENIED = "dlms.access_denied"
OBJECT_UNAVAILABLE = "dlms.object_unavailable"
DATA_ACCESS = "dlms.data_access"
HDLC_FRAME = "dlms.hdlc_frame"
HDLC_REFUSED = "dlms.hdlc_refused"
WRAPPER_FRAME = "dlms.wrapper_frame"
APDU = "dlms.apdu"
VALUE = "dlms.value"
# No answer in time and a lost or refused connection are the project's common codes (the classes'
# own: ``timeout``, ``connect``), the same whichever transport, the serial line's included.
TIMEOUT = ReadTimeout.code
CONNECT = ConnectError.code


def coded(error: DriverError, code: str, *, retryable: bool) -> DriverError:
    """`error` with its ``code`` and ``retryable`` attributes set."""
    error.code = code
    error.retryable = retryable
    return error


def connect_error(message: str) -> DriverError:
    """The line or socket could not be opened or was lost: worth another try."""
    return coded(ConnectError(message), CONNECT, retryable=True)


def timeout(message: str) -> DriverError:
    """No (complete) answer in time: worth another try."""
    return coded(ReadTimeout(message), TIMEOUT, retryable=True)


def protocol(message: str, code: str = APDU, *, retryable: bool = True) -> DriverError:
    """An answer that could not be understood; a garbled frame may come right next time."""
    return coded(ProtocolError(message), code, retryable=retryable)


def device(message: str, code: str, *, retryable: bool = False) -> DriverError:
    """The meter refused (association, access, a missing object): asking again gives the same."""
    return coded(DeviceError(message), code, retryable=retryable)


def code_of(error: BaseException) -> str | None:
    """The ``code`` of an error raised here, None for others."""
    value = getattr(error, "code", None)
    return value if isinstance(value, str) else None
