"""``pack compare`` and its companions: regression detection where the run (a fresh process) is the unit.

* :mod:`packager.compare.measure` — one run of one package in this process (``python -m``);
* :mod:`packager.compare.collect` — k runs per package in fresh processes, interleaved (``pack runs``), or
  A/B pairs (``pack ab``);
* :mod:`packager.compare.runsets` — which files are runs; comparison refusing unlike environments;
* :mod:`packager.compare.render` — the Markdown summary;
* :mod:`packager.compare.calibrate` — A/A false alarms and planted-change detection (``pack calibrate``);
* :mod:`packager.compare.cli` — the argument parsers.

The statistics live in :mod:`bench.stats` and :mod:`bench.regression`, the environment key in
:mod:`bench.fingerprint` (the nightly pytest plugin uses them without importing ``packager``).
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """``pack compare`` (kept here so the verb's registration ``packager.compare:main`` stays valid)."""
    from packager.compare.cli import main as compare_main

    return compare_main(argv)
