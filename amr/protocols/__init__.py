"""Byte-level meter protocols: pure encoding and decoding, no I/O.

Drivers (which own ports, sockets and timeouts) and simulators (which answer
as meters do) share these modules, so both sides speak exactly the same bytes:

- `crc`           CRC-16/Modbus, appended low byte first
- `units`         energy units (Wh, kWh, MWh, varh, kvarh, Mvarh) to exact int Wh/varh
- `mercury230`    Incotex Mercury 230/234 requests and answers
- `iec62056_21`   IEC 62056-21 mode C messages, data blocks and BCC
- `obis`          OBIS codes of IEC 62056-21 data sets and their A+/A-/R+/R- meaning
- `modbus_map`    Modbus energy register maps, value codecs and read planning

Errors: a garbled answer (checksum, framing, length, address) raises
`amr.errors.ProtocolError`; a meter that answers with an error code raises
`amr.errors.DeviceError`. Wrong arguments from the caller (a tariff of 7, a
password of five digits) raise `ValueError`: those are programming or
configuration mistakes, to be caught where the configuration is read.
"""
