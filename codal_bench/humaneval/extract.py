"""From a model's answer to the program that is run: EvalPlus' own rules, by name.

| name | program | where EvalPlus does the same |
| --- | --- | --- |
| `sanitize` | `evalplus.sanitize.sanitize(answer, entry_point)` | codegen's API providers |
| `evalplus-local` | the same after tabs become four spaces | codegen's vLLM/HF providers |
| `as-written` | the answer itself | `evalplus.evaluate` on a `solution` |
| `codal-eval` | our own fence-and-def extraction (`extract_code`) | nowhere: our former rule |

Replay files follow `evalplus.evaluate`: a `solution` is run as written, a `completion` is
appended to the prompt (the replay backend does that, see backends/replay.py); `--sanitize`
applies `sanitize` to either.
"""

from __future__ import annotations

import re
from typing import Any

from ..types import UsageError

EXTRACTIONS = ("sanitize", "evalplus-local", "as-written", "codal-eval")


class ExtractionFailed(ValueError):
    """EvalPlus' sanitizer raised on an answer. On the answer's text (`RecursionError` on deeply
    nested code, a NUL byte) that answer fails; anything else (past its CPU budget or memory
    cap, a crashed worker, a broken install) is the harness's failure: no verdict, graded again
    later. Either way the run goes on (sanitize_proc: the sanitizer runs in worker processes)."""

    def __init__(self, message: str, verdict: str) -> None:
        super().__init__(message)
        self.verdict = verdict  # "fail" or "judge_error"


_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)


def extract_code(reply: str, prompt: str, entry_point: str) -> str:
    """codal-eval's former extraction (the `codal-eval` prompt set).

    Takes the fenced block that defines `entry_point` (else the first fenced block, else the raw
    reply). If the code does not define `entry_point`, it is taken as a body completion and put
    after the prompt.
    """
    blocks = _FENCE.findall(reply)
    defines = re.compile(rf"^\s*(?:async\s+)?def\s+{re.escape(entry_point)}\s*\(", re.MULTILINE)
    code = next((b for b in blocks if defines.search(b)), blocks[0] if blocks else reply)
    if defines.search(code):
        return code
    return prompt + code


def check_extraction(name: str) -> str:
    if name not in EXTRACTIONS:
        raise UsageError(f"unknown code extraction {name!r} (known: {', '.join(EXTRACTIONS)})")
    return name


def program(extraction: str, answer: str, problem: dict[str, Any]) -> str:
    """The program to run for `answer` to `problem` under the named extraction."""
    if extraction == "as-written":
        return answer
    if extraction == "codal-eval":
        return extract_code(answer, problem["prompt"], problem["entry_point"])
    if extraction == "evalplus-local":
        answer = answer.replace("\t", "    ")
    elif extraction != "sanitize":
        check_extraction(extraction)
    from .sanitize_proc import shared  # EvalPlus' results (fewer parses), in a worker process

    # The answer's text that the sanitizer rejects (RecursionError, ValueError: e.g. a NUL byte)
    # is the answer's fail. Running past the budget is not: an honest long reply (~7k tokens of
    # prose and code) gets there on a slow machine, where EvalPlus would sanitize it, slowly.
    # Like any failure of the harness's (a dead worker, a missing module) it gets no verdict: a
    # grading error, counted against the run.
    kind, value = shared().sanitize(answer, problem["entry_point"])
    if kind == "ok":
        return value
    raise ExtractionFailed(
        f"code extraction failed: {value}", "fail" if kind == "fail" else "judge_error"
    )
