"""Our `code_extract` gives EvalPlus 0.3.1's results without its quadratically many parses.

Compared with a pristine copy of `evalplus.sanitize` (loaded from its file, so that our
replacement in the imported module does not hide the original) on the chat replies of the
fidelity fixture and on seeded random mixes of code, prose, blank and broken lines.
An answer's text that makes the sanitizer raise fails that answer; a search past its budget, or
a sanitizer that cannot run at all, is the harness's error (no verdict). (`program` runs the
sanitizer in a worker process: tests/test_sanitize_proc.py.)
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from types import ModuleType

import evalplus.sanitize
import pytest

from codal_bench.humaneval import sanitize_fast, sanitize_proc
from codal_bench.humaneval.extract import ExtractionFailed, program
from codal_bench.humaneval.sanitize_proc import SanitizerPool

REPLIES = Path(__file__).resolve().parent / "fixtures" / "humaneval" / "chat_replies.jsonl"
LINES = [
    "def f(x):", "    return x + 1", "    if x:", "        return 2", "", "   ", "class A:",
    "    pass", "x = [1,", "  2]", "Here is the code:", "```python", "```", "print(f(3))",
    "(", ")", "import os", "    y = (", "# comment", '"""', "lambda: 0", "else:", "\t\treturn 1",
]  # fmt: skip


@pytest.fixture(scope="module")
def pristine() -> ModuleType:
    module = sanitize_fast.evalplus_copy()  # ours is only ever put into another copy
    assert module.code_extract is not sanitize_fast.code_extract
    return module


def _texts() -> list[str]:
    rows = [json.loads(line) for line in REPLIES.read_text().splitlines()]
    texts = [r.get("solution") or r.get("completion") or "" for r in rows]
    rng = random.Random(20261202)
    for _ in range(400):
        texts.append("\n".join(rng.choice(LINES) for _ in range(rng.randint(0, 30))))
    # the parser's own nesting limit raises a bare MemoryError (3.11): "does not parse" for both
    texts.append("def f(x):\n    return x\nz = " + "-" * 10_000 + "1\nprint(f(3))")
    return texts


def test_same_result_as_evalplus_on_every_text(pristine: ModuleType) -> None:
    texts = _texts()
    differ = [t for t in texts if sanitize_fast.code_extract(t) != pristine.code_extract(t)]
    assert differ == [] and len(texts) == 426


def test_same_sanitize_result_as_evalplus(pristine: ModuleType) -> None:
    """Through `program` (which installs ours into evalplus.sanitize), whole `sanitize`."""
    problem = {"entry_point": "f", "prompt": ""}
    for text in _texts():
        assert program("sanitize", text, problem) == pristine.sanitize(text, "f"), text


def test_evalplus_itself_is_left_as_it_is() -> None:
    """Ours replaces `code_extract` in a private copy: other users of EvalPlus in the process
    (and its own scripts) keep its search and its behaviour."""
    program("sanitize", "def f(x):\n    return x\n", {"entry_point": "f", "prompt": ""})
    assert evalplus.sanitize.code_extract is not sanitize_fast.code_extract
    assert evalplus.sanitize.code_extract.__module__ == "evalplus.sanitize"


def test_a_broken_sanitizer_is_the_harness_error_not_the_answers_fail(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pool = SanitizerPool(size=1, target="tests.sanitize_targets:broken")
    monkeypatch.setattr(sanitize_proc, "_shared", pool)
    try:
        with pytest.raises(ExtractionFailed, match="tree_sitter_python is missing") as err:
            program("sanitize", "BROKEN", {"entry_point": "f", "prompt": ""})
    finally:
        pool.close()
    assert err.value.verdict == "judge_error"


def test_a_long_answer_costs_a_fraction_of_a_second() -> None:
    """400 lines that all parse: 68 s of CPU in EvalPlus' search (fourth red team)."""
    text = "\n".join(["z = 1"] * 400)
    t0 = time.process_time()
    assert sanitize_fast.code_extract(text) == text
    assert time.process_time() - t0 < 2.0


def test_text_built_to_be_costly_stops_at_the_budget_without_a_verdict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sanitize_proc, "BUDGET_S", 0.3)  # what the worker is given
    text = "\n".join(["("] * 300)  # no run of lines parses: every pair would be parsed
    program("sanitize", "def f(x):\n    return x\n", {"entry_point": "f", "prompt": ""})  # warm
    t0 = time.monotonic()
    with pytest.raises(ExtractionFailed, match="TooCostly") as err:
        program("sanitize", text, {"entry_point": "f", "prompt": ""})
    # an honest long reply can get there too (red team 5): no verdict rather than a fail
    assert err.value.verdict == "judge_error"
    assert time.monotonic() - t0 < 5.0  # the worker's search stopped at its 0.3 s
