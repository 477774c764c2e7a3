"""The headline numbers of one run, from its stored rows, asked of each task's scoring face."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from . import registry
from .scoring import MetricScores, Row, error_rows


def rows_by_task(rows: Sequence[Row]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        out[r["task"]].append(r)
    return dict(out)


def task_scores(task: str, rows: Sequence[Row]) -> list[MetricScores]:
    scores: list[MetricScores] = registry.scoring(task).score(rows)
    return scores


def run_summary(rows: Sequence[Row]) -> dict[str, Any]:
    """Per task: every metric (value, n), the task's notes and its error count; then totals.

    `errors` counts rows without a usable answer or grade (each scored as a failure);
    `empty_answers` counts answers that were empty strings (graded like any answer).
    """
    tasks: dict[str, Any] = {}
    for task, trows in rows_by_task(rows).items():
        scoring = registry.scoring(task)
        tasks[task] = {
            "metrics": {
                s.metric.name: {
                    "label": s.metric.label,
                    "value": s.value,
                    "n": s.n,
                    "percent": s.metric.percent,
                    "headline": s.metric.headline,
                }
                for s in scoring.score(trows)
            },
            "notes": list(scoring.notes(trows)),
            "errors": error_rows(trows),
        }
    return {
        "tasks": tasks,
        "errors": sum(t["errors"] for t in tasks.values()),
        "empty_answers": len(
            {
                (r["task"], r["item_id"], r["sample_index"])
                for r in rows
                if r.get("answer") == "" and not r.get("gen_error")
            }
        ),
    }


def metric_value(summary: dict[str, Any], task: str, metric: str) -> float | None:
    """One metric's value from a stored summary, or None."""
    m = ((summary.get("tasks") or {}).get(task) or {}).get("metrics", {}).get(metric)
    return None if m is None else float(m["value"])
