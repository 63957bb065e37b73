"""The ``[inputs]`` part of the recipe parser: text, tensors of any rank (0-d included), constants, batch
axes, state inputs and the sequence length (issue 23). A mixin of
:class:`packager.recipe_parser.RecipeParser`, whose ``get``/``choice``/``fail``/``unknown_keys`` it uses."""

from __future__ import annotations

from typing import Any

from packager.errors import RecipeError
from packager.recipes import DTYPES, INPUT_KINDS, InputsRecipe, TensorInput

TENSOR_KEYS = {
    "name",
    "shape",
    "shapes",
    "dtype",
    "low",
    "high",
    "value",
    "batch_axis",
    "state_from",
    "initial",
}
INITIALS = ("zeros", "random")
MIN_STEPS = 8
"""A sequence check runs at least this many calls: a state that drifts shows after several steps."""


class InputsParser:
    """Parses ``[inputs]`` tables; the host class provides the generic field checks."""

    def get(self, table: dict[str, Any], key: str, where: str, kind: Any, default: Any = ...) -> Any:
        raise NotImplementedError

    def choice(self, value: str, where: str, accepted: Any) -> str:
        raise NotImplementedError

    def fail(self, where: str, problem: str, accepted: str | None = None) -> RecipeError:
        raise NotImplementedError

    def unknown_keys(self, table: dict[str, Any], where: str, known: set[str]) -> None:
        raise NotImplementedError

    def inputs(self, table: dict[str, Any]) -> InputsRecipe:
        self.unknown_keys(
            table, "inputs", {"kind", "texts", "max_length", "tensors", "seed", "sets", "steps"}
        )
        kind = self.choice(self.get(table, "kind", "inputs", str), "inputs.kind", INPUT_KINDS)
        texts = self.get(table, "texts", "inputs", list, [])
        tensors = []
        if kind in ("text", "text-image") and (not texts or not all(isinstance(t, str) and t for t in texts)):
            raise self.fail(
                "inputs.texts", "text inputs need a list of non-empty strings", 'texts = ["a sentence", ...]'
            )
        for i, spec in enumerate(self.get(table, "tensors", "inputs", list, [])):
            where = f"inputs.tensors[{i}]"
            if not isinstance(spec, dict):
                raise self.fail(where, "must be a table", "{name, shape, dtype, low, high}")
            self.unknown_keys(spec, where, TENSOR_KEYS)
            tensors.append(self.tensor(spec, where))
        if kind == "tensor" and not tensors:
            raise self.fail("inputs.tensors", "tensor inputs need at least one [[inputs.tensors]] entry")
        if kind == "text-image" and (
            len(tensors) != 1 or len(tensors[0].shape) != 4 or tensors[0].shape[3] not in (1, 3)
            or tensors[0].dtype != "uint8"
        ):  # fmt: skip
            raise self.fail(
                "inputs.tensors",
                "text-image inputs render the texts into one uint8 image tensor",
                '[{ name = "image", shape = [N, HEIGHT, WIDTH, 3], dtype = "uint8" }]',
            )
        counts = {len(t.shapes) for t in tensors if t.shapes}
        if len(counts) > 1:
            raise self.fail(
                "inputs.tensors",
                f"shape sets of different lengths {sorted(counts)}",
                "the same number of shapes",
            )
        return InputsRecipe(
            kind=kind,
            texts=texts,
            tensors=tensors,
            max_length=self.get(table, "max_length", "inputs", int, 128),
            seed=self.get(table, "seed", "inputs", int, 0),
            sets=max(1, self.get(table, "sets", "inputs", int, 4)),
            steps=self.steps(table, tensors),
        )

    def tensor(self, spec: dict[str, Any], where: str) -> TensorInput:
        """One ``[[inputs.tensors]]`` entry: a sampled tensor (``shape``/``shapes``, ``[]`` for 0-d), a
        constant (``value``), a state input (``state_from``), each with its batch axis."""
        value = spec.get("value")  # read as written: get() would widen an int to a float
        if value is not None and not isinstance(value, (int, float, bool)):
            raise self.fail(f"{where}.value", f"has type {type(value).__name__}", "a number or a boolean")
        if value is not None:
            for key in ("shapes", "state_from", "low", "high"):
                if key in spec:
                    raise self.fail(
                        f"{where}.{key}", "does not go with value (a constant)", "value and dtype"
                    )
            if spec.get("shape", []) != []:
                raise self.fail(f"{where}.shape", f"{spec['shape']} for a constant", "[] or no shape")
            shapes: list[list[int]] = [[]]
        else:
            shapes = self.shapes(spec, where)
        kind = "bool" if isinstance(value, bool) else ("int64" if isinstance(value, int) else "float32")
        dtype = self.choice(self.get(spec, "dtype", where, str, kind), f"{where}.dtype", DTYPES)
        rank = len(shapes[0])
        axis: Any = self.get(spec, "batch_axis", where, (int, str), 0 if rank and value is None else "none")
        if value is not None and axis not in (None, "none"):
            raise self.fail(f"{where}.batch_axis", "a constant has no batch axis", '"none" or leave it out')
        if axis == "none":
            axis = None
        elif isinstance(axis, str) or not 0 <= axis < max(rank, 1) or (axis is not None and not rank):
            raise self.fail(
                f"{where}.batch_axis",
                f"{axis!r} is not an axis of a rank-{rank} input",
                f'0..{rank - 1}, or "none"' if rank else '"none" (a 0-d input has no batch axis)',
            )
        state_from = self.get(spec, "state_from", where, str, None)
        initial = self.choice(self.get(spec, "initial", where, str, "zeros"), f"{where}.initial", INITIALS)
        return TensorInput(
            name=self.get(spec, "name", where, str),
            shape=shapes[0],
            shapes=shapes if len(shapes) > 1 else [],
            dtype=dtype,
            low=self.get(spec, "low", where, float, 0.0),
            high=self.get(spec, "high", where, float, 1.0),
            batch_axis=axis,
            value=value,
            state_from=state_from,
            initial=initial,
        )

    def steps(self, table: dict[str, Any], tensors: list[TensorInput]) -> int:
        """``steps``: a sequence's length (state inputs need one: default 8; 1 is a single call)."""
        stateful = [t.name for t in tensors if t.state_from]
        steps = self.get(table, "steps", "inputs", int, MIN_STEPS if stateful else 1)
        if (steps != 1 and steps < MIN_STEPS) or steps > 10_000 or (stateful and steps == 1):
            why = f"state inputs {stateful} need a sequence" if stateful and steps == 1 else f"{steps} steps"
            raise self.fail("inputs.steps", why, f"1 (one call) or {MIN_STEPS}..10000 calls in a sequence")
        return steps

    def shapes(self, spec: dict[str, Any], where: str) -> list[list[int]]:
        """``shape = [...]`` (``[]``: a 0-d input) or a shape set ``shapes = [[...], [...]]`` (same rank)."""
        if ("shape" in spec) == ("shapes" in spec):
            raise self.fail(where, "needs exactly one of shape or shapes", "shape = [1, 3, 48, 48]")
        key = "shape" if "shape" in spec else "shapes"
        value = self.get(spec, key, where, list)
        shapes = [value] if key == "shape" else value
        for shape in shapes or [None]:
            if (
                not isinstance(shape, list)
                or (not shape and key == "shapes")
                or not all(isinstance(d, int) and not isinstance(d, bool) and 0 < d <= 2**31 for d in shape)
            ):
                raise self.fail(
                    f"{where}.{key}", f"{value} is not a {key}", "positive integers ([] for a 0-d input)"
                )
        if len({len(s) for s in shapes}) > 1:
            raise self.fail(f"{where}.shapes", f"{value} mixes ranks", "shapes of one rank")
        return shapes
