"""The two halves every backend has, modelled on Polygraphy's loader/runner split.

* An :class:`Exporter` turns upstream weights into package files in a staging folder and returns the
  registry's ``packageManifest`` fields for them.
* A :class:`PackageModel` is the runtime model class a consumer loads: ``from_pretrained(dir, device=...)``
  then ``infer({name: array}) -> {name: array}``. Tensors travel as name -> numpy array dicts so that every
  backend, the parity checks and the latency harness speak the same language.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from backends.options import BackendOptions

Tensors = dict[str, np.ndarray]


@dataclass(frozen=True)
class ExportRequest:
    """Everything an exporter may use. ``staging_dir`` exists and is empty; write package files there."""

    upstream_dir: Path
    staging_dir: Path
    architecture: str
    variant: str
    task: str
    options: BackendOptions | Mapping[str, Any]
    """The backend's typed options (a plain table is parsed by the exporter with its spec's schema)."""
    sample_inputs: Tensors
    reference_class: str
    """``module:Class`` of the upstream reference model; exporters that trace a torch module load it."""
    reference_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Keyword arguments for the reference's ``from_pretrained`` (a user module's factory and names)."""
    device: str = "cpu"
    """Where to build (``cuda:N`` from ``--devices``); device-bound exporters (TensorRT) build exactly
    there and record it, others may ignore it."""
    dim_ranges: Mapping[str, tuple[int, int, int]] = field(default_factory=dict)
    """``{"input.axis": (min, opt, max)}`` for dynamic non-batch axes, derived from the recipe's
    ``[inputs]`` (a text recipe's sequence axis is ``(1, sample length, max_length)``)."""
    batch_axes: Mapping[str, int | None] = field(default_factory=dict)
    """Inputs and outputs whose samples are not on axis 0: ``{"state": 1, "stateN": 1, "sr": None}``
    (``None``: no batch axis, a constant); a name not listed is batched on axis 0."""
    batch_sizes: tuple[int, ...] = ()
    """The batch sizes the run will feed the package (the recipe's ``[bench] batch_sizes``): an exporter
    that fixes a batch range at build time (a TensorRT profile) must cover them."""


@dataclass(frozen=True)
class ExportResult:
    """What an exporter produced besides the files: the registry manifest and how to load the package."""

    package_manifest: dict[str, Any]
    model_class: str
    notes: list[str] = field(default_factory=list)


class Exporter(Protocol):
    """Turns upstream weights into one backend's package files."""

    def __call__(self, request: ExportRequest) -> ExportResult: ...


class PackageModel(abc.ABC):
    """Runtime model class: a package folder in, named arrays out.

    Subclasses keep ``from_pretrained``'s signature the consumer (``inference_models``) calls: a directory
    path plus keyword arguments such as ``device=``; unknown keyword arguments are ignored so one loader can
    pass backend-specific ones (``onnx_execution_providers=``) to every class.
    """

    backend: ClassVar[str] = ""
    device: str = "cpu"

    @classmethod
    @abc.abstractmethod
    def from_pretrained(
        cls, model_name_or_path: str | Path, *, device: str = "cpu", **kwargs: Any
    ) -> PackageModel:
        """Load the package in ``model_name_or_path`` onto ``device`` (``cpu``, ``cuda``, ``cuda:N``, or a
        ``torch.device`` as the consumer passes it: see :func:`backends.device.device_string`)."""

    @abc.abstractmethod
    def infer(self, inputs: Mapping[str, np.ndarray]) -> Tensors:
        """Run one batch. Inputs and outputs are host numpy arrays keyed by name."""

    def run(self, inputs: Mapping[str, np.ndarray]) -> Any:
        """The model's work on one batch, leaving outputs where they were computed (device tensors).

        With :meth:`fetch`, ``infer`` is ``fetch(run(inputs))``; the latency harness ends its device timer
        between the two, so "device time" is the model's work and not the blocking copy to the host.
        Classes that cannot split return host arrays here and keep the identity ``fetch``."""
        return self.infer(inputs)

    def fetch(self, outputs: Any) -> Tensors:
        """Bring :meth:`run`'s outputs to the host as named numpy arrays."""
        return outputs

    def synchronize(self) -> None:
        """Block until device work queued by :meth:`infer` has finished; a no-op on the CPU.

        ``infer`` already returns host arrays, so it is synchronous; timers call this anyway so a subclass
        that returns device tensors stays correctly timed.
        """
        return None

    def __call__(self, **inputs: np.ndarray) -> Tensors:
        return self.infer(inputs)


class TorchExportable(Protocol):
    """A reference model that can hand exporters a traceable ``torch.nn.Module``."""

    def torch_module(self) -> tuple[Any, list[str], list[str]]:
        """Return ``(module, input_names, output_names)``; ``module(*inputs)`` returns outputs in order."""
        ...


def require_file(root: Path, name: str, backend: str) -> Path:
    """Return ``root / name`` or raise ModelLoadError naming the missing file, as consumer classes do."""
    from backends.errors import ModelLoadError

    path = Path(root) / name
    if not path.is_file():
        present = sorted(p.name for p in Path(root).iterdir()) if Path(root).is_dir() else []
        raise ModelLoadError(
            f"{backend} package at {root} has no '{name}' (found: {', '.join(present) or 'nothing'}); "
            "was it built by the matching exporter, and unzipped flat?"
        )
    return path
