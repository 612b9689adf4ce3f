"""A DLMS/COSEM meter for tests, built from Gurux's server classes (`gurux-dlms`, GPLv2, test-only).

The driver under test uses `dlms_cosem`; this server is a different implementation, so the
two meet only on the wire. `GuruxMeter` serves one logical device over real TCP sockets on
127.0.0.1, as the TCP wrapper (IEC 62056-47) or as HDLC (IEC 62056-46; over a plain TCP
connection, which is also what a ``socket://`` RS-485 converter is); `GuruxLine` serves HDLC
at the far end of a pty, a serial line. Each connection gets its own server instance (Gurux
keeps association state per instance).

Gurux 1.0.203's server side needs small fixes from outside; each is a method below with a
comment saying what it fixes.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import socket
import threading
import tty
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gurux_dlms import GXDateTime, GXServerReply  # type: ignore[import-untyped]
from gurux_dlms.enums import Authentication, DataType, InterfaceType  # type: ignore[import-untyped]
from gurux_dlms.enums.AccessMode import AccessMode  # type: ignore[import-untyped]
from gurux_dlms.enums.MethodAccessMode import MethodAccessMode  # type: ignore[import-untyped]
from gurux_dlms.enums.SourceDiagnostic import SourceDiagnostic  # type: ignore[import-untyped]
from gurux_dlms.GXByteBuffer import GXByteBuffer  # type: ignore[import-untyped]
from gurux_dlms.GXDLMSLongTransaction import GXDLMSLongTransaction  # type: ignore[import-untyped]
from gurux_dlms.internal._GXCommon import _GXCommon  # type: ignore[import-untyped]
from gurux_dlms.internal._GXDataInfo import _GXDataInfo  # type: ignore[import-untyped]
from gurux_dlms.objects import (  # type: ignore[import-untyped]
    GXDLMSAssociationLogicalName,
    GXDLMSCaptureObject,
    GXDLMSClock,
    GXDLMSData,
    GXDLMSProfileGeneric,
    GXDLMSRegister,
)
from gurux_dlms.secure import GXDLMSSecureServer  # type: ignore[import-untyped]
from gurux_dlms.ValueEventArgs import ValueEventArgs  # type: ignore[import-untyped]

# Fix: the association's object list asks its ValueEventArgs for ``isSkipMaxPduSize``, which the
# class names ``skipMaxPduSize`` (an AttributeError: the object list could never be read).
ValueEventArgs.isSkipMaxPduSize = property(lambda self: self.skipMaxPduSize)


def _keep_the_rest(transaction: Any, data: Any) -> None:
    transaction.data = GXByteBuffer()
    transaction.data.set(data)  # from the buffer's position: what the last block did not carry


# Fix: after each block the GET handler keeps what is left with ``transaction.setData(buffer)``, a
# method `GXDLMSLongTransaction` lacks (an AttributeError after the second block).
GXDLMSLongTransaction.setData = _keep_the_rest


class Reply(GXServerReply):  # type: ignore[misc]
    """Fix: the server calls ``sr.setReply(...)`` and ``sr.getConnectionInfo()``, which `GXServerReply` lacks."""

    def setReply(self, value: Any) -> None:  # noqa: N802 - Gurux's name
        self.reply = value

    def getConnectionInfo(self) -> Any:  # noqa: N802 - Gurux's name
        return self.connectionInfo


AUTHENTICATION = {"none": Authentication.NONE, "lls": Authentication.LOW, "hls-gmac": Authentication.HIGH_GMAC}


class ExactRegister(GXDLMSRegister):  # type: ignore[misc]
    """A register whose scaler-unit carries the exact power of ten.

    Fix: Gurux keeps the scaler as a float multiplier and encodes ``floor(log10(multiplier))``,
    which gives 2 for 1000 (log10 of 1000.0 is 2.9999999999999996).
    """

    def __init__(self, ln: str, value: int, exponent: int, unit: int) -> None:
        super().__init__(ln)
        self.value, self.exponent, self.unit = value, exponent, unit
        self.scaler = math.pow(10, exponent)
        self.setDataType(2, DataType.UINT64)

    def getValue(self, settings: Any, e: Any) -> Any:  # noqa: N802 - Gurux's name
        if e.index == 3:
            data = GXByteBuffer()
            data.setUInt8(DataType.STRUCTURE)
            data.setUInt8(2)
            _GXCommon.setData(settings, data, DataType.INT8, self.exponent)
            _GXCommon.setData(settings, data, DataType.ENUM, self.unit)
            return data
        return super().getValue(settings, e)


class RangeProfile(GXDLMSProfileGeneric):  # type: ignore[misc]
    """A profile generic whose buffer answers selective access by range (access selector 1).

    Fixes of Gurux's range read (``__getProfileGenericData``): it asks its ValueEventArgs for
    ``getRowEndIndex()``, which the class lacks (an AttributeError); it keeps the rows with
    ``tm >= start >= 0 and tm <= end``, comparing the range's start, a datetime, with 0 (a
    TypeError); and an empty ``selected_values`` (every column, Blue Book) becomes a list holding the
    column list, so no column is written. Here: the rows whose clock lies in [from, to], every column.
    """

    def _GXDLMSProfileGeneric__getProfileGenericData(self, settings: Any, e: Any) -> Any:  # noqa: N802 - Gurux's
        if e.selector != 1 or e.parameters is None or e.rowEndIndex != 0:
            return super()._GXDLMSProfileGeneric__getProfileGenericData(settings, e)
        start, end = (self._date_time(settings, e.parameters[i]) for i in (1, 2))
        rows = [row for row in self.buffer if start <= row[0].value <= end]
        columns = self.getColumns(e.parameters[3]) if e.parameters[3] else None
        return self.getData(settings, e, rows, columns)

    @staticmethod
    def _date_time(settings: Any, raw: Any) -> datetime:
        info = _GXDataInfo()
        info.type_ = DataType.DATETIME
        moment: datetime = _GXCommon.getData(settings, GXByteBuffer(raw), info).value
        return moment


@dataclass
class MeterSpec:
    """What the served meter holds and how it lets clients in."""

    registers: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # OBIS → (value, exponent, unit)
    clock: datetime | None = None  # None: the clock object is absent
    deviation: int = -180  # minutes from local time to UTC in the clock's answers (Moscow)
    client: int = 16
    authentication: str = "none"
    password: str = ""
    authentication_key: bytes = bytes(range(0xD0, 0xE0))
    block_cipher_key: bytes = bytes(range(0x00, 0x10))
    system_title: bytes = b"GRX12345"
    logical_device: int = 1
    physical_address: int | None = None  # HDLC lower address; None accepts any
    max_pdu: int = 1024
    silent: bool = False  # accept connections and never answer
    # the load profile 1.0.99.1.0.255 (clock, A+ of the period 1.0.1.29.0.255 in tenths of Wh, status
    # 0.0.96.10.7.255) as (capture time, tenths of Wh, status) rows; empty: no profile
    profile: list[tuple[datetime, int, int]] = field(default_factory=list)


class _AgreedLimits:
    """The HDLC limits agreed by SNRM/UA, where Gurux's server looks for its HDLC setup object."""

    def __init__(self, agreed: Any) -> None:
        self._agreed = agreed

    def __bool__(self) -> bool:
        return False  # Gurux takes its own limits from a setup object when there is one: there is none

    def __getattr__(self, name: str) -> Any:
        return getattr(self._agreed, name)


class _Server(GXDLMSSecureServer):  # type: ignore[misc]
    def __init__(self, spec: MeterSpec, hdlc: bool) -> None:
        association = GXDLMSAssociationLogicalName()
        super().__init__(True, InterfaceType.HDLC if hdlc else InterfaceType.WRAPPER)  # logical names
        self.spec = spec
        association.authenticationMechanismName.mechanismId = AUTHENTICATION[spec.authentication]
        association.clientSAP = spec.client
        if spec.authentication == "lls":
            association.secret = spec.password.encode()
        elif spec.authentication == "hls-gmac":
            association.secret = b"0123456789ABCDEF"  # the server-to-client challenge's seed for HLS
        ciphering = self.getCiphering()
        ciphering.systemTitle = spec.system_title
        ciphering.authenticationKey = spec.authentication_key
        ciphering.blockCipherKey = spec.block_cipher_key
        # Fix: the maxReceivePDUSize property's setter assigns to itself (endless recursion).
        self.settings.maxServerPDUSize = spec.max_pdu
        # Fix: GetRequestNext (the next GET block) reads ``settings.gbtWndowSize``, a misspelling of
        # ``gbtWindowSize`` (an AttributeError: no answer ever got past its first block).
        self.settings.gbtWndowSize = self.settings.gbtWindowSize
        # Fix: it also calls ``settings.getMaxPduSize()``, which the settings class lacks (a property
        # ``maxPduSize`` only): the value agreed in the association.
        self.settings.getMaxPduSize = lambda: self.settings.maxPduSize
        if hdlc:
            self.hdlc_settings_fix()
        for obis, (value, exponent, unit) in spec.registers.items():
            self.items.append(ExactRegister(obis, value, exponent, unit))
        if spec.clock is not None:
            clock = GXDLMSClock()
            clock.time = GXDateTime(spec.clock)
            clock.deviation = spec.deviation
            self.items.append(clock)
        if spec.profile and spec.clock is not None:
            for item in self._profile(clock, spec.profile):
                self.items.append(item)
        self.items.append(association)
        # Fix: `initialize` fills an empty association's object list with `objectList.append(self.items)`,
        # the whole collection as one item (a TypeError); fill it with the objects one by one.
        for item in self.items:
            association.objectList.append(item)
        self.initialize()

    @staticmethod
    def _profile(clock: Any, rows: list[tuple[datetime, int, int]]) -> list[Any]:
        energy, status = ExactRegister("1.0.1.29.0.255", 0, -1, 30), GXDLMSData("0.0.96.10.7.255")
        profile = RangeProfile("1.0.99.1.0.255")
        profile.capturePeriod = 1800
        for column in (clock, energy, status):
            profile.captureObjects.append((column, GXDLMSCaptureObject(2, 0)))
        for at, tenths, flags in rows:
            profile.buffer.append([GXDateTime(at), tenths, flags])
        profile.entriesInUse = profile.profileEntries = len(rows)
        status.setDataType(2, DataType.UINT8)
        return [energy, status, profile]

    def hdlc_settings_fix(self) -> None:
        """Fixes of the HDLC server side.

        - The inactivity check computes ``int(timedelta)`` (a TypeError on every frame); keep it off.
        - `handleSnrmRequest` and `generateDisconnectRequest` write the UA's parameters from
          ``self.hdlc`` (the HDLC setup object, None unless one is configured: an AttributeError,
          answered as an I-frame with a hardware fault instead of a UA). Give it an object that
          reads the limits just agreed in ``settings.hdlc`` and, tested as a truth value, still
          counts as "no setup object" (so the SNRM's proposal is what is agreed).
        """
        self.hdlcSettings.inactivityTimeout = 0
        self.hdlc = _AgreedLimits(self.settings.hdlc)

    def handleSnrmRequest(self, data: Any) -> None:  # noqa: N802 - Gurux's name
        super().handleSnrmRequest(data)
        self._ua_group_length()

    def generateDisconnectRequest(self) -> None:  # noqa: N802 - Gurux's name
        super().generateDisconnectRequest()
        self._ua_group_length()

    def _ua_group_length(self) -> None:
        """Fix: the UA's parameter group length (IEC 62056-46 6.4.4.4.3.2: 81 80 length, then the
        parameters) is written as ``setUInt8(2, length)``, which `GXByteBuffer` takes as (value,
        index): the length stays 0 and a 2 lands inside the last parameter, the receive window
        (4 bytes, the UA's last). Put the length in place and the window's byte back."""
        size = len(self.replyData)
        self.replyData.setUInt8((self.settings.hdlc.windowSizeRX >> 16) & 0xFF, size - 3)
        self.replyData.setUInt8(size - 3, 2)

    # Fix: the LN command handler calls these four, which the server class does not define.
    def notifyRead(self) -> None:  # noqa: N802 - Gurux's name
        pass

    def notifyConnected(self, connectionInfo: Any) -> None:  # noqa: N802, N803
        self.onConnected(connectionInfo)

    def getTransaction(self) -> Any:  # noqa: N802
        return self.transaction

    def setTransaction(self, value: Any) -> None:  # noqa: N802
        # Fix: a long GET's transaction keeps its one ValueEventArgs as ``targets``, which the next
        # block's handler iterates as a list (a TypeError on every GetRequestNext).
        if value is not None and isinstance(value.targets, ValueEventArgs):
            value.targets = [value.targets]
        self.transaction = value

    # --- the server's callbacks ---------------------------------------------------------------
    def isTarget(self, serverAddress: int, clientAddress: int) -> bool:  # noqa: N802, N803
        spec = self.spec
        if clientAddress != spec.client:
            return False
        if self.settings.interfaceType == InterfaceType.WRAPPER:
            return serverAddress == spec.logical_device
        # Gurux joins the HDLC upper and lower addresses: upper << 7 | lower (2 bytes), << 14 (4 bytes)
        physical, upper = spec.physical_address, spec.logical_device
        return physical is None or serverAddress in (upper, (upper << 7) | physical, (upper << 14) | physical)

    def onValidateAuthentication(self, authentication: Any, password: Any) -> Any:  # noqa: N802
        if self.spec.authentication == "lls" and bytes(password or b"") != self.spec.password.encode():
            return SourceDiagnostic.AUTHENTICATION_FAILURE
        return SourceDiagnostic.NONE

    def onGetAttributeAccess(self, arg: Any) -> Any:  # noqa: N802
        return AccessMode.READ

    def onGetMethodAccess(self, arg: Any) -> Any:  # noqa: N802
        return MethodAccessMode.ACCESS

    def onFindObject(self, objectType: Any, sn: Any, ln: Any) -> Any:  # noqa: N802, N803
        return None

    def onPreRead(self, args: Any = None) -> None:  # noqa: N802 - some calls pass no arguments (fix)
        pass

    def onPostRead(self, args: Any = None) -> None:  # noqa: N802 - some calls pass no arguments (fix)
        pass

    def onPreWrite(self, args: Any = None) -> None:  # noqa: N802 - some calls pass no arguments (fix)
        pass

    def onPostWrite(self, args: Any = None) -> None:  # noqa: N802 - some calls pass no arguments (fix)
        pass

    def onPreAction(self, args: Any = None) -> None:  # noqa: N802 - some calls pass no arguments (fix)
        pass

    def onPostAction(self, args: Any = None) -> None:  # noqa: N802 - some calls pass no arguments (fix)
        pass

    def onPreGet(self, args: Any = None) -> None:  # noqa: N802 - some calls pass no arguments (fix)
        pass

    def onPostGet(self, args: Any = None) -> None:  # noqa: N802 - some calls pass no arguments (fix)
        pass

    def onConnected(self, connectionInfo: Any) -> None:  # noqa: N802, N803
        pass

    def onDisconnected(self, connectionInfo: Any) -> None:  # noqa: N802, N803
        pass

    def onInvalidConnection(self, connectionInfo: Any) -> None:  # noqa: N802, N803
        pass


class GuruxMeter:
    """A Gurux DLMS server on 127.0.0.1 (``hdlc`` False: TCP wrapper); use as a context manager."""

    def __init__(self, spec: MeterSpec, *, hdlc: bool) -> None:
        self.spec, self.hdlc = spec, hdlc
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.received: list[bytes] = []  # every chunk the server got, for tests on the wire
        self.errors: list[BaseException] = []

    def __enter__(self) -> GuruxMeter:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        for thread in self._threads:
            thread.join(5)

    def _accept(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        server = self._server()
        if server is None:
            conn.close()
            return
        conn.settimeout(0.1)
        with conn:
            while not self._stop.is_set():
                try:
                    data = conn.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                try:
                    answer = self._answer(server, data)
                except Exception:
                    return
                if answer:
                    conn.sendall(answer)

    def _server(self) -> _Server | None:
        """A fresh server (Gurux keeps one client's state per instance); None when it cannot be built."""
        try:
            return _Server(self.spec, self.hdlc)
        except Exception as exc:  # kept for the test to show
            self.errors.append(exc)
            return None

    def _answer(self, server: _Server, data: bytes) -> bytes:
        """What the server answers to `data` (nothing to a part of a frame or when silent); raises
        (kept in `errors`) when the server fails."""
        self.received.append(data)
        if self.spec.silent:
            return b""
        reply = Reply(data)
        try:
            server.handleRequest(reply)
        except Exception as exc:  # kept for the test to show
            self.errors.append(exc)
            raise
        return bytes(reply.reply) if reply.reply else b""


class GuruxLine(GuruxMeter):
    """A Gurux DLMS server (HDLC) at the far end of a pty: ``path`` is the serial device to open."""

    def __init__(self, spec: MeterSpec) -> None:
        super().__init__(spec, hdlc=True)
        self._listener.close()  # no TCP here
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # bytes as they are: no echo, no line editing
        self.path = os.ttyname(self._slave)

    def __enter__(self) -> GuruxLine:
        thread = threading.Thread(target=self._serve_line, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _serve_line(self) -> None:
        server = self._server()
        while server is not None and not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.1)
            if not ready:
                continue
            try:
                data = os.read(self._master, 4096)
                answer = self._answer(server, data)
            except Exception:
                return
            if answer:
                os.write(self._master, answer)


@contextlib.contextmanager
def serving(spec: MeterSpec, *, hdlc: bool) -> Iterator[GuruxMeter]:
    """A running `GuruxMeter`."""
    with GuruxMeter(spec, hdlc=hdlc) as meter:
        yield meter
