"""The driver's side of a finished task: its files written into the output folder as they arrive, and,
once every task is done, its results put into the report in the order a local run writes them, through
the same functions a local run uses (``Report.add_package``, ``record_verification``, ``reuse``).

Files are written whole (zip, then manifest, then goldens, each atomically), so an interrupted cluster run
leaves what a local one leaves: finished packages a re-run reuses, nothing half-written.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.report import Report
from packager import atomic, manifest, reuse
from packager.build import PackageBuild
from packager.cluster.plan import PackagePlan, device_label, split_label
from packager.cluster.targets import ClusterError
from packager.cluster.task import DeviceCheck, Outcome, rebuilt
from packager.outcome import record_failure, record_verification
from packager.package_check import tolerances_for
from packager.recipes import Recipe
from packager.ui import UI
from packager.verify import compare_devices

NODE_KEYS = ("node_id", "hostname", "address", "target")


@dataclass
class TargetResult:
    """What came back for one package on one target."""

    target: str | None
    node: dict[str, Any] | None = None
    build: PackageBuild | None = None
    """The package with the driver's paths (None: nothing was built or reused for this target)."""
    built_here: bool = False
    """This target's task built the zip (not reused from the output folder)."""
    checks: list[DeviceCheck] = field(default_factory=list)
    failure: tuple[str, BaseException] | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    kept: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float | None = None


def kept_records(
    out_dir: Path, zip_name: str, target: str | None, seal: reuse.Seal
) -> dict[str, dict[str, Any]]:
    """The verification records the output folder keeps for this package on ``target``'s devices, by
    device label, whose seal holds (the task reuses one when its key matches on the node)."""
    kept = {}
    stem = zip_name.removesuffix(".zip")
    for path in sorted((out_dir / reuse.VERIFIED_DIR).glob(f"{stem}-*.json")):
        try:
            data = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            continue
        label = data.get("device") if isinstance(data, dict) else None
        if not isinstance(label, str) or data.get("zip") != zip_name or split_label(label)[1] != target:
            continue
        record = reuse.load_verification(path, data.get("key"), out_dir, seal)
        if record is not None and path.name == f"{stem}-{label.replace(':', '')}.json":
            kept[label] = record
    return kept


def gather(out_dir: Path, outcome: Outcome, result: TargetResult, held: PackageBuild | None) -> None:
    """Write what ``outcome`` brought (zip and manifest when built there, goldens) and fill ``result``.

    ``held``: the package this run already gathered for the plan from another target; a zip built again
    elsewhere must be the same bytes (deterministic zips), else the nodes disagree and this target fails."""
    result.node, result.seconds = outcome.node, outcome.seconds
    if outcome.failure is not None:
        stage, carried = outcome.failure
        result.failure = (stage, rebuilt(carried))
    if outcome.build is None:
        return
    zip_path = out_dir / outcome.build.zip_result.zip_path.name
    build = dataclasses.replace(
        outcome.build,
        zip_result=dataclasses.replace(outcome.build.zip_result, zip_path=zip_path),
        manifest_path=manifest.manifest_path_for(zip_path),
    )
    if outcome.zip_bytes is not None:
        if held is not None and held.zip_result.sha256 != build.zip_result.sha256:
            result.failure = ("export", _disagreement(held, build, outcome.node))
            return
        if held is None:
            with atomic.atomic_open(zip_path) as handle:
                handle.write(outcome.zip_bytes)
            with atomic.atomic_open(build.manifest_path) as handle:
                handle.write(outcome.manifest_bytes or b"")
        result.built_here = True
    result.build = build
    for check in outcome.checks:
        v = check.verification
        if v is not None:
            v.device = check.label
            if v.error is not None:
                v.error = rebuilt(v.error)
            if check.golden is not None:
                stem = zip_path.name.removesuffix(".zip")
                v.golden = out_dir / "goldens" / f"{stem}-{check.label.replace(':', '')}.npz"
                with atomic.atomic_open(v.golden) as handle:
                    handle.write(check.golden)
            else:
                v.golden = None
        result.checks.append(check)


def hint_export(result: TargetResult, recipe: Recipe, plan: PackagePlan, fetched: Any) -> None:
    """A failed export names the upstream's own file in the backend's format, as a local run's does."""
    from packager.build import hinted
    from packager.errors import ExportError

    _, exc = result.failure or ("", None)
    if isinstance(exc, ExportError):
        source = recipe.variants[plan.variant].source
        hinted(exc, recipe.path, plan.variant, plan.backend, source, fetched)


def _disagreement(held: PackageBuild, build: PackageBuild, node: dict[str, Any]) -> ClusterError:
    where = f"{node.get('hostname')} ({node.get('address')})"
    return ClusterError(
        f"{build.zip_result.zip_path.name}: node {where} built it with "
        f"sha256 {build.zip_result.sha256}, another node with {held.zip_result.sha256}, from the same "
        "inputs: the nodes' libraries differ (install the same versions everywhere, docs/cluster.md)"
    )


def assemble(
    report: Report,
    recipe: Recipe,
    plan: PackagePlan,
    results: list[TargetResult],
    floors: dict | None,
    out_dir: Path,
    ui: UI,
    seal: reuse.Seal,
) -> None:
    """Put one package's results, target by target, into the report (passed checks kept, sealed)."""
    built = [r for r in results if r.built_here] + [r for r in results if r.build is not None]
    build = built[0].build if built else None  # as its builder made it (the others reused it)
    if build is not None:
        report.add_package(build)
        report.packages[-1]["cluster"] = package_record(build, results)
    for r in results:
        if r.failure is not None:
            stage, exc = r.failure
            record_failure(report, stage, plan.variant, plan.backend, None, exc)
            report.failures[-1]["target"] = r.target
        if build is None or r.build is None or r.build.zip_result.sha256 != build.zip_result.sha256:
            continue
        per_device = {}
        for check in r.checks:
            device = split_label(check.label)[0]
            if check.verification is None:  # the driver's record, matched on the node
                record = r.kept[check.label]
                per_device[device] = reuse.replay(record, report, out_dir)
                report.packages[-1].setdefault("verification", {})[check.label] = {
                    "reused_from": record["verified_at"]
                }
                ui.info(f"  {plan.label} on {check.label}: checks reused from {record['verified_at']}")
                continue
            record_verification(report, build, check.verification, out_dir)
            if check.verification.outputs is not None:
                per_device[device] = check.verification.outputs
            if reuse.checks_passed(report, build, check.label):
                path = reuse.record_path(out_dir, build, check.label)
                reuse.save_verification(path, check.key, report, build, check.label, seal)
        tolerance = tolerances_for(recipe, plan.backend, floors)
        for (a, b), parity in compare_devices(tolerance, per_device):
            pair = (device_label(a, r.target), device_label(b, r.target))
            report.add_cross_device(plan.variant, plan.backend, pair, parity)


def package_record(build: PackageBuild, results: list[TargetResult]) -> dict[str, Any]:
    """Where a package was built and checked: ``built_on`` (the node, or the earlier run's manifest
    says), and per target the node that verified it, its time and any tries that died."""
    builder = next((r for r in results if r.built_here), None)
    if builder is not None and builder.node:
        built_on = {k: builder.node.get(k) for k in NODE_KEYS}
    else:
        built_on = _recorded_builder(build.manifest_path)
    return {
        "built_on": built_on,
        "reused_from_out": builder is None,
        "targets": {
            (r.target or "*"): {
                "node": {k: r.node.get(k) for k in NODE_KEYS} if r.node else None,
                "seconds": None if r.seconds is None else round(r.seconds, 3),
                "attempts": r.attempts,
                "passed": r.failure is None,
            }
            for r in results
        },
    }


def _recorded_builder(manifest_path: Path) -> dict[str, Any] | None:
    try:
        built_on = json.loads(manifest_path.read_text("utf-8")).get("built_on")
    except (OSError, ValueError):
        return None
    return {k: built_on.get(k) for k in NODE_KEYS} if isinstance(built_on, dict) else None
