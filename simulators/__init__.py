"""Virtual meters for test benches: every protocol on real transports, realistic values, injected faults."""
