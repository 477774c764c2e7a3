"""EvalPlus' sanitizer runs in worker processes: no answer's text can stall, starve or crash the
run through it (fifth red team: a 2.7 MB correct answer held the harness for 29 s in passes after
the budgeted search; a crash in tree-sitter's C code would have ended the run).

Each case: the misbehaving answer gets an outcome of its own (no verdict: a grading error), the
next answer is sanitized as before, and the harness's own CPU stays small. Then the pool's own
failure modes (a review of this change): an interrupted call, a worker dead while idle, no
process to be had, descriptors past 1024, an ignored SIGXCPU, a sanitizer that cannot import,
and a memory cap that would otherwise change the program.
"""

from __future__ import annotations

import os
import resource
import signal
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from codal_bench.humaneval import sanitize_proc
from codal_bench.humaneval.extract import ExtractionFailed, program
from codal_bench.humaneval.sanitize_proc import SanitizerPool

HONEST = "Here it is:\n```python\ndef add(x, y):\n    return x + y\n```\n"
WANT = "def add(x, y):\n    return x + y"
PLAIN = "def add(x, y): pass"


def _pool(target: str, **kw: Any) -> Iterator[SanitizerPool]:
    pool = SanitizerPool(size=kw.pop("size", 1), target=f"tests.sanitize_targets:{target}", **kw)
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
    EvalPlus' dependency walk visits with list.pop(0) after the search: ~20 s of the harness's
    CPU before (8.5 s at 200k, 29 s at 400k). The search's own budget is lifted here, so only
    the kernel's limit on the worker can end it."""
    names = ",".join(f"a{k:x}" for k in range(300_000))
    text = f"def add(x, y):\n    return x + y if 1 else [{names}]\n"
    for pool in _pool("unbudgeted"):
        assert pool.sanitize(HONEST, "add") == ("ok", WANT)  # the worker is up and warm
        (kind, why), cpu, wall = _after(pool, text, budget=3.0)
        assert (kind, why) == ("error", "the sanitizer went past its CPU budget (3 s)")
        assert cpu < 0.5 and wall < 30.0, (cpu, wall)
        assert pool.sanitize(HONEST, "add") == ("ok", WANT)  # a fresh worker


@pytest.mark.parametrize(
    ("target", "marker", "why"),
    [
        ("crash", "CRASH", "the sanitizer's process died of signal 11 (SIGSEGV)"),
        ("hog", "HOG", "the sanitizer ran out of memory (1024 MiB)"),
        ("spin", "SPIN", "the sanitizer went past its CPU budget (1 s)"),
        ("broken", "BROKEN", "evalplus sanitize raised ImportError('tree_sitter_python is missing"),
    ],
)
def test_a_worker_that_misbehaves_costs_one_answer_its_verdict_and_nothing_else(
    target: str, marker: str, why: str
) -> None:
    for pool in _pool(target, memory_bytes=1 << 30):
        assert pool.sanitize(PLAIN, "add") == ("ok", PLAIN)
        (kind, got), cpu, wall = _after(pool, f"{PLAIN}  # {marker}")
        assert kind == "error" and got.startswith(why), got
        assert cpu < 0.5 and wall < 10.0, (cpu, wall)
        assert pool.sanitize(PLAIN, "add") == ("ok", PLAIN)


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


def test_answers_are_sanitized_side_by_side(tmp_path: Path) -> None:
    """Two answers at once run in two workers: each call waits (without CPU) for the other."""
    for pool in _pool("meet", size=2):
        with ThreadPoolExecutor(2) as ex:
            outs = list(ex.map(pool.sanitize, [f"MEET {tmp_path}"] * 2, ["add"] * 2))
        assert outs == [("ok", "met"), ("ok", "met")]
        assert len(list(tmp_path.iterdir())) == 2  # two processes marked it


class _Interrupt(BaseException):
    pass


def test_an_interrupted_call_hands_its_reply_to_no_other_answer() -> None:
    def interrupt(signum: int, frame: Any) -> None:
        raise _Interrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    try:
        for pool in _pool("slow"):
            pool.sanitize(PLAIN, "add")
            signal.setitimer(signal.ITIMER_REAL, 0.3)
            with pytest.raises(_Interrupt):
                pool.sanitize("SLOW answer A", "add")
            assert pool.sanitize("answer B", "add") == ("ok", "answer B")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_a_worker_dead_while_idle_costs_no_answer_its_verdict() -> None:
    for pool in _pool("crash"):
        assert pool.sanitize(PLAIN, "add") == ("ok", PLAIN)
        (worker,) = pool._all
        os.kill(worker.proc.pid, signal.SIGKILL)  # as the OOM killer would
        worker.proc.wait()
        assert pool.sanitize(PLAIN, "add") == ("ok", PLAIN)
        assert len(pool._all) == 1 and worker not in pool._all


def test_no_process_to_be_had_is_a_grading_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", "/nonexistent/python3")
    for pool in _pool("crash"):
        kind, why = pool.sanitize(PLAIN, "add")
        assert kind == "error" and why.startswith("cannot start the sanitizer:"), why


def test_descriptors_past_1024_are_no_problem() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.fail(f"this machine allows {hard} open files: the case cannot be built")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        assert max(held) >= 1024
        for pool in _pool("crash"):
            assert pool.sanitize(PLAIN, "add") == ("ok", PLAIN)
            (worker,) = pool._all
            assert worker.back >= 1024
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_budget_holds_when_the_harness_ignores_sigxcpu() -> None:
    old = signal.signal(signal.SIGXCPU, signal.SIG_IGN)  # inherited across exec
    try:
        for pool in _pool("spin"):
            pool.sanitize(PLAIN, "add")
            (kind, why), _, wall = _after(pool, "SPIN")
            assert (kind, why) == ("error", "the sanitizer went past its CPU budget (1 s)")
            assert wall < 10.0, wall
    finally:
        signal.signal(signal.SIGXCPU, old)


def test_a_sanitizer_that_cannot_import_says_why_to_every_answer() -> None:
    pool = SanitizerPool(size=1, target="tests.no_such_module:sanitize")
    try:
        for _ in range(2):
            kind, why = pool.sanitize(PLAIN, "add")
            assert kind == "error" and "No module named 'tests.no_such_module'" in why, why
        assert len(pool._all) == 1  # one worker says so; not a new process per answer
    finally:
        pool.close()


@pytest.mark.slow
def test_the_memory_cap_gives_no_verdict_rather_than_another_program() -> None:
    """A correct `add` followed by one huge line that breaks it (it sets K, which add reads).
    EvalPlus without a cap keeps the line: the answer fails. Under the worker's cap the parse of
    that line runs out of memory; EvalPlus' syntax check would call that "does not parse" and
    keep `add` alone (a pass). Ours reports it: no verdict."""
    n = 1_500_000
    text = (
        "def add(x, y):\n    return x + y + (K if 'K' in globals() else 0)\n"
        "K = [" + "0," * n + "][0] + 1"
    )
    pool = SanitizerPool(size=1, memory_bytes=512 << 20)
    try:
        kind, why = pool.sanitize(text, "add")
        assert kind == "error" and "out of memory" in why, (kind, why[:200])
        # the parser's own nesting limit (a bare MemoryError in 3.11) is the text's, as in
        # EvalPlus: that line does not parse, and the answer keeps its function
        deep = "def add(x, y):\n    return x + y\nz = " + "-" * 10_000 + "1\n"
        assert pool.sanitize(deep, "add") == ("ok", "def add(x, y):\n    return x + y")
    finally:
        pool.close()


@pytest.mark.slow
def test_a_huge_allocation_that_fails_is_no_verdict_and_moves_no_other_answer() -> None:
    """The parser decodes a string literal with an escape in one allocation of 6 bytes per
    UTF-8 byte: past the cap it fails while little memory is in use (second review: read as
    "does not parse", this answer sanitized to `add` alone, a pass, where EvalPlus keeps the
    line and fails it). And a big answer that parses leaves the worker's verdicts on later
    answers as they were."""
    breaking = 'K = 1 if "\\n' + "\u00e9" * 50_000_000 + '" else 0'
    text = f"def add(x, y):\n    return x + y + (K if 'K' in globals() else 0)\n{breaking}"
    deep = "def add(x, y):\n    return x + y\nz = " + "-" * 10_000 + "1\n"
    big_ok = "def add(x, y):\n    return x + y\nz = [" + "0," * 400_000 + "]\n"
    pool = SanitizerPool(size=1, memory_bytes=512 << 20)
    try:
        kind, why = pool.sanitize(text, "add")
        assert kind == "error" and "out of memory" in why, (kind, why[:200])
        assert pool.sanitize(big_ok, "add")[0] == "ok"
        assert pool.sanitize(deep, "add") == ("ok", "def add(x, y):\n    return x + y")
    finally:
        pool.close()
