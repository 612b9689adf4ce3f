"""One association with one meter for work beyond a poll (the relay, instantaneous values).

`in_session` opens the meter's link the way a poll does (a TCP connection per meter on a
``dlms-tcp`` bus; the serial line, held, on a ``dlms-hdlc`` bus), associates with the meter's
configured client, runs `work` on the session, releases and closes, as `_DlmsDriver` does for a poll.
Blocking: run it in the bus's threads (`_DlmsDriver.workers`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from dlms_cosem import cosem, enumerations  # type: ignore[import-untyped]
from dlms_cosem.protocol import xdlms  # type: ignore[import-untyped]

from amr.config import MeterConfig
from amr.drivers.dlms import errors
from amr.drivers.dlms.driver import _DlmsDriver
from amr.drivers.dlms.ports import Port
from amr.drivers.dlms.session import Session
from amr.drivers.dlms.settings import MeterLink

T = TypeVar("T")
Work = Callable[[Session, MeterLink], T]


def in_session(driver: _DlmsDriver, meter: MeterConfig, work: Work[T]) -> T:
    """`work` run in an association with `meter` over `driver`'s bus (blocking)."""

    def on_port(port: Port, link: MeterLink, meter: MeterConfig, timeout: float) -> T:
        return driver._associated(port, link, meter, timeout, lambda session: work(session, link))

    return driver._on_port(meter, on_port)


def action(session: Session, interface: int, obis: str, method: int, data: bytes | None) -> None:
    """ACTION (Action-Request-Normal) on one method; `DeviceError` with the meter's action result::

        C3 01 II <class:2> <OBIS:6> <method:1> 01 <data>     the request (Green Book, xDLMS ACTION service)
        C7 01 II <result:1> 00                              Action-Response-Normal without return parameters
    """
    target = cosem.CosemMethod(enumerations.CosemInterface(interface), cosem.Obis.from_string(obis), method)
    answer: Any = session._exchange(xdlms.ActionRequestNormal(cosem_method=target, data=data))
    if isinstance(answer, xdlms.ExceptionResponse):
        raise errors.device(f"{obis} method {method}: exception response {answer.service_error!r}",
                            errors.DATA_ACCESS, retryable=True)
    status = getattr(answer, "status", None)
    if not isinstance(answer, xdlms.ActionResponseNormal | xdlms.ActionResponseNormalWithData
                      | xdlms.ActionResponseNormalWithError) or status is None:
        raise errors.protocol(f"{obis} method {method}: unexpected {type(answer).__name__}")
    if status is enumerations.ActionResultStatus.SUCCESS:
        return
    name = status.name.lower().replace("_", "-")
    results = enumerations.ActionResultStatus
    denied = status in (results.READ_WRITE_DENIED, results.SCOPE_OF_ACCESS_VIOLATED)
    code = errors.ACCESS_DENIED if denied else errors.DATA_ACCESS
    retry = status in (results.TEMPORARY_FAILURE, results.HARDWARE_FAULT)
    hint = " (this needs a client allowed to act, in СПОДЭС the configurator, 48)" if denied else ""
    raise errors.device(f"{obis} method {method}: {name}{hint}", code, retryable=retry)
