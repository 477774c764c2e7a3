"""The CI regression gate: run a candidate like a baseline, compare item by item, report.

`check` (the decision rule and the commands), `paired` (per-item differences from each task's
scoring face), `result` (shapes, margins, what may be compared), `diff` (what flipped), `reports`
(terminal, Markdown, JUnit, JSON).
"""

from __future__ import annotations

from .check import (
    CheckError,
    CheckResult,
    DiffResult,
    MetricResult,
    check,
    compare_runs,
    diff_runs,
    find_baseline,
    parse_max_drop,
    render_diff,
    render_terminal,
    run_check,
    write_reports,
)

__all__ = [
    "CheckError",
    "CheckResult",
    "DiffResult",
    "MetricResult",
    "check",
    "compare_runs",
    "diff_runs",
    "find_baseline",
    "parse_max_drop",
    "render_diff",
    "render_terminal",
    "run_check",
    "write_reports",
]
