"""Before a run: check what it will need. After it: say how it ended, loudly.

A benchmark harness sells trust, so a failure must never look like a result. Before the first
candidate request, every endpoint and tool that has work to do is tried once (`preflight`); a
run that cannot finish stops in seconds, having sent nothing to the candidate. After the run,
`decide` sets its state: `complete` only when every answer and grade is there (or the missing
share is within `--max-error-rate`), `incomplete` when not (resumable, never ranked), `invalid`
when the grader's own failures (a judge's unparsable replies) pass their limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from . import registry
from .store import Store
from .summary import rows_by_task
from .types import Backend, Generation, Judge, Request, Sample, Task

COMPLETE, INCOMPLETE, INVALID = "complete", "incomplete", "invalid"
LOUD_SHARE = 0.2  # a grader failing this often is worth a warning even within its limit


def preflight(
    store: Store,
    requests: Sequence[Request],
    by_item: Sequence[tuple[Task, Sample, int, Request]],
    backend: Backend,
    judges: dict[str, Judge],
    judge_backend: Backend | None,
    judge_repeats: int,
    refresh_answers: bool = False,
    refresh_grades: bool = False,
) -> None:
    """Try each endpoint and tool that has work to do; PreflightError (exit 4) if one fails.

    A fully cached re-run has nothing to do and makes no request at all. Judges go first: a
    run whose judge is down must not spend anything on the candidate.
    """
    from .judging import grade_inputs

    have = {} if refresh_answers else store.get_generations(r.key for r in requests)
    candidate_work = any(r.key not in have for r in requests)
    answers: dict[str, Generation] = dict(have)
    for kind, judge in judges.items():
        repeats = judge_repeats if judge.kind == "llm" else 1
        tasks = {t.name for t, *_ in by_item if kind in t.judge_kinds}
        work = candidate_work and any(r.task in tasks and r.key not in have for r in requests)
        work = work or refresh_grades
        if not work:
            items = grade_inputs(by_item, answers, kind, repeats)
            keys = [judge.grade_key(i) for i in items]
            stored = store.get_grades(keys)
            work = any(k not in stored or stored[k].status == "judge_error" for k in keys)
        if work:
            target: Any = judge_backend if judge.kind == "llm" else judge
            check = getattr(target, "preflight", None)
            if callable(check):
                check()
    if candidate_work:
        check = getattr(backend, "preflight", None)
        if callable(check):
            check()


@dataclass
class Outcome:
    status: str
    reasons: list[str] = field(default_factory=list)
    errors: int = 0
    answers: int = 0


def decide(
    rows: Sequence[dict[str, Any]],
    summary: dict[str, Any],
    *,
    max_error_rate: float,
    max_grader_failure_rate: float,
    stopped: dict[str, str],
    judge: str | None,
) -> Outcome:
    """The run's state and every reason it is not complete, each one line a user can act on."""
    errors, total = int(summary.get("errors", 0)), len(rows)
    out = Outcome(COMPLETE, errors=errors, answers=total)
    for role, why in stopped.items():
        out.reasons.append(f"the {role} stopped: {why}")
    rate = errors / total if total else 0.0
    if rate > max_error_rate:
        out.status = INCOMPLETE
        out.reasons.append(
            f"{errors} of {total} answers or grades are missing ({rate:.1%}, more than "
            f"--max-error-rate {max_error_rate:g}): run the same command again to resume"
        )
    for task, trows in rows_by_task(rows).items():
        check = getattr(registry.scoring(task), "grader_failures", None)
        if not callable(check):
            continue
        failures, graded, example = check(trows)
        share = failures / graded if graded else 0.0
        if share > max_grader_failure_rate or share > LOUD_SHARE:
            if share > max_grader_failure_rate and out.status == COMPLETE:
                out.status = INVALID
            out.reasons.append(
                f"{task}: the judge {judge} gave no usable rating in {failures} of {graded} "
                f"replies ({share:.0%}, limit --max-parse-failure-rate "
                f"{max_grader_failure_rate:g}): its scores mostly measure its format, not the "
                f"answers; e.g. {_short(example)!r}"
            )
    return out


def _short(text: str | None, n: int = 160) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"
