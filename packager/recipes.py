"""Recipes: one TOML file per model family, declared once as typed tables and validated from that declaration.

Each class below is the schema of one table (:mod:`backends.schema`): a field is a key, its annotation the
type, its default the default, ``key(...)`` its constraints and the docstring under it its documentation
(docs/recipe.md is rendered from here: ``python -m packager.recipe_doc``). Adding a key is one line plus its
docstring. Checks across keys live in each table's ``validate``. Every error names the file, the dotted
field and what would be accepted (exit 2).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from backends.errors import FieldError
from backends.options import BackendOptions
from backends.schema import Rule, Table, key
from packager import recipe_checks
from packager.errors import RecipeError
from packager.recipe_checks import IMPORT_REF, backend_names
from packager.recipe_inputs import InputsRecipe as InputsRecipe  # the [inputs] table lives there
from packager.recipe_inputs import TensorInput as TensorInput
from packager.recipe_parity import ParityRecipe as ParityRecipe  # [parity] and its task check
from packager.recipe_parity import TaskCheckRecipe as TaskCheckRecipe
from packager.recipe_parity import Tolerance as Tolerance

TASKS = (
    "object-detection",
    "instance-segmentation",
    "semantic-segmentation",
    "keypoint-detection",
    "classification",
    "multi-label-classification",
    "embedding",
    "depth-estimation",
    "vlm",
    "structured-ocr",
    "text-only-ocr",
    "gaze-detection",
    "open-vocabulary-object-detection",
    "interactive-instance-segmentation",
    "world-model",
    "voice-activity-detection",
)
NAME_PATTERN = r"[a-z0-9][a-z0-9_-]*"
NAME = {
    "pattern": NAME_PATTERN,
    "what": "a lower-case name",
    "accepted": "lower-case letters, digits, '-', '_'",
}
MAX_BATCH = 65536
SECONDS = {"ge": 0.0, "le": 86400.0}


@dataclass(frozen=True, kw_only=True)
class FamilyRecipe(Table):
    """``[family]``: what the family is called and what it is."""

    name: str | None = key(None, **NAME)
    """The CLI name (default: the file name)."""
    architecture: str = key(
        pattern=NAME_PATTERN,
        what="a registry architecture key",
        accepted="lower-case letters, digits, '-' and '_', no slashes",
    )
    """The registry architecture key."""
    task: str = key(choices=TASKS)
    """The registry task; decides the default model classes and the task check."""
    default_variant: str | None = None
    """The variant packed without ``--variants`` (default: the first)."""
    description: str = ""
    """A line for people."""


@dataclass(frozen=True)
class Variant(Table):
    """``[variants.NAME]``: one size of the family and where its weights come from."""

    name: str = key(given=True)
    source: str = key()
    """Where the weights come from: hf://, pkg://, a path, https://, gs:// (docs/recipes.md, "Sources")."""
    allow_patterns: list[str] | None = None
    """hf:// only: the snapshot's files to fetch."""
    inputs: InputsRecipe | None = None
    """``[variants.NAME.inputs]``: this variant's own sample inputs (nets of one family differ in shape)."""
    backends: list[str] | None = key(None, min_items=1, choices=backend_names)
    """Which of the recipe's backends this variant builds (default: all): a model shipped as a TorchScript
    file and as an ONNX file is one variant per file, each packaged in its own format."""

    def validate(self, where: str = "") -> None:
        recipe_checks.check_source(self.source, f"{where}.source")


@dataclass(frozen=True)
class BackendRecipe(Table):
    """``[backends.NAME]``: one backend to build, typed by the backend's own options class (its spec)."""

    name: str = key(given=True)
    options: BackendOptions = key(given=True)

    @classmethod
    def parse(cls, table: Any, where: str = "", given: Any = None) -> BackendRecipe:
        from backends.registry import BACKENDS  # see backend_names

        name = (given or {})["name"]
        return cls(name, BACKENDS[name].options.parse(table, where))

    @property
    def model_class(self) -> str | None:
        return self.options.model_class

    @property
    def zip_name(self) -> str:
        return self.options.zip_name

    @property
    def quantization(self) -> str:
        return self.options.quantization


@dataclass(frozen=True)
class ModelRecipe(Table):
    """``[model]``: the user's own ``nn.Module`` that a state-dict source (``.pt``/``.pth``/``.safetensors``)
    loads into; it is then the upstream reference (fp32, CPU) and the torch backend's factory."""

    factory: str | None = key(None, **IMPORT_REF, accepted="'module:Class' or 'module:function'")
    """``module:Class`` or ``module:function`` returning the module (string kwargs may use ``{variant}``)."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the factory."""
    input_names: list[str] | None = key(
        None, min_items=1, pattern=r".+", what="a name", accepted='["image", ...]'
    )
    """``forward``'s positional inputs in order; default: the ``[inputs]`` tensor names in order."""
    output_names: list[str] | None = key(
        None, min_items=1, pattern=r".+", what="a name", accepted='["out", ...]'
    )
    """Names of ``forward``'s outputs in order; default: ``output_0``, ``output_1``, ..."""
    weights: str | None = None
    """Which file of the source holds the state dict; default: the only ``.pt``/``.pth``/``.safetensors``."""
    state_dict_key: str | None = None
    """A checkpoint that nests the state dict under a key (``state_dict``, ``model``)."""


@dataclass(frozen=True)
class ConsumerRecipe(Table):
    """``[consumer]``: whether inference-models can load the family's packages. A recipe whose packages no
    consumer class loads says so, with why; every output of ``pack`` and ``pack verify-remote`` then says
    "inference-models cannot load this package" instead of PASSED."""

    loads: bool | None = None
    """``true``: a consumer class loads these packages; ``false``: none does (give the ``reason``)."""
    reason: str = ""
    """Why inference-models cannot load them (required with ``loads = false``)."""

    def validate(self, where: str = "") -> None:
        if self.loads is False and not self.reason.strip():
            raise FieldError(
                f"{where}.reason", "is required with loads = false", "why inference-models cannot load it"
            )

    @property
    def refused(self) -> bool:
        """The recipe declares that inference-models cannot load its packages."""
        return self.loads is False

    def note(self) -> str:
        """``inference-models cannot load this package: <reason>`` (empty unless declared refused)."""
        from bench.report import CANNOT_LOAD

        return f"{CANNOT_LOAD}: {self.reason}" if self.refused else ""


@dataclass(frozen=True)
class BenchRecipe(Table):
    """``[bench]``: how latency is measured."""

    batch_sizes: list[int] = key(
        factory=lambda: [1], ge=1, le=MAX_BATCH, min_items=1, accepted="positive integers"
    )
    """Batch sizes timed (and each one the engines must take)."""
    warmup_iters: int = key(10, ge=0, le=10**6)
    """Warm-up runs: until both the count and ``warmup_s`` are reached."""
    warmup_s: float = key(0.2, **SECONDS)
    """Warm-up seconds."""
    min_iters: int = key(30, ge=1, le=10**7)
    """Steady state runs until both ``min_iters`` and ``min_time_s`` are met."""
    min_time_s: float = key(0.5, **SECONDS)
    """Steady-state seconds (at least)."""
    max_time_s: float = key(10.0, **SECONDS)
    """Steady-state seconds (at most; >= ``min_time_s``)."""
    threads: int | None = key(None, ge=1, le=4096, accepted="a positive integer (thread count), at most 4096")
    """torch intra-op and onnxruntime intra-op threads while measuring; default: the pinned default
    (``bench.threads.default_threads``) unless ``--threads`` says otherwise."""
    target_ci: float | None = key(
        0.01, ge=0.0, lt=1.0, accepted="0 (off) or a fraction below 1, e.g. 0.01 for 1 %"
    )
    """Stop once the median's 95 % CI half-width is within this fraction of it (or at ``max_time_s``);
    ``0`` turns adaptive stopping off (then ``min_iters``/``min_time_s`` decide)."""
    runs: int = key(3, ge=1, le=1000, accepted="an integer >= 1, at most 1000")
    """Independent runs (fresh processes) per package for ``pack runs``, ``pack ab`` and the nightly."""

    def validate(self, where: str = "") -> None:
        if self.max_time_s < self.min_time_s:
            raise FieldError(
                f"{where}.max_time_s", f"{self.max_time_s} is below min_time_s {self.min_time_s}",
                f"a number of seconds >= min_time_s ({self.min_time_s})",
            )  # fmt: skip

    def normalized(self) -> BenchRecipe:
        return replace(self, target_ci=None) if self.target_ci == 0 else self


@dataclass(frozen=True, kw_only=True)
class Recipe(Table):
    """A recipe file: one model family, its variants, backends, inputs and checks."""

    path: Path = key(given=True)
    family_table: FamilyRecipe = key(toml="family")
    """``[family]``."""
    variants: dict[str, Variant] = key(min_items=1, accepted="[variants.NAME] tables", keys=Rule(**NAME))
    """``[variants.NAME]``: at least one."""
    backends: dict[str, BackendRecipe] = key(min_items=1, keys=Rule(choices=backend_names))
    """``[backends.NAME]``: at least one; the keys are the backend's options (docs/recipe.md, Backends)."""
    inputs: InputsRecipe | None = None
    """The family's ``[inputs]``; ``None`` when every variant has its own."""
    parity: ParityRecipe = field(default_factory=ParityRecipe)
    """``[parity]``."""
    bench: BenchRecipe = field(default_factory=BenchRecipe)
    """``[bench]``."""
    model: ModelRecipe = field(default_factory=ModelRecipe)
    """``[model]``."""
    consumer: ConsumerRecipe = field(default_factory=ConsumerRecipe)
    """``[consumer]``: whether inference-models loads this family's packages (declared, with why not)."""

    @property
    def family(self) -> str:
        return self.family_table.name or self.path.stem

    @property
    def architecture(self) -> str:
        return self.family_table.architecture

    @property
    def task(self) -> str:
        return self.family_table.task

    @property
    def default_variant(self) -> str:
        return self.family_table.default_variant or next(iter(self.variants))

    @property
    def description(self) -> str:
        return self.family_table.description

    def validate(self, where: str = "") -> None:
        if self.default_variant not in self.variants:
            raise FieldError(
                "family.default_variant",
                f"'{self.default_variant}' is not accepted",
                ", ".join(self.variants),
            )
        without = [name for name, v in self.variants.items() if v.inputs is None]
        if self.inputs is None and without:
            raise FieldError(
                "inputs",
                f"is required (variants without their own: {', '.join(without)})",
                "an [inputs] table, or [variants.NAME.inputs] for each variant",
            )
        recipe_checks.check_backends(self.path, self.backends, self.variants, self.zip_name)
        for vname, variant in self.variants.items():
            for bname in variant.backends or []:
                if bname not in self.backends:
                    raise FieldError(
                        f"variants.{vname}.backends", f"{bname!r} is not enabled", ", ".join(self.backends)
                    )

    def inputs_for(self, variant: str) -> InputsRecipe:
        """The variant's own ``[variants.NAME.inputs]`` when it has them, else the family's ``[inputs]``."""
        spec = self.variants[variant].inputs if variant in self.variants else None
        spec = spec or self.inputs
        if spec is None:  # validate guarantees one or the other
            raise KeyError(f"variant '{variant}' has no inputs")
        return spec

    def zip_name(self, variant: str, backend: str) -> str:
        return self.backends[backend].zip_name.format(
            architecture=self.architecture, family=self.family, variant=variant, backend=backend
        )


def load_recipe(path: Path) -> Recipe:
    """Parse and validate one recipe file."""
    path = Path(path)
    data = recipe_checks.read_toml(path)
    try:
        recipe = Recipe.parse(data, given={"path": path})
    except RecipeError:
        raise
    except FieldError as exc:
        raise RecipeError(path, exc.field, exc.problem, exc.accepted) from None
    make_importable(path)
    return recipe


def make_importable(recipe_path: Path) -> None:
    """Put the recipe's folder and the working directory on the import path (after everything else, so
    a user's ``json.py`` cannot shadow a library), as docs/your-own-model.md promises: a recipe names its
    own modules (``my_net:build``) without PYTHONPATH. Every entry that loads a recipe (``pack``, the nightly
    plugin, ``verify-remote``, ``compare``) goes through here, and ``pack --jobs``' spawned workers inherit
    the path."""
    for folder in (Path(recipe_path).resolve().parent, Path.cwd().resolve()):
        if str(folder) not in sys.path:
            sys.path.append(str(folder))


def find_recipes(directory: Path) -> dict[str, Path]:
    """Map family name (the file stem) to recipe path for every ``*.toml`` in ``directory``."""
    directory = Path(directory)
    if not directory.is_dir():
        return {}
    return {p.stem: p for p in sorted(directory.glob("*.toml"))}


def default_recipe_dirs() -> list[Path]:
    """``./recipes`` first, then the recipes shipped beside this package (the built-in families)."""
    builtin = Path(__file__).resolve().parent.parent / "recipes"
    dirs = [Path.cwd() / "recipes", builtin]
    return list(dict.fromkeys(d.resolve() for d in dirs))


def resolve_family(family: str, recipe_dirs: list[Path]) -> Recipe:
    """Find and load ``family``'s recipe in the first directory that has it. A ``FAMILY.toml`` that is there
    but no regular file (a FIFO, a folder, a dangling link) is that file's error, never passed over for a
    later folder's recipe of the same name."""
    for directory in recipe_dirs:
        candidate = Path(directory) / f"{family}.toml"
        if os.path.lexists(candidate):
            return load_recipe(candidate)
    known = sorted({name for d in recipe_dirs for name in find_recipes(d)})
    raise RecipeError(
        f"{family}.toml",
        "family",
        f"no recipe for '{family}' in {', '.join(str(d) for d in recipe_dirs)}",
        ", ".join(known) or "none found; pass --recipes DIR",
    )


def recipe_of_report(report: dict, extra_dirs: Sequence[Path] = ()) -> Recipe:
    """The recipe a ``report.json`` was packed with (its recorded path), else its family's in
    ``extra_dirs`` and the default folders: how the nightly and compare's measure step find it."""
    path = Path(report.get("recipe") or "")
    if path.is_file():
        return load_recipe(path)
    return resolve_family(report["family"], [*extra_dirs, *default_recipe_dirs()])


def recipe_of_architecture(
    architecture: str, recipe_dirs: list[Path], variant: str | None = None
) -> Recipe | None:
    """The first recipe (folder order, then file name) whose ``[family] architecture`` is
    ``architecture`` and that has ``variant`` (two families may share an architecture, each with its own
    variants); ``None`` when none is. A file that is no TOML is a RecipeError naming it, never passed over
    (it may be the one asked for), and one that matches is loaded in full, errors included."""
    for directory in recipe_dirs:
        for path in find_recipes(directory).values():
            data = recipe_checks.read_toml(path)
            family, variants = data.get("family"), data.get("variants")
            if not isinstance(family, dict) or family.get("architecture") != architecture:
                continue
            if variant is None or (isinstance(variants, dict) and variant in variants):
                return load_recipe(path)
    return None
