"""Flatten whatever a model returns into named numpy arrays, so any output structure can be compared.

Tensors, numpy arrays, numbers, tuples, lists, dicts, dataclasses and objects with array attributes (a list
of detections, a transformers ``ModelOutput``) all flatten to ``{"path.to.leaf": array}`` with stable names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np


def to_numpy(value: Any) -> np.ndarray:
    """Convert a tensor-like leaf to a host numpy array (torch tensors are detached and moved to the CPU)."""
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach"):  # torch.Tensor without importing torch
        tensor = value.detach()
        if str(getattr(tensor, "dtype", "")) == "torch.bfloat16":
            tensor = tensor.float()
        return tensor.cpu().numpy()
    return np.asarray(value)


def flatten_outputs(
    value: Any, prefix: str = "output", convert: Callable[[Any], Any] = to_numpy
) -> dict[str, Any]:
    """Flatten ``value`` into ``{name: array}``. A top-level mapping keeps its own keys as names.
    ``convert`` turns each leaf into what is returned (host numpy by default; :func:`keep_on_device` leaves
    tensors where they are, so a model's ``run`` can return device outputs and ``fetch`` copy them)."""
    out: dict[str, Any] = {}
    _flatten(value, "" if isinstance(value, Mapping) or _is_record(value) else prefix, out, convert)
    return out


def keep_on_device(value: Any) -> Any:
    """A leaf converter that keeps torch tensors on their device (detached); other leaves as numpy."""
    return value.detach() if hasattr(value, "detach") else to_numpy(value)


def fetch_all(outputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Copy ``{name: tensor}`` to host numpy arrays (the blocking device-to-host copies)."""
    return {name: to_numpy(value) for name, value in outputs.items()}


def _is_record(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _join(prefix: str, key: object) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _flatten(value: Any, name: str, out: dict[str, Any], convert: Callable[[Any], Any]) -> None:
    if value is None or isinstance(value, (str, bytes)):
        return  # labels and other text are not compared numerically
    if isinstance(value, Mapping):
        for key in value:
            _flatten(value[key], _join(name, key), out, convert)
    elif _is_record(value):
        for f in dataclasses.fields(value):
            _flatten(getattr(value, f.name), _join(name, f.name), out, convert)
    elif isinstance(value, (list, tuple)) and not _is_numeric_sequence(value):
        for index, item in enumerate(value):
            _flatten(item, _join(name, index), out, convert)
    elif hasattr(value, "detach") or isinstance(
        value, (np.ndarray, np.generic, int, float, bool, list, tuple)
    ):
        out[name or "output"] = convert(value)
    elif hasattr(value, "__dict__"):
        for key, item in sorted(vars(value).items()):
            if not key.startswith("_"):
                _flatten(item, _join(name, key), out, convert)
    else:
        raise TypeError(f"cannot flatten output '{name}' of type {type(value).__name__} into arrays")


def _is_numeric_sequence(value: list | tuple) -> bool:
    return len(value) > 0 and all(isinstance(v, (int, float, bool)) for v in value)


def run_model(model: Any, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Call a model class (``infer`` when it has one, else ``model(**inputs)``) and flatten the result, so
    a user's class with any output structure can be compared like the built-in ones."""
    if hasattr(model, "infer"):
        return flatten_outputs(model.infer(inputs))
    return flatten_outputs(model(**inputs))
