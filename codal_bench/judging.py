"""Building the judges a run needs and the inputs they grade.

Kept apart from the runner so that `run` and `grade RUN` build judges the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import registry
from .spec import ModelSpec
from .types import Backend, Generation, GradeInput, Judge, Request, Sample, Task, UsageError


def build_judges(
    tasks: Sequence[Task], judge_backend: Backend | None, judge_spec: ModelSpec | None,
    opts: Any, task_cfg: dict[str, Any],
) -> dict[str, Judge]:  # fmt: skip
    """One judge per judge kind the tasks name (codal → the LLM judge, humaneval → execution)."""
    judges: dict[str, Judge] = {}
    for task in tasks:
        for kind in task.judge_kinds:
            if kind in judges:
                continue
            cls = registry.load("judge", kind)
            if kind == "codal":
                if judge_backend is None or judge_spec is None:
                    raise UsageError("CODAL-Bench needs a judge: pass --judge SPEC")
                from .judges.llm_judge import reference_column

                available = task_cfg[task.name]["data"].get("reference_columns", [])
                column = reference_column(judge_spec.model, available, opts.reference)
                judges[kind] = cls(
                    judge_backend, model_name=judge_spec.model, templates=opts.judge_templates,
                    reference=column, repeats=opts.judge_repeats,
                )  # fmt: skip
            else:
                judges[kind] = cls()
    return judges


def grade_inputs(
    by_item: Sequence[tuple[Task, Sample, int, Request]], answers: dict[str, Generation],
    kind: str, repeats: int,
) -> list[GradeInput]:  # fmt: skip
    """Every answer that exists, once per judge repeat; failed generations are not graded."""
    out = []
    for task, sample, k, req in by_item:
        if kind not in task.judge_kinds:
            continue
        g = answers.get(req.key)
        if g is None or not g.ok or g.text is None:
            continue
        for rep in range(repeats):
            out.append(GradeInput(sample, g.text, k, rep))
    return out
