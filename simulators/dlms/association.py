"""The xDLMS server of one simulated meter and one client: AARQ/AARE, GET (with blocks), SET, RLRQ/RLRE.

Requests are parsed here from their Green Book layouts (a server must take what any client sends,
and an unknown class or a short-name context must be answered, not crash a parser)::

    AARQ      60 L  A1 09 06 07 60 85 74 05 08 01 CC      application context (CC 01: LN, 03: LN ciphered)
                    A6 0A 04 08 <system title>            calling AP title (HLS)
                    8A 02 07 80                           sender ACSE requirements: authentication
                    8B 07 60 85 74 05 08 02 MM            mechanism name (01 LLS, 05 HLS-GMAC)
                    AC L 80 L <password>                  calling authentication value
                    BE L 04 L 01 00 00 00 06 5F 1F 04 00 <conformance:3> <max PDU:2>   InitiateRequest
    GET       C0 01 II <class:2> <OBIS:6> <attribute:1> <selection: 00 | 01 ...>   Get-Request-Normal
              C0 02 II <block number:4>                                           Get-Request-Next
    SET       C1 01 II <class:2> <OBIS:6> <attribute:1> 00 <data>                  Set-Request-Normal
    ACTION    C3 01 II <class:2> <OBIS:6> <method:1> <00 | 01 data>                Action-Request-Normal
              (the disconnect control: `simulators.dlms.operations`; shift_time: `simulators.dlms.clock`)
    RLRQ      62 L  80 01 00 ...                                                   release, reason normal

Answers are encoded with the ``dlms-cosem`` library's APDU classes (AARE, Get-Response-With-Block /
-Last-Block, Set-Response-Normal, Action-Response, RLRE, Exception-Response); Get-Response-Normal
and general-glo-ciphering by hand (see `get_response_normal`, `simulators.dlms.security`).

Clients by SAP (СПОДЭС): 16 public (no authentication), 32 reader (LLS password), 48 configurator
(LLS password, or HLS-GMAC, mechanism 5, with the meter's keys; the only one that may SET). HLS-GMAC
(`simulators.dlms.security`): the AARE (accepted, diagnostic authentication-required) carries the
meter's system title and challenge StoC; the client proves itself with reply_to_HLS_authentication
(an ACTION on the association object) carrying f(StoC) and gets f(CtoS) back. With the ciphered
context (LN with ciphering) the InitiateRequest/Response and every later APDU are glo-ciphered.

A GET answer longer than the smaller of the client's and the meter's maximum PDU size goes in blocks
(Get-Response-With-Datablock, Get-Request-Next).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from dlms_cosem import enumerations as enums  # type: ignore[import-untyped]
from dlms_cosem import security as dlms_security
from dlms_cosem.protocol import acse, xdlms  # type: ignore[import-untyped]

from simulators.dlms import axdr, clock, operations, security
from simulators.dlms import journals as _journals  # noqa: F401  (adds the load profile and event logs to OBJECTS)
from simulators.dlms.objects import CLOCK, OBJECTS, Obis, Reading
from simulators.dlms.security import Keys

PUBLIC, READER, CONFIGURATOR = 16, 32, 48
LN_NO_CIPHERING, LN_CIPHERING = 1, 3  # application context name, last arc: logical name referencing
SERVER_CONFORMANCE = 0x00101D  # block-transfer-with-get, get, set, selective-access, action
DLMS_VERSION = 6
SERVER_MAX_PDU = 512  # what a typical СПОДЭС meter accepts and sends at most
BLOCK_OVERHEAD = 16  # Get-Response-With-Datablock header around a block's raw data, with room to spare

AARQ, AARE, RLRQ, RLRE = 0x60, 0x61, 0x62, 0x63
GET_REQUEST, SET_REQUEST, ACTION_REQUEST, GET_RESPONSE = 0xC0, 0xC1, 0xC3, 0xC4
GLO_INITIATE_REQUEST = 0x21
ASSOCIATION_METHOD_1 = bytes.fromhex("000F0000280000FF01")  # class 15, 0.0.40.0.0.255, method 1
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
    """What an AARQ asks for; `user` is the raw xDLMS content of its user information."""

    context: int  # last arc of the application context name
    mechanism: int  # 0: none
    password: bytes | None  # the calling authentication value: an LLS password or an HLS challenge
    calling_title: bytes | None  # the client's system title
    user: bytes


@dataclass(frozen=True, slots=True)
class Initiate:
    """An InitiateRequest: DLMS version, proposed conformance, the client's maximum receive PDU size."""

    version: int
    conformance: int
    max_pdu: int


def parse_aarq(apdu: bytes) -> Proposal:
    """The parts of an AARQ this server decides on; RequestError when it is not one."""
    if not apdu or apdu[0] != AARQ:
        raise RequestError("not an AARQ")
    fields = _tlv(_tlv(apdu)[AARQ])
    context_name = fields.get(0xA1, b"")
    if len(context_name) < 3:
        raise RequestError("an AARQ without an application context name")
    mechanism_name = fields.get(0x8B)
    password = _tlv(fields[0xAC]).get(0x80) if 0xAC in fields else None
    title = _tlv(fields[0xA6]).get(0x04) if 0xA6 in fields else None
    user = _tlv(fields.get(0xBE, b"")).get(0x04, b"")
    if not user:
        raise RequestError("an AARQ without user information")
    return Proposal(context_name[-1], mechanism_name[-1] if mechanism_name else 0, password, title, user)


def parse_initiate(user: bytes) -> Initiate:
    """An InitiateRequest (tag 01)::

    01 <dedicated-key: 00 | 01 L key> <response-allowed: 00 | 01 b> <quality-of-service: 00 | 01 q>
       <version> 5F 1F 04 00 <conformance:3> <client max receive PDU size:2>
    """
    if not user or user[0] != 0x01:
        raise RequestError("the user information is not an InitiateRequest")
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
    return Initiate(body[0], int.from_bytes(body[5:8], "big"), int.from_bytes(body[8:10], "big"))


def _attribute(data: bytes) -> tuple[int, Obis, int]:
    if len(data) < 9:
        raise RequestError("a COSEM attribute descriptor is 9 bytes")
    obis = (data[2], data[3], data[4], data[5], data[6], data[7])
    return int.from_bytes(data[0:2], "big"), obis, data[8]


def get_response_normal(invoke: int, data: bytes) -> bytes:
    """Get-Response-Normal with data, encoded by hand: ``dlms-cosem``'s encoder of it (21.3 to 25.1)
    appends the invoke-id byte string as one integer and fails::

        C4 01 II 00 <data>      get-response, normal, invoke-id-and-priority, result choice 0: data
    """
    return bytes((GET_RESPONSE, NORMAL, invoke, 0)) + data


@dataclass
class _Hls:
    """An HLS-GMAC association: the client's system title and challenge, the meter's, ciphering."""

    client_title: bytes
    client_challenge: bytes  # CtoS
    server_challenge: bytes  # StoC
    ciphered: bool
    client_counter: int = -1  # the last invocation counter the client used


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
    keys: Keys | None = None  # the configurator's HLS-GMAC keys; None: LLS only
    next_counter: Callable[[], int] = field(default_factory=lambda: itertools.count(1).__next__)
    max_pdu: int = SERVER_MAX_PDU
    associated: bool = False
    conformance: int = 0
    client_max_pdu: int = 0
    _long_get: _LongGet | None = field(default=None, repr=False)
    _hls: _Hls | None = field(default=None, repr=False)  # an HLS association: challenges, ciphering

    def handle(self, apdu: bytes) -> bytes | None:
        """The answer to one APDU (None: no answer)."""
        if not apdu:
            return None
        hls = self._hls
        try:
            if apdu[0] == AARQ:
                return self._associate(apdu)
            if hls is not None and hls.ciphered and apdu[0] != RLRQ:
                if apdu[0] != security.GENERAL_GLO_CIPHERING:
                    return self._exception(
                        enums.StateException.SERVICE_NOT_ALLOWED, enums.ServiceException.DECIPHERING_ERROR
                    )
                answer = self._plain(self._decipher(hls, apdu))
                return None if answer is None else self._cipher(hls, answer)
            return self._plain(apdu)
        except security.CipherError:
            return self._exception(enums.StateException.SERVICE_NOT_ALLOWED, enums.ServiceException.DECIPHERING_ERROR)
        except RequestError:
            return self._exception(enums.StateException.SERVICE_UNKNOWN, enums.ServiceException.SERVICE_NOT_SUPPORTED)

    def _plain(self, apdu: bytes) -> bytes | None:
        tag = apdu[0]
        if tag == RLRQ:
            return self._release()
        if tag == ACTION_REQUEST and self._hls is not None and not self.associated:
            return self._hls_reply(self._hls, apdu)
        if not self.associated:
            return self._exception(enums.StateException.SERVICE_NOT_ALLOWED, enums.ServiceException.OTHER_REASON)
        if tag == GET_REQUEST and len(apdu) >= 3:
            return self._get(apdu)
        if tag == SET_REQUEST and len(apdu) >= 3:
            return self._set(apdu)
        if tag == ACTION_REQUEST and clock.is_shift(apdu):
            return clock.shift(apdu, self.client_sap, CONFIGURATOR, self.read(), self.set_clock)
        if tag == ACTION_REQUEST and len(apdu) >= 3:
            return operations.act(apdu, self.client_sap, CONFIGURATOR, self.read())
        raise RequestError(f"APDU {tag:02X} is not served")

    @staticmethod
    def _exception(state: enums.StateException, service: enums.ServiceException) -> bytes:
        return bytes(xdlms.ExceptionResponse(state_error=state, service_error=service).to_bytes())

    def _associate(self, apdu: bytes) -> bytes:
        self.associated, self._long_get, self._hls = False, None, None
        diagnostic = enums.AcseServiceUserDiagnostics
        mechanisms = enums.AuthenticationMechanism
        try:
            proposal = parse_aarq(apdu)
        except RequestError:
            return self._aare(diagnostic.NO_REASON_GIVEN)
        hls = proposal.mechanism == mechanisms.HLS_GMAC and self.client_sap == CONFIGURATOR and self.keys is not None
        if proposal.context != LN_NO_CIPHERING and not (proposal.context == LN_CIPHERING and hls):
            return self._aare(diagnostic.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED)
        if self.refuse:
            return self._aare(diagnostic.AUTHENTICATION_FAILED)
        if self.client_sap not in (PUBLIC, *self.passwords):
            return self._aare(diagnostic.NO_REASON_GIVEN)  # no such client in this meter
        if self.client_sap == PUBLIC:
            if proposal.mechanism != mechanisms.NONE:
                return self._aare(diagnostic.AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNIZED)
        elif proposal.mechanism == mechanisms.NONE:
            return self._aare(diagnostic.AUTHENTICATION_MECHANISM_NAME_REQUIRED)
        elif proposal.mechanism == mechanisms.LLS:
            if proposal.password != self.passwords[self.client_sap]:
                return self._aare(diagnostic.AUTHENTICATION_FAILED)
        elif not hls:
            return self._aare(diagnostic.AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNIZED)
        session = None
        user = proposal.user
        if hls:
            assert self.keys is not None
            if proposal.calling_title is None or not proposal.password or len(proposal.calling_title) != 8:
                return self._aare(diagnostic.AUTHENTICATION_FAILED)  # HLS needs the client's title and challenge
            session = _Hls(proposal.calling_title, proposal.password, os.urandom(16), proposal.context != 1)
            if user[:1] == bytes((GLO_INITIATE_REQUEST,)):
                try:
                    user = self._decipher_initiate(session, user)
                except security.CipherError:
                    return self._aare(diagnostic.AUTHENTICATION_FAILED)
        try:
            initiate = parse_initiate(user)
        except RequestError:
            return self._aare(diagnostic.NO_REASON_GIVEN)
        if initiate.version < DLMS_VERSION:
            return self._aare(diagnostic.NO_REASON_GIVEN)
        self.conformance = initiate.conformance & SERVER_CONFORMANCE
        self.client_max_pdu = initiate.max_pdu or 0xFFFF
        if session is not None:
            self._hls = session  # associated once the client's f(StoC) checks out
            return self._aare(diagnostic.AUTHENTICATION_REQUIRED, mechanisms.HLS_GMAC)
        self.associated = True
        return self._aare(diagnostic.NULL, mechanisms(proposal.mechanism) if proposal.mechanism else None)

    def _decipher_initiate(self, session: _Hls, user: bytes) -> bytes:
        """glo-initiate-request: 21 <length> SC IC(4) <ciphertext + tag>, ciphered with the client's title."""
        assert self.keys is not None
        size, position = axdr.read_length(user, 1)
        content = user[position : position + size]
        if len(content) < 5 + security.TAG_LENGTH:
            raise security.CipherError("a glo-initiate-request cut short")
        counter = int.from_bytes(content[1:5], "big")
        session.client_counter = counter
        return security.decrypt(self.keys, session.client_title, counter, content[0], content[5:])

    def _decipher(self, session: _Hls, apdu: bytes) -> bytes:
        assert self.keys is not None
        title, control, counter, ciphered = security.unwrap_general(apdu)
        if counter <= session.client_counter:
            raise security.CipherError(f"invocation counter {counter} already used")
        plain = security.decrypt(self.keys, title or session.client_title, counter, control, ciphered)
        session.client_counter = counter
        if not plain:
            raise RequestError("an empty ciphered APDU")
        return plain

    def _cipher(self, session: _Hls, apdu: bytes) -> bytes:
        assert self.keys is not None
        control, counter = security.AUTHENTICATED | security.ENCRYPTED, self.next_counter()
        ciphered = security.encrypt(self.keys, self.keys.system_title, counter, control, apdu)
        return security.wrap_general(self.keys.system_title, control, counter, ciphered)

    def _hls_reply(self, session: _Hls, apdu: bytes) -> bytes:
        """reply_to_HLS_authentication (class 15, 0.0.40.0.0.255, method 1) with f(StoC); answered with f(CtoS)::

        C3 01 II 00 0F 00 00 28 00 00 FF 01 01 09 11 SC IC(4) GMAC(12)       the request
        C7 01 II 00 01 00 09 11 SC IC(4) GMAC(12)                            the answer: success, data
        """
        assert self.keys is not None
        invoke = xdlms.InvokeIdAndPriority.from_bytes(apdu[2:3])
        method = apdu[3:12]
        data = apdu[13:] if len(apdu) > 13 and apdu[12] == 1 else b""
        reply = data[2:] if len(data) == 2 + 5 + security.TAG_LENGTH and data[0] == axdr.OCTET_STRING else b""
        valid = apdu[1] == NORMAL and method == ASSOCIATION_METHOD_1 and len(reply) == 5 + security.TAG_LENGTH
        if valid:
            control, counter = reply[0], int.from_bytes(reply[1:5], "big")
            expected = security.gmac(self.keys, session.client_title, counter, control, session.server_challenge)
            valid = expected == reply[5:]
        if not valid:
            self._hls = None
            status = enums.ActionResultStatus.OTHER_REASON
            return bytes(xdlms.ActionResponseNormal(status=status, invoke_id_and_priority=invoke).to_bytes())
        self.associated = True
        control, counter = security.AUTHENTICATED, self.next_counter()
        proof = security.gmac(self.keys, self.keys.system_title, counter, control, session.client_challenge)
        answer = axdr.octet_string(bytes((control,)) + counter.to_bytes(4, "big") + proof)
        status = enums.ActionResultStatus.SUCCESS
        response = xdlms.ActionResponseNormalWithData(status=status, data=answer, invoke_id_and_priority=invoke)
        return bytes(response.to_bytes())

    def _initiate_response(self) -> object:
        conformance = xdlms.Conformance.from_bytes(b"\x00" + self.conformance.to_bytes(3, "big"))
        return xdlms.InitiateResponse(negotiated_conformance=conformance, server_max_receive_pdu_size=self.max_pdu)

    def _aare(
        self, diagnostic: enums.AcseServiceUserDiagnostics, mechanism: enums.AuthenticationMechanism | None = None
    ) -> bytes:
        accepted = diagnostic in (
            enums.AcseServiceUserDiagnostics.NULL,
            enums.AcseServiceUserDiagnostics.AUTHENTICATION_REQUIRED,
        )
        hls = self._hls if accepted else None
        user: object = self._initiate_response() if accepted else None
        if hls is not None and hls.ciphered and self.keys is not None:
            control, counter = security.AUTHENTICATED | security.ENCRYPTED, self.next_counter()
            plain = bytes(user.to_bytes())  # type: ignore[attr-defined]
            ciphered = security.encrypt(self.keys, self.keys.system_title, counter, control, plain)
            control_field = dlms_security.SecurityControlField(security_suite=0, authenticated=True, encrypted=True)
            user = xdlms.GlobalCipherInitiateResponse(control_field, counter, ciphered)
        aare = acse.ApplicationAssociationResponse(
            result=enums.AssociationResult.ACCEPTED if accepted else enums.AssociationResult.REJECTED_PERMANENT,
            result_source_diagnostics=diagnostic,
            ciphered=hls is not None and hls.ciphered,
            authentication=mechanism,
            system_title=self.keys.system_title if hls is not None and self.keys is not None else None,
            authentication_value=hls.server_challenge if hls is not None else None,
            user_information=acse.UserInformation(content=user) if user is not None else None,
        )
        return bytes(aare.to_bytes())

    def _release(self) -> bytes:
        plain = self.associated and self._hls is None  # a ciphered association answers without user information
        self.associated, self._long_get, self._hls = False, None, None
        user = acse.UserInformation(content=self._initiate_response()) if plain else None
        return bytes(acse.ReleaseResponse(reason=enums.ReleaseResponseReason.NORMAL, user_information=user).to_bytes())

    @property
    def _limit(self) -> int:
        ciphering = 32 if self._hls is not None and self._hls.ciphered else 0  # general-glo-ciphering around it
        return min(self.client_max_pdu, self.max_pdu) - ciphering

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
        error = self._check(class_id, obis)
        data = None
        if error is None and selection not in (b"", b"\x00"):  # 01 <selector> <parameters>: selective access
            data = OBJECTS[obis].read_selected(attribute, apdu[13:], self.read())
            error = enums.DataAccessResult.OTHER_REASON if data is None else None
        elif error is None:
            data = OBJECTS[obis].read(attribute, self.read())
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

    def _check(self, class_id: int, obis: Obis) -> enums.DataAccessResult | None:
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
        result = self._check(class_id, obis)
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
