"""Golden arrays: the sample inputs and outputs of a verified run, saved as ``.npz``.

Later runs (fixtures, nightly benchmarks, ``pack verify-remote``, compare's measure step) compare against
them. Arrays are keyed ``input/NAME`` and ``output/NAME`` so one file can hold both.

A variant's reference golden (``goldens/ARCH-VARIANT-reference.npz``) holds every case a package is
checked on (:class:`ParityCase`): the parity batch at ``input/``/``output/`` (with a recurrent model's
sequence at ``sequence/K/...``), each further shape of a shape set and the batch-axis proof at
``case/N/...``, and their labels in ``cases.json``. ``pack`` writes it before it verifies and reads it back
for the check, as every other entry does (:func:`packager.package_check.package_check`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backends.base import Tensors
from packager import atomic
from packager.sequence import CallSequence, save_sequence

CASES_KEY = "cases.json"


@dataclass(frozen=True)
class ParityCase:
    """One set of inputs a package is checked on, with the reference's outputs on them."""

    label: str | None
    """``image 1x3x240x320`` (the report rows' ``input_shape``); ``None`` without a shape set."""
    inputs: Tensors
    reference: Tensors
    sequence: CallSequence | None = None
    """A recurrent model's sequence (``inputs``/``reference`` are then its first step)."""
    shape: int | None = 0
    """Index in the variant's shape set (its latency batches are built at that shape); ``None``: the
    second sample that proves a batch-1 shape set's batch axis dynamic, checked only on packages that
    declare a dynamic batch, never timed."""

    @property
    def batch_proof(self) -> bool:
        return self.shape is None


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


def save_golden(path: Path, cases: Sequence[ParityCase]) -> Path:
    """Write every case of a variant (the first at ``input/``/``output/``, the others at ``case/N/``)."""
    arrays: dict[str, np.ndarray] = {}
    for n, case in enumerate(cases):
        prefix = "" if n == 0 else f"case/{n}/"
        arrays.update({f"{prefix}input/{k}": v for k, v in case.inputs.items()})
        arrays.update({f"{prefix}output/{k}": v for k, v in case.reference.items()})
        if case.sequence is not None:
            steps = save_sequence(case.sequence.feeds, case.sequence.reference)
            arrays.update({prefix + k: v for k, v in steps.items()})
    meta = [
        {"label": c.label, "shape": c.shape, "state": dict(c.sequence.state) if c.sequence else {}}
        for c in cases
    ]
    arrays[CASES_KEY] = np.array(json.dumps(meta))
    return save_arrays(path, arrays)


def has_cases(path: Path) -> bool:
    """Whether ``path`` holds its cases' labels (written by :func:`save_golden`, not an older run)."""
    try:
        with np.load(path) as data:
            return CASES_KEY in data.files
    except (OSError, ValueError):
        return False


def load_golden(path: Path, state: Mapping[str, str] | None = None) -> tuple[ParityCase, ...]:
    """Every case saved in ``path``, each sequence with the ``{state input: output}`` saved with it. A
    golden without ``cases.json`` (written before shape cases were kept) gives its parity batch alone, its
    sequence with ``state`` (the recipe's)."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    old = [{"label": None, "shape": 0, "state": dict(state or {})}]
    meta = json.loads(str(arrays.pop(CASES_KEY))) if CASES_KEY in arrays else old
    cases = []
    for n, item in enumerate(meta):
        prefix = "" if n == 0 else f"case/{n}/"
        mine = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
        sequence = _sequence(mine, item.get("state") or {})
        cases.append(
            ParityCase(
                label=item.get("label"),
                inputs=_under(mine, "input/"),
                reference=_under(mine, "output/"),
                sequence=sequence,
                shape=item.get("shape"),
            )
        )
    return tuple(cases)


def _under(arrays: Mapping[str, np.ndarray], prefix: str) -> Tensors:
    n = len(prefix)
    return {k[n:]: v for k, v in arrays.items() if k.startswith(prefix) and "/" not in k[n:]}


def _sequence(arrays: Mapping[str, np.ndarray], state: Mapping[str, str]) -> CallSequence | None:
    feeds: dict[int, Tensors] = {}
    outputs: dict[int, Tensors] = {}
    for key, value in arrays.items():
        parts = key.split("/", 3)
        if len(parts) == 4 and parts[0] == "sequence" and parts[1].isdigit():
            target = feeds if parts[2] == "input" else outputs
            target.setdefault(int(parts[1]), {})[parts[3]] = value
    if not feeds:
        return None
    steps = sorted(set(feeds) | set(outputs))
    return CallSequence(
        tuple(feeds.get(k, {}) for k in steps), dict(state), tuple(outputs.get(k, {}) for k in steps)
    )
