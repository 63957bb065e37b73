"""Typed backend options: each backend declares a table of the keys its recipe table accepts.

A recipe's ``[backends.NAME]`` table is parsed into that class when the recipe loads, so a typo
(``opsett = 17``) or an out-of-range value (an opset newer than onnxruntime runs) is bad input, exit 2,
before anything is downloaded or exported, instead of a silently used default or a failed export.

The schema is the dataclass itself, declared like every recipe table (:mod:`backends.schema`): field names
are the accepted keys, annotations the accepted types, ``key(..., ge=1)`` the constraints, and
:meth:`BackendOptions.validate` checks keys against each other and the environment.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, TypeVar

from backends.errors import FieldError, OptionError
from backends.schema import Table, join, key

QUANTIZATIONS = ("fp32", "fp16", "bf16", "int8", "unknown")
"""Every quantization a registry manifest may record; a backend narrows it to what it can build."""

MODEL_CLASS_PATTERN = r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*"
"""``module:Class``: an import reference."""

OptionsT = TypeVar("OptionsT", bound="BackendOptions")

TARGET_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
"""A target's name (``h100``, ``l4``, ``jetson-orin``, ``A100-80G``): it becomes a Ray resource name and
part of a file name, so letters, digits, ``_``, ``.`` and ``-`` only."""
TARGETS_ACCEPTED = "distinct names of letters, digits, _ . - (e.g. h100, l4, jetson-orin)"


def target_problem(names: list[str]) -> str | None:
    """Why ``names`` is not a list of targets (a bad name, a repeat), or None when it is."""
    for name in names:
        if not re.fullmatch(TARGET_PATTERN, name):
            return f"'{name}' is not a target name"
    repeated = sorted({n for n in names if names.count(n) > 1})
    return f"'{repeated[0]}' is named twice" if repeated else None


@dataclasses.dataclass(frozen=True)
class BackendOptions(Table):
    """Keys every backend table accepts; subclasses add their own (and may narrow ``quantization``)."""

    quantization: Literal["fp32", "fp16", "bf16", "int8", "unknown"] = "fp32"
    """The precision the package is built at (recorded in the manifest)."""
    model_class: str | None = key(
        None, pattern=MODEL_CLASS_PATTERN, what="an import reference", accepted="'package.module:ClassName'"
    )
    """``module:Class`` the package is loaded with; default: the backend's class for the task."""
    zip_name: str = key(
        "{architecture}-{variant}-{backend}.zip",
        pattern=r"[^/\\]*\.zip",
        what="a file name ending in .zip",
        accepted="for example '{architecture}-{variant}-{backend}.zip'",
    )
    """The package's file name; placeholders {architecture}, {family}, {variant}, {backend}."""
    rename: dict[str, str] = dataclasses.field(default_factory=dict)
    """The consumer's layout: exported file -> the name the consumer's class looks for
    (``weights.onnx`` -> ``inference.onnx``); applied by ``packager.consumer.layout`` before zipping."""
    files: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Files added to the package: name -> ``{ hook = "module:function" }`` or ``{ source = "path" }``."""
    targets: list[str] = key(
        factory=list, pattern=TARGET_PATTERN, what="a target name", accepted=TARGETS_ACCEPTED
    )
    """Kinds of machine ``pack --ray`` builds and verifies this backend's packages on (Ray resource
    ``target:NAME`` or ``accelerator_type:NAME``; one package per target for a device-bound backend; see
    docs/cluster.md). A run without ``--ray`` builds here."""

    noun: ClassVar[str] = "option"

    @classmethod
    def parse(
        cls: type[OptionsT], table: Mapping[str, Any] | None, where: str = "", given: Any = None
    ) -> OptionsT:
        """Build the options from a recipe table; OptionError names the field and the accepted values."""
        try:
            options = super().parse(table, where, given)
        except OptionError:
            raise
        except FieldError as exc:
            raise OptionError(exc.field, exc.problem, exc.accepted) from None
        problem = target_problem(list(options.targets))
        if problem:
            raise OptionError(join(where, "targets"), problem, TARGETS_ACCEPTED)
        return options

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
    return join(where, key)
