"""What a meter holds: the object list of the current association, a long answer read with GET blocks.

Attribute 2 of the Association LN object 0.0.40.0.0.255 (interface class 15; DLMS UA 1000-1,
the Blue Book, 4.4.3) is an array with one structure per object the client may see::

    object_list_element ::= structure {
        class_id      long-unsigned,
        version       unsigned,
        logical_name  octet-string[6],
        access_rights structure { attribute_access array, method_access array }
    }

A meter's list (dozens to hundreds of objects) is longer than its PDU, so it arrives as a
GetResponseWithBlock series that `Session.get` joins. It tells whether the OBIS codes a meter
is configured with exist on it, and which class each one is.
"""

from __future__ import annotations

from dataclasses import dataclass

from dlms_cosem import dlms_data  # type: ignore[import-untyped]

from amr.drivers.dlms import errors
from amr.drivers.dlms.session import Session

ASSOCIATION_LN, OBJECT_LIST = 15, 2
CURRENT_ASSOCIATION = "0.0.40.0.0.255"


@dataclass(frozen=True, slots=True)
class CosemObject:
    """One entry of an object list: interface class, its version and the logical name (OBIS)."""

    class_id: int
    version: int
    obis: str


def parse_object_list(data: bytes) -> list[CosemObject]:
    """The entries of an encoded object list; `ProtocolError` ``dlms.value`` when it is not one."""
    try:
        entries = dlms_data.DlmsDataParser().parse(bytes(data), limit=1)[0]
    except Exception as exc:  # the parser raises plain exceptions on bad tags or short data
        raise errors.protocol(f"undecodable object list {bytes(data[:12]).hex(' ')}: {exc}", errors.VALUE) from None
    if not isinstance(entries, dlms_data.DataArray):
        raise errors.protocol(f"the object list is a {type(entries).__name__}, not an array", errors.VALUE)
    found = []
    for index, entry in enumerate(entries.value):
        parts = entry.value if isinstance(entry, dlms_data.DataStructure) else None
        if not parts or len(parts) < 3 or not all(isinstance(p.value, int) for p in parts[:2]):
            raise errors.protocol(f"object list entry {index} is not class, version, logical name", errors.VALUE)
        name = bytes(parts[2].value) if isinstance(parts[2].value, bytes | bytearray) else b""
        if len(name) != 6:
            raise errors.protocol(f"object list entry {index}: a logical name of {len(name)} bytes", errors.VALUE)
        found.append(CosemObject(parts[0].value, parts[1].value, ".".join(str(b) for b in name)))
    return found


def read_object_list(session: Session) -> list[CosemObject]:
    """The object list of `session`'s association (blocks joined)."""
    return parse_object_list(session.get(ASSOCIATION_LN, CURRENT_ASSOCIATION, OBJECT_LIST))
