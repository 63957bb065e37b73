"""Nightly parity and latency runs: a pytest plugin (:mod:`packager.nightly.plugin`), the test module it
collects (:mod:`packager.nightly.suite`) and an optional Ray fan-out (:mod:`packager.nightly.fanout`)."""
