"""What a backend declares about itself: one :class:`BackendSpec`, in the backend's own folder.

Everything outside the folder reads the spec instead of spelling a backend's name: the recipe loader
(options schema), the pipeline (exporter, model class), parity (tolerance floors), latency (which CUDA
stream its model classes use), the build cache (which library versions key a rebuild), the extras lookup
and the publish tools (wire name, manifest ``backendType``). Registration: ``backends/registry.py``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from backends.options import BackendOptions

DEFAULT_TOLERANCE = (1e-5, 1e-5)
HALF_TOLERANCE = (1e-2, 1e-2)


class Tolerance(NamedTuple):
    """Element-wise ``allclose`` tolerance: ``|actual - reference| <= atol + rtol * |reference|``."""

    atol: float
    rtol: float


@dataclass(frozen=True)
class BackendSpec:
    """Static facts about one backend."""

    name: str
    """Name in recipes and on the CLI (``hf``, ``onnx``, ``torch``, ``torch-script``, ``trt``)."""
    exporter: str
    """``module:function`` of the exporter (imported only when used)."""
    options: type[BackendOptions] = BackendOptions
    """The typed schema of the recipe's ``[backends.NAME]`` table."""
    wire_name: str = ""
    """Name the registry uses (``hugging-face`` for ``hf``); default: ``name``."""
    manifest_type: str = ""
    """The ``packageManifest.backendType`` its exporter writes; default: ``name``."""
    package_type: str = ""
    """The ``packageManifest.type`` (``onnx-model-package-v1``)."""
    model_classes: dict[str, str] = field(default_factory=dict)
    """Default model class per task; ``*`` applies to any task."""
    tolerance: Tolerance = Tolerance(*DEFAULT_TOLERANCE)  # noqa: RUF009 - an immutable tuple
    """Floor of the default parity tolerance for fp32 outputs (looser where the backend reorders sums)."""
    half_tolerance: Tolerance = Tolerance(*HALF_TOLERANCE)  # noqa: RUF009 - an immutable tuple
    """The floor for fp16/bf16 packages."""
    torch_stream: bool = False
    """Its model classes enqueue CUDA work on torch's current stream (so CUDA events on that stream time
    it) when they expose no ``stream`` attribute of their own."""
    extras: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Optional modules it imports lazily: module -> (weightpack extra, distribution to install)."""
    version_libraries: tuple[str, ...] = ()
    """Distributions whose versions go into the build input key: upgrading one rebuilds the package."""
    preflight: str | None = None
    """``module:function(devices)`` run once before a pack that uses this backend: it raises (exit 3) when
    the environment cannot serve those devices, so the run stops up front instead of failing per package."""
    device_bound: bool = False
    """The package runs only where it was built (a TensorRT engine): the build device keys reuse."""
    load_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments verification passes to the model class's ``from_pretrained``."""
    reference: bool = False
    """Its model classes load an upstream snapshot as is: the default reference (``parity.reference_class``)
    a recipe's packages are compared with."""
    traces_reference: bool = False
    """Its exporter starts from the upstream reference's torch module, so a hand-written reference class
    must provide ``torch_module()`` (checked up front, exit 2)."""
    adopts_upstream: tuple[str, ...] = ()
    """File suffixes its exporter packages as they are when every variant's upstream is one (an ``.onnx``
    file): then it traces nothing and needs no torch module."""

    def __post_init__(self) -> None:
        if not self.wire_name:
            object.__setattr__(self, "wire_name", self.name)
        if not self.manifest_type:
            object.__setattr__(self, "manifest_type", self.name)

    @property
    def names(self) -> frozenset[str]:
        """Every name this backend goes by (recipe, wire, manifest ``backendType``)."""
        return frozenset({self.name, self.wire_name, self.manifest_type})

    def load_exporter(self) -> Any:
        return load_object(self.exporter)

    def default_model_class(self, task: str) -> str | None:
        return self.model_classes.get(task) or self.model_classes.get("*")

    def parse_options(self, table: Any = None) -> BackendOptions:
        """The recipe table as this backend's typed options (OptionError on unknown keys/bad values)."""
        if isinstance(table, self.options):
            return table
        return self.options.parse(table)

    def manifest_base(self, quantization: str) -> dict[str, Any]:
        """The ``packageManifest`` fields every package of this backend starts with."""
        return {"type": self.package_type, "backendType": self.manifest_type, "quantization": quantization}


def load_object(ref: str) -> Any:
    """Import ``module:attr`` (``attr`` may be dotted). Used for exporters and user model classes."""
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise ValueError(f"'{ref}' is not of the form 'module:Name'")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj
