"""``pack verify-remote ARCH/VARIANT --env staging``: check a registered package as a consumer would.

Resolve the model through the weights endpoint, require an ``md5Hash`` on every file, download each file
(md5-verified, to a temporary name, then renamed), extract a zip package with ``safe_extract``, load it
through the model class (``--model-class``, else the backend's default for the task), run the sample
inputs recorded by ``pack`` (``out/goldens/<arch>-<variant>-reference.npz``: ``input/*`` and
``output/*``) and compare with the recorded outputs. Where inference-models is installed, the real
consumer resolves and loads the model too (``--consumer``, :mod:`.consumer_check`). Exit 0 when every
package matches, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import requests

from packager import atomic, limits
from packager.archive import CHUNK_SIZE, check_file_list, safe_extract
from packager.commands import verb_parser
from packager.errors import (
    EXIT_BAD_INPUT,
    EXIT_CHECK_FAILED,
    EXIT_OK,
    ArchiveError,
    UnsafeArchiveError,
    UsageError,
)
from packager.hashing import new_hash

from .cli import ENV_REGISTRY_URL, ENVIRONMENTS, registry_url_for
from .consumer_check import MODES, consumer_check
from .errors import PublishError
from .http import RetryPolicy
from .registry import RegistryClient
from .secret import secret_from_env

SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
MODEL_ID = re.compile(r"[a-z0-9][a-z0-9_-]*/[A-Za-z0-9._-]+")


def build_parser() -> argparse.ArgumentParser:
    p = verb_parser("verify-remote", __doc__)
    p.add_argument("model_id", help="ARCH/VARIANT, e.g. all-minilm/l6")
    p.add_argument("--env", choices=ENVIRONMENTS, default="staging")
    p.add_argument("--registry-url", help="models service host (default: $WEIGHTPACK_REGISTRY_URL_<ENV>)")
    p.add_argument(
        "--goldens", type=Path, help="the reference .npz (default: OUT/goldens/ARCH-VARIANT-reference.npz)"
    )
    p.add_argument("--out", type=Path, help="the pack output folder holding goldens/ (default: ./out/*)")
    p.add_argument("--backend", help="only packages with this backendType (e.g. onnx)")
    p.add_argument("--package-id", help="only this package")
    p.add_argument("--model-class", help="module:Class to load with (default: the backend's for the task)")
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--consumer",
        choices=MODES,
        default="auto",
        help="also load through the real consumer (inference-models' AutoModel) when installed (auto), "
        "always (require) or never (skip); see packager/publish/consumer_check.py",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    limits.add_arguments(p)
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if not MODEL_ID.fullmatch(args.model_id):
        raise UsageError(f"{args.model_id!r}: expected ARCH/VARIANT, e.g. all-minilm/l6")
    url = registry_url_for(args.env, args.registry_url)
    if not url:
        raise UsageError(
            f"no registry URL for {args.env}: pass --registry-url or set "
            f"{ENV_REGISTRY_URL.format(args.env.upper())}"
        )
    goldens = _goldens(args)
    client = RegistryClient(url, secret_from_env(), RetryPolicy.from_env())
    meta = client.weights(args.model_id)
    from backends.registry import backend_names

    packages = [
        p
        for p in meta.get("modelPackages", [])
        if (
            not args.backend
            or args.backend in backend_names(str(p.get("packageManifest", {}).get("backendType")))
        )
        and (not args.package_id or str(p.get("packageId")) == args.package_id)
    ]
    if not packages:
        raise PublishError(f"{args.model_id}: the weights endpoint lists no matching package in {args.env}")
    from packager.cli import default_cache_dir

    # scratch under --out (else the cache), never /tmp: a killed run's leftover is swept by the next one
    base = args.out if args.out else default_cache_dir()
    scratch_root = Path(base) / ".tmp"
    atomic.sweep(scratch_root, recursive=False)  # what killed runs left behind
    with atomic.temp_dir(scratch_root, "verify-remote") as scratch:
        results = [verify_remote_package(client, meta, pkg, goldens, args, scratch) for pkg in packages]
        manifest = packages[0].get("packageManifest") or {}
        backend = str(manifest.get("backendType"))
        tolerance = _tolerance(meta.get("modelArchitecture", ""), backend, manifest)
        refused = any(r.get("refused") for r in results)  # hostile data is never handed to the consumer
        consumer = (
            None
            if refused
            else consumer_check(
                args.consumer, args.model_id, url, client.secret.reveal(), goldens, tolerance, args, scratch
            )
        )
    for r in results if consumer else []:
        r["consumer"] = {k: v for k, v in consumer.items() if k != "details"}
        r["details"] += consumer["details"]
        r["passed"] = r["passed"] and (consumer["passed"] or not consumer["gating"])
    passed = all(r["passed"] for r in results)
    recorded, note = _record(args, goldens, url, results)
    if args.json:
        print(
            json.dumps(
                {
                    "model_id": args.model_id,
                    "env": args.env,
                    "passed": passed,
                    "packages": results,
                    "recorded_in": str(recorded) if recorded else None,
                },
                indent=2,
            )
        )
        print(note, file=sys.stderr)
    else:
        for r in results:
            verdict = "PASSED" if r["passed"] else "FAILED"
            print(f"{args.model_id} package {r['package_id']} [{r['backend']}]: {verdict}")
            for line in r["details"]:
                print(f"  {line}")
        print(note)
    if any(r.get("refused") for r in results):
        return EXIT_BAD_INPUT  # hostile data: bad input, not a failed check
    return EXIT_OK if passed else EXIT_CHECK_FAILED


def _record(
    args: argparse.Namespace, goldens: Path, url: str, results: list[dict[str, Any]]
) -> tuple[Path | None, str]:
    """Record the outcome in the pack output folder (``--out``, else the one holding the goldens used)."""
    from .staging import record

    out_dir = args.out
    if (
        out_dir is None
        and goldens.parent.name == "goldens"
        and (goldens.parent.parent / "report.json").is_file()
    ):
        out_dir = goldens.parent.parent
    if out_dir is None:
        return None, (
            f"note: {goldens} is not inside a pack output folder: the verification is not recorded "
            "(pass --out DIR to record it for --env production)"
        )
    path = record(out_dir, args.env, args.model_id, results, url)
    verified = sum(1 for r in results if r["passed"])
    return path, f"recorded {verified}/{len(results)} verified packages for {args.env} in {path}"


def _goldens(args: argparse.Namespace) -> Path:
    arch, variant = args.model_id.split("/")
    name = f"{arch}-{variant}-reference.npz"
    if args.goldens:
        candidates = [args.goldens]
    elif args.out:
        candidates = [args.out / "goldens" / name]
    else:
        candidates = sorted(Path("out").glob(f"*/goldens/{name}"))
    for c in candidates:
        if c.is_file():
            return c
    raise UsageError(f"no recorded sample inputs/outputs ({name}); pass --goldens PATH or --out DIR")


def verify_remote_package(
    client: RegistryClient,
    meta: dict[str, Any],
    pkg: dict[str, Any],
    goldens: Path,
    args: argparse.Namespace,
    scratch: Path,
) -> dict[str, Any]:
    """Download one registered package (md5-verified), then check it against the goldens with
    :func:`packager.check.check_package`, the check ``pack`` runs; returns the JSON-able outcome."""
    manifest = pkg.get("packageManifest") or {}
    backend = str(manifest.get("backendType"))
    result: dict[str, Any] = {
        "package_id": pkg.get("packageId"),
        "backend": backend,
        "passed": False,
        "details": [],
    }
    files = pkg.get("packageFiles") or []
    result["files"] = {str(f.get("fileHandle")): f.get("md5Hash") for f in files}
    package_limits = limits.limits_from(args)
    try:  # the same validator as a zip: names, links, reserved names, file-and-folder clashes, limits
        check_file_list(
            f"package {pkg.get('packageId')}",
            [(str(f.get("fileHandle")), _size(f)) for f in files],
            package_limits,
        )
    except ArchiveError as exc:
        result["refused"] = True
        result["details"].append(f"refused: {exc}")
        return result
    unhashed = [f.get("fileHandle") for f in files if not f.get("md5Hash")]
    if unhashed:
        result["details"].append(f"refused: files without md5Hash: {unhashed}")
        return result
    with atomic.temp_dir(scratch, "package") as tmp:
        package_dir = tmp / "package"
        try:
            for f in files:
                download(client, f, package_dir, package_limits.max_total_bytes)
            if len(files) == 1 and files[0]["fileHandle"].endswith(".zip"):  # a zipped package
                zip_path = package_dir / files[0]["fileHandle"]
                extracted = tmp / "extracted"
                safe_extract(zip_path, extracted, limits=package_limits)
                package_dir = extracted
        except ArchiveError as exc:
            result["refused"] = True
            result["details"].append(f"refused: {exc}")
            return result
        except PublishError as exc:
            result["details"].append(f"download failed: {exc}")
            return result
        result["details"].append(f"downloaded {len(files)} files, md5 verified")
        model_class = (
            args.model_class
            or _recorded_class(goldens, result["files"])
            or _default_class(backend, meta.get("taskType", ""))
        )
        result["model_class"] = model_class
        parity = check_goldens(package_dir, model_class, backend, manifest, meta, goldens, args.device)
    result["parity"] = [p.to_dict() for p in parity]
    for p in parity:
        result["details"].append(
            f"{p.output}: {'ok' if p.passed else 'MISMATCH'} max_abs={p.max_abs} "
            f"(atol={p.atol}, rtol={p.rtol})" + ("" if p.passed else f" {p.reason}")
        )
    result["passed"] = bool(parity) and all(p.passed for p in parity)
    return result


def _size(record: dict[str, Any]) -> int | None:
    size = record.get("size")
    return size if isinstance(size, int) and not isinstance(size, bool) else None


def download(
    client: RegistryClient, record: dict[str, Any], dest: Path, max_bytes: int | None = None
) -> Path:
    """Download one package file under ``dest`` (temp name, md5 check, then rename); at most
    ``max_bytes``, so a registry cannot fill the disk either."""
    handle = str(record.get("fileHandle", ""))
    if not handle or not all(SEGMENT.fullmatch(s) and s not in (".", "..") for s in handle.split("/")):
        raise PublishError(f"file handle {handle!r} is not a safe relative path")
    final = dest / handle
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.partial")
    for attempt in range(1, client.policy.attempts + 1):
        digest = new_hash("md5")
        try:
            with requests.get(record["downloadUrl"], stream=True, timeout=client.policy.timeout_s) as r:
                if r.status_code != 200:
                    raise PublishError(f"download {handle}: HTTP {r.status_code}")
                received = 0
                with open(tmp, "wb") as out:
                    for chunk in r.iter_content(CHUNK_SIZE):
                        received += len(chunk)
                        if max_bytes is not None and received > max_bytes:
                            raise UnsafeArchiveError(
                                f"{handle}: larger than {max_bytes} bytes (accepted: --max-extract-bytes)"
                            )
                        digest.update(chunk)
                        out.write(chunk)
        except (requests.RequestException, PublishError) as exc:
            tmp.unlink(missing_ok=True)
            if attempt == client.policy.attempts:
                raise PublishError(f"download {handle}: {exc}") from None
            continue
        if digest.hexdigest() != record["md5Hash"]:
            tmp.unlink(missing_ok=True)
            raise PublishError(
                f"{handle}: md5 {digest.hexdigest()} differs from the registry's {record['md5Hash']}"
            )
        tmp.replace(final)
        return final
    raise PublishError(f"download {handle}: no attempts made")


def _recorded_class(goldens: Path, files: dict[str, Any]) -> str | None:
    """The model class ``pack`` verified this package with (a consumer's class, for one in the consumer's
    layout), from the manifest beside the goldens whose files have these md5s."""
    for path in sorted(goldens.parent.parent.glob("*.manifest.json")):
        try:
            data = json.loads(path.read_text("utf-8"))
            if {f["path"]: f["md5"] for f in data["files"]} == files:
                return str(data["model_class"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def _default_class(backend: str, task: str) -> str:
    from backends.registry import find_backend

    spec = find_backend(backend)
    found = spec.default_model_class(task) if spec else None
    if found:
        return found
    raise PublishError(f"no model class known for backendType {backend!r}; pass --model-class module:Class")


def check_goldens(
    package_dir: Path,
    model_class: str,
    backend: str,
    manifest: dict[str, Any],
    meta: dict[str, Any],
    goldens: Path,
    device: str,
) -> list:
    """The package's outputs on the recorded inputs against the recorded reference outputs."""
    from packager.check import CheckRequest, check_package
    from packager.goldens import load_arrays

    inputs, expected = load_arrays(goldens, "input"), load_arrays(goldens, "output")
    if not inputs or not expected:
        raise UsageError(f"{goldens}: holds no input/* or output/* arrays")
    tolerance = _tolerance(meta.get("modelArchitecture", ""), backend, manifest)
    request = CheckRequest(model_class, device, inputs, expected, tolerance)
    return check_package(package_dir, request).parity


def _tolerance(architecture: str, backend: str, manifest: dict[str, Any]):
    """The recipe's tolerances when a recipe of this architecture is found, else the defaults."""
    from backends.registry import find_backend
    from bench.parity import default_tolerance
    from packager.recipes import default_recipe_dirs, find_recipes, load_recipe
    from packager.verify import tolerances_for

    spec = find_backend(backend)
    name = spec.name if spec else backend
    for directory in default_recipe_dirs():
        for path in find_recipes(directory).values():
            try:
                recipe = load_recipe(path)
            except Exception:
                continue
            if recipe.architecture == architecture and name in recipe.backends:
                return tolerances_for(recipe, name)
    quantization = str(manifest.get("quantization", "fp32"))
    return lambda output, dtype: default_tolerance(dtype, backend, quantization)
