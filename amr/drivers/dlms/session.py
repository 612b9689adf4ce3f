"""One COSEM association on a link: AARQ/AARE (with the HLS-GMAC challenge), GET with blocks, RLRQ.

The APDUs are `dlms_cosem`'s (sans-io); this module moves them through a link and
translates the library's results and exceptions into `amr.errors` with ``dlms.*`` codes.
Logical-name referencing only, as СПОДЭС requires.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import attr
from dlms_cosem import cosem, dlms_data, enumerations, exceptions, state  # type: ignore[import-untyped]
from dlms_cosem.connection import DlmsConnection  # type: ignore[import-untyped]
from dlms_cosem.protocol import acse, xdlms  # type: ignore[import-untyped]

from amr.drivers.dlms import errors
from amr.drivers.dlms.settings import DlmsSecurity
from amr.errors import DriverError

LOG = logging.getLogger(__name__)
# dlms_cosem logs whole APDUs at INFO/DEBUG, the AARQ with its LLS password among them: keep it quiet.
logging.getLogger("dlms_cosem").setLevel(logging.WARNING)
_MECHANISM = {
    "none": None,
    "lls": enumerations.AuthenticationMechanism.LLS,
    "hls-gmac": enumerations.AuthenticationMechanism.HLS_GMAC,
}
_CURRENT_ASSOCIATION = cosem.Obis(0, 0, 40, 0, 0, 255)
_DENIED = {enumerations.DataAccessResult.READ_WRITE_DENIED, enumerations.DataAccessResult.SCOPE_OF_ACCESS_VIOLATED}
_MISSING = {enumerations.DataAccessResult.OBJECT_UNAVAILABLE, enumerations.DataAccessResult.OBJECT_UNDEFINED,
            enumerations.DataAccessResult.OBJECT_CLASS_INCONSISTENT}
MAX_BLOCKS = 1000  # a GET answer in more blocks than this is a meter out of step


class Link(Protocol):
    """What a session needs of a data link."""

    def exchange(self, apdu: bytes) -> bytes:
        """Send one APDU, return the answer APDU."""


def _secret(value: Any) -> bytes | None:
    return None if value is None else bytes.fromhex(value.get_secret_value())


class Session:
    """An association with one meter; `counter` is the client's invocation counter for ciphered APDUs."""

    def __init__(self, link: Link, security: DlmsSecurity, *, max_pdu_size: int, counter: int = 0) -> None:
        """Prepare an association; nothing is sent until `associate`."""
        self.link, self.security = link, security
        password = security.password.get_secret_value().encode() if security.password is not None else None
        self._connection = DlmsConnection(
            client_system_title=bytes.fromhex(security.system_title),
            authentication_method=_MECHANISM[security.authentication],
            password=password,
            global_encryption_key=_secret(security.block_cipher_key),
            global_authentication_key=_secret(security.authentication_key),
            max_pdu_size=max_pdu_size,
            client_invocation_counter=counter,
        )
        # Propose no general block transfer: GET blocks (GetResponseWithBlock) carry long answers.
        self._connection.conformance = attr.evolve(self._connection.conformance, general_block_transfer=False)
        self.associated = False

    @property
    def counter(self) -> int:
        """The next client invocation counter (to carry into the next association with this meter)."""
        return int(self._connection.client_invocation_counter)

    def _exchange(self, request: Any) -> Any:
        try:
            out = self._connection.send(request)
        except (exceptions.LocalDlmsProtocolError, ValueError) as exc:
            raise errors.protocol(f"cannot send {type(request).__name__}: {exc}") from None
        answer = self.link.exchange(out)
        try:
            self._connection.receive_data(answer)
            return self._connection.next_event()
        except exceptions.DecryptionError:
            raise errors.protocol("a ciphered answer failed its authentication tag (keys?)", retryable=False) from None
        except DriverError:
            raise
        except Exception as exc:  # the library raises plain exceptions on undecodable APDUs
            raise errors.protocol(f"undecodable answer {answer[:12].hex(' ')}: {type(exc).__name__}: {exc}") from None

    def associate(self) -> None:
        """AARQ → AARE; for HLS-GMAC, the reply to the meter's challenge and the check of its own."""
        aare = self._exchange(self._connection.get_aarq())
        if isinstance(aare, xdlms.ExceptionResponse):
            raise errors.device(f"association answered with an exception: {aare.service_error!r}",
                                errors.ASSOCIATION_REFUSED)
        if not isinstance(aare, acse.ApplicationAssociationResponse):
            raise errors.protocol(f"expected an AARE, got {type(aare).__name__}")
        if aare.result is not enumerations.AssociationResult.ACCEPTED:
            diagnostic = getattr(aare.result_source_diagnostics, "name", aare.result_source_diagnostics)
            raise errors.device(
                f"the meter refused the association of client {self.security.client} "
                f"({self.security.authentication}): {aare.result.name}, {diagnostic}",
                errors.ASSOCIATION_REFUSED,
                retryable=aare.result is enumerations.AssociationResult.REJECTED_TRANSIENT,
            )
        if self._connection.state.current_state == state.SHOULD_SEND_HLS_SEVER_CHALLENGE_RESULT:
            reply = dlms_data.OctetStringData(self._connection.get_hls_reply()).to_bytes()
            method = cosem.CosemMethod(enumerations.CosemInterface.ASSOCIATION_LN, _CURRENT_ASSOCIATION, 1)
            answer = self._exchange(xdlms.ActionRequestNormal(cosem_method=method, data=reply))
            if self._connection.state.current_state != state.READY:
                status = getattr(answer, "status", getattr(answer, "error", None))
                raise errors.device(f"HLS-GMAC: the meter did not prove its key ({status!r})",
                                    errors.ASSOCIATION_REFUSED)
        self.associated = True

    def get(self, interface: int, obis: str, attribute: int, access: Any = None) -> bytes:
        """The encoded value of one attribute (blocks joined); `DeviceError` with a data-access code.

        `access`: a selective access descriptor (``dlms_cosem``'s `RangeDescriptor`), or None for all.
        """
        target = cosem.CosemAttribute(interface=enumerations.CosemInterface(interface),
                                      instance=cosem.Obis.from_string(obis), attribute=attribute)
        response = self._exchange(xdlms.GetRequestNormal(cosem_attribute=target, access_selection=access))
        data = b""
        for _ in range(MAX_BLOCKS):
            if isinstance(response, xdlms.GetResponseNormal):
                return bytes(response.data)
            if isinstance(response, xdlms.GetResponseWithBlock):
                data += bytes(response.data)
                response = self._exchange(xdlms.GetRequestNext(
                    block_number=response.block_number, invoke_id_and_priority=response.invoke_id_and_priority))
                continue
            if isinstance(response, xdlms.GetResponseLastBlock):
                return data + bytes(response.data)
            if isinstance(response, xdlms.GetResponseNormalWithError | xdlms.GetResponseLastBlockWithError):
                raise self._access_error(obis, attribute, response.error)
            if isinstance(response, xdlms.ExceptionResponse):
                raise errors.device(f"{obis} attribute {attribute}: exception response {response.service_error!r}",
                                    errors.DATA_ACCESS, retryable=True)
            raise errors.protocol(f"{obis} attribute {attribute}: unexpected {type(response).__name__}")
        raise errors.protocol(f"{obis} attribute {attribute}: more than {MAX_BLOCKS} blocks")

    @staticmethod
    def _access_error(obis: str, attribute: int, result: Any) -> DriverError:
        name = getattr(result, "name", str(result)).lower().replace("_", "-")
        message = f"{obis} attribute {attribute}: {name}"
        if result in _MISSING:
            return errors.device(message, errors.OBJECT_UNAVAILABLE)
        if result in _DENIED:
            return errors.device(message, errors.ACCESS_DENIED)
        access = enumerations.DataAccessResult
        retry = result in {access.TEMPORARY_FAILURE, access.HARDWARE_FAULT}
        return errors.device(message, errors.DATA_ACCESS, retryable=retry)

    def release(self) -> None:
        """RLRQ → RLRE; a meter that does not answer is left to its inactivity timer (never raises)."""
        if not self.associated:
            return
        self.associated = False
        try:
            self._exchange(self._connection.get_rlrq())
        except Exception as exc:  # releasing must not fail a poll that has its values
            LOG.debug("association release not confirmed: %s", type(exc).__name__)
