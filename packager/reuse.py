"""Re-runs finish, they don't redo: finished checks and reference outputs are kept and reused.

Two records, each keyed by a hash of everything its result depends on, so a changed input recomputes it:

* **Verification** of one package on one device (``OUT/.verified/STEM-DEVICE.json``): the report entries
  its check produced (cold start, parity, task checks, latency, goldens), kept when every check passed.
  Key: the zip's sha256 and model class, the checks (the variant's parity, bench and inputs settings, the
  backend's recipe options, latency on/off), the reference outputs' key, and the environment fingerprint
  (:func:`environment_fingerprint`, the one of :mod:`bench.fingerprint`). A re-run with the same key copies
  those entries into its report, marked ``reused_from`` with the time they were measured, instead of
  loading and timing the package again.
* **Reference outputs** of a variant (``OUT/goldens/ARCH-VARIANT-reference.json`` beside the ``.npz``): the
  golden inputs/outputs are read back instead of loading the upstream model, while the upstream files, the
  inputs, the reference class, the source of the code that computes them (the reference class's module
  and the recipe's own modules) and the libraries that compute it are unchanged.

Both are sealed (:mod:`packager.seal`): the record is believed only while the cache's key vouches for its
content and the goldens it names; one edited, copied from another cache or whose golden changed is not
reused, and the run says why (progress, ``report.meta["not_reused"]``). ``pack --reverify`` ignores both
records (and rewrites them).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

from backends.base import Tensors
from bench import environment
from bench.fingerprint import env_key, runtime_libraries
from packager import __version__, atomic
from packager.goldens import load_arrays
from packager.recipes import Recipe
from packager.seal import Seal

RECORD_SCHEMA = "weightpack.verification/v1"
REFERENCE_SCHEMA = "weightpack.reference-outputs/v1"
VERIFIED_DIR = ".verified"
# Report lists a package's check appends to (per variant, backend, device).
ENTRY_LISTS = ("cold_start", "parity", "task_checks", "latency", "goldens")


def _hash(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=_plain).encode()).hexdigest()


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return repr(value)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def run_seal(cache_dir: Path, report: Any, ui: Any) -> Seal:
    """The run's seal (the key of ``--cache-dir``): a record it does not believe is said once on the
    progress and listed in ``report.meta["not_reused"]``."""

    def notice(message: str) -> None:
        report.meta.setdefault("not_reused", []).append(message)
        ui.warn(message)

    return Seal.of_cache(cache_dir, notice)


def environment_fingerprint(env: dict[str, Any]) -> str:
    """The environment's key (:func:`bench.fingerprint.env_key`, the one fingerprint ``pack compare`` and
    the nightly file results under): what changes measurements, not what changes by the minute."""
    return env_key(env)


# ------------------------------------------------------------------------------------ reference outputs


def reference_key(recipe: Recipe, variant: str, provenance: dict[str, Any], spec: Any) -> str:
    """Everything the reference outputs depend on: upstream files (hashes), inputs, reference class and
    its arguments, the source of the code that computes them (:func:`code_hashes`), the libraries
    computing them, the noise-floor setting."""
    return _hash(
        {
            "files": provenance.get("files"),
            "inputs": recipe.inputs_for(variant),
            "reference": [spec.model_class, spec.kind, spec.kwargs],
            "code": code_hashes(recipe, spec),
            "noise_floor": recipe.parity.noise_floor,
            "libraries": environment.library_versions(runtime_libraries()),
            "weightpack": __version__,
        }
    )


MODULE_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
MAX_SOURCE_BYTES = 4 * 2**20  # a module beside the recipe larger than this is keyed by size and mtime


def code_hashes(recipe: Recipe, spec: Any) -> dict[str, str]:
    """sha256 of the source of every module that computes the reference outputs: the reference class's
    module, the modules the recipe names (``reference_class``, ``[model] factory``, factory arguments),
    and every other ``.py`` file in the folder of any of them that sits beside the recipe (the user's
    own code, which the named modules may import). Editing any of them makes the outputs stale."""
    refs = [spec.model_class, recipe.parity.reference_class, recipe.model.factory]
    refs += [v for v in (spec.kwargs or {}).values() if isinstance(v, str) and MODULE_REF.match(v)]
    files: dict[str, Path | None] = {}
    for ref in filter(None, refs):
        module = ref.partition(":")[0]
        files[module] = _module_file(module)
    recipe_dir = Path(recipe.path).resolve().parent
    for path in [p for p in files.values() if p is not None and p.parent == recipe_dir]:
        for neighbour in sorted(path.parent.glob("*.py")):
            files.setdefault(f"{recipe_dir.name}/{neighbour.name}", neighbour)
    return {name: _source_hash(path) for name, path in sorted(files.items())}


def _module_file(module: str) -> Path | None:
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    origin = getattr(found, "origin", None)
    return Path(origin).resolve() if origin and origin.endswith(".py") else None


def _source_hash(path: Path | None) -> str:
    if path is None:
        return "not found"
    try:
        stat = path.stat()
        if stat.st_size > MAX_SOURCE_BYTES:
            return f"size {stat.st_size} mtime {stat.st_mtime_ns}"
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"


def _reference_sidecar(golden: Path) -> Path:
    return golden.with_suffix(".json")


def load_reference(golden: Path, key: str, seal: Seal) -> tuple[Tensors, Tensors, dict[str, Any]] | None:
    """``(inputs, outputs, record)`` saved with ``key`` beside ``golden``, or None when absent, stale,
    unreadable or its seal does not hold (then the reference runs again)."""
    sidecar = _reference_sidecar(golden)
    try:
        record = json.loads(sidecar.read_text("utf-8"))
        if (
            not isinstance(record, dict)
            or record.get("schema") != REFERENCE_SCHEMA
            or record.get("key") != key
        ):
            return None
        what, then = f"{golden.parent.name}/{sidecar.name}", "the reference outputs are computed again"
        if not seal.holds(record, golden.parent, what, then):
            return None
        inputs, outputs = load_arrays(golden, "input"), load_arrays(golden, "output")
    except (OSError, ValueError, KeyError, RecursionError):
        return None
    if not outputs:
        return None
    return inputs, outputs, record


def recorded_noise_floor(golden: Path) -> dict[str, Any] | None:
    """The ``noise_floor`` entry measured with the reference outputs in ``golden`` (``None``: none was, or
    no record is there, as for a golden copied elsewhere)."""
    try:
        record = json.loads(_reference_sidecar(golden).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    floor = record.get("noise_floor") if isinstance(record, dict) else None
    return floor if isinstance(floor, dict) else None


def save_reference(
    golden: Path, key: str, seal: Seal, *, casts: list, learned: dict, noise_floor: Any
) -> None:
    """Remember which key the golden at ``golden`` was computed for, with what the run learnt; sealed
    over the golden's bytes."""
    record = {
        "schema": REFERENCE_SCHEMA,
        "key": key,
        "created_at": _now(),
        "input_casts": casts,
        "learned_kwargs": learned,
        "noise_floor": noise_floor,
    }
    atomic.write_json(_reference_sidecar(golden), seal.close(record, golden.parent, [golden.name]))


# ------------------------------------------------------------------------------------ verification


def verification_key(
    recipe: Recipe,
    build: Any,
    device: str,
    measure_latency: bool,
    reference: str,
    env_fingerprint: str,
) -> str:
    """Everything a package's check depends on; the same key gives the same verdict."""
    return _hash(
        {
            "zip_sha256": build.zip_result.sha256,
            "model_class": build.model_class,
            "device": device,
            "measure_latency": measure_latency,
            "parity": recipe.parity,
            "bench": recipe.bench,
            "inputs": recipe.inputs_for(build.variant),
            "backend_options": recipe.backends[build.backend],
            "reference": reference,
            "environment": env_fingerprint,
            "weightpack": __version__,
        }
    )


def record_path(out_dir: Path, build: Any, device: str) -> Path:
    stem = build.zip_result.zip_path.name.removesuffix(".zip")
    return out_dir / VERIFIED_DIR / f"{stem}-{device.replace(':', '')}.json"


def _mine(entry: dict[str, Any], build: Any, device: str) -> bool:
    return (entry.get("variant"), entry.get("backend"), entry.get("device")) == (
        build.variant,
        build.backend,
        device,
    )


def entries_of(report: Any, build: Any, device: str) -> dict[str, list[dict[str, Any]]]:
    """The report entries of one package on one device (what its check produced)."""
    return {name: [e for e in getattr(report, name) if _mine(e, build, device)] for name in ENTRY_LISTS}


def checks_passed(report: Any, build: Any, device: str) -> bool:
    """Something was checked and everything passed: only such a verification is kept for reuse."""
    entries = entries_of(report, build, device)
    package = (build.variant, build.backend)
    failed = [f for f in report.failures if (f.get("variant"), f.get("backend")) == package]
    return (
        bool(entries["parity"])
        and not failed
        and all(p["passed"] for p in entries["parity"])
        and all(c["passed"] for c in entries["task_checks"])
    )


def save_verification(path: Path, key: str, report: Any, build: Any, device: str, seal: Seal) -> None:
    """Keep a passed check at ``path`` (``OUT/.verified/``), sealed over the goldens it vouches for: the
    package's outputs it names and the reference outputs they were compared with."""
    entries = entries_of(report, build, device)
    reference = (report.references.get(build.variant) or {}).get("golden")
    files = [g["path"] for g in entries["goldens"]] + ([reference] if reference else [])
    record = {
        "schema": RECORD_SCHEMA,
        "key": key,
        "verified_at": _now(),
        "zip": build.zip_result.zip_path.name,
        "zip_sha256": build.zip_result.sha256,
        "device": device,
        "entries": entries,
    }
    atomic.write_json(path, seal.close(record, path.parent.parent, files))


def load_verification(
    path: Path, key: str, out_dir: Path, seal: Seal, zip_sha256: str | None = None
) -> dict[str, Any] | None:
    """The record at ``path`` when it was made with ``key`` (for the zip of ``zip_sha256``, when given),
    names golden outputs and its seal holds (see :mod:`packager.seal`: it says why once when not)."""
    try:
        record = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(record, dict) or record.get("schema") != RECORD_SCHEMA or record.get("key") != key:
        return None
    if zip_sha256 is not None and record.get("zip_sha256") != zip_sha256:
        return None
    if not seal.holds(record, out_dir, f"{VERIFIED_DIR}/{path.name}", "the package is checked again"):
        return None
    goldens = record.get("entries", {}).get("goldens") or []
    if not goldens or not all((out_dir / g["path"]).is_file() for g in goldens):
        return None
    return record


def replay(record: dict[str, Any], report: Any, out_dir: Path) -> Tensors:
    """Copy a kept verification into ``report`` (each entry marked ``reused_from``); returns the package's
    recorded outputs on the parity inputs (for the cross-device comparison)."""
    when = record["verified_at"]
    for name in ENTRY_LISTS:
        getattr(report, name).extend({**e, "reused_from": when} for e in record["entries"].get(name, []))
    return load_arrays(out_dir / record["entries"]["goldens"][0]["path"], "output")
