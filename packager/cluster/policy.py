"""When a task dies: what kind of death it was, whether to try once more and where, and when a task that
waits for a node has waited too long. Pure functions, tested without Ray.

A task's own errors (a failed export, a failed check, bad input) come back as values and are recorded as
a local run records them; what is decided here is the rest: the worker process crashed or was killed, it
ran out of memory, its node was lost, it was cancelled, or our code raised something unexpected. Each is
that package's failed check (exit 1), never the run's, after at most one more try:

* crashed: once more, on another node of the same target when there is one, else on the same node (a
  killed process may be a one-off);
* out of memory: once more only on another node (the same node would run out again);
* node lost: once more on another live node of the target, if any is left;
* cancelled, or an unexpected error in the task's code: never (the same input gives the same error).

A task is safe to run again: it builds in its node's scratch folder and returns values; only the driver
writes the output folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from packager.errors import WeightpackError

MAX_ATTEMPTS = 2


class Death(Enum):
    CRASHED = "the worker process died"
    OUT_OF_MEMORY = "the worker ran out of memory"
    NODE_LOST = "the node was lost"
    CANCELLED = "the task was cancelled"
    ERROR = "the task raised an unexpected error"


# Ray's exception classes by name (ray.exceptions), so this module needs no Ray.
_BY_NAME = {
    "WorkerCrashedError": Death.CRASHED,
    "ActorDiedError": Death.CRASHED,
    "OutOfMemoryError": Death.OUT_OF_MEMORY,
    "NodeDiedError": Death.NODE_LOST,
    "LocalRayletDiedError": Death.NODE_LOST,
    "ObjectLostError": Death.NODE_LOST,
    "ObjectFetchTimedOutError": Death.NODE_LOST,
    "OwnerDiedError": Death.NODE_LOST,
    "ReferenceCountingAssertionError": Death.NODE_LOST,
    "TaskCancelledError": Death.CANCELLED,
    "TaskUnschedulableError": Death.NODE_LOST,
}


class TaskDiedError(WeightpackError):
    """A package's task died (crash, out of memory, lost node) on every try: that package's failed check."""

    exit_code = 1


def classify(exc: BaseException) -> Death:
    """What kind of death ``exc`` (raised by ``ray.get`` on a task's result) reports."""
    for kind in type(exc).__mro__:
        if kind.__name__ in _BY_NAME:
            return _BY_NAME[kind.__name__]
    return Death.ERROR


@dataclass(frozen=True)
class Retry:
    """Try once more: on ``node_id`` (None: any node of the target)."""

    node_id: str | None
    why: str


def retry(death: Death, attempts: int, failed_on: Sequence[str], eligible: Sequence[str]) -> Retry | None:
    """Whether and where to run a task again after ``attempts`` tries died, the last with ``death``.

    ``failed_on``: the nodes its tries died on; ``eligible``: the live nodes that may run it now."""
    if attempts >= MAX_ATTEMPTS or death in (Death.CANCELLED, Death.ERROR):
        return None
    others = [n for n in eligible if n not in failed_on]
    if others:
        return Retry(others[0], f"{death.value}; once more on another node")
    if death is Death.CRASHED and eligible:
        return Retry(None, f"{death.value}; once more (no other node of its kind)")
    return None


def waited_too_long(unavailable_since: float | None, now: float, timeout_s: float) -> bool:
    """A task that has not started and whose resource no live node offers, for ``timeout_s`` or more:
    its target is gone (a node lost after the up-front check, and not replaced in time)."""
    return unavailable_since is not None and now - unavailable_since >= timeout_s


def death_message(label: str, tries: list[dict]) -> str:
    """``l6/onnx for h100: the worker process died on node 1a2b… (WorkerCrashedError: ...); ...``."""
    said = "; then ".join(
        f"{t['death']} on node {str(t.get('node') or '?')[:12]} ({t['error']})" for t in tries
    )
    retried = " (tried twice)" if len(tries) > 1 else ""
    return f"{label}: {said}{retried}; the other packages went on"
