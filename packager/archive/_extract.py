"""``safe_extract``, ``check_zip`` and ``validate_zip``: weightpack's typed errors over :mod:`.validator`.

The validator raises its own ``HostileArchiveError`` (it must run where weightpack is not installed); here
that becomes ``UnsafeArchiveError`` when a problem could write outside the target, through a link or past
the size limits, and ``ArchiveError`` for a plain layout break. Both exit 2.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from packager.archive.validator import (
    DEFAULT_LIMITS,
    HostileArchiveError,
    Limits,
    extract_zip,
    file_list_problems,
    read_zip,
    stream_member,
)
from packager.errors import ArchiveError, UnsafeArchiveError

__all__ = ["Limits", "check_file_list", "check_zip", "safe_extract", "validate_zip"]


def typed(exc: HostileArchiveError) -> ArchiveError:
    """The weightpack error for a validator refusal (same message)."""
    return (UnsafeArchiveError if exc.unsafe else ArchiveError)(str(exc))


def validate_zip(zip_path: Path, limits: Limits | None = None) -> list[str]:
    """Every rule a zip breaks, one message each; [] when it is fine."""
    try:
        read_zip(zip_path, limits or DEFAULT_LIMITS)
    except HostileArchiveError as exc:
        return [str(p) for p in exc.problems]
    return []


def check_zip(zip_path: Path, limits: Limits | None = None) -> None:
    """Raise ArchiveError/UnsafeArchiveError unless the whole zip follows every rule, for a zip that is kept
    rather than extracted (pack's reuse of a previous build): the headers, then every member's data
    streamed through the same size and CRC checks as extraction, a chunk at a time, written nowhere. A
    member larger than declared or corrupt is refused here, not by the verification that extracts it."""
    try:
        members = read_zip(zip_path, limits or DEFAULT_LIMITS)
        with open(zip_path, "rb") as raw:
            for info, start in members:
                if not info.filename.endswith("/"):  # a directory entry's data is never extracted
                    stream_member(raw, info, start, str(zip_path))
    except HostileArchiveError as exc:
        raise typed(exc) from None


def check_file_list(source: str, files: list[tuple[str, int | None]], limits: Limits | None = None) -> None:
    """Raise unless a package registered file by file (``(path, size)`` pairs) follows the same rules."""
    problems = file_list_problems(files, limits or DEFAULT_LIMITS)
    if problems:
        raise typed(HostileArchiveError(source, problems))


def safe_extract(
    zip_path: Path,
    dest: Path,
    *,
    limits: Limits | None = None,
    max_total_bytes: int | None = None,
    max_ratio: float | None = None,
    max_files: int | None = None,
) -> list[Path]:
    """Extract ``zip_path`` into ``dest`` (new or empty) all-or-nothing; returns the files, sorted.

    ``max_total_bytes``, ``max_ratio`` (per member and whole archive) and ``max_files`` override ``limits``.
    """
    base = limits or DEFAULT_LIMITS
    limits = replace(
        base,
        max_total_bytes=base.max_total_bytes if max_total_bytes is None else max_total_bytes,
        max_members=base.max_members if max_files is None else max_files,
        max_member_ratio=base.max_member_ratio if max_ratio is None else max_ratio,
        max_archive_ratio=base.max_archive_ratio if max_ratio is None else max_ratio,
    )
    dest = Path(dest)
    try:
        names = extract_zip(zip_path, dest, limits)
    except HostileArchiveError as exc:
        raise typed(exc) from None
    return [dest.joinpath(*name.split("/")) for name in names]
