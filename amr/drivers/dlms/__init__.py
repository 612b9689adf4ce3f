"""DLMS/COSEM (СПОДЭС): the ``dlms-tcp`` (TCP wrapper, HDLC over TCP) and ``dlms-hdlc`` (serial line) drivers.

==========  ===============  ======  ============
bus kind    driver           lines   source
==========  ===============  ======  ============
dlms-tcp    `DlmsTcpDriver`  no      askue:dlms
dlms-hdlc   `DlmsHdlcDriver` yes     askue:dlms
==========  ===============  ======  ============

Layers: `hdlc` (frames, bytes only), `ports` and `links` (TCP/serial, wrapper and HDLC
connections), `session` (association and GET on `dlms_cosem`'s APDUs), `values` (registers
and clock), `driver` (what to read), `settings` (configuration) and `errors` (codes).
"""

from __future__ import annotations

from amr.drivers.dlms.driver import DlmsHdlcDriver, DlmsTcpDriver
from amr.drivers.dlms.settings import DlmsBusSettings, DlmsMeterSettings, bus_settings, meter_link

__all__ = ["DlmsBusSettings", "DlmsHdlcDriver", "DlmsMeterSettings", "DlmsTcpDriver", "bus_settings", "meter_link"]
