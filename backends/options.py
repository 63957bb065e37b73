"""Typed backend options: each backend declares a dataclass of the keys its recipe table accepts.

A recipe's ``[backends.NAME]`` table is parsed into that class when the recipe loads, so a typo
(``opsett = 17``) or an out-of-range value (an opset newer than onnxruntime runs) is bad input, exit 2,
before anything is downloaded or exported, instead of a silently used default or a failed export.

The schema is the dataclass itself: field names are the accepted keys, annotations the accepted types
(``str``, ``int``, ``float``, ``bool``, ``list[str]``, ``dict[str, Any]``, ``Literal[...]``, ``X | None``,
or another :class:`BackendOptions` for a nested table), and :meth:`BackendOptions.validate` checks ranges.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, TypeVar, get_args, get_origin

from backends.errors import OptionError

QUANTIZATIONS = ("fp32", "fp16", "bf16", "int8", "unknown")
"""Every quantization a registry manifest may record; a backend narrows it to what it can build."""

OptionsT = TypeVar("OptionsT", bound="BackendOptions")

TARGET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""A target's name (``h100``, ``l4``, ``jetson-orin``, ``A100-80G``): it becomes a Ray resource name and
part of a file name, so letters, digits, ``_``, ``.`` and ``-`` only."""


def target_problem(names: list[str]) -> str | None:
    """Why ``names`` is not a list of targets (a bad name, a repeat), or None when it is."""
    for name in names:
        if not TARGET_NAME.match(name):
            return f"'{name}' is not a target name"
    repeated = sorted({n for n in names if names.count(n) > 1})
    return f"'{repeated[0]}' is named twice" if repeated else None


@dataclasses.dataclass(frozen=True)
class BackendOptions:
    """Keys every backend table accepts; subclasses add their own (and may narrow ``quantization``)."""

    quantization: Literal["fp32", "fp16", "bf16", "int8", "unknown"] = "fp32"
    model_class: str | None = None
    """``module:Class`` the package is loaded with; default: the backend's class for the task."""
    zip_name: str = "{architecture}-{variant}-{backend}.zip"
    rename: dict[str, str] = dataclasses.field(default_factory=dict)
    """The consumer's layout: exported file -> the name the consumer's class looks for
    (``weights.onnx`` -> ``inference.onnx``); applied by ``packager.layout`` before zipping."""
    files: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Files added to the package: name -> ``{ hook = "module:function" }`` or ``{ source = "path" }``."""
    targets: list[str] = dataclasses.field(default_factory=list)
    """Machine types this backend's packages are built and verified on with ``pack --ray`` (one package per
    target for a device-bound backend; see docs/cluster.md). A run without ``--ray`` builds here."""

    positive: ClassVar[tuple[str, ...]] = ()
    """Integer fields that must be > 0 when set."""

    @classmethod
    def parse(cls: type[OptionsT], table: Mapping[str, Any] | None, where: str = "") -> OptionsT:
        """Build the options from a recipe table; OptionError names the field and the accepted values."""
        table = dict(table or {})
        hints = typing.get_type_hints(cls)
        known = [f.name for f in dataclasses.fields(cls) if f.init]
        unknown = sorted(set(table) - set(known))
        if unknown:
            raise OptionError(_join(where, unknown[0]), "is not a known option", ", ".join(sorted(known)))
        values = {key: _coerce(hints[key], value, _join(where, key)) for key, value in table.items()}
        options = cls(**values)
        problem = target_problem(list(options.targets))
        if problem:
            raise OptionError(_join(where, "targets"), problem, "distinct names of letters, digits, _ . -")
        for name in cls.positive:
            value = getattr(options, name)
            if value is not None and value <= 0:
                raise OptionError(_join(where, name), f"{value} is not positive", "an integer > 0")
        options.validate(where)
        return options

    def validate(self, where: str = "") -> None:
        """Check values against each other and the environment; raise OptionError. Default: nothing."""

    def as_dict(self) -> dict[str, Any]:
        """Every option with its value (defaults included): what keys a rebuild. ``targets`` says where a
        package is built, not what it holds (a device-bound one's target keys it through its zip name)."""
        data = dataclasses.asdict(self)
        data.pop("targets", None)
        return data

    def get(self, key: str, default: Any = None) -> Any:
        """Mapping-style read, for code written against the former dict options (user exporters)."""
        value = getattr(self, key, None)
        return default if value is None else value


def field_path(where: str, key: str) -> str:
    """``where.key`` (or ``key`` at the top of a table)."""
    return _join(where, key)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _coerce(hint: Any, value: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``hint``; ints are accepted where floats are."""
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if value is None and len(args) < len(get_args(hint)):
            return None
        errors = []
        for arg in args:
            try:
                return _coerce(arg, value, where)
            except OptionError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is Literal:
        accepted = get_args(hint)
        if value not in accepted:
            raise OptionError(where, f"{value!r} is not accepted", ", ".join(map(str, accepted)))
        return value
    if isinstance(hint, type) and issubclass(hint, BackendOptions):
        if not isinstance(value, Mapping):
            raise OptionError(where, f"has type {type(value).__name__}", "a table")
        return hint.parse(value, where)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise OptionError(where, f"has type {type(value).__name__}", "a list")
        (item,) = get_args(hint)[:1] or (Any,)
        return [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise OptionError(where, f"has type {type(value).__name__}", "a table")
        return dict(value)
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, hint) or (isinstance(value, bool) and hint is not bool):
        raise OptionError(where, f"has type {type(value).__name__}", hint.__name__)
    return value
