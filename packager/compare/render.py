"""Markdown for a :class:`bench.regression.Comparison` (stdout, ``--markdown``, ``$GITHUB_STEP_SUMMARY``)."""

from __future__ import annotations

from bench.regression import Comparison, LatencyComparison, Thresholds
from bench.stats import RatioInterval

METHOD_TEXT = {
    "runs": "t interval of the ratio of geometric means of per-run statistics (runs vs runs)",
    "pairs": "t interval of the mean ratio within A/B pairs measured back to back",
    "bootstrap": "hierarchical bootstrap (runs resampled, then samples within runs)",
}


def render_markdown(result: Comparison, family: str, t: Thresholds) -> str:
    status = "REGRESSION" if result.regressed else "no regression"
    out = [f"## weightpack compare: {family}: {status}", ""]
    out.append(f"Baseline: {_sources(result.baseline)}; current: {_sources(result.current)}.")
    if result.environment_differences:
        out += ["", "**Environments differ (compared anyway, --allow-env-mismatch):**"]
        out += [f"- {d}" for d in result.environment_differences]
    if result.latency:
        out += [
            "",
            f"Latency ({result.clock} clock), one observation per run (a fresh process): "
            f"{METHOD_TEXT[result.method]}, "
            f"{t.confidence:.0%} level. Regression when the whole interval of the median ratio is above "
            f"{1 + t.median:.2f}x, or that of the p99 ratio above {1 + t.p99:.2f}x; inconclusive when the "
            f"run-to-run noise is unknown or above {t.median:.0%}.",
            "",
            "| package/device/batch | runs (base/cur) | p50 ms (base -> cur) | median ratio [CI] "
            "| p99 ratio [CI] | run-to-run CoV | within-run CoV | verdict |",
            "|---|---|---|---|---|---|---|---|",
        ]
        out += [_latency_row(r) for r in result.latency]
    if result.parity:
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
    notes = [f"- {r.key}: {r.note}" for r in result.latency if r.note]
    if notes:
        out += ["", "**Inconclusive rows** (not failures):", *notes]
    return "\n".join(out) + "\n"


def _latency_row(r: LatencyComparison) -> str:
    verdict = _badge(r.verdict)
    if r.verdict == "inconclusive":
        verdict = (
            f"inconclusive (noise {r.median.noise:.0%}, detects >= {r.median.detectable:.0%})"
            if r.median.noise is not None
            else "inconclusive (1 run per side)"
        )
    return (
        f"| {r.key} | {r.baseline_runs}/{r.current_runs} | {r.baseline_p50_ms:.3f} -> {r.current_p50_ms:.3f} "
        f"| {_ratio(r.median)} | {_ratio(r.p99)} | {_pct(r.between_cov['baseline'])} / "
        f"{_pct(r.between_cov['current'])} | {_pct(r.within_cov['baseline'])} / "
        f"{_pct(r.within_cov['current'])} "
        f"| {verdict} |"
    )


def _ratio(iv: RatioInterval) -> str:
    if iv.low is None:
        return f"{iv.ratio:.3f} [-]"
    return f"{iv.ratio:.3f} [{iv.low:.3f}, {iv.high:.3f}]"


def _sources(labels: list[str]) -> str:
    if len(labels) <= 2:
        return ", ".join(labels)
    return f"{len(labels)} runs ({labels[0]} ... {labels[-1]})"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _badge(verdict: str) -> str:
    return {"regression": "**REGRESSION**", "improvement": "improvement"}.get(verdict, verdict)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"
