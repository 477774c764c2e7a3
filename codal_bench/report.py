"""What a run prints at the end, and per-sample export. Reads only what the store holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

from .scores import PREFERENCES
from .store import Store


def summary_table(run_id: str | None, summary: dict[str, Any], record: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title=f"codal-eval run {run_id}")
    table.add_column("metric")
    table.add_column("score", justify="right")
    table.add_column("n", justify="right")
    codal = summary.get("codal")
    if codal:
        report = record.get("codal_report") or {}
        prefs = report.get("preferences", {})
        for p in (*PREFERENCES, "average"):
            if p in codal:
                n = prefs.get(p, {}).get("n", "")
                table.add_row(f"CODAL {p}", f"{codal[p]:.2f}", str(n))
        table.add_row(
            "CODAL parse failures",
            str(summary.get("codal_parse_failures", 0)),
            str(summary.get("codal_items", "")),
        )
    for key in sorted(k for k in summary if "/" in k):
        task, part = key.split("/")
        label = ("HumanEval" if part == "base" else "HumanEval+") + (
            " (Mini)" if task.endswith("mini") else ""
        )
        for k, v in summary[key]["pass_at"].items():
            table.add_row(f"{label} pass@{k}", f"{v:.3f}", str(summary[key]["tasks"]))
    table.add_row("empty answers (graded)", str(summary.get("empty_answers", 0)), "")
    table.add_row("errors (not graded)", str(summary.get("errors", 0)), "")
    return table


def print_summary(
    run_id: str | None, summary: dict[str, Any], record: dict[str, Any], store: Path
) -> None:
    from rich.console import Console

    console = Console()
    console.print(summary_table(run_id, summary, record))
    counts = record.get("counts", {})
    tokens = record.get("tokens", {})
    console.print(
        f"requests sent: {counts.get('requests_sent', 0)}, cached: {counts.get('cached', 0)}, "
        f"tokens: {tokens.get('prompt', 0)} prompt + {tokens.get('completion', 0)} completion, "
        f"cost: ${record.get('cost_usd', 0):.4f}"
    )
    diag = (record.get("codal_report") or {}).get("diagnostics")
    if diag:
        console.print(f"judge diagnostics: {json.dumps(diag, default=str)}")
    console.print(f"store: {store}  run: {run_id}")


def print_dry_run(info: dict[str, Any]) -> None:
    from rich.console import Console

    Console().print(f"dry run ({info['requests']} requests in all): {info['text']}")


def export_jsonl(store: Store, run_id: str, out: TextIO) -> int:
    """One JSON object per (item, sample, repeat): the answer and its verdict."""
    run = store.run(run_id)
    n = 0
    for r in store.results(run.run_id):
        row: dict[str, Any] = {
            "run_id": run.run_id,
            "task": r["task"],
            "task_id": r["item_id"],
            "group": r["group"],
            "sample_index": r["sample_index"],
            "repeat": r["repeat"],
            "answer": r["answer"],
            "error": r["gen_error"],
            "status": r["status"],
        }
        if r["task"] == "codal-bench":
            row["rating"] = r["rating"]
            row["rationale"] = r["rationale"]
        else:
            row["base_status"] = r["details"].get("base")
            row["plus_status"] = r["details"].get("plus")
            row["details"] = r["details"]
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
        n += 1
    return n
