"""Measurement: latency, parity, environment capture and reports."""
