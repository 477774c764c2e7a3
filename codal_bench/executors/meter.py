# ruff: noqa: UP031  (%-formatting, like child.py: no str.format machinery needed)
# mypy: ignore-errors
# (Runs under the system python inside the outer sandbox, as the head of the zygote's source.)
"""The supervisor's side of a candidate's limits: its CPU and run-queue wait read from outside.

The sandbox runs this file's source in front of zygote.py's, in one interpreter started with
``-I -S`` (standard library only, no import path into the checkout). The supervisor (see
zygote.py) meters each step of a session: CPU from the candidate's process clock, wait from its
threads' ``/proc/PID/task/*/schedstat``; a step that uses more CPU than allowed, or spends longer
than allowed *not* waiting for a CPU, is stopped.
"""

import bisect
import marshal
import os
import select
import struct
import time

OK, CPU, WALL, EXITED, TOO_BIG = 0, 1, 2, 3, 4


def _read_exact(fd, n):
    buf = b""
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


class _Meter:
    """The candidate's CPU clock and run-queue wait, read from outside it, and its limits."""

    def __init__(self, pid):
        self.clock = (~pid << 3) | 2  # MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)
        self.tasks = "/proc/%d/task" % pid
        self.last = 0.0
        self.end = None  # CPU clock when the last step ended: what it burns between steps counts
        self.threads = {}  # thread id -> [first seen, last seen, wait then, wait now]

    def cpu(self):
        try:
            self.last = time.clock_gettime(self.clock)
        except OSError:  # gone: its last reading stands
            pass
        return self.last

    def _read_waits(self, first=False):
        now = time.monotonic()
        try:
            tids = os.listdir(self.tasks)
        except OSError:
            tids = []
        for tid in tids[:256]:
            try:
                with open("%s/%s/schedstat" % (self.tasks, tid), "rb") as f:
                    w = int(f.read().split()[1]) / 1e9
            except (OSError, ValueError, IndexError):
                continue
            t = self.threads.get(tid)
            if t is None:  # a thread born in this step: all its wait is the step's
                self.threads[tid] = [now, now, w if first else 0.0, w]
            else:
                t[1], t[3] = now, w
        self.read_at = now
        self.credit = self._credit()

    def _credit(self):
        """Run-queue wait to forgive: the largest total over threads whose lives (as seen in
        readings ~20 ms apart) do not overlap. The answer's work may sit in worker threads
        started one after another while the main thread blocks on them: their waits add up.
        Threads alive at the same time waited for the same span, so only one of them counts
        (adding them up let 28 threads woken together buy minutes of sleep with a second of
        CPU). A thread's wait is reported late (when it gets a CPU), so it is not split by
        time either."""
        spans = sorted((t[1], t[0], t[3] - t[2]) for t in self.threads.values())
        ends = [e for e, _, _ in spans]
        best = [0.0]
        for i, (_, start, w) in enumerate(spans):
            best.append(max(best[i], w + best[bisect.bisect_left(ends, start, 0, i)]))
        # Readings miss some of it (a thread's wait shows only once it runs again): overlapping
        # waits may add up to as much again as the CPU the answer spent, which keeps honest
        # threaded work whole and costs a pump of waiting threads its own CPU.
        total = sum(w for _, _, w in spans)
        return min(total, best[-1] + self.cpu() - self.cs)

    def waited(self, fresh=False):
        """Time since `start` that the answer spent waiting for a CPU (see `_credit`)."""
        now = time.monotonic()
        if fresh or now - self.read_at >= 0.02:  # not on every wake-up: output comes in chunks
            self._read_waits()
        return min(self.credit, now - self.t0)

    def start(self, cpu_limit, wall_limit):
        self.threads = {}
        self.cs, self.t0 = self.cpu(), time.monotonic()
        # A step is charged the CPU used since the previous step ended, not since it began: a
        # thread spinning while the parent judges a reply would otherwise run for free.
        self.c0 = self.cs if self.end is None else min(self.end, self.cs)
        self._read_waits(first=True)
        self.cpu_limit, self.wall_limit = cpu_limit, wall_limit

    def check(self):
        """(CPU or WALL or None, CPU used, seconds to sleep before checking again). Wall time the
        candidate spent waiting for a CPU does not count: only time it was off the run queue."""
        used = self.cpu() - self.c0
        if used > self.cpu_limit:
            return CPU, used, 0.0
        elapsed = time.monotonic() - self.t0
        # Every tick: a thread's wait vanishes with it, so read threads while they live.
        left = self.wall_limit - (elapsed - self.waited())
        if left < 0:
            left = self.wall_limit - (elapsed - self.waited(fresh=True))
            if left < 0:
                return WALL, used, 0.0
        tick = 0.1 if len(self.threads) <= 1 else 0.02
        return None, used, min(self.cpu_limit - used, left, tick) + 0.001


def _session(meter, pidfd, ctl, to_child, from_child):
    """Relay the parent's steps to the candidate and its reply frames back, metering each step.

    Returns why the candidate was stopped: b"d" (the parent is done), b"c"/b"w" (a limit),
    b"x" (it exited or broke the protocol)."""
    os.set_blocking(to_child, False)
    pending = b""
    while True:
        head = _read_exact(ctl, 4)
        body = head and _read_exact(ctl, struct.unpack("<I", head)[0])
        if not body:
            return b"d"  # the parent is done: the candidate goes
        payload, cpu_limit, wall_limit, cap = marshal.loads(body)
        out = memoryview(struct.pack("<I", len(payload)) + payload)
        need = None
        status = OK
        meter.start(cpu_limit, wall_limit)
        while True:
            if need is None and len(pending) >= 4:
                need = struct.unpack("<I", pending[:4])[0]
                if need > cap:
                    status = TOO_BIG
                    break
            if need is not None and len(pending) >= 4 + need:
                break
            hit, used, sleep = meter.check()
            if hit is not None:
                status = hit
                break
            r, w, _ = select.select([from_child, pidfd], [to_child] if out else [], [], sleep)
            if w:
                try:
                    out = out[os.write(to_child, out[: 1 << 16]) :]
                except BlockingIOError:
                    pass
                except OSError:
                    out = memoryview(b"")
            if from_child in r:
                chunk = os.read(from_child, 1 << 16)
                if not chunk:
                    status = EXITED
                    break
                pending += chunk
            elif pidfd in r:
                status = EXITED
                break
        used = meter.cpu() - meter.c0
        meter.end = meter.last
        elapsed = time.monotonic() - meter.t0
        active = max(used, elapsed - meter.waited(fresh=True))  # off the run queue
        reply = b""
        if status == OK:
            reply = pending[4 : 4 + need]
            pending = pending[4 + need :]
        answer = marshal.dumps((status, used, elapsed, reply, active))
        os.write(ctl, struct.pack("<I", len(answer)) + answer)
        if status != OK:
            return b"c" if status == CPU else b"w" if status == WALL else b"x"
