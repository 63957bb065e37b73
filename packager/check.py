"""The two steps of checking a package, each returning a value: :func:`open_package` (extract a zip as a
consumer does, load it through its model class, run once; timed) and :func:`check_outputs` (run the sample
inputs, compare with the reference under a tolerance function, task-level checks). Every entry reaches
them through its :class:`~packager.package_check.PackageCheck`, which decides their arguments once.
Nothing here writes a report: callers assemble theirs from the results.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from backends.base import Tensors
from backends.outputs import run_model
from bench import memory
from bench.parity import OutputParity, compare_outputs, compare_sequence
from bench.tasks import TaskCheck, TaskCheckSpec, covers, task_checks
from packager import archive
from packager.consumer import load_model_class
from packager.sequence import CallSequence, reset_state, run_sequence

ToleranceFn = Callable[[str, str], tuple[float, float]]
"""``(output name, dtype) -> (atol, rtol)``."""


@dataclass(frozen=True)
class CheckRequest:
    """What to compare a package's outputs with, and how strictly."""

    model_class: str
    device: str
    inputs: Tensors
    reference: Tensors
    tolerance: ToleranceFn
    task: str | None = None
    """Run the task-level checks of this task (``None``: tensor parity only)."""
    min_cosine: float | None = None
    sequence: CallSequence | None = None
    """A recurrent model's sequence: the package runs these calls from its start (reset, or reloaded) and
    every step's outputs are compared; ``inputs``/``reference`` are then its first step."""
    task_check: TaskCheckSpec | None = None
    """The recipe's declared task check: it judges the outputs it covers (``result.*``), which the
    element comparison then leaves out (a changed number of boxes is not a missing name)."""


@dataclass
class CheckResult:
    """The package's outputs on the sample inputs and how they compare with the reference."""

    outputs: Tensors
    parity: list[OutputParity]
    task_checks: list[TaskCheck] = field(default_factory=list)
    stateful: bool = False
    """The package's outputs changed between two identical calls: it keeps state the recipe does not
    declare (the failure says so instead of blaming the numbers)."""
    steps: int = 1
    """Calls compared (a sequence's length)."""

    @property
    def passed(self) -> bool:
        """True only when something was compared and nothing failed."""
        return (
            bool(self.parity or self.task_checks)
            and all(p.passed for p in self.parity)
            and all(c.passed for c in self.task_checks)
        )


@dataclass
class OpenedPackage:
    """A package loaded through its model class, with what loading it cost (the consumer's cold start)."""

    model: Any
    cold_start: dict[str, Any]
    first_outputs: Tensors = field(default_factory=dict)
    """What the first inference returned (on the inputs it was opened with)."""
    reload: Callable[[], Any] | None = None
    """Load the package again (a fresh model, for one with hidden state and no ``reset_states()``)."""


def open_package(
    package: Path,
    model_class: str,
    device: str,
    inputs: Tensors,
    unzip_dir: Path,
    load_kwargs: dict[str, Any] | None = None,
    limits: archive.Limits | None = None,
) -> OpenedPackage:
    """Extract ``package`` (a zip; a folder is used in place) into ``unzip_dir``, ``from_pretrained`` it
    on ``device`` (plus ``load_kwargs``, such as thread counts; ``limits``: the archive's size limits) and
    run ``inputs`` once: extract, load and
    first inference timed separately, memory measured around them."""
    rss_before = memory.rss_bytes()
    memory.reset_cuda_peak(device)
    device_before = memory.device_used_bytes(device)
    t0 = time.perf_counter()
    if Path(package).is_file():
        archive.safe_extract(package, unzip_dir, limits=limits)
        folder = unzip_dir
    else:
        folder = Path(package)
    t1 = time.perf_counter()

    def reload() -> Any:
        return load_model_class(model_class).from_pretrained(
            str(folder), device=device, **(load_kwargs or {})
        )

    model = reload()
    t2 = time.perf_counter()
    first = run_model(model, inputs)
    if hasattr(model, "synchronize"):
        model.synchronize()
    t3 = time.perf_counter()
    cold = {
        "extract_s": t1 - t0,
        "load_s": t2 - t1,
        "first_inference_s": t3 - t2,
        "total_s": t3 - t0,
        "rss_delta_bytes": memory.rss_bytes() - rss_before,
        "peak_rss_bytes": memory.peak_rss_bytes(),
        **memory.cuda_peak(device),
        **memory.device_delta(device, device_before),  # what the load took on the device, any library
        **getattr(model, "load_facts", {}),  # how it was loaded (e.g. TensorRT host code allowed)
    }
    return OpenedPackage(model, cold, first, reload)


def check_outputs(model: Any, request: CheckRequest, opened: OpenedPackage | None = None) -> CheckResult:
    """Run the request's inputs through ``model`` (from its start: reset, or ``opened.reload()``d, when it
    keeps state) and compare with its reference outputs; a sequence compares every step. A failure where
    the package's outputs changed between two identical calls is reported as ``stateful``."""
    how = reset_state(model)
    if request.sequence is not None:
        if how is None and opened is not None and opened.reload is not None:
            model = opened.reload()
        seq = request.sequence
        steps = run_sequence(model, seq.feeds, seq.state)
        parity = compare_sequence(list(seq.reference), steps, request.tolerance)
        outputs, reference = steps[0], seq.reference[0]
        result = CheckResult(outputs, parity, _task_checks(request, reference, outputs))
        result.steps = seq.steps
        return result
    result = judge(request, run_model(model, request.inputs))
    if not result.passed and how is None:
        result = _stateful(model, request, result)
    return result


def judge(request: CheckRequest, outputs: Tensors) -> CheckResult:
    """Compare ``outputs`` (of the request's inputs, from any runner: a package here, the consumer's
    ``AutoModel`` in verify-remote) with the reference: element parity, then the task checks."""
    declared = request.task_check
    if declared is None:
        parity = compare_outputs(request.reference, outputs, request.tolerance)
    else:
        by_element = {k: v for k, v in request.reference.items() if not covers(declared, k)}
        parity = compare_outputs(
            by_element, {k: v for k, v in outputs.items() if not covers(declared, k)}, request.tolerance
        )
    return CheckResult(outputs, parity, _task_checks(request, request.reference, outputs))


def _task_checks(request: CheckRequest, reference: Tensors, outputs: Tensors) -> list[TaskCheck]:
    """The task's checks, and the recipe's declared one (``[parity.task]``)."""
    if not (request.task or request.task_check):
        return []
    return list(task_checks(request.task or "", reference, outputs, request.min_cosine, request.task_check))


def _stateful(model: Any, request: CheckRequest, result: CheckResult) -> CheckResult:
    """A failed check on a package that answers the same inputs differently a second time: its outputs
    depend on a history, so the numbers say nothing until the recipe declares the sequence."""
    again = run_model(model, request.inputs)
    changed = [p for p in compare_outputs(result.outputs, again, request.tolerance) if not p.passed]
    if not changed:
        return result
    worst = max(changed, key=lambda p: p.max_abs or 0.0)
    why = (
        f"stateful: the package's outputs changed between two identical calls ({worst.output}: max change "
        f"{worst.max_abs:.3g}); it keeps state the recipe does not declare: declare it ([inputs] steps, "
        "state inputs with state_from) or give the module a reset_states() (docs/your-own-model.md)"
    )
    parity = [p if p.passed else replace(p, reason=f"{why}; {p.reason}") for p in result.parity]
    return replace(result, parity=parity, stateful=True)
