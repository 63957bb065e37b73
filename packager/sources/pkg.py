"""``pkg://module/sub/path``: a data folder shipped inside an installed Python package."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

from ..errors import SourceError, SourceNotInstalledError
from ._types import Located
from .local import locate_path
from .spec import SourceSpec


def _package_root(module: str, uri: str) -> Path:
    hint = module.split(".")[0].replace("_", "-")
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise SourceNotInstalledError(
            f"{uri}: Python module '{module}' is not installed. Install the distribution that provides it, "
            f"e.g. pip install {hint}"
        )
    if spec.submodule_search_locations:  # a package: no need to import (and run) it
        return Path(next(iter(spec.submodule_search_locations)))
    if spec.origin and spec.has_location:
        return Path(spec.origin).parent
    raise SourceError(f"{uri}: module '{module}' has no files on disk (a namespace or built-in module)")


def _distribution(module: str) -> dict[str, str]:
    top = module.split(".")[0]
    try:
        names = importlib.metadata.packages_distributions().get(top, [])
        if names:
            return {"distribution": names[0], "version": importlib.metadata.version(names[0])}
    except Exception:  # metadata is informative only
        pass
    return {}


def fetch_pkg(spec: SourceSpec) -> Located:
    root = _package_root(spec.module, spec.uri)
    target = root / spec.subpath if spec.subpath else root
    located = locate_path(target, f"pkg source {spec.uri!r}")
    if not located.path.resolve().is_relative_to(root.resolve()):
        raise SourceError(f"{spec.uri}: resolves outside the package ({located.path})")
    located.extra["package"] = {"module": spec.module, **_distribution(spec.module)}
    return located
