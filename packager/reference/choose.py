"""Which upstream reference a variant is checked against, decided from its source's files; the up-front
checks of every ``module:Name`` a recipe names; and running the reference (at each shape of a shape set).

The decision (:func:`choose_reference`) is a pure function of what the files are (their kinds, read from
their bytes by :mod:`packager.reference.content`, whatever their names) and the recipe:

1. ``[parity] reference_class``: that class (for special cases; its contract is in ``packager.reference``);
2. an ONNX graph at the source's top level: that file in onnxruntime, graph optimisations off;
3. a TorchScript archive (``.pt``, ``.jit``, any name): that program via ``torch.jit.load``;
4. a state dict (safetensors or ``torch.save``) with ``[model] factory``: the user's module, fp32 on the CPU;
5. a transformers snapshot (``config.json``): the HF class for the task;
6. a state dict without ``[model] factory``: bad input, saying what to add;
7. nothing recognised: bad input, listing the files and what was tried.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backends.errors import UserModelError
from backends.factories import ACCEPTED as FACTORY_ACCEPTED
from backends.factories import factory_problem, name_problem
from backends.loaded import reference_model
from backends.outputs import run_model
from backends.registry import get_backend
from backends.registry import reference_class as default_reference
from packager.consumer import is_consumer_class
from packager.errors import RecipeError, WeightpackError
from packager.goldens import ParityCase
from packager.inputs import build_inputs, parity_inputs, sequence_feeds
from packager.recipes import InputsRecipe, ModelRecipe, Recipe, make_importable
from packager.reference import content
from packager.reference.content import is_torchscript
from packager.reference.module import describe
from packager.sequence import CallSequence, reset_state, run_sequence
from packager.ui import UI

__all__ = [
    "ReferenceSpec",
    "check_recipe_imports",
    "check_reference_class",
    "choose_reference",
    "is_torchscript",
    "reference_case",
    "reference_for",
    "run_reference",
    "shape_cases",
]

MODULE_REFERENCE = "packager.reference.module:ModuleReference"
ONNX_REFERENCE = "packager.reference.onnx_file:OnnxFileReference"
TORCHSCRIPT_REFERENCE = "packager.reference.torchscript_file:TorchScriptReference"


@dataclass
class ReferenceSpec:
    """A reference model class and the keyword arguments its ``from_pretrained`` gets."""

    model_class: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    kind: str = "class"
    """``hf``, ``module``, ``onnx-file``, ``torchscript-file`` or ``class`` (a recipe's reference_class)."""
    description: str = ""


def choose_reference(
    files: Collection[str],
    factory: str | None,
    reference_class: str | None,
    *,
    task: str = "",
    kinds: Mapping[str, str | None] | None = None,
    model: ModelRecipe | None = None,
    recipe_path: str | Path = "recipe",
    source_field: str = "source",
) -> ReferenceSpec:
    """The reference for a source holding ``files`` (relative paths); ``kinds``: what each top-level file
    is (:func:`packager.reference.content.classify` reads them; this function reads nothing; a file it
    does not list is judged by its name, :func:`~packager.reference.content.guess`)."""
    model = model or ModelRecipe(factory=factory)
    names = {"input_names": model.input_names, "output_names": model.output_names}
    top = sorted(f for f in files if "/" not in f)
    kind = {f: (kinds[f] if kinds is not None and f in kinds else content.guess(f)) for f in top}
    if reference_class:
        return ReferenceSpec(reference_class, {}, "class", f"your reference class {reference_class}")
    onnx_files = [f for f in top if kind[f] == content.ONNX]
    if onnx_files:
        return ReferenceSpec(
            ONNX_REFERENCE,
            {"onnx_file": onnx_files[0]},
            "onnx-file",
            f"the upstream file {onnx_files[0]} in onnxruntime on the CPU, graph optimisations off",
        )
    scripted = [f for f in top if kind[f] == content.TORCHSCRIPT]
    if scripted:
        return ReferenceSpec(
            TORCHSCRIPT_REFERENCE,
            {"torchscript_file": scripted[0], **names},
            "torchscript-file",
            f"the upstream TorchScript file {scripted[0]}, fp32 on the CPU",
        )
    state_dicts = [f for f in top if kind[f] in content.STATE_DICT_KINDS]
    if factory and (state_dicts or content.HF_CONFIG not in top):
        kwargs = {
            "factory": factory,
            "factory_kwargs": dict(model.kwargs),
            "weights": model.weights or (state_dicts[0] if len(state_dicts) == 1 else None),
            "state_dict_key": model.state_dict_key,
            **names,
        }
        return ReferenceSpec(MODULE_REFERENCE, kwargs, "module", f"your module {factory}, fp32 on the CPU")
    if content.HF_CONFIG in top:
        ref = default_reference(task)
        return ReferenceSpec(ref, {}, "hf", f"{ref} (transformers), fp32 on the CPU")
    if state_dicts:
        raise RecipeError(
            recipe_path,
            "model.factory",
            f"is required: the source ({', '.join(state_dicts)}) is a state dict, which needs your module "
            "to load into",
            "[model] factory = 'your_package.module:YourNet' (a class or a function returning the "
            "nn.Module); or an .onnx / TorchScript file as the source",
        )
    raise RecipeError(
        recipe_path,
        source_field,
        content.unrecognised(kind),
        "an ONNX graph, a TorchScript archive, a state dict with [model] factory, a transformers snapshot, "
        "or [parity] reference_class for anything else",
    )


def reference_for(recipe: Recipe, variant: str, upstream: Path, files: Iterable[str]) -> ReferenceSpec:
    """:func:`choose_reference` for one fetched variant, its files read for what they are; string
    ``[model] kwargs`` get ``{variant}``."""
    files = list(files)
    kinds = {} if recipe.parity.reference_class else content.classify(upstream, files)
    spec = choose_reference(
        files,
        recipe.model.factory,
        recipe.parity.reference_class,
        task=recipe.task,
        kinds=kinds,
        model=recipe.model,
        recipe_path=recipe.path,
        source_field=f"variants.{variant}.source",
    )
    if "factory_kwargs" in spec.kwargs:
        spec.kwargs["factory_kwargs"] = {
            k: v.format(variant=variant) if isinstance(v, str) else v
            for k, v in spec.kwargs["factory_kwargs"].items()
        }
    return spec


def import_reference(ref: str, field_: str, recipe_path: str | Path) -> Any:
    """Import ``module:attr`` or raise RecipeError naming the field and what went wrong (no traceback)."""
    module_name, _, attr = ref.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise RecipeError(
            recipe_path,
            field_,
            f"'{ref}' cannot be imported: {exc}",
            "a module importable from the recipe's folder, the working directory or the environment",
        ) from None
    except Exception as exc:  # the user's module raised while importing
        raise RecipeError(
            recipe_path, field_, f"importing '{module_name}' raised {type(exc).__name__}: {exc}"
        ) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            public = sorted(n for n in dir(obj) if not n.startswith("_"))[:12]
            raise RecipeError(
                recipe_path,
                field_,
                f"'{ref}': {type(obj).__name__} '{getattr(obj, '__name__', module_name)}' has no attribute "
                f"'{part}'",
                ", ".join(public) or "nothing public",
            )
        obj = getattr(obj, part)
    return obj


def check_reference_class(ref: str, recipe_path: str | Path, needs_torch: Collection[str] = ()) -> None:
    """A recipe's ``reference_class`` must import and keep the reference contract (``packager.reference``):
    a class with ``from_pretrained`` and ``infer``, plus ``torch_module`` where ``needs_torch`` exporters
    trace it. A plain ``nn.Module`` or a factory function gets a message pointing at ``[model] factory``."""
    field_ = "parity.reference_class"
    obj = import_reference(ref, field_, recipe_path)
    missing = [m for m in ("from_pretrained", "infer") if not callable(getattr(obj, m, None))]
    if missing or not inspect.isclass(obj):
        what = (
            "a function"
            if inspect.isfunction(obj)
            else ("a plain torch nn.Module" if _is_nn_module(obj) else f"a {type(obj).__name__}")
        )
        raise RecipeError(
            recipe_path,
            field_,
            f"'{ref}' is {what}, not a reference class (missing: {', '.join(missing) or 'a class'}); a "
            "reference class has a classmethod from_pretrained(path, *, device, variant, **kwargs) and "
            "infer(dict of arrays) -> dict of arrays (docs/your-own-model.md)",
            f"for your own module, drop reference_class and set [model] factory = '{ref}'",
        )
    if needs_torch and not callable(getattr(obj, "torch_module", None)):
        raise RecipeError(
            recipe_path,
            field_,
            f"'{ref}' has no torch_module(), which the {', '.join(needs_torch)} exporter(s) need to trace it",
            "a torch_module() returning (nn.Module, input_names, output_names), or fewer backends",
        )


def _is_nn_module(obj: Any) -> bool:
    try:
        from torch import nn
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return inspect.isclass(obj) and issubclass(obj, nn.Module)


def check_recipe_imports(recipe: Recipe, backends: Collection[str]) -> None:
    """Import every ``module:Name`` the recipe names before anything runs, so a misspelling is exit 2 with
    the field named rather than a traceback halfway through. The recipe's folder and the working directory
    are importable (``packager.recipes.make_importable``: a user's ``my_net.py`` beside ``my_net.toml``)."""
    make_importable(recipe.path)
    if recipe.model.factory:
        _check_factory(recipe.model.factory, "model.factory", recipe.path)
    if recipe.parity.reference_class:
        needs = [b for b in backends if _traces_reference(recipe, b)]
        check_reference_class(recipe.parity.reference_class, recipe.path, needs)
    for name in backends:
        options = recipe.backends[name].options
        for key in ("model_class", "factory"):
            value = _option(options, key)
            if isinstance(value, str) and ":" in value and not is_consumer_class(value):
                # a consumer class is checked when loaded: exit 3 and how to install the consumer
                check = _check_factory if key == "factory" else import_reference
                check(value, f"backends.{name}.{key}", recipe.path)


def _check_factory(ref: str, field_: str, recipe_path: str | Path) -> None:
    """A factory runs code: a class or function of a model's module, never a builtin or the standard
    library's (``os:system`` is refused unimported); see ``backends.factories``."""
    problem = name_problem(ref) or factory_problem(ref, import_reference(ref, field_, recipe_path))
    if problem:
        raise RecipeError(recipe_path, field_, problem, FACTORY_ACCEPTED)


def _traces_reference(recipe: Recipe, backend: str) -> bool:
    """Whether ``backend``'s exporter starts from the reference's torch module for this recipe: it does
    unless it adopts every variant's upstream file as it is (the onnx exporter and an ``.onnx`` source)."""
    spec = get_backend(backend)
    adopted = bool(spec.adopts_upstream) and all(
        _adopts(v.source, spec.adopts_upstream) for v in recipe.variants.values()
    )
    return spec.traces_reference and not adopted


def _adopts(source: str, suffixes: tuple[str, ...]) -> bool:
    """A source the exporter adopts as it is: a file of one of ``suffixes``, or a local folder holding one
    at its top (a graph with the files it comes with, such as PaddleOCR's ``.onnx`` and ``inference.yml``),
    adopted like the single file (the folder's other files stay available to the layout's ``files``)."""
    if source.endswith(suffixes):
        return True
    if "://" in source and not source.startswith("file://"):
        return False
    folder = Path(source.removeprefix("file://")).expanduser()
    return folder.is_dir() and any(p.suffix in suffixes for p in folder.iterdir())


def _option(options: Any, key: str) -> Any:
    """An option from a plain table or a typed options object."""
    if isinstance(options, dict):
        return options.get(key)
    return getattr(options, key, None)


def run_reference(
    spec: ReferenceSpec, upstream: Path, variant: str, inputs: dict, state: Mapping[str, str] | None = None
) -> tuple[dict, list[dict[str, object]]]:
    """Load the reference on the CPU and run it on the parity inputs; returns its outputs and the input
    casts it made. With ``state`` (``{state input: output}``), ``inputs`` is a list of a sequence's feeds
    and the outputs a list, one per step (:func:`packager.sequence.run_sequence`). A reference with hidden
    state is reset before and after (the exporters get it at its start). Bad input (a module or inputs that
    do not fit) is re-raised naming the variant; names the reference learnt from the run (a user module's
    output count) go into ``spec.kwargs`` for the exporters."""
    try:
        reference = reference_model(spec.model_class, upstream, variant, spec.kwargs)  # kept for exporters
        reset_state(reference)
        if state is None:
            outputs: Any = run_model(reference, inputs)
        else:
            outputs = run_sequence(reference, inputs, state)
        reset_state(reference)
    except UserModelError as exc:
        raise type(exc)(f"variant '{variant}', backend reference ({spec.description}): {exc}") from exc
    except WeightpackError:
        raise
    except Exception as exc:  # a hand-written reference class failed: the user's code, not ours
        if spec.kind != "class":
            raise
        first = inputs if state is None else inputs[0]
        raise UserModelError(
            f"variant '{variant}', backend reference ({spec.description}): {type(exc).__name__}: {exc} "
            f"(inputs {describe(first)})"
        ) from exc
    if spec.kind in ("module", "torchscript-file"):
        spec.kwargs["input_names"] = reference.input_names
        spec.kwargs["output_names"] = reference.output_names
    return outputs, list(getattr(reference, "casts", []))


def reference_case(
    spec: ReferenceSpec,
    upstream: Path,
    variant: str,
    at: InputsRecipe,
    label: str,
    batch: int | None = None,
    shape: int = 0,
) -> tuple[ParityCase, list[dict[str, object]]]:
    """The reference's outputs on ``at`` (shape ``shape`` of the variant's shape set, at ``batch``
    samples: the batch-axis proof; default: as written), one call or, with ``steps``, a sequence; with the
    input casts it made."""
    size = batch or (len(at.texts) if at.kind in ("text", "text-image") else at.batch_size)
    if at.steps > 1:
        feeds = sequence_feeds(at, upstream, size)
        steps, casts = run_reference(spec, upstream, variant, feeds, at.state)
        sequence = CallSequence(tuple(feeds), at.state, tuple(steps))
        return ParityCase(label or None, feeds[0], steps[0], sequence, None if batch else shape), casts
    inputs = parity_inputs(at, upstream) if batch is None else build_inputs(at, upstream, batch)
    outputs, casts = run_reference(spec, upstream, variant, inputs)
    return ParityCase(label or None, inputs, outputs, shape=None if batch else shape), casts


def shape_cases(
    spec: ReferenceSpec, upstream: Path, variant: str, base: InputsRecipe, ui: UI
) -> tuple[ParityCase, ...]:
    """The reference's outputs at each shape of the variant's shape set after the first (whose inputs and
    outputs are the parity batch and the golden), and where every shape is written at batch 1, at a second
    sample: a batch of 1 cannot show that the batch axis is dynamic (a reference that refuses 2 samples has
    a fixed batch, and nothing is added)."""
    cases = []
    for index in range(1, base.shape_count):
        at, label = base.at_shape(index), base.shape_label(index) or ""
        with ui.stage(f"reference outputs of {variant} at {label}"):
            try:
                cases.append(reference_case(spec, upstream, variant, at, label, shape=index)[0])
            except WeightpackError as exc:
                raise type(exc)(f"at input shape {label}: {exc}") from exc
    batched = base.kind == "tensor" and any(
        t.batch_axis is not None and t.value is None for t in base.tensors
    )
    if batched and all(base.at_shape(i).batch_size == 1 for i in range(base.shape_count)):
        label = f"{base.tensors_label(2)} (a second sample: the batch axis is dynamic)"
        with ui.stage(f"reference outputs of {variant} at {label}"):
            try:
                cases.append(reference_case(spec, upstream, variant, base, label, batch=2)[0])
            except WeightpackError as exc:
                ui.info(f"  {variant}: the reference takes no second sample ({exc}); batch 1 only")
    return tuple(cases)
