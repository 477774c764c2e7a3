"""EvalPlus' `code_extract` with the same answers, minus the parses that cannot change them.

`evalplus.sanitize.code_extract` (0.3.1) returns the longest run of lines (by non-blank count;
the first one found on a tie) that parses, trying every pair of lines (i, j) in order: O(L^2)
parses of O(L) lines each. A 400-line answer cost 68 s of the harness's CPU (fourth red team).

The loop below visits the same pairs in the same order and updates on the same condition; it
only skips the parse when the pair's non-blank count cannot beat the best so far, since then the
original does not update whatever the parse says. Parseable text then costs O(L) parses. Text
built so that no long run parses can still cost O(L^3), so the search also has a CPU budget:
past it the answer's extraction fails (that answer only; EvalPlus would still be at it).
"""

from __future__ import annotations

import time
from typing import Any

BUDGET_S = 20.0  # CPU seconds one answer's extraction may take


class TooCostly(Exception):
    """The search for the longest parseable run went past `BUDGET_S`."""


def code_extract(text: str) -> str:
    from evalplus.sanitize import syntax_check

    lines = text.split("\n")
    n = len(lines)
    before = [0]  # before[k]: non-blank lines among lines[:k]
    for line in lines:
        before.append(before[-1] + (1 if line.strip() else 0))
    deadline = time.process_time() + BUDGET_S
    best, pair = 0, (0, 0)
    for i in range(n):
        if before[n] - before[i] <= best:
            continue  # no run from line i has more non-blank lines than the best
        for j in range(i + 1, n):
            count = before[j + 1] - before[i]
            if count > best and syntax_check("\n".join(lines[i : j + 1])):
                best, pair = count, (i, j)
            if time.process_time() > deadline:
                raise TooCostly(f"no result within {BUDGET_S:g} s of CPU")
    return "\n".join(lines[pair[0] : pair[1] + 1])


def install(module: Any) -> None:
    """Point `evalplus.sanitize` at the equivalent search (its `sanitize` looks the name up
    when called)."""
    if module.code_extract is not code_extract:
        module.code_extract = code_extract
