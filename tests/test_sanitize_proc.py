"""EvalPlus' sanitizer runs in worker processes: no answer's text can stall, starve or crash the
run through it (fifth red team: a 2.7 MB correct answer held the harness for 29 s in passes after
the budgeted search; a crash in tree-sitter's C code would have ended the run).

Each case: the misbehaving answer gets an outcome of its own (no verdict: a grading error), the
next answer is sanitized as before by a fresh worker, and the harness's own CPU stays small.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from codal_bench.humaneval import sanitize_proc
from codal_bench.humaneval.extract import ExtractionFailed, program
from codal_bench.humaneval.sanitize_proc import SanitizerPool

HONEST = "Here it is:\n```python\ndef add(x, y):\n    return x + y\n```\n"
WANT = "def add(x, y):\n    return x + y"


def _pool(target: str, **kw: int) -> Iterator[SanitizerPool]:
    pool = SanitizerPool(size=1, target=f"tests.sanitize_targets:{target}", **kw)
    try:
        yield pool
    finally:
        pool.close()


def _after(
    pool: SanitizerPool, text: str, budget: float = 1.0
) -> tuple[tuple[str, str], float, float]:
    """The outcome, the harness's CPU and the wall time it took."""
    c0, t0 = time.process_time(), time.monotonic()
    out = pool.sanitize(text, "add", budget=budget)
    return out, time.process_time() - c0, time.monotonic() - t0


@pytest.mark.slow
def test_unbudgeted_work_after_the_search_stops_at_the_cpu_budget() -> None:
    """Red team 5's answer: correct, two lines, but its dead branch names 300k identifiers, which
    EvalPlus' dependency walk visits with list.pop(0) after the (budgeted) search: about 20 s of
    the harness's CPU before (8.5 s at 200k, 29 s at 400k). The search itself takes ~2 s."""
    names = ",".join(f"a{k:x}" for k in range(300_000))
    text = f"def add(x, y):\n    return x + y if 1 else [{names}]\n"
    pool = SanitizerPool(size=1)
    try:
        assert pool.sanitize(HONEST, "add") == ("ok", WANT)  # the worker is up and warm
        (kind, why), cpu, wall = _after(pool, text, budget=5.0)
        assert (kind, why) == ("error", "the sanitizer went past its CPU budget (5 s)")
        assert cpu < 0.5 and wall < 15.0, (cpu, wall)
        assert pool.sanitize(HONEST, "add") == ("ok", WANT)  # a fresh worker
    finally:
        pool.close()


@pytest.mark.parametrize(
    ("target", "marker", "why"),
    [
        ("crash", "CRASH", "the sanitizer's process died of signal 11 (SIGSEGV)"),
        ("hog", "HOG", "the sanitizer ran out of memory (1024 MiB)"),
        ("spin", "SPIN", "the sanitizer went past its CPU budget (1 s)"),
        (
            "broken",
            "BROKEN",
            "evalplus sanitize raised ImportError('tree_sitter_python is missing')",
        ),
    ],
)
def test_a_worker_that_misbehaves_costs_one_answer_its_verdict_and_nothing_else(
    target: str, marker: str, why: str
) -> None:
    for pool in _pool(target, memory_bytes=1 << 30):
        assert pool.sanitize("def add(x, y): pass", "add") == ("ok", "def add(x, y): pass")
        (kind, got), cpu, wall = _after(pool, f"def add(x, y): pass  # {marker}")
        assert kind == "error" and got.startswith(why), got
        assert cpu < 0.5 and wall < 10.0, (cpu, wall)
        assert pool.sanitize("def add(x, y): pass", "add") == ("ok", "def add(x, y): pass")


def test_program_turns_a_dead_worker_into_a_grading_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for pool in _pool("crash"):
        monkeypatch.setattr(sanitize_proc, "_shared", pool)
        with pytest.raises(ExtractionFailed) as err:
            program("sanitize", "CRASH", {"entry_point": "add", "prompt": ""})
        assert err.value.verdict == "judge_error"
        assert str(err.value) == (
            "code extraction failed: the sanitizer's process died of signal 11 (SIGSEGV)"
        )


def test_the_answers_own_text_still_fails_it_and_odd_text_crosses_intact() -> None:
    """RecursionError from the sanitizer is the answer's fail, as before; a lone surrogate and
    a NUL byte reach the worker as they are."""
    deep = "def add(x, y):\n    return " + "-" * 1000 + "(x + y)\n"
    kind, why = sanitize_proc.shared().sanitize(deep, "add")
    assert kind == "fail" and why.startswith("evalplus sanitize raised RecursionError"), why
    for pool in _pool("crash"):
        odd = "def add(x, y):\n    return '\ud800\x00'"
        assert pool.sanitize(odd, "add") == ("ok", odd)


def test_answers_are_sanitized_side_by_side() -> None:
    """Two costly answers take about one budget of wall time on two workers, not two."""
    pool = SanitizerPool(size=2, target="tests.sanitize_targets:spin")
    try:
        for _ in range(2):  # both workers up
            pool.sanitize("def add(x, y): pass", "add")
        from concurrent.futures import ThreadPoolExecutor

        t0 = time.monotonic()
        with ThreadPoolExecutor(2) as ex:
            outs = list(ex.map(lambda _: pool.sanitize("SPIN", "add", budget=1.0), range(2)))
        wall = time.monotonic() - t0
        assert [k for k, _ in outs] == ["error", "error"]
        assert wall < 5.5, wall  # each is killed at ~3 s of CPU (budget + 2, whole seconds)
    finally:
        pool.close()
