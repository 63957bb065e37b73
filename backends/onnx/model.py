"""onnxruntime model class: providers chosen from the device, inputs cast to what the graph declares."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import PackageModel, Tensors, require_file
from backends.device import parse_device, resolve_device
from backends.errors import BrokenInstallError, MissingExtraError, ModelLoadError
from backends.onnx import WEIGHTS_FILE, install
from backends.onnx.signature import check_feed, graph_inputs


def providers_for(
    device: str,
    *,
    tensorrt: bool = False,
    engine_cache_dir: Path | str | None = None,
    trt_fp16: bool = False,
    trt_options: Mapping[str, Any] | None = None,
) -> list[Any]:
    """The provider list for a device: CPU alone; or CUDA (device id set) then the CPU; with
    ``tensorrt=True`` the TensorRT EP first, its engines cached in ``engine_cache_dir``."""
    kind, index = parse_device(device)
    if kind == "cpu":
        return ["CPUExecutionProvider"]
    device_id = index or 0
    providers: list[Any] = []
    if tensorrt:
        options: dict[str, Any] = {
            "device_id": device_id,
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(engine_cache_dir or default_engine_cache_dir()),
            "trt_timing_cache_enable": True,
            "trt_fp16_enable": bool(trt_fp16),
        }
        options.update(trt_options or {})
        Path(options["trt_engine_cache_path"]).mkdir(parents=True, exist_ok=True)
        providers.append(("TensorrtExecutionProvider", options))
    providers.append(("CUDAExecutionProvider", {"device_id": device_id}))
    providers.append("CPUExecutionProvider")
    return providers


ENGINE_CACHE_OPTIONS = (
    "trt_fp16_enable",
    "trt_int8_enable",
    "trt_max_workspace_size",
    "trt_builder_optimization_level",
)
ENGINE_CACHE_VERSIONS = ("tensorrt", "onnxruntime", "gpu", "compute_capability")
"""What a cached engine was built by and for; a change of any of them must never hand back an old one."""


def engine_cache_key(
    file_digests: Mapping[str, str], trt_options: Mapping[str, Any], versions: Mapping[str, Any]
) -> str:
    """Folder name of the TensorRT-EP engine cache for one package: a hash of the package's graph and
    weight files (name -> sha256), the options that change the engine, and ``versions``: the TensorRT
    and onnxruntime versions and the GPU (name, compute capability) that build it. onnxruntime names its
    cached engines after the model file name (always ``weights.onnx``), input/output names and versions,
    never the weights: one shared folder would hand a re-exported package the old engine, and one cache
    root kept across an upgrade (TensorRT 10.13 -> 10.16, another onnxruntime, another GPU) a stale one.
    A version that is missing is refused: an unknown builder cannot be told apart from another."""
    absent = [k for k in ENGINE_CACHE_VERSIONS if not versions.get(k)]
    if absent:
        raise ModelLoadError(
            f"the TensorRT engine cache key needs {', '.join(absent)}; pass trt_engine_cache_enable=False "
            "to build without a cache"
        )
    payload = {
        "files": dict(sorted(file_digests.items())),
        "options": {k: trt_options[k] for k in ENGINE_CACHE_OPTIONS if k in trt_options},
        "versions": {k: str(versions[k]) for k in ENGINE_CACHE_VERSIONS},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:24]


def engine_versions(device: str) -> dict[str, Any]:
    """The facts :func:`engine_cache_key` keys on, for CUDA ``device``: the TensorRT the provider loads
    (its pip distribution's version), onnxruntime's version, the GPU's name and compute capability."""
    import onnxruntime
    import torch

    index = parse_device(device)[1] or 0
    major, minor = torch.cuda.get_device_capability(index)
    return {
        "tensorrt": install.tensorrt_version(),
        "onnxruntime": onnxruntime.__version__,
        "gpu": torch.cuda.get_device_name(index),
        "compute_capability": f"{major}.{minor}",
    }


def package_digests(path: Path) -> dict[str, str]:
    """sha256 of the files that make the graph: ``weights.onnx`` and its external data."""
    out = {}
    for file in sorted(path.iterdir()):
        if file.is_file() and (file.suffix == ".onnx" or ".onnx" in file.name or file.suffix == ".data"):
            digest = hashlib.sha256()
            with file.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            out[file.name] = digest.hexdigest()
    return out


def default_engine_cache_dir() -> Path:
    """Where the TensorRT EP keeps built engines unless told otherwise (``WEIGHTPACK_TRT_CACHE``)."""
    root = (
        os.environ.get("WEIGHTPACK_TRT_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "weightpack" / "ort-trt"
    )
    return Path(root)


class OnnxModel(PackageModel):
    """Runs ``weights.onnx`` in an onnxruntime InferenceSession."""

    backend = "onnx"

    def __init__(self, session: Any, path: Path, device: str, io_binding: bool = False) -> None:
        self.session = session
        self.path = path
        self.device = device
        self.declared = graph_inputs(session)
        self.inputs = {name: dtype for name, (_, dtype) in self.declared.items()}
        self.casts: list[dict[str, object]] = []
        self.output_names = [o.name for o in session.get_outputs()]
        self.io_binding = io_binding
        self.providers = list(session.get_providers())

    @classmethod
    def from_pretrained(
        cls,
        model_name_or_path: str | Path,
        *,
        device: str = "cpu",
        onnx_execution_providers: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> OnnxModel:
        """Keyword options: ``onnx_execution_providers`` (overrides the list chosen from ``device``),
        ``tensorrt`` (use the TensorRT EP on CUDA), ``trt_engine_cache_enable``/``trt_engine_cache_path``/
        ``trt_fp16_enable`` (TensorRT EP options), ``io_binding`` (default: on for CUDA),
        ``intra_op_num_threads``, ``inter_op_num_threads`` (the pipeline passes its thread settings)."""
        path = Path(model_name_or_path)
        weights = require_file(path, WEIGHTS_FILE, "onnx")
        device = resolve_device(device)
        install.check(device)  # both onnxruntime packages, or CUDA asked of the CPU one: exit 3 + the fix
        import onnxruntime

        trt_options = {
            k: kwargs[k] for k in ("trt_engine_cache_enable", "trt_max_workspace_size") if k in kwargs
        }
        use_trt = bool(kwargs.get("tensorrt")) and not onnx_execution_providers
        if use_trt:
            names = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
            _require_providers(names, onnxruntime.get_available_providers(), device)
        # pip's CUDA/TensorRT libraries, preloaded; one that is missing is named before anything is built
        plans = install.prepare(["TensorrtExecutionProvider", "CUDAExecutionProvider"] if use_trt else [])
        loadable = [n for n, plan in plans.items() if not (plan and plan.missing)]
        early = _dropped(list(plans), loadable, plans)
        if early:
            raise BrokenInstallError(f"{weights} on {device}: {early}")
        cache_dir = None
        if use_trt and trt_options.get("trt_engine_cache_enable", True):
            cache_root = Path(kwargs.get("trt_engine_cache_path") or default_engine_cache_dir())
            key_options = {**trt_options, "trt_fp16_enable": bool(kwargs.get("trt_fp16_enable"))}
            versions = engine_versions(device)
            cache_dir = cache_root / engine_cache_key(package_digests(path), key_options, versions)
        providers = list(
            onnx_execution_providers
            or providers_for(
                device,
                tensorrt=use_trt,
                engine_cache_dir=cache_dir,
                trt_fp16=bool(kwargs.get("trt_fp16_enable")),
                trt_options=trt_options,
            )
        )
        _require_providers(providers, onnxruntime.get_available_providers(), device)
        plans = {**plans, **install.prepare([n for n in _provider_names(providers) if n not in plans])}
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        if kwargs.get("intra_op_num_threads"):
            options.intra_op_num_threads = int(kwargs["intra_op_num_threads"])
        if kwargs.get("inter_op_num_threads"):
            options.inter_op_num_threads = int(kwargs["inter_op_num_threads"])
        try:
            session = onnxruntime.InferenceSession(str(weights), sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelLoadError(f"onnxruntime could not load {weights}: {exc}") from exc
        # ORT silently drops a provider it cannot initialise (missing CUDA/cuDNN/TensorRT libraries)
        asked = [n for n in _provider_names(providers) if n != "CPUExecutionProvider"]
        problem = _dropped(asked, session.get_providers(), plans)
        if problem:
            raise BrokenInstallError(f"{weights} on {device}: {problem}")
        io_binding = kwargs.get("io_binding", device.startswith("cuda"))
        return cls(session, path, device, io_binding=bool(io_binding) and device.startswith("cuda"))

    def infer(self, inputs: Mapping[str, np.ndarray]) -> Tensors:
        """Inputs are checked against the graph's declared names, shapes and dtypes first (a cast within a
        kind is made, one across kinds refused: ``backends.casting``)."""
        feed, self.casts = check_feed(self.declared, inputs, f"onnx graph {WEIGHTS_FILE}")
        feed = {name: np.ascontiguousarray(array) for name, array in feed.items()}
        if self.io_binding:
            return self._infer_bound(feed)
        outputs = self.session.run(self.output_names, feed)
        return dict(zip(self.output_names, outputs, strict=True))

    def _infer_bound(self, feed: dict[str, np.ndarray]) -> Tensors:
        """I/O binding: inputs copied to the GPU once, outputs allocated there by ORT, then copied back."""
        import onnxruntime

        index = parse_device(self.device)[1] or 0
        binding = self.session.io_binding()
        for name, array in feed.items():
            binding.bind_ortvalue_input(name, onnxruntime.OrtValue.ortvalue_from_numpy(array, "cuda", index))
        for name in self.output_names:
            binding.bind_output(name, "cuda", index)
        self.session.run_with_iobinding(binding)
        return dict(zip(self.output_names, binding.copy_outputs_to_cpu(), strict=True))


def _dropped(asked: Sequence[str], got: Sequence[str], plans: Mapping[str, Any]) -> str | None:
    """:func:`backends.onnx.install.provider_problem` for the providers ``asked`` that are not in ``got``;
    the install facts it names are read only then (a load that keeps its providers pays nothing)."""
    if all(name in got for name in asked):
        return None
    ort = next(iter(install.installed()), None)
    return install.provider_problem(asked, got, plans, ort, install.cuda_build(), python=sys.executable)


def _provider_names(providers: Sequence[Any]) -> list[str]:
    return [p[0] if isinstance(p, tuple) else p for p in providers]


def _require_providers(providers: Sequence[Any], available: Sequence[str], device: str) -> None:
    names = _provider_names(providers)
    missing = [n for n in names if n not in available and n != "CPUExecutionProvider"]
    if missing:
        raise MissingExtraError(f"running onnx on {device} ({', '.join(missing)})", "gpu", "onnxruntime-gpu")
