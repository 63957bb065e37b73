"""``pack verify-remote`` through the real consumer: ``AutoModel.from_pretrained("ARCH/VARIANT",
model_package_id=ID)`` with the consumer's weights endpoint pointed at the registry, run on the recorded
sample inputs and compared with the recorded outputs, next to weightpack's own check of that same package.

One call per package, each told the package's id: without it AutoModel would pick one package itself (TRT >
ONNX > torch > HF > TorchScript, then quantization; falling back to the next when one fails to load) and
not say which, so its verdict could belong to any of them. With the id, the verdict is that package's own.

``--consumer auto`` (the default) runs it when inference-models is reachable (installed here, or
``.venv-consumer``; see :mod:`packager.consumer.bridge`): a package whose (architecture, task, backend) the
consumer ships a class for must load and match; one it has no class for is reported, not failed (such a
package serves weightpack's own classes only). ``require`` fails in both cases, and refuses to start when
the consumer is missing (exit 3, with how to install it); ``skip`` does not ask it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backends.errors import ConsumerUnavailableError
from bench.report import CANNOT_LOAD

MODES = ("auto", "require", "skip")
# what AutoModel raises, told a package id, when it ships no class for that package's backend
NO_CLASS_ERROR = "ModelImplementationNotFoundError"


def require_consumer(mode: str) -> None:
    """``--consumer require`` where the consumer is not installed: an environment problem (exit 3), said
    before anything is contacted or downloaded, with how to install it."""
    from packager.consumer import bridge

    if mode == "require" and not bridge.available():
        raise ConsumerUnavailableError(
            f"--consumer require: {bridge.HOW_TO_INSTALL} (accepted without it: --consumer auto or skip)"
        )


def consumer_check(
    mode: str,
    model_id: str,
    package_id: str,
    url: str,
    api_key: str,
    goldens: Path,
    request: Any,
    args: Any,
    scratch: Path,
) -> dict[str, Any] | None:
    """The consumer's verdict on package ``package_id``: ``{"passed", "gating", "details", "package_id",
    ...}`` (``model_wide`` when it holds for every package of the model: the consumer has no class for
    any), or None when not asked. Its download cache is an owned temporary under ``scratch``
    (verify-remote's), swept if a run is killed. ``request``: the :class:`packager.check.CheckRequest`
    the package's own check used (the recipe's tolerances and task check), applied to what AutoModel
    returned."""
    from packager.consumer import bridge

    if mode == "skip" or (mode == "auto" and not bridge.available()):
        return None
    require_consumer(mode)
    from packager import atomic
    from packager.goldens import load_arrays

    label = f"consumer (package {package_id})"
    with atomic.temp_dir(scratch, "consumer") as tmp:
        ask = {
            "model_id": model_id,
            "api_host": url,
            "api_key": api_key,
            "inputs": str(goldens),
            "outputs": str(Path(tmp) / "outputs.npz"),
            "cache_dir": str(Path(tmp) / "cache"),
            "device": args.device,
            "package_id": package_id,  # AutoModel loads exactly this package, or fails
        }
        try:
            answer = bridge.ask("auto-load", ask)
        except RuntimeError as exc:
            return _failed_load(mode, label, package_id, str(exc))
        if not answer.get("registered"):
            details = [f"consumer: {CANNOT_LOAD}: {answer['reason']}"]
            return {"passed": False, "gating": mode == "require", "details": details, "model_wide": True}
        outputs = load_arrays(Path(ask["outputs"]), "output")
    return _compare(request, outputs, package_id, answer)


def _failed_load(mode: str, label: str, package_id: str, error: str) -> dict[str, Any]:
    """A load that failed: a failed check, unless the consumer merely ships no class for this package's
    backend (another package of the model has one), which ``auto`` reports without failing."""
    if NO_CLASS_ERROR in error:
        return {
            "passed": False,
            "gating": mode == "require",
            "package_id": package_id,
            "details": [f"{label}: inference-models ships no class for this package's backend: {error}"],
        }
    return {
        "passed": False,
        "gating": True,
        "package_id": package_id,
        "details": [f"{label}: AutoModel failed: {error}"],
    }


def _compare(
    request: Any, outputs: dict[str, Any], package_id: str, answer: dict[str, Any]
) -> dict[str, Any]:
    """The consumer's outputs on the recorded inputs against the recorded outputs, judged as the package's
    own check was (its tolerances, its task check)."""
    from packager.check import judge

    from .remote_check import check_lines

    checked = judge(request, outputs)
    details = [f"consumer: AutoModel loaded {answer['model_class']} (package {package_id})"]
    details += check_lines(checked, prefix="consumer ")
    return {
        "passed": checked.passed,
        "gating": True,
        "package_id": package_id,
        "details": details,
        "model_class": answer["model_class"],
    }
