"""Leaderboard renderers: terminal (rich), markdown, csv, json; HTML lives in `html`.

Every format shows the same tables in the same order; only the terminal moves the per-group fields
(judge, reference, templates) into the table title, to keep rows narrow enough to read.
"""

from __future__ import annotations

import io
import json
import math
import sys
from pathlib import Path
from typing import Any

from ..types import UsageError
from .model import FORMATS, Leaderboard, Table


def label(t: Table, metric: str) -> str:
    """The metric's short header, as its task names it."""
    m = t.labels.get(metric)
    return m.label if m is not None else metric


def short_model(spec: str) -> str:
    """`vllm:/abs/path/to/ckpt` -> `vllm:ckpt`: the folder name is what people recognise."""
    backend, sep, rest = spec.partition(":")
    if sep and rest.startswith("/"):
        return f"{backend}:{Path(rest).name}"
    return spec


def num(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def percent(t: Table, metric: str) -> bool:
    m = t.labels.get(metric)
    return bool(m and m.percent)


def fmt_value(t: Table, metric: str, v: Any) -> str:
    """Ratings with two decimals (as published); rates (pass@k) as a percentage."""
    f = num(v)
    if f is None:
        return "–"
    return f"{100 * f:.1f}" if percent(t, metric) else f"{f:.2f}"


def fmt_interval(t: Table, metric: str, row: dict[str, Any]) -> str:
    lo, hi = num(row.get(metric + "_lo")), num(row.get(metric + "_hi"))
    if lo is None or hi is None:
        return ""
    return f"{fmt_value(t, metric, lo)}–{fmt_value(t, metric, hi)}"


def rank_text(row: dict[str, Any]) -> str:
    if row.get("published") is True:
        return "pub."
    r = num(row.get("rank"))
    if r is None:
        return ""
    return f"{int(r)}{'=' if row.get('tie') is True else ''}"


def rank_interval(row: dict[str, Any]) -> str:
    lo, hi = num(row.get("rank_lo")), num(row.get("rank_hi"))
    if lo is None or hi is None:
        return ""
    return f"{int(lo)}–{int(hi)}" if lo != hi else f"{int(lo)}"


def records(t: Table) -> list[dict[str, Any]]:
    """Rows as plain Python values (NaN -> None), in the table's order."""
    out = []
    for r in t.frame.to_dict("records"):
        row = {str(k): _plain(v) for k, v in r.items()}
        for k in ("rank", "rank_lo", "rank_hi", "n_items"):
            if isinstance(row.get(k), float):
                row[k] = int(row[k])
        out.append(row)
    return out


def _plain(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def meta_line(t: Table) -> str:
    m = t.meta
    parts: list[str] = []
    if not t.published_only:
        j = m.get("judge") or {}
        if j:
            parts.append(f"templates {str(j.get('templates_sha256') or '')[:12]}")
        if m.get("prompt_set_sha256"):
            parts.append(f"prompt set {str(m.get('prompt_set_sha256'))[:12]}")
        parts.append(f"data {str(m.get('data_sha256') or '')[:12]}")
        if j:
            s = m.get("sampling") or {}
            parts.append(
                f"T={s.get('temperature')} top_p={s.get('top_p')} max_tokens={s.get('max_tokens')}"
            )
            parts.append(f"{m.get('items')} items")
    if not t.published_only and m.get("judge"):
        parts.append(audit_text(m.get("judge_audit")))
    if t.published_only and m.get("not_beside_runs_because"):
        why = [str(x) for x in m["not_beside_runs_because"]]
        parts.append(f"not beside our runs: {', '.join(why[:6])}{' …' if len(why) > 6 else ''}")
    parts.append(f"{m.get('runs', 0)} runs ranked")
    if m.get("published_setting"):
        parts.append(f"context: {m['published_setting']}")
    parts.append(f"group {t.id}")
    return " · ".join(parts)


def audit_text(audit: dict[str, Any] | None) -> str:
    """The judge's latest audit AUROC (pass vs fail code), or that it has none."""
    if not audit:
        return "judge audit: none"
    auroc = num(audit.get("auroc"))
    iv = audit.get("interval") or []
    span = f" ({iv[0]:.2f}–{iv[1]:.2f})" if len(iv) == 2 else ""
    value = "–" if auroc is None else f"{auroc:.2f}"
    return f"judge audit AUROC {value}{span} [{audit.get('audit_id')}]"


def footnotes(lb: Leaderboard) -> list[str]:
    notes = [
        f"Intervals: 95 % percentile bootstrap over items ({lb.n_boot} resamples, seed {lb.seed}),"
        " resampled jointly across the runs of a table (within each stratum of a task). Rank"
        " interval: 2.5th–97.5th percentile of the run's rank over the same resamples. '=' marks"
        " runs tied on the point score.",
        "Only runs with status 'complete' are ranked. Tables never mix tasks, judges, references,"
        " templates, prompts, generation settings, data or item sets.",
    ]
    if lb.source:
        notes.append(
            f"Rows marked published are the paper's numbers ({lb.source.get('citation', '')},"
            f" {lb.source.get('url', '')}), shown for context and never ranked."
        )
    if any(t.meta.get("judge_audit") for t in lb.tables):
        notes.append(
            "Judge audit AUROC: how well the table's judge (same identity and templates) rated"
            " code that passes its tests above code that fails (`codal-eval judge-audit`, latest"
            " audit, 95 % bootstrap interval over tasks); 0.5 is chance. It checks correctness"
            " only, one of the qualities the judge rates."
        )
    if lb.skipped:
        listed = ", ".join(f"{s['run_id']} ({s['model']}, {s['status']})" for s in lb.skipped)
        notes.append(f"Not ranked (not complete): {listed}.")
    return notes


def columns(t: Table) -> list[str]:
    judged = (
        ["judge", "reference", "templates"]
        if (t.meta.get("judge") or (t.published_only and "judge" in t.frame))
        else []
    )
    return [
        "rank",
        "rank_interval",
        "model",
        "run_id",
        *t.metrics,
        *t.context,
        "n_items",
        *judged,
        "date",
    ]


HEAD = {
    "rank": "Rank",
    "rank_interval": "95% rank",
    "model": "Model",
    "run_id": "Run",
    "n_items": "Items",
    "judge": "Judge",
    "reference": "Reference",
    "templates": "Templates",
    "date": "Date",
}


def cell(t: Table, col: str, row: dict[str, Any]) -> str:
    if col == "rank":
        return rank_text(row)
    if col == "rank_interval":
        return rank_interval(row)
    if col in t.metrics or col in t.context:
        return fmt_value(t, col, row.get(col))
    v = row.get(col)
    if col == "model" and row.get("published"):
        return f"{v} (published)"
    n = num(v)
    if col == "n_items" and n is not None:
        return str(int(n))
    return "" if v is None else str(v)


# -- formats ---------------------------------------------------------------------------------


def render_text(lb: Leaderboard, fmt: str) -> str:
    """Every format but HTML (which `html` builds from these helpers)."""
    if fmt == "terminal":
        return _terminal(lb)
    if fmt == "markdown":
        return _markdown(lb)
    if fmt == "csv":
        return _csv(lb)
    if fmt == "json":
        return _json(lb)
    raise UsageError(f"unknown leaderboard format {fmt!r} (choose from {', '.join(FORMATS)})")


def run_label(row: dict[str, Any]) -> str:
    """What a row is called: the run's name, else its id; a published row, its model."""
    if row.get("published"):
        return f"{row.get('model')} (published)"
    return str(row.get("name") or row.get("run_id") or "")


def _terminal_cols(t: Table) -> list[Any]:
    """Columns in the order shown, with how long each survives a narrow terminal."""
    from ..termtable import ESSENTIAL, Col

    cols = [
        Col("rank", "Rank", ESSENTIAL, right=True, whole=True),
        Col("run", "Run", ESSENTIAL, whole=True),
    ]
    for i, m in enumerate(t.metrics):
        keep = ESSENTIAL if m == t.rank_by else 60 - i
        cols.append(Col(m, label(t, m), keep, right=True, whole=True))
    cols += [Col(c, label(t, c), 45 - i, right=True, whole=True) for i, c in enumerate(t.context)]
    cols += [
        Col("model", "Model", 80, max_width=30),
        Col("rank_interval", "95% rank", 70, right=True, whole=True),
        Col("n_items", "Items", 20, right=True, whole=True),
    ]
    order = ["rank", "rank_interval", "run", "model", *t.metrics, *t.context, "n_items"]
    by_key = {c.key: c for c in cols}
    return [by_key[k] for k in order]


def terminal_renderable(lb: Leaderboard, w: int = 160) -> Any:
    """All tables laid out for `w` columns; published-only tables folded to one line each when
    there are tables of our own runs."""
    from rich.console import Group
    from rich.text import Text

    from ..termtable import fit

    parts: list[Any] = []
    folded = []
    ours = any(not t.published_only for t in lb.tables)
    for t in lb.tables:
        if t.published_only and ours:  # beside our own tables, context tables take one line
            folded.append(t)
            continue
        cols = _terminal_cols(t)
        rows = []
        for row in records(t):
            cells: dict[str, Any] = {c.key: cell(t, c.key, row) for c in cols}
            cells["run"] = run_label(row)
            cells["model"] = short_model(str(row.get("model")))
            for m in t.metrics:
                ci = fmt_interval(t, m, row)
                if ci:
                    cells[m] = Text(cells[m] + "\n") + Text(ci, style="dim")
            cells["_style"] = "dim italic" if row.get("published") else None
            rows.append(cells)
        parts += [fit(cols, rows, w, title=t.title, caption=meta_line(t)), Text("")]
    if not ours:
        parts.append(Text("No complete runs in the store yet."))
    for t in folded:
        parts.append(
            Text(f"{t.title} ({len(t.frame)} rows; see --format markdown): "
                 f"{meta_line(t)}", style="dim", overflow="fold")
        )  # fmt: skip
    parts += [Text(n, style="dim", overflow="fold") for n in footnotes(lb)]
    return Group(*parts)


def _terminal(lb: Leaderboard) -> str:
    from rich.console import Console

    from ..termtable import width

    tty = sys.stdout.isatty()
    w = width(default=160)
    buf = io.StringIO()
    Console(file=buf, force_terminal=tty, width=w, highlight=False).print(
        terminal_renderable(lb, w)
    )
    return buf.getvalue()


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")


def _markdown(lb: Leaderboard) -> str:
    out = ["# codal-eval leaderboard", "", f"_Generated {lb.generated}._", ""]
    for t in lb.tables:
        out += [f"## {t.title}", "", _md_escape(meta_line(t)), ""]
        cols = columns(t)
        out.append("| " + " | ".join(HEAD.get(c, label(t, c)) for c in cols) + " |")
        out.append(
            "|"
            + "|".join(
                "---:" if c in t.metrics or c in t.context or c in ("rank", "n_items") else "---"
                for c in cols
            )
            + "|"
        )
        for row in records(t):
            cells = []
            for c in cols:
                text = _md_escape(cell(t, c, row))
                if c in t.metrics and fmt_interval(t, c, row):
                    text += f" <sub>{fmt_interval(t, c, row)}</sub>"
                if c == "model" and row.get("published"):
                    text = f"_{text}_"
                if c == "run_id" and text:
                    text = f"`{text}`"
                cells.append(text)
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    if not lb.tables:
        out += ["No complete runs in the store yet.", ""]
    out += [f"- {_md_escape(n)}" for n in footnotes(lb)]
    return "\n".join(out) + "\n"


def _csv(lb: Leaderboard) -> str:
    import pandas as pd

    frames = []
    for t in lb.tables:
        f = t.frame.copy()
        f.insert(0, "table_kind", t.kind)
        f.insert(0, "table", t.id)
        frames.append(f)
    if not frames:
        return "table,table_kind,model,run_id\n"
    df = pd.concat(frames, ignore_index=True, sort=False)
    first = [
        "table",
        "table_kind",
        "published",
        "rank",
        "tie",
        "rank_lo",
        "rank_hi",
        "model",
        "run_id",
    ]
    df = df[[c for c in first if c in df] + [c for c in df if c not in first]]
    for c in ("rank", "rank_lo", "rank_hi", "n_items"):  # integers, blank when not ranked
        df[c] = df[c].astype("Int64")
    return str(df.to_csv(index=False, lineterminator="\n"))


def to_dict(lb: Leaderboard) -> dict[str, Any]:
    return {
        "generated": lb.generated,
        "n_boot": lb.n_boot,
        "seed": lb.seed,
        "source": lb.source,
        "tables": [
            {
                "id": t.id,
                "kind": t.kind,
                "title": t.title,
                "meta": t.meta,
                "metrics": t.metrics,
                "labels": {m: t.labels[m].label for m in t.metrics + t.context if m in t.labels},
                "context": t.context,
                "rank_by": t.rank_by,
                "published_only": t.published_only,
                "rows": records(t),
            }
            for t in lb.tables
        ],
        "skipped": lb.skipped,
        "notes": footnotes(lb),
    }


def _json(lb: Leaderboard) -> str:
    return json.dumps(to_dict(lb), indent=2, ensure_ascii=False, default=str) + "\n"
