"""The xDLMS server of one simulated meter and one client: AARQ/AARE, GET (with blocks), SET, RLRQ/RLRE.

Requests are parsed here from their Green Book layouts (a server must take what any client sends,
and an unknown class or a short-name context must be answered, not crash a parser)::

    AARQ      60 L  A1 09 06 07 60 85 74 05 08 01 CC      application context (CC 01: LN, no ciphering)
                    8A 02 07 80                           sender ACSE requirements: authentication
                    8B 07 60 85 74 05 08 02 MM            mechanism name (01 LLS, 05 HLS-GMAC)
                    AC L 80 L <password>                  calling authentication value
                    BE L 04 L 01 00 00 00 06 5F 1F 04 00 <conformance:3> <max PDU:2>   InitiateRequest
    GET       C0 01 II <class:2> <OBIS:6> <attribute:1> <selection: 00 | 01 ...>   Get-Request-Normal
              C0 02 II <block number:4>                                           Get-Request-Next
    SET       C1 01 II <class:2> <OBIS:6> <attribute:1> 00 <data>                  Set-Request-Normal
    RLRQ      62 L  80 01 00 ...                                                   release, reason normal

Answers are encoded with the ``dlms-cosem`` library's APDU classes (AARE, Get-Response-Normal /
-With-Block / -Last-Block, Set-Response-Normal, RLRE, Exception-Response).

Clients by SAP (СПОДЭС): 16 public (no authentication), 32 reader (LLS password), 48 configurator
(LLS password; the only one that may SET). A GET answer longer than the smaller of the client's and
the meter's maximum PDU size goes in blocks (Get-Response-With-Datablock, Get-Request-Next).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from dlms_cosem import enumerations as enums  # type: ignore[import-untyped]
from dlms_cosem.protocol import acse, xdlms  # type: ignore[import-untyped]

from simulators.dlms import axdr
from simulators.dlms.objects import CLOCK, OBJECTS, Obis, Reading

PUBLIC, READER, CONFIGURATOR = 16, 32, 48
LN_NO_CIPHERING = 1  # application context name, last arc: logical name referencing, no ciphering
SERVER_CONFORMANCE = 0x00101D  # block-transfer-with-get, get, set, selective-access, action
DLMS_VERSION = 6
SERVER_MAX_PDU = 512  # what a typical СПОДЭС meter accepts and sends at most
BLOCK_OVERHEAD = 16  # Get-Response-With-Datablock header around a block's raw data, with room to spare

AARQ, AARE, RLRQ, RLRE = 0x60, 0x61, 0x62, 0x63
GET_REQUEST, SET_REQUEST, GET_RESPONSE = 0xC0, 0xC1, 0xC4
NORMAL, NEXT = 1, 2


class RequestError(ValueError):
    """A request this server cannot parse."""


def _tlv(data: bytes) -> dict[int, bytes]:
    """BER tag → contents of the elements of one constructed value (one-byte tags, short or long lengths)."""
    found, position = {}, 0
    while position < len(data):
        if position + 2 > len(data):
            raise RequestError("a BER element cut short")
        tag, size, position = data[position], data[position + 1], position + 2
        if size & 0x80:
            count = size & 0x7F
            size, position = int.from_bytes(data[position : position + count], "big"), position + count
        if position + size > len(data):
            raise RequestError(f"BER element {tag:02X} claims {size} bytes past the end")
        found[tag] = data[position : position + size]
        position += size
    return found


@dataclass(frozen=True, slots=True)
class Proposal:
    """What an AARQ asks for."""

    context: int  # last arc of the application context name
    mechanism: int  # 0: none
    password: bytes | None
    conformance: int
    max_pdu: int
    version: int


def parse_aarq(apdu: bytes) -> Proposal:
    """The parts of an AARQ this server decides on; RequestError when it is not one."""
    if not apdu or apdu[0] != AARQ:
        raise RequestError("not an AARQ")
    fields = _tlv(_tlv(apdu)[AARQ])
    context_name = fields.get(0xA1, b"")
    if len(context_name) < 3:
        raise RequestError("an AARQ without an application context name")
    mechanism_name = fields.get(0x8B)
    mechanism = mechanism_name[-1] if mechanism_name else 0
    password = None
    if 0xAC in fields:
        password = _tlv(fields[0xAC]).get(0x80)
    user = _tlv(fields.get(0xBE, b"")).get(0x04, b"")
    if not user or user[0] != 0x01:
        raise RequestError("an AARQ without an InitiateRequest in its user information")
    position = 1
    for _ in range(3):  # dedicated-key, response-allowed, proposed-quality-of-service: each 00 or 01 + value
        if position >= len(user):
            raise RequestError("an InitiateRequest cut short")
        if user[position]:
            if position == 1:
                position += 2 + user[position + 1]  # 01 <length> <key>
            else:
                position += 2
        else:
            position += 1
    body = user[position:]
    if len(body) != 10 or body[1:4] != b"\x5f\x1f\x04":
        raise RequestError("an InitiateRequest whose conformance block is not 5F 1F 04 00 xx xx xx")
    return Proposal(
        context=context_name[-1],
        mechanism=mechanism,
        password=password,
        conformance=int.from_bytes(body[5:8], "big"),
        max_pdu=int.from_bytes(body[8:10], "big"),
        version=body[0],
    )


def _attribute(data: bytes) -> tuple[int, Obis, int]:
    if len(data) < 9:
        raise RequestError("a COSEM attribute descriptor is 9 bytes")
    obis = (data[2], data[3], data[4], data[5], data[6], data[7])
    return int.from_bytes(data[0:2], "big"), obis, data[8]


def get_response_normal(invoke: int, data: bytes) -> bytes:
    """Get-Response-Normal with data, encoded by hand: ``dlms-cosem`` 25.1's encoder of it
    appends the invoke-id byte string as one integer and fails::

        C4 01 II 00 <data>      get-response, normal, invoke-id-and-priority, result choice 0: data
    """
    return bytes((GET_RESPONSE, NORMAL, invoke, 0)) + data


@dataclass
class _LongGet:
    invoke: int
    blocks: list[bytes]
    sent: int = 0  # block numbers start at 1


@dataclass
class Association:
    """One client's association with one meter (on one connection, at one client SAP)."""

    client_sap: int
    passwords: dict[int, bytes]  # client SAP → LLS password
    read: Callable[[], Reading]
    set_clock: Callable[[datetime], None]
    timezone: str
    refuse: bool = False
    max_pdu: int = SERVER_MAX_PDU
    associated: bool = False
    conformance: int = 0
    client_max_pdu: int = 0
    _long_get: _LongGet | None = field(default=None, repr=False)

    def handle(self, apdu: bytes) -> bytes | None:
        """The answer to one APDU (None: no answer)."""
        if not apdu:
            return None
        tag = apdu[0]
        try:
            if tag == AARQ:
                return self._associate(apdu)
            if tag == RLRQ:
                return self._release()
            if not self.associated:
                return self._exception(enums.StateException.SERVICE_NOT_ALLOWED, enums.ServiceException.OTHER_REASON)
            if tag == GET_REQUEST and len(apdu) >= 3:
                return self._get(apdu)
            if tag == SET_REQUEST and len(apdu) >= 3:
                return self._set(apdu)
        except RequestError:
            pass
        return self._exception(enums.StateException.SERVICE_UNKNOWN, enums.ServiceException.SERVICE_NOT_SUPPORTED)

    @staticmethod
    def _exception(state: enums.StateException, service: enums.ServiceException) -> bytes:
        return bytes(xdlms.ExceptionResponse(state_error=state, service_error=service).to_bytes())

    def _associate(self, apdu: bytes) -> bytes:
        self.associated, self._long_get = False, None
        diagnostic = enums.AcseServiceUserDiagnostics
        try:
            proposal = parse_aarq(apdu)
        except RequestError:
            return self._aare(diagnostic.NO_REASON_GIVEN)
        if proposal.context != LN_NO_CIPHERING:
            return self._aare(diagnostic.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED)
        if self.refuse:
            return self._aare(diagnostic.AUTHENTICATION_FAILED)
        if self.client_sap == PUBLIC:
            if proposal.mechanism != enums.AuthenticationMechanism.NONE:
                return self._aare(diagnostic.AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNIZED)
        elif self.client_sap in self.passwords:
            if proposal.mechanism == enums.AuthenticationMechanism.NONE:
                return self._aare(diagnostic.AUTHENTICATION_MECHANISM_NAME_REQUIRED)
            if proposal.mechanism != enums.AuthenticationMechanism.LLS:
                return self._aare(diagnostic.AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNIZED)
            if proposal.password != self.passwords[self.client_sap]:
                return self._aare(diagnostic.AUTHENTICATION_FAILED)
        else:
            return self._aare(diagnostic.NO_REASON_GIVEN)  # no such client in this meter
        if proposal.version < DLMS_VERSION:
            return self._aare(diagnostic.NO_REASON_GIVEN)
        self.associated = True
        self.conformance = proposal.conformance & SERVER_CONFORMANCE
        self.client_max_pdu = proposal.max_pdu or 0xFFFF
        mechanism = enums.AuthenticationMechanism(proposal.mechanism) if proposal.mechanism else None
        return self._aare(diagnostic.NULL, mechanism)

    def _initiate_response(self) -> object:
        conformance = xdlms.Conformance.from_bytes(b"\x00" + self.conformance.to_bytes(3, "big"))
        return xdlms.InitiateResponse(negotiated_conformance=conformance, server_max_receive_pdu_size=self.max_pdu)

    def _aare(
        self, diagnostic: enums.AcseServiceUserDiagnostics, mechanism: enums.AuthenticationMechanism | None = None
    ) -> bytes:
        accepted = diagnostic == enums.AcseServiceUserDiagnostics.NULL
        aare = acse.ApplicationAssociationResponse(
            result=enums.AssociationResult.ACCEPTED if accepted else enums.AssociationResult.REJECTED_PERMANENT,
            result_source_diagnostics=diagnostic,
            authentication=mechanism,
            user_information=acse.UserInformation(content=self._initiate_response()) if accepted else None,
        )
        return bytes(aare.to_bytes())

    def _release(self) -> bytes:
        was = self.associated
        self.associated, self._long_get = False, None
        user = acse.UserInformation(content=self._initiate_response()) if was else None
        return bytes(acse.ReleaseResponse(reason=enums.ReleaseResponseReason.NORMAL, user_information=user).to_bytes())

    @property
    def _limit(self) -> int:
        return min(self.client_max_pdu, self.max_pdu)

    def _get(self, apdu: bytes) -> bytes:
        kind, invoke_byte = apdu[1], apdu[2]
        invoke = xdlms.InvokeIdAndPriority.from_bytes(bytes((invoke_byte,)))
        if kind == NEXT:
            return self._next_block(apdu, invoke)
        self._long_get = None
        if kind != NORMAL:
            raise RequestError("only Get-Request-Normal and Get-Request-Next are served")
        class_id, obis, attribute = _attribute(apdu[3:12])
        selection = apdu[12:13]
        error = self._check(class_id, obis, attribute)
        if error is None and selection not in (b"", b"\x00"):
            error = enums.DataAccessResult.OTHER_REASON  # no object here takes selective access yet
        data = None if error is not None else OBJECTS[obis].read(attribute, self.read())
        if data is None:
            result = error or enums.DataAccessResult.OBJECT_UNDEFINED
            return bytes(xdlms.GetResponseNormalWithError(error=result, invoke_id_and_priority=invoke).to_bytes())
        answer = get_response_normal(invoke_byte, data)
        if len(answer) <= self._limit:
            return answer
        if not self.conformance & 0x001000:  # block-transfer-with-get not negotiated
            error = enums.DataAccessResult.OTHER_REASON
            return bytes(xdlms.GetResponseNormalWithError(error=error, invoke_id_and_priority=invoke).to_bytes())
        size = max(1, self._limit - BLOCK_OVERHEAD)
        self._long_get = _LongGet(invoke_byte, [data[i : i + size] for i in range(0, len(data), size)])
        return self._block(invoke)

    def _block(self, invoke: object) -> bytes:
        assert self._long_get is not None
        long_get = self._long_get
        long_get.sent += 1
        data = long_get.blocks[long_get.sent - 1]
        if long_get.sent == len(long_get.blocks):
            self._long_get = None
            last = xdlms.GetResponseLastBlock(data=data, block_number=long_get.sent, invoke_id_and_priority=invoke)
            return bytes(last.to_bytes())
        block = xdlms.GetResponseWithBlock(data=data, block_number=long_get.sent, invoke_id_and_priority=invoke)
        return bytes(block.to_bytes())

    def _next_block(self, apdu: bytes, invoke: object) -> bytes:
        number = int.from_bytes(apdu[3:7], "big")
        long_get = self._long_get
        if long_get is None or long_get.sent != number:
            self._long_get = None
            error = (
                enums.DataAccessResult.NO_LONG_GET_IN_PROGRESS
                if long_get is None
                else enums.DataAccessResult.LONG_GET_ABORTED
            )
            answer = xdlms.GetResponseLastBlockWithError(
                error=error, block_number=number, invoke_id_and_priority=invoke
            )
            return bytes(answer.to_bytes())
        return self._block(invoke)

    def _check(self, class_id: int, obis: Obis, attribute: int) -> enums.DataAccessResult | None:
        obj = OBJECTS.get(obis)
        if obj is None:
            return enums.DataAccessResult.OBJECT_UNDEFINED
        if obj.class_id != class_id:
            return enums.DataAccessResult.OBJECT_CLASS_INCONSISTENT
        return None

    def _set(self, apdu: bytes) -> bytes:
        self._long_get = None
        if apdu[1] != NORMAL:
            raise RequestError("only Set-Request-Normal is served")
        invoke = xdlms.InvokeIdAndPriority.from_bytes(apdu[2:3])
        class_id, obis, attribute = _attribute(apdu[3:12])
        result = self._check(class_id, obis, attribute)
        if result is None:
            result = self._write(obis, attribute, apdu[12:])
        return bytes(xdlms.SetResponseNormal(result=result, invoke_id_and_priority=invoke).to_bytes())

    def _write(self, obis: Obis, attribute: int, rest: bytes) -> enums.DataAccessResult:
        obj = OBJECTS[obis]
        if attribute not in obj.writable:
            return enums.DataAccessResult.READ_WRITE_DENIED
        if self.client_sap != CONFIGURATOR:
            return enums.DataAccessResult.READ_WRITE_DENIED
        if not rest or rest[0] != 0 or obj.class_id != CLOCK:
            return enums.DataAccessResult.OTHER_REASON  # access selection on a SET, or nothing to write
        data = rest[1:]
        if len(data) != 14 or data[0] != axdr.OCTET_STRING or data[1] != 12:
            return enums.DataAccessResult.TYPE_UNMATCHED
        try:
            moment = axdr.parse_date_time(data[2:], self.timezone)
        except ValueError:
            return enums.DataAccessResult.OTHER_REASON
        self.set_clock(moment)
        return enums.DataAccessResult.SUCCESS
