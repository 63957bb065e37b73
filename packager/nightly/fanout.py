"""Fan the nightly matrix out: one task per family x variant x backend, locally or on a Ray cluster.

``python -m packager.nightly.fanout --out DIR [--families a,b] [--ray [--address ADDR]]``. Each task runs
``pack FAMILY --variants V --backends B --out DIR/FAMILY/V-B --json`` in a subprocess (so one crash or CUDA
error never takes the others down) and returns its exit code and report path; ``DIR/fanout.json`` lists
them. With ``--ray`` every task is a Ray task asking for ``num_gpus=1`` when the cluster has GPUs (Ray sets
``CUDA_VISIBLE_DEVICES`` so the task sees its GPU as ``cuda:0``), else ``num_cpus=1``. Ray is the optional
extra ``ray`` (``pip install weightpack[ray]``); without ``--ray`` tasks run one after another here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from packager.arguments import comma_list


@dataclass(frozen=True)
class Task:
    family: str
    variant: str
    backend: str


def matrix(
    families: Sequence[str] | None = None,
    recipe_dirs: Sequence[Path] = (),
    variants: Sequence[str] | None = None,
    backends: Sequence[str] | None = None,
) -> list[Task]:
    """Every (family, variant, backend) the recipes define, optionally filtered."""
    from packager.recipes import default_recipe_dirs, find_recipes, load_recipe

    found: dict[str, Path] = {}
    for directory in reversed([*recipe_dirs, *default_recipe_dirs()]):
        found.update(find_recipes(Path(directory)))
    tasks = []
    for name in sorted(found):
        if families and name not in families:
            continue
        recipe = load_recipe(found[name])
        for variant in recipe.variants:
            if variants and variant not in variants:
                continue
            for backend in recipe.backends:
                if not backends or backend in backends:
                    tasks.append(Task(name, variant, backend))
    return tasks


def run_task(task: Task, out_root: str, extra_args: Sequence[str] = ()) -> dict[str, Any]:
    """Run one ``pack`` in a subprocess; returns the task, exit code, output folder and report path."""
    out_dir = Path(out_root) / task.family / f"{task.variant}-{task.backend}"
    argv = [sys.executable, "-m", "packager.cli", task.family, "--variants", task.variant]
    argv += ["--backends", task.backend, "--out", str(out_dir), "--quiet", *extra_args]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    return {
        **asdict(task),
        "exit_code": proc.returncode,
        "out_dir": str(out_dir),
        "report": str(out_dir / "report.json") if (out_dir / "report.json").is_file() else None,
        "stderr_tail": proc.stderr[-2000:],
        "host": os.uname().nodename,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


def run_local(tasks: Sequence[Task], out_root: Path, extra_args: Sequence[str] = ()) -> list[dict[str, Any]]:
    return [run_task(t, str(out_root), extra_args) for t in tasks]


def run_ray(
    tasks: Sequence[Task],
    out_root: Path,
    extra_args: Sequence[str] = (),
    address: str | None = None,
    gpus_per_task: float | None = None,
    init_kwargs: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """One Ray task per :class:`Task`; ``num_gpus=1`` each when the cluster has GPUs (override with
    ``gpus_per_task``). Starts a local Ray instance when ``address`` is None and none is running."""
    try:
        import ray
    except ImportError as exc:
        from backends.errors import MissingExtraError

        raise MissingExtraError("the Ray fan-out", "ray", "ray") from exc
    started = False
    if not ray.is_initialized():
        ray.init(address=address, **(init_kwargs or {}))
        started = True
    try:
        if gpus_per_task is None:
            gpus_per_task = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        options = {"num_gpus": gpus_per_task} if gpus_per_task else {"num_cpus": 1}
        remote = ray.remote(**options)(run_task)
        # Workers import this module by name; the driver's sys.path (the project checkout) goes with them.
        refs = [remote.remote(t, str(out_root), list(extra_args)) for t in tasks]
        return ray.get(refs)
    finally:
        if started:
            ray.shutdown()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m packager.nightly.fanout", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--out", type=Path, required=True, help="results folder (DIR/FAMILY/VARIANT-BACKEND)")
    p.add_argument("--families", type=comma_list, help="comma-separated families (default: every recipe)")
    p.add_argument("--variants", type=comma_list, help="comma-separated variants (default: all)")
    p.add_argument("--backends", type=comma_list, help="comma-separated backends (default: the recipe's)")
    p.add_argument("--recipes", type=Path, action="append", default=[], help="extra recipe folder")
    p.add_argument("--ray", action="store_true", help="run the tasks on Ray (extra: ray)")
    p.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS or a local instance)")
    p.add_argument("pack_args", nargs=argparse.REMAINDER, help="after --: extra arguments for every pack")
    args = p.parse_args(argv)
    tasks = matrix(args.families, args.recipes, args.variants, args.backends)
    extra = [a for a in args.pack_args if a != "--"]
    for recipe_dir in args.recipes:
        extra += ["--recipes", str(recipe_dir)]
    args.out.mkdir(parents=True, exist_ok=True)
    if args.ray:
        results = run_ray(tasks, args.out.resolve(), extra, address=args.address)
    else:
        results = run_local(tasks, args.out.resolve(), extra)
    (args.out / "fanout.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    for r in results:
        print(f"{r['family']}/{r['variant']}/{r['backend']}: exit {r['exit_code']} -> {r['out_dir']}")
    return max((r["exit_code"] for r in results), default=0)


if __name__ == "__main__":
    sys.exit(main())
