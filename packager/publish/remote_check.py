"""What ``pack verify-remote`` needs beside the check itself: which model class loads a registered package
(the one ``pack`` recorded, else the backend's default), and how a package's check (its
:class:`~packager.package_check.PackageCheck`, the check ``pack`` ran on it) and the consumer's are reported:
one line per compared output and per task check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import PublishError


def check_lines(checked: Any, prefix: str = "") -> list[str]:
    """One line per compared output and per task check."""
    lines = [
        f"{prefix}{p.output}: {'ok' if p.passed else 'MISMATCH'} max_abs={p.max_abs} "
        f"(atol={p.atol}, rtol={p.rtol})" + ("" if p.passed else f" {p.reason}")
        for p in checked.parity
    ]
    for c in checked.task_checks:
        bound = "at least" if c.rule == ">=" else "at most"
        verdict = "ok" if c.passed else "FAILED"
        lines.append(
            f"{prefix}task {c.check} on {c.output}: {verdict} {c.value:.6g} ({bound} {c.threshold:g})"
        )
    return lines


def recorded_class(goldens: Path, files: dict[str, Any]) -> str | None:
    """The model class ``pack`` verified this package with (a consumer's class, for one in the consumer's
    layout), from the manifest beside the goldens whose files have these md5s."""
    for path in sorted(goldens.parent.parent.glob("*.manifest.json")):
        try:
            data = json.loads(path.read_text("utf-8"))
            if {f["path"]: f["md5"] for f in data["files"]} == files:
                return str(data["model_class"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def default_class(backend: str, task: str) -> str:
    """The backend's own model class for the task (no recorded one, no ``--model-class``)."""
    from backends.registry import find_backend

    spec = find_backend(backend)
    found = spec.default_model_class(task) if spec else None
    if found:
        return found
    raise PublishError(f"no model class known for backendType {backend!r}; pass --model-class module:Class")
