"""EvalPlus' sanitizer in worker processes, so that no answer's text can stall or crash the run.

The sanitizer runs in the harness on the model's raw text, with tree-sitter's C parser and
EvalPlus' Python passes over its tree. A hostile or merely huge reply found work outside any
in-process budget (a 2.7 MB correct answer held the harness for 29 s: fifth red team), and a
crash or a memory blow-up in C code would have taken the whole run down. Here each text goes to
a worker process that holds the imports; the kernel enforces its budget (RLIMIT_CPU: a worker
past it dies of SIGXCPU) and a memory cap (RLIMIT_AS), and whatever happens to a worker, the
caller gets an outcome for that one answer and the next answer gets a fresh worker.

Outcomes: ("ok", program), ("fail", why) when the sanitizer rejected the answer's text
(RecursionError, ValueError: that answer fails, as under EvalPlus, which would raise), and
("error", why) for anything else (budget, memory, a dead worker, a worker that cannot start): no
verdict, graded again.

The workers parse text; they never run it. They run as the harness's user: a worker is a bound
on cost and a firewall for crashes, not a security boundary against a parser exploit.
"""

from __future__ import annotations

import atexit
import json
import marshal
import os
import queue
import signal
import struct
import subprocess
import sys
import threading
import types
from typing import Any

from ..executors.session import readable
from .sanitize_fast import BUDGET_S

MEMORY_BYTES = 4 << 30  # a worker's address space: tree-sitter's tree of a few MB of text fits
TARGET = "codal_bench.humaneval.sanitize_fast:sanitize"
_HEAD = struct.Struct("<I")
# Started with -I (no cwd, no PYTHONPATH, no user site) and given the harness's import path
# explicitly: a folder named codal_bench or evalplus in the working directory, or a path with
# ":" in it, cannot make the worker load other code than the harness did.
_BOOT = (
    "import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
    "from codal_bench.humaneval.sanitize_proc import _serve; _serve(sys.argv[2], int(sys.argv[3]))"
)


def _read_exact(fd: int, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _write_frame(fd: int, payload: bytes) -> None:
    for part in (_HEAD.pack(len(payload)), payload):  # no joined copy of a big answer
        data = memoryview(part)
        while data:
            data = data[os.write(fd, data) :]


def _died(code: int, budget: float) -> str:
    if code == -signal.SIGXCPU:
        return f"the sanitizer went past its CPU budget ({budget:g} s)"
    if code < 0:
        return f"the sanitizer's process died of signal {-code} ({signal.Signals(-code).name})"
    return f"the sanitizer's process exited with status {code}"


class _Worker:
    """One worker process and its pipes; used by one thread at a time."""

    def __init__(self, target: str, memory_bytes: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", _BOOT, json.dumps(sys.path), target, str(memory_bytes)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.to, self.back = self.proc.stdin.fileno(), self.proc.stdout.fileno()

    def call(self, text: str, entry: str, budget: float, wall: float) -> tuple[str, str]:
        request = marshal.dumps((text, entry, budget))
        if len(request) >= 1 << 32:
            return "error", f"the answer is too large to sanitize ({len(text)} characters)"
        try:
            _write_frame(self.to, request)
            if not readable(self.back, wall):
                self.kill()
                return "error", f"the sanitizer gave no answer within {wall:g} s"
            (size,) = _HEAD.unpack(_read_exact(self.back, _HEAD.size))
            kind, value, retiring = marshal.loads(_read_exact(self.back, size))
            if retiring:  # it exits after this reply: no other answer may be sent to it
                self.kill()
            return str(kind), str(value)
        except (OSError, EOFError, ValueError, TypeError, struct.error):
            self.kill()
            return "error", _died(self.proc.returncode or 0, budget)
        except BaseException:  # interrupted with a reply pending: it must reach no other answer
            self.kill()
            raise

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                f.close()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None


class SanitizerPool:
    """Worker processes, started as threads need them (at most `size` at once) and kept for the
    next answer; a worker that died or was killed is replaced by a fresh one."""

    def __init__(
        self, size: int | None = None, target: str = TARGET, memory_bytes: int = MEMORY_BYTES
    ) -> None:
        self.size = max(1, size or len(os.sched_getaffinity(0)))
        self.target, self.memory_bytes = target, memory_bytes
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(self.size)
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()

    def _take(self) -> _Worker:
        while True:
            try:
                worker = self._idle.get_nowait()
            except queue.Empty:
                break
            if worker.alive:
                return worker
            self._drop(worker)  # died while idle (the OOM killer, a stray signal)
        worker = _Worker(self.target, self.memory_bytes)
        with self._lock:
            self._all.add(worker)
        return worker

    def _drop(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._all.discard(worker)

    def sanitize(
        self, text: str, entry: str, budget: float | None = None, wall: float | None = None
    ) -> tuple[str, str]:
        budget = BUDGET_S if budget is None else budget
        with self._slots:
            try:
                worker = self._take()
            except OSError as exc:  # no process to be had (EMFILE, EAGAIN, ENOMEM, ...)
                return "error", f"cannot start the sanitizer: {exc}"
            done = False
            try:
                # the wall limit only catches a worker that stopped without dying: CPU is the
                # budget, and a loaded machine may take many times that in wall time
                out = worker.call(text, entry, budget, wall or 30 * budget + 30)
                done = True
                return out
            finally:
                if done and worker.alive:
                    self._idle.put(worker)
                else:
                    self._drop(worker)

    def close(self) -> None:
        with self._lock:
            workers, self._all = self._all, set()
        for w in workers:
            w.kill()


_shared: SanitizerPool | None = None
_shared_lock = threading.Lock()


def shared() -> SanitizerPool:
    """The process's pool (workers are started on first use and stopped at exit)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = SanitizerPool()
            atexit.register(_shared.close)
        return _shared


def _without_evalplus_data() -> None:
    """`evalplus.sanitize` imports five helpers of `evalplus.data` for its command line, and
    that module imports `datasets` (1.4 GiB of address space, 1.3 s). The worker only calls
    `sanitize`, so it gets stand-ins that say so if anything ever calls them."""

    def unavailable(*_: Any, **__: Any) -> Any:
        raise RuntimeError("evalplus.data is not loaded in the sanitizer's worker")

    stub = types.ModuleType("evalplus.data")
    for name in ("get_human_eval_plus", "get_mbpp_plus", "load_solutions", "write_directory",
                 "write_jsonl"):  # fmt: skip
        setattr(stub, name, unavailable)
    sys.modules.setdefault("evalplus.data", stub)


def _serve(target: str, memory_bytes: int) -> None:
    """The worker: requests (text, entry point, budget) in, outcomes out, until stdin closes."""
    import importlib
    import resource

    channel = os.dup(1)
    os.dup2(2, 1)  # anything printed goes where stderr goes, never into the channel
    signal.signal(signal.SIGXCPU, signal.SIG_DFL)  # an ignored SIGXCPU would survive exec
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # SIGXCPU would dump core
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    try:  # under memory pressure, a worker goes before the harness
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass
    _without_evalplus_data()
    try:
        module, name = target.split(":")
        fn: Any = getattr(importlib.import_module(module), name)
        fn("", "f", BUDGET_S)  # its imports, before the first answer's budget starts
        broken = None
    except BaseException as exc:  # noqa: BLE001  (said to every request, not lost)
        broken = f"the sanitizer cannot start: {exc!r:.300}"
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    while True:
        try:
            (size,) = _HEAD.unpack(_read_exact(0, _HEAD.size))
            text, entry, budget = marshal.loads(_read_exact(0, size))
        except EOFError:
            return
        used = sum(os.times()[:2])
        soft = int(used + budget) + 2  # whole seconds; the in-process search budget ends first
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
        out: tuple[str, str]
        if broken is not None:
            out = ("error", broken)
        else:
            try:
                out = ("ok", fn(text, entry, budget))
            except (RecursionError, ValueError) as exc:  # the text itself: that answer fails
                out = ("fail", f"evalplus sanitize raised {exc!r:.200}")
            except MemoryError:
                out = ("error", f"the sanitizer ran out of memory ({memory_bytes >> 20} MiB)")
            except BaseException as exc:  # noqa: BLE001  (any other is the harness's failure)
                out = ("error", f"evalplus sanitize raised {exc!r:.200}")
        # after running out of memory the heap may stay fragmented; near a finite hard CPU
        # limit the next budget could not be given: either way a fresh worker takes over
        retire = out[1].startswith("the sanitizer ran out of memory") or (
            hard != resource.RLIM_INFINITY and sum(os.times()[:2]) + budget + 3 > hard
        )
        _write_frame(channel, marshal.dumps((*out, retire)))
        if retire:
            return
