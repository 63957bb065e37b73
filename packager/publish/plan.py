"""The gate and the plan: which packages of a pack run may be published, and exactly what would be sent.

A package is publishable only when the report passed, every parity and task check of its (variant,
backend) passed, no failure names it, its manifest's hashes are the ones the report recorded, and the zip
on disk still matches that manifest (size, md5, sha256). Anything else raises CheckFailedError and nothing
is uploaded or registered.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packager.errors import CheckFailedError, WeightpackError
from packager.manifest import manifest_path_for, read_manifest, verify_zip_against_manifest


@dataclass
class PackagePlan:
    variant: str
    backend: str
    zip_path: Path
    manifest: dict[str, Any]
    model_id: str
    architecture: str
    task: str
    access: str

    @property
    def package_manifest(self) -> dict[str, Any]:
        return self.manifest["packageManifest"]

    @property
    def model_features(self) -> dict[str, Any]:
        return dict(self.manifest.get("model_features") or {})

    @property
    def files(self) -> list[dict[str, Any]]:
        return self.manifest["files"]

    @property
    def file_handles(self) -> list[str]:
        return [f["path"] for f in self.files]

    def model_body(self) -> dict[str, Any]:
        return {
            "modelId": self.model_id,
            "modelArchitecture": self.architecture,
            "modelVariant": self.variant,
            "taskType": self.task,
            "access": self.access,
        }

    def package_body(self) -> dict[str, Any]:
        return {
            "modelId": self.model_id,
            "packageManifest": self.package_manifest,
            "fileHandles": self.file_handles,
            "modelFeatures": self.model_features,
        }


def collect(report: dict[str, Any], out_dir: Path, *, access: str = "public") -> list[PackagePlan]:
    """Every package of ``report`` as a plan entry, after the gate; raises CheckFailedError otherwise."""
    if not report.get("passed"):
        raise CheckFailedError("the report did not pass; nothing is uploaded or registered")
    if not report.get("packages"):
        raise CheckFailedError("the report lists no packages; nothing to publish")
    return [_gate(report, pkg, Path(out_dir), access) for pkg in report["packages"]]


def _gate(report: dict[str, Any], pkg: dict[str, Any], out_dir: Path, access: str) -> PackagePlan:
    variant, backend = pkg["variant"], pkg["backend"]
    where = f"{variant}/{backend}"

    def mine(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in rows if r.get("variant") == variant and r.get("backend") == backend]

    parity = mine(report.get("parity", []))
    if not parity or not all(r["passed"] for r in parity):
        raise CheckFailedError(f"{where}: parity did not pass (or never ran); it is not published")
    if not all(c["passed"] for c in mine(report.get("task_checks", []))):
        raise CheckFailedError(f"{where}: a task check failed; it is not published")
    if mine(report.get("failures", [])):
        raise CheckFailedError(f"{where}: the report records a failure; it is not published")
    zip_path = out_dir / pkg["zip"]
    try:
        manifest = read_manifest(manifest_path_for(zip_path))
        for key in ("md5", "sha256", "size"):
            if manifest["zip"][key] != pkg[key]:
                raise CheckFailedError(
                    f"{where}: manifest {key} {manifest['zip'][key]} differs from the verified report's "
                    f"{pkg[key]}; the zip was rebuilt after verification. Re-run pack."
                )
        verify_zip_against_manifest(zip_path, manifest)
    except CheckFailedError:
        raise
    except (WeightpackError, OSError) as exc:
        raise CheckFailedError(
            f"{where}: the zip is not the verified one ({exc}); it is not published. Re-run pack."
        ) from None
    return PackagePlan(
        variant=variant,
        backend=backend,
        zip_path=zip_path,
        manifest=manifest,
        model_id=f"{manifest.get('architecture', report['architecture'])}/{variant}",
        architecture=manifest.get("architecture", report["architecture"]),
        task=manifest.get("task", report["task"]),
        access=access,
    )


def render(
    plans: list[PackagePlan],
    *,
    upload: str | None,
    store_urls: dict[str, str],
    register: bool,
    env: str,
    registry_url: str | None,
    execute: bool,
    staging_status: dict[str, str] | None = None,
) -> str:
    """The plan as text: what would be uploaded where, and every registry call's body."""
    import json

    lines = [f"publish plan ({'EXECUTING' if execute else 'dry run: nothing is changed; add --execute'})"]
    for p in plans:
        z = p.manifest["zip"]
        lines.append(f"- {p.model_id} [{p.backend}] {p.zip_path.name}: {z['size']} bytes md5 {z['md5']}")
        lines.append(f"    sha256 {z['sha256']}")
        if upload:
            lines.append(f"    upload -> {store_urls[p.zip_path.name]}")
        if staging_status is not None:
            lines.append(f"    staging: {staging_status.get(p.zip_path.name, 'NOT verified in staging')}")
        if register:
            lines.append(f"    register with {env} ({registry_url or 'registry URL not set'}):")
            lines.append(f"      model: {json.dumps(p.model_body(), sort_keys=True)}")
            lines.append(f"      packageManifest: {json.dumps(p.package_manifest, sort_keys=True)}")
            lines.append(f"      modelFeatures: {json.dumps(p.model_features, sort_keys=True)}")
            lines.append(f"      files ({len(p.files)}):")
            for f in p.files:
                lines.append(f"        {f['path']}  {f['size']} bytes  md5 {f['md5']}")
    return "\n".join(lines)
