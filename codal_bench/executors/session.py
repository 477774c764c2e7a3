"""The parent's side of a sandboxed conversation, and helpers for what programs write.

A `Session` talks to the trusted supervisor of one answer: each `step` sends a payload with a
CPU limit, a wall limit (time off the run queue) and a cap on the reply; the supervisor passes
the payload to the program, meters it, and answers with the program's one reply frame (at most
`cap` bytes) or why there is none. Nothing the program writes reaches the parent but that
frame, so a hostile answer costs the parent at most `cap` bytes per step.
"""

from __future__ import annotations

import json
import marshal
import os
import select
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from codal_bench.types import CodalError


class SandboxUnavailable(CodalError):
    """The sandbox cannot be built here; we never fall back to running code unsandboxed."""


_TAIL = 2000
_STATUS = {0: "ok", 1: "cpu", 2: "wall", 3: "exited", 4: "too_big"}


def tail(data: bytes) -> str:
    return data[-_TAIL:].decode("utf-8", "replace")


def parse_lines(out: bytes) -> tuple[list[Any], int]:
    """One JSON value per line; all lines in one `json.loads` when they are all well formed."""
    lines = out.decode("utf-8", "replace").splitlines()
    try:
        values = json.loads("[" + ",".join(lines) + "]")
        if isinstance(values, list) and len(values) == len(lines):
            return values, 0
    except (ValueError, RecursionError):
        pass
    outputs: list[Any] = []
    bad = 0
    for line in lines:
        try:
            outputs.append(json.loads(line))
        except (ValueError, RecursionError):
            bad += 1
    return outputs, bad


def readable(obj: Any, timeout: float) -> bool:
    """Whether `obj` (a descriptor or anything with `fileno()`) becomes readable, or hangs up,
    within `timeout` seconds. poll, not select: select() refuses descriptors past 1024, which a
    harness holds beside an in-process engine or with many files open."""
    waiter = select.poll()
    waiter.register(obj, select.POLLIN)
    deadline = time.monotonic() + timeout
    while True:  # poll() takes at most 2**31-1 ms; a generous limit may be longer (red team 8)
        left = deadline - time.monotonic()
        if waiter.poll(min(max(0.0, left), 86400.0) * 1000):
            return True
        if left <= 86400.0:
            return False


def tail_of(f: Any) -> str:
    """The last characters a file holds, reading no more than those."""
    size = os.fstat(f.fileno()).st_size
    return tail(os.pread(f.fileno(), 4000, max(0, size - 4000)))


def watch_output(sock: int, fd: int, watch: Callable[[bytes], None]) -> None:
    """Until `sock` is readable (the zygote reports), pass output new in file `fd` on to
    `watch` a few times a second."""
    seen = 0
    while True:
        ready = readable(sock, 0.25)
        size = os.fstat(fd).st_size
        if size > seen:  # pread: the child shares this file's offset
            chunk = os.pread(fd, min(size - seen, 1 << 20), seen)
            seen += len(chunk)
            watch(chunk)
        if ready:
            return


@dataclass
class Step:
    """One step's outcome: "ok" (with the reply), "cpu" / "wall" (a limit: the program was
    killed), "exited" (it ended or broke the protocol), "too_big" (reply over the cap), "lost"
    (the sandbox itself stopped answering: no verdict on the program)."""

    status: str
    reply: bytes
    cpu_s: float
    wall_s: float
    active_s: float = 0.0  # wall time the program was not waiting for a CPU (load-independent)


@dataclass
class SessionEnd:
    exit_code: int
    cpu_s: float
    stderr_tail: str


class Session:
    """One answer's program, alive between steps. Any status but "ok" ends it."""

    def __init__(
        self,
        sock: socket.socket,
        stderr: Any,
        finish: Callable[[], tuple[int, float, bool, str]],
    ) -> None:
        self._sock = sock
        self._stderr = stderr
        self._finish = finish
        self.alive = True
        self._end: SessionEnd | None = None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def step(self, payload: bytes, cpu_s: float, wall_s: float, cap: int) -> Step:
        if not self.alive:
            return Step("exited", b"", 0.0, 0.0)
        body = marshal.dumps((payload, float(cpu_s), float(wall_s), int(cap)), 4)
        try:
            self._sock.sendall(struct.pack("<I", len(body)) + body)
            head = self._read(4, max(60.0, 20 * wall_s))
            size = struct.unpack("<I", head)[0] if head else 0
            answer = self._read(size, 30.0) if 0 < size <= cap + 4096 else None
        except OSError:
            answer = None
        if answer is None:  # the supervisor (trusted) went silent: not the answer's doing
            self.alive = False
            return Step("lost", b"", 0.0, 0.0)
        status, cpu, wall, reply, active = marshal.loads(answer)  # the supervisor is trusted
        step = Step(_STATUS.get(status, "exited"), reply, float(cpu), float(wall), float(active))
        if step.status != "ok":
            self.alive = False
        return step

    def _read(self, n: int, timeout: float) -> bytes | None:
        buf = bytearray()
        while len(buf) < n:
            if not readable(self._sock, timeout):
                return None
            chunk = self._sock.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def close(self) -> SessionEnd:
        """End the program (if still running) and report how it ended."""
        if self._end is None:
            self.alive = False
            self._sock.close()
            try:
                code, cpu, failed, _ = self._finish()
                err = tail_of(self._stderr)
            finally:
                self._stderr.close()
            if failed:
                raise SandboxUnavailable(err.strip() or "sandbox setup failed")
            self._end = SessionEnd(code, cpu, err)
        return self._end
