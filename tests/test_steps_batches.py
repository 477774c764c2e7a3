"""Values-mode replies are judged batch by batch, exactly as the whole prefix was.

Since the fourth red team each batch is compared alone (re-comparing every earlier output after
each single-input re-run cost the parent quadratic work), so what EvalPlus carries from earlier
inputs must be carried by hand: its 1e-6 tolerance, on from the first float expected output to the
group's end (but never for `find_zero`, whose oracle check comes first). The real checker's
`decoded` feeds a real `AnswerRun._judge`; only the sandbox is left out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from codal_bench.humaneval.checker import HumanEvalChecker
from codal_bench.humaneval.compare import match_values
from codal_bench.humaneval.expected import Expected
from codal_bench.humaneval.steps import AnswerRun


def _judge_in_batches(
    tmp_path: Path, entry: str, atol: float, inputs: list[Any], want: list[Any], got: list[Any],
    cuts: list[int],
) -> tuple[int, str] | None:  # fmt: skip
    problem = {"entry_point": entry, "atol": atol, "plus_input": inputs}
    expected = Expected("values", {"plus": [0.0] * len(want)}, values={"plus": want})
    run = AnswerRun(problem, "", expected, HumanEvalChecker(cache_dir=tmp_path, progress=False))
    bounds = [0, *cuts, len(got)]
    for i, j in zip(bounds, bounds[1:], strict=False):
        recs = [(b"R", json.dumps(v).encode()) for v in got[i:j]]
        bad = run._judge("plus", i, recs)
        if bad is not None:
            return bad
    return None


MIXED = ["L", 1, 2.0]  # a list that is not all floats: tolerant only once the tolerance is on


@pytest.mark.parametrize("cuts", [[], [1], [1, 2]])
def test_the_tolerance_carries_over_batches(tmp_path: Path, cuts: list[int]) -> None:
    want, got = [1.5, MIXED, MIXED], [1.5, ["L", 1, 2.0000001], ["L", 1, 2.0]]
    plain = [1.5, [1, 2.0], [1, 2.0]], [1.5, [1, 2.0000001], [1, 2.0]]
    assert match_values(plain[1], plain[0], [[0]] * 3, 0.0, "f") is None  # EvalPlus' way
    assert _judge_in_batches(tmp_path, "f", 0.0, [[0]] * 3, want, got, cuts) is None


def test_before_the_first_float_there_is_no_tolerance(tmp_path: Path) -> None:
    want, got = [MIXED, 1.5], [["L", 1, 2.0000001], 1.5]
    assert _judge_in_batches(tmp_path, "f", 0.0, [[0]] * 2, want, got, [1]) == (0, "wrong output")


@pytest.mark.parametrize("cuts", [[], [1]])
def test_find_zero_never_gets_the_carried_tolerance(tmp_path: Path, cuts: list[int]) -> None:
    """The review's case: outputs 1.0 and 1.0000001 for the polynomial -1 + x with atol 0."""
    inputs = [[[-1, 1]], [[-1, 1]]]
    bad = _judge_in_batches(tmp_path, "find_zero", 0.0, inputs, [1.0, 1.0], [1.0, 1.0000001], cuts)
    assert bad == (1, "wrong output")
    assert match_values([1.0, 1.0000001], [1.0, 1.0], inputs, 0.0, "find_zero") == 1
