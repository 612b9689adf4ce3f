"""Simulated DLMS/COSEM (СПОДЭС) meters: the TCP wrapper, HDLC over TCP and on a pty (`python -m simulators.dlms`)."""

from simulators.dlms.server import DlmsHdlcSimulator, DlmsWrapperSimulator

__all__ = ["DlmsHdlcSimulator", "DlmsWrapperSimulator"]
