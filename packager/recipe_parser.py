"""The recipe parser: walks a recipe's TOML tree into the typed objects of :mod:`packager.recipes`,
checking types and values as it goes, so every error names the file, the dotted field and what would be
accepted. Backend tables are parsed by each backend's own options class (its ``BackendSpec``).
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

from backends.errors import OptionError
from backends.registry import BACKENDS
from packager import recipe_consumer
from packager.consumer.layout import check_layout
from packager.errors import RecipeError
from packager.recipes import (
    DTYPES,
    INPUT_KINDS,
    MODEL_CLASS_RE,
    NAME_RE,
    TASKS,
    ZIP_FILE_RE,
    ZIP_NAME_FIELDS,
    BackendRecipe,
    BenchRecipe,
    InputsRecipe,
    ModelRecipe,
    ParityRecipe,
    Recipe,
    TensorInput,
    Tolerance,
    Variant,
)


class RecipeParser:
    """Walks the TOML tree, checking types as it goes; ``where`` is the dotted field path."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, problem: str, accepted: str | None = None) -> RecipeError:
        return RecipeError(self.path, where, problem, accepted)

    def get(
        self, table: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...], default: Any = ...
    ) -> Any:
        if key not in table:
            if default is ...:
                raise self.fail(f"{where}.{key}".lstrip("."), "is required")
            return default
        value = table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise self.fail(f"{where}.{key}".lstrip("."), f"has type {type(value).__name__}", names)
        return value

    def choice(self, value: str, where: str, accepted: tuple[str, ...] | list[str]) -> str:
        if value not in accepted:
            raise self.fail(where, f"'{value}' is not accepted", ", ".join(accepted))
        return value

    def unknown_keys(self, table: dict[str, Any], where: str, known: set[str]) -> None:
        extra = sorted(set(table) - known)
        if extra:
            raise self.fail(
                f"{where}.{extra[0]}".lstrip("."), "is not a known field", ", ".join(sorted(known))
            )

    def recipe(self, data: dict[str, Any]) -> Recipe:
        self.unknown_keys(
            data, "", {"family", "variants", "backends", "inputs", "parity", "bench", "model", "consumer"}
        )
        fam = self.get(data, "family", "", dict)
        self.unknown_keys(fam, "family", {"name", "architecture", "task", "default_variant", "description"})
        name = self.get(fam, "name", "family", str, self.path.stem)
        architecture = self.get(fam, "architecture", "family", str)
        if not NAME_RE.match(architecture):
            raise self.fail(
                "family.architecture",
                f"'{architecture}' is not a registry architecture key",
                "lower-case letters, digits, '-' and '_', no slashes",
            )
        task = self.choice(self.get(fam, "task", "family", str), "family.task", TASKS)
        variants = self.variants(self.get(data, "variants", "", dict))
        default_variant = self.get(fam, "default_variant", "family", str, next(iter(variants)))
        self.choice(default_variant, "family.default_variant", list(variants))
        recipe = Recipe(
            path=self.path,
            family=name,
            architecture=architecture,
            task=task,
            default_variant=default_variant,
            description=self.get(fam, "description", "family", str, ""),
            variants=variants,
            backends=self.backends(self.get(data, "backends", "", dict)),
            inputs=self.family_inputs(data, variants),
            parity=self.parity(self.get(data, "parity", "", dict, {})),
            bench=self.bench(self.get(data, "bench", "", dict, {})),
            model=self.model(self.get(data, "model", "", dict, {})),
            consumer=recipe_consumer.consumer(self, self.get(data, "consumer", "", dict, {})),
        )
        self.check_zip_names(recipe)
        return recipe

    def family_inputs(self, data: dict[str, Any], variants: dict[str, Variant]) -> InputsRecipe | None:
        """``[inputs]``, required only when some variant has no ``[variants.NAME.inputs]`` of its own."""
        if "inputs" in data:
            return self.inputs(self.get(data, "inputs", "", dict))
        without = [name for name, v in variants.items() if v.inputs is None]
        if without:
            raise self.fail(
                "inputs",
                f"is required (variants without their own: {', '.join(without)})",
                "an [inputs] table, or [variants.NAME.inputs] for each variant",
            )
        return None

    def model(self, table: dict[str, Any]) -> ModelRecipe:
        known = {"factory", "kwargs", "input_names", "output_names", "weights", "state_dict_key"}
        self.unknown_keys(table, "model", known)
        factory = self.get(table, "factory", "model", str, None)
        if factory and not MODEL_CLASS_RE.match(factory):
            raise self.fail(
                "model.factory",
                f"'{factory}' is not an import reference",
                "'module:Class' or 'module:function'",
            )
        names = {}
        for key in ("input_names", "output_names"):
            value = self.get(table, key, "model", list, None)
            if value is not None and (not value or not all(isinstance(v, str) and v for v in value)):
                raise self.fail(f"model.{key}", f"{value} is not a list of names", '["image", ...]')
            names[key] = value
        return ModelRecipe(
            factory=factory,
            kwargs=dict(self.get(table, "kwargs", "model", dict, {})),
            weights=self.get(table, "weights", "model", str, None),
            state_dict_key=self.get(table, "state_dict_key", "model", str, None),
            **names,
        )

    def check_zip_names(self, recipe: Recipe) -> None:
        """Every (variant, backend) gets its own valid zip name: placeholders known, no collisions (a second
        package would silently overwrite the first)."""
        for bname, backend in recipe.backends.items():
            try:
                fields = list(string.Formatter().parse(backend.zip_name))
            except ValueError as exc:
                raise self.fail(
                    f"backends.{bname}.zip_name", f"'{backend.zip_name}' is not a name template ({exc})"
                ) from None
            for _, field_name, spec, conversion in fields:
                if field_name is not None and (field_name not in ZIP_NAME_FIELDS or spec or conversion):
                    raise self.fail(
                        f"backends.{bname}.zip_name",
                        f"'{backend.zip_name}' has the placeholder {{{field_name}}}",
                        ", ".join(f"{{{f}}}" for f in ZIP_NAME_FIELDS) + ", without format specs",
                    )
        owners: dict[str, tuple[str, str]] = {}
        for variant in recipe.variants:
            for bname in recipe.backends:
                name = recipe.zip_name(variant, bname)
                if not ZIP_FILE_RE.fullmatch(name):
                    raise self.fail(
                        f"backends.{bname}.zip_name",
                        f"gives {name!r} for variant {variant!r}",
                        "a file name of [A-Za-z0-9._-] ending in .zip",
                    )
                if name in owners:
                    other = owners[name]
                    raise self.fail(
                        f"backends.{bname}.zip_name",
                        f"gives {name!r} for {variant}/{bname}, the same as for {other[0]}/{other[1]}: "
                        "one package would overwrite the other",
                        "names that differ per variant and backend, e.g. include {variant} and {backend}",
                    )
                owners[name] = (variant, bname)

    def variants(self, table: dict[str, Any]) -> dict[str, Variant]:
        if not table:
            raise self.fail("variants", "must define at least one variant", "[variants.NAME] tables")
        out = {}
        for vname, body in table.items():
            where = f"variants.{vname}"
            if not NAME_RE.match(vname):
                raise self.fail(where, "variant names must be lower-case", "letters, digits, '-' and '_'")
            if not isinstance(body, dict):
                raise self.fail(where, "must be a table", "[variants.NAME] with source = ...")
            self.unknown_keys(body, where, {"source", "allow_patterns", "inputs"})
            source = self.get(body, "source", where, str)
            self.check_source(source, f"{where}.source")
            patterns = self.get(body, "allow_patterns", where, list, None)
            inputs = self.get(body, "inputs", where, dict, None)
            out[vname] = Variant(
                name=vname,
                source=source,
                allow_patterns=patterns,
                inputs=self.inputs(inputs) if inputs is not None else None,
            )
        return out

    def check_source(self, source: str, where: str) -> None:
        try:
            from packager.sources import parse_uri
        except ImportError:  # pragma: no cover - sources always ship with packager
            return
        try:
            parse_uri(source)
        except Exception as exc:  # SourceError: re-raise as a recipe error that names the field
            raise self.fail(where, str(exc)) from None

    def backends(self, table: dict[str, Any]) -> dict[str, BackendRecipe]:
        if not table:
            raise self.fail("backends", "must enable at least one backend", ", ".join(sorted(BACKENDS)))
        out = {}
        for bname, body in table.items():
            where = f"backends.{bname}"
            self.choice(bname, where, sorted(BACKENDS))
            if not isinstance(body, dict):
                raise self.fail(where, "must be a table of export options")
            try:
                options = BACKENDS[bname].options.parse(body)
            except OptionError as exc:
                raise self.fail(f"{where}.{exc.field}", exc.problem, exc.accepted) from None
            model_class = options.model_class
            if model_class and not MODEL_CLASS_RE.match(model_class):
                raise self.fail(
                    f"{where}.model_class",
                    f"'{model_class}' is not an import reference",
                    "'package.module:ClassName'",
                )
            zip_name = options.zip_name
            if not zip_name.endswith(".zip") or "/" in zip_name:
                raise self.fail(
                    f"{where}.zip_name",
                    f"'{zip_name}' must be a file name ending in .zip",
                    "for example '{architecture}-{variant}-{backend}.zip'",
                )
            check_layout(self.path, where, options.rename, options.files)
            out[bname] = BackendRecipe(bname, options)
        return out

    def inputs(self, table: dict[str, Any]) -> InputsRecipe:
        self.unknown_keys(table, "inputs", {"kind", "texts", "max_length", "tensors", "seed", "sets"})
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
            self.unknown_keys(spec, where, {"name", "shape", "shapes", "dtype", "low", "high"})
            shapes = self.shapes(spec, where)
            tensors.append(
                TensorInput(
                    name=self.get(spec, "name", where, str),
                    shape=shapes[0],
                    shapes=shapes if len(shapes) > 1 else [],
                    dtype=self.choice(
                        self.get(spec, "dtype", where, str, "float32"), f"{where}.dtype", DTYPES
                    ),
                    low=self.get(spec, "low", where, float, 0.0),
                    high=self.get(spec, "high", where, float, 1.0),
                )
            )
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
        )

    def shapes(self, spec: dict[str, Any], where: str) -> list[list[int]]:
        """``shape = [...]`` or a shape set ``shapes = [[...], [...]]`` (same rank, batch first)."""
        if ("shape" in spec) == ("shapes" in spec):
            raise self.fail(where, "needs exactly one of shape or shapes", "shape = [1, 3, 48, 48]")
        key = "shape" if "shape" in spec else "shapes"
        value = self.get(spec, key, where, list)
        shapes = [value] if key == "shape" else value
        for shape in shapes or [None]:
            if (
                not isinstance(shape, list)
                or not shape
                or not all(isinstance(d, int) and d > 0 for d in shape)
            ):
                raise self.fail(f"{where}.{key}", f"{value} is not a {key}", "positive integers, batch first")
        if len({len(s) for s in shapes}) > 1:
            raise self.fail(f"{where}.shapes", f"{value} mixes ranks", "shapes of one rank")
        return shapes

    def tolerance(self, body: Any, where: str) -> Tolerance:
        if not isinstance(body, dict):
            raise self.fail(where, "must be a table", "{ atol = 1e-5, rtol = 1e-4 }")
        self.unknown_keys(body, where, {"atol", "rtol"})
        atol = self.get(body, "atol", where, float)
        rtol = self.get(body, "rtol", where, float, 0.0)
        if atol < 0 or rtol < 0:
            raise self.fail(where, "tolerances must be >= 0")
        return Tolerance(atol, rtol)

    def parity(self, table: dict[str, Any]) -> ParityRecipe:
        self.unknown_keys(
            table, "parity", {"reference_class", "outputs", "backends", "min_cosine", "noise_floor", "task"}
        )
        ref = self.get(table, "reference_class", "parity", str, None)
        if ref and not MODEL_CLASS_RE.match(ref):
            raise self.fail("parity.reference_class", f"'{ref}' is not an import reference", "'module:Class'")
        outputs = self.get(table, "outputs", "parity", dict, {})
        backends = self.get(table, "backends", "parity", dict, {})
        for bname in backends:
            self.choice(bname, f"parity.backends.{bname}", sorted(BACKENDS))
        return ParityRecipe(
            reference_class=ref,
            tolerances={k: self.tolerance(v, f"parity.outputs.{k}") for k, v in outputs.items()},
            backend_tolerances={k: self.tolerance(v, f"parity.backends.{k}") for k, v in backends.items()},
            min_cosine=self.get(table, "min_cosine", "parity", float, None),
            noise_floor=self.get(table, "noise_floor", "parity", bool, False),
            task_check=recipe_consumer.task_check(self, table["task"]) if "task" in table else None,
        )

    def bench(self, table: dict[str, Any]) -> BenchRecipe:
        known = {
            "batch_sizes",
            "warmup_iters",
            "warmup_s",
            "min_iters",
            "min_time_s",
            "max_time_s",
            "threads",
            "target_ci",
            "runs",
        }
        self.unknown_keys(table, "bench", known)
        sizes = self.get(table, "batch_sizes", "bench", list, [1])
        if not sizes or not all(isinstance(b, int) and b > 0 for b in sizes):
            raise self.fail("bench.batch_sizes", f"{sizes} is not a list of batch sizes", "positive integers")
        defaults = BenchRecipe()
        threads = self.get(table, "threads", "bench", int, None)
        if threads is not None and threads < 1:
            raise self.fail("bench.threads", f"{threads} is not a thread count", "a positive integer")
        target = self.get(table, "target_ci", "bench", float, defaults.target_ci)
        if target is not None and not 0 <= target < 1:
            raise self.fail("bench.target_ci", f"{target} is not a fraction", "0 (off) or e.g. 0.01 for 1 %")
        runs = self.get(table, "runs", "bench", int, defaults.runs)
        if runs < 1:
            raise self.fail("bench.runs", f"{runs} runs per package", "an integer >= 1")
        return BenchRecipe(
            threads=threads,
            target_ci=target or None,
            batch_sizes=sizes,
            warmup_iters=self.get(table, "warmup_iters", "bench", int, defaults.warmup_iters),
            warmup_s=self.get(table, "warmup_s", "bench", float, defaults.warmup_s),
            min_iters=self.get(table, "min_iters", "bench", int, defaults.min_iters),
            min_time_s=self.get(table, "min_time_s", "bench", float, defaults.min_time_s),
            max_time_s=self.get(table, "max_time_s", "bench", float, defaults.max_time_s),
            runs=runs,
        )
