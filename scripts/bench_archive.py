"""Benchmark build_zip (zip + per-file md5/sha256 + zip md5/sha256) against `zip -0 -r -q` on the same files,
and measure the peak memory of packing one big file in a fresh subprocess.

    PYTHONPATH=. python scripts/bench_archive.py --size-gb 1 --big-file-gb 2

The tree is random (incompressible) data in a temporary directory that is removed afterwards. Timings are
best of --repeat runs with a warm page cache, so they measure CPU (CRC, hashing, copying), not the disk.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from packager.archive import build_zip

MIB = 1 << 20
GIB = 1 << 30


def write_random(path: Path, size: int) -> None:
    with open(path, "wb") as handle:
        left = size
        while left > 0:
            n = min(16 * MIB, left)
            handle.write(os.urandom(n))
            left -= n


def make_tree(root: Path, total: int, files: int) -> None:
    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps({"model_type": "bench", "files": files}))
    each = total // files
    for i in range(files):
        write_random(root / f"model-{i:05d}-of-{files:05d}.safetensors", each)


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def run_ours(tree: Path, out: Path) -> None:
    out.unlink(missing_ok=True)
    build_zip(tree, out)


def run_zip(tree: Path, out: Path) -> None:
    out.unlink(missing_ok=True)
    subprocess.run(["zip", "-0", "-r", "-q", str(out), "."], cwd=tree, check=True)


def run_zip_and_hash(tree: Path, out: Path) -> None:
    run_zip(tree, out)
    files = [*sorted(str(p) for p in tree.rglob("*") if p.is_file()), str(out)]
    subprocess.run(["md5sum", *files], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["sha256sum", *files], check=True, stdout=subprocess.DEVNULL)


def rss_child(tree: Path, out: Path) -> None:
    """Runs in a fresh interpreter: baseline RSS after imports, then the high-water mark of one build."""
    import psutil

    baseline = psutil.Process().memory_info().rss
    start = time.perf_counter()
    result = build_zip(tree, out)
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    print(json.dumps({"baseline": baseline, "peak": peak, "seconds": elapsed, "bytes": result.size}))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-gb", type=float, default=1.0, help="total size of the multi-file tree")
    parser.add_argument("--files", type=int, default=8, help="number of weight files in the tree")
    parser.add_argument("--big-file-gb", type=float, default=2.0, help="single file for the RSS run; 0 skips")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rss-target-mb", type=float, default=300.0)
    parser.add_argument("--workdir", type=Path, default=None, help="where temp data goes (default: $TMPDIR)")
    parser.add_argument("--rss-child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(*args.rss_child)
        return 0

    if shutil.which("zip") is None:
        print("`zip` is not installed; install it with: apt-get install zip", file=sys.stderr)
        return 3
    total = int(args.size_gb * GIB)
    big = int(args.big_file_gb * GIB)
    work = Path(tempfile.mkdtemp(prefix="bench_archive.", dir=args.workdir))
    need = 2 * total + 2 * big + 64 * MIB
    free = shutil.disk_usage(work).free
    if free < need:
        shutil.rmtree(work)
        print(
            f"not enough disk in {work.parent}: need {need / GIB:.1f} GiB, have {free / GIB:.1f}",
            file=sys.stderr,
        )
        return 3
    rows: list[tuple[str, str, str]] = []
    try:
        tree = work / "tree"
        make_tree(tree, total, args.files)
        size_mb = sum(p.stat().st_size for p in tree.iterdir()) / 1e6
        t_ours = best_of(args.repeat, lambda: run_ours(tree, work / "ours.zip"))
        t_zip = best_of(args.repeat, lambda: run_zip(tree, work / "zip0.zip"))
        t_both = best_of(args.repeat, lambda: run_zip_and_hash(tree, work / "zip0h.zip"))
        rows.append(
            ("build_zip (zip+md5+sha256 of files and zip)", f"{t_ours:.2f} s", f"{size_mb / t_ours:.0f} MB/s")
        )
        rows.append(("zip -0 -r -q", f"{t_zip:.2f} s", f"{size_mb / t_zip:.0f} MB/s"))
        rows.append(
            ("zip -0 + md5sum + sha256sum (files, zip)", f"{t_both:.2f} s", f"{size_mb / t_both:.0f} MB/s")
        )
        rows.append(("ratio build_zip / zip -0 (time)", f"{t_ours / t_zip:.2f}x", ""))
        rows.append(("ratio build_zip / zip+hash tools (time)", f"{t_ours / t_both:.2f}x", ""))
        shutil.rmtree(tree)
        for name in ("ours.zip", "zip0.zip", "zip0h.zip"):
            (work / name).unlink(missing_ok=True)

        if big:
            big_tree = work / "big"
            big_tree.mkdir()
            write_random(big_tree / "model.safetensors", big)
            child = subprocess.run(
                [sys.executable, __file__, "--rss-child", str(big_tree), str(work / "big.zip")],
                check=True,
                capture_output=True,
                text=True,
            )
            stats = json.loads(child.stdout.strip().splitlines()[-1])
            delta_mb = (stats["peak"] - stats["baseline"]) / 1e6
            verdict = "PASS" if delta_mb <= args.rss_target_mb else "FAIL"
            rows.append(
                (
                    f"single {big / GIB:g} GiB file: build_zip",
                    f"{stats['seconds']:.2f} s",
                    f"{big / 1e6 / stats['seconds']:.0f} MB/s",
                )
            )
            rows.append(("  interpreter baseline RSS", f"{stats['baseline'] / 1e6:.0f} MB", ""))
            rows.append(
                (
                    "  peak RSS - baseline",
                    f"{delta_mb:.1f} MB",
                    f"{verdict} (target <= {args.rss_target_mb:g} MB)",
                )
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"tree: {args.files} files, {total / GIB:g} GiB random data; "
        f"best of {args.repeat}; cpus={os.cpu_count()}"
    )
    width = max(len(r[0]) for r in rows)
    for name, a, b in rows:
        print(f"{name:<{width}}  {a:>10}  {b}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
