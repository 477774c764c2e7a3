"""The execution judge: HumanEval+ answers run in the sandbox, verdicts decided outside it."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..types import CodalError, GenerateFn, Grade, GradeInput, content_hash


class ExecJudge:
    """Grades code answers by running them on the problem's base and plus inputs.

    A grade is "pass" only when both groups pass; otherwise the worst of the two outcomes
    ("fail" < "timeout" < "error"). Options are keyword arguments so the registry can build it
    with none. `extraction` names how an answer becomes the program (see extract.py); the task
    says which one applies to a backend (`HumanEvalPlusTask.extraction(backend)`).
    """

    kind = "exec"

    def __init__(
        self,
        cache_dir: str | None = None,
        workers: int | None = None,
        time_factor: float = 4.0,
        min_time_limit: float = 1.0,
        progress: bool = True,
        extraction: str = "sanitize",
    ) -> None:
        from .checker import HumanEvalChecker
        from .extract import check_extraction

        self.extraction = check_extraction(extraction)
        self.checker = HumanEvalChecker(
            cache_dir=cache_dir,
            workers=workers,
            time_factor=time_factor,
            min_time_limit=min_time_limit,
            progress=progress,
        )

    def identity(self) -> dict[str, Any]:
        ident = {"judge": "humaneval-exec", **self.checker.identity()}
        if self.extraction != "codal-eval":  # the former rule keeps its former grade keys
            ident["extraction"] = self.extraction
            if self.extraction in ("sanitize", "evalplus-local"):
                from .evalplus_source import evalplus_prompts

                ident["evalplus"] = evalplus_prompts().version
        return ident

    def prepare(self, task_data: dict[str, Any]) -> None:
        """Nothing to resolve before grading: `preflight` checks the sandbox."""

    def describe(self) -> dict[str, Any]:
        """For the run record: how answers became programs."""
        return {"extraction": self.extraction, **{k: v for k, v in self.identity().items()
                                                   if k == "evalplus"}}  # fmt: skip

    def preflight(self) -> None:
        """One line (what is missing, how to enable it; exit 4) unless a sandbox starts here, as
        root or rootless; the runner calls it before generating anything."""
        from ..types import PreflightError

        try:
            self.checker.executor.check()
        except CodalError as exc:
            raise PreflightError(str(exc)) from exc

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
        from .checker import CheckResult
        from .extract import ExtractionFailed, program

        if not items:
            return []
        problems = {id(it.sample.data): it.sample.data for it in items}
        expected = self.checker.prepare(list(problems.values()))

        def extract(it: GradeInput) -> str | ExtractionFailed:
            try:
                return program(self.extraction, it.answer, it.sample.data)
            except ExtractionFailed as exc:
                return exc

        # sanitizing runs in worker processes (sanitize_proc): one costly answer at a time
        # would hold up all the others
        with ThreadPoolExecutor(max_workers=self.checker.workers) as pool:
            programs = list(pool.map(extract, items))
        jobs, ran = [], []
        results: list[CheckResult | None] = []
        for it, prog in zip(items, programs, strict=True):
            if isinstance(prog, ExtractionFailed):
                results.append(CheckResult(prog.verdict, prog.verdict, {"reason": str(prog)}))
            else:
                jobs.append((it.sample.data, prog))
                ran.append(len(results))
                results.append(None)
        for n, checked in zip(ran, self.checker.check_many(jobs, expected), strict=True):
            results[n] = checked
        grades = []
        for it, res in zip(items, results, strict=True):
            assert res is not None  # every item was checked or failed extraction
            details = {
                "base": res.base,
                "plus": res.plus,
                "first_failed": res.first_failed,
                "stderr_tail": res.stderr_tail,
                "cpu_s": round(res.cpu_s, 3),
            }
            if res.status == "judge_error":  # no verdict: an error of the grader, retried later
                details["error"] = (res.first_failed or {}).get("reason")
            grades.append(Grade(self.grade_key(it), res.status, details=details))
        return grades
