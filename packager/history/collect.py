"""What a history page shows, read from night folders: per family, each latency row's level night after
night with its interval over the window, every night's verdict, the parity error's drift, and links.

A NIGHT is either a nightly night (``scripts/nightly.sh``: ``runs/<stamp>/`` holding ``runs/<label>/``
run files, ``<label>.compare.json`` verdicts, the pack output ``<label>/report.md``, ``env-key``) or any
folder of run files (e.g. a night of ``pack calibrate``'s pool). Where the nightly recorded its comparison
(``<label>.compare.json``) the page shows that verdict; otherwise it makes the nightly's comparison itself:
the night against the window of the nights before it (regressed ones left out unless accepted, as the
nightly does).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.regression import Comparison, Thresholds, compare_nights, latency_key, row_clock, samples_of
from packager.compare.runsets import load_run
from packager.errors import UsageError


@dataclass
class Night:
    """One night of one family."""

    name: str
    path: Path
    runs: list[dict]
    report_md: Path | None = None
    compare_md: Path | None = None
    env_key: str = ""
    created: str = ""
    comparison: dict[str, Any] | None = None  # the nightly's (compare.json) or ours
    source: str = ""  # "nightly" (recorded) | "history" (computed here) | "" (first night)
    accepted: bool = False

    @property
    def regressed(self) -> bool:
        return bool(self.comparison and self.comparison.get("regressed"))


@dataclass
class Family:
    name: str
    nights: list[Night] = field(default_factory=list)
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # latency key -> per night
    parity: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # output key -> per night
    threshold: float = 0.05


def read_nights(paths: list[Path]) -> dict[str, list[Night]]:
    """family -> its nights, in the order given (sorted by path name when given as a glob)."""
    families: dict[str, list[Night]] = {}
    names = _names([Path(p) for p in paths])
    for path in paths:
        path = Path(path)
        if not path.is_dir():
            raise UsageError(f"{path}: not a folder (a NIGHT is a nightly night or a folder of run files)")
        for label, folder in _family_folders(path):
            runs = [load_run(f) for f in sorted(folder.rglob("run-*.json"))]
            if not runs:
                continue
            family = str(runs[0].get("family") or label)
            night = Night(name=names[path], path=path, runs=runs)
            night.env_key = _read(path / "env-key")
            night.created = str(min(r.get("created_at") or "" for r in runs))
            for cand in (path / label / "report.md", path / "report.md"):
                if cand.is_file():
                    night.report_md = cand
                    break
            compare = _recorded(path, label)
            if compare is not None:
                night.comparison = json.loads(compare.read_text(encoding="utf-8"))
                night.source = "nightly"
                md = compare.with_name(compare.name.replace(".compare.json", ".compare.md"))
                night.compare_md = md if md.is_file() else None
                night.accepted = compare.with_name(
                    compare.name.replace(".compare.json", ".accepted")
                ).is_file()
            families.setdefault(family, []).append(night)
    if not families:
        raise UsageError(f"no run files (run-*.json) in {', '.join(map(str, paths))}")
    return families


def _names(paths: list[Path]) -> dict[Path, str]:
    """Each night's name: its folder's name, or with its parent's where not unique (``night-03/clean``)."""
    plain = [p.name for p in paths]
    return {p: p.name if plain.count(p.name) == 1 else f"{p.parent.name}/{p.name}" for p in paths}


def _family_folders(night: Path) -> list[tuple[str, Path]]:
    """``(label, folder of run files)``: each ``runs/<label>/`` of a nightly night, else the night itself."""
    runs = night / "runs"
    if runs.is_dir() and any(p.is_dir() for p in runs.iterdir()):
        return [(p.name, p) for p in sorted(runs.iterdir()) if p.is_dir()]
    return [(night.name, night)]


def _recorded(night: Path, label: str) -> Path | None:
    """The nightly's comparison of ``label`` (``<label>.compare.json``, or ``fanout-...-<label>`` for a
    fanned-out package)."""
    exact = night / f"{label}.compare.json"
    if exact.is_file():
        return exact
    return next(iter(sorted(night.glob(f"*-{label}.compare.json"))), None)


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8").strip() if path.is_file() else ""


def build(name: str, nights: list[Night], t: Thresholds, window: int = 5) -> Family:
    """The family's page data; nights without a recorded comparison are compared here, as the nightly
    would (the ``window`` nights before, regressed ones left out unless accepted)."""
    family = Family(name=name, threshold=t.median)
    for i, night in enumerate(nights):
        if night.comparison is None:
            earlier = [n for n in nights[:i] if not n.regressed or n.accepted][-window:]
            if earlier:
                result = compare_nights([n.runs for n in earlier], night.runs, t)
                night.comparison = _as_dict(result)
                night.source = "history"
        family.nights.append(night)
        _add_points(family, i, night)
    return family


def _as_dict(result: Comparison) -> dict[str, Any]:
    return json.loads(json.dumps(result.to_dict(), default=str))


def _add_points(family: Family, index: int, night: Night) -> None:
    verdicts = {r["key"]: r for r in (night.comparison or {}).get("latency", [])}
    rows: dict[str, list[dict]] = {}
    for run in night.runs:
        for row in run.get("latency", []):
            rows.setdefault(latency_key(row), []).append(row)
    for key, found in rows.items():
        clock = row_clock("auto", found)
        medians = [float(np.median(s)) for s in (samples_of(r, clock) for r in found) if s]
        if not medians:
            continue
        level = float(np.exp(np.mean(np.log(medians))))
        point: dict[str, Any] = {"night": index, "level": level, "runs": len(medians), "clock": clock}
        v = verdicts.get(key)
        if v:
            median = v.get("median") or {}
            base = v.get("baseline_p50_ms")
            point.update(verdict=v.get("verdict"), note=v.get("note", ""), baseline=base)
            point["reasons"] = v.get("reasons", [])
            if median.get("low") is not None and base:
                point.update(low=base * median["low"], high=base * median["high"], ratio=median.get("ratio"))
        else:
            point["verdict"] = "first" if not night.comparison else "new"
        family.rows.setdefault(key, []).append(point)
    parity = {p["key"]: p for p in (night.comparison or {}).get("parity", [])}
    worst: dict[str, dict[str, Any]] = {}
    for run in night.runs:
        for p in run.get("parity", []):
            key = f"{p['variant']}/{p['backend']}/{p['device']}/{p['output']}"
            value = p.get("max_abs")
            if value is None or not math.isfinite(value):
                continue
            if key not in worst or value > worst[key]["max_abs"]:
                worst[key] = {"night": index, "max_abs": value, "atol": p.get("atol")}
    for key, point in worst.items():
        point["verdict"] = (parity.get(key) or {}).get("verdict", "first" if not night.comparison else "ok")
        family.parity.setdefault(key, []).append(point)
