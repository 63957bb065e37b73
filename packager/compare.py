"""``pack compare BASELINE.json CURRENT.json``: regression detection between two ``report.json`` files.

Latency: for every (variant, backend, device, batch) measured in both runs, the pooled raw samples
(``samples_ms``) are compared with a bootstrap confidence interval of the ratio current/baseline of the
median and of the p99, and a one-sided Mann-Whitney U test (scipy). A row regresses when the whole bootstrap
CI of the median ratio lies above ``1 + --threshold`` *and* the shift is significant (U test p <
``--alpha``), or when the whole CI of the p99 ratio lies above ``1 + --p99-threshold`` (looser, because a
tail percentile from tens of samples is noisy). Requiring the CI's lower bound, not the point estimate, to
clear the threshold is what keeps an unchanged run on a noisy machine from being flagged: two identical
back-to-back runs on a 2-core VM differed by 8 % at the median with a CI of [1.01, 1.13].

Parity: the error of each output is tracked against the baseline's, not only against the tolerance: a
``max_abs`` that grew ``--parity-growth`` times (default 10x) is flagged even while still inside tolerance;
a check that passed before and fails now is a regression too.

Runs are compared only when their environments match (CPU, GPUs, driver, CUDA/cuDNN and runtime versions,
see :func:`env_fingerprint`); ``--allow-env-mismatch`` overrides that and says so in the summary.

Exit codes: 0 no regression, 1 regression, 2 bad input or environment mismatch.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from packager.commands import verb_parser
from packager.errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_OK, UsageError

RUNTIME_LIBRARIES = ("torch", "onnxruntime", "onnxruntime-gpu", "tensorrt", "numpy", "transformers")


class EnvironmentMismatchError(UsageError):
    """Two reports were measured on different hardware or software stacks."""


@dataclass(frozen=True)
class Thresholds:
    median: float = 0.05  # flag a median slowdown whose CI lies entirely above +5 %
    p99: float = 0.15  # flag a p99 slowdown whose CI lies entirely above +15 %
    alpha: float = 0.01  # Mann-Whitney one-sided significance level
    confidence: float = 0.95  # bootstrap CI level
    resamples: int = 2000
    parity_growth: float = 10.0  # max_abs x10 over the baseline's
    parity_floor: float = 0.01  # ... where the baseline error counts as at least 1 % of atol
    seed: int = 0


@dataclass
class LatencyComparison:
    key: str
    baseline_n: int
    current_n: int
    baseline_p50_ms: float
    current_p50_ms: float
    median_ratio: float
    median_ci: tuple[float, float]
    p99_ratio: float
    p99_ci: tuple[float, float]
    mannwhitney_p: float
    verdict: str  # "regression", "improvement", "unchanged"
    reasons: list[str] = field(default_factory=list)


@dataclass
class ParityComparison:
    key: str
    baseline_max_abs: float | None
    current_max_abs: float | None
    atol: float | None
    growth: float | None
    passed: bool | None
    verdict: str  # "regression", "ok"
    reasons: list[str] = field(default_factory=list)


@dataclass
class Comparison:
    baseline: str
    current: str
    environment_match: bool
    environment_differences: list[str]
    latency: list[LatencyComparison]
    parity: list[ParityComparison]
    missing: list[str]

    @property
    def regressed(self) -> bool:
        return (
            any(r.verdict == "regression" for r in self.latency)
            or any(r.verdict == "regression" for r in self.parity)
            or bool(self.missing)
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "regressed": self.regressed}


# -- environment ------------------------------------------------------------------------------------------


def env_fingerprint(env: dict[str, Any]) -> dict[str, Any]:
    """What a latency number depends on: CPU model and count, GPU names/CC, driver, CUDA, cuDNN, runtimes."""
    cuda = env.get("cuda") or {}
    libraries = env.get("libraries") or {}
    return {
        "machine": env.get("machine"),
        "cpu": env.get("cpu"),
        "cpu_count": env.get("cpu_count"),
        "torch_threads": env.get("torch_threads"),
        "gpus": [f"{d.get('name')} (CC {d.get('compute_capability')})" for d in cuda.get("devices", [])],
        "driver_version": cuda.get("driver_version"),
        "cuda_version": cuda.get("cuda_version"),
        "cudnn_version": cuda.get("cudnn_version"),
        **{f"lib:{name}": libraries.get(name) for name in RUNTIME_LIBRARIES},
    }


def env_key(env: dict[str, Any]) -> str:
    """Short stable hash of :func:`env_fingerprint`: the folder name baselines are kept under."""
    payload = json.dumps(env_fingerprint(env), sort_keys=True).encode()
    return hashlib.sha256(payload).hexdigest()[:16]


def env_differences(baseline: dict[str, Any], current: dict[str, Any]) -> list[str]:
    a, b = env_fingerprint(baseline), env_fingerprint(current)
    return [f"{k}: {a[k]!r} -> {b[k]!r}" for k in sorted(a) if a[k] != b.get(k)]


# -- statistics -------------------------------------------------------------------------------------------


def bootstrap_ratio_ci(
    baseline: np.ndarray, current: np.ndarray, q: float, t: Thresholds
) -> tuple[float, tuple[float, float]]:
    """Ratio of the ``q``-th percentile current/baseline and its bootstrap percentile CI (seeded)."""
    rng = np.random.default_rng(t.seed)
    point = float(np.percentile(current, q) / np.percentile(baseline, q))
    bi = rng.integers(0, baseline.size, size=(t.resamples, baseline.size))
    ci_ = rng.integers(0, current.size, size=(t.resamples, current.size))
    ratios = np.percentile(current[ci_], q, axis=1) / np.percentile(baseline[bi], q, axis=1)
    lo, hi = np.percentile(ratios, [(1 - t.confidence) / 2 * 100, (1 + t.confidence) / 2 * 100])
    return point, (float(lo), float(hi))


def compare_samples(key: str, baseline: Sequence[float], current: Sequence[float], t: Thresholds):
    from scipy.stats import mannwhitneyu

    b = np.asarray(baseline, dtype=np.float64)
    c = np.asarray(current, dtype=np.float64)
    med, med_ci = bootstrap_ratio_ci(b, c, 50, t)
    p99, p99_ci = bootstrap_ratio_ci(b, c, 99, t)
    p_slower = float(mannwhitneyu(c, b, alternative="greater").pvalue)
    p_faster = float(mannwhitneyu(c, b, alternative="less").pvalue)
    reasons = []
    if med_ci[0] > 1 + t.median and p_slower < t.alpha:
        reasons.append(
            f"median {med:.3f}x (CI {med_ci[0]:.3f}-{med_ci[1]:.3f}) > {1 + t.median:.2f}x, "
            f"Mann-Whitney p={p_slower:.2g}"
        )
    if p99_ci[0] > 1 + t.p99:
        reasons.append(f"p99 {p99:.3f}x (CI {p99_ci[0]:.3f}-{p99_ci[1]:.3f}) > {1 + t.p99:.2f}x")
    if reasons:
        verdict = "regression"
    elif med_ci[1] < 1 - t.median and p_faster < t.alpha:
        verdict = "improvement"
    else:
        verdict = "unchanged"
    return LatencyComparison(
        key=key,
        baseline_n=int(b.size),
        current_n=int(c.size),
        baseline_p50_ms=float(np.median(b)),
        current_p50_ms=float(np.median(c)),
        median_ratio=med,
        median_ci=med_ci,
        p99_ratio=p99,
        p99_ci=p99_ci,
        mannwhitney_p=p_slower,
        verdict=verdict,
        reasons=reasons,
    )


# -- reports ----------------------------------------------------------------------------------------------


def _latency_rows(report: dict) -> dict[str, dict]:
    return {
        f"{r['variant']}/{r['backend']}/{r['device']}/bs{r['batch_size']}": r
        for r in report.get("latency", [])
        if r.get("samples_ms")
    }


def _parity_rows(report: dict) -> dict[str, dict]:
    return {f"{p['variant']}/{p['backend']}/{p['device']}/{p['output']}": p for p in report.get("parity", [])}


def compare_reports(
    baseline: dict, current: dict, t: Thresholds | None = None, allow_env_mismatch: bool = False
) -> Comparison:
    t = t or Thresholds()
    if baseline.get("family") != current.get("family"):
        raise UsageError(
            f"reports are of different families: {baseline.get('family')} vs {current.get('family')}"
        )
    diffs = env_differences(baseline.get("environment", {}), current.get("environment", {}))
    if diffs and not allow_env_mismatch:
        raise EnvironmentMismatchError(
            "the reports were measured in different environments (" + "; ".join(diffs) + "); compare against "
            "a baseline from the same machine/driver/runtimes, or pass --allow-env-mismatch"
        )
    missing: list[str] = []
    latency = []
    base_lat, cur_lat = _latency_rows(baseline), _latency_rows(current)
    for key in sorted(base_lat):
        if key not in cur_lat:
            missing.append(f"latency {key}")
            continue
        latency.append(compare_samples(key, base_lat[key]["samples_ms"], cur_lat[key]["samples_ms"], t))
    parity = []
    base_par, cur_par = _parity_rows(baseline), _parity_rows(current)
    for key in sorted(base_par):
        if key not in cur_par:
            missing.append(f"parity {key}")
            continue
        parity.append(_compare_parity(key, base_par[key], cur_par[key], t))
    return Comparison(
        baseline=str(baseline.get("created_at")),
        current=str(current.get("created_at")),
        environment_match=not diffs,
        environment_differences=diffs,
        latency=latency,
        parity=parity,
        missing=missing,
    )


def _compare_parity(key: str, base: dict, cur: dict, t: Thresholds) -> ParityComparison:
    reasons = []
    b, c, atol = base.get("max_abs"), cur.get("max_abs"), cur.get("atol")
    growth = None
    if base.get("passed") and not cur.get("passed"):
        reasons.append(f"failed now: {cur.get('reason')}")
    if b is not None and c is not None:
        floor = max(b, (atol or 0.0) * t.parity_floor, 1e-12)
        growth = c / floor
        if not math.isfinite(c) or growth > t.parity_growth:
            reasons.append(
                f"max_abs {b:.3g} -> {c:.3g} ({growth:.1f}x, limit {t.parity_growth:g}x)"
                + (" while still inside tolerance" if cur.get("passed") else "")
            )
    return ParityComparison(
        key=key,
        baseline_max_abs=b,
        current_max_abs=c,
        atol=atol,
        growth=growth,
        passed=cur.get("passed"),
        verdict="regression" if reasons else "ok",
        reasons=reasons,
    )


# -- output -----------------------------------------------------------------------------------------------


def render_markdown(result: Comparison, family: str, t: Thresholds) -> str:
    status = "REGRESSION" if result.regressed else "no regression"
    out = [f"## weightpack compare: {family}: {status}", ""]
    out.append(f"Baseline {result.baseline} vs current {result.current}.")
    if result.environment_differences:
        out.append("")
        out.append("**Environments differ (compared anyway, --allow-env-mismatch):**")
        out += [f"- {d}" for d in result.environment_differences]
    out += [
        "",
        f"Latency: bootstrap {t.confidence:.0%} CI of the current/baseline ratio; regression when the "
        f"whole CI of the median ratio is above {1 + t.median:.2f}x and the shift is significant "
        f"(Mann-Whitney p < {t.alpha:g}), or the whole p99 CI is above {1 + t.p99:.2f}x.",
        "",
        "| package/device/batch | n (base/cur) | p50 ms (base -> cur) | median ratio [CI] | p99 ratio [CI] "
        "| MW p | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result.latency:
        out.append(
            f"| {r.key} | {r.baseline_n}/{r.current_n} | {r.baseline_p50_ms:.3f} -> {r.current_p50_ms:.3f} "
            f"| {r.median_ratio:.3f} [{r.median_ci[0]:.3f}, {r.median_ci[1]:.3f}] "
            f"| {r.p99_ratio:.3f} [{r.p99_ci[0]:.3f}, {r.p99_ci[1]:.3f}] | {r.mannwhitney_p:.2g} "
            f"| {_badge(r.verdict)} |"
        )
    out += [
        "",
        f"Parity error growth: flagged when max_abs grows over {t.parity_growth:g}x the baseline's, "
        "even inside tolerance.",
        "",
        "| output | max_abs base -> cur | atol | growth | passed | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for p in result.parity:
        growth = f"{p.growth:.1f}x" if p.growth is not None else "-"
        out.append(
            f"| {p.key} | {_num(p.baseline_max_abs)} -> {_num(p.current_max_abs)} | {_num(p.atol)} "
            f"| {growth} | {p.passed} | {_badge(p.verdict)} |"
        )
    if result.missing:
        out += ["", "**Missing from the current run:**"] + [f"- {m}" for m in result.missing]
    reasons = [f"- {r.key}: {why}" for r in [*result.latency, *result.parity] for why in r.reasons]
    if reasons:
        out += ["", "**Regressions:**", *reasons]
    return "\n".join(out) + "\n"


def _badge(verdict: str) -> str:
    return {"regression": "**REGRESSION**", "improvement": "improvement"}.get(verdict, verdict)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


# -- command line -----------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    d = Thresholds()
    p = verb_parser("compare", __doc__)
    p.add_argument("baseline", type=Path, nargs="?", help="baseline report.json")
    p.add_argument("current", type=Path, nargs="?", help="current report.json")
    p.add_argument("--threshold", type=float, default=d.median, help="median slowdown tolerated (0.05 = 5%%)")
    p.add_argument("--p99-threshold", type=float, default=d.p99, help="p99 slowdown tolerated (default 0.15)")
    p.add_argument("--alpha", type=float, default=d.alpha, help="Mann-Whitney significance level")
    p.add_argument("--confidence", type=float, default=d.confidence, help="bootstrap CI level (0.95)")
    p.add_argument("--resamples", type=int, default=d.resamples, help="bootstrap resamples")
    p.add_argument("--parity-growth", type=float, default=d.parity_growth, help="max_abs growth factor (10)")
    p.add_argument("--allow-env-mismatch", action="store_true", help="compare across environments anyway")
    p.add_argument("--markdown", type=Path, help="write the Markdown summary to FILE")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.add_argument(
        "--env-key",
        action="store_true",
        help="print the environment key of BASELINE (or of this machine when no report is given) and exit",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.env_key:
        if args.baseline:
            env = _load(args.baseline).get("environment", {})
        else:
            from bench import environment

            env = environment.capture()
        print(env_key(env))
        return EXIT_OK
    if not (args.baseline and args.current):
        raise UsageError("pack compare needs BASELINE.json and CURRENT.json")
    t = Thresholds(
        median=args.threshold,
        p99=args.p99_threshold,
        alpha=args.alpha,
        confidence=args.confidence,
        resamples=args.resamples,
        parity_growth=args.parity_growth,
    )
    baseline, current = _load(args.baseline), _load(args.current)
    result = compare_reports(baseline, current, t, allow_env_mismatch=args.allow_env_mismatch)
    markdown = render_markdown(result, current.get("family", "?"), t)
    if args.markdown:
        args.markdown.write_text(markdown, encoding="utf-8")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(markdown)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(markdown)
    return EXIT_CHECK_FAILED if result.regressed else EXIT_OK


def _load(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read report {path}: {exc}") from exc
    if not isinstance(data, dict) or "latency" not in data:
        raise UsageError(f"{path} is not a weightpack report.json")
    return data


EXIT_ENV_MISMATCH = EXIT_BAD_INPUT
