"""Fan the nightly matrix out: every family's packages, here or on a Ray cluster, gathered in one folder.

``python -m packager.nightly.fanout --out DIR [--families a,b] [--variants ..] [--backends ..]
[--ray [ADDRESS]] [--targets t1,t2] [--parallel N] [-- PACK ARGS]`` runs one ``pack FAMILY`` per family
into ``DIR/FAMILY`` (every variant unless ``--variants``), each in its own process so one crash never
takes the others down; ``DIR/fanout.json`` lists them with their exit codes and packages.

With ``--ray`` each of those is ``pack FAMILY --ray ADDRESS``: the cluster mechanism of
:mod:`packager.cluster`, one Ray task per (variant, backend, target) on a node of its target, zips,
manifests, goldens and report gathered into ``DIR/FAMILY`` on this machine, a package built once reused on
any node the next night. ``DIR/FAMILY`` is what a local ``pack`` writes, so the rest of the nightly (the
plugin, ``pack runs``, ``pack compare``) reads both alike. Ray is the optional extra ``ray``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from packager.arguments import comma_list


@dataclass(frozen=True)
class FamilyRun:
    """One family's ``pack``: which variants and backends."""

    family: str
    variants: tuple[str, ...]
    backends: tuple[str, ...]


def plan(
    families: Sequence[str] | None = None,
    recipe_dirs: Sequence[Path] = (),
    variants: Sequence[str] | None = None,
    backends: Sequence[str] | None = None,
) -> list[FamilyRun]:
    """Every family the recipes define (optionally filtered) with its variants and backends; a family left
    with none of the asked variants or backends is left out."""
    from packager.recipes import default_recipe_dirs, find_recipes, load_recipe

    found: dict[str, Path] = {}
    for directory in reversed([*recipe_dirs, *default_recipe_dirs()]):
        found.update(find_recipes(Path(directory)))
    runs = []
    for name in sorted(found):
        if families and name not in families:
            continue
        recipe = load_recipe(found[name])
        chosen_variants = tuple(v for v in recipe.variants if not variants or v in variants)
        chosen_backends = tuple(b for b in recipe.backends if not backends or b in backends)
        if chosen_variants and chosen_backends:
            runs.append(FamilyRun(name, chosen_variants, chosen_backends))
    return runs


def pack_argv(run: FamilyRun, out_root: Path, ray: str | None, extra: Sequence[str] = ()) -> list[str]:
    """The ``pack`` command line of one family (``ray``: the cluster address, ``""`` for the default)."""
    argv = [sys.executable, "-m", "packager.cli", run.family, "--variants", ",".join(run.variants)]
    argv += ["--backends", ",".join(run.backends), "--out", str(out_root / run.family), "--quiet"]
    if ray is not None:
        argv += ["--ray", ray] if ray else ["--ray"]
    return argv + list(extra)


def run_family(run: FamilyRun, out_root: Path, ray: str | None, extra: Sequence[str] = ()) -> dict[str, Any]:
    """Run one family's ``pack``; its exit code, output folder, report and where each package was built."""
    out_dir = out_root / run.family
    proc = subprocess.run(pack_argv(run, out_root, ray, extra), capture_output=True, text=True, check=False)
    report_path = out_dir / "report.json"
    packages = []
    if report_path.is_file():
        report = json.loads(report_path.read_text("utf-8"))
        for p in report.get("packages", []):
            cluster = p.get("cluster") or {}
            packages.append(
                {
                    "variant": p["variant"],
                    "backend": p["backend"],
                    "zip": p["zip"],
                    "sha256": p["sha256"],
                    "built_on": cluster.get("built_on"),
                    "checked_on": {
                        t: (v.get("node") or {}).get("hostname")
                        for t, v in cluster.get("targets", {}).items()
                    },
                }
            )
    return {
        **asdict(run),
        "exit_code": proc.returncode,
        "out_dir": str(out_dir),
        "report": str(report_path) if report_path.is_file() else None,
        "packages": packages,
        "stderr_tail": proc.stderr[-2000:],
    }


def run_all(
    runs: Sequence[FamilyRun], out_root: Path, ray: str | None, extra: Sequence[str] = (), parallel: int = 1
) -> list[dict[str, Any]]:
    """Every family's ``pack``, up to ``parallel`` at once (with ``--ray`` the work is on the cluster and
    this machine only prepares references and gathers), results in the order of ``runs``."""
    with concurrent.futures.ThreadPoolExecutor(max(1, parallel)) as pool:
        return list(pool.map(lambda r: run_family(r, out_root, ray, extra), runs))


def main(argv: Sequence[str] | None = None) -> int:
    from packager import atomic

    p = argparse.ArgumentParser(
        prog="python -m packager.nightly.fanout", description=__doc__.split("\n\n")[0], allow_abbrev=False
    )
    p.add_argument("--out", type=Path, required=True, help="results folder (DIR/FAMILY, as pack writes it)")
    p.add_argument("--families", type=comma_list, help="comma-separated families (default: every recipe)")
    p.add_argument("--variants", type=comma_list, help="comma-separated variants (default: all)")
    p.add_argument("--backends", type=comma_list, help="comma-separated backends (default: the recipe's)")
    p.add_argument("--recipes", type=Path, action="append", default=[], help="extra recipe folder")
    p.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="pack on the Ray cluster at ADDRESS (default: $RAY_ADDRESS, else the local one; extra: ray)",
    )
    p.add_argument("--address", help=argparse.SUPPRESS)  # the former spelling of --ray ADDRESS
    p.add_argument("--targets", type=comma_list, help="with --ray: comma-separated targets for every package")
    p.add_argument("--parallel", type=int, help="families packed at once (default: 2 with --ray, else 1)")
    p.add_argument("pack_args", nargs=argparse.REMAINDER, help="after --: extra arguments for every pack")
    args = p.parse_args(argv)
    ray = args.address if args.address and args.ray is not None else args.ray
    runs = plan(args.families, args.recipes, args.variants, args.backends)
    extra = [a for a in args.pack_args if a != "--"]
    for recipe_dir in args.recipes:
        extra += ["--recipes", str(recipe_dir)]
    if args.targets:
        extra += ["--targets", ",".join(args.targets)]
    args.out.mkdir(parents=True, exist_ok=True)
    parallel = args.parallel or (2 if ray is not None else 1)
    results = run_all(runs, args.out.resolve(), ray, extra, parallel)
    atomic.write_json(args.out / "fanout.json", results)
    for r in results:
        print(f"{r['family']}: exit {r['exit_code']} -> {r['out_dir']} ({len(r['packages'])} packages)")
    return max((r["exit_code"] for r in results), default=0)


if __name__ == "__main__":
    sys.exit(main())
