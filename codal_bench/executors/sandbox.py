"""Runs untrusted Python in fresh namespaces, under an unprivileged uid and rlimits.

Layering, outermost first: one ``bwrap`` per worker slot (its own pid/net/ipc/uts namespaces, a
root holding only ``/usr`` read-only, no host file, an environment cleared before it starts,
because a child can read its ancestors' environments through ``/proc``) runs the trusted
`zygote` with just the capabilities it needs to build a sandbox. Every candidate is a fork of
that zygote in **new** mount/pid/net/ipc/uts namespaces of its own, with a fresh ``/proc``, a
fresh size-capped private ``/tmp`` as working directory, rlimits (CPU, address space, file size,
open files, processes, no core dumps), an empty capability bounding set, no_new_privs, and the
slot's unprivileged uid (as root RLIMIT_NPROC is ignored and capabilities would allow remounting
``/``). Forking an interpreter that is already running, rather than starting ``bwrap``,
``setpriv`` and ``python3`` per candidate, saves about 8 ms of CPU per candidate -- more than
most HumanEval+ candidates run. Everything under ``/work``, ``/root``, ``/home``, ``/etc`` and
``/tmp`` of the host is simply not mounted, so data files, caches and result stores are invisible.

Each concurrent run gets its own uid (derived from our pid and a slot number), so the process
limit of one sandbox is not shared with another and a leftover process can be found and killed by
uid alone, from the host, whatever namespace it hides in.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import os
import queue
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codal_bench.types import CodalError, ExecResult

SANDBOX_VERSION = "2"
_UID_BASE = 1_000_000
_SLOTS = 64
_TAIL = 2000
_ZYGOTE = Path(__file__).with_name("zygote.py")


class SandboxUnavailable(CodalError):
    """A tool the sandbox needs is missing; we never fall back to running code unsandboxed."""


@dataclass(frozen=True)
class SandboxLimits:
    """Per-run OS limits. Sizes in bytes."""

    memory_bytes: int = 4 << 30  # EvalPlus allows 4 GiB too, so honest verdicts agree
    file_size_bytes: int = 64 << 20  # also caps what the child can write to stdout/stderr
    tmp_size_bytes: int = 64 << 20
    open_files: int = 64
    processes: int = 32


def _tail(data: bytes) -> str:
    return data[-_TAIL:].decode("utf-8", "replace")


def _parse_lines(out: bytes) -> tuple[list[Any], int]:
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


def _uid_processes(uid: int) -> list[int]:
    """Pids of live processes owned by `uid` (only used after killing a sandbox)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"Uid:"):
                        if int(line.split()[1]) == uid:
                            pids.append(int(entry))
                        break
        except OSError:
            continue
    return pids


# Zygotes are started from this pool's one long-lived thread: ``bwrap --die-with-parent`` ties
# the sandbox to the *thread* that started it (the kernel's parent-death signal fires when that
# thread ends), and the callers' worker threads come and go.
_launcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="codal-sandbox")


@dataclass
class _Zygote:
    proc: subprocess.Popen[bytes]
    sock: socket.socket
    stderr: Any  # a temporary file: why it failed, if it does


def _end(z: _Zygote) -> str:
    """Stop a zygote (its sandbox and every namespace under it go too); return its stderr."""
    z.sock.close()
    z.proc.kill()
    z.proc.wait()
    z.stderr.seek(0)
    text = _tail(z.stderr.read())
    z.stderr.close()
    return text


def _stop(zygotes: dict[int, _Zygote]) -> None:
    for z in list(zygotes.values()):
        _end(z)
    zygotes.clear()


class SandboxExecutor:
    """An `Executor`: runs a Python program in a fresh sandbox per call.

    `run` returns the program's stdout split into JSON lines (``outputs``); it never judges them.
    """

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        python: str = "/usr/bin/python3",
        bwrap: str = "bwrap",
    ) -> None:
        self.limits = limits or SandboxLimits()
        self.python = python
        self._bwrap = shutil.which(bwrap) or ""
        # Last in, first out: a slot used a moment ago has a zygote ready.
        self._slots: queue.LifoQueue[int] = queue.LifoQueue()
        base = _UID_BASE + (os.getpid() % 4_194_304) * _SLOTS
        self.uids = range(base, base + _SLOTS)  # ours alone while this process lives
        for uid in reversed(self.uids):
            self._slots.put(uid)
        self._dir = Path(tempfile.mkdtemp(prefix="codal-sandbox-"))
        os.chmod(self._dir, 0o711)
        self._zygotes: dict[int, _Zygote] = {}
        weakref.finalize(self, shutil.rmtree, self._dir, True)
        self._finalizer = weakref.finalize(self, _stop, self._zygotes)
        self._checked = False
        self._programs: dict[str, Path] = {}
        self._lock = threading.Lock()

    def check(self) -> None:
        """Fail loudly (with the apt packages to install) when the sandbox cannot be built."""
        missing = []
        if not self._bwrap:
            missing.append("bwrap (apt: bubblewrap)")
        if not os.access(self.python, os.X_OK):
            missing.append(f"{self.python} (apt: python3)")
        if missing:
            raise SandboxUnavailable("sandbox unavailable, missing: " + ", ".join(missing))
        if os.geteuid() != 0:
            raise SandboxUnavailable("sandbox needs root (to switch the child to another uid)")

    def identity(self) -> dict[str, Any]:
        return {
            "executor": "bwrap-sandbox",
            "version": SANDBOX_VERSION,
            "python": self.python,
            "limits": self.limits.__dict__,
        }

    def close(self) -> None:
        """Stop the zygotes (they also stop with this process)."""
        _stop(self._zygotes)

    def _program_path(self, program: str) -> tuple[str, Path]:
        key = hashlib.sha256(program.encode()).hexdigest()[:16]
        with self._lock:
            path = self._programs.get(key)
            if path is None:
                path = self._dir / f"prog-{key}.py"
                path.write_text(program)
                os.chmod(path, 0o600)
                self._programs[key] = path
        return key, path

    def _zygote_command(self, uid: int, fd: int) -> list[str]:
        lim = self.limits
        config = {
            "uid": uid,
            "tmp_size": lim.tmp_size_bytes,
            "memory": lim.memory_bytes,
            "file_size": lim.file_size_bytes,
            "open_files": lim.open_files,
            "processes": lim.processes,
            "last_cap": int(Path("/proc/sys/kernel/cap_last_cap").read_text()),
        }
        return [
            self._bwrap,
            "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session",
            "--hostname", "sandbox",
            "--ro-bind", "/usr", "/usr",
            "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
            "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
            "--proc", "/proc", "--dev", "/dev",
            "--perms", "0755", "--dir", "/tmp",
            "--perms", "0755", "--dir", "/run", "--ro-bind", str(_ZYGOTE), "/run/zygote.py",
            "--chdir", "/", "--clearenv",
            "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp",
            "--setenv", "TMPDIR", "/tmp", "--setenv", "LANG", "C.UTF-8",
            # what building a candidate's sandbox takes, and nothing else
            "--cap-drop", "ALL", "--cap-add", "CAP_SYS_ADMIN", "--cap-add", "CAP_SETUID",
            "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP",
            "--",
            self.python, "-I", "-S", "/run/zygote.py", str(fd),
            marshal.dumps(config, 4).hex(),
        ]  # fmt: skip

    def _zygote(self, uid: int) -> _Zygote:
        z = self._zygotes.get(uid)
        if z is not None and z.proc.poll() is None:
            return z
        if z is not None:
            self._discard_zygote(uid)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}  # nothing of ours leaks in
        try:
            err = tempfile.TemporaryFile(dir=self._dir)
            proc = _launcher.submit(
                lambda: subprocess.Popen(
                    self._zygote_command(uid, theirs.fileno()),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    env=env,
                    pass_fds=(theirs.fileno(),),
                    start_new_session=True,
                )
            ).result()
        finally:
            theirs.close()
        z = self._zygotes[uid] = _Zygote(proc, ours, err)
        # It says "ready" once it runs; anything else means no sandbox can be built here.
        if not select.select([ours], [], [], 30.0)[0] or ours.recv(16) != b"ready":
            why = self._discard_zygote(uid) or "no answer in 30 s"
            raise SandboxUnavailable(f"the sandbox did not start: {why.strip()}")
        return z

    def _discard_zygote(self, uid: int) -> str:
        z = self._zygotes.pop(uid, None)
        return _end(z) if z is not None else ""

    def run(
        self,
        program: str,
        stdin: bytes,
        cpu_s: float,
        wall_s: float,
        watch: Callable[[bytes], None] | None = None,
    ) -> ExecResult:
        """Run `program` with `stdin`; kill the whole sandbox at `cpu_s` CPU or `wall_s` wall.

        `watch`, if given, is called a few times a second with the stdout written since (for
        progress reports; its complete lines only when the program writes whole lines).
        """
        if not self._checked:
            self.check()  # once: never run anything unsandboxed or half-sandboxed
            self._checked = True
        key, prog = self._program_path(program)
        uid = self._slots.get()
        try:
            return self._run(key, prog, uid, stdin, cpu_s, wall_s, watch)
        finally:
            self._slots.put(uid)

    def _run(
        self,
        key: str,
        prog: Path,
        uid: int,
        stdin: bytes,
        cpu_s: float,
        wall_s: float,
        watch: Callable[[bytes], None] | None,
    ) -> ExecResult:
        cpu_limit = max(1, int(cpu_s + 0.999))  # RLIMIT_CPU counts whole seconds
        z = self._zygote(uid)
        with (
            tempfile.TemporaryFile(dir=self._dir) as fin,
            tempfile.TemporaryFile(dir=self._dir) as fout,
            tempfile.TemporaryFile(dir=self._dir) as ferr,
            open(prog, "rb") as fprog,
        ):
            fin.write(stdin)
            fin.flush()
            fin.seek(0)
            t0 = time.monotonic()
            fds = [fin.fileno(), fout.fileno(), ferr.fileno(), fprog.fileno()]
            try:
                socket.send_fds(z.sock, [marshal.dumps((key, cpu_limit), 4)], fds)
            except OSError:
                why = self._discard_zygote(uid)
                raise SandboxUnavailable(f"the sandbox did not start: {why}") from None
            timed_out = False
            if watch is None:
                answered = bool(select.select([z.sock], [], [], wall_s)[0])
            else:
                answered = self._watch(z.sock.fileno(), fout.fileno(), t0 + wall_s, watch)
            if not answered:
                timed_out = True
                self._sweep(uid)
            reply = self._reply(z)
            wall = time.monotonic() - t0
            if reply is None and not timed_out:  # nothing the candidate can do kills the zygote
                why = self._discard_zygote(uid) or "no report"
                raise SandboxUnavailable(f"the sandbox stopped: {why.strip()}")
            code, cpu, setup_failed = reply or (128 + signal.SIGKILL, 0.0, False)
            if reply is None:
                self._discard_zygote(uid)
            if timed_out or code != 0:
                self._sweep(uid)
            out = self._read(fout)
            err = self._read(ferr)
        if setup_failed:  # the candidate never ran: nothing it wrote can cause this
            raise SandboxUnavailable(_tail(err).strip() or "sandbox setup failed")
        outputs, bad = _parse_lines(out)
        if timed_out:
            status_s, detail = "timeout", f"wall-clock limit {wall_s:.1f}s"
        elif code in (128 + signal.SIGXCPU, 128 + signal.SIGKILL) and cpu >= 0.9 * cpu_limit:
            status_s, detail = "timeout", f"CPU limit {cpu_s:.1f}s"
        elif code != 0:
            status_s, detail = "error", f"exit status {code}"
        else:
            status_s, detail = "ok", ""
        if bad:
            detail = (detail + f"; {bad} malformed output lines").lstrip("; ")
        return ExecResult(
            status=status_s,
            outputs=outputs,
            stdout_tail=_tail(out),
            stderr_tail=_tail(err),
            cpu_s=cpu,
            wall_s=wall,
            exit_code=code,
            detail=detail,
        )

    @staticmethod
    def _reply(z: _Zygote) -> tuple[int, float, bool] | None:
        """The zygote's report on the candidate; None (and a zygote to restart) if it has none.

        After a kill the report comes as soon as the candidate's namespace is gone; a zygote
        that cannot give it in 10 s is stopped by the caller, which takes every namespace under
        it along.
        """
        if select.select([z.sock], [], [], 10.0)[0]:
            try:
                data = z.sock.recv(256)
                code, cpu, failed = marshal.loads(data)
                return int(code), float(cpu), bool(failed)
            except (OSError, EOFError, ValueError, TypeError):
                pass
        return None

    @staticmethod
    def _watch(sock: int, fd: int, deadline: float, watch: Callable[[bytes], None]) -> bool:
        """Wait for the zygote's report (True) or the deadline (False), passing new output on."""
        seen = 0
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([sock], [], [], max(0.0, min(0.25, left)))
            size = os.fstat(fd).st_size
            if size > seen:  # pread: the child shares this file's offset
                chunk = os.pread(fd, size - seen, seen)
                seen += len(chunk)
                watch(chunk)
            if ready:
                return True
            if left <= 0:
                return False

    def _read(self, f: Any) -> bytes:
        f.seek(0)
        data: bytes = f.read(self.limits.file_size_bytes + 1)
        return data

    def _sweep(self, uid: int) -> None:
        """Kill every process of this slot's uid, in whatever namespace, until none is left."""
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            pids = _uid_processes(uid)
            if not pids:
                return
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.01)
