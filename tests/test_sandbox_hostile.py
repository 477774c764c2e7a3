"""Hostile candidates: each must fail (or time out), escape nothing, and leave the harness fit.

Every program is graded as an answer to HumanEval/53 (`add`). Where an attack could earn a pass
if it worked (finding the answers, forging results), the program tries it; where it is about
escaping, the test checks the host afterwards. After each one an honest answer must still pass
and no process of the sandbox may be left but the zygotes.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codal_bench.executors.sandbox import SandboxExecutor, SandboxLimits
from codal_bench.humaneval.checker import CheckResult, Expected, HumanEvalChecker
from tests.sandbox_helpers import leftovers

ROOT = Path(__file__).resolve().parents[1]
PLUS = ROOT.parent / "shared" / "data" / "humanevalplus" / "HumanEvalPlus-v0.1.10.jsonl.gz"
HONEST = "def add(x, y):\n    return x + y\n"
SECRET = "sk-codal-test-secret-4242"


def _add_problem() -> dict[str, Any]:
    with gzip.open(PLUS, "rt") as f:
        for line in f:
            row = json.loads(line)
            if row["task_id"] == "HumanEval/53":
                return dict(row)
    raise AssertionError("HumanEval/53 missing from the data file")


@pytest.fixture(scope="module")
def env(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[HumanEvalChecker, dict[str, Any], Expected]]:
    os.environ["OPENAI_API_KEY"] = SECRET  # the harness holds a secret, as in real use
    executor = SandboxExecutor(SandboxLimits(memory_bytes=1 << 30, file_size_bytes=8 << 20))
    executor.check()  # no bubblewrap: fail loudly, never skip
    checker = HumanEvalChecker(
        executor=executor,
        cache_dir=tmp_path_factory.mktemp("cache"),
        min_time_limit=0.5,
        max_group_cpu_s=2.0,
        progress=False,
    )
    problem = _add_problem()
    expected = checker.prepare([problem])[problem["task_id"]]
    yield checker, problem, expected
    os.environ.pop("OPENAI_API_KEY", None)


def _attack(
    env: Any, code: str, allowed: tuple[str, ...] = ("fail", "timeout", "error")
) -> CheckResult:
    checker, problem, expected = env
    res: CheckResult = checker.check(problem, code, expected)
    assert res.status in allowed and res.status != "pass", res
    assert SECRET not in json.dumps(res.first_failed) + res.stderr_tail
    assert leftovers(checker.executor) == []
    honest = checker.check(problem, HONEST, expected)
    assert honest.status == "pass", honest
    return res


def test_honest_answer_passes(env: Any) -> None:
    checker, problem, expected = env
    assert checker.check(problem, HONEST, expected).status == "pass"


def test_eq_always_true(env: Any) -> None:
    _attack(env, "class Yes:\n    def __eq__(self, o): return True\n    __hash__ = None\n"
            "def add(x, y):\n    return Yes()\n")  # fmt: skip


def test_int_subclass_with_lying_eq(env: Any) -> None:
    _attack(env, "class Yes(int):\n    def __eq__(self, o): return True\n"
            "def add(x, y):\n    return Yes(0)\n")  # fmt: skip


def test_frame_walking_forgery(env: Any) -> None:
    # Walk up to the harness frame, rebind everything that looks like a verdict, replace the
    # output encoder, and write fake "result" lines on every open descriptor.
    res = _attack(
        env,
        r"""
import sys, os, gc
def add(x, y):
    f = sys._getframe()
    while f is not None:
        for name in list(f.f_globals):
            if name in ("digest", "typed"):
                f.f_globals[name] = lambda v: "0" * 32
        for name in ("stat", "details", "expected", "exact_match", "ok", "passed"):
            f.f_globals[name] = True
        f = f.f_back
    for fd in range(3, 20):
        try:
            for g in range(2):
                for i in range(2000):
                    os.write(fd, ('["R",%d,%d,"%s",0.0]\n' % (g, i, "0" * 32)).encode())
                os.write(fd, b'["G",%d]\n' % g)
            os.write(fd, b'["D"]\n')
        except OSError:
            pass
    os._exit(0)
""",
    )
    assert res.first_failed is not None
    assert res.first_failed["reason"] in ("wrong output", "malformed reply", "output too large")


@pytest.mark.parametrize(
    "code",
    [
        "import os\nos._exit(0)\ndef add(x, y):\n    return x + y\n",
        "import sys\nsys.exit(0)\ndef add(x, y):\n    return x + y\n",
        "import os\ndef add(x, y):\n    os._exit(0)\n",
        "import sys\ndef add(x, y):\n    sys.exit(0)\n",
        "import os, signal\ndef add(x, y):\n    os.kill(os.getpid(), signal.SIGKILL)\n",
    ],
    ids=["os_exit_top", "sys_exit_top", "os_exit_in_fn", "sys_exit_in_fn", "self_kill"],
)
def test_exit_before_checks(env: Any, code: str) -> None:
    _attack(env, code)


@pytest.mark.parametrize("how", ["open", "io.open", "os.open", "pathlib"])
def test_write_outside_workdir(env: Any, tmp_path: Path, how: str) -> None:
    targets = [
        ROOT / f"PWNED-{how}",  # the repository
        tmp_path / "pwned",  # a host temp dir
        Path("/usr") / f"pwned-{how}",  # the read-only system
        Path.home() / f"pwned-{how}",
    ]
    write = {
        "open": "open(p, 'w').write('x')",
        "io.open": "io.open(p, 'w').write('x')",
        "os.open": "os.write(os.open(p, os.O_WRONLY | os.O_CREAT, 0o644), b'x')",
        "pathlib": "pathlib.Path(p).write_text('x')",
    }[how]
    code = (
        "import io, os, pathlib\n"
        "def add(x, y):\n"
        f"    wrote = 0\n"
        f"    for p in {[str(t) for t in targets]!r}:\n"
        f"        try:\n            {write}\n            wrote += 1\n"
        f"        except OSError:\n            pass\n"
        "    return x + y if wrote else None\n"
    )
    _attack(env, code)
    for t in targets:
        assert not t.exists(), t


def test_remount_root_writable(env: Any) -> None:
    code = r"""
import ctypes, os, subprocess
def add(x, y):
    libc = ctypes.CDLL(None, use_errno=True)
    MS_REMOUNT, MS_BIND = 32, 4096
    r1 = libc.mount(b"none", b"/", None, MS_REMOUNT, None)
    r2 = libc.mount(b"none", b"/usr", None, MS_REMOUNT | MS_BIND, None)
    try:
        subprocess.run(["mount", "-o", "remount,rw", "/usr"], capture_output=True)
    except Exception:
        pass
    try:
        open("/usr/pwned-remount", "w").write("x")
        return x + y
    except OSError:
        return None
"""
    _attack(env, code)
    assert not Path("/usr/pwned-remount").exists()


def test_socket(env: Any) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.settimeout(0.2)
    port = server.getsockname()[1]
    hits: list[Any] = []

    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                hits.append(server.accept())
            except OSError:
                pass

    t = threading.Thread(target=accept)
    t.start()
    code = (
        "import socket\n"
        "def add(x, y):\n"
        f"    s = socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
        "    s.sendall(b'hello')\n"
        "    return x + y\n"
    )
    try:
        res = _attack(env, code)
    finally:
        stop.set()
        t.join()
        server.close()
    assert hits == []
    assert res.status == "fail" and "exception" in res.first_failed["reason"]  # type: ignore[index]


def test_read_api_key(env: Any) -> None:
    # The secret is in this process's environment; the program looks everywhere it could be
    # and, if found, leaks it through the exception message (which we report).
    code = r"""
import os, glob
def add(x, y):
    found = os.environ.get("OPENAI_API_KEY", "")
    for path in glob.glob("/proc/*/environ") + glob.glob("/proc/*/task/*/environ"):
        try:
            data = open(path, "rb").read()
        except OSError:
            continue
        if b"OPENAI_API_KEY" in data:
            found += data.decode(errors="replace")
    try:
        found += open("/proc/1/environ").read()
    except OSError:
        pass
    raise RuntimeError("leak:" + found)
"""
    res = _attack(env, code)
    assert "leak:" in str(res.first_failed)


def test_fork_bomb(env: Any) -> None:
    code = (
        "import os\n"
        "def add(x, y):\n"
        "    while True:\n"
        "        try:\n"
        "            os.fork()\n"
        "        except OSError:\n"
        "            pass\n"
    )
    _attack(env, code)


def test_memory_bomb(env: Any) -> None:
    _attack(
        env,
        "def add(x, y):\n    hog = []\n    while True:\n        hog.append(bytearray(50 << 20))\n",
    )


def test_infinite_loop(env: Any) -> None:
    res = _attack(env, "def add(x, y):\n    while True:\n        pass\n", allowed=("timeout",))
    assert res.first_failed is not None and res.first_failed["index"] == 0


def test_sleep_forever(env: Any) -> None:
    _attack(env, "import time\ndef add(x, y):\n    time.sleep(10**6)\n", allowed=("timeout",))


def test_ignore_signals_busy(env: Any) -> None:
    code = (
        "import signal\n"
        "for s in (signal.SIGALRM, signal.SIGPROF, signal.SIGXCPU, signal.SIGTERM):\n"
        "    signal.signal(s, signal.SIG_IGN)\n"
        "def add(x, y):\n"
        "    while True:\n"
        "        pass\n"
    )
    _attack(env, code, allowed=("timeout",))


def test_ignore_signals_sleeping(env: Any) -> None:
    code = (
        "import signal, time\n"
        "for s in (signal.SIGALRM, signal.SIGPROF, signal.SIGTERM):\n"
        "    signal.signal(s, signal.SIG_IGN)\n"
        "def add(x, y):\n"
        "    while True:\n"
        "        try:\n"
        "            time.sleep(10**6)\n"
        "        except BaseException:\n"
        "            pass\n"
    )
    _attack(env, code, allowed=("timeout",))


def test_huge_stdout(env: Any) -> None:
    code = (
        "import os, sys\n"
        "def add(x, y):\n"
        "    chunk = 'x' * (1 << 20)\n"
        "    for _ in range(200):\n"
        "        print(chunk)\n"
        "        sys.stderr.write(chunk)\n"
        "        for fd in range(1, 10):\n"
        "            try:\n"
        "                os.write(fd, chunk.encode())\n"
        "            except OSError:\n"
        "                pass\n"
        "    return x + y\n"
    )
    res = _attack(env, code)
    assert len(res.stderr_tail) <= 4000


def test_kill_parent(env: Any) -> None:
    code = (
        "import os, signal\n"
        "def add(x, y):\n"
        "    for pid in [os.getppid(), 1, -1] + list(range(2, 4000)):\n"
        "        try:\n"
        "            os.kill(pid, signal.SIGKILL)\n"
        "        except OSError:\n"
        "            pass\n"
        "    return None\n"
    )
    _attack(env, code)


def test_read_benchmark_data(env: Any) -> None:
    # With the data file the program could run the canonical solution and pass: it must not
    # find it (nor our cache of expected outputs).
    cache = next((env[0].cache_dir / "humaneval-expected").glob("*.json.gz"))
    code = (
        "import glob, gzip, json, os\n"
        "def add(x, y):\n"
        f"    paths = [{str(PLUS)!r}, {str(cache)!r}]\n"
        "    for top in os.listdir('/'):\n"
        "        if top not in ('usr', 'proc', 'sys', 'dev') and not os.path.islink('/' + top):\n"
        "            paths += glob.glob('/' + top + '/**/HumanEvalPlus*', recursive=True)\n"
        "            paths += glob.glob('/' + top + '/**/humaneval-expected/*', recursive=True)\n"
        "    for p in paths:\n"
        "        try:\n"
        "            rows = [json.loads(l) for l in gzip.open(p, 'rt')]\n"
        "        except OSError:\n"
        "            continue\n"
        "        row = [r for r in rows if r['task_id'] == 'HumanEval/53'][0]\n"
        "        g = {}\n"
        "        exec(row['prompt'] + row['canonical_solution'], g)\n"
        "        return g['add'](x, y)\n"
        "    raise FileNotFoundError('no data')\n"
    )
    res = _attack(env, code)
    assert "no data" in str(res.first_failed)


def test_sandbox_view(env: Any) -> None:
    """What the child sees: its own uid, no capabilities, a fresh /proc, no host files."""
    checker = env[0]
    probe = (
        "import os, json\n"
        "st = open('/proc/self/status').read()\n"
        "caps = [l for l in st.splitlines() if l.startswith(('CapEff', 'CapPrm', 'CapBnd'))]\n"
        "print(json.dumps({'uid': os.getuid(), 'caps': caps, 'pids': sorted(int(p) for p in\n"
        "    os.listdir('/proc') if p.isdigit()), 'root': sorted(os.listdir('/')),\n"
        "    'env': sorted(os.environ)}))\n"
    )
    res = checker.executor.run(probe, b"", 5, 20)
    assert res.status == "ok", res
    view = res.outputs[0]
    assert view["uid"] == 1000  # its own user namespace: a fresh identity per answer
    assert all(line.split()[1] == "0000000000000000" for line in view["caps"])
    assert view["pids"] == [1]  # only itself, as pid 1 of a fresh pid namespace
    assert "work" not in view["root"] and "root" not in view["root"] and "etc" not in view["root"]
    assert "OPENAI_API_KEY" not in view["env"]


def test_each_candidate_gets_fresh_namespaces(env: Any) -> None:
    """Candidates forked from one zygote share nothing: files and processes are gone, and
    System V IPC (memory outside the address-space limit) is refused."""
    executor = env[0].executor
    plant = (
        "import ctypes, json, os, sys, time\n"
        "open('/tmp/left-behind', 'w').write('x')\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "print(json.dumps(libc.shmget(4242, 4096, 0o1000 | 0o666) >= 0))\n"  # IPC_CREAT
        "sys.stdout.flush()\n"
        "try:\n"
        "    pid = os.fork()\n"
        "except OSError:\n"
        "    pid = -1\n"
        "if pid == 0:\n"
        "    os.setsid()\n"
        "    time.sleep(60)\n"
        "    os._exit(0)\n"
    )
    look = (
        "import ctypes, json, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "print(json.dumps({'file': os.path.exists('/tmp/left-behind'),\n"
        "    'shm': libc.shmget(4242, 0, 0) >= 0,\n"
        "    'pids': sorted(int(p) for p in os.listdir('/proc') if p.isdigit())}))\n"
    )
    planted = executor.run(plant, b"", 5, 20)
    assert planted.status == "ok" and planted.outputs == [False], planted
    seen = executor.run(look, b"", 5, 20)
    assert seen.status == "ok", seen
    assert seen.outputs == [{"file": False, "shm": False, "pids": [1]}]
    assert leftovers(executor) == []
