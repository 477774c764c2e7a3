"""HumanEval+ scores: pass@k on the base tests and on base + plus tests (EvalPlus' rule).

A sample passes HumanEval+ only when it passes both its base and its plus inputs. A sample that
was never graded (its answer failed after retries) or errored in the sandbox is a failed sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..scoring import BaseScoring, Metric, MetricScores, Row, pass_at_k_scores

PARTS = {"plus": ("humaneval-plus", "HE+"), "base": ("humaneval", "HE")}


def part_passed(row: Row, part: str) -> bool:
    d = row.get("details") or {}
    base_ok = d.get("base", row.get("status")) == "pass"
    return base_ok and (part == "base" or d.get("plus", row.get("status")) == "pass")


def metric(part: str, k: int) -> Metric:
    name, label = PARTS[part]
    return Metric(
        name if k == 1 else f"{name}@{k}",
        f"{label} pass@{k}",
        percent=True,
        gate_margin=0.05 if k == 1 else None,
        headline=part == "plus" and k == 1,
    )


class HumanEvalScoring(BaseScoring):
    """pass@k (every k each task has samples for) on plus tests, then on base tests."""

    def score(self, rows: Sequence[Row]) -> list[MetricScores]:
        plus = pass_at_k_scores(rows, lambda r: part_passed(r, "plus"), lambda k: metric("plus", k))
        base = pass_at_k_scores(rows, lambda r: part_passed(r, "base"), lambda k: metric("base", k))
        return plus + base

    def describe_item(self, rows: Sequence[Row]) -> str:
        for r in rows:
            if r.get("gen_error"):
                return f"generation error: {r['gen_error']}"[:200]
            if r.get("status") in (None, "pass"):
                continue
            d = r.get("details") or {}
            parts = [f"base={d.get('base', r.get('status'))}", f"plus={d.get('plus', '-')}"]
            ff = d.get("first_failed")
            if isinstance(ff, dict):
                where = f"{ff.get('group', '')} input {ff.get('index', '?')}".strip()
                shown = str(ff.get("input", ""))[:100]
                parts.append(f"{where}: {shown} → {ff.get('reason', 'failed')}")
            elif ff is not None:
                parts.append(f"first failing input: {str(ff)[:120]}")
            elif d.get("stderr_tail"):
                lines = str(d["stderr_tail"]).strip().splitlines()
                if lines:
                    parts.append(lines[-1][:120])
            return "; ".join(parts)
        return "pass" if rows else ""

    def export_fields(self, row: Row) -> dict[str, Any]:
        d = row.get("details") or {}
        return {"base_status": d.get("base"), "plus_status": d.get("plus"), "details": d}

    def sample_fields(
        self, row: Row, data: dict[str, Any] | None, settings: Any = None
    ) -> dict[str, Any]:
        """The program the sandbox ran (under the run's recorded extraction rule) and the
        canonical solution."""
        if not data:
            return {"extracted_code": None, "reference": None}
        from .extract import ExtractionFailed, program

        graders = getattr(settings, "graders", None) or {}
        # runs graded before the rule was recorded used codal-eval's own extraction
        rule = next((g["extraction"] for g in graders.values() if "extraction" in g), "codal-eval")
        answer = row.get("answer")
        failed = None
        try:
            code = program(rule, answer, data) if isinstance(answer, str) else None
        except ExtractionFailed as exc:
            code, failed = None, str(exc)
        return {
            "extracted_code": code,
            **({"extraction_error": failed} if failed else {}),
            "extraction": rule,
            "reference": data["prompt"] + data.get("canonical_solution", ""),
        }
