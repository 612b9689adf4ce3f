"""Security suite 0 of DLMS/COSEM (AES-128-GCM, 12-byte tags): HLS-GMAC and general-glo-ciphering.

Green Book 9.2.7 / 9.2.4.8.3::

    IV  = system title (8) + invocation counter (4)
    SC  = security control byte: 0x10 authenticated, 0x20 encrypted, low nibble the suite (0)
    ciphered APDU = ciphertext + GCM tag (12), additional data SC + AK
    f(challenge) of HLS-GMAC = SC + IC + GMAC(SC + AK + challenge) with the answering side's system title
    general-glo-ciphering (DB): DB <system title as octet string> <length> SC IC(4) <ciphertext + tag>

General-glo-ciphering is encoded here: ``dlms-cosem`` (21.3 to 25.1) writes its length in one byte, which
fails for the longer answers (up to the 512-byte PDU) a meter sends.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from simulators.dlms import axdr

TAG_LENGTH = 12
AUTHENTICATED, ENCRYPTED = 0x10, 0x20
GENERAL_GLO_CIPHERING = 0xDB


@dataclass(frozen=True, slots=True)
class Keys:
    """A meter's global keys (16 bytes each) and its system title (8 bytes)."""

    encryption: bytes
    authentication: bytes
    system_title: bytes


class CipherError(ValueError):
    """A ciphered APDU or HLS answer that does not check out."""


def _iv(system_title: bytes, counter: int) -> bytes:
    if len(system_title) != 8:
        raise CipherError(f"a system title is 8 bytes, not {len(system_title)}")
    return system_title + counter.to_bytes(4, "big")


def gmac(keys: Keys, system_title: bytes, counter: int, control: int, challenge: bytes) -> bytes:
    """The 12-byte GMAC of `challenge` (only authenticated: everything is additional data)."""
    encryptor = Cipher(algorithms.AES(keys.encryption), modes.GCM(_iv(system_title, counter))).encryptor()
    encryptor.authenticate_additional_data(bytes((control,)) + keys.authentication + challenge)
    encryptor.finalize()
    return encryptor.tag[:TAG_LENGTH]


def encrypt(keys: Keys, system_title: bytes, counter: int, control: int, plain: bytes) -> bytes:
    """Ciphertext and tag of `plain` (authenticated and encrypted)."""
    encryptor = Cipher(algorithms.AES(keys.encryption), modes.GCM(_iv(system_title, counter))).encryptor()
    encryptor.authenticate_additional_data(bytes((control,)) + keys.authentication)
    data = encryptor.update(plain) + encryptor.finalize()
    return data + encryptor.tag[:TAG_LENGTH]


def decrypt(keys: Keys, system_title: bytes, counter: int, control: int, ciphered: bytes) -> bytes:
    """`ciphered` (ciphertext + tag) back to the plain APDU; CipherError when the tag is wrong."""
    if control & (AUTHENTICATED | ENCRYPTED) != AUTHENTICATED | ENCRYPTED:
        raise CipherError(f"security control {control:02X}: only authenticated and encrypted APDUs are served")
    tag, body = ciphered[-TAG_LENGTH:], ciphered[:-TAG_LENGTH]
    mode = modes.GCM(_iv(system_title, counter), tag, min_tag_length=TAG_LENGTH)
    decryptor = Cipher(algorithms.AES(keys.encryption), mode).decryptor()
    decryptor.authenticate_additional_data(bytes((control,)) + keys.authentication)
    try:
        return decryptor.update(body) + decryptor.finalize()
    except InvalidTag:
        raise CipherError("the GCM tag does not check out: wrong keys, system title or counter") from None


def unwrap_general(apdu: bytes) -> tuple[bytes, int, int, bytes]:
    """(system title, security control, invocation counter, ciphertext + tag) of a general-glo-ciphering APDU."""
    if not apdu or apdu[0] != GENERAL_GLO_CIPHERING:
        raise CipherError("not a general-glo-ciphering APDU")
    title_length, position = axdr.read_length(apdu, 1)
    title = apdu[position : position + title_length]
    size, position = axdr.read_length(apdu, position + title_length)
    content = apdu[position : position + size]
    if len(content) != size or size < 5 + TAG_LENGTH:
        raise CipherError("a general-glo-ciphering APDU cut short")
    return title, content[0], int.from_bytes(content[1:5], "big"), content[5:]


def wrap_general(system_title: bytes, control: int, counter: int, ciphered: bytes) -> bytes:
    """A general-glo-ciphering APDU (lengths in the variable-length form, whatever the size)."""
    content = bytes((control,)) + counter.to_bytes(4, "big") + ciphered
    return (
        bytes((GENERAL_GLO_CIPHERING,))
        + axdr.length(len(system_title))
        + system_title
        + axdr.length(len(content))
        + content
    )
