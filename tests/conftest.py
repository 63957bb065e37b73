"""Shared fixtures. Server fixtures live in tests/servers/ and are registered as plugins here."""

pytest_plugins = ["tests.servers.hf_hub", "tests.servers.static", "tests.servers.registry", "tests.packs"]
