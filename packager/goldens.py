"""Golden arrays: the sample inputs and outputs of a verified run, saved as ``.npz``.

Later runs (fixtures, nightly benchmarks, ``pack verify-remote``) compare against them. Arrays are keyed
``input/NAME`` and ``output/NAME`` so one file can hold both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from backends.base import Tensors
from packager import atomic


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write named arrays as ``.npz`` atomically: sample inputs (``input/NAME``) and outputs
    (``output/NAME``), so later runs (fixtures, nightly, verify-remote) compare against this run."""
    with atomic.atomic_open(path, "wb") as handle:
        np.savez(handle, **arrays)
    return path


def load_arrays(path: Path, prefix: str) -> Tensors:
    """The arrays saved by :func:`save_arrays` under ``prefix`` (``input`` or ``output``), prefix removed."""
    with np.load(path) as data:
        return {k.split("/", 1)[1]: data[k] for k in data.files if k.startswith(prefix + "/")}
