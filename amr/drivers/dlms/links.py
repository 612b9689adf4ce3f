"""Data links that carry one xDLMS APDU to the meter and its answer back.

- `WrapperLink`: the TCP wrapper of IEC 62056-47, an 8-byte header before each APDU::

      version 0x0001 | source wPort | destination wPort | length | APDU

  (the client's wPort is its SAP, the server's the logical device).
- `HdlcLink`: IEC 62056-46 connection-oriented HDLC. SNRM/UA opens the link and
  negotiates frame sizes and windows; an APDU goes out behind the LLC header
  E6 E6 00 (answers carry E6 E7 00), split into I-frames of at most the meter's
  information length with the segmentation bit on all but the last; after each
  window (the frame with the P/F bit) the receiver asks for more with RR; DISC/UA
  (or DM) closes the link.
"""

from __future__ import annotations

import logging

from dlms_cosem.protocol.wrappers import WrapperHeader  # type: ignore[import-untyped]

from amr.drivers.dlms import errors
from amr.drivers.dlms.ports import Port
from amr.protocols import dlms_hdlc as hdlc

LOG = logging.getLogger(__name__)
WRAPPER_VERSION = 1


class WrapperLink:
    """APDUs in TCP wrapper frames."""

    def __init__(self, port: Port, client: int, logical_device: int, timeout: float) -> None:
        """A link on `port` from client SAP `client` to `logical_device`."""
        self.port, self.client, self.server, self.timeout = port, client, logical_device, timeout

    def open(self) -> None:
        """Nothing to set up: the TCP connection is the link."""

    def exchange(self, apdu: bytes) -> bytes:
        """Send `apdu`, return the APDU of the answer."""
        self.port.send(WrapperHeader(self.client, self.server, len(apdu), WRAPPER_VERSION).to_bytes() + apdu)
        data = self.port.receive(_wrapper_done, self.timeout)
        header = WrapperHeader.from_bytes(data[:8])
        if header.version != WRAPPER_VERSION or (header.source_wport, header.destination_wport) != (
            self.server, self.client,
        ):
            raise errors.protocol(
                f"wrapper header version {header.version}, wPorts {header.source_wport}→{header.destination_wport}; "
                f"expected 1, {self.server}→{self.client}",
                errors.WRAPPER_FRAME,
            )
        if len(data) != 8 + header.length:
            raise errors.protocol(f"wrapper length {header.length} but {len(data) - 8} bytes", errors.WRAPPER_FRAME)
        return data[8:]

    def close(self) -> None:
        """Nothing to release at this level."""


def _wrapper_done(data: bytes) -> bool:
    return len(data) >= 8 and len(data) >= 8 + int.from_bytes(data[6:8], "big")


class HdlcLink:
    """One HDLC connection to one server address over a `Port`."""

    def __init__(
        self, port: Port, client: bytes, server: bytes, *, timeout: float, max_info: int = 128, window: int = 1
    ) -> None:
        """A link from address `client` to `server`, proposing `max_info` bytes and `window` frames."""
        self.port, self.client, self.server, self.timeout = port, client, server, timeout
        self.proposed = (max_info, window)
        self.max_info_tx, self.window_tx = 128, 1  # what we may send: the defaults until the UA says
        self._vs = self._vr = 0  # send and receive state variables
        self._buffer = b""
        self.connected = False

    # --- frames ---------------------------------------------------------------------------------
    def _send(self, control: int, information: bytes = b"", segmented: bool = False) -> None:
        self.port.send(hdlc.Frame(self.server, self.client, control, information, segmented).encode())

    def _complete(self, data: bytes) -> bool:
        data = self._buffer + data
        start = data.find(bytes([hdlc.FLAG]))
        if start < 0:
            return False
        while data[start + 1 : start + 2] == bytes([hdlc.FLAG]):  # a closing flag shared with the next frame
            start += 1
        length = hdlc.frame_length(data[start:])
        return length is not None and len(data) - start >= length

    def _next_frame(self) -> hdlc.Frame:
        """The next frame addressed to us (others on a shared line are skipped)."""
        while True:
            if not self._complete(b""):
                self._buffer += self.port.receive(self._complete, self.timeout)
            data = self._buffer
            start = data.find(bytes([hdlc.FLAG]))
            while data[start + 1 : start + 2] == bytes([hdlc.FLAG]):
                start += 1
            length = hdlc.frame_length(data[start:])
            assert length is not None
            raw, self._buffer = data[start : start + length], data[start + length - 1 :]  # keep the shared flag
            if len(self._buffer) == 1:
                self._buffer = b""
            try:
                frame = hdlc.decode(raw)
            except hdlc.FrameError as exc:
                raise errors.protocol(f"HDLC frame refused: {exc}", errors.HDLC_FRAME) from None
            if frame.destination == self.client and frame.source == self.server:
                return frame
            LOG.debug("skipped an HDLC frame for %s from %s", frame.destination.hex(), frame.source.hex())

    # --- connection -----------------------------------------------------------------------------
    def open(self) -> None:
        """SNRM → UA; the UA's parameters set the frame size and window we send with."""
        self._buffer, self._vs, self._vr = b"", 0, 0
        max_info, window = self.proposed
        self._send(hdlc.SNRM | hdlc.POLL_FINAL, hdlc.Parameters(max_info, max_info, window, window).encode())
        frame = self._next_frame()
        if frame.kind == "DM":
            raise errors.device("the meter answered SNRM with DM (disconnected mode)", errors.HDLC_REFUSED)
        if frame.kind != "UA":
            raise errors.protocol(f"SNRM answered with control {frame.control:02X}, not UA", errors.HDLC_FRAME)
        try:
            agreed = hdlc.Parameters.decode(frame.information)
        except hdlc.FrameError as exc:
            raise errors.protocol(f"UA refused: {exc}", errors.HDLC_FRAME) from None
        # The UA lists the server's own view: its receive limits are our transmit limits.
        self.max_info_tx = min(agreed.max_info_receive, max_info)
        self.window_tx = max(1, min(agreed.window_receive, window))
        self.connected = True

    def close(self) -> None:
        """DISC → UA or DM; a silent meter is given up after the timeout (never raises)."""
        if not self.connected:
            return
        self.connected = False
        try:
            self._send(hdlc.DISC | hdlc.POLL_FINAL)
            self._next_frame()
        except Exception as exc:  # closing must not fail a poll that has its values
            LOG.debug("HDLC DISC not acknowledged: %s", type(exc).__name__)

    # --- data -----------------------------------------------------------------------------------
    def exchange(self, apdu: bytes) -> bytes:
        """Send `apdu` (segmented in windows as agreed) and return the whole answer APDU."""
        data = hdlc.LLC_REQUEST + apdu
        chunks = [data[i : i + self.max_info_tx] for i in range(0, len(data), self.max_info_tx)]
        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1
            end_of_window = last or (index + 1) % self.window_tx == 0
            self._send(hdlc.i_control(self._vs, self._vr, poll=end_of_window), chunk, segmented=not last)
            self._vs = (self._vs + 1) & 7
            if end_of_window and not last:
                frame = self._next_frame()
                if frame.kind != "RR":
                    raise errors.protocol(f"expected RR after a window, got control {frame.control:02X}",
                                          errors.HDLC_FRAME)
        answer = b""
        while True:
            frame = self._next_frame()
            if frame.kind != "I":
                if frame.kind in ("DM", "FRMR"):
                    self.connected = False
                    raise errors.protocol(f"the meter dropped the HDLC link (control {frame.control:02X})",
                                          errors.HDLC_FRAME)
                continue  # an RR for our last frame: the answer follows
            if frame.send_sequence != self._vr:
                raise errors.protocol(f"HDLC frame N(S)={frame.send_sequence}, expected {self._vr}", errors.HDLC_FRAME)
            self._vr = (self._vr + 1) & 7
            answer += frame.information
            if not frame.segmented:
                break
            if frame.poll:
                self._send(hdlc.rr_control(self._vr))  # the window is full: ask for the next one
        if not answer.startswith(hdlc.LLC_RESPONSE):
            raise errors.protocol(f"answer without the LLC header E6 E7 00: {answer[:3].hex(' ')}", errors.HDLC_FRAME)
        return answer[3:]
