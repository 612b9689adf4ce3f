"""IEC 62056-21 (ex IEC 61107) protocol mode C, without I/O.

A mode C readout, with who sends what (HHU = the reading side)::

    HHU    /?address!<CR><LF>                  sign-on, at 300 baud
    meter  /XXXZ[\\W]ident<CR><LF>              identification
    HHU    <ACK>VZY<CR><LF>                    option select: V protocol control
                                               ("0" normal), Z baud rate, Y mode
                                               ("0" data readout, "1" programming)
           ... both sides switch to the baud rate of Z ...
    meter  <STX>data lines!<CR><LF><ETX><BCC>  readout (mode Y = "0")

In programming mode (Y = "1") the meter sends ``<SOH>P0<STX>(seed)<ETX><BCC>``,
the HHU answers with a password command ``<SOH>P1<STX>(password)<ETX><BCC>``,
the meter with ``<ACK>`` (or ``<NAK>``), and a break ``<SOH>B0<ETX><BCC>`` ends
the session.

The package in four parts, one job each: `framing` (control characters, BCC, receiving whole
blocks), `messages` (sign-on, identification, option select, command messages), `datasets`
(``address(value*unit)`` data sets and the blocks that carry them) and `energy` (what the energy
data sets mean, in exact Wh/varh). The names below are the protocol's public face: import the
package (``from amr.protocols import iec62056_21 as iec``).
"""

from __future__ import annotations

from amr.protocols.iec62056_21.datasets import (
    DataSet,
    decode_data_message,
    decode_readout,
    encode_data_message,
    encode_readout,
    parse_data_line,
)
from amr.protocols.iec62056_21.energy import energy_data_sets, energy_readings, energy_value, numeric_values
from amr.protocols.iec62056_21.framing import (
    ACK,
    CRLF,
    END_OF_READOUT,
    EOT,
    ETX,
    NAK,
    SOH,
    STX,
    BlockReceiver,
    bcc,
    check_block,
)
from amr.protocols.iec62056_21.messages import (
    BAUD_CHARS,
    BAUD_RATES,
    MODE_BINARY,
    MODE_PROGRAMMING,
    MODE_READOUT,
    PROTOCOL_NORMAL,
    PROTOCOL_SECONDARY,
    REACTION_TIME_FAST_MS,
    REACTION_TIME_NORMAL_MS,
    CommandMessage,
    Identification,
    OptionSelect,
    decode_command,
    decode_identification,
    decode_option_select,
    decode_sign_on,
    encode_break,
    encode_command,
    encode_identification,
    encode_option_select,
    encode_password,
    encode_sign_on,
)

__all__ = [
    "ACK", "BAUD_CHARS", "BAUD_RATES", "CRLF", "END_OF_READOUT", "EOT", "ETX", "MODE_BINARY", "MODE_PROGRAMMING",
    "MODE_READOUT", "NAK", "PROTOCOL_NORMAL", "PROTOCOL_SECONDARY", "REACTION_TIME_FAST_MS",
    "REACTION_TIME_NORMAL_MS", "SOH", "STX", "BlockReceiver", "CommandMessage", "DataSet", "Identification",
    "OptionSelect", "bcc", "check_block", "decode_command", "decode_data_message", "decode_identification",
    "decode_option_select", "decode_readout", "decode_sign_on", "encode_break", "encode_command",
    "encode_data_message", "encode_identification", "encode_option_select", "encode_password", "encode_readout",
    "encode_sign_on", "energy_data_sets", "energy_readings", "energy_value", "numeric_values", "parse_data_line",
]
