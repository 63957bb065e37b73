"""An export that fails where the upstream already ships the package's format says so.

Model authors often ship the same network twice (a TorchScript ``.jit`` and an ``.onnx``, as Silero VAD
does); their own graph is what a user wants when exporting from the other one fails (a scripted module
that calls submodules cannot be traced to ONNX). The failure then names the file and the recipe line that
adopts it as it is. Pure lookups beside the source's file, for local and ``pkg://`` sources (an ``hf://``
repository is not listed: the hub may be out of reach).
"""

from __future__ import annotations

from pathlib import Path

from backends.errors import WeightpackError
from backends.registry import get_backend
from packager import sources
from packager.reference import content
from packager.sources import FetchedSource


def shipped_alternatives(source: str, fetched: FetchedSource, backend: str) -> list[tuple[str, str]]:
    """``[(file name, source line)]``: files beside a single-file source that ``backend`` adopts as they
    are (an ``.onnx`` beside the ``.jit`` for the onnx backend), read for what they are."""
    suffixes = get_backend(backend).adopts_upstream
    if not suffixes or len(fetched.files) != 1:
        return []
    try:
        kind = sources.parse_uri(source).kind
    except WeightpackError:
        return []
    if kind not in ("local", "pkg"):
        return []
    file = (fetched.path / next(iter(fetched.files))).resolve()
    found = []
    for sibling in sorted(file.parent.iterdir()):
        if sibling == file or not sibling.is_file() or not sibling.name.endswith(suffixes):
            continue
        if content.sniff(sibling) == content.guess(sibling.name):
            head = source.rstrip("/").rsplit("/", 1)[0] + "/" if "/" in source.rstrip("/") else ""
            found.append((sibling.name, f'source = "{head}{sibling.name}"'))
    return found


def hinted(exc: WeightpackError, recipe_path: Path, variant: str, backend: str, source: str,
           fetched: FetchedSource) -> WeightpackError:  # fmt: skip
    """``exc`` (an export failure) with the upstream's own file in ``backend``'s format named, and the
    recipe line that adopts it; ``exc`` unchanged when the upstream ships none."""
    found = shipped_alternatives(source, fetched, backend)
    if not found:
        return exc
    name, line = found[0]
    hint = (
        f"the upstream ships {name} beside {Path(source).name}, already in the {backend} package's format: "
        f"adopt it as it is with a variant of {recipe_path} whose source is that file, `{line}` (an "
        "adopted file is its own reference; its inputs are its own, see pack inspect)"
    )
    exc.args = (f"{exc}\n{hint}",)
    return exc
