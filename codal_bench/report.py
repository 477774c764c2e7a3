"""What a run prints at the end, `runs show`, and per-sample export. Reads only the store.

Everything here is laid out for the terminal's width (80 columns included): the metric table
keeps the metric's name and score, lines of facts are joined at ` · ` without splitting a fact,
and the judge diagnostics become one readable warning line each (the full report is in
`runs show RUN --format json` and `results.json`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

from .config import RunRecord
from .store import RunInfo, Store
from .termtable import ESSENTIAL, Col, console, fit, pieces, width


def _shown(m: dict[str, Any], v: float | None) -> str:
    if v is None:
        return "–"
    return f"{100 * v:.1f}" if m.get("percent") else f"{v:.2f}"


def metric_table(metrics: list[dict[str, Any]], w: int, title: str | None = None) -> Any:
    """Metrics (results.metric_entries shape, or a stored summary's) with their intervals."""
    cols = [
        Col("metric", "metric", ESSENTIAL),
        Col("score", "score", ESSENTIAL, right=True, whole=True),
        Col("interval", "95% interval", 40, right=True, whole=True),
        Col("n", "n", 30, right=True, whole=True),
    ]
    rows = []
    for m in metrics:
        ci = m.get("interval")
        unit = " %" if m.get("percent") else ""
        rows.append(
            {
                "metric": f"{m['task']} · {m.get('label') or m['name']}",
                "score": _shown(m, m.get("value")) + unit,
                "interval": f"{_shown(m, ci[0])}–{_shown(m, ci[1])}" if ci else "",
                "n": str(m.get("n", "")),
            }
        )
    return fit(cols, rows, w, title=title)


def summary_metrics(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """A stored summary's metrics in the results shape (no intervals)."""
    return [
        {"task": task, "name": name, **m}
        for task, t in (summary.get("tasks") or {}).items()
        for name, m in (t.get("metrics") or {}).items()
    ]


def print_summary(
    run_id: str | None,
    summary: dict[str, Any],
    record: RunRecord,
    store: Path,
    status: str = "complete",
    *,
    name: str | None = None,
    metrics: list[dict[str, Any]] | None = None,
    warnings: list[str] | None = None,
    log: Path | None = None,
    out: TextIO | None = None,
) -> None:
    from rich.text import Text

    w = width()
    con = console(out, w=w)
    title = f"codal-eval run {name or run_id}"
    con.print(metric_table(metrics or summary_metrics(summary), w, title=title))
    for task, t in (summary.get("tasks") or {}).items():
        for note in t.get("notes", []):
            con.print(Text(f"{task}: {note}", overflow="fold"))
    counts, tokens = record.counts, record.tokens
    facts = [
        f"empty answers {summary.get('empty_answers', 0)}",
        f"errors (scored as failures) {summary.get('errors', 0)}",
        f"requests sent {counts.get('requests_sent', 0)}",
        f"cached {counts.get('cached', 0)}",
        f"tokens {tokens.get('prompt', 0):,} prompt + {tokens.get('completion', 0):,} completion",
        f"cost ${record.cost_usd:.4f}",
    ]
    for line in pieces(facts, w):
        con.print(Text(line, overflow="fold"))
    for warn in warnings or []:
        con.print(Text("warning: ", style="bold yellow") + Text(warn, overflow="fold"))
    where = [f"run {name}" if name else "", f"id {run_id}", f"store {store}"]
    if log is not None:
        where.append(f"library log {log}")
    for line in pieces([x for x in where if x], w):
        con.print(Text(line, overflow="fold"))
    print_problems(run_id, status, record)


def print_problems(run_id: str | None, status: str, record: RunRecord) -> None:
    """What went wrong, on stderr (also with --quiet): each endpoint's errors once, then why
    the run is not complete. The last line names the run's state."""
    from rich.text import Text

    err = console(stderr=True)
    for f in record.failures:
        err.print(
            Text(
                f"error: {f['role']} at {f['endpoint']}: {f['count']} request(s) failed; "
                f"first: {f['first']}",
                overflow="fold",
            )
        )
    for why in record.reasons:
        line = f"warning: {why}" if status == "complete" else f"codal-eval: {why}"
        err.print(Text(line, overflow="fold"))
    if status != "complete":
        err.print(Text(f"codal-eval: run {run_id} is {status} (exit 1)", overflow="fold"))


def print_run(store: Store, info: RunInfo, out: TextIO | None = None) -> None:
    """`runs show RUN`: who, what, when, the scores with intervals, warnings, and the config."""
    from rich.text import Text

    from .results import metric_entries, warnings_of
    from .runs import when

    w = width()
    con = console(out, w=w)
    con.print(Text(info.name or info.run_id, style="bold"))
    facts = [
        f"id {info.run_id}",
        f"status {info.status}",
        f"started {when(info.created)}",
        f"model {info.model}",
        f"judge {info.judge or '–'}",
        f"command {info.config.command}",
    ]
    if info.config.parent_run:
        facts.append(f"from run {info.config.parent_run}")
    if info.tags:
        facts.append("tags " + ", ".join(info.tags))
    for line in pieces(facts, w):
        con.print(Text(line, overflow="fold"))
    con.print(metric_table(metric_entries(store.results(info.run_id)), w))
    rec = info.record
    facts = [
        f"errors {rec.summary.get('errors', rec.errors)}",
        f"requests sent {rec.counts.get('requests_sent', 0)}",
        f"cached {rec.counts.get('cached', 0)}",
        f"cost ${rec.cost_usd:.4f}",
    ]
    for task, t in info.config.tasks.items():
        s = t.sampling
        facts.append(
            f"{task}: {len(rec.items.get(task, []))} items, n={t.samples}, "
            f"T={s.get('temperature')} top_p={s.get('top_p')} max_tokens={s.get('max_tokens')}"
        )
    for line in pieces(facts, w):
        con.print(Text(line, overflow="fold"))
    for warn in warnings_of(info):
        con.print(Text("warning: ", style="bold yellow") + Text(warn, overflow="fold"))


def print_dry_run(info: dict[str, Any]) -> None:
    from rich.text import Text

    con = console()
    con.print(Text(f"dry run: candidate: {info['candidate']['text']}", overflow="fold"))
    if "judge" in info:
        con.print(Text(f"dry run: judge: {info['judge']['text']}", overflow="fold"))


def export_jsonl(store: Store, run_id: str, out: TextIO) -> int:
    """One JSON object per (item, sample, repeat): prompt, answer, verdict or rating, the judge's
    prompt and reply, and the task's own fields (the same records as `--log-samples`)."""
    from .results import sample_data, sample_records, write_samples

    info = store.run(run_id)
    return write_samples(sample_records(store, info, sample_data(info)), out)
