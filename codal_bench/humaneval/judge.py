"""The execution judge: HumanEval+ answers run in the sandbox, verdicts decided outside it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..types import GenerateFn, Grade, GradeInput, content_hash


class ExecJudge:
    """Grades code answers by running them on the problem's base and plus inputs.

    A grade is "pass" only when both groups pass; otherwise the worst of the two outcomes
    ("fail" < "timeout" < "error"). Options are keyword arguments so the registry can build it
    with none.
    """

    kind = "exec"

    def __init__(
        self,
        cache_dir: str | None = None,
        workers: int | None = None,
        time_factor: float = 4.0,
        min_time_limit: float = 1.0,
        progress: bool = True,
    ) -> None:
        from .checker import HumanEvalChecker

        self.checker = HumanEvalChecker(
            cache_dir=cache_dir,
            workers=workers,
            time_factor=time_factor,
            min_time_limit=min_time_limit,
            progress=progress,
        )

    def identity(self) -> dict[str, Any]:
        return {"judge": "humaneval-exec", **self.checker.identity()}

    def prepare(self, task_data: dict[str, Any]) -> None:
        """Nothing to resolve before grading: `preflight` checks the sandbox."""

    def preflight(self) -> None:
        """The sandbox can be built here (bubblewrap, the system interpreter, privileges)."""
        from ..executors.sandbox import SandboxExecutor
        from ..types import PreflightError

        sandbox = SandboxExecutor()
        try:
            sandbox.check()
        except Exception as exc:
            raise PreflightError(str(exc)) from exc
        finally:
            sandbox.close()

    def grade_key(self, item: GradeInput) -> str:
        return content_hash(
            {
                "kind": "exec-grade",
                "judge": self.identity(),
                "problem": self.checker.key(item.sample.data),
                "answer": item.answer,
            }
        )

    def grade(self, items: Sequence[GradeInput], generate: GenerateFn) -> list[Grade]:
        from .extract import extract_code

        if not items:
            return []
        problems = {id(it.sample.data): it.sample.data for it in items}
        expected = self.checker.prepare(list(problems.values()))
        jobs = []
        for it in items:
            p = it.sample.data
            jobs.append((p, extract_code(it.answer, p["prompt"], p["entry_point"])))
        results = self.checker.check_many(jobs, expected)
        grades = []
        for it, res in zip(items, results, strict=False):
            details = {
                "base": res.base,
                "plus": res.plus,
                "first_failed": res.first_failed,
                "stderr_tail": res.stderr_tail,
                "cpu_s": round(res.cpu_s, 3),
            }
            grades.append(Grade(self.grade_key(it), res.status, details=details))
        return grades
