"""Build a TensorRT engine from the ONNX export (or an upstream ONNX file) on the local GPU."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backends.base import ExportRequest, ExportResult
from backends.errors import DeviceUnavailableError, ExportError, OptionError
from backends.extras import require
from backends.files import copy_aux_files
from backends.trt import CONFIG_FILE, ENGINE_FILE
from backends.trt.manifest import machine_facts, package_manifest
from backends.trt.precision import PrecisionPlan, precision_plan
from backends.trt.shapes import batch_range, resolve_profile
from backends.trt.spec import SPEC, TrtOptions


def export(request: ExportRequest, onnx_loader: Callable[[Path], Path] | None = None) -> ExportResult:
    """Write ``engine.plan`` + ``trt_config.json`` (options: :class:`~backends.trt.spec.TrtOptions`).

    The engine is parsed from the ONNX graph ``onnx_loader(folder)`` writes and returns, Polygraphy style;
    default: the onnx backend's :class:`~backends.onnx.exporter.OnnxFromReference` with ``options.onnx``.
    """
    trt = require("tensorrt", f"building a TensorRT engine on {request.device}")
    index = build_index(request.device)  # the run's --devices, never a default of its own
    options = SPEC.parse_options(request.options)
    assert isinstance(options, TrtOptions)
    quantization = options.quantization
    batch = _batch_range(request, options)  # before the ONNX export: a range that cannot work is refused
    plan = precision_plan(trt.__version__, quantization, has_fp16_flag=hasattr(trt.BuilderFlag, "FP16"))
    if onnx_loader is None:
        from backends.onnx.exporter import OnnxFromReference

        onnx_options = options.onnx_options()
        if plan.onnx_quantization:  # strongly typed fp16: the graph itself must be fp16
            onnx_options = dataclasses.replace(onnx_options, quantization=plan.onnx_quantization)
        onnx_loader = OnnxFromReference(request, onnx_options)
    # inside the staging folder (an owned temporary of the output folder, swept after a killed run), and
    # gone before the package's files are written
    with tempfile.TemporaryDirectory(prefix=".trt-onnx-", dir=request.staging_dir) as tmp:
        onnx_path = onnx_loader(Path(tmp))
        engine_bytes, io = _build(trt, request, options, onnx_path, index, plan, batch)
    (request.staging_dir / ENGINE_FILE).write_bytes(engine_bytes)
    gpu = gpu_facts(index)
    hardware = options.hardware_compatibility
    config: dict[str, Any] = {
        **_batch_config(batch),
        "inputs": io["inputs"],
        "outputs": io["outputs"],
        "input_names": [i["name"] for i in io["inputs"]],
        "output_names": [o["name"] for o in io["outputs"]],
        "precision": quantization,
        "strongly_typed": plan.strongly_typed,
        "built_on_device": f"cuda:{index}",
        "trt_version": trt.__version__,
        "cuda_device_cc": gpu["cc"],
        "cuda_device_type": gpu["name"],
        "cuda_version": gpu["cuda_version"],
        "version_compatible": options.version_compatible,
        "exclude_lean_runtime": options.exclude_lean_runtime,
        "hardware_compatibility": hardware,
        "same_cc_compatible": hardware == "same_compute_capability",
    }
    (request.staging_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    copy_aux_files(request.upstream_dir, request.staging_dir, options.copy_files)
    manifest = package_manifest(
        {
            "quantization": quantization,
            "batch": list(batch),
            "static_batch": bool(options.static_batch_size),
            "trt_version": trt.__version__,
            "gpu": gpu,
            "same_cc_compatible": config["same_cc_compatible"],
            "version_compatible": config["version_compatible"],
            "exclude_lean_runtime": config["exclude_lean_runtime"],
            "machine": machine_facts(),
        }
    )
    return ExportResult(
        package_manifest=manifest,
        model_class=options.model_class or SPEC.default_model_class(request.task) or "",
        notes=[
            f"TensorRT {trt.__version__} {quantization} engine built on cuda:{index}, {gpu['name']} "
            f"(CC {gpu['cc']}){', strongly typed' if plan.strongly_typed else ''}"
        ],
    )


def preflight(devices: list[str]) -> None:
    """Before a pack with trt: TensorRT installed at a supported major, and a CUDA device to build on."""
    from backends.device import export_device

    device = export_device(devices)
    trt = require("tensorrt", "building a TensorRT engine")
    if device == "cpu":
        raise DeviceUnavailableError(
            f"the trt backend builds and runs engines on a CUDA device, but --devices is "
            f"{','.join(devices)}; pass --devices cuda:N, or leave trt out with --backends"
        )
    precision_plan(trt.__version__, "fp32", has_fp16_flag=hasattr(trt.BuilderFlag, "FP16"))


def build_index(device: str) -> int:
    """The CUDA device index to build on: exactly the one asked for (``cuda:1`` is never cuda:0)."""
    from backends.device import resolve_device

    resolved = resolve_device(device)
    if resolved == "cpu":
        raise DeviceUnavailableError(
            "TensorRT engines are built on a CUDA device, not the CPU; run with --devices cuda:N"
        )
    return int(resolved.split(":")[1])


def _batch_range(request: ExportRequest, options: TrtOptions) -> tuple[int, int, int]:
    """The engine's batch range from the options, the parity inputs' batch and every batch size the run
    feeds (:func:`backends.trt.shapes.batch_range`); an OptionError names the ``backends.trt`` field."""
    sample_batch = int(next(iter(request.sample_inputs.values())).shape[0])
    try:
        return batch_range(
            sample_batch, run_batch_sizes(request), static=options.static_batch_size,
            min_batch=options.min_batch_size, opt_batch=options.opt_batch_size,
            max_batch=options.max_batch_size,
        )  # fmt: skip
    except OptionError as exc:
        raise OptionError(f"backends.trt.{exc.field}", exc.problem, exc.accepted) from None


def run_batch_sizes(request: ExportRequest) -> tuple[int, ...]:
    """The batch sizes the run will feed the package: ``request.batch_sizes`` (the recipe's ``[bench]
    batch_sizes``, which latency and the nightly suite use). A request without that field (an
    ExportRequest of a version that does not carry it) gives none: the range then holds only the parity
    inputs' batch and the default headroom."""
    return tuple(int(b) for b in getattr(request, "batch_sizes", ()) or ())


def _build(
    trt: Any,
    request: ExportRequest,
    options: TrtOptions,
    onnx_path: Path,
    index: int,
    plan: PrecisionPlan,
    batch: tuple[int, int, int],
) -> tuple[bytes, dict[str, list[dict[str, Any]]]]:
    import torch

    torch.cuda.set_device(index)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    strongly = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if plan.strongly_typed and strongly is not None:
        flags |= 1 << int(strongly)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT could not parse the ONNX export: {errors}")
    config = builder.create_builder_config()
    workspace = options.workspace_mb * 2**20
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    if not options.tf32 and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # strict fp32 unless asked: TF32 costs ~1e-3 in parity
    if plan.builder_fp16:  # weakly typed fp16 (TensorRT 10); 11 takes fp16 from the graph
        config.set_flag(trt.BuilderFlag.FP16)
    if options.version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
        if options.exclude_lean_runtime:
            config.set_flag(trt.BuilderFlag.EXCLUDE_LEAN_RUNTIME)
    hardware = options.hardware_compatibility
    if hardware != "none":
        levels = {
            "ampere_plus": trt.HardwareCompatibilityLevel.AMPERE_PLUS,
            "same_compute_capability": getattr(
                trt.HardwareCompatibilityLevel, "SAME_COMPUTE_CAPABILITY", None
            ),
        }
        if levels.get(hardware) is None:
            raise ExportError(
                f"hardware_compatibility = {hardware!r} is not supported by TensorRT {trt.__version__}"
            )
        config.hardware_compatibility_level = levels[hardware]
    profile = builder.create_optimization_profile()
    ranges = {**dict(request.dim_ranges), **{k: list(v) for k, v in options.dim_ranges.items()}}
    io: dict[str, list[dict[str, Any]]] = {"inputs": [], "outputs": []}
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        sample = request.sample_inputs.get(tensor.name)
        if sample is None:
            raise ExportError(f"the recipe's [inputs] have no '{tensor.name}', which the engine takes")
        low, opt, high = resolve_profile(tensor.name, list(tensor.shape), sample.shape, batch, ranges)
        profile.set_shape(tensor.name, low, opt, high)
        io["inputs"].append({"name": tensor.name, "min": low, "opt": opt, "max": high})
    config.add_optimization_profile(profile)
    io["outputs"] = [{"name": network.get_output(i).name} for i in range(network.num_outputs)]
    cache_path = options.timing_cache
    cache = config.create_timing_cache(
        Path(cache_path).read_bytes() if cache_path and Path(cache_path).is_file() else b""
    )
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError("TensorRT failed to build the engine (see the TensorRT log above)")
    if cache_path:
        Path(cache_path).parent.mkdir(parents=True, exist_ok=True)
        Path(cache_path).write_bytes(bytes(config.get_timing_cache().serialize()))
    return bytes(serialized), io


def _batch_config(batch: tuple[int, int, int]) -> dict[str, int]:
    if batch[0] == batch[1] == batch[2]:
        return {"static_batch_size": batch[0]}
    return {
        "dynamic_batch_size_min": batch[0],
        "dynamic_batch_size_opt": batch[1],
        "dynamic_batch_size_max": batch[2],
    }


def gpu_facts(index: int) -> dict[str, Any]:
    """GPU name, compute capability and CUDA runtime version of device ``index`` (the machine's driver and
    OS: :func:`backends.trt.manifest.machine_facts`)."""
    import torch

    major, minor = torch.cuda.get_device_capability(index)
    return {
        "name": torch.cuda.get_device_name(index),
        "cc": f"{major}.{minor}",
        "cuda_version": torch.version.cuda,
    }
