"""The DLMS simulator's byte layer against published frames.

Frames from public traces of Gurux's GXDLMSDirector and Python client talking to real meters:
* https://pastebin.com/Vvs6PqXK (Gurux Python client, client SAP 16, serial)
* https://pastebin.com/CJw7HhSs (GXDLMSDirector, client SAP 32 with a low-level password)
* https://gist.github.com/knogi/f3d4853b936164882e5ed653498e7b61 (SNRM proposing 1010-byte frames, LN AARQ/AARE)
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from dlms_cosem import enumerations
from dlms_cosem.protocol import acse

from amr.protocols import dlms_hdlc as hdlc
from simulators.dlms import axdr
from simulators.dlms.association import Association, Initiate, parse_aarq, parse_initiate
from simulators.dlms.objects import Reading


def frame(text: str) -> bytes:
    return bytes.fromhex(text)


SNRM = frame("7E A0 07 03 21 93 0F 01 7E")
UA_GURUX_METER = frame(
    "7E A0 1E 21 03 73 C3 7A 81 80 12 05 01 80 06 01 3E 07 04 00 00 00 01 08 04 00 00 00 01 07 22 7E"
)
SNRM_1010 = frame("7E A0 14 03 21 93 63 E7 81 80 08 05 02 03 F2 06 02 03 F2 03 F0 7E")
UA_1010 = frame("7E A0 20 21 03 73 73 98 81 80 14 05 02 03 F2 06 02 03 F2 07 04 00 00 00 01 08 04 00 00 00 01 0A 75 7E")
AARQ_LN = frame(
    "7E A0 2B 03 21 10 FB AF E6 E6 00 60 1D A1 09 06 07 60 85 74 05 08 01 01 BE 10 04 0E 01 00 00 00 06 5F 1F 04 00 "
    "00 1E 1D FF FF C5 E4 7E"
)
AARE_LN = frame(
    "7E A0 39 21 03 30 2E D2 E6 E7 00 61 82 00 29 A1 09 06 07 60 85 74 05 08 01 01 A2 03 02 01 00 A3 05 A1 03 02 01 "
    "00 BE 10 04 0E 08 00 06 5F 1F 04 00 00 10 1D 03 EF 00 07 44 36 7E"
)
AARQ_LLS_SN = frame(
    "7E A0 44 03 41 10 B3 E1 E6 E6 00 60 36 A1 09 06 07 60 85 74 05 08 01 02 8A 02 07 80 8B 07 60 85 74 05 08 02 01 "
    "AC 0A 80 08 30 30 30 30 30 30 30 30 BE 10 04 0E 01 00 00 00 06 5F 1F 04 00 1C 03 20 FF FF 0B 87 7E"
)
GET_OBJECT_LIST = frame("7E A0 19 03 21 32 6F D8 E6 E6 00 C0 01 C1 00 0F 00 00 28 00 00 FF 02 00 91 53 7E")
RR = frame("7E A0 07 03 21 51 11 E4 7E")
DISC = frame("7E A0 07 03 21 53 03 C7 7E")  # DISC from SAP 16: the SNRM above with control 53


def test_crc16_x25_check_value() -> None:
    assert hdlc.crc16_x25(b"123456789") == 0x906E


def test_snrm_decodes_and_encodes_to_the_published_bytes() -> None:
    snrm = hdlc.decode(SNRM)
    assert (snrm.kind, snrm.poll, snrm.information) == ("SNRM", True, b"")
    assert hdlc.ServerAddress.decode(snrm.destination) == hdlc.ServerAddress(1, None, 1)
    assert snrm.source == bytes((16 << 1 | 1,))
    assert hdlc.Frame(snrm.destination, snrm.source, hdlc.SNRM | hdlc.POLL_FINAL).encode() == SNRM


def test_ua_answering_a_1010_byte_proposal_is_the_published_ua() -> None:
    snrm = hdlc.decode(SNRM_1010)
    negotiated = hdlc.negotiate(snrm.information, hdlc.Parameters(2048, 2048, 1, 1))
    assert negotiated == hdlc.Parameters(1010, 1010, 1, 1)
    ua = hdlc.Frame(snrm.source, snrm.destination, hdlc.UA | hdlc.POLL_FINAL, negotiated.encode()).encode()
    assert ua == UA_1010


def test_a_real_meters_ua_decodes_with_its_hcs_and_fcs() -> None:
    ua = hdlc.decode(UA_GURUX_METER)
    assert ua.kind == "UA"
    assert ua.information == hdlc.Parameters(128, 62, 1, 1).encode()
    # a meter offering less than it is asked for: the smaller values win
    assert hdlc.negotiate(b"", hdlc.Parameters(512, 62, 1, 1)) == hdlc.Parameters(128, 62, 1, 1)


def test_information_frames_and_supervisory_frames() -> None:
    aarq = hdlc.decode(AARQ_LN)
    assert (aarq.kind, aarq.send_sequence, aarq.receive_sequence, aarq.poll, aarq.segmented) == ("I", 0, 0, True, False)
    get = hdlc.decode(GET_OBJECT_LIST)
    assert (get.kind, get.send_sequence, get.receive_sequence) == ("I", 1, 1)
    assert get.information[3:] == bytes.fromhex("C001C1000F0000280000FF0200")
    rr = hdlc.decode(RR)
    assert (rr.kind, rr.receive_sequence, rr.poll) == ("RR", 2, True)
    assert hdlc.decode(DISC).kind == "DISC"
    for published in (AARQ_LN, AARE_LN, GET_OBJECT_LIST, RR, UA_1010):
        f = hdlc.decode(published)
        assert hdlc.Frame(f.destination, f.source, f.control, f.information, f.segmented).encode() == published


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[:-2] + bytes((b[-2] ^ 1,)) + b[-1:], "bad FCS"),
        (lambda b: b[:7] + bytes((b[7] ^ 1,)) + b[8:], "bad FCS"),
        (lambda b: b[:2] + bytes((b[2] + 1,)) + b[3:], "the format field says"),
        (lambda b: b[1:], "starts and ends with 7E"),
    ],
)
def test_damaged_frames_are_refused_with_the_reason(damage: object, message: str) -> None:
    assert callable(damage)
    with pytest.raises(hdlc.FrameError, match=message):
        hdlc.decode(damage(AARQ_LN))


def test_hcs_is_checked_apart_from_the_fcs() -> None:
    damaged = bytearray(AARQ_LN)
    damaged[6] ^= 0x01  # HCS low byte; then make the FCS right again
    damaged[-3:-1] = hdlc.crc16_x25(bytes(damaged[1:-3])).to_bytes(2, "little")
    with pytest.raises(hdlc.FrameError, match="bad HCS"):
        hdlc.decode(bytes(damaged))


def test_frames_are_cut_from_a_stream_with_noise_and_shared_flags() -> None:
    buffer = bytearray(b"\x00\x13" + SNRM + RR[1:] + GET_OBJECT_LIST[:10])
    assert hdlc.take_frame(buffer) == SNRM
    assert hdlc.take_frame(buffer) == RR  # its opening flag is SNRM's closing one
    assert hdlc.take_frame(buffer) is None
    buffer += GET_OBJECT_LIST[10:]
    assert hdlc.take_frame(buffer) == GET_OBJECT_LIST
    assert hdlc.take_frame(buffer) is None


def test_four_byte_server_address() -> None:
    address = hdlc.ServerAddress(1, 300, 4)
    assert address.encode() == bytes((0x00, 0x02, 0x04, 0x59))
    assert hdlc.ServerAddress.decode(address.encode()) == address


def reading() -> Reading:
    return Reading({0: {}}, datetime(2026, 1, 15, 9, 30, tzinfo=UTC), "Europe/Moscow")


def association(sap: int, **options: object) -> Association:
    passwords = {32: b"00000000", 48: b"1234567812345678"}
    return Association(sap, passwords, reading, lambda _: None, "Europe/Moscow", **options)  # type: ignore[arg-type]


def test_published_ln_aarq_is_accepted_with_the_published_initiate_response() -> None:
    apdu = hdlc.decode(AARQ_LN).information[3:]
    proposal = parse_aarq(apdu)
    assert (proposal.context, proposal.mechanism, proposal.calling_title) == (1, 0, None)
    assert parse_initiate(proposal.user) == Initiate(version=6, conformance=0x1E1D, max_pdu=0xFFFF)
    aare = association(16, max_pdu=0x03EF).handle(apdu)
    assert aare is not None
    published = hdlc.decode(AARE_LN).information[3:]
    # result, source diagnostic and user information (InitiateResponse) byte for byte as the meter sent them
    for element in ("A203020100", "A305A103020100", "BE10040E0800065F1F040000101D03EF0007"):
        assert bytes.fromhex(element) in published
        assert bytes.fromhex(element) in aare
    parsed = acse.ApplicationAssociationResponse.from_bytes(aare)
    assert parsed.result == enumerations.AssociationResult.ACCEPTED


def test_published_short_name_aarq_is_rejected_naming_the_context() -> None:
    apdu = hdlc.decode(AARQ_LLS_SN).information[3:]
    proposal = parse_aarq(apdu)
    assert (proposal.context, proposal.mechanism, proposal.password) == (2, 1, b"00000000")
    aare = association(32).handle(apdu)
    assert aare is not None
    parsed = acse.ApplicationAssociationResponse.from_bytes(aare)
    assert parsed.result == enumerations.AssociationResult.REJECTED_PERMANENT
    diagnostic = enumerations.AcseServiceUserDiagnostics.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED
    assert parsed.result_source_diagnostics == diagnostic


def test_a_get_before_association_is_an_exception_response() -> None:
    get = hdlc.decode(GET_OBJECT_LIST).information[3:]
    assert association(16).handle(get) == bytes((0xD8, 0x01, 0x03))  # service-not-allowed, other-reason


def test_date_time_layout() -> None:
    moment = datetime(2026, 1, 15, 9, 30, 5, 120_000, tzinfo=UTC)
    raw = axdr.date_time(moment, "Europe/Moscow")
    # 2026-01-15 Thursday 12:30:05.12 local, deviation -180 (UTC+3), no daylight saving
    assert raw == bytes.fromhex("07EA010F040C1E050CFF4C00")
    assert axdr.parse_date_time(raw, "Europe/Moscow") == moment
    summer = axdr.date_time(datetime(2026, 7, 1, 12, tzinfo=UTC), "Europe/Berlin")
    assert summer[-3:] == bytes.fromhex("FF8880")  # -120 minutes, daylight saving active
    with pytest.raises(ValueError, match="12 bytes"):
        axdr.parse_date_time(raw[:-1], "Europe/Moscow")
