"""Types shared by the scheme modules."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ProgressCallback = Callable[[str, int, "int | None"], None]
"""``progress(description, bytes_done, total_or_None)``."""


@dataclass
class Located:
    """What a scheme module hands back: where the files are and which of them belong to the source."""

    path: Path
    resolved: str
    files: list[tuple[str, Path]]
    extra: dict[str, Any] = field(default_factory=dict)
