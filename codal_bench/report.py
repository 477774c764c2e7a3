"""What a run prints at the end, and per-sample export. Reads only what the store holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

from . import registry
from .config import RunRecord
from .store import Store


def summary_table(run_id: str | None, summary: dict[str, Any], record: Any = None) -> Any:
    from rich.table import Table

    table = Table(title=f"codal-eval run {run_id}")
    table.add_column("metric")
    table.add_column("score", justify="right")
    table.add_column("n", justify="right")
    for task, t in (summary.get("tasks") or {}).items():
        for m in t.get("metrics", {}).values():
            v = m["value"]
            shown = f"{v:.3f}" if m.get("percent") else f"{v:.2f}"
            table.add_row(f"{task} · {m['label']}", shown, str(m["n"]))
        for note in t.get("notes", []):
            table.add_row(f"{task} · {note}", "", "")
    table.add_row("empty answers (graded)", str(summary.get("empty_answers", 0)), "")
    table.add_row("errors (scored as failures)", str(summary.get("errors", 0)), "")
    return table


def print_summary(
    run_id: str | None,
    summary: dict[str, Any],
    record: RunRecord,
    store: Path,
    status: str = "complete",
) -> None:
    from rich.console import Console

    console = Console()
    console.print(summary_table(run_id, summary, record))
    counts, tokens = record.counts, record.tokens
    console.print(
        f"requests sent: {counts.get('requests_sent', 0)}, cached: {counts.get('cached', 0)}, "
        f"tokens: {tokens.get('prompt', 0)} prompt + {tokens.get('completion', 0)} completion, "
        f"cost: ${record.cost_usd:.4f}"
    )
    for task, report in record.reports.items():
        diag = report.get("diagnostics") if isinstance(report, dict) else None
        if diag:
            console.print(f"{task} judge diagnostics: {json.dumps(diag, default=str)}")
    console.print(f"store: {store}  run: {run_id}")
    print_problems(run_id, status, record)


def print_problems(run_id: str | None, status: str, record: RunRecord) -> None:
    """What went wrong, on stderr (also with --quiet): each endpoint's errors once, then why
    the run is not complete. The last line names the run's state."""
    from rich.console import Console

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for f in record.failures:
        err.print(
            f"error: {f['role']} at {f['endpoint']}: {f['count']} request(s) failed; "
            f"first: {f['first']}",
            markup=False,
        )
    for why in record.reasons:
        err.print(f"warning: {why}" if status == "complete" else f"codal-eval: {why}", markup=False)
    if status != "complete":
        err.print(f"codal-eval: run {run_id} is {status} (exit 1)", markup=False)


def print_dry_run(info: dict[str, Any]) -> None:
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    console.print(f"dry run: candidate: {info['candidate']['text']}")
    if "judge" in info:
        console.print(f"dry run: judge: {info['judge']['text']}")


def _error_of(r: dict[str, Any]) -> str | None:
    """Why a row has no usable answer or grade (the rule that scores it as a failure)."""
    if r.get("gen_error"):
        return str(r["gen_error"])
    if r.get("status") == "judge_error":
        return str((r.get("details") or {}).get("error") or "the judge call failed")
    if r.get("answer") is None:
        return "no answer (not sent: the run stopped first)"
    if r.get("status") is None:
        return "not graded"
    return None


def export_jsonl(store: Store, run_id: str, out: TextIO) -> int:
    """One JSON object per (item, sample, repeat): the answer, its verdict and the task's fields."""
    run = store.run(run_id)
    n = 0
    scorers: dict[str, Any] = {}
    for r in store.results(run.run_id):
        if r["task"] not in scorers:
            scorers[r["task"]] = registry.scoring(r["task"])
        row: dict[str, Any] = {
            "run_id": run.run_id,
            "task": r["task"],
            "task_id": r["item_id"],
            "group": r["group"],
            "sample_index": r["sample_index"],
            "repeat": r["repeat"],
            "answer": r["answer"],
            "error": _error_of(r),
            "status": r["status"],
            "run_status": run.status,
            **scorers[r["task"]].export_fields(r),
        }
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
        n += 1
    return n
