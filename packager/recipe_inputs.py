"""The ``[inputs]`` table (and ``[variants.NAME.inputs]``): the sample inputs the reference and every
package are fed, declared like every recipe table (:mod:`packager.recipes`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from backends.schema import Table, key
from packager import recipe_checks

INPUT_KINDS = ("text", "tensor", "text-image")
DTYPES = ("float32", "float16", "float64", "int64", "int32", "uint8", "bool")
MAX_DIM = 2**31 - 1


@dataclass(frozen=True)
class TensorInput(Table):
    """``[[inputs.tensors]]``: one seeded random input tensor."""

    name: str = key(pattern=r".+", what="a name", accepted="the model's input name")
    """The model input it feeds."""
    shape: list[int] = key(
        factory=list, ge=1, le=MAX_DIM, min_items=1, accepted="positive integers, batch first"
    )
    """Its shape, batch first (give ``shape`` or ``shapes``)."""
    dtype: str = key("float32", choices=DTYPES)
    """Its element type."""
    low: float = 0.0
    """Values are drawn from [low, high)."""
    high: float = 1.0
    """Upper end of the values (>= low)."""
    shapes: list[list[int]] = key(
        factory=list,
        ge=1,
        le=MAX_DIM,
        min_items=1,
        accepted="a list of shapes of positive integers, batch first",
    )
    """A shape set: every shape the package is verified and timed at (``shape`` is the first, the one
    exports trace with); empty when the recipe gives a single ``shape``."""

    def validate(self, where: str = "") -> None:
        recipe_checks.check_tensor(self.shape, self.shapes, self.low, self.high, where)

    def normalized(self) -> TensorInput:
        if self.shapes:
            return replace(self, shape=self.shapes[0], shapes=self.shapes if len(self.shapes) > 1 else [])
        return self


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

    def validate(self, where: str = "") -> None:
        recipe_checks.check_inputs(self.kind, self.texts, self.tensors, where or "inputs")

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
        """``image 3x240x320``: what a report row at shape ``index`` says (batch left out: rows carry their
        batch size); ``None`` without a shape set."""
        if self.shape_count == 1:
            return None
        spec = self.at_shape(index)
        return ", ".join(f"{t.name} {'x'.join(map(str, t.shape[1:]))}" for t in spec.tensors)
