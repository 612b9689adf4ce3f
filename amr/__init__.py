"""amr: an АСКУЭ (AMR) integration service.

Meters in the field → drivers → normalised four-channel readings → one validation
pipeline (VEE) → a time-series store → API, dashboard and exports.
"""

__version__ = "0.1.0"
