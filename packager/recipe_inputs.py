"""The ``[inputs]`` table (and ``[variants.NAME.inputs]``): the sample inputs the reference and every
package are fed, declared like every recipe table (:mod:`packager.recipes`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from backends.schema import Table, key
from packager import recipe_checks

INPUT_KINDS = ("text", "tensor", "text-image")
DTYPES = ("float32", "float16", "float64", "int64", "int32", "uint8", "bool")
MAX_DIM = 2**31 - 1
MIN_STEPS = 8
"""A sequence check runs at least this many calls: a state that drifts shows after several steps."""


@dataclass(frozen=True)
class TensorInput(Table):
    """``[[inputs.tensors]]``: one input: a seeded random tensor (any rank, 0-d included), a constant
    (``value``) or a state input fed from an output (``state_from``)."""

    name: str = key(pattern=r".+", what="a name", accepted="the model's input name")
    """The model input it feeds."""
    shape: list[int] | None = key(None, ge=1, le=MAX_DIM, accepted="positive integers ([] for a 0-d input)")
    """Its shape as written, batch included (give ``shape`` or ``shapes``; ``[]``: a 0-d input)."""
    dtype: str | None = key(None, choices=DTYPES)
    """Its element type (default: ``float32``; a constant's follows its value: ``int64`` for an integer)."""
    low: float = 0.0
    """Values are drawn from [low, high)."""
    high: float = 1.0
    """Upper end of the values (>= low)."""
    shapes: list[list[int]] = key(
        factory=list,
        ge=1,
        le=MAX_DIM,
        min_items=1,
        accepted="a list of shapes of positive integers",
    )
    """A shape set: every shape the package is verified and timed at (``shape`` is the first, the one
    exports trace with); empty when the recipe gives a single ``shape``."""
    batch_axis: int | Literal["auto", "none"] | None = key("auto", ge=0, le=31)
    """Which axis holds the samples (``1`` for a state ``[layers, N, hidden]``); ``"none"``: none (an input
    every sample shares); ``"auto"``: 0, or none for a constant or a 0-d input."""
    value: bool | int | float | None = None
    """A constant (``value = 16000``): every call gets it as written, a 0-d array of ``dtype`` (a torch
    module whose ``forward`` takes a Python number gets the number)."""
    state_from: str | None = key(None, pattern=r".+", what="an output name")
    """A state input: the output whose value feeds it at the next step of a sequence."""
    initial: Literal["zeros", "random"] = "zeros"
    """A state input's value at the first step: ``zeros`` of its shape, or ``random`` (``low``..``high``)."""

    def __post_init__(self) -> None:
        """Resolve the defaults that depend on other keys (also for a table built in code): ``"auto"`` and
        ``"none"`` batch axes become an axis or None, a missing dtype the value's or ``float32``. An explicit
        axis is kept, so ``validate`` can refuse one on a constant."""
        rank = len(self.shapes[0] if self.shapes else self.shape or [])
        if self.batch_axis == "auto":
            object.__setattr__(self, "batch_axis", 0 if rank and self.value is None else None)
        elif self.batch_axis == "none":
            object.__setattr__(self, "batch_axis", None)
        if self.dtype is None:
            value = self.value
            kind = "bool" if isinstance(value, bool) else "int64" if isinstance(value, int) else "float32"
            object.__setattr__(self, "dtype", kind if value is not None else "float32")

    def validate(self, where: str = "") -> None:
        recipe_checks.check_tensor(self, where)

    def normalized(self) -> TensorInput:
        shapes = self.shapes or [self.shape if self.shape is not None else []]
        return replace(self, shape=shapes[0], shapes=shapes if len(shapes) > 1 else [])


@dataclass(frozen=True)
class InputsRecipe(Table):
    """``[inputs]`` (or ``[variants.NAME.inputs]``): the sample inputs the reference and every package see."""

    kind: str = key(choices=INPUT_KINDS)
    """text: tokenized by the upstream tokenizer; tensor: seeded random arrays; text-image: texts rendered
    as text-line images."""
    texts: list[str] = field(default_factory=list)
    """The sentences of a text or text-image input."""
    max_length: int = key(128, ge=1, le=2**20)
    """Tokenizer max length."""
    tensors: list[TensorInput] = field(default_factory=list)
    """The tensors of a tensor (or text-image) input."""
    seed: int = key(0, ge=0)
    """Seed of the random tensors."""
    sets: int = key(4, ge=1, le=1000)
    """Different input batches rotated while timing."""
    steps: int | None = key(None, ge=1, le=10_000)
    """Calls in a sequence: above 1, reference and package run the same ``steps`` calls in order (state
    inputs fed from the outputs named by ``state_from``) and every step's outputs are compared. Default: 1,
    and ``MIN_STEPS`` when there are state inputs."""

    def validate(self, where: str = "") -> None:
        recipe_checks.check_inputs(self.kind, self.texts, self.tensors, where or "inputs")
        recipe_checks.check_steps(self.steps, list(self.state), MIN_STEPS, where or "inputs")

    def normalized(self) -> InputsRecipe:
        return replace(self, steps=self.steps or (MIN_STEPS if self.state else 1))

    @property
    def state(self) -> dict[str, str]:
        """``{state input: the output that feeds it}``."""
        return {t.name: t.state_from for t in self.tensors if t.state_from}

    @property
    def batch_size(self) -> int:
        """The batch as written: the first batched input's size along its batch axis (1 without one)."""
        for t in self.tensors:
            if t.batch_axis is not None and t.value is None and len(t.shape) > t.batch_axis:
                return int(t.shape[t.batch_axis])
        return 1

    def tensors_label(self, batch: int | None = None) -> str:
        """``image 1x3x48x48, sr=16000``: every input's full shape (at ``batch`` samples when given)."""
        parts = []
        for t in self.tensors:
            if t.value is not None:
                parts.append(f"{t.name}={t.value}")
                continue
            shape = list(t.shape)
            if batch is not None and t.batch_axis is not None and len(shape) > t.batch_axis:
                shape[t.batch_axis] = batch
            parts.append(f"{t.name} {'x'.join(map(str, shape)) or 'scalar'}")
        return ", ".join(parts)

    @property
    def shape_count(self) -> int:
        """How many shapes the shape set has (1 without ``shapes``)."""
        return max([len(t.shapes) for t in self.tensors] + [1])

    def at_shape(self, index: int) -> InputsRecipe:
        """These inputs with every tensor at shape ``index`` of its shape set (a single shape stays)."""
        if index == 0 or self.shape_count == 1:
            return self
        tensors = [
            replace(t, shape=t.shapes[index] if len(t.shapes) > 1 else t.shape, shapes=[])
            for t in self.tensors
        ]
        return replace(self, tensors=tensors)

    def shape_label(self, index: int) -> str | None:
        """``image 1x3x240x320``: what a report row at shape ``index`` says, the full shape as written
        (batch included: two shapes that differ only in batch are two rows); ``None`` without a shape
        set."""
        if self.shape_count == 1:
            return None
        return self.at_shape(index).tensors_label()
