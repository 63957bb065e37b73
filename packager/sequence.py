"""Models that remember: a sequence of calls with declared state, and modules with hidden state.

A recurrent model either takes its state as an input and returns the next one (an ONNX graph: ``state`` in,
``stateN`` out), or keeps it inside (a TorchScript module whose ``forward`` updates ``self._state``). Either
way one call proves little: reference and package must run the same calls in the same order from the same
start. :func:`run_sequence` is that loop, used for the reference (``packager.reference``) and for every
package (``packager.check``); :func:`reset_state` puts a module with hidden state back at its start
(``reset_states()``, the convention of streaming models) before each sequence, so the reference and the
package have seen the same history.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from backends.base import Tensors
from backends.errors import InputMismatchError
from backends.outputs import run_model

RESET_METHODS = ("reset_states", "reset_state")


@dataclass(frozen=True)
class CallSequence:
    """``feeds``: each step's inputs (state inputs at the first step only); ``state``: ``{state input: the
    output that feeds it}``; ``reference``: the reference's outputs at every step."""

    feeds: tuple[Tensors, ...]
    state: Mapping[str, str]
    reference: tuple[Tensors, ...] = ()

    @property
    def steps(self) -> int:
        return len(self.feeds)


def run_sequence(model: Any, feeds: Sequence[Tensors], state: Mapping[str, str]) -> list[Tensors]:
    """Each step's outputs: step ``k`` gets ``feeds[k]`` plus, for ``k > 0``, every state input set to the
    output that feeds it at step ``k - 1``."""
    outputs: list[Tensors] = []
    carried: Tensors = {}
    for step, feed in enumerate(feeds):
        out = run_model(model, {**feed, **carried})
        missing = sorted({o for o in state.values() if o not in out})
        if missing:
            raise InputMismatchError(
                f"the state inputs are fed by outputs {missing}, which the model does not return (its "
                f"outputs at step {step}: {sorted(out)}); set state_from to one of them"
            )
        carried = {name: out[source] for name, source in state.items()}
        outputs.append(out)
    return outputs


def reset_state(model: Any) -> str | None:
    """Put a model with hidden state back at its start: its own (or its wrapped module's)
    ``reset_states()``; returns what was called, or ``None`` when it has no such method."""
    for owner in (model, getattr(model, "module", None), getattr(model, "model", None)):
        for name in RESET_METHODS:
            method = getattr(owner, name, None) if owner is not None else None
            if callable(method):
                method()
                return f"{name}()"
    return None


def save_sequence(inputs: Sequence[Tensors], outputs: Sequence[Tensors]) -> dict[str, Any]:
    """The arrays of a sequence for a golden ``.npz``: ``sequence/K/input/NAME`` and
    ``sequence/K/output/NAME`` (the plain ``input/`` and ``output/`` keys stay the first step's); read back
    by :func:`packager.goldens.load_golden`."""
    arrays = {}
    for step, (feed, out) in enumerate(zip(inputs, outputs, strict=True)):
        arrays.update({f"sequence/{step}/input/{k}": v for k, v in feed.items()})
        arrays.update({f"sequence/{step}/output/{k}": v for k, v in out.items()})
    return arrays
