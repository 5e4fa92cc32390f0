"""Backends: where the probes run. The suites never know which one they are on."""
