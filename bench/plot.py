"""Latency distributions as a PNG: one box-and-strip per (backend, device, batch), host time, with device
time beside it where a device timer ran. matplotlib (``plot`` extra) is imported lazily with the Agg
backend; without it, :func:`plot_latency` returns ``None`` and the run goes on."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_latency(report: dict[str, Any], path: Path) -> Path | None:
    """Write ``path`` (PNG) from a report dict's raw samples; ``None`` when there is nothing to plot or
    matplotlib is missing."""
    entries = [e for e in report.get("latency", []) if e.get("samples_ms")]
    if not entries:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    series: list[tuple[str, list[float]]] = []
    for e in entries:
        label = f"{e['variant']}/{e['backend']}\n{e['device']} bs{e['batch_size']}"
        series.append((label + " host", e["samples_ms"]))
        dev = e.get("device_time") or {}
        if dev.get("samples_ms"):
            series.append((label + " device", dev["samples_ms"]))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(series)), 4.5), dpi=100)
    try:
        data = [s for _, s in series]
        ax.boxplot(data, showfliers=False, whis=(1, 99))
        for i, samples in enumerate(data, start=1):
            jitter = [i + 0.18 * ((k * 0.618) % 1.0 - 0.5) for k in range(len(samples))]
            ax.scatter(jitter, samples, s=3, alpha=0.35, color="tab:blue")
        ax.set_xticks(range(1, len(series) + 1), [label for label, _ in series], fontsize=7)
        ax.set_ylabel("latency (ms)")
        ax.set_yscale("log")
        from matplotlib.ticker import LogLocator, ScalarFormatter

        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(ScalarFormatter())
        ax.tick_params(axis="y", which="minor", labelsize=0)
        ax.set_title(f"{report.get('family')}: latency per backend/device/batch (whiskers p1–p99)")
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        fig.savefig(tmp, format="png")
        tmp.replace(path)
    finally:
        plt.close(fig)
    return path
