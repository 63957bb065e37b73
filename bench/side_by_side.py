"""Several ``report.json`` side by side as Markdown (``pack report A B ...``)."""

from __future__ import annotations

from typing import Any

from bench.markdown import ci, ms, table


def _key(entry: dict[str, Any]) -> tuple[Any, ...]:
    return (entry["variant"], entry["backend"], entry["device"], entry["batch_size"])


def render_comparison(reports: list[dict[str, Any]], labels: list[str] | None = None) -> str:
    """Reports side by side as Markdown: verdicts and environments, then per (variant, backend, device,
    batch) the p50 with its 95 % CI and p99 of each report, and each p50 as a ratio of the first's.
    A ratio is marked ``*`` when the two 95 % CIs of the median do not overlap."""
    labels = labels or [f"R{i + 1}" for i in range(len(reports))]
    out = ["# weightpack reports side by side", ""]
    out += table(
        ["", "family", "created", "schema", "passed", "CPU", "GPU", "torch", "onnxruntime"],
        [
            [
                label,
                r["family"],
                r["created_at"],
                r.get("schema"),
                r["passed"],
                r["environment"].get("cpu"),
                "; ".join(d["name"] for d in ((r["environment"].get("cuda") or {}).get("devices") or []))
                or "none",
                r["environment"].get("libraries", {}).get("torch"),
                r["environment"].get("libraries", {}).get("onnxruntime"),
            ]
            for label, r in zip(labels, reports, strict=True)
        ],
    )
    keys: list[tuple[Any, ...]] = []
    for r in reports:
        for e in r["latency"]:
            if _key(e) not in keys:
                keys.append(_key(e))
    headers = ["variant", "backend", "device", "batch"]
    for i, label in enumerate(labels):
        headers += [f"{label} p50", f"{label} 95% CI", f"{label} p99"]
        if i:
            headers.append(f"{label}/{labels[0]}")
    rows = []
    for key in keys:
        row: list[Any] = list(key)
        base = next((e for e in reports[0]["latency"] if _key(e) == key), None)
        for i, r in enumerate(reports):
            e = next((x for x in r["latency"] if _key(x) == key), None)
            row += [ms(e and e["p50_ms"]), ci(e) if e else "-", ms(e and e["p99_ms"])]
            if i:
                if e and base:
                    ratio = f"{e['p50_ms'] / base['p50_ms']:.3f}"
                    a, b = e.get("p50_ci95_ms"), base.get("p50_ci95_ms")
                    if a and b and (a[0] > b[1] or b[0] > a[1]):
                        ratio += "*"
                    row.append(ratio)
                else:
                    row.append("-")
        rows.append(row)
    out += ["", "## Latency (ms, host)", ""]
    out += table(headers, rows)
    out += ["", "`*`: the 95 % CIs of the two medians do not overlap.", ""]
    pkeys: list[tuple[Any, ...]] = []
    for r in reports:
        for p in r["parity"]:
            k = (p["variant"], p["backend"], p["device"], p["output"])
            if k not in pkeys:
                pkeys.append(k)
    prow = []
    for k in pkeys:
        row = [*k[:3], f"`{k[3]}`"]
        for r in reports:
            p = next(
                (x for x in r["parity"] if (x["variant"], x["backend"], x["device"], x["output"]) == k), None
            )
            row += [p["max_abs"] if p else None, p["passed"] if p else None]
        prow.append(row)
    out += ["## Parity (max abs error, passed)", ""]
    out += table(
        [
            "variant",
            "backend",
            "device",
            "output",
            *[h for lb in labels for h in (f"{lb} max abs", f"{lb} ok")],
        ],
        prow,
    )
    out.append("")
    return "\n".join(out)
