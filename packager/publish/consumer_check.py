"""``pack verify-remote`` through the real consumer: ``AutoModel.from_pretrained("ARCH/VARIANT")`` with the
consumer's weights endpoint pointed at the registry, run on the recorded sample inputs and compared with
the recorded outputs, next to weightpack's own per-package checks.

``--consumer auto`` (the default) runs it when inference-models is reachable (installed here, or
``.venv-consumer``; see :mod:`backends.consumer.bridge`): a model whose (architecture, task, backend) the
consumer ships a class for must load and match; one it has no class for is reported, not failed (such a
package serves weightpack's own classes only). ``require`` fails in both cases and when the consumer is
missing; ``skip`` does not ask it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

MODES = ("auto", "require", "skip")


def consumer_check(
    mode: str,
    model_id: str,
    url: str,
    api_key: str,
    goldens: Path,
    tolerance: Any,
    args: Any,
    scratch: Path | None = None,
) -> dict[str, Any] | None:
    """The consumer's verdict: ``{"passed", "gating", "details", ...}``, or None when not asked. Its
    download cache is an owned temporary under ``scratch`` (verify-remote's), swept if a run is killed."""
    from backends.consumer import bridge

    if mode == "skip" or (mode == "auto" and not bridge.available()):
        return None
    if not bridge.available():
        return {"passed": False, "gating": True, "details": [f"consumer: {bridge.HOW_TO_INSTALL}"]}
    from bench.parity import compare_outputs
    from packager import atomic
    from packager.goldens import load_arrays

    parent = scratch or Path(tempfile.gettempdir())
    with atomic.temp_dir(parent, "consumer") as tmp:
        request = {
            "model_id": model_id,
            "api_host": url,
            "api_key": api_key,
            "inputs": str(goldens),
            "outputs": str(Path(tmp) / "outputs.npz"),
            "cache_dir": str(Path(tmp) / "cache"),
            "device": args.device,
            "backend": args.backend,
            "package_id": args.package_id,
        }
        try:
            answer = bridge.ask("auto-load", request)
        except RuntimeError as exc:
            return {"passed": False, "gating": True, "details": [f"consumer: AutoModel failed: {exc}"]}
        if not answer.get("registered"):
            details = [f"consumer: {answer['reason']}"]
            return {"passed": False, "gating": mode == "require", "details": details}
        outputs = load_arrays(Path(request["outputs"]), "output")
    parity = compare_outputs(load_arrays(goldens, "output"), outputs, tolerance)
    details = [f"consumer: AutoModel loaded {answer['model_class']}"]
    details += [
        f"consumer {p.output}: {'ok' if p.passed else 'MISMATCH'} max_abs={p.max_abs}" for p in parity
    ]
    passed = bool(parity) and all(p.passed for p in parity)
    return {"passed": passed, "gating": True, "details": details, "model_class": answer["model_class"]}
