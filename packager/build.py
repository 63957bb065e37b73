"""Export + zip of one (variant, backend) package, skipped when an identical build already exists.

The manifest records an ``input_key`` hashed from the upstream files, the backend's options, the sample
inputs and the tool versions; a zip and manifest with the same key that still match each other are reused,
so re-running after an interruption finishes the job instead of redoing it. An export that fails where the
upstream already ships the package's format names that file (:func:`hinted`).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backends.base import ExportRequest, Tensors
from backends.registry import get_backend
from bench import environment
from packager import __version__, archive, atomic, manifest, sources
from packager.consumer.layout import apply_layout
from packager.errors import ArchiveError, WeightpackError
from packager.outdir import OutputFolderError
from packager.recipes import InputsRecipe, Recipe
from packager.reference import content
from packager.sources import FetchedSource
from packager.ui import UI


@dataclass
class PackageBuild:
    """A zip on disk with its manifest, freshly built or reused."""

    variant: str
    backend: str
    zip_result: archive.ZipResult
    manifest_path: Path
    model_class: str
    package_manifest: dict[str, Any]
    reused: bool


def input_key(
    fetched: sources.FetchedSource,
    recipe: Recipe,
    backend: str,
    variant: str | None = None,
    reference_kwargs: dict[str, Any] | None = None,
    device: str = "cpu",
) -> str:
    """Content hash of everything a package is built from: same key, same package.

    The backend's spec names the libraries whose versions count (upgrading onnxruntime rebuilds the onnx
    packages, not the hf ones); versions only: a full environment capture per package is wasted work."""
    payload = {
        "files": fetched.provenance.get("files"),
        "backend": backend,
        "options": recipe.backends[backend].options.as_dict(),
        "inputs": repr(recipe.inputs_for(variant) if variant else recipe.inputs),
        "reference": reference_kwargs or {},
        "weightpack": __version__,
        "libraries": environment.library_versions(get_backend(backend).version_libraries),
    }
    if get_backend(backend).device_bound:  # a TensorRT engine built on another GPU is another package
        payload["device"] = device
        payload["batch_sizes"] = list(recipe.bench.batch_sizes)  # its profile's batch range covers them
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def reused_build(
    recipe: Recipe,
    variant: str,
    backend: str,
    fetched: sources.FetchedSource,
    out_dir: Path,
    reference_kwargs: dict[str, Any] | None = None,
    device: str = "cpu",
    *,
    limits: archive.Limits,
) -> PackageBuild | None:
    """The package built earlier from the same inputs, when its zip and manifest are there and agree (and
    the zip follows the archive rules within the run's ``limits``: else OutputFolderError, exit 2, naming
    the files to delete)."""
    zip_path = out_dir / recipe.zip_name(variant, backend)
    manifest_path = manifest.manifest_path_for(zip_path)
    key = input_key(fetched, recipe, backend, variant, reference_kwargs, device)
    reused = _reusable(zip_path, manifest_path, key, limits)
    if reused is None:
        return None
    return PackageBuild(
        variant,
        backend,
        reused[0],
        manifest_path,
        reused[1]["model_class"],
        reused[1]["packageManifest"],
        reused=True,
    )


def build_package(
    recipe: Recipe,
    variant: str,
    backend: str,
    fetched: sources.FetchedSource,
    inputs: Tensors,
    reference_class: str,
    out_dir: Path,
    ui: UI,
    reference_kwargs: dict[str, Any] | None = None,
    device: str = "cpu",
    *,
    limits: archive.Limits,
) -> PackageBuild:
    """Export + zip on ``device`` (the run's build device, see :func:`backends.device.export_device`);
    a zip kept from an earlier run is read within the run's ``limits``."""
    found = reused_build(recipe, variant, backend, fetched, out_dir, reference_kwargs, device, limits=limits)
    if found is not None:
        ui.info(f"  reusing {found.zip_result.zip_path.name} (inputs unchanged)")
        return found
    zip_path = out_dir / recipe.zip_name(variant, backend)
    manifest_path = manifest.manifest_path_for(zip_path)
    key = input_key(fetched, recipe, backend, variant, reference_kwargs, device)
    with atomic.temp_dir(out_dir, f"staging-{variant}-{backend}") as staging:
        with ui.stage(f"export {variant} -> {backend}"):
            request = ExportRequest(
                upstream_dir=fetched.path,
                staging_dir=staging,
                architecture=recipe.architecture,
                variant=variant,
                task=recipe.task,
                options=recipe.backends[backend].options,
                sample_inputs=inputs,
                reference_class=reference_class,
                reference_kwargs=dict(reference_kwargs or {}),
                device=device,
                dim_ranges=dim_ranges(recipe.inputs_for(variant), inputs),
                batch_axes=batch_axes(recipe.inputs_for(variant)),
                batch_sizes=tuple(recipe.bench.batch_sizes),
            )
            result = get_backend(backend).load_exporter()(request)
            model_class = recipe.backends[backend].model_class or result.model_class
            options = recipe.backends[backend].options
            notes = [*result.notes, *apply_layout(request, options.rename, options.files)]
        with ui.stage(f"zip {zip_path.name}"):
            archive.validate_tree(staging)
            zip_result = archive.build_zip(staging, zip_path)
            manifest.write_manifest(
                zip_result,
                package_manifest=result.package_manifest,
                provenance=fetched.provenance,
                extra={
                    "input_key": key,
                    "model_class": model_class,
                    "family": recipe.family,
                    "architecture": recipe.architecture,
                    "task": recipe.task,
                    "variant": variant,
                    "backend": backend,
                    "wire_backend": get_backend(backend).wire_name,
                    "export_notes": notes,
                },
            )
    return PackageBuild(
        variant,
        backend,
        zip_result,
        manifest_path,
        model_class,
        result.package_manifest,
        reused=False,
    )


def batch_axes(spec: InputsRecipe) -> dict[str, int | None]:
    """The inputs batched elsewhere than axis 0 (a constant: nowhere), and the outputs feeding state
    inputs, batched where those are."""
    out: dict[str, int | None] = {}
    for t in spec.tensors if spec.kind == "tensor" else ():
        axis = None if t.value is not None or not t.shape else t.batch_axis
        if axis != 0:
            out[t.name] = axis
        if t.state_from and axis != 0:
            out[t.state_from] = axis
    return out


def dim_ranges(spec: InputsRecipe, inputs: Tensors) -> dict[str, tuple[int, int, int]]:
    """Non-batch axis ranges the recipe implies: a text recipe pads each batch to its longest text, up to
    ``max_length``, so every text input's axis 1 ranges over ``(1, parity length, max_length)``; a tensor
    recipe declares each input's shape (or shape set), so each non-batch axis ranges over the sizes it
    declares, the first shape being the one exports trace with."""
    if spec.kind != "text":
        out: dict[str, tuple[int, int, int]] = {}
        for t in spec.tensors:
            shapes = [list(s) for s in (t.shapes or [t.shape])]
            for axis in (a for a in range(len(t.shape)) if a != t.batch_axis):
                sizes = [int(s[axis]) for s in shapes if len(s) > axis]
                out[f"{t.name}.{axis}"] = (min(sizes), int(t.shape[axis]), max(sizes))
        return out
    out = {}
    for name, array in inputs.items():
        if array.ndim >= 2:
            opt = min(int(array.shape[1]), spec.max_length)
            out[f"{name}.1"] = (1, opt, max(opt, spec.max_length))
    return out


def _reusable(
    zip_path: Path, manifest_path: Path, key: str, limits: archive.Limits
) -> tuple[archive.ZipResult, dict] | None:
    """A previous build's zip + manifest when both exist, match each other and were built from ``key``.

    A pair that matches is still checked by the archive validator and against the manifest's file list:
    a manifest can be patched to match any zip, and a zip that breaks the rules is refused (exit 2) with
    the files to delete rather than reused, or silently rebuilt over, on every re-run. The validator reads
    the whole zip (``archive.check_zip``: headers, then every member's data streamed through the size and
    CRC checks, nothing written), so a member larger than declared or corrupt is refused here too, not
    left to fail the verification that extracts it on every re-run with no word of what to delete.
    """
    if not (zip_path.is_file() and manifest_path.is_file()):
        return None
    try:
        data = manifest.read_manifest(manifest_path)
        if data.get("input_key") != key:
            return None
        manifest.verify_zip_against_manifest(zip_path, data)
        files = [archive.FileEntry(**f) for f in data["files"]]
        z = data["zip"]
    except (WeightpackError, ValueError, KeyError, TypeError, OSError):
        return None
    try:
        archive.check_zip(zip_path, limits)
        listed = sorted(f.path for f in files)
        with zipfile.ZipFile(zip_path) as zf:
            members = sorted(zf.namelist())
        if members != listed:
            raise ArchiveError(f"{zip_path}: holds {members}, its manifest lists {listed}")
    except (ArchiveError, OSError, zipfile.BadZipFile) as exc:
        raise OutputFolderError(
            f"{zip_path} was not reused: it matches its manifest but breaks the package rules.\n{exc}\n"
            f"Delete {zip_path} and {manifest_path}, then re-run to rebuild it."
        ) from None
    return archive.ZipResult(
        zip_path=zip_path, size=z["size"], md5=z["md5"], sha256=z["sha256"], files=files
    ), data


# -- an export that fails where the upstream already ships the format --------------------------------
# Model authors often ship the same network twice (a TorchScript ``.jit`` and an ``.onnx``, as Silero VAD
# does); their own graph is what a user wants when exporting from the other one fails (a scripted module
# that calls submodules cannot be traced to ONNX). The failure then names the file and the recipe line
# that adopts it as it is. Pure lookups beside the source's file, for local and ``pkg://`` sources (an
# ``hf://`` repository is not listed: the hub may be out of reach).


def shipped_alternatives(source: str, fetched: FetchedSource, backend: str) -> list[tuple[str, str]]:
    """``[(file name, source line)]``: files beside a single-file source that ``backend`` adopts as they
    are (an ``.onnx`` beside the ``.jit`` for the onnx backend), read for what they are."""
    suffixes = get_backend(backend).adopts_upstream
    if not suffixes or len(fetched.files) != 1:
        return []
    try:
        kind = sources.parse_uri(source).kind
    except WeightpackError:
        return []
    if kind not in ("local", "pkg"):
        return []
    file = (fetched.path / next(iter(fetched.files))).resolve()
    found = []
    for sibling in sorted(file.parent.iterdir()):
        if sibling == file or not sibling.is_file() or not sibling.name.endswith(suffixes):
            continue
        if content.sniff(sibling) == content.guess(sibling.name):
            head = source.rstrip("/").rsplit("/", 1)[0] + "/" if "/" in source.rstrip("/") else ""
            found.append((sibling.name, f'source = "{head}{sibling.name}"'))
    return found


def hinted(exc: WeightpackError, recipe_path: Path, variant: str, backend: str, source: str,
           fetched: FetchedSource) -> WeightpackError:  # fmt: skip
    """``exc`` (an export failure) with the upstream's own file in ``backend``'s format named, and the
    recipe line that adopts it; ``exc`` unchanged when the upstream ships none."""
    found = shipped_alternatives(source, fetched, backend)
    if not found:
        return exc
    name, line = found[0]
    hint = (
        f"the upstream ships {name} beside {Path(source).name}, already in the {backend} package's format: "
        f"adopt it as it is with a variant of {recipe_path} whose source is that file, `{line}` (an "
        "adopted file is its own reference; its inputs are its own, see pack inspect)"
    )
    exc.args = (f"{exc}\n{hint}",)
    return exc
