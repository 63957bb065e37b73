"""CPU thread settings for torch and onnxruntime alike, applied once per run and recorded in the report.

Why pinned: on a small shared machine a library's default (one thread per core) makes every op fork-join
across cores that other processes are also using; a 1.7 ms net then shows p50s of 57-152 ms and batch 1
slower than batch 16 (issue 11). One intra-op thread per run gives stable rows; the choice was measured with
``scripts/bench_cpu_timing.py threads`` on the 2-core development machine (docs/measurement.md, "Threads").
``--threads N`` or ``[bench] threads = N`` overrides it.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import sys
from dataclasses import asdict, dataclass
from typing import Any

DEFAULT_INTRA_OP = 1
"""Pinned default for CPU latency (measured: see the module docstring)."""
DEFAULT_INTER_OP = 1


@dataclass(frozen=True)
class ThreadSettings:
    """Threads inside one op (``intra_op``) and across independent ops (``inter_op``)."""

    intra_op: int
    inter_op: int = DEFAULT_INTER_OP
    source: str = "default"
    """Where the setting came from: ``--threads``, ``bench.threads`` or ``default``."""

    def configure_ort(self, options: Any) -> Any:
        """Set an ``onnxruntime.SessionOptions``' thread counts (sequential execution, as torch runs)."""
        options.intra_op_num_threads = self.intra_op
        options.inter_op_num_threads = self.inter_op
        return options

    def model_kwargs(self) -> dict[str, int]:
        """Keyword arguments model classes accept in ``from_pretrained`` (others ignore them)."""
        return {"intra_op_num_threads": self.intra_op, "inter_op_num_threads": self.inter_op}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_threads() -> ThreadSettings:
    return ThreadSettings(DEFAULT_INTRA_OP, DEFAULT_INTER_OP, "default")


def resolve_threads(flag: int | None, recipe: int | None) -> ThreadSettings:
    """``--threads`` wins over ``[bench] threads``, which wins over the pinned default."""
    if flag:
        return ThreadSettings(int(flag), DEFAULT_INTER_OP, "--threads")
    if recipe:
        return ThreadSettings(int(recipe), DEFAULT_INTER_OP, "bench.threads")
    return default_threads()


def apply_threads(settings: ThreadSettings) -> ThreadSettings:
    """Set torch's intra-op threads (and inter-op threads where torch still allows it: only before its
    first parallel region) and return the settings with what torch really runs with.

    When torch is not imported yet, it is not imported for this: the settings are applied the moment
    something imports torch (:class:`_ApplyOnTorchImport`, which carries them), so a run that needs no
    model (every package reused) never pays the torch import, and one that does gets exactly these
    threads. Nothing is remembered here: the caller keeps the returned value and passes it on (to model
    classes as ``from_pretrained`` keyword arguments, to the environment capture)."""
    if "torch" not in sys.modules:
        _ApplyOnTorchImport.install(settings)
        return settings
    import torch

    torch.set_num_threads(settings.intra_op)
    # only possible before torch's first parallel region; otherwise keep what it has, and record that
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(settings.inter_op)
    return ThreadSettings(settings.intra_op, torch.get_num_interop_threads(), settings.source)


class _ApplyOnTorchImport(importlib.abc.MetaPathFinder):
    """A one-shot import hook holding the settings to apply: once ``import torch`` has run torch's
    ``__init__``, apply them to it, before any caller of that import can start a parallel region."""

    def __init__(self, settings: ThreadSettings) -> None:
        self.settings = settings

    @classmethod
    def install(cls, settings: ThreadSettings) -> None:
        """Put a hook with ``settings`` first on ``sys.meta_path`` (replacing an earlier one: the last
        settings applied are the ones torch gets)."""
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, cls)]
        sys.meta_path.insert(0, cls(settings))

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "torch" or getattr(self, "_looking", False):
            return None
        # Not one-shot here: a caller may only ask where torch is (transformers' is_torch_available runs
        # importlib.util.find_spec("torch")) and never load that spec; the hook leaves only once torch's
        # module really runs, below.
        self._looking = True
        try:
            spec = importlib.util.find_spec("torch")  # the real finders (this one answers None meanwhile)
        finally:
            self._looking = False
        if spec is None or spec.loader is None:
            return spec
        run_module = spec.loader.exec_module
        hook, settings = self, self.settings

        def exec_module(module: Any) -> None:
            if hook in sys.meta_path:
                sys.meta_path.remove(hook)
            run_module(module)
            apply_threads(settings)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec
