"""The backend table, discovered: every :class:`~backends.spec.BackendSpec` registered in the
``weightpack.backends`` entry-point group (``name = "package.module:SPEC"``), plus any passed to
:func:`register`.

weightpack's own backends are declared in its ``pyproject.toml`` the same way a third-party distribution
declares one, so adding a backend touches its folder and one entry-point line. A spec module imports
nothing heavy: a backend whose library is missing (TensorRT on a laptop) never breaks ``import backends``;
using it raises MissingExtraError naming the extra.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import pkgutil
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path

from backends.base import PackageModel
from backends.spec import BackendSpec, load_object

ENTRY_POINT_GROUP = "weightpack.backends"

_registered: dict[str, BackendSpec] = {}
_discovered = False


def register(spec: BackendSpec) -> BackendSpec:
    """Add ``spec`` (replacing one of the same name) and return it; plugins may also use entry points."""
    if not isinstance(spec, BackendSpec):
        raise TypeError(f"{spec!r} is not a BackendSpec")
    _registered[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a backend registered by :func:`register` (tests clean up with it)."""
    _registered.pop(name, None)


def _discover() -> None:
    """Load every entry point of the group once. A plugin that fails to load is skipped with a warning
    naming it, so one broken third-party backend does not take the built-in ones down."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    found = False
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        found |= entry.module.startswith("backends.")
        try:
            spec = entry.load()
        except Exception as exc:  # a plugin's import error must not break every other backend
            warnings.warn(f"backend entry point {entry.value} failed to load: {exc}", stacklevel=2)
            continue
        if isinstance(spec, BackendSpec):
            _registered.setdefault(spec.name, spec)
    if not found:  # weightpack's own metadata predates the group (an old editable install)
        for spec in _builtin_specs():
            _registered.setdefault(spec.name, spec)


def _builtin_specs() -> Iterator[BackendSpec]:
    """The ``SPEC`` of every ``backends/<folder>/spec.py``: what pyproject's entry points declare."""
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if info.ispkg and (Path(__file__).parent / info.name / "spec.py").is_file():
            yield importlib.import_module(f"backends.{info.name}.spec").SPEC


class _Backends(Mapping[str, BackendSpec]):
    """Read-only, lazily discovered view of the registry, keyed by recipe/CLI name."""

    def __getitem__(self, name: str) -> BackendSpec:
        _discover()
        return _registered[name]

    def __iter__(self) -> Iterator[str]:
        _discover()
        return iter(dict(_registered))

    def __len__(self) -> int:
        _discover()
        return len(_registered)


BACKENDS: Mapping[str, BackendSpec] = _Backends()


def get_backend(name: str) -> BackendSpec:
    """Look a backend up by its recipe/CLI name; KeyError lists the accepted names."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise KeyError(f"unknown backend '{name}' (accepted: {', '.join(sorted(BACKENDS))})") from None


def find_backend(name: str) -> BackendSpec | None:
    """The backend going by ``name`` as recipe name, wire name or manifest ``backendType``, else None."""
    if name in BACKENDS:
        return BACKENDS[name]
    return next((spec for spec in BACKENDS.values() if name in spec.names), None)


def backend_names(name: str) -> set[str]:
    """Every name the backend called ``name`` goes by; just ``{name}`` for an unknown one."""
    spec = find_backend(name)
    return set(spec.names) if spec else {name}


def load_kwargs_for(backend: str | None) -> dict:
    """What a package of ``backend`` is loaded with when weightpack checks its own build (its spec's
    ``load_kwargs``: a TensorRT engine's host code is trusted); ``{}`` for an unknown or missing name."""
    try:
        return dict(BACKENDS[backend].load_kwargs) if backend else {}
    except KeyError:
        return {}


def reference_class(task: str) -> str:
    """The default upstream reference for ``task``: the model class of the backend declared ``reference``
    (the transformers snapshot loader), which runs the upstream weights as they are."""
    for spec in BACKENDS.values():
        found = spec.default_model_class(task) if spec.reference else None
        if found:
            return found
    raise KeyError(f"no registered backend provides a reference model class for task '{task}'")


def load_model_class(ref: str) -> type[PackageModel]:
    """Import a model class; anything with a ``from_pretrained`` classmethod and ``infer`` qualifies.
    (``packager.consumer.load_model_class`` wraps the consumer's own classes on top of this.)"""
    cls = load_object(ref)
    if not hasattr(cls, "from_pretrained"):
        raise TypeError(f"'{ref}' has no from_pretrained(); it cannot be a model class")
    return cls


__all__ = [
    "BACKENDS",
    "ENTRY_POINT_GROUP",
    "BackendSpec",
    "backend_names",
    "find_backend",
    "get_backend",
    "load_kwargs_for",
    "load_model_class",
    "load_object",
    "reference_class",
    "register",
    "unregister",
]
