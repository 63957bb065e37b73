"""Which earlier nights form tonight's baseline window (``scripts/nightly.sh`` asks this module).

A night belongs to the window of a pack output (``name``: the family, or ``fanout/<family>/<package>``)
when it is an earlier night with the same environment key, it has runs for that output
(``runs/<label>``), its pack of that output passed its checks, and its own comparison did not find a
regression, unless the regression was accepted (``<night>/<name with / as ->.accepted`` exists: written by
``scripts/nightly.sh --accept STAMP``). A slowdown therefore stays flagged night after night instead of
becoming the new normal after a few nights; once accepted, the slow nights are the baseline. The newest
``size`` such nights are the window, newest first.

``python -m packager.compare.window ROOT/runs CURRENT NAME LABEL ENV_KEY SIZE`` prints their run folders,
one a line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def stem(name: str) -> str:
    """The file-name form of a pack output's name (``fanout/f/v-b`` -> ``fanout-f-v-b``)."""
    return name.replace("/", "-")


def regressed(night: Path, name: str) -> bool:
    """Whether ``night``'s comparison of ``name`` found a regression (no comparison: no)."""
    path = night / f"{stem(name)}.compare.json"
    if not path.is_file():
        return False
    try:
        return bool(json.loads(path.read_text(encoding="utf-8")).get("regressed"))
    except (OSError, ValueError):
        return True  # unreadable: do not let it into a baseline


def accepted(night: Path, name: str) -> bool:
    return (night / f"{stem(name)}.accepted").is_file()


def passed(night: Path, name: str) -> bool:
    try:
        return bool(json.loads((night / name / "report.json").read_text(encoding="utf-8"))["passed"])
    except (OSError, ValueError, KeyError):
        return False


def select_window(runs_root: Path, current: Path, name: str, label: str, key: str, size: int) -> list[Path]:
    """Run folders of the nights forming ``current``'s window (see the module docstring), newest first."""
    out = []
    for night in sorted((p for p in Path(runs_root).iterdir() if p.is_dir()), reverse=True):
        if night.resolve() == Path(current).resolve() or night.name >= Path(current).name:
            continue
        env = night / "env-key"
        if not env.is_file() or env.read_text(encoding="utf-8").strip() != key:
            continue
        if not (night / "runs" / label).is_dir() or not passed(night, name):
            continue
        if regressed(night, name) and not accepted(night, name):
            continue
        out.append(night / "runs" / label)
        if len(out) >= size:
            break
    return out


def main(argv: list[str]) -> int:
    runs_root, current, name, label, key, size = argv
    for path in select_window(Path(runs_root), Path(current), name, label, key, int(size)):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
