"""Integration tests: drivers and simulators over real transports."""
