"""Nightly parity and latency runs: a pytest plugin (:mod:`bench.nightly.plugin`), the test module it
collects (:mod:`bench.nightly.suite`) and an optional Ray fan-out (:mod:`bench.nightly.fanout`)."""
