"""Questions put to the real consumer. Runs only where ``inference_models`` is importable.

As a command (the bridge runs it in the consumer's venv): ``python -m packager.consumer.probe COMMAND``
reads a JSON request on stdin and prints one JSON answer on stdout:

- ``parse``: ``{"packages": [{"packageId", "packageManifest", "packageFiles"?}], "device"?}`` -> per
  package: ``parsed`` (the consumer's parser accepted it; else ``error``), ``backend``, and ``runtime``
  (``[matches, reason]`` from the consumer's own runtime-compatibility filter; TRT packages are judged on a
  GPU only, so ``null`` here).
- ``resolve``: ``{"model_id", "api_host", "api_key"}`` -> what the consumer's roboflow weights provider
  (``get_roboflow_model``, every page) makes of the weights endpoint at ``api_host``: architecture, task
  and each parsed package (id, backend, files with md5).
- ``implemented``: ``{"keys": [[architecture, task, backend], ...]}`` -> ``{"implemented": [bool, ...]}``:
  whether the consumer ships a class for each.
- ``auto-load``: ``{"model_id", "api_host", "api_key", "inputs": NPZ, "outputs": NPZ, "device"?,
  "backend"?, "package_id"?, "cache_dir"?}`` -> ``AutoModel.from_pretrained(model_id)`` with the weights
  endpoint at ``api_host``, run on the npz's ``input/*`` arrays; the flattened outputs are written to
  ``outputs`` and the answer names the class loaded (``registered: false`` and no load when the consumer
  ships no class for any listed package's (architecture, task, backend)).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def parse_packages(packages: list[dict[str, Any]], device: str = "cpu") -> list[dict[str, Any]]:
    """Parse each package entry with the parser the consumer picks for its ``packageManifest.type``,
    without its silent skip: the exception is reported."""
    import torch
    from inference_models.models.auto_loaders.auto_negotiation import (
        model_package_matches_runtime_environment,
    )
    from inference_models.runtime_introspection.core import x_ray_runtime_environment
    from inference_models.weights_providers.roboflow import MODEL_PACKAGE_PARSERS, RoboflowModelPackageV1

    x_ray = x_ray_runtime_environment()
    answers = []
    for pkg in packages:
        manifest = pkg["packageManifest"]
        entry = {
            "type": "external-model-package-v1",
            "packageId": pkg.get("packageId", "probe"),
            "packageManifest": manifest,
            "packageFiles": pkg.get("packageFiles")
            or [{"fileHandle": "f", "downloadUrl": "http://127.0.0.1/f", "md5Hash": "0" * 32}],
        }
        answer: dict[str, Any] = {"type": manifest.get("type"), "parsed": False}
        try:
            parser = MODEL_PACKAGE_PARSERS[manifest.get("type")]
            parsed = parser(RoboflowModelPackageV1.model_validate(entry), None)
        except Exception as exc:  # the consumer swallows these; we report them
            answer["error"] = f"{type(exc).__name__}: {exc}"
            answers.append(answer)
            continue
        answer.update(parsed=True, backend=str(parsed.backend.value))
        if parsed.backend.value == "trt":
            answer["runtime"] = None
            env = parsed.environment_requirements
            answer["environment"] = {k: str(v) for k, v in vars(env).items()} if env else None
        else:
            ok, reason = model_package_matches_runtime_environment(parsed, x_ray, device=torch.device(device))
            answer["runtime"] = [bool(ok), reason]
        answers.append(answer)
    return answers


def _point_at(api_host: str) -> None:
    """The consumer reads ``ROBOFLOW_API_HOST`` once, at import: set it before the first import."""
    if "inference_models" in sys.modules:
        from inference_models.weights_providers import roboflow

        roboflow.ROBOFLOW_API_HOST = api_host.rstrip("/")
    os.environ["ROBOFLOW_API_HOST"] = api_host.rstrip("/")


def resolve(request: dict[str, Any]) -> dict[str, Any]:
    """The consumer's weights provider on the registry at ``api_host``."""
    _point_at(request["api_host"])
    from inference_models.weights_providers.roboflow import get_roboflow_model

    meta = get_roboflow_model(request["model_id"], api_key=request.get("api_key"))
    return {
        "model_id": meta.model_id,
        "model_architecture": meta.model_architecture,
        "task_type": meta.task_type,
        "packages": [
            {
                "package_id": p.package_id,
                "backend": str(p.backend.value),
                "files": {f.file_handle: f.md5_hash for f in p.package_artefacts},
            }
            for p in meta.model_packages
        ],
    }


def auto_load(request: dict[str, Any]) -> dict[str, Any]:
    """Resolve, download and load ``model_id`` through ``AutoModel`` and run it on recorded inputs."""
    import numpy as np

    _point_at(request["api_host"])
    os.environ.setdefault("ONNXRUNTIME_EXECUTION_PROVIDERS", "[CPUExecutionProvider]")
    if request.get("cache_dir"):
        os.environ["INFERENCE_HOME"] = request["cache_dir"]
        os.environ["MODEL_CACHE_DIR"] = request["cache_dir"]
    import torch
    from inference_models import AutoModel
    from inference_models.models.auto_loaders.models_registry import model_implementation_exists

    from packager.consumer.model import ConsumerModel

    listed = resolve(request)
    keys = {(listed["model_architecture"], listed["task_type"], p["backend"]) for p in listed["packages"]}
    implemented = [k for k in keys if _implemented(model_implementation_exists, *k)]
    if not implemented:
        return {
            "registered": False,
            "reason": f"inference-models ships no class for {sorted(keys)}; the consumer cannot load "
            "this model in production",
        }
    kwargs: dict[str, Any] = {}
    if request.get("backend"):
        kwargs["backend"] = request["backend"]
    if request.get("package_id"):
        kwargs["model_package_id"] = request["package_id"]
    model = AutoModel.from_pretrained(
        request["model_id"],
        api_key=request.get("api_key"),
        device=torch.device(request.get("device", "cpu")),
        allow_untrusted_packages=True,
        use_auto_resolution_cache=False,
        **kwargs,
    )
    with np.load(request["inputs"]) as data:
        inputs = {k.removeprefix("input/"): data[k] for k in data.files if k.startswith("input/")}
    outputs = ConsumerModel(model, device=request.get("device", "cpu")).infer(inputs)
    np.savez(request["outputs"], **{f"output/{k}": v for k, v in outputs.items()})
    return {
        "registered": True,
        "model_class": f"{type(model).__module__}:{type(model).__qualname__}",
        "outputs": {k: list(v.shape) for k, v in outputs.items()},
        "text": ConsumerModel.texts(outputs),
    }


def _implemented(exists: Any, architecture: str, task: str | None, backend: str) -> bool:
    from inference_models.models.auto_loaders.entities import BackendType

    try:
        return bool(exists(model_architecture=architecture, task_type=task, backend=BackendType(backend)))
    except Exception:  # an unknown backend or task: not implemented
        return False


def implemented(request: dict[str, Any]) -> dict[str, Any]:
    """``{"keys": [[architecture, task, backend], ...]}`` -> whether the consumer ships a class for each
    (what ``AutoModel`` looks up first; a missing one is ``ModelImplementationNotFoundError``)."""
    from inference_models.models.auto_loaders.models_registry import model_implementation_exists

    return {"implemented": [_implemented(model_implementation_exists, *key) for key in request["keys"]]}


COMMANDS = {
    "parse": lambda req: {"packages": parse_packages(req["packages"], req.get("device", "cpu"))},
    "implemented": implemented,
    "resolve": resolve,
    "auto-load": auto_load,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] not in COMMANDS:
        names = ",".join(COMMANDS)
        print(f"usage: python -m packager.consumer.probe {{{names}}} < request.json", file=sys.stderr)
        return 2
    request = json.load(sys.stdin)
    try:
        answer = COMMANDS[argv[0]](request)
    except Exception as exc:
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    json.dump(answer, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
