"""The second red-team pass against the round-2 sandbox: one test per way it got through.

Run as root by `make test` and again as an unprivileged user (`make test-rootless`).
1. `fallocate` on an inherited descriptor reserved host disk past the file-size limit;
2. empty files in the private /tmp held kernel memory that no size limit counts;
3. inotify watches used up the host user's quota (rootless);
4. an answer sleeping in every call held its worker for the sum of per-input wall limits;
5. an honest answer with slow top-level code was failed at load (EvalPlus allows the task's time);
6. an honest answer doing its work in a thread timed out under load.
(6 is in test_sandbox_load.py, with the other load tests.)
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codal_bench.executors.sandbox import SandboxExecutor, SandboxLimits
from codal_bench.humaneval.checker import HumanEvalChecker
from tests.sandbox_helpers import add_checker, leftovers, problem

HONEST = "def add(x, y):\n    return x + y\n"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HumanEvalChecker, Any, Any]]:
    checker, add, expected = add_checker(
        tmp_path_factory.mktemp("cache"), SandboxLimits(memory_bytes=1 << 30)
    )
    yield checker, add, expected
    checker.executor.close()


def _probe(env: Any, body: str) -> dict[str, Any]:
    program = "import ctypes, errno, json, os\nr = {}\n" + textwrap.dedent(body)
    program += "\nprint(json.dumps(r))\n"
    res = env[0].executor.run(program, b"", 10, 30)
    assert res.status == "ok" and res.outputs, res
    out: dict[str, Any] = res.outputs[-1]
    return out


def test_1_fallocate_is_refused(env: Any) -> None:
    r = _probe(env, """
        import struct
        libc = ctypes.CDLL(None, use_errno=True)
        for fd in (1, 2):  # the inherited output files
            rc = libc.fallocate(fd, 1, ctypes.c_long(0), ctypes.c_long(1 << 30))  # KEEP_SIZE
            r[str(fd)] = [rc, ctypes.get_errno(), os.fstat(fd).st_blocks]
            # the ioctls that reserve blocks the same way (struct space_resv: whence, start, len),
            # also with high bits set in the request (the kernel reads 32 bits of it)
            resv = ctypes.create_string_buffer(struct.pack("<hhqq4i", 0, 0, 0, 1 << 30, 0, 0, 0, 0))
            for req in (0x40305828, 0x4030582A, 0x40305839, 0xFFFFFFFF40305828):
                rc = libc.ioctl(fd, ctypes.c_ulong(req), resv)
                r["%d-%x" % (fd, req)] = [rc, ctypes.get_errno(), os.fstat(fd).st_blocks]
    """)  # fmt: skip
    assert len(r) == 10, r
    for key, (rc, err, blocks) in r.items():
        assert rc == -1 and err == 1 and blocks < 1024, (key, r)  # EPERM, nothing reserved


def test_1_scheduling_priority_cannot_be_lowered(env: Any) -> None:
    r = _probe(env, """
        r["nice"] = [ctypes.CDLL(None, use_errno=True).setpriority(0, 0, 19), ctypes.get_errno()]
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            r["idle"] = "set"
        except OSError as e:
            r["idle"] = e.errno
    """)  # fmt: skip
    assert r == {"nice": [-1, 1], "idle": 1}, r


def test_1_the_sessions_autogroup_nice_level_cannot_be_raised(env: Any) -> None:
    """Fourth red team: `prctl(PR_SET_DUMPABLE, 1)` made /proc/self ours (rootless, it is ours
    anyway), and writing 19 to /proc/self/autogroup put the answer's whole session at nice 19.
    The review found every thread's /proc/TID/autogroup open as well."""
    r = _probe(env, """
        import threading
        libc = ctypes.CDLL(None, use_errno=True)
        r["dumpable"] = [libc.prctl(4, 1, 0, 0, 0), ctypes.get_errno()]
        r["high bits"] = [libc.prctl(ctypes.c_long((1 << 32) | 4), 1, 0, 0, 0), ctypes.get_errno()]
        def attempt(key):
            path = "/proc/%d/autogroup" % threading.get_native_id()
            try:
                with open(path, "w") as f:
                    f.write("19")
                r[key] = "written"
            except OSError as e:
                r[key] = e.errno
            with open(path) as f:
                r[key + " now"] = f.read()
        attempt("main")
        t = threading.Thread(target=attempt, args=("thread",))
        t.start()
        t.join()
    """)  # fmt: skip
    assert r["dumpable"] == [-1, 1] and r["high bits"] == [-1, 1], r
    for key in ("main", "thread"):
        assert r[key] in (13, 30), r  # EACCES (as root: not its file) or EROFS (read-only /proc)
        assert "nice 0" in r[key + " now"], r


def test_2_private_tmp_holds_a_bounded_number_of_files(env: Any) -> None:
    r = _probe(env, """
        r["f_files"] = os.statvfs("/tmp").f_files
        n = 0
        try:
            for n in range(100000):
                os.close(os.open("/tmp/f%d" % n, os.O_CREAT | os.O_WRONLY, 0o600))
        except OSError as e:
            r["stopped"] = e.errno
        r["made"] = n
    """)  # fmt: skip
    assert r["f_files"] <= SandboxLimits().tmp_inodes, r
    assert r["stopped"] == 28 and r["made"] < SandboxLimits().tmp_inodes, r  # ENOSPC
    # and the next answer starts with an empty /tmp again
    assert _probe(env, 'r["left"] = os.listdir("/tmp")') == {"left": []}


def test_3_inotify_is_refused(env: Any) -> None:
    r = _probe(env, """
        libc = ctypes.CDLL(None, use_errno=True)
        r["init1"] = [libc.inotify_init1(0), ctypes.get_errno()]
        r["init"] = [libc.inotify_init(), ctypes.get_errno()]
    """)  # fmt: skip
    assert r == {"init1": [-1, 1], "init": [-1, 1]}, r


SLEEPER = """
import time
def add(x, y):
    time.sleep(1.2)  # under each input's 2.5 s wall limit, far over the group's allowance
    return x + y
"""


def test_4_sleeping_in_every_call_ends_at_the_groups_allowance(env: Any) -> None:
    checker, add, expected = env
    t0 = time.monotonic()
    res = checker.check(add, SLEEPER, expected)
    took = time.monotonic() - t0
    # 105 base inputs x 1.2 s would be two minutes; the group's allowance is its CPU budget
    # (min(2.0, summed limits) + 1 s) of time off the run queue, as EvalPlus caps a task
    assert res.status == "timeout", res
    assert took < 20, took
    assert leftovers(checker.executor) == []
    assert checker.check(add, HONEST, expected).status == "pass"


# The third red team's way around the allowance: 28 threads woken together every 0.25 s sit on
# the run queue at once; summing their waits made the sleeping main thread look like waiting.
PUMPED_SLEEPER = (
    """
import hashlib, threading, time
def _pump():
    while True:
        time.sleep(0.25 - (time.monotonic() % 0.25))
        end = time.monotonic() + 0.004
        while time.monotonic() < end:
            hashlib.sha256(b"x" * 16384).digest()  # releases the GIL: all runnable at once
threading.stack_size(64 * 1024)
for _ in range(28):
    threading.Thread(target=_pump, daemon=True).start()
"""
    + SLEEPER
)


def test_4_threads_waiting_together_buy_no_sleep(env: Any) -> None:
    checker, add, expected = env
    t0 = time.monotonic()
    res = checker.check(add, PUMPED_SLEEPER, expected)
    assert res.status == "timeout", res
    assert time.monotonic() - t0 < 20
    assert leftovers(checker.executor) == []


SLOW_TOP = """
import time
_t = time.process_time()
while time.process_time() - _t < 1.0:  # twice the per-input limit, within the task's time
    pass
def add(x, y):
    return x + y
"""


def test_5_slow_top_level_code_of_an_honest_answer_passes(env: Any) -> None:
    checker, add, expected = env
    res = checker.check(add, SLOW_TOP, expected)
    assert res.status == "pass" and res.cpu_s >= 1.0, res


def test_5_top_level_sleep_is_charged_to_the_group(env: Any) -> None:
    checker, add, expected = env
    t0 = time.monotonic()
    res = checker.check(add, "import time\ntime.sleep(8)\n" + HONEST, expected)
    assert res.status == "timeout", res  # the group's allowance is 3 s
    assert time.monotonic() - t0 < 7.5  # ended by the allowance, not by the sleep
    assert leftovers(checker.executor) == []


def test_5_top_level_code_still_has_a_limit(env: Any) -> None:
    checker, add, expected = env
    forever = "while True:\n    pass\n" + HONEST
    res = checker.check(add, forever, expected)
    assert res.status == "timeout" and res.first_failed is not None, res
    assert res.first_failed["reason"] == "load timeout"
    assert leftovers(checker.executor) == []


def test_the_file_limit_is_part_of_the_executors_identity() -> None:
    """The limits above are the executor's defaults, recorded in its identity (comparability)."""
    ident = SandboxExecutor().identity()
    assert ident["limits"]["tmp_inodes"] == SandboxLimits().tmp_inodes


def test_a_silent_sandbox_is_a_grading_error_never_a_verdict(
    env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The review's point: the parent's read timeout on the (trusted) supervisor used to become
    "the program exited", i.e. a fail. Now the answer gets no verdict; the grade is an error
    (not cached, retried by the next run)."""
    from codal_bench.executors.session import Session, Step

    checker, add, expected = env
    monkeypatch.setattr(Session, "step", lambda self, *a, **k: Step("lost", b"", 0.0, 0.0))
    res = checker.check(add, HONEST, expected)
    assert res.status == "judge_error" and res.first_failed is not None, res
    assert "stopped answering" in res.first_failed["reason"]
    monkeypatch.undo()
    assert checker.check(add, HONEST, expected).status == "pass"


SPIN_BETWEEN_STEPS = (
    """
import threading
def _spin():
    while True:
        pass
threading.Thread(target=_spin, daemon=True).start()
"""
    + HONEST
)


def test_cpu_burnt_between_steps_is_charged_to_the_next_step(env: Any) -> None:
    """Fourth red team: only CPU used while a step ran was metered, so a thread spinning while
    the parent judged a reply (or sat idle) ran for free, for as long as the session lived."""
    import marshal

    from codal_bench.humaneval.expected import CHILD_SOURCE

    checker, _, _ = env
    session = checker.executor.session(CHILD_SOURCE, 30.0, 60.0)
    try:
        load = session.step(
            marshal.dumps(("L", SPIN_BETWEEN_STEPS, "add", "digest"), 4), 5, 10, 4096
        )
        assert load.status == "ok", load
        time.sleep(2.0)  # the gap: the parent is busy elsewhere, the spinner is not
        step = session.step(marshal.dumps(("I", [(1, 2)]), 4), 5, 10, 4096)
    finally:
        session.close()
    assert step.status == "ok", step
    assert step.cpu_s >= 0.5, step  # the gap's CPU (a loaded machine gives it less), was ~0.01


SINGLES_ONLY = """
import sys, time
def _in_a_batch():
    f = sys._getframe(2)
    while f is not None:
        st = f.f_locals.get("step")
        if isinstance(st, tuple) and st and st[0] == "I":
            return len(st[1]) > 1
        f = f.f_back
    return False
def rescale_to_unit(numbers):
    if _in_a_batch():  # slow in a batch: every input is re-run alone
        t = time.process_time()
        while time.process_time() - t < 5:
            pass
    lo, hi = min(numbers), max(numbers)
    return [(x - lo) / (hi - lo) * (1 + 1e-13) for x in numbers]
"""


def test_inputs_re_run_one_by_one_cost_the_parent_linear_work(env: Any, tmp_path: Path) -> None:
    """Fourth red team: after each single-input step the parent decoded and compared all outputs
    so far again (values mode), 13-19 s of its CPU for HumanEval/21's 999 inputs."""
    checker = HumanEvalChecker(executor=env[0].executor, cache_dir=tmp_path, progress=False)
    p = problem("HumanEval/21")
    expected = checker.prepare([p])[p["task_id"]]
    assert expected.mode == "values" and len(p["plus_input"]) > 900
    sizes: list[int] = []
    real_batch = checker.batch

    def batch(problem: Any, g: str, i: int, j: int) -> bytes:
        sizes.append(j - i)
        return real_batch(problem, g, i, j)

    checker.batch = batch  # type: ignore[method-assign]
    c0 = time.process_time()
    res = checker.check(p, SINGLES_ONLY, expected)
    parent = time.process_time() - c0
    assert res.status == "pass", res  # within EvalPlus' tolerance, every input alone is fast
    assert sizes.count(1) > 900, sizes[:20]  # it did make the checker re-run inputs alone
    assert parent < 4.0, parent


def test_8_a_harness_holding_descriptors_past_1024_still_grades(tmp_path: Path) -> None:
    """select() refuses descriptors past 1024, and a harness beside an in-process engine (or
    with many files open) holds that many: the sandbox's own sockets then landed past it and
    every answer crashed the run with ValueError (found reading session 6's change)."""
    import os
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.fail(f"this machine allows {hard} open files: the case cannot be built")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        assert max(held) >= 1024
        checker, add, expected = add_checker(tmp_path, SandboxLimits(memory_bytes=1 << 30))
        try:
            assert checker.check(add, HONEST, expected).status == "pass"
            assert checker.check(add, "def add(x, y):\n    return x - y\n", expected).base == "fail"
        finally:
            checker.executor.close()
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_9_a_wait_longer_than_poll_takes_still_works() -> None:
    """poll() takes at most 2**31-1 ms; preparing ~120 problems at once gives the sandbox a
    longer limit than that, which raised OverflowError and left a report for the next run
    (red team 8)."""
    import socket

    from codal_bench.executors.session import readable

    a, b = socket.socketpair()
    try:
        assert not readable(a, 0.05)
        b.send(b"x")
        assert readable(a, 1e7)  # 116 days
    finally:
        a.close()
        b.close()
