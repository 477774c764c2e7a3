"""EvalPlus' `sanitize` with the same answers, minus the parses that cannot change them.

`evalplus.sanitize.code_extract` (0.3.1) returns the longest run of lines (by non-blank count;
the first one found on a tie) that parses, trying every pair of lines (i, j) in order: O(L^2)
parses of O(L) lines each. A 400-line answer cost 68 s of the harness's CPU (fourth red team).

The loop below visits the same pairs in the same order and updates on the same condition; it
only skips the parse when the pair's non-blank count cannot beat the best so far, since then the
original does not update whatever the parse says. Parseable text then costs O(L) parses. Text
built so that no long run parses can still cost O(L^3), so one answer's sanitizing also has a
CPU budget: past it the answer gets no verdict (EvalPlus would still be at it).

The search replaces `code_extract` in a private copy of `evalplus.sanitize` (loaded from its
file), so that nothing else in the process that uses EvalPlus gets it.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import threading
import time
from types import ModuleType

BUDGET_S = 20.0  # CPU seconds (of the calling thread) one answer's sanitizing may take
_local = threading.local()


class TooCostly(Exception):
    """The search for the longest parseable run went past `BUDGET_S`."""


# Memory a parse may take per byte of source, at most (a list of small ints: ~350 bytes; a
# string literal with escapes: 6 bytes per UTF-8 byte in one allocation), with room to spare.
PARSE_BYTES_PER_BYTE = 1000


def _could_run_out(text: str) -> bool:
    """Whether parsing `text` could need half this process's address-space cap (RLIMIT_AS)."""
    import resource

    cap, _ = resource.getrlimit(resource.RLIMIT_AS)
    if cap == resource.RLIM_INFINITY:
        return False  # no cap: whatever happens is what EvalPlus would meet too
    return len(text.encode("utf-8", "surrogatepass")) * PARSE_BYTES_PER_BYTE > cap // 2


def syntax_check(text: str) -> bool:
    """EvalPlus' `syntax_check`: whether `ast.parse` takes the text, False on SyntaxError or
    MemoryError. Python 3.11's parser raises a bare MemoryError at its own nesting limit, the
    same on every machine, and that one stays False. But under the worker's memory cap a text
    big enough to need that much memory may fail where EvalPlus without a cap parses it, and the
    search would settle on a shorter run (reviews of session 6: a correct answer followed by a
    huge line that breaks it sanitized to the answer alone, a pass). Such a MemoryError
    propagates: a grading error. The line is drawn by the text's size alone, so that no other
    answer (nor how full the worker is) can move it."""
    try:
        ast.parse(text)
    except SyntaxError:
        return False
    except MemoryError:
        if _could_run_out(text):
            raise
        return False
    return True


def code_extract(text: str) -> str:
    lines = text.split("\n")
    n = len(lines)
    before = [0]  # before[k]: non-blank lines among lines[:k]
    for line in lines:
        before.append(before[-1] + (1 if line.strip() else 0))
    budget = getattr(_local, "budget", None) or BUDGET_S
    deadline = getattr(_local, "deadline", None) or time.thread_time() + budget
    best, pair = 0, (0, 0)
    for i in range(n):
        if before[n] - before[i] <= best:
            continue  # no run from line i has more non-blank lines than the best
        for j in range(i + 1, n):
            count = before[j + 1] - before[i]
            if count > best and syntax_check("\n".join(lines[i : j + 1])):
                best, pair = count, (i, j)
            if time.thread_time() > deadline:
                raise TooCostly(f"no result within {budget:g} s of CPU")
    return "\n".join(lines[pair[0] : pair[1] + 1])


def evalplus_copy() -> ModuleType:
    """A fresh copy of `evalplus.sanitize`, loaded from its file (not the imported module)."""
    import evalplus.sanitize as original

    spec = importlib.util.spec_from_file_location("_codal_evalplus_sanitize", original.__file__)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load a copy of {original.__file__}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.lru_cache(maxsize=1)
def _private() -> ModuleType:
    module = evalplus_copy()
    module.__dict__["code_extract"] = code_extract  # its `sanitize` looks it up when called
    return module


def sanitize(code: str, entrypoint: str, budget: float | None = None) -> str:
    """`evalplus.sanitize.sanitize(code, entrypoint)`, within one budget for the answer's search
    (it may search twice). sanitize_proc runs this in a worker process, where the kernel also
    bounds everything else it does."""
    _local.budget = BUDGET_S if budget is None else budget
    _local.deadline = time.thread_time() + _local.budget
    try:
        result: str = _private().sanitize(code, entrypoint=entrypoint)
    finally:
        _local.deadline = _local.budget = None
    return result
