"""`judge-audit`: how well does a CODAL judge tell working code from broken code?

The judge rates answers whose pass/fail the sandbox has already established: the answers of a
stored HumanEval+ run, or the built-in set of correct and mechanically broken solutions
(`auditset`). Each answer is rated with a CODAL judge prompt (instruction-following by default):
the request is the prompt the candidate saw, the reference is the problem's canonical solution,
the answer under review is the answer. The report (`auditreport`) says how well the ratings
separate passing from failing answers.

Grades go through the runner's cached path with the judge's own content keys (instruction,
reference, answer, preference, templates, judge identity), so an audit run twice sends nothing
the second time, and it shares a grade with a CODAL run only if the judge saw exactly the same
request. Execution grades of the built-in set are cached the same way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import registry
from ..progress import Progress
from ..runner import Runner
from ..spec import build_backend, parse_spec
from ..store import Store
from ..types import CodalError, Generation, GradeInput, Request, Sample, UsageError
from . import auditset
from .auditreport import AuditAnswer, render, summarise

PREFERENCE = "instruction-following"
REFERENCE_COLUMN = "canonical-solution_response"  # the judge's reference column for the audit
REFERENCE_NOTE = (
    "the problem's canonical solution (prompt + canonical_solution of the HumanEval+ data), "
    "as published; the judge may lean on it"
)
BUILT_IN = "built-in"


@dataclass
class AuditResult:
    """The report (JSON-ready) and its terminal rendering."""

    data: dict[str, Any]

    def renderable(self) -> Any:
        return render(self.data)

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.data, indent=2, ensure_ascii=False) + "\n")


def run_audit(
    judge_cls: Any,
    store: Store,
    *,
    judge: str,
    judge_options: dict[str, Any] | None = None,
    judge_templates: str | None = None,
    run: str | None = None,
    preference: str | None = None,
    data: str | None = None,
    limit: int | None = None,
    concurrency: int = 8,
    timeout_s: float = 300.0,
    n_boot: int = 2000,
    seed: int = 0,
    progress: Progress | None = None,
) -> AuditResult:
    """Rate the answers, summarise, store the audit under the judge's identity; see the module."""
    spec = parse_spec(judge, judge_options)
    backend = build_backend(spec)
    llm = judge_cls(backend, model_name=spec.model, templates=judge_templates)
    pref = preference or PREFERENCE
    if pref not in llm.templates.preferences:
        raise UsageError(
            f"--preference {pref!r}: the judge templates have no prompt for it "
            f"(choose from {', '.join(llm.templates.preferences)})"
        )
    store.check_writable()
    runner = Runner(store, progress)
    try:  # the backend loads lazily: closing it frees a local engine whatever happens
        if run:
            answers, problems, source, left_out = _from_run(store, run)
        else:
            answers, problems, source, left_out = _from_set(runner, data, limit)
        if not answers:
            raise CodalError(f"{source}: no answers with a known pass/fail verdict to audit")
        task = _task(answers[0].task)
        items = [
            GradeInput(_sample(task, problems[(a.task, a.task_id)], pref, a), a.answer, a.index, 0)
            for a in answers
        ]
        before = store.get_grades({llm.grade_key(i) for i in items})
        reused = sum(llm.grade_key(i) in before for i in items)
        generate = runner.cached_generate(backend, spec, concurrency, timeout_s, "judge")
        keys = runner.grade(llm, str(spec), items, generate, "audit")
    finally:
        backend.close()
    stored = store.get_grades(keys.values())
    grades = [stored.get(keys[(i.sample.item_id, i.sample_index, 0)]) for i in items]
    identical = sum(_same_code(a, problems[(a.task, a.task_id)]) for a in answers)

    report = summarise(answers, grades, n_boot=n_boot, seed=seed)
    report.update(
        judge={
            "spec": str(spec),
            "identity": llm.identity(),
            "templates": llm.templates.describe(),
        },
        preference=pref,
        reference=REFERENCE_NOTE,
        source=source,
        left_out=left_out,
        answers_equal_to_reference=identical,
        judge_requests=runner.stats.backend_calls,
        grades_reused=reused,
    )
    report["audit_id"] = store.put_audit(
        str(spec), llm.identity(), llm.templates.sha256, str(source.get("run") or BUILT_IN), report
    )
    return AuditResult(report)


# -- where the answers come from --------------------------------------------------------------


Problems = dict[tuple[str, str], dict[str, Any]]
Found = tuple[list[AuditAnswer], Problems, dict[str, Any], dict[str, int]]
"""answers, their problems by (task, task id), where they came from, what was left out"""


def _task(name: str) -> Any:
    from ..humaneval.task import HumanEvalPlusTask

    cls = registry.load("task", name)
    if not (isinstance(cls, type) and issubclass(cls, HumanEvalPlusTask)):
        raise UsageError(f"task {name!r} is not a HumanEval+ task: it cannot be audited against")
    return cls()


def _from_run(store: Store, run_id: str) -> Found:
    """Answers of a stored HumanEval+ run with their sandbox verdicts; errors are left out."""
    from ..humaneval.task import HumanEvalPlusTask

    info = store.run(run_id)
    names = []
    for name in info.config.tasks:
        try:
            cls = registry.load("task", name)
        except UsageError:
            continue
        if isinstance(cls, type) and issubclass(cls, HumanEvalPlusTask):
            names.append(name)
    if not names:
        raise UsageError(
            f"run {info.run_id} has no HumanEval+ task (tasks: {', '.join(info.config.tasks)}): "
            "the audit needs answers whose pass/fail is known"
        )
    name = names[0]  # one task: the same problem in two variants of the data is one cluster
    opts = info.config.rerun_options(info.record.items, info.model)
    task = _task(name)
    samples = task.load(opts.data.get(name), None, info.record.items.get(name) or None)
    problems = {(name, s.item_id): s.data for s in samples}
    answers: list[AuditAnswer] = []
    left = {"generation_errors": 0, "ungraded": 0}
    for r in store.results(info.run_id):
        if r["task"] != name or r["repeat"] != 0:
            continue
        if r["answer"] is None:
            left["generation_errors"] += 1
        elif r["status"] not in ("pass", "fail", "timeout", "error"):
            left["ungraded"] += 1
        elif (name, r["item_id"]) in problems:
            answers.append(
                AuditAnswer(name, r["item_id"], r["sample_index"], r["answer"],
                            r["status"] == "pass", r["status"], None)
            )  # fmt: skip
    source = {"run": info.run_id, "model": info.model, "task": name}
    return answers, problems, source, left


def _from_set(runner: Runner, data: str | None, limit: int | None) -> Found:
    """The built-in set: variants of the fixed problems, graded by the sandbox first."""
    from ..humaneval.judge import ExecJudge
    from ..humaneval.task import HumanEvalPlusTask

    task = HumanEvalPlusTask()
    chosen = auditset.picked([s.data for s in task.load(data)], limit)
    problems: Problems = {(task.name, p["task_id"]): p for p in chosen}
    variants = [v for p in chosen for v in auditset.variants(p)]
    samples = {p["task_id"]: Sample(task.name, p["task_id"], task.name, p) for p in chosen}
    inputs = [GradeInput(samples[v.task_id], v.answer, i, 0) for i, v in enumerate(variants)]
    exe = ExecJudge(progress=False)
    keys = runner.grade(exe, "humaneval", inputs, _no_generate, "audit set")
    stored = runner.store.get_grades(keys.values())
    graded = []
    for v, i in zip(variants, inputs, strict=True):
        g = stored.get(keys[(i.sample.item_id, i.sample_index, 0)])
        graded.append((v, g.status if g is not None else "ungraded"))
    kept = auditset.select(graded)
    answers: list[AuditAnswer] = []
    index: dict[str, int] = {}
    for v, status in kept:
        k = index[v.task_id] = index.get(v.task_id, -1) + 1
        answers.append(AuditAnswer(task.name, v.task_id, k, v.answer, status == "pass", status,
                                   v.kind))  # fmt: skip
    source = {
        "run": None,
        "set": BUILT_IN,
        "task": task.name,
        "data": task.describe(),
        "problems": len(chosen),
        "how": "canonical solutions edited once: correct variants without changing behaviour, "
        "broken ones by flipping a comparison, shifting a constant, swapping an operator or "
        "returning None; graded by the sandbox, kept only when the verdict matches the intent",
    }
    return answers, problems, source, {"variants_dropped": len(graded) - len(kept)}


def _sample(task: Any, problem: dict[str, Any], pref: str, a: AuditAnswer) -> Sample:
    """What the judge sees: the candidate's request, the canonical solution, the preference."""
    request = Sample(a.task, a.task_id, a.task, problem)
    instruction = task.messages(request)[-1].content
    data = {
        "instruction": instruction,
        "preference": pref,
        REFERENCE_COLUMN: auditset.reference_text(problem),
    }
    return Sample(a.task, a.task_id, pref, data)


def _same_code(a: AuditAnswer, problem: dict[str, Any]) -> bool:
    """Whether the answer's code (as the sandbox runs it) is the reference, text for text."""
    from ..humaneval.task import extract_code

    code = extract_code(a.answer, problem["prompt"], problem["entry_point"])
    return code.strip() == auditset.reference_text(problem).strip()


def _no_generate(requests: Sequence[Request]) -> list[Generation]:
    raise CodalError("the execution judge does not call a model")
