"""``pack --ray``: the driver. The pipeline prepares every variant here (fetch, reference outputs), then
hands the packages to :meth:`RayExecutor.pack`, which runs one Ray task per (variant, backend, target)
(:mod:`.task`), writes what comes back into the output folder as it arrives (:mod:`.merge`) and, once all
are done, puts the results into the report in the order a local run does.

Decisions live in pure modules: which packages and targets (:mod:`.plan`), which resources and nodes
(:mod:`.targets`), retry or not (:mod:`.policy`). What is left here is talking to Ray.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backends.registry import get_backend
from bench.report import Report
from packager import manifest, reuse
from packager.cluster import merge, policy, targets
from packager.cluster.plan import PackagePlan, plan_packages, recipe_for, targets_for
from packager.cluster.task import Outcome, PackageTask, ShippedPackage, Started
from packager.package_check import recorded_floors
from packager.recipes import Recipe
from packager.ui import UI

POLL_S = 1.0
"""How often the driver looks at the cluster's nodes while tasks wait (for the timeout guard)."""


@dataclass
class Job:
    """One package on one target: its task as submitted, and what came back."""

    plan: PackagePlan
    result: merge.TargetResult
    resource: str | None = None
    shape: dict[str, Any] = field(default_factory=dict)
    ref: Any = None
    started: bool = False
    unavailable_since: float | None = None

    @property
    def label(self) -> str:
        target = self.result.target
        return self.plan.label + (f" for {target}" if target and not self.plan.zip_target else "")


def reachable(address: str, timeout_s: float = 5.0) -> str | None:
    """Why ``host:port`` cannot be reached (None: it can, or the address is Ray's ``auto``): Ray itself
    would retry for minutes before saying so."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return None
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)


class RayExecutor:
    """Runs a pack's packages on a Ray cluster (``PackOptions.cluster``)."""

    def __init__(
        self, address: str, targets: list[str] | None, devices: list[str] | None, timeout_s: float
    ) -> None:
        self.address, self.targets, self.devices, self.timeout_s = address, targets, devices, timeout_s
        self._ray: Any = None

    def connect(self) -> None:
        """Join the cluster now, so a wrong address or a missing extra fails before any work (exit 3)."""
        try:
            import ray
        except ImportError as exc:
            from packager.errors import MissingExtraError

            raise MissingExtraError("pack --ray", "ray", "ray") from exc
        problem = reachable(self.address)
        if problem is None:
            try:
                ray.init(
                    address=self.address,
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                    namespace="weightpack",
                )
            except (ConnectionError, RuntimeError, ValueError) as exc:
                problem = str(exc).splitlines()[0]
        if problem is not None:
            raise targets.ClusterError(
                f"--ray: no Ray cluster at {self.address} ({problem}); start one with ray start --head "
                "(docs/cluster.md) or pass its address: --ray HOST:PORT"
            )
        self._ray = ray

    def pack(
        self, recipe: Recipe, prepared: dict[str, Any], options: Any, report: Report, ui: UI, threads: Any
    ) -> None:
        """Build and verify every package of ``prepared``'s variants on the cluster; fill ``report``."""
        from backends.loaded import release as release_reference

        if self._ray is None:
            self.connect()
        release_reference()  # the driver verifies nothing: its reference model is no longer needed
        run = _Run(self, recipe, prepared, options, ui, threads)
        # Ray prints a dead worker's notice on stdout, whenever it comes, until it is shut down; --json
        # keeps stdout for its summary alone
        with contextlib.redirect_stdout(sys.stderr):
            try:
                run.start()
                run.wait()
            except BaseException:
                run.cancel()  # Ctrl-C, or an error of the driver's own: no task outlives the run
                raise
            finally:
                self._ray.shutdown()
        report.meta["cluster"] = run.summary()
        seal = reuse.run_seal(options.cache_dir, report, ui)
        for plan, jobs in run.by_plan():
            floors, results = recorded_floors(prepared[plan.variant].golden), [j.result for j in jobs]
            merge.assemble(report, run.recipes[plan], plan, results, floors, options.out_dir, ui, seal)


class _Run:
    """One cluster run's bookkeeping: jobs, what each waits for, and the loop that gathers them."""

    def __init__(
        self,
        executor: RayExecutor,
        recipe: Recipe,
        prepared: dict[str, Any],
        options: Any,
        ui: UI,
        threads: Any,
    ) -> None:
        from packager.cluster.task import run_package_task

        self.ex, self.ray, self.ui = executor, executor._ray, ui
        self.prepared, self.options, self.threads = prepared, options, threads
        self.started_at = time.monotonic()
        self.nodes = targets.live_nodes(self.ray.nodes())
        plans = plan_packages(
            list(prepared),
            options.backends,
            lambda b: targets_for(recipe, b, executor.targets),
            lambda b: get_backend(b).device_bound,
            lambda v, b: b in (recipe.variants[v].backends or [b]),
        )
        self.recipes = {p: recipe_for(recipe, p.backend, p.zip_target) for p in plans}
        self.jobs = [Job(p, merge.TargetResult(t)) for p in plans for t in p.targets]
        self.remote = self.ray.remote(run_package_task)
        self.upstream: dict[str, list[tuple[str, Any]]] = {}
        self.held: dict[PackagePlan, Any] = {}  # the package gathered for a plan (for its other targets)
        self.zips: dict[PackagePlan, ShippedPackage | None] = {}  # what _shipped put in the object store
        self.retries = 0
        self.machines: dict[str, dict[str, Any]] = {}  # node id -> hostname and machine, as tasks said

    # ---------------------------------------------------------------- submitting

    def start(self) -> None:
        """Check every target against the cluster, then submit what can start now: each plan's first
        runnable target, and all of them where the output folder already holds the package."""
        offered = targets.advertised(self.nodes)
        for job in self.jobs:
            target = job.result.target
            if target is not None:
                job.resource = targets.resolve(target, offered)
                if job.resource is None:
                    self._fail(job, "cluster", targets.missing_target(target, self.nodes, self.ex.address))
                    continue
            try:
                job.shape = targets.task_shape(job.resource, self.nodes, self.ex.devices)
            except targets.MissingTargetError as exc:
                self._fail(job, "cluster", exc)
        for plan in dict.fromkeys(j.plan for j in self.jobs):
            self._release(plan)

    def _release(self, plan: PackagePlan) -> None:
        """Submit the plan's waiting jobs that may go: all when the package exists in the output folder
        (shipped to each), else only the first (it builds; the others wait for its zip)."""
        waiting = [j for j in self.jobs if j.plan == plan and j.ref is None]
        if not waiting or any(j.ref is not None and not self._done(j) for j in self.jobs if j.plan == plan):
            return
        shipped = self._shipped(plan)
        trusted = plan in self.held or (shipped is not None and self._reusable_here(plan))
        waiting.sort(key=lambda j: j.result.target != plan.builder)  # the builder first
        for job in waiting if trusted else waiting[:1]:
            self._submit(job, shipped)

    def _shipped(self, plan: PackagePlan) -> ShippedPackage | None:
        """The package's zip and manifest from the output folder, to send with its tasks (put into the
        object store once, again only after a task built it anew)."""
        if plan not in self.zips:
            zip_name = self.recipes[plan].zip_name(plan.variant, plan.backend)
            zip_path = self.options.out_dir / zip_name
            manifest_path = manifest.manifest_path_for(zip_path)
            self.zips[plan] = None
            if zip_path.is_file() and manifest_path.is_file():
                data = self.ray.put(zip_path.read_bytes())
                self.zips[plan] = ShippedPackage(zip_name, [data], manifest_path.read_bytes())
        return self.zips[plan]

    def _reusable_here(self, plan: PackagePlan) -> bool:
        """The output folder's zip was built from this run's inputs (by the driver's library versions: a
        node with others finds it stale and builds it again, so then only the first target goes ahead).
        A zip that breaks the package rules stops the run (exit 2), as in a local run."""
        from packager.build import reused_build

        v = self.prepared[plan.variant]
        device = "cuda:0" if get_backend(plan.backend).device_bound else "cpu"  # a task's GPU is cuda:0
        found = reused_build(
            self.recipes[plan], plan.variant, plan.backend, v.fetched, self.options.out_dir,
            v.spec.kwargs, device, limits=self.options.settings.limits,
        )  # fmt: skip
        return found is not None

    def _submit(self, job: Job, shipped: ShippedPackage | None, node_id: str | None = None) -> None:
        v, plan, options = self.prepared[job.plan.variant], job.plan, self.options
        recipe = self.recipes[plan]
        zip_name = recipe.zip_name(plan.variant, plan.backend)
        seal, target = reuse.Seal.of_cache(options.cache_dir, self.ui.warn), job.result.target
        kept = {} if options.reverify else merge.kept_records(options.out_dir, zip_name, target, seal)
        job.result.kept = kept
        task = PackageTask(
            recipe=recipe, variant=plan.variant, backend=plan.backend, target=job.result.target,
            provenance=v.fetched.provenance, upstream=self._upstream(v), golden=_golden(v.golden),
            reference_class=v.spec.model_class, reference_kwargs=dict(v.spec.kwargs),
            reference_key=v.ref_key, settings=options.settings, shipped=shipped, kept=kept,
        )  # fmt: skip
        ray_options: dict[str, Any] = {
            **job.shape,
            "num_returns": "streaming",
            "max_retries": 0,
            "retry_exceptions": False,
            "name": f"weightpack {job.label}",
        }
        if node_id is not None:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            ray_options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id, soft=False)
        job.ref = self.remote.options(**ray_options).remote(task)
        job.started, job.unavailable_since = False, None

    def _upstream(self, v: Any) -> list[tuple[str, Any]]:
        """The variant's upstream files in the object store, put there once per run."""
        from packager.cluster.upstream import upstream_files

        if v.name not in self.upstream:
            files = upstream_files(v.fetched.path, v.fetched.provenance)
            self.upstream[v.name] = [(rel, self.ray.put(path.read_bytes())) for rel, path in files]
        return self.upstream[v.name]

    # ---------------------------------------------------------------- gathering

    def wait(self) -> None:
        """Gather every job: its start, its outcome, or its death (then maybe one more try)."""
        last_look = time.monotonic()
        while running := [j for j in self.jobs if j.ref is not None and not self._done(j)]:
            ready, _ = self.ray.wait([j.ref for j in running], num_returns=1, timeout=POLL_S)
            for job in [j for j in running if any(j.ref is r for r in ready)]:
                self._step(job)
            if time.monotonic() - last_look >= POLL_S:
                last_look = time.monotonic()
                self._watch_waiting([j for j in running if not j.started and not self._done(j)])

    def _step(self, job: Job) -> None:
        try:
            item = self.ray.get(next(job.ref))
        except StopIteration:
            item = RuntimeError("the task ended without an outcome")
        except Exception as exc:  # Ray's word for a task that died
            item = exc
        if isinstance(item, Started):
            job.started, job.result.node = True, {**item.node, **self._node_kind(item.node)}
            node = item.node
            self.ui.info(f"  {job.label}: started on {node['hostname']} (node {node['node_id'][:8]})")
        elif isinstance(item, Outcome):
            self._gathered(job, item)
        else:
            self._died(job, item)

    def _gathered(self, job: Job, outcome: Outcome) -> None:
        outcome.node = {**outcome.node, **self._node_kind(outcome.node)}
        self.machines[outcome.node["node_id"]] = {
            "hostname": outcome.node.get("hostname"),
            "machine": outcome.node.get("machine"),
        }
        merge.gather(self.options.out_dir, outcome, job.result, self.held.get(job.plan))
        merge.hint_export(
            job.result, self.recipes[job.plan], job.plan, self.prepared[job.plan.variant].fetched
        )
        if job.result.build is not None and job.plan not in self.held:
            self.held[job.plan] = job.result.build
        if job.result.built_here:
            self.zips.pop(job.plan, None)  # the output folder has a new zip: ship that one
        for warning in outcome.warnings:
            self.ui.warn(f"{job.label} on {outcome.node.get('hostname')}: {warning}")
        verdict = "failed" if job.result.failure else "done"
        self.ui.info(f"  {job.label}: {verdict} on {outcome.node.get('hostname')} in {outcome.seconds:.1f} s")
        job.ref = _DONE
        self._release(job.plan)

    def _died(self, job: Job, exc: BaseException) -> None:
        death = policy.classify(exc)
        node = (job.result.node or {}).get("node_id")
        said = str(exc).strip().splitlines()
        error = f"{type(exc).__name__}: {said[0][:300]}" if said else type(exc).__name__
        job.result.attempts.append({"death": death.value, "error": error, "node": node})
        self.nodes = targets.live_nodes(self.ray.nodes())
        eligible = [n.node_id for n in targets.nodes_with(job.resource, self.nodes)]
        failed_on = [a["node"] for a in job.result.attempts if a["node"]]
        decision = policy.retry(death, len(job.result.attempts), failed_on, eligible)
        if decision is not None:
            self.retries += 1
            self.ui.warn(f"{job.label}: {decision.why}")
            job.result.node = None
            self._submit(job, self._shipped(job.plan), decision.node_id)
            return
        message = policy.death_message(job.label, job.result.attempts)
        self._fail(job, "cluster", policy.TaskDiedError(message))
        self._release(job.plan)

    def _watch_waiting(self, waiting: list[Job]) -> None:
        """The timeout guard: a task that has not started while no live node offers its resource."""
        if not waiting:
            return
        self.nodes = targets.live_nodes(self.ray.nodes())
        now = time.monotonic()
        for job in waiting:
            if targets.nodes_with(job.resource, self.nodes):
                job.unavailable_since = None
                continue
            job.unavailable_since = job.unavailable_since or now
            if policy.waited_too_long(job.unavailable_since, now, self.ex.timeout_s):
                self.ray.cancel(job.ref, force=True)
                what = f"the resource '{job.resource}'" if job.resource else "any node"
                self._fail(
                    job,
                    "cluster",
                    targets.ClusterError(
                        f"{job.label}: no live node has offered {what} for {self.ex.timeout_s:g} s "
                        "(--ray-timeout); the node left the cluster and no other took its place"
                    ),
                )
                self._release(job.plan)

    def cancel(self) -> None:
        for job in self.jobs:
            if job.ref is not None and job.ref is not _DONE:
                with contextlib.suppress(Exception):  # already finished, or the cluster is gone
                    self.ray.cancel(job.ref, force=True)

    # ---------------------------------------------------------------- bookkeeping

    def _fail(self, job: Job, stage: str, exc: BaseException) -> None:
        job.result.failure = (stage, exc)
        job.ref = _DONE
        self.ui.warn(str(exc))

    @staticmethod
    def _done(job: Job) -> bool:
        return job.ref is _DONE

    def _node_kind(self, node: dict[str, Any]) -> dict[str, Any]:
        found = next((n for n in self.nodes if n.node_id == node.get("node_id")), None)
        return {"kinds": found.summary()["kinds"]} if found else {}

    def by_plan(self) -> list[tuple[PackagePlan, list[Job]]]:
        plans = list(dict.fromkeys(j.plan for j in self.jobs))
        return [(p, [j for j in self.jobs if j.plan == p]) for p in plans]

    def summary(self) -> dict[str, Any]:
        """``report.meta["cluster"]``: the address, the nodes, what each target resolved to, the run."""
        return {
            "address": self.ex.address,
            "nodes": [{**n.summary(), **self.machines.get(n.node_id, {})} for n in self.nodes],
            "targets": {j.result.target: j.resource for j in self.jobs if j.result.target},
            "tasks": len(self.jobs),
            "retries": self.retries,
            "timeout_s": self.ex.timeout_s,
            "seconds": round(time.monotonic() - self.started_at, 3),
        }


_DONE: Any = object()
"""A finished job's ``ref``: nothing left to wait for."""


def _golden(path: Path) -> tuple[str, bytes, bytes | None]:
    """A variant's golden as a task takes it: its name, its bytes and the record beside it."""
    record = path.with_suffix(".json")
    return path.name, path.read_bytes(), record.read_bytes() if record.is_file() else None
