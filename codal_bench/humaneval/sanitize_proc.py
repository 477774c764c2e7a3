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
("error", why) for anything else (budget, memory, a dead worker): no verdict, graded again.

The workers parse text; they never run it. They run as the harness's user: a worker is a bound
on cost and a firewall for crashes, not a security boundary against a parser exploit.
"""

from __future__ import annotations

import atexit
import marshal
import os
import queue
import resource
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from typing import Any

from .sanitize_fast import BUDGET_S

MEMORY_BYTES = 4 << 30  # a worker's address space: tree-sitter's tree of a few MB of text fits
TARGET = "codal_bench.humaneval.sanitize_fast:sanitize"
_HEAD = struct.Struct("<I")


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
    data = memoryview(_HEAD.pack(len(payload)) + payload)
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
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", __name__, target, str(memory_bytes)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
        )  # fmt: skip
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.to, self.back = self.proc.stdin.fileno(), self.proc.stdout.fileno()

    def call(self, text: str, entry: str, budget: float, wall: float) -> tuple[str, str]:
        try:
            _write_frame(self.to, marshal.dumps((text, entry, budget)))
            deadline = time.monotonic() + wall
            ready: list[int] = []
            while not ready and (left := deadline - time.monotonic()) > 0:
                ready, _, _ = select.select([self.back], [], [], left)
            if not ready:
                self.kill()
                return "error", f"the sanitizer gave no answer within {wall:g} s"
            (size,) = _HEAD.unpack(_read_exact(self.back, _HEAD.size))
            kind, value = marshal.loads(_read_exact(self.back, size))
            return str(kind), str(value)
        except (OSError, EOFError, ValueError, TypeError, struct.error):
            self.kill()
            return "error", _died(self.proc.returncode or 0, budget)

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
        self.size = max(1, size or os.cpu_count() or 1)
        self.target, self.memory_bytes = target, memory_bytes
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(self.size)
        self._all: list[_Worker] = []
        self._lock = threading.Lock()

    def sanitize(
        self, text: str, entry: str, budget: float | None = None, wall: float | None = None
    ) -> tuple[str, str]:
        budget = BUDGET_S if budget is None else budget
        with self._slots:
            try:
                worker = self._idle.get_nowait()
            except queue.Empty:
                worker = _Worker(self.target, self.memory_bytes)
                with self._lock:
                    self._all.append(worker)
            try:
                # the wall limit only catches a worker that stopped without dying: CPU is the
                # budget, and a loaded machine may take many times that in wall time
                return worker.call(text, entry, budget, wall or 30 * budget + 30)
            finally:
                if worker.alive:
                    self._idle.put(worker)
                else:
                    with self._lock:
                        self._all.remove(worker)

    def close(self) -> None:
        with self._lock:
            workers, self._all = self._all, []
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


def _serve(target: str, memory_bytes: int) -> None:
    """The worker: requests (text, entry point, budget) in, outcomes out, until stdin closes."""
    import importlib

    channel = os.dup(1)
    os.dup2(2, 1)  # anything printed goes where stderr goes, never into the channel
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # SIGXCPU would dump core
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    module, name = target.split(":")
    fn: Any = getattr(importlib.import_module(module), name)
    fn("", "f", BUDGET_S)  # its imports, before the first answer's budget starts
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
        try:
            out = ("ok", fn(text, entry, budget))
        except (RecursionError, ValueError) as exc:  # the text itself: that answer fails
            out = ("fail", f"evalplus sanitize raised {exc!r:.200}")
        except MemoryError:
            out = ("error", f"the sanitizer ran out of memory ({memory_bytes >> 20} MiB)")
        except BaseException as exc:  # noqa: BLE001  (any other is the harness's failure)
            out = ("error", f"evalplus sanitize raised {exc!r:.200}")
        _write_frame(channel, marshal.dumps(out))


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]))
