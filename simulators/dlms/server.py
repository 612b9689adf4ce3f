"""Simulated DLMS/COSEM (СПОДЭС) meters on real transports: the TCP wrapper, HDLC over TCP, HDLC on a pty.

    async with DlmsWrapperSimulator([VirtualMeter("m1")]) as sim:     # one TCP port per meter
        sim.ports["m1"]
    async with DlmsHdlcSimulator(meters, transport="pty") as sim:     # or transport="tcp": one port
        sim.url                                                       # the HDLC physical address picks the meter

TCP wrapper (IEC 62056-47): every APDU comes after an 8-byte header::

    00 01 | source wPort | destination wPort | length      (each 2 bytes, big-endian)

the client's wPort is its SAP (16, 32, 48), the meter's logical device is wPort 1; one port per meter.

HDLC (IEC 62056-46, `simulators.dlms.hdlc`): server address logical device 1 and the meter's
physical address (``meter.address``; a one-byte address without a physical part reaches a meter
alone on its line). SNRM/UA negotiate the information field length (at most 512 bytes here) and
window (at most 7); an APDU longer than the information field goes out in I-frames with the
segmentation bit, a window of them at a time (the F bit on its last), the next window after the
client's RR; DISC is answered with UA repeating the parameters in force (the information field is
optional there; some clients need it), DM when not connected, and anything but SNRM while
disconnected with DM. The line's pace is `simulators.serial_line`'s.

Faults (`simulators.model.Faults`) per answer: ``silent`` no answer; ``delay`` answer late;
``corrupt`` a bad FCS (HDLC) or a garbled wrapper version (TCP wrapper); ``drop`` the connection
closed instead of the answer (on a pty: half the answer); ``lower``, ``wrap`` and ``drift`` act in
the model; ``refuse`` (`refused`) answers every AARQ with an AARE rejected-permanent,
diagnostic authentication-failure.
"""

from __future__ import annotations

import asyncio
import itertools
import zlib
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Unpack

from amr.protocols import dlms_hdlc as hdlc
from simulators.dlms.association import CONFIGURATOR, READER, Association
from simulators.dlms.objects import Reading
from simulators.dlms.security import Keys
from simulators.model import VirtualMeter
from simulators.serial_line import LineOptions, Link, SerialSimulator
from simulators.serving import LOOPBACK, Connections, Service

WRAPPER_VERSION = 1
SERVER_WPORT = 1  # the management logical device
DEFAULT_PASSWORDS = {READER: "12345678", CONFIGURATOR: "1234567812345678"}
ENCRYPTION_KEY = bytes(range(16))  # 000102..0F and D0D1..DF: the Green Book's example global keys
AUTHENTICATION_KEY = bytes(range(0xD0, 0xE0))


def default_keys(serial: str) -> Keys:
    """HLS-GMAC keys of a simulated meter; its system title "SIM" and five bytes from the serial."""
    return Keys(ENCRYPTION_KEY, AUTHENTICATION_KEY, b"SIM" + zlib.crc32(serial.encode()).to_bytes(5, "big"))


class MeterStates:
    """What the meters keep between associations: clock settings, passwords, the `refuse` fault."""

    def __init__(
        self,
        meters: Iterable[VirtualMeter],
        clock: Callable[[], datetime],
        passwords: Mapping[str, Mapping[int, str]] | None = None,
        refused: Collection[str] = (),
    ) -> None:
        self.meters = list(meters)
        self.clock = clock
        self.passwords = {m.serial: {**DEFAULT_PASSWORDS, **(passwords or {}).get(m.serial, {})} for m in self.meters}
        self.refused = set(refused)
        self.clock_offsets: dict[str, timedelta] = {}  # serial → what SETs of the clock moved it by
        self.keys = {m.serial: default_keys(m.serial) for m in self.meters}
        self._counters = {m.serial: itertools.count(1) for m in self.meters}  # meter-wide invocation counters

    def meter_clock(self, meter: VirtualMeter, now: datetime) -> datetime:
        """The meter's clock at `now`: the model's (drift included) moved by the SETs it took."""
        return meter.clock(now) + self.clock_offsets.get(meter.serial, timedelta(0))

    def association(self, meter: VirtualMeter, client_sap: int) -> Association:
        """A fresh association of `client_sap` with `meter`."""

        def read() -> Reading:
            now = self.clock()
            return Reading(meter.registers(now), self.meter_clock(meter, now), meter.timezone, meter, now)

        def set_clock(moment: datetime) -> None:
            self.clock_offsets[meter.serial] = moment - meter.clock(self.clock())

        passwords = {sap: password.encode() for sap, password in self.passwords[meter.serial].items()}
        return Association(
            client_sap,
            passwords,
            read,
            set_clock,
            meter.timezone,
            refuse=meter.serial in self.refused or meter.faults.refuse,
            keys=self.keys[meter.serial],
            next_counter=self._counters[meter.serial].__next__,
        )


class DlmsWrapperSimulator(Service):
    """Meters behind the TCP wrapper, each on its own port of 127.0.0.1 (`ports`: serial → port)."""

    def __init__(
        self,
        meters: Iterable[VirtualMeter],
        *,
        port: int = 0,
        clock: Callable[[], datetime] | None = None,
        passwords: Mapping[str, Mapping[int, str]] | None = None,
        refused: Collection[str] = (),
    ) -> None:
        """`port`: the first meter's port, the others on the following ones (0: any free ports);
        `passwords`: serial → client SAP → password; `refused`: serials that refuse every association."""
        self.states = MeterStates(meters, clock or (lambda: datetime.now(UTC)), passwords, refused)
        self.first_port = port
        self.ports: dict[str, int] = {}
        self._servers: list[asyncio.Server] = []
        self._connections = Connections()

    @property
    def meters(self) -> list[VirtualMeter]:
        """The simulated meters."""
        return self.states.meters

    def url(self, serial: str) -> str:
        """``tcp://127.0.0.1:PORT`` of one meter."""
        return f"tcp://{LOOPBACK}:{self.ports[serial]}"

    async def start(self) -> None:
        """Listen on one port per meter."""
        for index, meter in enumerate(self.meters):
            port = self.first_port + index if self.first_port else 0

            async def accept(
                reader: asyncio.StreamReader, writer: asyncio.StreamWriter, m: VirtualMeter = meter
            ) -> None:
                with self._connections.serving(writer):
                    try:
                        await self._serve(m, reader, writer)
                    except (asyncio.CancelledError, asyncio.IncompleteReadError, ConnectionError):
                        pass  # stopped, or the client went away; asyncio's stream callback chokes on a cancellation
                    finally:
                        writer.close()

            server = await asyncio.start_server(accept, LOOPBACK, port)
            self._servers.append(server)
            self.ports[meter.serial] = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close every connection and port."""
        servers, self._servers = self._servers, []
        for server in servers[1:]:
            server.close()
        await self._connections.close(servers[0] if servers else None)
        for server in servers[1:]:
            await server.wait_closed()

    async def _serve(self, meter: VirtualMeter, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        associations: dict[int, Association] = {}  # client wPort → its association on this connection
        while True:
            header = await reader.readexactly(8)
            version, source, destination, size = (int.from_bytes(header[i : i + 2], "big") for i in range(0, 8, 2))
            apdu = await reader.readexactly(size)
            if version != WRAPPER_VERSION:
                return  # not the wrapper: close
            if destination != SERVER_WPORT:
                continue  # no such logical device: a meter stays silent
            association = associations.get(source)
            if association is None:
                association = associations[source] = self.states.association(meter, source)
            answer = await asyncio.to_thread(association.handle, apdu)
            faults = meter.faults
            if answer is None or faults.silent:
                continue
            if faults.delay:
                await asyncio.sleep(faults.delay)
            if meter.roll(faults.drop):
                return
            version_out = 0xDEAD if meter.roll(faults.corrupt) else WRAPPER_VERSION
            out = b"".join(n.to_bytes(2, "big") for n in (version_out, destination, source, len(answer)))
            writer.write(out + answer)
            await writer.drain()


@dataclass
class _HdlcLink:
    """The data link between one client and one meter."""

    association: Association
    parameters: hdlc.Parameters | None = None  # None: disconnected
    send_sequence: int = 0  # V(S): N(S) of the meter's next I-frame
    receive_sequence: int = 0  # V(R): N(S) expected in the client's next I-frame
    incoming: bytearray = field(default_factory=bytearray)
    outgoing: list[bytes] = field(default_factory=list)  # segments of an answer not yet sent


_Session = dict[tuple[str, int], _HdlcLink]  # (serial, client SAP) → link, per connection


class DlmsHdlcSimulator(SerialSimulator[_Session]):
    """Meters speaking HDLC on one simulated line: a pty, or a TCP port (`url`)."""

    own_parameters = hdlc.Parameters(max_info_transmit=512, max_info_receive=512, window_transmit=7, window_receive=7)

    def __init__(
        self,
        meters: Iterable[VirtualMeter],
        *,
        refused: Collection[str] = (),
        meter_passwords: Mapping[str, Mapping[int, str]] | None = None,
        **options: Unpack[LineOptions],
    ) -> None:
        """`refused`: serials refusing every association; `meter_passwords`: serial → client SAP → password."""
        super().__init__(meters, **options)
        self.states = MeterStates(self.meters, self.clock, meter_passwords, refused)

    def _new_session(self) -> _Session:
        return {}

    def _next_frame(self, buffer: bytearray) -> bytes | None:
        return hdlc.take_frame(buffer)

    async def _handle(self, data: bytes, link: Link, session: _Session) -> None:
        try:
            frame = hdlc.decode(data)
            server = hdlc.ServerAddress.decode(frame.destination)
        except hdlc.FrameError:
            return  # a garbled frame: every meter ignores it
        if server.logical != 1 or len(frame.source) != 1:
            return
        meter = self._meter("" if server.physical is None else str(server.physical))
        if meter is None:
            return
        client = frame.source[0] >> 1
        key = (meter.serial, client)
        state = session.get(key)
        if state is None:
            state = session[key] = _HdlcLink(self.states.association(meter, client))
        answers = await self._answer(frame, state, meter, client)
        if not answers:
            return
        reply = b"".join(hdlc.Frame(frame.source, frame.destination, *answer).encode() for answer in answers)
        if meter.roll(meter.faults.corrupt):
            reply = reply[:-3] + bytes((reply[-3] ^ 0x01,)) + reply[-2:]  # a bad FCS (of the last frame)
        await self._reply(link, meter, len(data), reply, self.baudrate, self.baudrate, checked=False)

    async def _answer(
        self, frame: hdlc.Frame, state: _HdlcLink, meter: VirtualMeter, client: int
    ) -> list[tuple[int, bytes, bool]]:
        """(control, information, segmented) of each frame answering `frame` (several: a window of I-frames)."""
        final = hdlc.POLL_FINAL
        kind = frame.kind
        if kind == "SNRM":
            try:
                parameters = hdlc.negotiate(frame.information, self.own_parameters)
            except hdlc.FrameError:
                return [(hdlc.FRMR | final, b"", False)]
            state.association = self.states.association(meter, client)
            state.parameters, state.send_sequence, state.receive_sequence = parameters, 0, 0
            state.incoming.clear()
            state.outgoing.clear()
            return [(hdlc.UA | final, parameters.encode(), False)]
        if kind == "DISC":
            if state.parameters is None:
                return [(hdlc.DM | final, b"", False)]
            # the UA repeats the link's parameters: dlms-cosem 21.3 (MIT) reads only a UA with an information field
            parameters, state.parameters = state.parameters, None
            state.association = self.states.association(meter, client)
            return [(hdlc.UA | final, parameters.encode(), False)]
        if state.parameters is None:
            return [(hdlc.DM | final, b"", False)] if frame.poll else []
        if kind == "I":
            if frame.send_sequence != state.receive_sequence:
                return self._receive_ready(state)  # out of sequence: say which frame is expected
            state.receive_sequence = (state.receive_sequence + 1) % 8
            state.incoming += frame.information
            if frame.segmented:  # more to come: acknowledged when the client polls (the last of its window)
                return self._receive_ready(state) if frame.poll else []
            apdu = bytes(state.incoming)
            state.incoming.clear()
            if apdu.startswith(hdlc.LLC_REQUEST):
                apdu = apdu[len(hdlc.LLC_REQUEST) :]
            response = await asyncio.to_thread(state.association.handle, apdu)
            if response is None:
                return self._receive_ready(state)
            payload = hdlc.LLC_RESPONSE + response
            size = state.parameters.max_info_transmit
            state.outgoing = [payload[i : i + size] for i in range(0, len(payload), size)]
            return self._window(state)
        if kind == "RR":
            return self._window(state) if state.outgoing else self._receive_ready(state)
        return []

    @staticmethod
    def _receive_ready(state: _HdlcLink) -> list[tuple[int, bytes, bool]]:
        return [(state.receive_sequence << 5 | hdlc.POLL_FINAL | hdlc.RR, b"", False)]

    @staticmethod
    def _window(state: _HdlcLink) -> list[tuple[int, bytes, bool]]:
        """The next I-frames of the answer, as many as the window holds; the last one carries the F bit."""
        assert state.parameters is not None
        frames = []
        for left in range(min(state.parameters.window_transmit, len(state.outgoing)) - 1, -1, -1):
            segment = state.outgoing.pop(0)
            final = hdlc.POLL_FINAL if left == 0 else 0
            control = state.receive_sequence << 5 | final | state.send_sequence << 1
            state.send_sequence = (state.send_sequence + 1) % 8
            frames.append((control, segment, bool(state.outgoing)))
        return frames
