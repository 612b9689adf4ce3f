"""Simulated DLMS/COSEM (СПОДЭС) meters: the TCP wrapper, HDLC over TCP and on a pty (`amr sim dlms`)."""

from simulators.dlms.server import DlmsHdlcSimulator, DlmsWrapperSimulator

__all__ = ["DlmsHdlcSimulator", "DlmsWrapperSimulator"]
