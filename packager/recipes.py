"""Recipes: one TOML file per model family, validated into typed objects.

Every error names the file, the field (dotted path) and what would be accepted, so a user can fix the
recipe without reading this code. The format is documented in the README ("Recipe format").
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from backends.options import BackendOptions
from bench.tasks import TaskCheckSpec
from packager.errors import RecipeError
from packager.recipe_consumer import ConsumerRecipe

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
)
INPUT_KINDS = ("text", "tensor", "text-image")
DTYPES = ("float32", "float16", "float64", "int64", "int32", "uint8", "bool")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
MODEL_CLASS_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
DEFAULT_ZIP_NAME = "{architecture}-{variant}-{backend}.zip"
ZIP_NAME_FIELDS = ("architecture", "family", "variant", "backend")
ZIP_FILE_RE = re.compile(r"[A-Za-z0-9._-]+\.zip")


@dataclass(frozen=True)
class Variant:
    name: str
    source: str
    allow_patterns: list[str] | None = None
    inputs: InputsRecipe | None = None
    """``[variants.NAME.inputs]``: this variant's own sample inputs (nets of one family differ in shape)."""


@dataclass(frozen=True)
class BackendRecipe:
    name: str
    options: BackendOptions
    """The ``[backends.NAME]`` table, typed by the backend's own options class (its spec declares it)."""

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
class TensorInput:
    name: str
    shape: list[int]
    dtype: str
    low: float
    high: float
    shapes: list[list[int]] = field(default_factory=list)
    """A shape set: every shape the package is verified and timed at (``shape`` is the first, the one
    exports trace with); empty when the recipe gives a single ``shape``."""


@dataclass(frozen=True)
class InputsRecipe:
    kind: str
    texts: list[str] = field(default_factory=list)
    max_length: int = 128
    tensors: list[TensorInput] = field(default_factory=list)
    seed: int = 0
    sets: int = 4

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


@dataclass(frozen=True)
class ModelRecipe:
    """``[model]``: the user's own ``nn.Module`` that a state-dict source (``.pt``/``.pth``/``.safetensors``)
    loads into; it is then the upstream reference (fp32, CPU) and the torch backend's factory."""

    factory: str | None = None
    """``module:Class`` or ``module:function`` returning the module (string kwargs may use ``{variant}``)."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    input_names: list[str] | None = None
    """``forward``'s positional inputs in order; default: the ``[inputs]`` tensor names in order."""
    output_names: list[str] | None = None
    """Names of ``forward``'s outputs in order; default: ``output_0``, ``output_1``, ..."""
    weights: str | None = None
    """Which file of the source holds the state dict; default: the only ``.pt``/``.pth``/``.safetensors``."""
    state_dict_key: str | None = None
    """A checkpoint that nests the state dict under a key (``state_dict``, ``model``)."""


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float


@dataclass(frozen=True)
class ParityRecipe:
    reference_class: str | None
    tolerances: dict[str, Tolerance]
    """Overrides keyed by output name; ``*`` applies to every output."""
    backend_tolerances: dict[str, Tolerance]
    min_cosine: float | None
    noise_floor: bool
    task_check: TaskCheckSpec | None = None
    """``[parity.task]``: the one check by task that judges the outputs it covers (``result.*``)."""


@dataclass(frozen=True)
class BenchRecipe:
    batch_sizes: list[int] = field(default_factory=lambda: [1])
    warmup_iters: int = 10
    warmup_s: float = 0.2
    min_iters: int = 30
    min_time_s: float = 0.5
    max_time_s: float = 10.0
    threads: int | None = None
    """torch intra-op and onnxruntime intra-op threads while measuring; ``None``: the pinned default
    (:func:`bench.threads.default_threads`) unless ``--threads`` says otherwise."""
    target_ci: float | None = 0.01
    """Stop once the median's 95 % CI half-width is within this fraction of it (or at ``max_time_s``);
    ``0`` turns adaptive stopping off (then ``min_iters``/``min_time_s`` decide)."""
    runs: int = 3
    """Independent runs (fresh processes) per package for ``pack runs``, ``pack ab`` and the nightly."""


@dataclass(frozen=True)
class Recipe:
    path: Path
    family: str
    architecture: str
    task: str
    default_variant: str
    description: str
    variants: dict[str, Variant]
    backends: dict[str, BackendRecipe]
    inputs: InputsRecipe | None
    """The family's ``[inputs]``; ``None`` when every variant has its own."""
    parity: ParityRecipe
    bench: BenchRecipe
    model: ModelRecipe = field(default_factory=ModelRecipe)
    consumer: ConsumerRecipe = field(default_factory=ConsumerRecipe)
    """``[consumer]``: whether inference-models loads this family's packages (declared, with why not)."""

    def inputs_for(self, variant: str) -> InputsRecipe:
        """The variant's own ``[variants.NAME.inputs]`` when it has them, else the family's ``[inputs]``."""
        spec = self.variants[variant].inputs if variant in self.variants else None
        spec = spec or self.inputs
        if spec is None:  # the parser guarantees one or the other
            raise KeyError(f"variant '{variant}' has no inputs")
        return spec

    def zip_name(self, variant: str, backend: str) -> str:
        return self.backends[backend].zip_name.format(
            architecture=self.architecture, family=self.family, variant=variant, backend=backend
        )


def load_recipe(path: Path) -> Recipe:
    """Parse and validate one recipe file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecipeError(path, "<file>", "does not exist") from None
    except UnicodeDecodeError as exc:
        raise RecipeError(
            path,
            "<file>",
            f"is not UTF-8 text (byte {exc.start}: {exc.object[exc.start : exc.start + 1]!r})",
            "a UTF-8 encoded TOML file",
        ) from None
    except OSError as exc:
        raise RecipeError(path, "<file>", f"cannot be read ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(path, "<file>", f"is not valid TOML: {exc}") from None
    from packager.recipe_parser import RecipeParser  # the parser builds these types: imported late

    recipe = RecipeParser(path).recipe(data)
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
    """Find and load ``family``'s recipe in the first directory that has it."""
    for directory in recipe_dirs:
        candidate = Path(directory) / f"{family}.toml"
        if candidate.is_file():
            return load_recipe(candidate)
    known = sorted({name for d in recipe_dirs for name in find_recipes(d)})
    raise RecipeError(
        f"{family}.toml",
        "family",
        f"no recipe for '{family}' in {', '.join(str(d) for d in recipe_dirs)}",
        ", ".join(known) or "none found; pass --recipes DIR",
    )
