"""Building the judges a run needs and the inputs they grade.

Kept apart from the runner so that `run` and `grade RUN` build judges the same way. A judge class
whose `kind` is "llm" grades through a model (the run's `--judge`); any other is built bare.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import registry
from .config import RunOptions
from .spec import ModelSpec, parse_spec
from .types import Backend, Generation, GradeInput, Judge, Request, Sample, Task, UsageError


def model_judged(task: Task) -> bool:
    """Whether one of the task's judges grades through a model (and so needs `--judge`)."""
    return any(getattr(registry.load("judge", k), "kind", "") == "llm" for k in task.judge_kinds)


def auditor() -> Any:
    """The audit offered by an installed model judge (kind "llm" with an `audit` method).

    `judge-audit` reaches it this way so the command line names no benchmark; the first such
    judge by registered name wins.
    """
    for name in registry.names("judge"):
        cls = registry.load("judge", name)
        if getattr(cls, "kind", "") == "llm" and callable(getattr(cls, "audit", None)):
            return cls.audit
    raise UsageError("no installed model judge offers an audit")


def model_judged_task(name: str) -> bool:
    """`model_judged` by the task's name, without building it (its YAML, else its class)."""
    from .taskfiles import task_config

    try:
        kinds = tuple(task_config(name).get("judges") or ())
    except UsageError:  # a plugin task without a YAML of ours
        kinds = tuple(getattr(registry.load("task", name), "judge_kinds", ()))
    return any(getattr(registry.load("judge", k), "kind", "") == "llm" for k in kinds)


def build_judges(
    tasks: Sequence[Task],
    judge_backend: Backend | None,
    judge_spec: ModelSpec | None,
    opts: RunOptions,
) -> dict[str, Judge]:
    """One judge per judge kind the tasks name, each prepared against the loaded task."""
    judges: dict[str, Judge] = {}
    for task in tasks:
        for kind in task.judge_kinds:
            if kind not in judges:
                cls = registry.load("judge", kind)
                if getattr(cls, "kind", "") == "llm":
                    if judge_backend is None or judge_spec is None:
                        raise UsageError(f"{task.name} needs a judge: pass --judge SPEC")
                    judges[kind] = cls(
                        judge_backend,
                        model_name=judge_spec.model,
                        templates=opts.judge_templates,
                        reference=opts.reference,
                        repeats=opts.judge_repeats,
                    )
                elif getattr(task, "extraction", None) is not None:
                    # How answers become programs for the candidate's backend (issue 15 hook).
                    backend = parse_spec(opts.model).backend
                    judges[kind] = cls(extraction=task.extraction(backend))  # type: ignore[attr-defined]
                else:
                    judges[kind] = cls()
            judges[kind].prepare(task.describe())
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
