"""Loopback HTTP servers used by the tests (no network access needed)."""
