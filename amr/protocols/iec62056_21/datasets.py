"""IEC 62056-21 data sets (``address(value*unit)``) and the data blocks that carry them.

A data block is data lines of data sets, e.g. ``1.8.0(001234.567*kWh)`` or
``1-0:1.8.0*255(001234.567*kWh)``; a line may hold several data sets, each line
ends with CR LF, and a readout ends with ``!`` CR LF before ETX.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from amr.errors import ProtocolError
from amr.protocols.iec62056_21.framing import CRLF, END_OF_READOUT, ETX, STX, ascii_text, check_block, with_bcc

_DATA_SET = re.compile(r"(?P<address>[^()]*)\((?P<body>[^()]*)\)")
_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")


# --- data sets and data blocks -----------------------------------------------


@dataclass(frozen=True, slots=True)
class DataSet:
    """One data set ``address(value*unit)``; unit None when the value has none."""

    address: str  # e.g. "1.8.0" or "1-0:1.8.0*255"; "" when left out
    value: str  # as sent, e.g. "001234.567", "9F139CC2", ""
    unit: str | None = None  # e.g. "kWh", "kvarh", "Imp/kWh"

    def format(self) -> str:
        """The data set as sent: ``1.8.0(001234.567*kWh)``."""
        for part, name, forbidden in ((self.address, "address", "()!"), (self.value, "value", "()*!")):
            if any(c in part for c in forbidden) or not part.isascii() or not part.isprintable():
                raise ValueError(f"data set {name} {part!r} has a character not allowed there")
        unit = "" if self.unit is None else f"*{self.unit}"
        if any(c in unit for c in "()") or not unit.isascii() or not unit.isprintable():
            raise ValueError(f"data set unit {self.unit!r} has a character not allowed there")
        return f"{self.address}({self.value}{unit})"

    @property
    def number(self) -> Decimal | None:
        """The value as an exact decimal, or None when it is not a plain number."""
        text = self.value.strip()
        return Decimal(text) if _NUMBER.fullmatch(text) else None


def parse_data_line(line: str) -> list[DataSet]:
    """The data sets of one data line (without its CR LF)."""
    data_sets: list[DataSet] = []
    position = 0
    while position < len(line):
        match = _DATA_SET.match(line, position)
        if match is None:
            raise ProtocolError(f"cannot read a data set at {line[position:]!r} in line {line!r}")
        value, star, unit = match["body"].partition("*")
        data_sets.append(DataSet(match["address"], value, unit if star else None))
        position = match.end()
    return data_sets


def _parse_block_text(text: str) -> list[DataSet]:
    data_sets: list[DataSet] = []
    for line in text.split(CRLF):
        data_sets.extend(parse_data_line(line))
    return data_sets


def decode_readout(block: bytes) -> list[DataSet]:
    """The data sets of a readout ``<STX>lines!<CR><LF><ETX><BCC>``, BCC checked."""
    if not block or block[0] != STX:
        raise ProtocolError(f"a readout starts with STX; got {block[:1]!r}")
    if block[-2:-1] != bytes((ETX,)):
        raise ProtocolError("a readout ends with ETX and a BCC (EOT marks a partial block)")
    text = ascii_text(check_block(block), "readout")
    if not text.endswith(END_OF_READOUT):
        raise ProtocolError(f"a readout ends with '!' CR LF before ETX; got {text[-10:]!r}")
    return _parse_block_text(text[: -len(END_OF_READOUT)])


def decode_data_message(block: bytes) -> list[DataSet]:
    """The data sets of a programming-mode answer ``<STX>data<ETX><BCC>``, BCC checked."""
    if not block or block[0] != STX:
        raise ProtocolError(f"a data message starts with STX; got {block[:1]!r}")
    text = ascii_text(check_block(block), "data message")
    return _parse_block_text(text.removesuffix(CRLF))


def encode_readout(lines: Iterable[str | DataSet]) -> bytes:
    """A readout block: each item one line (a `DataSet`, or a preformatted line of data sets)."""
    text = ""
    for line in lines:
        formatted = line.format() if isinstance(line, DataSet) else line
        if not (formatted.isascii() and formatted.isprintable()) or "!" in formatted:
            raise ValueError(f"data line {formatted!r} is not printable ASCII without '!'")
        try:
            parse_data_line(formatted)  # refuse what a reader could not read back
        except ProtocolError as error:
            raise ValueError(str(error)) from None
        text += formatted + CRLF
    text += END_OF_READOUT
    return with_bcc(STX, text.encode("ascii") + bytes((ETX,)))


def encode_data_message(data_sets: Iterable[DataSet]) -> bytes:
    """A programming-mode answer ``<STX>data sets<ETX><BCC>`` (no CR LF, no '!')."""
    text = "".join(data_set.format() for data_set in data_sets)
    return with_bcc(STX, text.encode("ascii") + bytes((ETX,)))
