"""One static HTML page per family: charts drawn as inline SVG (readable with scripting off), a few lines of
inline script for tooltips and a row filter, nothing fetched from anywhere: the file opens from disk."""

from __future__ import annotations

import html
import math
import os
from pathlib import Path
from typing import Any

from packager.history.collect import Family, Night

COLOURS = {
    "regression": "#d62728",
    "unchanged": "#2ca02c",
    "improvement": "#1f77b4",
    "inconclusive": "#ff9f1c",
    "ok": "#2ca02c",
    "first": "#7f7f7f",
    "new": "#7f7f7f",
}
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 760, 250, 70, 20, 18, 58

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#24292f;color:#fff;padding:14px 24px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#d0d7de}main{padding:16px 24px;max-width:1100px}
.card{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:12px 16px;margin:0 0 16px}
.card h3{margin:0 0 6px;font-size:15px;font-family:ui-monospace,monospace}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px}
table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #eaeef2;padding:4px 8px;text-align:left}
th{background:#f6f8fa}.legend span{margin-right:14px}.muted{color:#57606a}
#tip{position:fixed;display:none;background:#24292f;color:#fff;padding:6px 9px;border-radius:4px;
font-size:12px;pointer-events:none;max-width:420px;z-index:9}
svg text{font:11px system-ui,sans-serif;fill:#57606a}svg .pt{cursor:pointer}
input#filter{padding:4px 8px;width:320px;margin:4px 0 12px}
"""

SCRIPT = """
(function(){
  var tip=document.getElementById('tip');
  document.querySelectorAll('.pt').forEach(function(p){
    p.addEventListener('mouseenter',function(e){tip.textContent=p.getAttribute('data-tip');
      tip.style.display='block';});
    p.addEventListener('mousemove',function(e){tip.style.left=(e.clientX+14)+'px';
      tip.style.top=(e.clientY+10)+'px';});
    p.addEventListener('mouseleave',function(){tip.style.display='none';});
  });
  var f=document.getElementById('filter');
  if(f){f.addEventListener('input',function(){var q=f.value.toLowerCase();
    document.querySelectorAll('.row-card').forEach(function(c){
      c.style.display=c.getAttribute('data-row').toLowerCase().indexOf(q)>=0?'':'none';});});}
  document.body.setAttribute('data-ready','1');
})();
"""


def el(tag: str, text: str = "", **attrs: Any) -> str:
    """An element; attribute names with ``_`` become ``-`` (``data_tip`` -> ``data-tip``), values escaped."""
    attributes = "".join(
        f" {k.rstrip('_').replace('_', '-')}='{_e(f'{v:.1f}' if isinstance(v, float) else v)}'"
        for k, v in attrs.items()
    )
    return (
        f"<{tag}{attributes}>{text}</{tag}>"
        if text or tag not in ("circle", "line", "rect", "path")
        else (f"<{tag}{attributes}/>")
    )


def render(family: Family, out_dir: Path) -> str:
    """The family's page (links relative to ``out_dir``, where the page is written)."""
    nights = family.nights
    latest = nights[-1]
    last = len(nights) - 1
    status = (
        "REGRESSION" if latest.regressed else ("first night" if not latest.comparison else "no regression")
    )
    flagged = [
        key
        for key, pts in family.rows.items()
        for p in pts
        if p["night"] == last and p.get("verdict") == "regression"
    ]
    badge = el(
        "span",
        _e(status),
        class_="badge",
        style=f"background:{COLOURS['regression' if latest.regressed else 'ok']}",
    )
    where = f" in {_e(', '.join(flagged))}" if flagged else ""
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(family.name)}: weightpack nightly history</title><style>{STYLE}</style></head><body>",
        f"<header><h1>{_e(family.name)}: nightly history</h1><p>{len(nights)} nights, {_e(nights[0].name)} "
        f"to {_e(latest.name)}; latest: {badge}{where}</p></header><main>",
        _legend(),
        _night_table(family, out_dir),
        "<h2>Latency</h2><p class='muted'>Each point: the night's level (geometric mean of its runs' "
        "medians, on the row's clock); bar: the interval the comparison gave tonight's level against its "
        f"window; dashed: the window's level, shaded: +-{family.threshold:.0%} around it. Hover a point for "
        "its verdict.</p>",
        "<input id='filter' placeholder='filter rows (e.g. bs8, onnx)'>",
    ]
    for key, points in sorted(family.rows.items()):
        title = f"{_e(key)} <span class='muted'>({_e(points[-1].get('clock', ''))} clock, ms)</span>"
        chart = latency_chart(key, points, nights, family.threshold)
        parts.append(el("div", f"<h3>{title}</h3>{chart}", class_="card row-card", data_row=key))
    if family.parity:
        parts.append(
            "<h2>Parity error drift</h2><p class='muted'>Largest absolute error against the upstream "
            "reference per night (log scale); dashed: the tolerance (atol).</p>"
        )
        for key, points in sorted(family.parity.items()):
            parts.append(el("div", f"<h3>{_e(key)}</h3>{parity_chart(key, points, nights)}", class_="card"))
    parts += ["</main><div id='tip'></div>", f"<script>{SCRIPT}</script></body></html>"]
    return "\n".join(parts)


def _legend() -> str:
    items = ["regression", "unchanged", "inconclusive", "improvement", "first"]
    dot = "<svg width='12' height='12'><circle cx='6' cy='6' r='5' fill='{}'/></svg>"
    return (
        "<p class='legend'>" + "".join(f"<span>{dot.format(COLOURS[v])} {v}</span>" for v in items) + "</p>"
    )


def _night_table(family: Family, out_dir: Path) -> str:
    rows = []
    for i, n in enumerate(family.nights):
        counts: dict[str, int] = {}
        for pts in family.rows.values():
            for p in pts:
                if p["night"] == i:
                    counts[p.get("verdict", "-")] = counts.get(p.get("verdict", "-"), 0) + 1
        if not n.comparison:
            verdict, colour = "first night", COLOURS["first"]
        elif n.regressed:
            verdict, colour = "REGRESSION" + (" (accepted)" if n.accepted else ""), COLOURS["regression"]
        else:
            verdict, colour = "no regression", COLOURS["ok"]
        links = " ".join(
            el("a", label, href=_rel(path, out_dir))
            for label, path in (("report.md", n.report_md), ("compare.md", n.compare_md))
            if path is not None
        )
        cells = [
            _e(n.name),
            _e(n.created),
            el("span", _e(verdict), class_="badge", style=f"background:{colour}"),
            _e(", ".join(f"{k} {v}" for k, v in sorted(counts.items()))),
            _e(n.source or "-"),
            _e(n.env_key or "-"),
            links or "-",
        ]
        rows.append(el("tr", "".join(f"<td>{c}</td>" for c in cells), class_="night", data_night=i))
    head = "".join(
        f"<th>{h}</th>" for h in ("night", "created", "verdict", "rows", "compared by", "env key", "reports")
    )
    return f"<div class='card'><table><tr>{head}</tr>{''.join(rows)}</table></div>"


def _rel(path: Path, out_dir: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), Path(out_dir).resolve())).as_posix()


def _x(i: int, n: int) -> float:
    span = WIDTH - LEFT - RIGHT
    return LEFT + (span / 2 if n <= 1 else span * i / (n - 1))


def _scale(lo: float, hi: float):
    if hi <= lo:
        hi, lo = lo * 1.05 + 1e-12, lo * 0.95
    pad = (hi - lo) * 0.08
    lo, hi = lo - pad, hi + pad
    return lambda v: TOP + (HEIGHT - TOP - BOTTOM) * (1 - (v - lo) / (hi - lo)), lo, hi


def _svg(kind: str, key: str) -> str:
    return (
        f"<svg class='chart {kind}' data-row='{_e(key)}' width='{WIDTH}' height='{HEIGHT}' "
        f"viewBox='0 0 {WIDTH} {HEIGHT}' role='img' aria-label='{_e(key)}'>"
    )


def _path(points: list[tuple[float, float]]) -> str:
    return " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y) in enumerate(points))


def _axes(y, lo: float, hi: float, nights: list[Night], fmt) -> list[str]:
    bottom = HEIGHT - BOTTOM
    out = [el("line", x1=LEFT, y1=TOP, x2=LEFT, y2=bottom, stroke="#8c959f")]
    for j in range(5):
        v = lo + (hi - lo) * j / 4
        out.append(el("line", x1=LEFT, x2=WIDTH - RIGHT, y1=y(v), y2=y(v), stroke="#eaeef2"))
        out.append(el("text", fmt(v), x=LEFT - 6, y=y(v) + 4, text_anchor="end"))
    step = max(1, math.ceil(len(nights) / 12))
    for i, n in enumerate(nights):
        if i % step == 0 or i == len(nights) - 1:
            x = _x(i, len(nights))
            turn = f"rotate(-30 {x:.1f} {bottom + 14})"
            out.append(el("text", _e(n.name[-16:]), x=x, y=bottom + 14, text_anchor="end", transform=turn))
    return out


def latency_chart(key: str, points: list[dict[str, Any]], nights: list[Night], threshold: float) -> str:
    values = [p["level"] for p in points] + [p[k] for p in points for k in ("low", "high") if p.get(k)]
    values += [p["baseline"] * f for p in points if p.get("baseline") for f in (1 - threshold, 1 + threshold)]
    y, lo, hi = _scale(min(values), max(values))
    n = len(nights)
    out = [_svg("latency", key), *_axes(y, lo, hi, nights, lambda v: f"{v:.3g}")]
    half = (WIDTH - LEFT - RIGHT) / max(n - 1, 1) / 2
    base = [p for p in points if p.get("baseline")]
    for p in base:
        x, b = _x(p["night"], n), p["baseline"]
        top, bottom = y(b * (1 + threshold)), y(b * (1 - threshold))
        out.append(
            el("rect", x=x - half, y=top, width=2 * half, height=bottom - top, fill="#2ca02c", opacity="0.08")
        )
    if len(base) > 1:
        d = _path([(_x(p["night"], n), y(p["baseline"])) for p in base])
        out.append(el("path", class_="baseline", d=d, fill="none", stroke="#57606a", stroke_dasharray="4 3"))
    d = _path([(_x(p["night"], n), y(p["level"])) for p in points])
    out.append(el("path", class_="level", d=d, fill="none", stroke="#8c959f"))
    for p in points:
        if p.get("low") is not None:
            x = _x(p["night"], n)
            out.append(
                el("line", class_="interval", x1=x, x2=x, y1=y(p["low"]), y2=y(p["high"]), stroke="#57606a")
            )
    for p in points:
        out.append(_point(p, _x(p["night"], n), y(p["level"]), nights, key))
    out.append("</svg>")
    return "".join(out)


def _point(p: dict[str, Any], x: float, yv: float, nights: list[Night], key: str) -> str:
    verdict = p.get("verdict", "first")
    colour = COLOURS.get(verdict, "#7f7f7f")
    tip = f"{nights[p['night']].name}: {p['level']:.3f} ms ({p['runs']} runs), {verdict}"
    if p.get("ratio"):
        tip += f"; ratio {p['ratio']:.3f} [{p['low'] / p['baseline']:.3f}, {p['high'] / p['baseline']:.3f}]"
    if p.get("reasons"):
        tip += "; " + "; ".join(p["reasons"])
    elif p.get("note"):
        tip += "; " + p["note"]
    flag = verdict == "regression"
    mark = (
        el(
            "text",
            "▲ regression",
            class_="flag",
            x=x,
            y=yv - 11,
            text_anchor="middle",
            style=f"font-weight:bold;fill:{colour}",
        )
        if flag
        else ""
    )
    dot = el(
        "circle", class_=f"pt v-{verdict}", data_night=p["night"], data_row=key, cx=x, cy=yv,
        r=7 if flag else 4.5, fill=colour, stroke="#fff", stroke_width="1.5", data_tip=tip,
    )  # fmt: skip
    return dot + mark


def parity_chart(key: str, points: list[dict[str, Any]], nights: list[Night]) -> str:
    logs = [math.log10(max(p["max_abs"], 1e-12)) for p in points]
    atol = next((p["atol"] for p in points if p.get("atol")), None)
    bounds = logs + ([math.log10(atol)] if atol else [])
    y, lo, hi = _scale(min(bounds), max(bounds))
    n = len(nights)
    out = [_svg("parity", key), *_axes(y, lo, hi, nights, lambda v: f"{10**v:.1e}")]
    if atol:
        ya = y(math.log10(atol))
        out.append(
            el(
                "line",
                class_="atol",
                x1=LEFT,
                x2=WIDTH - RIGHT,
                y1=ya,
                y2=ya,
                stroke="#d62728",
                stroke_dasharray="5 4",
            )
        )
    xy = [(_x(p["night"], n), y(v)) for p, v in zip(points, logs, strict=True)]
    out.append(el("path", d=_path(xy), fill="none", stroke="#8c959f"))
    for p, (x, yv) in zip(points, xy, strict=True):
        verdict = p.get("verdict", "ok")
        tip = f"{nights[p['night']].name}: max_abs {p['max_abs']:.3g} (atol {p.get('atol')}), {verdict}"
        out.append(el(
            "circle", class_=f"pt v-{verdict}", data_night=p["night"], cx=x, cy=yv,
            r=7 if verdict == "regression" else 4.5, fill=COLOURS.get(verdict, "#7f7f7f"), data_tip=tip,
        ))  # fmt: skip
    out.append("</svg>")
    return "".join(out)


def index(families: list[Family], pages: dict[str, str]) -> str:
    items = "".join(
        el("tr", f"<td>{el('a', _e(f.name), href=pages[f.name])}</td><td>{len(f.nights)}</td>"
           f"<td>{'REGRESSION' if f.nights[-1].regressed else 'no regression'}</td>")
        for f in families
    )  # fmt: skip
    head = "<tr><th>family</th><th>nights</th><th>latest</th></tr>"
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>weightpack nightly history</title><style>{STYLE}</style></head><body>"
        "<header><h1>weightpack nightly history</h1></header><main>"
        f"<div class='card'><table>{head}{items}</table></div></main></body></html>"
    )


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)
