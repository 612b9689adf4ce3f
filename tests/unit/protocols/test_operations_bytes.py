"""Relay and instantaneous-value operations on bytes, from the published layouts (cited in the modules).

DLMS: Action-Request-Normal on the disconnect control (Green Book xDLMS ACTION; Blue Book class 70
methods 1 remote_disconnect and 2 remote_reconnect with integer(0)); Eastron SDM630 input registers
(float32, high word first, 0-based addresses from the maker's table).
"""

from __future__ import annotations

import struct

import pytest
from dlms_cosem import cosem, enumerations
from dlms_cosem.protocol import xdlms

from amr.drivers.dlms.relay import DISCONNECT_CONTROL, DISCONNECT_OBIS, METHODS, PARAMETER
from amr.drivers.relay import reached
from amr.protocols.modbus_map import eastron_instant
from simulators.dlms import operations as sim
from simulators.dlms.objects import OBJECTS, Reading
from simulators.model import VirtualMeter


def test_the_disconnect_request_is_the_green_book_action_request_normal() -> None:
    method = cosem.CosemMethod(enumerations.CosemInterface(DISCONNECT_CONTROL), cosem.Obis.from_string(DISCONNECT_OBIS),
                               METHODS["disconnect"])
    request = xdlms.ActionRequestNormal(cosem_method=method, data=PARAMETER,
                                        invoke_id_and_priority=xdlms.InvokeIdAndPriority(1, True, True))
    #                 C3 ACTION-request, 01 normal, C1 invoke id 1 (confirmed, high priority),
    #                 0046 class 70, 0000600 30AFF OBIS 0.0.96.3.10.255, 01 method, 01 data present, 0F00 integer(0)
    assert request.to_bytes() == bytes.fromhex("C3 01 C1 0046 0000 6003 0AFF 01 01 0F00")
    assert METHODS == {"disconnect": 1, "reconnect": 2}


def _reading(meter: VirtualMeter) -> Reading:
    return Reading({0: {}}, meter.start, meter.timezone, meter, meter.start)


@pytest.mark.parametrize(("client", "expected", "relay"), [(48, "C7 01 C1 00 00", "disconnected"),
                                                           (16, "C7 01 C1 03 00", "connected")])
def test_the_simulated_meter_answers_the_action_by_its_client_and_moves_its_switch(
    client: int, expected: str, relay: str
) -> None:
    meter = VirtualMeter("B1")
    answer = sim.act(bytes.fromhex("C3 01 C1 0046 0000 6003 0AFF 01 01 0F00"), client, 48, _reading(meter))
    assert answer == bytes.fromhex(expected)  # 00 success / 03 read-write-denied, no return parameters
    assert meter.relay == relay


def test_the_simulated_disconnect_control_attributes_are_a_xdr() -> None:
    meter = VirtualMeter("B2")
    control = OBJECTS[(0, 0, 96, 3, 10, 255)]
    assert control.class_id == 70
    assert control.read(2, _reading(meter)) == bytes.fromhex("03 FF")  # output_state true
    assert control.read(3, _reading(meter)) == bytes.fromhex("16 01")  # control_state enum 1 connected
    meter.switch("disconnected", meter.start)
    assert control.read(2, _reading(meter)) == bytes.fromhex("03 00")
    assert control.read(3, _reading(meter)) == bytes.fromhex("16 00")


def test_a_reconnect_is_done_at_connected_or_at_ready_for_reconnection() -> None:
    assert reached("reconnect", "ready_for_reconnection") and reached("reconnect", "connected")
    assert not reached("reconnect", "disconnected") and reached("disconnect", "disconnected")
    assert not reached("disconnect", "ready_for_reconnection") and not reached("disconnect", "connected")


def test_eastron_input_registers_decode_from_the_makers_table() -> None:
    words = [0] * eastron_instant.COUNT

    def put(address: int, value: float) -> None:
        high, low = struct.unpack(">HH", struct.pack(">f", value))
        words[address], words[address + 1] = high, low

    put(0x0000, 231.5)  # phase 1 line to neutral volts (30001)
    put(0x0006, 4.25)  # phase 1 current (30007)
    put(0x000C, -980.0)  # phase 1 power, exporting (30013)
    put(0x001E, -0.94)  # phase 1 power factor, inductive (30031)
    put(0x0046, 49.98)  # frequency (30071)
    assert words[0:2] == [0x4367, 0x8000]  # 231.5 as IEEE 754 float32, high word first
    got = eastron_instant.decode(words, eastron_instant.SINGLE_PHASE)
    assert got == pytest.approx({"voltage_l1": 231.5, "current_l1": 4.25, "power_l1": -980.0,
                                 "power_factor_l1": 0.94, "frequency": 49.98})
    assert eastron_instant.encode({"voltage_l1": 231.5}) == {0x0000: 0x4367, 0x0001: 0x8000}


def test_eastron_registers_that_are_not_a_number_are_refused() -> None:
    words = [0] * eastron_instant.COUNT
    words[0x0046:0x0048] = [0x7FC0, 0x0000]  # NaN
    with pytest.raises(ValueError, match="frequency at 0x0046"):
        eastron_instant.decode(words, ("frequency",))
    with pytest.raises(ValueError, match="expected 72 registers"):
        eastron_instant.decode(words[:10], ("frequency",))


def test_mercury_auxiliary_parameters_on_bytes() -> None:
    from amr.errors import DeviceError
    from amr.protocols import mercury230_instant as aux
    from amr.protocols.crc import append_crc

    assert aux.encode_request(5, 0x11) == append_crc(bytes.fromhex("05 08 11 11"))  # voltage, phase 1
    # 231.19 V = 23119 = 0x005A4F: the most significant byte first, then the least, then the middle one
    assert aux.decode_answer(append_crc(bytes.fromhex("05 00 4F 5A")), 5, "voltage_l1") == pytest.approx(231.19)
    # active power of phase 2, 1234.56 W = 123456 = 0x01E240, exported: bit 7 of the first byte set
    assert aux.decode_answer(append_crc(bytes.fromhex("05 81 40 E2")), 5, "power_l2") == pytest.approx(-1234.56)
    assert aux.decode_answer(append_crc(bytes.fromhex("05 00 88 13")), 5, "frequency") == pytest.approx(50.0)
    with pytest.raises(DeviceError):
        aux.decode_answer(append_crc(bytes.fromhex("05 01")), 5, "frequency")  # status 1: illegal command
    assert aux.QUANTITIES["frequency"][0] == 0x40 and aux.QUANTITIES["power_factor_total"][0] == 0x30
    assert aux.QUANTITIES["current_l3"][0] == 0x23 and aux.QUANTITIES["power_total"][0] == 0x00
