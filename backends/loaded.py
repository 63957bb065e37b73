"""The upstream reference model, loaded once per process and shared by the reference run and every exporter.

Loading an upstream model (read the weights, build the module) is the same work for the reference outputs
and for each exporter that starts from its torch module; doing it once per run saves that work as many
times as there are such backends (and, with ``pack --jobs``, forked workers inherit the loaded model).
One model is kept at a time, so memory does not grow with the number of variants; :func:`release` drops it
before verification, whose memory measurements must not include it.

Callers must not change the shared model in place: an exporter that converts dtypes asks for a private
one (``shared=False``; a deep copy would not do, since wrappers such as the HF one call the model they
were made from).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LEARNED_KWARGS = ("input_names", "output_names")
"""Names a reference learns from its first run and exporters pass back: the same model either way."""

_LOADED: dict[tuple[str, str, str | None, str], Any] = {}
_INHERITED: list[Any] = []
"""In a forked worker, the models its parent had loaded: held for the worker's life, never destroyed."""


def _key(model_class: str, upstream: Path | str, variant: str | None, kwargs: dict[str, Any]) -> tuple:
    given = {k: v for k, v in kwargs.items() if k not in LEARNED_KWARGS}
    return (
        model_class,
        str(Path(upstream).resolve()),
        variant,
        json.dumps(given, sort_keys=True, default=str),
    )


def reference_model(
    model_class: str, upstream: Path | str, variant: str | None, kwargs: dict[str, Any], shared: bool = True
) -> Any:
    """``model_class.from_pretrained(upstream, device="cpu", variant=..., **kwargs)``, loaded once per
    process; ``shared=False`` loads a private one for a caller that changes it."""
    from backends.registry import load_model_class

    def load() -> Any:
        return load_model_class(model_class).from_pretrained(
            upstream, device="cpu", variant=variant, **kwargs
        )

    if not shared:
        return load()
    key = _key(model_class, upstream, variant, kwargs)
    if key not in _LOADED:
        _LOADED.clear()
        _LOADED[key] = load()
    return _LOADED[key]


def keep_inherited() -> None:
    """Called first thing in a forked worker: never destroy the models the fork copied. A fork copies an
    onnxruntime session's thread pool as it was, its idle threads waiting on a condition variable, but not
    the threads; destroying the copy waits for those waiters for ever (``pack silero_vad --variants
    onnx,jit``: the jit task's worker replaced the inherited ONNX reference and hung, one run in three).
    The worker exits without finalising (``os._exit``), so holding them costs nothing the fork did not."""
    _INHERITED.extend(_LOADED.values())


def release() -> None:
    """Forget the loaded model (its memory is freed once nothing else holds it)."""
    _LOADED.clear()
