"""Issue 14's red-team classes, one test (or more) each, with our own hostile programs.

Run as root by `make test` and again as an unprivileged user (`make test-rootless`): the
sandbox must hold the same way in both modes. After every hostile answer an honest one must
still pass and nothing may be left running under the sandbox.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codal_bench.executors.sandbox import SandboxExecutor, SandboxLimits
from codal_bench.humaneval.checker import CheckResult, Expected, HumanEvalChecker
from codal_bench.humaneval.compare import match_values
from tests.sandbox_helpers import ROOT, add_checker, leftovers, problem

HONEST = "def add(x, y):\n    return x + y\n"
ROOTLESS = os.geteuid() != 0


@pytest.fixture(scope="module")
def env(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[HumanEvalChecker, dict[str, Any], Expected]]:
    limits = SandboxLimits(memory_bytes=1 << 30, file_size_bytes=64 << 20)
    checker, add, expected = add_checker(tmp_path_factory.mktemp("cache"), limits)
    yield checker, add, expected
    checker.executor.close()


def _check(env: Any, code: str) -> CheckResult:
    checker, add, expected = env
    res: CheckResult = checker.check(add, code, expected)
    assert res.status != "pass", res
    assert leftovers(checker.executor) == []
    assert checker.check(add, HONEST, expected).status == "pass"
    return res


def _probe(env: Any, body: str) -> dict[str, Any]:
    """Run `body` (which fills the dict `r`) in the sandbox; return `r`."""
    program = "import ctypes, errno, json, os, socket\nr = {}\n" + textwrap.dedent(body)
    program += "\nprint(json.dumps(r))\n"
    res = env[0].executor.run(program, b"", 5, 20)
    assert res.status == "ok" and res.outputs, res
    out: dict[str, Any] = res.outputs[-1]
    return out


# -- 1. one answer must not crash the run ------------------------------------------------------

_FORGE = r"""
import os, struct
def frame(records):
    body = b"".join(tag + struct.pack("<I", len(p)) + p for tag, p in records)
    return struct.pack("<I", len(body)) + body
FORGED = [
    frame([(b"R", b"[1, 2]"), (b"R", b'{"d": []}')]),
    frame([(b"R", b"[" * 100000)]),
    frame([(b"R", b"9" * 50000), (b"X", b"\xff\xfe")]),
    frame([(b"Q", b"")]),
    struct.pack("<I", 1 << 30) + b"R",
    frame([(b"R", struct.pack("<I", 7))]),
]
def add(x, y):
    for fd in range(64):
        for f in FORGED:
            try:
                os.write(fd, f)
            except OSError:
                pass
    return %s
"""


@pytest.mark.parametrize("task", ["HumanEval/53", "HumanEval/2"])  # digests; typed values
def test_1_forged_records_fail_only_their_answer(env: Any, task: str) -> None:
    checker = env[0]
    p = problem(task)
    expected = checker.prepare([p])
    honest = p["prompt"] + p["canonical_solution"]
    args = "x + y" if task.endswith("/53") else "[[]]"
    fn = "add" if task.endswith("/53") else p["entry_point"]
    forged = (_FORGE % args).replace("def add(x, y):", f"def {fn}(*a):")
    jobs = [(p, forged), (p, honest), (p, "def nope(:\n"), (p, forged), (p, honest)]
    res = checker.check_many(jobs, expected)
    assert [r.status == "pass" for r in res] == [False, True, False, False, True], res
    assert leftovers(checker.executor) == []


# -- 2. no state through the kernel keyring --------------------------------------------------

_KEYRING_SCRIPT = r"""
import ctypes, json, sys
import pyseccomp
from codal_bench.executors.sandbox import SandboxExecutor
arch = pyseccomp.system_arch()
keyctl, add_key = (pyseccomp.resolve_syscall(arch, n) for n in ("keyctl", "add_key"))
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
assert libc.syscall(keyctl, 1, b"codal-harness-session") > 0  # as pam_keyinit would
secret = libc.syscall(add_key, b"user", b"codal-secret", b"s3cret", 6, -3)
assert secret > 0
probe = '''
import ctypes, json
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
r = {}
def call(name, *args):
    res = libc.syscall(*args)
    r[name] = res if res >= 0 else -ctypes.get_errno()
buf = ctypes.create_string_buffer(64)
call("read_secret", %(keyctl)d, 11, %(secret)d, buf, 64)
call("session_id", %(keyctl)d, 0, -3, 0)
call("stash_user", %(add_key)d, b"user", b"stash", b"answer", 6, -4)
call("stash_session", %(add_key)d, b"user", b"stash", b"answer", 6, -3)
call("join", %(keyctl)d, 1, b"codal-harness-session")
try:
    r["proc_keys"] = open("/proc/keys").read()
except OSError as e:
    r["proc_keys"] = str(e)
print(json.dumps(r))
''' % {"keyctl": keyctl, "add_key": add_key, "secret": secret}
ex = SandboxExecutor()
print(json.dumps([ex.run(probe, b"", 5, 20).outputs for _ in range(2)]))
"""


def test_2_keyrings_unreachable_and_fresh(tmp_path: Path) -> None:
    script = tmp_path / "keyring.py"
    script.write_text(_KEYRING_SCRIPT)
    p = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120,
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-2000:]
    for (view,) in json.loads(p.stdout):
        for call in ("read_secret", "session_id", "stash_user", "stash_session", "join"):
            assert view[call] == -1, (call, view)  # -EPERM from the seccomp filter
        assert "codal-secret" not in view["proc_keys"] and "stash" not in view["proc_keys"]
        assert "codal-harness" not in view["proc_keys"]


def test_2_each_answer_has_its_own_user_namespace(env: Any) -> None:
    views = [_probe(env, "r['userns'] = os.readlink('/proc/self/ns/user')") for _ in range(3)]
    assert len({v["userns"] for v in views}) == 3


# -- 3. the time limit is not the answer's to switch off -------------------------------------

SLOW_BUT_RIGHT = """
import signal, time
for s in (signal.SIGALRM, signal.SIGPROF, signal.SIGVTALRM, signal.SIGXCPU, signal.SIGTERM):
    signal.signal(s, signal.SIG_IGN)
signal.setitimer = lambda *a: (0.0, 0.0)
def add(x, y):
    t = time.process_time()
    while time.process_time() - t < 1.2:
        pass
    return x + y
"""


def test_3_ignoring_timer_signals_does_not_stop_the_clock(env: Any) -> None:
    res = _check(env, SLOW_BUT_RIGHT)
    assert res.status == "timeout", res


# -- 4. neighbours do not turn an honest answer into a timeout: see test_sandbox_load.py -----

# -- 5. memory and processes per answer -------------------------------------------------------

_MEMORY = """
import mmap, threading
def attempt(name, fn):
    try:
        fn()
        r[name] = "ok"
    except MemoryError:
        r[name] = "MemoryError"
    except OSError as e:
        r[name] = errno.errorcode.get(e.errno, str(e.errno))
attempt("fork", os.fork)
attempt("memfd", lambda: os.memfd_create("x"))
attempt("dev_shm", lambda: open("/dev/shm/hold", "wb").write(b"x" * (1 << 20)))
attempt("root", lambda: open("/hold", "wb").write(b"x"))
libc = ctypes.CDLL(None, use_errno=True)
def sysv():
    if libc.shmget(0, 1 << 30, 0o1000 | 0o600) < 0:
        raise OSError(ctypes.get_errno(), "shmget")
attempt("sysv_shm", sysv)
attempt("big_mmap", lambda: mmap.mmap(-1, 2 << 30))
held = []
def grab():
    while True:
        held.append(bytearray(64 << 20))
threads = [threading.Thread(target=attempt, args=("thread%d" % i, grab)) for i in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
r["held_mb"] = sum(len(b) for b in held) >> 20
def tmp():
    with open("/tmp/fill", "wb") as f:
        for _ in range(200):
            f.write(b"x" * (1 << 20))
attempt("tmp_fill", tmp)
"""


def test_5_one_process_one_address_space(env: Any) -> None:
    r = _probe(env, _MEMORY)
    assert r["fork"] == r["memfd"] == r["sysv_shm"] == "EPERM", r
    assert r["dev_shm"] == r["root"] == "EROFS", r
    assert r["big_mmap"] in ("ENOMEM", "MemoryError"), r
    assert all(r[f"thread{i}"] == "MemoryError" for i in range(3)), r
    assert r["held_mb"] < 1024  # the 1 GiB address-space limit holds all threads together
    assert r["tmp_fill"] in ("ENOSPC", "EFBIG"), r  # /tmp and file sizes are capped


def test_5_fork_and_memory_tricks_cannot_pass(env: Any) -> None:
    code = "import os\ndef add(x, y):\n    os.fork()\n    return x + y\n"
    assert _check(env, code).status == "fail"


# -- 6. clean-up never touches a host process ---------------------------------------------------


def test_6_timeouts_leave_host_processes_alone(env: Any) -> None:
    canaries = [subprocess.Popen(["sleep", "600"], start_new_session=True)]
    if not ROOTLESS:  # the uids the old design swept, and another fixed one
        base = 1_000_000 + (os.getpid() % 4_194_304) * 64
        for uid in (base, base + 1, 2_000_000):
            canaries.append(subprocess.Popen(["sleep", "600"], user=uid, group=uid))
    try:
        _check(env, "def add(x, y):\n    while True:\n        pass\n")
        _check(env, "import time\ndef add(x, y):\n    time.sleep(100)\n")
        _check(env, "import os\ndef add(x, y):\n    os.kill(-1, 9)\n    os.kill(0, 9)\n")
        assert all(c.poll() is None for c in canaries)
    finally:
        for c in canaries:
            c.kill()
            c.wait()


# -- 7. parent memory: see test_sandbox_load.py (RSS while every answer writes 64 MB) ---------

# -- 8. shapes compare exactly -----------------------------------------------------------------


def test_8_shape_mismatch_fails_where_broadcasting_would_pass() -> None:
    # numpy broadcasting (and so EvalPlus 0.3.1) takes [[]] for [7.7]; we do not.
    assert match_values([[[]]], [[7.7]], [[0]], 0.0, "f") == 0
    assert match_values([[[1.0, 2.0]]], [[[1.0], [2.0]]], [[0]], 0.0, "f") == 0
    assert match_values([[7.7 + 1e-9]], [[7.7]], [[0]], 0.0, "f") is None


def test_8_wrong_shape_answer_fails(env: Any) -> None:
    checker = env[0]
    p = {
        "task_id": "Synthetic/shape", "entry_point": "f", "atol": 0,
        "prompt": "def f(n):\n", "canonical_solution": "    return [n + 0.7]\n",
        "base_input": [[7]], "plus_input": [[1], [2]],
    }  # fmt: skip
    expected = checker.prepare([p])[p["task_id"]]
    assert expected.mode == "values"
    bad = checker.check(p, "def f(n):\n    return [[]]\n", expected)
    assert bad.status == "fail", bad
    good = checker.check(p, p["prompt"] + p["canonical_solution"], expected)
    assert good.status == "pass", good


# -- 9. no nested user namespace, no kernel surface an answer never needs ---------------------

_SYSCALLS = """
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def call(name, res):
    r[name] = "ok" if res >= 0 else errno.errorcode.get(ctypes.get_errno(), "?")
call("unshare_user", libc.unshare(0x10000000))
call("unshare_net", libc.unshare(0x40000000))
call("mount", libc.mount(b"tmpfs", b"/tmp", b"tmpfs", 0, None))
call("ptrace", libc.ptrace(0, 0, None, None))
for name, fam, typ in (("packet", 17, 3), ("netlink", 16, 3), ("raw", 2, 3), ("inet", 2, 1)):
    try:
        socket.socket(fam, typ).close()
        r[name] = "ok"
    except OSError as e:
        r[name] = errno.errorcode.get(e.errno, "?")
try:
    os.execv("/usr/bin/python3", ["python3", "-c", "pass"])
except OSError as e:
    r["execve"] = errno.errorcode.get(e.errno, "?")
"""


def test_9_seccomp_refuses_namespaces_mounts_raw_sockets(env: Any) -> None:
    r = _probe(env, _SYSCALLS)
    assert all(v == "EPERM" for v in r.values()), r
    assert len(r) == 9


def test_9_nested_namespace_answer_fails(env: Any) -> None:
    code = (
        "import ctypes\n"
        "def add(x, y):\n"
        "    libc = ctypes.CDLL(None, use_errno=True)\n"
        "    return x + y if libc.unshare(0x10000000) == 0 else None\n"
    )
    assert _check(env, code).status == "fail"


# -- 11. what an answer can see -----------------------------------------------------------------


def test_11_view_shows_no_host_paths(env: Any) -> None:
    r = _probe(
        env,
        """
r["mountinfo"] = open("/proc/self/mountinfo").read()
r["root"] = sorted(os.listdir("/"))
r["usr"] = sorted(os.listdir("/usr"))
r["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
r["env"] = sorted(os.environ)
""",
    )
    for path in (str(ROOT), "/work", "/root", "/home", "zygote.py"):
        assert path not in r["mountinfo"], path
    assert r["usr"] == sorted(d for d in ("bin", "lib", "lib64") if Path("/usr", d).is_dir())
    assert set(r["root"]) <= {"usr", "bin", "lib", "lib64", "sbin", "proc", "dev", "tmp", "run"}
    assert r["pids"] == [1]
    assert "OPENAI_API_KEY" not in r["env"]


# -- nothing survives between answers or runs -------------------------------------------------

_PLANT = """
wrote = []
for top, dirs, files in os.walk("/"):
    if top.startswith(("/proc", "/sys")):
        dirs[:] = []
        continue
    try:
        with open(os.path.join(top, ".codal-stash"), "w") as f:
            f.write("stash")
        wrote.append(top)
    except OSError:
        pass
r["wrote"] = wrote
"""
_LOOK = """
found = []
for top, dirs, files in os.walk("/"):
    if top.startswith(("/proc", "/sys")):
        dirs[:] = []
    elif ".codal-stash" in files:
        found.append(top)
r["found"] = found
"""


def test_nothing_survives_between_answers_or_runs(env: Any) -> None:
    planted = _probe(env, _PLANT)
    assert planted["wrote"] == ["/tmp"], planted  # its private /tmp, nothing else
    assert _probe(env, _LOOK)["found"] == []  # the next answer of the same run
    other = SandboxExecutor()  # another run
    try:
        res = other.run(
            "import os, errno, json\nr = {}\n" + _LOOK + "print(json.dumps(r))", b"", 5, 20
        )
        assert res.status == "ok" and res.outputs == [{"found": []}], res
    finally:
        other.close()


def test_signals_to_the_process_group_stay_inside(env: Any) -> None:
    before = env[0].executor.zygote_pids()
    r = _probe(env, "os.killpg(0, 0)\nr['pgid'] = os.getpgid(0)\nr['sid'] = os.getsid(0)")
    assert r == {"pgid": 1, "sid": 1}  # its own session and group, as pid 1 of its namespace
    assert env[0].executor.zygote_pids() == before
    _ = signal


# -- preflight: one clear line when no sandbox can be built ----------------------------------


def test_preflight_names_what_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import codal_bench.executors.sandbox as sandbox

    knob = tmp_path / "unprivileged_userns_clone"
    knob.write_text("0\n")
    monkeypatch.setattr(sandbox, "_USERNS_KNOBS", ((str(knob), "0", "sysctl -w x=1"),))
    ex = SandboxExecutor(bwrap="no-such-bwrap")
    ex.rootless = True  # as an unprivileged user on a host that disallows user namespaces
    with pytest.raises(sandbox.SandboxUnavailable) as err:
        ex.check()
    line = str(err.value)
    assert "\n" not in line
    assert "bwrap (apt: bubblewrap)" in line
    assert "unprivileged user namespaces" in line and "sysctl -w x=1" in line
