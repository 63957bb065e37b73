"""The registration flow for one package, resumable through a small state file beside the zips.

``publish-state.<env>.json`` (written atomically, never holding the secret) records per package (keyed by
registry URL, model id and zip sha256): the ``modelPackageId``, each file handle already uploaded with its
md5, and whether the package is sealed. A re-run skips sealed packages, re-registers an unsealed one (the
service hands back the same id with fresh upload URLs), uploads only the files not yet uploaded, then
confirms and seals. A package is sealed only by the confirm call, after every file was uploaded; any
failure before leaves it unsealed and the error says how to resume.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from packager import atomic
from packager.hashing import CHUNK_SIZE, new_hash

from .errors import PublishError
from .http import HttpFailure
from .plan import PackagePlan
from .registry import RegistryClient

STATE_SCHEMA = "weightpack.publish-state/v1"


def state_path(out_dir: Path, env: str) -> Path:
    return Path(out_dir) / f"publish-state.{env}.json"


class State:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {"schema": STATE_SCHEMA, "packages": {}}
        if path.is_file():
            try:
                loaded = json.loads(path.read_text("utf-8"))
                if loaded.get("schema") == STATE_SCHEMA:
                    self.data = loaded
            except (OSError, ValueError):
                pass  # unreadable state: start over; the service's answers are authoritative

    def entry(self, registry_url: str, plan: PackagePlan) -> dict[str, Any]:
        key = f"{registry_url}|{plan.model_id}|{plan.manifest['zip']['sha256']}"
        return self.data["packages"].setdefault(
            key,
            {
                "registry_url": registry_url,
                "model_id": plan.model_id,
                "zip": plan.zip_path.name,
                "zip_sha256": plan.manifest["zip"]["sha256"],
                "model_package_id": None,
                "uploaded": {},
                "sealed": False,
            },
        )

    def save(self) -> None:
        atomic.write_json(self.path, self.data)


def register_package(
    plan: PackagePlan,
    client: RegistryClient,
    state: State,
    echo: Callable[[str], None],
    resume_hint: str,
) -> dict[str, Any]:
    """Register, upload and seal one package; returns its state entry. Raises PublishError (unsealed)."""
    entry = state.entry(client.state_key, plan)
    label = f"{plan.model_id} [{plan.backend}]"
    if entry["sealed"]:
        echo(f"{label}: already registered and sealed as {entry['model_package_id']}; nothing to do")
        return entry
    try:
        _register(plan, client, state, entry, echo, label)
    except PublishError as exc:
        state.save()
        pid = entry.get("model_package_id")
        where = f"package {pid} is registered but NOT sealed" if pid else "nothing was registered"
        error = PublishError(
            f"{label}: {exc}\n{label}: {where}; {len(entry['uploaded'])}/{len(plan.files)} files uploaded "
            f"(state: {state.path}). To resume, re-run: {resume_hint}"
        )
        error.exit_code = exc.exit_code  # a network that kept failing stays exit 3
        raise error from None
    return entry


def _register(
    plan: PackagePlan,
    client: RegistryClient,
    state: State,
    entry: dict[str, Any],
    echo: Callable[[str], None],
    label: str,
) -> None:
    created = client.register_model(plan.model_body())
    if created is None:
        echo(f"{label}: model registration skipped (the model {plan.model_id} must exist already)")
    else:
        echo(f"{label}: model {plan.model_id} {'registered' if created else 'already registered'}")
    answer = client.register_package(plan.package_body())
    if answer is None:  # 409: only fine when the registered package is this one
        existing = find_identical(client, plan)
        if existing is None:
            raise PublishError(
                "the service says this package is already registered (409), but no sealed package of "
                f"{plan.model_id} has this manifest and these file md5s; a different package holds the place"
            )
        entry.update(model_package_id=existing, sealed=True)
        state.save()
        echo(f"{label}: already registered and sealed as {existing} with identical files (409); success")
        return
    package_id = answer["modelPackageId"]
    if entry["model_package_id"] not in (None, package_id):
        entry["uploaded"] = {}  # a different package than last time: its files are not uploaded yet
    entry["model_package_id"] = package_id
    state.save()
    echo(f"{label}: package {package_id} registered (unsealed)")
    specs = {s["fileHandle"]: s for s in answer.get("filesUploadSpecs", [])}
    missing = [h for h in plan.file_handles if h not in specs]
    unknown = sorted(set(specs) - set(plan.file_handles))
    if missing or unknown:
        raise PublishError(f"upload specs do not match the package: missing {missing}, unexpected {unknown}")
    # an owned temporary (``.publish.<pid>-<random>.partial``) beside the zips: it holds a whole extracted
    # file, so a killed run's one must be swept by the next run on this folder (packager.atomic.sweep)
    with atomic.temp_dir(plan.zip_path.parent, "publish") as tmp:
        for f in plan.files:
            handle = f["path"]
            if entry["uploaded"].get(handle) == f["md5"]:
                continue
            max_size = specs[handle]["signedUrlDetails"].get("maxFileSize")
            if max_size is not None and f["size"] > int(max_size):
                raise PublishError(f"{handle}: {f['size']} bytes exceeds the upload limit of {max_size}")
            path = _extract_verified(plan, f, Path(tmp))
            stored = client.upload(specs[handle], path, handle)
            path.unlink()
            # what the store says it holds, not what was sent: a corrupted upload is recorded as such
            # and sent again by the next run instead of being trusted (None: the store did not say)
            entry["uploaded"][handle] = stored or f"unverified:{f['md5']}"
            state.save()
            if stored is not None and stored != f["md5"]:
                echo(
                    f"{label}: WARNING {handle} was stored with md5 {stored}, not {f['md5']}; "
                    "a re-run uploads it again"
                )
            else:
                echo(f"{label}: uploaded {handle} ({f['size']} bytes, md5 {f['md5']})")
    confirmations = [{"fileHandle": f["path"], "md5Hash": f["md5"]} for f in plan.files]
    try:
        client.confirm(plan.model_id, package_id, confirmations)
    except HttpFailure as exc:
        # 409 after a retry: an earlier confirm may have sealed it and only its answer was lost.
        if exc.status == 409 and find_identical(client, plan) == package_id:
            echo(f"{label}: package {package_id} was already sealed with these files")
        else:
            if exc.status is not None and 400 <= exc.status < 500:
                entry["uploaded"] = {}  # the service disagrees about the files: upload them all again
            raise
    entry["sealed"] = True
    state.save()
    echo(f"{label}: confirmed {len(confirmations)} files and sealed package {package_id}")


def _extract_verified(plan: PackagePlan, record: dict[str, Any], tmp: Path) -> Path:
    """One file of the zip, written to ``tmp`` and checked against the manifest's size and md5."""
    out = tmp / "file.bin"
    digest, size = new_hash("md5"), 0
    with zipfile.ZipFile(plan.zip_path) as zf, zf.open(record["path"]) as src, open(out, "wb") as dst:
        while chunk := src.read(CHUNK_SIZE):
            digest.update(chunk)
            size += len(chunk)
            dst.write(chunk)
    if size != record["size"] or digest.hexdigest() != record["md5"]:
        raise PublishError(
            f"{plan.zip_path.name}:{record['path']} is {size} bytes md5 {digest.hexdigest()}, the verified "
            f"manifest says {record['size']} bytes md5 {record['md5']}; not uploaded"
        )
    return out


def find_identical(client: RegistryClient, plan: PackagePlan) -> str | None:
    """The id of a registered package of ``plan.model_id`` with the same manifest and file md5s."""
    try:
        meta = client.weights(plan.model_id)
    except HttpFailure as exc:
        if exc.status == 404:
            return None
        raise
    want_files = {(f["path"], f["md5"]) for f in plan.files}
    for pkg in meta.get("modelPackages", []):
        files = {(f.get("fileHandle"), f.get("md5Hash")) for f in pkg.get("packageFiles", [])}
        if pkg.get("packageManifest") == plan.package_manifest and files == want_files:
            return str(pkg.get("packageId"))
    return None
