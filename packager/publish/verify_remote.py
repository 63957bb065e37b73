"""``pack verify-remote ARCH/VARIANT --env staging``: check each registered package as a consumer would.

Resolves the model through the weights endpoint and refuses any package whose file list breaks the rules a
zip is held to, or lacks an md5Hash on a file. Downloads each file (md5-verified, to a temporary name, then
renamed; at most --max-extract-bytes for the whole package, and exactly the size the registry declares),
extracts a zipped package with safe_extract, loads it through its model class (--model-class, else the one
pack recorded for these files, else the backend's default for the task), runs the sample inputs pack
recorded in OUT/goldens/ARCH-VARIANT-reference.npz and compares with the recorded outputs: the check
``pack`` ran on it (its tolerances, the noise floor recorded beside the goldens, task checks, every shape and
a recurrent model's whole sequence), found through the recipe of the model's architecture (./recipes, then
the built-in ones; a recipe file that cannot be read is exit 2, never passed over; without one, the
backend's default tolerances). Where
inference-models is installed, the real consumer (AutoModel.from_pretrained, told each package's id) loads
every package too and its outputs are compared the same way; see the --consumer option.

Where the consumer ships no class for the model at all, each package says "inference-models cannot load
this package" instead of PASSED: a recipe of that architecture that declares so ([consumer] loads = false)
keeps exit 0 (weightpack's own classes serve it); one that does not is a failed check (exit 1), since
production could not load what was about to pass (--consumer skip checks weightpack's classes only).

Exit codes: 0 every package passed (those the recipe declares not for inference-models say so); 1 a check
failed (outputs differ, a download failed or its md5 differs, a package could not be loaded here, the
registry did not answer or lists no matching package, the consumer could not load a package or its outputs
differ, the consumer has no class for a model whose recipe does not declare that); 2 bad input (a
malformed ARCH/VARIANT, no registry URL, no recorded goldens, or a
package refused as hostile data: unsafe file names, too many files or bytes, a file without a well-formed
md5Hash, a size other than the declared one); 3 environment (the service secret is not set, or --consumer
require where inference-models is not installed); 130 interrupted. When packages end differently, the
highest code wins.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.report import CANNOT_LOAD
from packager import atomic, limits
from packager.archive import safe_extract
from packager.commands import verb_parser
from packager.errors import (
    EXIT_BAD_INPUT,
    EXIT_CHECK_FAILED,
    EXIT_OK,
    ArchiveError,
    UsageError,
)
from packager.package_check import PackageCheck, PackageRef, package_check
from packager.recipes import Recipe, default_recipe_dirs, recipe_of_architecture
from packager.settings import RunSettings

from .cli import ENV_REGISTRY_URL, ENVIRONMENTS, registry_url_for
from .consumer_check import MODES, consumer_check, require_consumer
from .download import check_package_files, download_files
from .errors import PublishError
from .http import RetryPolicy
from .registry import RegistryClient, check_registry_url
from .remote_check import check_lines, default_class, recorded_class
from .secret import registry_secret

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
        help="also load each package through the real consumer (inference-models' AutoModel): when it is "
        "installed (auto; a package whose backend it has no class for is reported, not failed, while "
        "another package of the model loads; a model it has no class for at all fails unless its recipe "
        "declares [consumer] loads = false), always (require: exit 3 when it is not installed, exit 1 "
        "when it has no class) or never (skip)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    limits.add_arguments(p)
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    url = _check_arguments(args)
    goldens = _goldens(args)
    settings = RunSettings.of(devices=[args.device], limits=limits.limits_from(args), measure_latency=False)
    require_consumer(args.consumer)  # before anything is contacted or downloaded
    url, secret = registry_secret(url)  # a secret in the URL's user-info is sent as the Bearer token
    client = RegistryClient(url, secret, RetryPolicy.from_env())
    meta = client.weights(args.model_id)
    packages = _select(meta, args)
    recipe = _recipe(meta, args.model_id)
    from packager.cli import default_cache_dir

    # scratch under --out (else the cache), never /tmp: a killed run's leftover is swept by the next one
    base = args.out if args.out else default_cache_dir()
    scratch_root = Path(base) / ".tmp"
    atomic.sweep(scratch_root, recursive=False)  # what killed runs left behind
    with atomic.temp_dir(scratch_root, "verify-remote") as scratch:
        checked = [
            verify_remote_package(client, meta, pkg, goldens, args, scratch, recipe, settings)
            for pkg in packages
        ]
        results, checks = [r for r, _ in checked], [c for _, c in checked]
        api_key = client.secret.reveal()
        consumer_verdicts(args, url, api_key, packages, results, checks, recipe, goldens, scratch)
    passed = all(r["passed"] for r in results)
    recorded, note = _record(args, goldens, url, results)
    _print(args, results, passed, recorded, note)
    if any(r.get("refused") for r in results):
        return EXIT_BAD_INPUT  # hostile data: bad input, not a failed check
    return EXIT_OK if passed else EXIT_CHECK_FAILED


def _check_arguments(args: argparse.Namespace) -> str:
    """The registry URL, after refusing a malformed model id or a missing URL (exit 2)."""
    if not MODEL_ID.fullmatch(args.model_id):
        raise UsageError(f"{args.model_id!r}: expected ARCH/VARIANT, e.g. all-minilm/l6")
    url = registry_url_for(args.env, args.registry_url)
    if not url:
        raise UsageError(
            f"no registry URL for {args.env}: pass --registry-url or set "
            f"{ENV_REGISTRY_URL.format(args.env.upper())}"
        )
    check_registry_url(
        url, "--registry-url" if args.registry_url else ENV_REGISTRY_URL.format(args.env.upper())
    )
    return url


def _select(meta: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    """The listed packages ``--backend`` and ``--package-id`` ask for; PublishError when none is left."""
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
    return packages


def consumer_verdicts(
    args: argparse.Namespace,
    url: str,
    api_key: str,
    packages: list[dict[str, Any]],
    results: list[dict[str, Any]],
    checks: list[PackageCheck],
    recipe: Recipe | None,
    goldens: Path,
    scratch: Path,
) -> None:
    """Each package through the consumer, told its id (``AutoModel.from_pretrained(model_package_id=)``)
    and judged by that package's check (its tolerance, its task check); the verdict goes to that package
    only. Left to itself AutoModel picks one package by its ranking (falling back to the next when one
    fails to load) and does not say which, so its one verdict could not be attributed to any package.
    Nothing is asked when a package was refused: hostile data is never handed to the consumer, which reads
    the whole listing. ``recipe``: the one of the model's architecture, whose ``[consumer]`` says whether
    the consumer is expected to load it."""
    if any(r.get("refused") for r in results):
        return
    declared = recipe.consumer if recipe is not None else None
    model_wide: dict[str, Any] | None = None  # "no class for any package of this model": asked once
    for pkg, result, check in zip(packages, results, checks, strict=True):
        verdict = model_wide
        if verdict is None:
            request = check.request(check.cases[0])  # judged as the package was, by its own check
            package_id = str(pkg.get("packageId"))
            verdict = consumer_check(
                args.consumer, args.model_id, package_id, url, api_key, goldens, request, args, scratch
            )
        if verdict is None:  # not asked (--consumer skip, or no consumer here)
            break
        if verdict.get("model_wide"):
            model_wide = verdict
            verdict = _cannot_load(verdict, args.consumer, declared, recipe)
            result["consumer_loads"] = False
        result["consumer"] = {k: v for k, v in verdict.items() if k not in ("details", "model_wide")}
        result["details"] += verdict["details"]
        result["passed"] = result["passed"] and (verdict["passed"] or not verdict["gating"])
    if declared is not None and declared.refused:
        for result in results:
            if result.get("consumer_loads") is None:  # not asked: the recipe's word
                result["consumer_loads"] = False
                result["details"].append(f"{CANNOT_LOAD}: {declared.reason} (declared in {recipe.path.name})")


def _cannot_load(verdict: dict[str, Any], mode: str, declared: Any, recipe: Any) -> dict[str, Any]:
    """The consumer ships no class for any package of the model. Declared by the package's recipe
    (``[consumer] loads = false``): reported, not failed (unless ``--consumer require``). Not declared:
    a failed check, since production cannot load what was about to be passed as good."""
    if declared is not None and declared.refused:
        where = f"as its recipe {recipe.path.name} declares"
        return {
            **verdict,
            "gating": mode == "require",
            "details": [*verdict["details"], f"consumer: {where}"],
        }
    hint = (
        "no recipe of this architecture declares that ([consumer] loads = false, with a reason); "
        "pass --consumer skip to check weightpack's own classes only"
    )
    return {**verdict, "gating": True, "details": [*verdict["details"], f"consumer: FAILED: {hint}"]}


def package_verdict(result: dict[str, Any]) -> str:
    """``PASSED``, ``FAILED``, or ``checks passed; inference-models cannot load this package``."""
    if not result["passed"]:
        return "FAILED"
    return f"checks passed; {CANNOT_LOAD}" if result.get("consumer_loads") is False else "PASSED"


def _print(
    args: argparse.Namespace, results: list[dict[str, Any]], passed: bool, recorded: Path | None, note: str
) -> None:
    if args.json:
        print(
            json.dumps(
                {
                    "model_id": args.model_id,
                    "env": args.env,
                    "passed": passed,
                    "packages": [{**r, "verdict": package_verdict(r)} for r in results],
                    "recorded_in": str(recorded) if recorded else None,
                },
                indent=2,
            )
        )
        print(note, file=sys.stderr)
        return
    for r in results:
        print(f"{args.model_id} package {r['package_id']} [{r['backend']}]: {package_verdict(r)}")
        for line in r["details"]:
            print(f"  {line}")
    print(note)


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
    recipe: Recipe | None,
    settings: RunSettings,
) -> tuple[dict[str, Any], PackageCheck]:
    """Download one registered package (md5-verified), then check it against the goldens with its
    :class:`~packager.package_check.PackageCheck`, the check ``pack`` ran; returns the JSON-able outcome
    and the check (the consumer's outputs are judged by it too)."""
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
    label = f"package {pkg.get('packageId')}"
    quantization = str(manifest.get("quantization", "fp32"))
    ref = PackageRef(Path(), args.model_id.split("/")[1], backend, "", quantization)
    check = package_check(recipe, ref, settings.devices[0], settings, goldens)
    if not check.cases[0].inputs or not check.cases[0].reference:
        raise UsageError(f"{goldens}: holds no input/* or output/* arrays")
    try:  # the same validator as a zip, then md5Hash and declared sizes: refused as hostile data (exit 2)
        check_package_files(label, files, settings.limits)
    except ArchiveError as exc:
        result["refused"] = True
        result["details"].append(f"refused: {exc}")
        return result, check
    with atomic.temp_dir(scratch, "package") as tmp:
        package_dir = tmp / "package"
        try:
            download_files(client, files, package_dir, settings.limits.max_total_bytes, label)
            if len(files) == 1 and files[0]["fileHandle"].endswith(".zip"):  # a zipped package
                zip_path = package_dir / files[0]["fileHandle"]
                extracted = tmp / "extracted"
                safe_extract(zip_path, extracted, limits=settings.limits)
                package_dir = extracted
        except ArchiveError as exc:
            result["refused"] = True
            result["details"].append(f"refused: {exc}")
            return result, check
        except PublishError as exc:
            result["details"].append(f"download failed: {exc}")
            return result, check
        result["details"].append(f"downloaded {len(files)} files, md5 verified")
        try:
            model_class = (
                args.model_class
                or recorded_class(goldens, result["files"])
                or default_class(backend, meta.get("taskType", ""))
            )
            result["model_class"] = model_class
            check = replace(check, package=replace(ref, path=package_dir, model_class=model_class))
            opened = check.open(package_dir)  # a folder: used in place
            checked = [(case.label, check.check(opened, case)) for case in check.checked_cases()]
            del opened
        except UsageError:
            raise  # the goldens themselves are unusable: every package would fail the same way
        except Exception as exc:  # this package cannot be loaded or run here: it fails, the others go on
            result["details"].append(f"FAILED to load or run: {type(exc).__name__}: {exc}")
            return result, check
    shape = lambda at: {"input_shape": at} if at else {}  # noqa: E731
    result["parity"] = [{**p.to_dict(), **shape(at)} for at, c in checked for p in c.parity]
    tasks = [(at, t) for at, c in checked for t in c.task_checks]
    result["task_checks"] = [{**dataclasses.asdict(t), **shape(at)} for at, t in tasks]
    result["details"] += [line for at, c in checked for line in check_lines(c, f"{at}: " if at else "")]
    result["passed"] = bool(checked) and all(c.passed for _, c in checked)
    return result, check


def _recipe(meta: dict[str, Any], model_id: str) -> Recipe | None:
    """The recipe of the model's architecture that has its variant (./recipes, then the built-in ones);
    ``None``: the backends' default tolerances apply, and the consumer's refusal is not declared."""
    architecture, variant = str(meta.get("modelArchitecture", "")), model_id.split("/")[1]
    return recipe_of_architecture(architecture, default_recipe_dirs(), variant)
