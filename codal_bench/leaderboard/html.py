"""The leaderboard as one self-contained HTML page: sortable tables and plain-SVG charts.

Charts are SVG written here rather than drawn by a plotting library, so the page has no scripts
or fonts to fetch and opens offline; the only script is the few lines that sort a table.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from html import escape
from typing import Any

from ..resources import data_dir
from .formats import (
    HEAD,
    cell,
    columns,
    fmt_interval,
    fmt_value,
    footnotes,
    label,
    meta_line,
    num,
    percent,
    records,
    short_model,
)
from .model import Leaderboard, Table

OURS = "#2563eb"
PUBLISHED = "#9a6b16"
GRID = "#e5e7eb"
INK = "#374151"


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick positions covering [lo, hi] (1, 2 or 5 times a power of ten apart)."""
    span = max(hi - lo, 1e-9)
    raw = span / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    out, v = [round(start, 10)], start
    while v < hi - step * 1e-6:  # the last tick is at or past hi, so every value is on the axis
        v += step
        out.append(round(v, 10))
    return out


def scale_of(t: Table, metrics: Sequence[str]) -> tuple[float, float]:
    """The range the metrics' values can take (their `Metric.scale`, widened only if a value
    lies outside it): chart axes never run past it (no 0–15 axis for a 1–10 rating)."""
    lo = min(t.labels[m].scale[0] for m in metrics if m in t.labels) if metrics else 0.0
    hi = max(t.labels[m].scale[1] for m in metrics if m in t.labels) if metrics else 1.0
    vals = [num(r.get(m)) for r in records(t) for m in metrics]
    got = [v for v in vals if v is not None]
    return min([lo, *got]), max([hi, *got])


def _domain(
    rows: Sequence[dict[str, Any]], metrics: Sequence[str], bounds: tuple[float, float]
) -> tuple[float, float]:
    vals = [num(r.get(m + s)) for r in rows for m in metrics for s in ("", "_lo", "_hi")]
    got = [v for v in vals if v is not None]
    if not got:
        return bounds
    lo, hi = min(got), max(got)
    pad = max((hi - lo) * 0.08, 0.02 * (bounds[1] - bounds[0]))
    return max(bounds[0], lo - pad), min(bounds[1], hi + pad)


def clamped_ticks(lo: float, hi: float, bounds: tuple[float, float], n: int = 5) -> list[float]:
    """`nice_ticks` over [lo, hi], none outside `bounds` (the ends are added when cut)."""
    ticks = [x for x in nice_ticks(lo, hi, n) if bounds[0] - 1e-9 <= x <= bounds[1] + 1e-9]
    if not ticks or ticks[0] > lo + 1e-9:
        ticks.insert(0, lo)
    if ticks[-1] < hi - 1e-9:
        ticks.append(hi)
    return [round(x, 10) for x in ticks]


def _short(name: str, n: int = 32) -> str:
    name = short_model(name)
    return name if len(name) <= n else name[: n - 1] + "…"


def _watched(t: Table) -> list[str]:
    """The metrics a team watches (those the gate checks by default), else every metric."""
    watched = [m for m in t.metrics if t.labels.get(m) and t.labels[m].gate_margin is not None]
    return watched or t.metrics


def forest_chart(t: Table, rows: list[dict[str, Any]]) -> str:
    """Small multiples, one panel per metric: each run a dot with its 95 % interval bar."""
    metrics = _watched(t)
    if not rows or not metrics:
        return ""
    scale = 100.0 if percent(t, metrics[0]) else 1.0
    bounds = scale_of(t, metrics)
    d_lo, d_hi = _domain(rows, metrics, bounds)
    ticks = [x for x in nice_ticks(d_lo * scale, d_hi * scale, 5)]
    ticks = [x for x in ticks if bounds[0] * scale - 1e-9 <= x <= bounds[1] * scale + 1e-9]
    if len(ticks) < 2:
        ticks = [d_lo * scale, d_hi * scale]
    d_lo, d_hi = min(d_lo, ticks[0] / scale), max(d_hi, ticks[-1] / scale)
    label_w, panel_w, gap, row_h, top, bottom = 200, 112, 14, 20, 34, 26
    width = label_w + len(metrics) * (panel_w + gap)
    height = top + len(rows) * row_h + bottom
    out = [
        f'<svg class="chart forest" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(t.title)}: scores with 95% intervals">'
    ]
    for i, r in enumerate(rows):
        y = top + i * row_h
        if i % 2 == 0:
            out.append(f'<rect x="0" y="{y}" width="{width}" height="{row_h}" fill="#f8fafc"/>')
        name = str(r.get("model"))
        color = PUBLISHED if r.get("published") else INK
        out.append(
            f'<text x="{label_w - 8}" y="{y + 14}" text-anchor="end" font-size="11" '
            f'fill="{color}"><title>{escape(name)}</title>{escape(_short(name))}</text>'
        )

    def x_of(j: int, v: float) -> float:
        x0 = label_w + j * (panel_w + gap)
        return x0 + (v - d_lo) / (d_hi - d_lo) * panel_w

    for j, m in enumerate(metrics):
        x0 = label_w + j * (panel_w + gap)
        out.append(
            f'<text x="{x0 + panel_w / 2}" y="20" text-anchor="middle" font-size="12" '
            f'font-weight="600" fill="{INK}">{escape(label(t, m))}</text>'
        )
        for tk in ticks:
            x = x_of(j, tk / scale)
            out.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{height - bottom}" '
                f'stroke="{GRID}"/>'
            )
            out.append(
                f'<text x="{x:.1f}" y="{height - 10}" text-anchor="middle" font-size="10" '
                f'fill="#6b7280" class="tick" data-metric="{escape(m)}">{tk:g}</text>'
            )
        out.append(
            f'<rect x="{x0}" y="{top}" width="{panel_w}" height="{height - top - bottom}" '
            f'fill="none" stroke="#d1d5db" class="panel" data-metric="{escape(m)}" '
            f'data-lo="{d_lo * scale:g}" data-hi="{d_hi * scale:g}" '
            f'data-min="{bounds[0] * scale:g}" data-max="{bounds[1] * scale:g}"/>'
        )
        for i, r in enumerate(rows):
            v = num(r.get(m))
            if v is None:
                continue
            yc = top + i * row_h + row_h / 2
            shown = f"{fmt_value(t, m, v)} {fmt_interval(t, m, r)}"
            tip = f"{r.get('model')} · {label(t, m)} {shown}".strip()
            lo, hi = num(r.get(m + "_lo")), num(r.get(m + "_hi"))
            if r.get("published"):
                x = x_of(j, v)
                out.append(
                    f'<path d="M{x:.1f} {yc - 5:.1f}l5 5l-5 5l-5 -5z" fill="white" '
                    f'stroke="{PUBLISHED}" stroke-width="1.6"><title>{escape(tip)} '
                    f"(published)</title></path>"
                )
                continue
            if lo is not None and hi is not None:
                out.append(
                    f'<line x1="{x_of(j, lo):.1f}" x2="{x_of(j, hi):.1f}" y1="{yc:.1f}" '
                    f'y2="{yc:.1f}" stroke="{OURS}" stroke-width="2.2" '
                    f'stroke-linecap="round" opacity="0.55"/>'
                )
            out.append(
                f'<circle cx="{x_of(j, v):.1f}" cy="{yc:.1f}" r="4" fill="{OURS}">'
                f"<title>{escape(tip)}</title></circle>"
            )
    out.append("</svg>")
    return "".join(out)


def scatter_chart(t: Table, rows: list[dict[str, Any]], ci: dict[str, tuple[Any, Any]]) -> str:
    """The table's ranking metric (y) against the same runs' headline metric on another task
    (x, the first context column), with both intervals where known."""
    if not t.context or not t.rank_by:
        return ""
    xm, ym = t.context[0], t.rank_by
    xs_pct, ys_pct = percent(t, xm), percent(t, ym)
    pts = [r for r in rows if num(r.get(ym)) is not None and num(r.get(xm)) is not None]
    if not pts:
        return ""
    w, h, ml, mr, mt, mb = 560, 380, 56, 24, 20, 48
    fx, fy = (100.0 if xs_pct else 1.0), (100.0 if ys_pct else 1.0)
    xs = [fx * (num(r[xm]) or 0) for r in pts]
    xl, xh = [], []
    for r, x in zip(pts, xs, strict=True):
        lo, hi = (num(v) for v in ci.get(f"{r.get('run_id')}/{xm}", (None, None)))
        xl.append(x if lo is None else fx * lo)
        xh.append(x if hi is None else fx * hi)
    ys = [fy * (num(r[ym]) or 0.0) for r in pts]
    yl = [fy * (num(r.get(ym + "_lo")) or y / fy) for r, y in zip(pts, ys, strict=True)]
    yh = [fy * (num(r.get(ym + "_hi")) or y / fy) for r, y in zip(pts, ys, strict=True)]
    x_name, y_name = label(t, xm), label(t, ym)
    xb, yb = scale_of(t, [xm]), scale_of(t, [ym])
    xb, yb = (fx * xb[0], fx * xb[1]), (fy * yb[0], fy * yb[1])
    xpad, ypad = 0.03 * (xb[1] - xb[0]), 0.03 * (yb[1] - yb[0])
    x_lo, x_hi = max(xb[0], min(xl) - xpad), min(xb[1], max(xh) + xpad)
    y_lo, y_hi = max(yb[0], min(yl) - ypad), min(yb[1], max(yh) + ypad)
    if x_hi - x_lo < 1e-9:  # one value (e.g. every run at 0 %): a small window inside the range
        x_lo, x_hi = max(xb[0], x_lo - 5 * xpad), min(xb[1], x_hi + 5 * xpad)
    if y_hi - y_lo < 1e-9:
        y_lo, y_hi = max(yb[0], y_lo - 5 * ypad), min(yb[1], y_hi + 5 * ypad)
    xt, yt = clamped_ticks(x_lo, x_hi, xb), clamped_ticks(y_lo, y_hi, yb)

    def px(v: float) -> float:
        return ml + (v - xt[0]) / (xt[-1] - xt[0] or 1) * (w - ml - mr)

    def py(v: float) -> float:
        return h - mb - (v - yt[0]) / (yt[-1] - yt[0] or 1) * (h - mt - mb)

    out = [
        f'<svg class="chart scatter" xmlns="http://www.w3.org/2000/svg" width="{w}" '
        f'height="{h}" viewBox="0 0 {w} {h}" role="img" '
        f'aria-label="{escape(y_name)} against {escape(x_name)}">'
    ]
    for tk in xt:
        out.append(
            f'<line x1="{px(tk):.1f}" x2="{px(tk):.1f}" y1="{mt}" y2="{h - mb}" '
            f'stroke="{GRID}"/><text x="{px(tk):.1f}" y="{h - mb + 16}" font-size="10" '
            f'text-anchor="middle" fill="#6b7280" class="tick x" data-min="{xb[0]:g}" '
            f'data-max="{xb[1]:g}">{tk:g}</text>'
        )
    for tk in yt:
        out.append(
            f'<line x1="{ml}" x2="{w - mr}" y1="{py(tk):.1f}" y2="{py(tk):.1f}" '
            f'stroke="{GRID}"/><text x="{ml - 6}" y="{py(tk) + 3:.1f}" font-size="10" '
            f'text-anchor="end" fill="#6b7280" class="tick y" data-min="{yb[0]:g}" '
            f'data-max="{yb[1]:g}">{tk:g}</text>'
        )
    out.append(
        f'<text x="{(ml + w - mr) / 2}" y="{h - 10}" text-anchor="middle" font-size="12" '
        f'fill="{INK}">{escape(x_name)}{" (%)" if xs_pct else ""}</text>'
        f'<text transform="translate(14 {(mt + h - mb) / 2}) rotate(-90)" '
        f'text-anchor="middle" font-size="12" fill="{INK}">{escape(y_name)}</text>'
    )
    labelled = len(pts) <= 24
    placed: list[tuple[float, float, float, float]] = []
    for r, x, x_lo, x_hi, y, y_lo, y_hi in zip(pts, xs, xl, xh, ys, yl, yh, strict=True):
        pub = bool(r.get("published"))
        color = PUBLISHED if pub else OURS
        tip = escape(
            f"{r.get('model')}{' (published)' if pub else ''}: {y_name} {y:.2f}, {x_name} {x:.1f}"
        )
        if not pub:
            out.append(
                f'<g stroke="{color}" stroke-width="1.4" opacity="0.5">'
                f'<line x1="{px(x_lo):.1f}" x2="{px(x_hi):.1f}" y1="{py(y):.1f}" '
                f'y2="{py(y):.1f}"/><line x1="{px(x):.1f}" x2="{px(x):.1f}" '
                f'y1="{py(y_lo):.1f}" y2="{py(y_hi):.1f}"/></g>'
            )
            out.append(
                f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="5" fill="{color}">'
                f"<title>{tip}</title></circle>"
            )
        else:
            out.append(
                f'<path d="M{px(x):.1f} {py(y) - 6:.1f}l6 6l-6 6l-6 -6z" fill="white" '
                f'stroke="{color}" stroke-width="1.6"><title>{tip}</title></path>'
            )
        if labelled:  # ours to the right of the mark, published to the left: fewer collisions
            name = _short(str(r.get("model")), 26)
            tw = 5.6 * len(name)
            sides = [False, True] if pub else [True, False]
            spots = [(side, dy) for side in sides for dy in (-5, 13, -16)]
            for right, dy in spots:  # first free spot inside the plot, else no label
                tx = px(x) + 8 if right else px(x) - 9
                x0, ty = (tx if right else tx - tw), py(y) + dy
                box = (x0, ty - 10, x0 + tw, ty + 2)
                inside = box[0] >= ml and box[1] >= mt and box[2] <= w
                if inside and not any(_overlap(box, b) for b in placed):
                    placed.append(box)
                    out.append(
                        f'<text x="{tx:.1f}" y="{ty:.1f}" font-size="10" '
                        f'text-anchor="{"start" if right else "end"}" fill="{color}">'
                        f"{escape(name)}</text>"
                    )
                    break
    out.append("</svg>")
    return "".join(out)


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _table_ctx(t: Table, rows: list[dict[str, Any]]) -> dict[str, Any]:
    cols = columns(t)
    head = []
    for c in cols:
        numeric = c in t.metrics or c in t.context or c in ("rank", "rank_interval", "n_items")
        first = "descending" if c in t.metrics or c in t.context else "ascending"
        head.append({"key": c, "label": HEAD.get(c, label(t, c)), "num": numeric, "first": first})
    body = []
    for r in rows:
        cells = []
        for c in cols:
            sort: Any = r.get(c)
            if c == "rank_interval":
                sort = r.get("rank_lo")
            if sort is None:
                sort = ""
            text = cell(t, c, r)
            if c == "run_id":  # the run's name when it has one; the id stays in the tooltip
                text = str(r.get("name") or r.get("run_id") or "")
            cells.append(
                {
                    "text": text,
                    "title": str(r.get("run_id") or "") if c == "run_id" else "",
                    "sort": sort,
                    "key": c,
                    "ci": fmt_interval(t, c, r) if c in t.metrics else "",
                }
            )
        body.append(
            {"published": bool(r.get("published")), "run_id": r.get("run_id") or "", "cells": cells}
        )
    return {"head": head, "rows": body}


_SEPARATORS = re.compile(r"([-_/:.@+=])")


def breakable(text: Any) -> Any:
    """Escaped text with a line-break opportunity after each separator, so an id or a model path
    wraps at `-`, `_`, `/` … and never inside a word (the CSS forbids breaking elsewhere)."""
    from markupsafe import Markup

    parts = _SEPARATORS.split(str(text))
    return Markup("").join(
        Markup(escape(p)) + (Markup("<wbr>") if _SEPARATORS.fullmatch(p) else Markup(""))
        for p in parts
    )


def chip(t: Table, rows: list[dict[str, Any]]) -> str:
    """A table's name in the page's index: what people tell tables apart by, not a hash."""
    if t.published_only:
        return f"{t.kind} · published: {t.meta.get('published_setting') or t.id}"
    judge = (t.meta.get("judge") or {}).get("spec")
    n = sum(1 for r in rows if not r.get("published"))
    parts = [t.kind, f"judge {short_model(str(judge))}" if judge else "", f"{n} runs"]
    return " · ".join(p for p in parts if p)


def page(lb: Leaderboard) -> str:
    import jinja2

    ci: dict[str, tuple[Any, Any]] = {}  # "run/metric" -> its interval, from its own table
    for t in lb.tables:
        for r in records(t):
            if r.get("run_id"):
                for m in t.metrics:
                    ci.setdefault(f"{r['run_id']}/{m}", (r.get(m + "_lo"), r.get(m + "_hi")))
    sections = []
    for t in lb.tables:
        rows = records(t)
        sections.append(
            {
                "id": t.id,
                "title": t.title,
                "kind": t.kind,
                "meta": meta_line(t),
                "published_only": t.published_only,
                "table": _table_ctx(t, rows),
                "forest": forest_chart(t, rows),
                "scatter": scatter_chart(t, rows, ci),
                "judged": bool(t.meta.get("judge")),
                "forest_caption": ", ".join(label(t, m) for m in _watched(t)),
                "scatter_caption": (
                    f"{label(t, t.rank_by)} vs {label(t, t.context[0])}" if t.context else ""
                ),
                "chip": chip(t, rows),
                "n_runs": sum(1 for r in rows if not r.get("published")),
                "has_published": any(r.get("published") for r in rows),
            }
        )
    sections.sort(key=lambda x: bool(x["published_only"]))  # context-only tables last, folded
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(data_dir("leaderboard") / "templates")),
        autoescape=jinja2.select_autoescape(["html", "jinja"]),
        undefined=jinja2.StrictUndefined,
    )
    env.filters["breakable"] = breakable
    n_runs = len({r["run_id"] for t in lb.tables for r in records(t) if r.get("run_id")})
    return env.get_template("page.html.jinja").render(
        lb=lb, sections=sections, notes=footnotes(lb), n_runs=n_runs
    )
