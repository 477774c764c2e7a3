"""Issue 14's classes 4 and 7: verdicts do not depend on neighbours, and a flood of crafted
output costs the parent (almost) nothing. Run as root and as an unprivileged user."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from codal_bench.executors.sandbox import SandboxExecutor, SandboxLimits
from codal_bench.humaneval.checker import HumanEvalChecker
from tests.sandbox_helpers import leftovers, problem

LIMIT = 0.2  # CPU seconds per input (every canonical input is far below it)
BURN = 0.11  # what the honest answer spends per input: 55 % of its limit
# The answer burns CPU time it measures itself, then answers right.
HONEST_BURN = f"""
import time
def burn(n):
    t = time.process_time()
    while time.process_time() - t < {BURN}:
        pass
    return n * 2
"""
# The same work done in a worker thread while the main thread waits for it (the wait that load
# causes is read per thread: the worker's counts, not only the main thread's).
HONEST_THREADED = (
    HONEST_BURN.replace("def burn(n):", "def work(n, out):").replace(
        "    return n * 2", "    out.append(n * 2)"
    )
    + """
import threading
def burn(n):
    out = []
    t = threading.Thread(target=work, args=(n, out))
    t.start()
    t.join()
    return out[0]
"""
)
BURN_PROBLEM = {
    "task_id": "Synthetic/burn", "entry_point": "burn", "atol": 0,
    "prompt": "def burn(n):\n", "canonical_solution": "    return n * 2\n",
    "base_input": [[1], [2]], "plus_input": [[3], [4]],
}  # fmt: skip
# Another answer of the same run that tries to load the machine: 30 processes, each in its own
# session; the sandbox refuses them, so it falls back to 30 busy threads.
HOG_ANSWER = """
import os, threading
def spin():
    while True:
        pass
def burn(n):
    for _ in range(30):
        try:
            if os.fork() == 0:
                os.setsid()
                spin()
        except OSError:
            threading.Thread(target=spin, daemon=True).start()
    spin()
"""


@pytest.fixture
def checker(tmp_path: Path) -> Iterator[HumanEvalChecker]:
    ck = HumanEvalChecker(cache_dir=tmp_path, workers=2, min_time_limit=LIMIT, progress=False)
    yield ck
    ck.executor.close()


@contextmanager
def _hogs(n: int) -> Iterator[None]:
    """`n` busy host processes, each in its own session, for as long as the block runs."""
    hogs = [
        subprocess.Popen(["sh", "-c", "while :; do :; done"], start_new_session=True)
        for _ in range(n)
    ]
    try:
        yield
    finally:
        for h in hogs:
            os.killpg(h.pid, signal.SIGKILL)
            h.wait()


@pytest.mark.slow
def test_4_honest_answer_passes_among_30_host_hogs(checker: HumanEvalChecker) -> None:
    expected = checker.prepare([BURN_PROBLEM])
    limits = sum(sum(checker.limits(expected["Synthetic/burn"], g)) for g in ("base", "plus"))
    assert 4 * BURN >= 0.5 * limits  # CPU alone is at least half the summed limits
    with _hogs(30):
        res = checker.check_many([(BURN_PROBLEM, HONEST_BURN)] * 5, expected)
    assert [r.status for r in res] == ["pass"] * 5, res


@pytest.mark.slow
@pytest.mark.parametrize("burn", [BURN, 0.04])  # 0.04: two inputs' threads fit one batch's limit
def test_4_threaded_honest_answer_passes_among_30_host_hogs(
    checker: HumanEvalChecker, burn: float
) -> None:
    answer = HONEST_THREADED.replace(str(BURN), str(burn))
    expected = checker.prepare([BURN_PROBLEM])
    alone = checker.check(BURN_PROBLEM, answer, expected["Synthetic/burn"])
    assert alone.status == "pass" and alone.cpu_s >= 4 * burn, alone  # the work really ran
    with _hogs(30):
        res = checker.check_many([(BURN_PROBLEM, answer)] * 5, expected)
    assert [r.status for r in res] == ["pass"] * 5, res


@pytest.mark.slow
def test_4_honest_answer_passes_beside_a_hostile_answer(checker: HumanEvalChecker) -> None:
    expected = checker.prepare([BURN_PROBLEM])
    jobs = [(BURN_PROBLEM, HONEST_BURN if i % 2 else HOG_ANSWER) for i in range(10)]
    res = checker.check_many(jobs, expected)
    assert [r.status for r in res[1::2]] == ["pass"] * 5, res
    assert all(r.status == "timeout" for r in res[0::2]), res
    assert leftovers(checker.executor) == []


FLOOD = r"""
import os, struct, threading
def flood(fd, chunk, total):
    try:
        for _ in range(total // len(chunk)):
            os.write(fd, chunk)
    except OSError:
        pass
def frame(n):
    body = (b"R" + struct.pack("<I", 32) + b"0" * 32) * n
    return struct.pack("<I", len(body)) + body
CHUNKS = [
    frame(1 << 15),                                   # ~1 MB frames of digest records
    struct.pack("<I", 64 << 20) + b"[" * (1 << 20),   # one 64 MB frame of nesting
    b"R" + struct.pack("<I", 1 << 20) + b"[0," * 349525,
]
def %s(*args):
    threads = [threading.Thread(target=flood, args=(fd, CHUNKS[fd %% 3], 64 << 20))
               for fd in range(1, 8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return None
"""


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


def test_7_parent_memory_flat_under_64_mb_floods(tmp_path: Path) -> None:
    executor = SandboxExecutor(SandboxLimits(file_size_bytes=64 << 20))
    checker = HumanEvalChecker(executor=executor, cache_dir=tmp_path, workers=2, progress=False)
    try:
        problems = [problem("HumanEval/53"), problem("HumanEval/2")]  # digests; typed values
        expected = checker.prepare(problems)
        jobs = [(p, FLOOD % p["entry_point"]) for p in problems for _ in range(4)]
        jobs += [(p, p["prompt"] + p["canonical_solution"]) for p in problems]
        checker.check_many(jobs[:2], expected)  # zygotes up: their start is not grading
        Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
        before = _rss_kb("VmRSS")
        res = checker.check_many(jobs, expected)
        peak = _rss_kb("VmHWM")
    finally:
        executor.close()
    assert [r.status for r in res] == ["fail"] * 8 + ["pass"] * 2, res
    growth_mb = (peak - before) / 1024
    print(f"parent RSS before grading {before / 1024:.0f} MB, peak growth {growth_mb:.1f} MB")
    assert growth_mb < 256 * 2  # the bound: 256 MB per worker
    assert growth_mb < 64  # and in fact: each reply is capped by what the answer should send
