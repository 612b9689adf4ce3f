"""One association with one meter for work beyond a poll (the relay, instantaneous values).

`in_session` opens the meter's link the way a poll does (a TCP connection per meter on a
``dlms-tcp`` bus; the serial line, held, on a ``dlms-hdlc`` bus), associates with the meter's
configured client, runs `work` on the session, releases and closes. Blocking: run it in a thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from dlms_cosem import cosem, enumerations  # type: ignore[import-untyped]
from dlms_cosem.protocol import xdlms  # type: ignore[import-untyped]

from amr.config import MeterConfig
from amr.drivers.dlms import errors
from amr.drivers.dlms.driver import DlmsHdlcDriver, _DlmsDriver, _host_port
from amr.drivers.dlms.links import HdlcLink, WrapperLink
from amr.drivers.dlms.ports import Port, TcpPort
from amr.drivers.dlms.session import Session
from amr.drivers.dlms.settings import MeterLink
from amr.drivers.serial_line import SerialLine
from amr.errors import DriverError, ReadTimeout

T = TypeVar("T")
Work = Callable[[Session, MeterLink], T]


def in_session(driver: _DlmsDriver, meter: MeterConfig, work: Work[T]) -> T:
    """`work` run in an association with `meter` over `driver`'s bus."""
    link = driver.link_of(meter)
    timeout = driver._timeout(meter)
    if isinstance(driver, DlmsHdlcDriver):
        with driver._lock:
            try:
                driver.line.open()
                return _associated(driver, driver.line, link, meter, timeout, work)
            except DriverError as exc:
                if errors.code_of(exc) is None:  # the line's own ConnectError / ReadTimeout
                    code = errors.TIMEOUT if isinstance(exc, ReadTimeout) else errors.CONNECT
                    errors.coded(exc, code, retryable=True)
                raise
    host, port_no = _host_port(link.meter.host or driver.bus.url)
    port = TcpPort(host, port_no, timeout)
    try:
        port.open()
        return _associated(driver, port, link, meter, timeout, work)
    finally:
        port.close()


def _associated(driver: _DlmsDriver, port: Port, link: MeterLink, meter: MeterConfig, timeout: float,
                work: Work[T]) -> T:
    data_link: HdlcLink | WrapperLink
    if (driver.settings.transport or driver.transport) == "wrapper" and not isinstance(port, SerialLine):
        data_link = WrapperLink(port, link.security.client, link.meter.logical_device, timeout)
    else:
        data_link = driver._hdlc(port, link, timeout)
    session = Session(data_link, link.security, max_pdu_size=driver.settings.max_pdu_size,
                      counter=driver._counters.get(meter.serial, 0))
    try:
        data_link.open()
        session.associate()
        result = work(session, link)
        session.release()
        return result
    finally:
        driver._counters[meter.serial] = session.counter
        data_link.close()


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
    hint = " (the disconnect control needs a client allowed to act, in СПОДЭС the configurator, 48)" if denied else ""
    raise errors.device(f"{obis} method {method}: {name}{hint}", code, retryable=retry)
