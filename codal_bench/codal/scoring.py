"""The scoring face of CODAL-Bench: its metrics, per-item scores, notes and judge report."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..scoring import BaseScoring, MetricScores, Row, mean_of_means
from .report import codal_report
from .scores import AVERAGE, PREFERENCES, preference_scores


class CodalScoring(BaseScoring):
    """The scoring face of CODAL-Bench (see the module docstring for the rule)."""

    def score(self, rows: Sequence[Row]) -> list[MetricScores]:
        by_pref = preference_scores(rows)
        out = list(by_pref.values())
        if all(p in by_pref for p in PREFERENCES):
            out.append(mean_of_means(AVERAGE, [by_pref[p] for p in PREFERENCES]))
        return out

    def describe_item(self, rows: Sequence[Row]) -> str:
        for r in rows:
            if r.get("gen_error"):
                return f"generation error: {r['gen_error']}"[:200]
        for r in rows:
            if r.get("rationale"):
                return str(r["rationale"])
        return "no judge reply" if rows else ""

    def export_fields(self, row: Row) -> dict[str, Any]:
        return {"rating": row.get("rating"), "rationale": row.get("rationale")}

    def notes(self, rows: Sequence[Row]) -> list[str]:
        graded = [r for r in rows if r.get("status") in ("rated", "parse_failure")]
        failures = sum(1 for r in graded if r["status"] == "parse_failure")
        out = [f"judge parse failures (no rating, counted 0): {failures} of {len(graded)}"]
        return out

    def sample_fields(
        self, row: Row, data: dict[str, Any] | None, settings: Any = None
    ) -> dict[str, Any]:
        """The reference answer the judge compared against (the column it used)."""
        column = (row.get("details") or {}).get("reference_column")
        ref = data.get(column) if data and column else None
        return {"reference_column": column, "reference": ref}

    def warnings(self, report: dict[str, Any]) -> list[str]:
        """The two judge problems that change how far its ratings can be trusted."""
        diag = report.get("diagnostics") or {}
        out = []
        rate, outputs = diag.get("parse_failure_rate"), diag.get("outputs") or 0
        if rate:
            out.append(
                f"judge parse failures: {diag.get('parse_failures')} of {outputs} ratings "
                f"({100 * rate:.0f} %) unreadable, each scored 0"
            )
        selfp = diag.get("self_preference") or {}
        if selfp.get("flag"):
            why = "; ".join(selfp.get("reasons") or [])
            out.append(f"self-preference: the judge may favour itself ({why})")
        if diag.get("judge_errors"):
            out.append(f"judge errors: {diag['judge_errors']} answers got no rating (scored 0)")
        return out

    def report(self, rows: Sequence[Row], config: Any) -> dict[str, Any]:
        """The judge report kept in the run record: intervals and diagnostics."""
        judge = config.judge
        return codal_report(
            rows,
            candidate=config.model,
            judge=judge.spec if judge else None,
            reference=judge.reference if judge else None,
        )

    def grader_failures(self, rows: Sequence[Row]) -> tuple[int, int, str | None]:
        """Judge replies without a rating, of all replies, and one of them (the run is invalid
        above `--max-parse-failure-rate`)."""
        graded = [r for r in rows if r.get("status") in ("rated", "parse_failure")]
        failed = [r for r in graded if r["status"] == "parse_failure"]
        example = next(
            (str((r.get("details") or {}).get("judge_output") or "") for r in failed), None
        )
        return len(failed), len(graded), example
