"""DLMS/COSEM (СПОДЭС): the ``dlms-tcp`` (TCP wrapper, HDLC over TCP) and ``dlms-hdlc`` (serial line) drivers.

==========  ===============  ======  ============
bus kind    driver           lines   source
==========  ===============  ======  ============
dlms-tcp    `DlmsTcpDriver`  no      askue:dlms
dlms-hdlc   `DlmsHdlcDriver` yes     askue:dlms
==========  ===============  ======  ============

Layers: `amr.protocols.dlms_hdlc` (frames, bytes only), `ports` and `links` (TCP/serial,
wrapper and HDLC connections), `session` (association and GET on `dlms_cosem`'s APDUs),
`values` (registers and clock), `driver` (what to read), `settings` (configuration, light),
`errors` (codes), `spec` (the registry's entries) and `simulate` (``amr sim dlms``).
Importing the package imports no driver: the registry reads `spec`.
"""
