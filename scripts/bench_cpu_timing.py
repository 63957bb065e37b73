#!/usr/bin/env python
"""CPU timing benchmark (not a test): the thread setting and adaptive stopping, on MTCNN's O-net (facenet-
pytorch's shipped weights) through torch and through onnxruntime, batch 1 and 16.

``threads``: for each setting (torch's/onnxruntime's own default, then 1 and 2 intra-op threads) and each
runtime, a few interleaved rounds of ``bench.latency.measure`` with a fixed budget; prints p50, min, the
coefficient of variation (CoV, the report's ``stable`` test is CoV <= 2.5 %), and how many rows are stable.
This is the measurement behind ``bench.threads.DEFAULT_INTRA_OP``.

``stopping``: adaptive stopping (median 95 % CI half-width <= ``--target``) against a fixed-duration run of
``--fixed-s`` seconds (pytest-benchmark / optimum-benchmark style), same callable, interleaved rounds;
prints the time each took, the precision each reached, and the ratio of times.

The machine's load average is printed with every result: on a shared machine, say under what load a
figure was measured. Usage:

    PYTHONPATH=$PWD python scripts/bench_cpu_timing.py threads [--rounds 3] [--seconds 2]
    PYTHONPATH=$PWD python scripts/bench_cpu_timing.py stopping [--rounds 3] [--target 0.01] [--fixed-s 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "recipes"))  # mtcnn_nets, beside its recipe

from bench.latency import LatencyConfig, ci_half_width, measure  # noqa: E402


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min) {five:.1f} (5 min) on {os.cpu_count()} CPUs"


def runners(threads: int | None, tmp: Path) -> dict[str, Callable[[dict], object]]:
    """``{"torch": fn, "onnx": fn}`` for O-net with ``threads`` intra-op threads (``None``: library
    defaults: torch's get_num_threads() at start-up, onnxruntime's 0 = one per core)."""
    import torch
    from mtcnn_nets import MTCNNNet

    from backends.onnx.model import OnnxModel
    from tests.backends.helpers import mtcnn_dir

    torch.set_num_threads(threads or DEFAULT_TORCH_THREADS)
    ref = MTCNNNet.from_pretrained(mtcnn_dir(), net="onet")
    onnx_dir = tmp / "onnx"
    if not (onnx_dir / "weights.onnx").exists():
        onnx_dir.mkdir(exist_ok=True)
        with torch.no_grad():
            torch.onnx.export(
                ref.module,
                (torch.rand(1, 3, 48, 48),),
                str(onnx_dir / "weights.onnx"),
                input_names=["image"],
                dynamic_axes={"image": {0: "batch"}},
                dynamo=False,
            )
    kwargs = {"intra_op_num_threads": threads, "inter_op_num_threads": 1} if threads else {}
    onnx = OnnxModel.from_pretrained(onnx_dir, **kwargs)
    return {"torch": ref.infer, "onnx": onnx.infer}


def inputs(batch: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(batch)
    return [{"image": rng.uniform(-1, 1, (batch, 3, 48, 48)).astype(np.float32)} for _ in range(4)]


def cmd_threads(args: argparse.Namespace) -> None:
    settings: list[int | None] = [None, 1, 2]
    config = LatencyConfig(
        warmup_iters=10, warmup_s=0.2, min_iters=30, min_time_s=args.seconds, max_time_s=args.seconds
    )
    rows: dict[tuple, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for threads in settings:
                fns = runners(threads, Path(tmp))
                for name, fn in fns.items():
                    for batch in (1, 16):
                        r = measure(fn, inputs(batch), config)
                        rows.setdefault((threads, name, batch), []).append(r.stats)
    print(f"# threads: O-net, {args.rounds} rounds x {args.seconds} s per row; {load()}")
    print(f"{'threads':>8} {'runtime':>7} {'batch':>5} {'p50 ms':>8} {'min ms':>8} {'CoV':>7} {'stable':>7}")
    summary: dict[str, list[float]] = {}
    for (threads, name, batch), stats in rows.items():
        label = "default" if threads is None else str(threads)
        covs = [s["cov"] for s in stats]
        summary.setdefault(label, []).extend(covs)
        print(
            f"{label:>8} {name:>7} {batch:>5} {statistics.median(s['p50_ms'] for s in stats):8.3f} "
            f"{min(s['min_ms'] for s in stats):8.3f} {statistics.median(covs):7.2%} "
            f"{sum(s['stable'] for s in stats)}/{len(stats):<5}"
        )
    for label, covs in summary.items():
        print(
            f"threads={label}: median CoV {statistics.median(covs):.2%}, "
            f"stable rows {sum(c <= 0.025 for c in covs)}/{len(covs)}"
        )


def cmd_stopping(args: argparse.Namespace) -> None:
    adaptive = LatencyConfig(
        warmup_iters=10,
        warmup_s=0.2,
        min_iters=30,
        min_time_s=0.0,
        max_time_s=args.fixed_s,
        target_ci=args.target,
    )
    fixed = LatencyConfig(
        warmup_iters=10, warmup_s=0.2, min_iters=30, min_time_s=args.fixed_s, max_time_s=args.fixed_s
    )
    results: dict[tuple, list[tuple[float, float, str]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        fns = runners(1, Path(tmp))
        for _ in range(args.rounds):
            for name, fn in fns.items():
                for batch in (1, 16):
                    for label, config in (("adaptive", adaptive), ("fixed", fixed)):
                        r = measure(fn, inputs(batch), config)
                        results.setdefault((name, batch, label), []).append(
                            (r.total_s, ci_half_width(r.samples_ms), r.stopped_by)
                        )
    print(
        f"# stopping: target CI half-width {args.target:.1%} vs fixed {args.fixed_s} s; {args.rounds} "
        f"rounds; threads=1; {load()}"
    )
    print(
        f"{'runtime':>7} {'batch':>5} {'adaptive s':>10} {'CI':>7} {'stopped_by':>18} {'fixed s':>8} "
        f"{'CI':>7} {'time ratio':>10}"
    )
    ratios = []
    for name in ("torch", "onnx"):
        for batch in (1, 16):
            a = results[(name, batch, "adaptive")]
            f = results[(name, batch, "fixed")]
            a_s, f_s = statistics.median(x[0] for x in a), statistics.median(x[0] for x in f)
            ratios.append(a_s / f_s)
            stops = ",".join(sorted({x[2] for x in a}))
            print(
                f"{name:>7} {batch:>5} {a_s:10.2f} {statistics.median(x[1] for x in a):7.2%} {stops:>18} "
                f"{f_s:8.2f} {statistics.median(x[1] for x in f):7.2%} {a_s / f_s:10.3f}"
            )
    print(f"time-to-precision ratio (adaptive / fixed), median over rows: {statistics.median(ratios):.3f}")


DEFAULT_TORCH_THREADS = 0


def main() -> None:
    global DEFAULT_TORCH_THREADS
    import torch

    DEFAULT_TORCH_THREADS = torch.get_num_threads()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("threads")
    t.add_argument("--rounds", type=int, default=3)
    t.add_argument("--seconds", type=float, default=2.0)
    s = sub.add_parser("stopping")
    s.add_argument("--rounds", type=int, default=3)
    s.add_argument("--target", type=float, default=0.01)
    s.add_argument("--fixed-s", type=float, default=10.0)
    args = parser.parse_args()
    {"threads": cmd_threads, "stopping": cmd_stopping}[args.cmd](args)


if __name__ == "__main__":
    main()
