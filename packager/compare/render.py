"""Markdown for a :class:`bench.regression.Comparison` (stdout, ``--markdown``, ``$GITHUB_STEP_SUMMARY``)."""

from __future__ import annotations

from bench.multiplicity import RULES
from bench.regression import CLOCKS, Comparison, LatencyComparison, Thresholds
from bench.stats import RatioInterval
from bench.verdicts import slowdown

METHOD_TEXT = {
    "nights": "nights as a level: each night's runs summarised by their geometric-mean median, tonight "
    "against the window's nights, t interval with the night-to-night and run-to-run variance",
    "runs": "t interval of the ratio of geometric means of per-run statistics (runs vs runs)",
    "pairs": "t interval of the mean ratio within A/B pairs measured back to back",
    "bootstrap": "hierarchical bootstrap (runs resampled, then samples within runs)",
}


def render_markdown(result: Comparison, family: str, t: Thresholds) -> str:
    status = "REGRESSION" if result.regressed else "no regression"
    out = [f"## weightpack compare: {family}: {status}", ""]
    out.append(
        f"Baseline: {result.nights} night(s), {_sources(result.baseline)}; "
        f"current: {_sources(result.current)}."
    )
    if result.environment_differences:
        out += ["", "**Environments differ (compared anyway, --allow-env-mismatch):**"]
        out += [f"- {d}" for d in result.environment_differences]
    if result.latency:
        out += [
            "",
            f"Latency, clock `{result.clock}` ({CLOCKS[result.clock]}): {METHOD_TEXT[result.method]}; "
            f"{t.confidence:.0%} intervals. The {result.tests} regression tests (medians, and tails where "
            f"enough samples estimate them) are decided together by {RULES[result.multiple]} at "
            f"{result.level:g}. **Regression**: the adjusted test puts the median above {1 + t.median:.2f}x "
            f"(the p{t.tail_quantile:g} above {1 + t.p99:.2f}x); **unchanged**: the whole median interval "
            f"within {1 - t.median:.2f}-{1 + t.median:.2f}x; **inconclusive** otherwise (not a failure).",
            "",
            "| package/device/batch | clock | nights / runs (base, cur) | p50 ms (base -> cur) "
            "| median ratio [CI] | tail ratio [CI] | night / run CoV | adjusted p | verdict |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        out += [_latency_row(r) for r in result.latency]
    if result.parity:
        out += [
            "",
            f"Parity error growth: flagged when max_abs grows over {t.parity_growth:g}x the baseline's, "
            "even inside tolerance (deterministic, outside the multiplicity rule).",
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
    notes = [f"- {r.key}: {r.note}" for r in result.latency if r.note and r.verdict == "inconclusive"]
    if notes:
        out += ["", "**Inconclusive rows** (not failures):", *notes]
    tails = [
        f"- {r.key}: {r.tail_note}" for r in result.latency if r.tail_note and r.verdict != "inconclusive"
    ]
    if tails:
        out += ["", "Tails:", *tails]
    return "\n".join(out) + "\n"


def _latency_row(r: LatencyComparison) -> str:
    verdict = _badge(r.verdict)
    if r.verdict == "inconclusive":
        verdict = (
            f"inconclusive (detects >= {slowdown(r.median.detectable)})"
            if r.median.detectable is not None
            else "inconclusive (noise unknown)"
        )
    adjusted = ", ".join(f"{k} {v:.2g}" for k, v in r.adjusted_p.items()) or "-"
    runs = f"{r.baseline_nights} / {r.baseline_runs}, {r.current_runs}"
    return (
        f"| {r.key} | {r.clock} | {runs} | {r.baseline_p50_ms:.3f} -> {r.current_p50_ms:.3f} "
        f"| {_ratio(r.median)} | {_ratio(r.p99)} | {_pct(r.night_cov)} / {_pct(_run_cov(r))} "
        f"| {adjusted} | {verdict} |"
    )


def _run_cov(r: LatencyComparison) -> float | None:
    """Run-to-run CoV: the pooled within-night one (nights), else the baseline runs' spread."""
    if r.median.method == "nights" and r.median.model.get("run_var"):
        return float(r.median.model["run_var"]) ** 0.5
    return r.between_cov.get("baseline")


def _ratio(iv: RatioInterval | None) -> str:
    if iv is None:
        return "-"
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
