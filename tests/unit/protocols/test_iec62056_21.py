"""IEC 62056-21 mode C messages against published telegrams."""

from __future__ import annotations

from decimal import Decimal

import pytest

from amr.core.domain import Channel
from amr.errors import ProtocolError
from amr.protocols import iec62056_21 as iec

_CONTROL = {
    "<SOH>": "\x01",
    "<STX>": "\x02",
    "<ETX>": "\x03",
    "<ACK>": "\x06",
    "<CR>": "\r",
    "<LF>": "\n",
}


def wire(text: str) -> bytes:
    """Bytes of a telegram written as manuals print it: <STX>, <CR><LF> ... spelled out."""
    for name, char in _CONTROL.items():
        text = text.replace(name, char)
    return text.encode("ascii")


# LEM EM4T II energy meter manual, V1.0, 05 November 2020, section 4.2.9
# "Examples of read-outs", page 27 (published at manualshive.com, manual
# lem/em4tii). Example 1, "Read-out from read-out table 1"; the manual prints
# each message on its own line. The BCC after <ETX> is "+" (0x2B).
EM4TII_SIGN_ON = "/?!<CR><LF>"
EM4TII_IDENTIFICATION = "/EMH5\\@D4EM4TIIW001--<CR><LF>"
EM4TII_OPTION_SELECT = "<ACK>050<CR><LF>"
EM4TII_READOUT = (
    "<STX>1-0:1.8.0*255(000000000.0*kWh)<CR><LF>"
    "1-0:2.8.0*255(000000000.0*kWh)<CR><LF>"
    "1-0:3.8.0*255(000000000.0*kvarh)<CR><LF>"
    "1-0:4.8.0*255(000000000.0*kvarh)<CR><LF>"
    "0-0:F.F.0*255(00000000)<CR><LF>"
    "1-0:0.0.1*255()<CR><LF>"
    "1-0:0.2.0*255(10600000)<CR><LF>"
    "1-0:0.9.1*255(140253)<CR><LF>"
    "1-0:0.9.2*255(121221)<CR><LF>"
    "0-0:C.1.0*255(03878504)<CR><LF>"
    "0-0:C.72.1*255()<CR><LF>"
    "0-0:C.72.2*255()<CR><LF>"
    "1-0:0.8.4*255(5*min)<CR><LF>"
    "1-0:0.3.0*255(6.00*Imp/kWh)<CR><LF>"
    "1-0:0.2.1*1(121120??)<CR><LF>"
    "1-0:0.2.1*50(121120??)<CR><LF>"
    "0-0:C.90.2*255(9F139CC2)<CR><LF>"
    "1-0:C.1.9*255(Point-ID)<CR><LF>"
    "!<CR><LF>"
    "<ETX>+"
)
EM4TII_BREAK = "<SOH>B0<ETX>q"
# Same manual, examples 2 and 3 (programming mode): the meter's password
# prompt, the password command, a read command and the meter's answer.
EM4TII_P0 = "<SOH>P0<STX>()<ETX>`"
EM4TII_P1 = "<SOH>P1<STX>(00000000)<ETX>a"
EM4TII_R5 = "<SOH>R5<STX>0.9.2()<ETX>\\"
EM4TII_DATA = "<STX>0.9.2(130103)<ETX>9"


# --- published EM4T II session ------------------------------------------------


def test_em4tii_sign_on() -> None:
    assert iec.encode_sign_on() == wire(EM4TII_SIGN_ON)
    assert iec.decode_sign_on(wire(EM4TII_SIGN_ON)) == ""


def test_em4tii_identification() -> None:
    ident = iec.decode_identification(wire(EM4TII_IDENTIFICATION))
    assert ident == iec.Identification("EMH", "5", "D4EM4TIIW001--", enhanced="@")
    assert ident.baud_rate == 9600
    assert ident.reaction_time_ms == 200  # upper-case third letter
    assert iec.encode_identification(ident) == wire(EM4TII_IDENTIFICATION)


def test_em4tii_option_select() -> None:
    assert iec.encode_option_select(9600) == wire(EM4TII_OPTION_SELECT)
    assert iec.encode_option_select(9600) == bytes.fromhex("06 30 35 30 0D 0A")
    selected = iec.decode_option_select(wire(EM4TII_OPTION_SELECT))
    assert selected == iec.OptionSelect("5", iec.MODE_READOUT, iec.PROTOCOL_NORMAL)
    assert selected.baud_rate == 9600
    assert iec.encode_option_select(9600, iec.MODE_PROGRAMMING) == wire("<ACK>051<CR><LF>")


def test_em4tii_readout_bcc() -> None:
    block = wire(EM4TII_READOUT)
    assert block[-1] == 0x2B
    assert iec.bcc(block[1:-1]) == 0x2B  # XOR after STX up to and including ETX
    assert iec.check_block(block).endswith(b"!\r\n")


def test_em4tii_readout_parse() -> None:
    data_sets = iec.decode_readout(wire(EM4TII_READOUT))
    assert len(data_sets) == 18
    assert data_sets[0] == iec.DataSet("1-0:1.8.0*255", "000000000.0", "kWh")
    assert data_sets[5] == iec.DataSet("1-0:0.0.1*255", "", None)
    assert data_sets[12] == iec.DataSet("1-0:0.8.4*255", "5", "min")
    assert data_sets[13] == iec.DataSet("1-0:0.3.0*255", "6.00", "Imp/kWh")
    assert data_sets[16] == iec.DataSet("0-0:C.90.2*255", "9F139CC2", None)
    numbers = iec.numeric_values(data_sets)
    assert numbers["1-0:3.8.0*255"] == (Decimal("0.0"), "kvarh")
    assert numbers["0-0:C.1.0*255"] == (Decimal("3878504"), None)
    assert "0-0:C.90.2*255" not in numbers  # hex serial, not a number
    assert "1-0:0.2.1*1" not in numbers  # "121120??"
    assert iec.energy_readings(data_sets) == {
        0: {Channel.A_PLUS: 0, Channel.A_MINUS: 0, Channel.R_PLUS: 0, Channel.R_MINUS: 0}
    }


def test_em4tii_readout_reencodes_identically() -> None:
    data_sets = iec.decode_readout(wire(EM4TII_READOUT))
    assert iec.encode_readout(data_sets) == wire(EM4TII_READOUT)


def test_em4tii_command_messages() -> None:
    assert iec.encode_break() == wire(EM4TII_BREAK) == bytes.fromhex("01 42 30 03 71")
    assert iec.encode_password("00000000") == wire(EM4TII_P1)
    assert iec.encode_command(iec.CommandMessage("P", "0", "()")) == wire(EM4TII_P0)
    assert iec.encode_command(iec.CommandMessage("R", "5", "0.9.2()")) == wire(EM4TII_R5)
    assert iec.decode_command(wire(EM4TII_P1)) == iec.CommandMessage("P", "1", "(00000000)")
    assert iec.decode_command(wire(EM4TII_BREAK)) == iec.CommandMessage("B", "0")
    answer = iec.decode_data_message(wire(EM4TII_DATA))
    assert answer == [iec.DataSet("0.9.2", "130103")]
    assert iec.encode_data_message(answer) == wire(EM4TII_DATA)


# --- Landis+Gyr E350 readout ------------------------------------------------------

# Landis+Gyr E350 (ZMF100) readout as published in the volkszaehler.org wiki,
# page hardware:channels:meters:power:edl-ehz:landisgyr_e350. The wiki prints
# the identification and data sets run together on one line; here each data
# set is on its own line as the meter sends it, with "!" CR LF, ETX and a BCC
# computed by `iec.encode_readout` (the wiki does not show STX, ETX or BCC).
E350_IDENTIFICATION = b"/LGZ4ZMF100AC.M23\r\n"
E350_LINES = [
    "F.F(00)",
    "C.1.0(12314330)",
    "0.0(00188123 )",
    "C.1.1( )",
    "1.8.1(001234.120*kWh)",
    "1.8.0(001234.120*kWh)",
    "2.8.0(000000.000*kWh)",
    "15.8.0(001234.120*kWh)",
    "C.7.0(0005)",
    "32.7(229*V)",
    "52.7(230*V)",
    "72.7(230*V)",
    "31.7(000.03*A)",
    "51.7(000.04*A)",
    "71.7(000.09*A)",
    "C.5.0(0400)",
    "0.2.0(M23)",
    "16.7(000.00*kW)",
]


def e350_readout() -> bytes:
    return iec.encode_readout(E350_LINES)


def test_e350_identification() -> None:
    ident = iec.decode_identification(E350_IDENTIFICATION)
    assert ident.manufacturer == "LGZ"
    assert ident.baud_rate == 4800
    assert ident.identification == "ZMF100AC.M23"
    assert ident.enhanced is None
    assert ident.reaction_time_ms == 200


def test_e350_energy() -> None:
    data_sets = iec.decode_readout(e350_readout())
    assert iec.energy_readings(data_sets) == {
        0: {Channel.A_PLUS: 1_234_120, Channel.A_MINUS: 0},
        1: {Channel.A_PLUS: 1_234_120},
    }
    numbers = iec.numeric_values(data_sets)
    assert numbers["0.0"] == (Decimal("188123"), None)  # trailing space in the value
    assert numbers["15.8.0"] == (Decimal("1234.120"), "kWh")  # |A+|+|A-|, not a channel
    assert "C.1.1" not in numbers  # "( )"
    assert "0.2.0" not in numbers  # "M23"


# --- identification details ----------------------------------------------------


def test_lower_case_third_letter_means_20_ms() -> None:
    # Iskra MT174 identification, as captured in public readout scripts on GitHub.
    ident = iec.decode_identification(b"/ISk5MT174-0001\r\n")
    assert ident.manufacturer == "ISk"
    assert ident.reaction_time_ms == 20
    assert ident.baud_rate == 9600


@pytest.mark.parametrize(("char", "rate"), list(iec.BAUD_RATES.items()))
def test_baud_characters(char: str, rate: int) -> None:
    ident = iec.decode_identification(f"/ABC{char}X\r\n".encode())
    assert ident.baud_rate == rate
    assert iec.encode_option_select(rate)[2:3] == char.encode()


def test_enhanced_identification() -> None:
    ident = iec.decode_identification(b"/LGZ4\\2ZMD3102400.B31\r\n")
    assert ident.enhanced == "2"
    assert ident.identification == "ZMD3102400.B31"


@pytest.mark.parametrize(
    "message",
    [
        b"/LGZAZMF100\r\n",  # mode B baud character
        b"/LG4ZMF100\r\n",  # two letters
        b"LGZ4ZMF100\r\n",  # no slash
        b"/LGZ4ZMF100",  # no CR LF
        b"/LGZ4\r\n",  # no identification
        b"/LGZ4ZMF\xb100\r\n",  # parity bit not stripped
    ],
)
def test_bad_identification(message: bytes) -> None:
    with pytest.raises(ProtocolError):
        iec.decode_identification(message)


def test_sign_on_with_address() -> None:
    assert iec.encode_sign_on("45678903") == b"/?45678903!\r\n"
    assert iec.decode_sign_on(b"/?45678903!\r\n") == "45678903"
    with pytest.raises(ValueError, match="device address"):
        iec.encode_sign_on("12!3")
    with pytest.raises(ProtocolError):
        iec.decode_sign_on(b"/?123\r\n")


def test_bad_option_select() -> None:
    with pytest.raises(ValueError, match="mode C baud rates"):
        iec.encode_option_select(115200)
    with pytest.raises(ProtocolError):
        iec.decode_option_select(b"\x06070\r\n")
    with pytest.raises(ProtocolError):
        iec.decode_option_select(b"050\r\n")


# --- BCC and framing ------------------------------------------------------------


def test_bad_bcc() -> None:
    block = bytearray(wire(EM4TII_READOUT))
    block[-1] ^= 0x01
    with pytest.raises(ProtocolError, match="BCC mismatch: block carries 0x2A, computed 0x2B"):
        iec.decode_readout(bytes(block))


def test_corrupted_data_fails_bcc() -> None:
    block = wire(EM4TII_READOUT).replace(b"03878504", b"03878505")
    with pytest.raises(ProtocolError, match="BCC mismatch"):
        iec.decode_readout(block)


def test_bad_bcc_command() -> None:
    with pytest.raises(ProtocolError, match="BCC mismatch"):
        iec.decode_command(wire("<SOH>B0<ETX>r"))


def stx_block(body: bytes, end: bytes = b"\x03") -> bytes:
    """STX, `body`, ETX (or `end`) and a correct BCC."""
    return b"\x02" + body + end + bytes((iec.bcc(body + end),))


def test_readout_framing_errors() -> None:
    with pytest.raises(ProtocolError, match="'!' CR LF"):
        iec.decode_readout(stx_block(b"1.8.0(1*kWh)\r\n"))
    with pytest.raises(ProtocolError, match="starts with STX"):
        iec.decode_readout(stx_block(b"1.8.0(1*kWh)\r\n!\r\n")[1:])
    with pytest.raises(ProtocolError, match="EOT marks a partial block"):
        iec.decode_readout(stx_block(b"1.8.0(1*kWh)\r\n", end=b"\x04"))
    with pytest.raises(ProtocolError, match="7E1"):
        iec.decode_readout(stx_block(b"1.8.0(1\xaakWh)\r\n!\r\n"))
    with pytest.raises(ProtocolError, match="cannot read a data set at 'x'"):
        iec.decode_readout(stx_block(b"1.8.0(1*kWh)x\r\n!\r\n"))
    with pytest.raises(ProtocolError, match="at least 3 bytes"):
        iec.check_block(b"\x02\x03")


def test_empty_readout() -> None:
    assert iec.encode_readout([]) == stx_block(b"!\r\n")
    assert iec.decode_readout(stx_block(b"!\r\n")) == []


def test_readout_with_several_data_sets_per_line() -> None:
    block = iec.encode_readout(["1.8.1(000100.000*kWh)1.8.2(000200.500*kWh)", "1.8.0(000300.500*kWh)"])
    assert iec.energy_readings(iec.decode_readout(block)) == {
        0: {Channel.A_PLUS: 300_500},
        1: {Channel.A_PLUS: 100_000},
        2: {Channel.A_PLUS: 200_500},
    }


# --- streaming --------------------------------------------------------------------


def test_block_receiver_byte_by_byte() -> None:
    block = wire(EM4TII_READOUT)
    receiver = iec.BlockReceiver()
    results = [receiver.feed(bytes((byte,))) for byte in block]
    assert results[:-1] == [None] * (len(block) - 1)
    assert results[-1] == block


def test_block_receiver_waits_for_bcc_after_etx() -> None:
    receiver = iec.BlockReceiver()
    block = wire(EM4TII_DATA)
    assert receiver.feed(block[:-1]) is None  # ETX arrived, BCC not yet
    assert receiver.feed(block[-1:]) == block


def test_block_receiver_keeps_following_bytes() -> None:
    receiver = iec.BlockReceiver()
    first, second = wire(EM4TII_P0), wire(EM4TII_BREAK)
    assert receiver.feed(first + second[:2]) == first
    assert receiver.pending == second[:2]
    assert receiver.feed(second[2:]) == second
    assert receiver.feed(b"\x06") == b"\x06"  # ACK to a password
    assert receiver.pending == b""


def test_block_receiver_rejects_garbage_and_runaway_blocks() -> None:
    with pytest.raises(ProtocolError, match="0x41"):
        iec.BlockReceiver().feed(b"ABC")
    receiver = iec.BlockReceiver(max_length=16)
    with pytest.raises(ProtocolError, match="no ETX within 16"):
        receiver.feed(b"\x02" + b"1" * 20)


# --- simulator side -----------------------------------------------------------------


def test_energy_data_sets_round_trip() -> None:
    readings: dict[int, dict[Channel, int | None]] = {
        0: {Channel.A_PLUS: 1_234_567, Channel.A_MINUS: 0, Channel.R_PLUS: 89, Channel.R_MINUS: None},
        2: {Channel.A_PLUS: 1_000_000},
    }
    data_sets = iec.energy_data_sets(readings)
    assert data_sets[0] == iec.DataSet("1.8.0", "001234.567", "kWh")
    assert data_sets[2] == iec.DataSet("3.8.0", "000000.089", "kvarh")
    assert iec.DataSet("1.8.2", "001000.000", "kWh") in data_sets
    decoded = iec.energy_readings(iec.decode_readout(iec.encode_readout(data_sets)))
    assert decoded == {
        0: {Channel.A_PLUS: 1_234_567, Channel.A_MINUS: 0, Channel.R_PLUS: 89},
        2: {Channel.A_PLUS: 1_000_000},
    }
    full = iec.energy_data_sets({0: {Channel.R_MINUS: 5}}, full_obis=True)
    assert full == [iec.DataSet("1-0:4.8.0*255", "000000.005", "kvarh")]


# --- energy conversion --------------------------------------------------------------


@pytest.mark.parametrize(
    ("data_set", "expected"),
    [
        (iec.DataSet("1.8.0", "001234.567", "kWh"), 1_234_567),
        (iec.DataSet("1.8.0", "1234567", "Wh"), 1_234_567),
        (iec.DataSet("1.8.0", "0001.234567", "MWh"), 1_234_567),
        (iec.DataSet("3.8.0", "12.5", "kvarh"), 12_500),
        (iec.DataSet("4.8.0", "77", "varh"), 77),
        (iec.DataSet("1.8.0", "0.0005", "kWh"), 0),  # 0.5 Wh: half-even → 0
        (iec.DataSet("1.8.0", "0.0015", "kWh"), 2),  # 1.5 Wh: half-even → 2
    ],
)
def test_units_to_exact_wh(data_set: iec.DataSet, expected: int) -> None:
    readings = iec.energy_readings([data_set])
    assert list(readings[0].values()) == [expected]


def test_energy_unit_errors() -> None:
    with pytest.raises(ProtocolError, match="no unit"):
        iec.energy_readings([iec.DataSet("1.8.0", "001234.567")])
    assert iec.energy_readings([iec.DataSet("1.8.0", "001234.567")], default_unit="kWh") == {
        0: {Channel.A_PLUS: 1_234_567}
    }
    with pytest.raises(ProtocolError, match="A\\+ but its unit is 'kvarh'"):
        iec.energy_readings([iec.DataSet("1.8.0", "1", "kvarh")])
    with pytest.raises(ProtocolError, match="R- but its unit is 'kWh'"):
        iec.energy_readings([iec.DataSet("4.8.0", "1", "kWh")])
    with pytest.raises(ProtocolError, match="has no number"):
        iec.energy_readings([iec.DataSet("1.8.0", "ERR", "kWh")])


def test_conflicting_duplicates() -> None:
    same = [iec.DataSet("1.8.0", "1", "kWh"), iec.DataSet("1-0:1.8.0*255", "1000", "Wh")]
    assert iec.energy_readings(same) == {0: {Channel.A_PLUS: 1000}}
    different = [iec.DataSet("1.8.0", "1", "kWh"), iec.DataSet("1-0:1.8.0*255", "2", "kWh")]
    with pytest.raises(ProtocolError, match="given twice"):
        iec.energy_readings(different)
    with pytest.raises(ProtocolError, match="appears twice"):
        iec.numeric_values([iec.DataSet("1.8.0", "1"), iec.DataSet("1.8.0", "2")])


def test_billing_period_values_are_not_current() -> None:
    data_sets = [iec.DataSet("1.8.0", "5", "kWh"), iec.DataSet("1.8.0*01", "4", "kWh")]
    assert iec.energy_readings(data_sets) == {0: {Channel.A_PLUS: 5000}}


def test_data_set_format_refuses_bad_characters() -> None:
    with pytest.raises(ValueError, match="value '1\\(2'"):
        iec.DataSet("1.8.0", "1(2", "kWh").format()
    with pytest.raises(ValueError, match=r"value '1\*2'"):
        iec.DataSet("1.8.0", "1*2").format()
    with pytest.raises(ValueError, match="cannot read a data set"):
        iec.encode_readout(["1.8.0(1"])
    with pytest.raises(ValueError, match="not printable ASCII"):
        iec.encode_readout(["1.8.0(1)\x03"])
    with pytest.raises(ValueError, match="without '!'"):
        iec.encode_readout(["!"])


def test_with_errors_each_register_is_judged_on_its_own() -> None:
    sets = [
        iec.DataSet("1.8.0", "1", "kWh"),
        iec.DataSet("1-0:1.8.0*255", "2", "kWh"),  # A+ again, another value: neither is believed
        iec.DataSet("2.8.0", "ERR", "kWh"),
        iec.DataSet("3.8.0", "5", "kvarh"),
    ]
    errors: dict[str, str] = {}
    assert iec.energy_readings(sets, errors=errors) == {0: {Channel.A_PLUS: None, Channel.R_PLUS: 5000}}
    assert errors == {
        "1-0:1.8.0*255": "A+ tariff 0 sent twice: 1000 and 2000 Wh",
        "2.8.0": "energy data set 2.8.0 has no number: 'ERR'",
    }
