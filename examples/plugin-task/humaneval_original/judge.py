"""The judge: run `check(candidate)` in codal-eval's sandbox; exit status 0 is a pass.

That is OpenAI's own rule, and it trusts the candidate: the candidate's code runs in the same
process as `check`, before it, so it can end the process with status 0 (`os._exit(0)`), replace
`check`, or patch what the asserts use. The sandbox keeps the host safe from such code; it cannot
make the verdict honest. codal-eval's built-in HumanEval+ decides outside the sandbox from the
outputs it reports, which is why only that one is tamper-proof.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from codal_bench.executors import SandboxExecutor
from codal_bench.types import ExecResult, Executor, GenerateFn, Grade, GradeInput, content_hash

from .task import check_program

VERSION = 1


def verdict(res: ExecResult) -> tuple[str, str]:
    """(status, reason): "pass" on exit status 0, "timeout" at a limit, else "fail"."""
    if res.status == "ok":
        return "pass", ""
    if res.status == "timeout":
        return "timeout", res.detail
    lines = [x for x in res.stderr_tail.splitlines() if x.strip()]
    return "fail", (lines[-1] if lines else res.detail)[:300]


class CheckJudge:
    """Grades an answer by the exit status of `prompt + answer + test + check(entry_point)`.

    Built by the registry with no arguments; the keyword arguments exist for tests. OpenAI's
    harness allows 3 s per problem: here 3 CPU seconds (a busy machine does not turn passes into
    timeouts) and a wall-clock backstop.
    """

    kind = "exec"  # anything but "llm": graded without a model

    def __init__(
        self,
        cpu_s: float = 3.0,
        wall_s: float = 15.0,
        workers: int | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.cpu_s, self.wall_s = cpu_s, wall_s
        self.workers = workers or os.cpu_count() or 1
        self.executor: Executor = executor or SandboxExecutor()

    def identity(self) -> dict[str, Any]:
        return {
            "judge": "humaneval-original-check",
            "version": VERSION,
            "cpu_s": self.cpu_s,
            "wall_s": self.wall_s,
            "executor": self.executor.identity(),
        }

    def prepare(self, task_data: dict[str, Any]) -> None:
        """Nothing to resolve: the sandbox checks itself before its first program."""

    def grade_key(self, item: GradeInput) -> str:
        return content_hash(
            {
                "kind": "check-grade",
                "judge": self.identity(),
                "program": check_program(item.sample.data, item.answer),
            }
        )

    def _one(self, item: GradeInput) -> Grade:
        res = self.executor.run(
            check_program(item.sample.data, item.answer), b"", self.cpu_s, self.wall_s
        )
        status, reason = verdict(res)
        details = {
            "reason": reason,
            "exit_code": res.exit_code,
            "stderr_tail": res.stderr_tail[-500:],
            "cpu_s": round(res.cpu_s, 3),
        }
        return Grade(self.grade_key(item), status, details=details)

    def grade(self, items: Sequence[GradeInput], generate: GenerateFn) -> list[Grade]:
        if not items:
            return []
        with ThreadPoolExecutor(max_workers=min(self.workers, len(items))) as pool:
            return list(pool.map(self._one, items))
