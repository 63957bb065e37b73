"""Package trees into flat, deterministic zips and extract zips safely.

Public API: :class:`FileEntry`, :class:`ZipResult`, :func:`validate_tree`, :func:`build_zip`,
:func:`validate_zip`, :func:`check_zip`, :func:`check_file_list`, :func:`safe_extract`, :func:`hash_file`,
:class:`Limits` (:data:`DEFAULT_LIMITS`: the defaults, built once).
Hostile-data rules (one validator for every entry): see ``validator``; zip format
choices (no directory entries, fixed timestamp/attributes, data descriptors): see ``_build``.
"""

from __future__ import annotations

from pathlib import Path

from packager.archive._build import (
    DEFAULT_COMPRESS,
    DEFLATE_LEVEL,
    FIXED_DATE_TIME,
    WEIGHT_PATTERNS,
    FileEntry,
    ZipResult,
    build_zip,
    compression_for,
)
from packager.archive._extract import check_file_list, check_zip, safe_extract, validate_zip
from packager.archive._rules import scan_tree
from packager.archive.validator import DEFAULT_LIMITS, Limits
from packager.hashing import CHUNK_SIZE, hash_file


def validate_tree(root: Path) -> list[str]:
    """Every layout rule ``root`` breaks, one message each (path, rule, what is accepted); [] when fine."""
    return [str(problem) for problem in scan_tree(Path(root))[1]]


__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_COMPRESS",
    "DEFAULT_LIMITS",
    "DEFLATE_LEVEL",
    "FIXED_DATE_TIME",
    "WEIGHT_PATTERNS",
    "FileEntry",
    "Limits",
    "ZipResult",
    "build_zip",
    "check_file_list",
    "check_zip",
    "compression_for",
    "hash_file",
    "safe_extract",
    "validate_tree",
    "validate_zip",
]
