"""Each driver error code and whether it is retried, from answers decoded by the protocol code."""

from __future__ import annotations

import pytest

from amr.collector.retry import is_transient
from amr.errors import DriverError, ProtocolError
from amr.protocols import iec62056_21 as iec
from amr.protocols import mercury230 as merc
from amr.protocols.crc import append_crc, strip_crc


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (merc.Status.ACCESS_DENIED, "mercury.access_denied", False),
        (merc.Status.ILLEGAL_COMMAND, "mercury.illegal_command", False),
        (merc.Status.INTERNAL_ERROR, "mercury.internal_error", True),
        (merc.Status.CHANNEL_NOT_OPEN, "mercury.channel_not_open", True),
    ],
)
def test_a_mercury_status_frame_says_what_it_means(status: merc.Status, code: str, retryable: bool) -> None:
    frame = merc.encode_status_answer(17, status)  # the bytes a meter sends
    with pytest.raises(merc.MercuryStatusError) as caught:
        merc.decode_status_answer(frame, 17)
    assert (caught.value.code, caught.value.retryable, is_transient(caught.value)) == (code, retryable, retryable)


def test_an_iec_block_with_a_wrong_bcc_is_iec_bcc_and_retried() -> None:
    block = bytearray(iec.encode_command(iec.CommandMessage("R", "1", "1.8.0()")))
    block[-1] ^= 0xFF
    with pytest.raises(ProtocolError) as caught:
        iec.check_block(bytes(block))
    assert (caught.value.code, is_transient(caught.value)) == ("iec.bcc", True)


def test_a_frame_with_a_wrong_crc_is_crc_and_retried() -> None:
    frame = bytearray(append_crc(bytes.fromhex("11 00")))
    frame[-1] ^= 0x01
    with pytest.raises(ProtocolError) as caught:
        strip_crc(bytes(frame))
    assert (caught.value.code, is_transient(caught.value)) == ("crc", True)


def test_an_error_without_a_meaning_of_its_own_is_not_retried() -> None:
    assert (DriverError("?").code, is_transient(DriverError("?"))) == ("driver", False)
