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
    tasks: Sequence[Task],
    judge_backend: Backend | None,
    judge_spec: ModelSpec | None,
    opts: Any,
    task_cfg: dict[str, Any],
) -> dict[str, Judge]:
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
                judge = cls(
                    judge_backend,
                    model_name=judge_spec.model,
                    templates=opts.judge_templates,
                    reference=opts.reference,
                    repeats=opts.judge_repeats,
                )
                # Resolve the reference column now: a missing column fails before any call.
                judge.reference_for(task_cfg[task.name]["data"].get("reference_columns", []))
                judges[kind] = judge
            else:
                judges[kind] = cls()
    return judges


def grade_inputs(
    by_item: Sequence[tuple[Task, Sample, int, Request]],
    answers: dict[str, Generation],
    kind: str,
    repeats: int,
) -> list[GradeInput]:
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


def judge_config(judge: Any, task_cfg: dict[str, Any]) -> dict[str, Any]:
    """What the run config records about the LLM judge (grouping and re-runs read it)."""
    columns = task_cfg.get("codal-bench", {}).get("data", {}).get("reference_columns", [])
    return {
        "judge_identity": judge.identity(),
        "judge_templates": judge.templates.describe(),
        "judge_sampling": judge.sampling(),
        "reference": judge.reference_for(columns),
    }
