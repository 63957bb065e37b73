"""Where weightpack keeps what it downloads (and, on a cluster node, what its tasks fetch and build)."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$WEIGHTPACK_CACHE``, else ``$XDG_CACHE_HOME/weightpack``, else ``~/.cache/weightpack``."""
    if os.environ.get("WEIGHTPACK_CACHE"):
        return Path(os.environ["WEIGHTPACK_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "weightpack"
