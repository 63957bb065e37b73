"""``report.md``: a readable Markdown summary of one ``report.json`` (for people and CI), plus the table
helpers :mod:`bench.side_by_side` shares."""

from __future__ import annotations

from typing import Any

from bench.attempts import by_package
from bench.yardstick import STABLE_COV, STABLE_FACTOR


def fmt(value: Any, spec: str = ".3g") -> str:
    """One table cell: ``-`` for missing, a loud **NO** for a failed flag, floats to 3 significant digits."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "**NO**"
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    """A Markdown table's lines."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return lines


def md_cell(text: str) -> str:
    """``text`` safe inside a Markdown table cell (no pipe ends the cell, no newline ends the row)."""
    return text.replace("|", "\\|").replace("\n", " ")


def ms(value: Any) -> str:
    """Milliseconds to 3 decimals."""
    return "-" if value is None else f"{value:.3f}"


def ci(entry: dict[str, Any]) -> str:
    """A latency row's 95 % confidence interval of the median."""
    bounds = entry.get("p50_ci95_ms")
    return f"{bounds[0]:.3f}–{bounds[1]:.3f}" if bounds else "-"


def mb(value: Any) -> str:
    """Bytes as MiB."""
    return "-" if value is None else f"{value / 2**20:.1f}"


def render_markdown(report: dict[str, Any], plot: str | None = None) -> str:
    """A readable summary of ``report.json``: verdict, packages, parity, latency, cold start, environment.

    Reads v1 and v2 reports (keys added in v2 are optional here)."""
    from bench.report import CANNOT_LOAD, consumer_refused, verdict

    out = [
        f"# weightpack report: {report['family']} — {verdict(report)}",
        "",
        f"Architecture `{report['architecture']}`, task `{report['task']}`, created {report['created_at']}, "
        f"schema `{report.get('schema')}`.",
        "",
    ]
    if report["failures"]:
        out += ["## Failures", ""]
        out += [
            f"- **{f['stage']}** {f['variant']}/{f['backend'] or '-'} on {f['device'] or '-'}: {f['message']}"
            for f in report["failures"]
        ]
        out.append("")
    if consumer_refused(report):
        reason = report["consumer"]["reason"]
        out += ["## inference-models", "", f"**{CANNOT_LOAD}**: {md_cell(reason)}", ""]
    warnings = (report.get("environment") or {}).get("warnings") or []
    if warnings:
        out += ["## Warnings", "", *[f"- {w}" for w in warnings], ""]
    out += ["## Packages", "", "Every package attempted; a failed one with its reason.", ""]
    built = {(p["variant"], p["backend"]): p for p in report["packages"]}
    rows = []
    for attempt in by_package(report):
        p = built.get((attempt.variant, attempt.backend))
        rows.append(
            [
                attempt.variant,
                attempt.backend,
                f"`{p['zip']}`" if p else "-",
                p["size"] / 1e6 if p else None,
                len(p["files"]) if p else None,
                f"`{p['sha256'][:16]}…`" if p else "-",
                reused_cell(p) if p else "-",  # not a failure: plain text
                (f"checks passed; **{CANNOT_LOAD}**" if consumer_refused(report) else "passed")
                if attempt.passed
                else f"**FAILED**: {md_cell(attempt.reason)}",
            ]
        )
    out += table(["variant", "backend", "zip", "size (MB)", "files", "sha256", "reused", "result"], rows)
    rule = report["parity"][0]["rule"] if report["parity"] else ""
    out += ["", "## Parity against the upstream reference", "", f"Rule: `{rule}`.", ""]
    out += table(
        [
            "variant",
            "backend",
            "device",
            "output",
            "shape",
            "dtype",
            "max abs",
            "mean abs",
            "max rel",
            "worst at",
            "outside",
            "cosine",
            "atol",
            "rtol",
            "min atol",
            "passed",
            "reason",
        ],
        [
            [
                at_shape(p),
                p["backend"],
                p["device"],
                f"`{p['output']}`",
                "×".join(map(str, p["shape"])) or "-",
                p["dtype"] or "-",
                p["max_abs"],
                p.get("mean_abs"),
                p["max_rel"],
                p.get("worst_index"),
                outside(p),
                p["cosine"],
                p["atol"],
                p["rtol"],
                p.get("min_atol"),
                p["passed"],
                p.get("reason", ""),
            ]
            for p in report["parity"]
        ],
    )
    if report.get("noise_floor"):
        out += [
            "",
            "Measured noise floor (reference fp32 vs fp64); derived tolerances apply where the recipe sets "
            "no per-output override:",
            "",
        ]
        rows = []
        for variant, nf in report["noise_floor"].items():
            for name, f in (nf.get("outputs") or {}).items():
                rows.append(
                    [variant, f"`{name}`", f["max_abs"], f["mean_abs"], f["max_rel"], f["factor"], f["atol"]]
                )
            if nf.get("error"):
                rows.append([variant, "-", None, None, None, None, nf["error"]])
        out += table(["variant", "output", "max abs", "mean abs", "max rel", "factor", "derived atol"], rows)
    if report["task_checks"]:
        out += ["", "Task checks:", ""]
        out += table(
            ["variant", "backend", "device", "check", "output", "value", "threshold", "passed"],
            [
                [
                    at_shape(c),
                    c["backend"],
                    c["device"],
                    c["check"],
                    c["output"],
                    c["value"],
                    c["threshold"],
                    c["passed"],
                ]
                for c in report["task_checks"]
            ],
        )
    if report.get("cross_device"):
        out += ["", "Same package across devices (reported, not gated):", ""]
        out += table(
            ["variant", "backend", "devices", "output", "max abs", "max rel", "cosine", "within tolerance"],
            [
                [
                    c["variant"],
                    c["backend"],
                    " vs ".join(c["devices"]),
                    f"`{c['output']}`",
                    c["max_abs"],
                    c["max_rel"],
                    c["cosine"],
                    c["passed"],
                ]
                for c in report["cross_device"]
            ],
        )
    out += ["", "## Latency (ms, pooled raw samples; host wall time unless marked device)", ""]
    out += table(
        [
            "variant",
            "backend",
            "device",
            "batch",
            "p50",
            "p50 95% CI",
            "p90",
            "p95",
            "p99",
            "mean",
            "std",
            "CoV",
            "yardstick CoV",
            "stable",
            "items/s",
            "device p50",
            "overhead (µs)",
            "n",
            "stopped by",
        ],
        [
            [
                at_shape(r),
                r["backend"],
                r["device"],
                r["batch_size"],
                ms(r["p50_ms"]),
                ci(r),
                ms(r["p90_ms"]),
                ms(r.get("p95_ms")),
                p99_cell(r),
                ms(r["mean_ms"]),
                ms(r.get("std_ms")),
                f"{r['cov']:.2%}",
                f"{r['yardstick']['cov']:.2%}" if r.get("yardstick") else "-",
                stable_cell(r),
                f"{r.get('throughput_per_s', 0):.1f}",
                ms((r.get("device_time") or {}).get("p50_ms")),
                None if r.get("harness_overhead_ns") is None else f"{r['harness_overhead_ns'] / 1e3:.2f}",
                r["iterations"],
                r.get("stopped_by", "-"),
            ]
            for r in report["latency"]
        ],
    )
    if any(r.get("iterations", 0) < 299 for r in report["latency"]):
        out += [
            "",
            "`(≈max)`: fewer than 299 samples, too few to estimate a p99 (it is about the largest sample).",
        ]
    if any(r.get("yardstick") for r in report["latency"]):
        kernel = next(r["yardstick"]["kernel"] for r in report["latency"] if r.get("yardstick"))
        out += [
            "",
            f"`stable`: the row's CoV within {STABLE_FACTOR:g}x the CoV of a yardstick timed right after it "
            f"in the same process ({kernel}, each sample about the row's median), or below {STABLE_COV:.1%}: "
            "a noisy machine is not blamed on the package.",
        ]
    timers = sorted({r.get("device_timer") for r in report["latency"] if r.get("device_timer")})
    if report["latency"]:
        out += ["", f"Host timer: {report['latency'][0].get('timer', '-')}."]
        if timers:
            out += [f"Device timer: {'; '.join(timers)}."]
    if plot:
        out += ["", f"![latency distributions]({plot})"]
    out += ["", "## Cold start (unzip + from_pretrained + first inference, s) and memory", ""]
    out += table(
        [
            "variant",
            "backend",
            "device",
            "extract",
            "load",
            "first inference",
            "total",
            "RSS Δ (MiB)",
            "peak RSS (MiB)",
            "CUDA peak alloc (MiB)",
            "CUDA peak reserved (MiB)",
        ],
        [
            [
                c["variant"],
                c["backend"],
                c["device"],
                c["extract_s"],
                c["load_s"],
                c["first_inference_s"],
                c["total_s"],
                mb(c.get("rss_delta_bytes")),
                mb(c.get("peak_rss_bytes")),
                mb(c.get("cuda_peak_allocated_bytes")),
                mb(c.get("cuda_peak_reserved_bytes")),
            ]
            for c in report["cold_start"]
        ],
    )
    out += cluster_section(report)
    env = report["environment"]
    libs = ", ".join(f"{k} {v}" for k, v in env.get("libraries", {}).items() if v)
    cuda = env.get("cuda") or {}
    gpu = "; ".join(f"{d['name']} (CC {d['compute_capability']})" for d in cuda.get("devices", []))
    out += [
        "",
        "## Environment",
        "",
        f"- CPU: {env.get('cpu')} ({env.get('cpu_count')} threads, {env.get('cpu_affinity', '-')} usable; "
        f"torch {env.get('torch_threads')} intra-op / {env.get('torch_interop_threads', '-')} inter-op)",
        f"- GPU: {gpu or 'none'}",
    ]
    if cuda:
        out.append(
            f"- CUDA {cuda.get('cuda_version')}, cuDNN {cuda.get('cudnn_version')}, driver "
            f"{cuda.get('driver_version')}, TensorRT {env.get('tensorrt_version') or '-'}"
        )
    for when in ("nvml_before", "nvml_after"):
        for g in env.get(when) or []:
            clocks = g.get("clocks") or {}
            out.append(
                f"- GPU {g['index']} {when.split('_')[1]}: "
                f"SM {clocks.get('sm_mhz')}/{clocks.get('sm_max_mhz')} MHz, mem {clocks.get('mem_mhz')} MHz, "
                f"{g.get('temperature_c')} °C, {g.get('power_w')} W, "
                f"throttle: {', '.join(g.get('throttle_reasons') or []) or 'none'}"
            )
    out += [f"- Python {env.get('python')} on {env.get('platform')}", f"- {libs}", ""]
    return "\n".join(out)


def p99_cell(r: dict[str, Any]) -> str:
    """The p99, marked ``(≈max)`` when too few samples estimate it (the largest of n samples exceeds the
    true p99 with 95 % probability only from 299 samples on)."""
    from bench.stats import min_samples_for_quantile

    few = r.get("iterations", 0) < min_samples_for_quantile(99)
    return ms(r["p99_ms"]) + (" (≈max)" if few and r.get("p99_ms") is not None else "")


def stable_cell(r: dict[str, Any]) -> str:
    """``yes``/**NO**, with the row's CoV as a multiple of the same-run yardstick's, and throttling."""
    cell = fmt(bool(r.get("stable")))
    if r.get("cov_vs_yardstick") is not None:
        cell += f" ({r['cov_vs_yardstick']:.1f}x machine)"
    if r.get("throttled"):
        cell += f" (throttled: {', '.join(r['gpu_conditions']['throttle_reasons'])})"
    return cell


def cluster_section(report: dict[str, Any]) -> list[str]:
    """``pack --ray``: where each package was built and, per target, which node checked it (the
    Environment section below is the driver's; each node's machine is in the package's manifest)."""
    cluster = (report.get("meta") or {}).get("cluster")
    if not cluster:
        return []

    def node(n: dict[str, Any] | None) -> str:
        return f"{n.get('hostname')} `{str(n.get('node_id'))[:8]}`" if n else "-"

    rows = []
    for p in report["packages"]:
        c = p.get("cluster") or {}
        built = "earlier run" if c.get("reused_from_out") else node(c.get("built_on"))
        for target, t in (c.get("targets") or {}).items():
            tries = "; ".join(a["death"] for a in t.get("attempts") or []) or "-"
            rows.append([p["zip"], target, built, node(t.get("node")), t.get("seconds"), tries])
    out = ["", "## Cluster", "", f"Ray cluster `{cluster.get('address')}`, {len(cluster.get('nodes') or [])} "
           f"node(s), {cluster.get('tasks')} task(s), {cluster.get('retries')} retried.", ""]  # fmt: skip
    return out + table(["zip", "target", "built on", "checked on", "task (s)", "tries that died"], rows)


def reused_cell(package: dict[str, Any]) -> str:
    """What a re-run took from an earlier one: the zip, and each device's checks with when they ran."""
    parts = ["zip"] if package.get("reused") else []
    for device, v in (package.get("verification") or {}).items():
        if v.get("reused_from"):
            parts.append(f"checks on {device} from {v['reused_from']}")
    return "; ".join(parts) or "no"


def at_shape(row: dict[str, Any]) -> str:
    """The variant, and the shape of its shape set a row is at (``v1 @ image 3x240x320``)."""
    return f"{row['variant']} @ {row['input_shape']}" if row.get("input_shape") else row["variant"]


def outside(p: dict[str, Any]) -> str | None:
    """Elements outside tolerance as a count and a fraction (a few in a million never reads 0.00 %)."""
    if p.get("frac_outside") is None:
        return None
    if p.get("outside") is None:
        return f"{p['frac_outside']:.3g}"
    return f"{p['outside']} ({p['frac_outside']:.3g})"
