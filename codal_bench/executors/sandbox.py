"""Runs untrusted Python under bubblewrap, an unprivileged uid and rlimits.

Layering, outermost first: ``bwrap`` (fresh pid/net/ipc/uts namespaces, a root holding only
``/usr`` read-only, a fresh ``/proc``, a size-capped private ``/tmp`` as the working directory),
rlimits (CPU, address space, file size, open files, processes, no core dumps) that we set on the
sandbox's first process while bwrap holds it before exec (``--info-fd``/``--block-fd``), ``setpriv``
(switch to an unprivileged uid: as root RLIMIT_NPROC is ignored and capabilities would allow
remounting ``/``; the uid switch clears them and we empty the bounding set too), then
``python3 -I -S``. The environment is scrubbed before bwrap starts, because a child can read its
ancestors' environments through ``/proc``. Everything under ``/work``, ``/root``, ``/home``,
``/etc`` and ``/tmp`` of the host is simply not mounted, so data files, caches and result stores
are invisible.

Each concurrent run gets its own uid (derived from our pid and a slot number), so the process
limit of one sandbox is not shared with another and a leftover process can be found and killed by
uid alone.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import marshal
import os
import queue
import resource
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codal_bench.types import CodalError, ExecResult

SANDBOX_VERSION = "1"
_UID_BASE = 1_000_000
_SLOTS = 64
_TAIL = 2000


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
        self._setpriv = shutil.which("setpriv") or ""
        self._slots: queue.SimpleQueue[int] = queue.SimpleQueue()
        base = _UID_BASE + (os.getpid() % 4_194_304) * _SLOTS
        self.uids = range(base, base + _SLOTS)  # ours alone while this process lives
        for uid in self.uids:
            self._slots.put(uid)
        self._dir = Path(tempfile.mkdtemp(prefix="codal-sandbox-"))
        os.chmod(self._dir, 0o711)
        weakref.finalize(self, shutil.rmtree, self._dir, True)
        self._checked = False
        self._programs: dict[str, Path] = {}
        self._lock = threading.Lock()
        self._magic: bytes | None = None

    def check(self) -> None:
        """Fail loudly (with the apt packages to install) when the sandbox cannot be built."""
        missing = [
            name
            for name, path in (
                ("bwrap (apt: bubblewrap)", self._bwrap),
                ("setpriv (apt: util-linux)", self._setpriv),
            )
            if not path
        ]
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

    def _target_magic(self) -> bytes:
        """The sandbox interpreter's bytecode magic number (b"" if it cannot be asked)."""
        if self._magic is None:
            probe = (
                "import sys, _frozen_importlib_external as m\n"
                "sys.stdout.buffer.write(m.MAGIC_NUMBER)\n"
            )
            try:
                done = subprocess.run(
                    [self.python, "-I", "-S", "-c", probe], capture_output=True, timeout=30
                )
                self._magic = done.stdout if done.returncode == 0 else b""
            except (OSError, subprocess.SubprocessError):
                self._magic = b""
        return self._magic

    def _program_path(self, program: str) -> Path:
        """The program as a file to mount: compiled (``.pyc``) when this interpreter's bytecode
        is the sandbox interpreter's, so that no run pays for compiling it again."""
        key = hashlib.sha256(program.encode()).hexdigest()[:16]
        with self._lock:
            path = self._programs.get(key)
            if path is None:
                path = self._dir / f"prog-{key}.py"
                path.write_text(program)
                os.chmod(path, 0o644)
                if self._target_magic() == importlib.util.MAGIC_NUMBER:
                    try:
                        code = compile(program, "/run/program.py", "exec", dont_inherit=True)
                    except (SyntaxError, ValueError):
                        pass  # run the source: the program reports its own error
                    else:
                        header = importlib.util.MAGIC_NUMBER + bytes(8)
                        header += (len(program.encode()) & 0xFFFFFFFF).to_bytes(4, "little")
                        path = path.with_suffix(".pyc")
                        path.write_bytes(header + marshal.dumps(code))
                        os.chmod(path, 0o644)
                self._programs[key] = path
        return path

    def _command(self, prog: Path, uid: int, info_fd: int, block_fd: int) -> list[str]:
        main = "program.pyc" if prog.suffix == ".pyc" else "program.py"
        return [
            self._bwrap,
            # bwrap reports the sandbox's pid, then waits before exec until we have set its
            # rlimits (one exec fewer than running prlimit inside).
            "--info-fd", str(info_fd), "--block-fd", str(block_fd),
            "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--as-pid-1",
            "--hostname", "sandbox",
            "--ro-bind", "/usr", "/usr",
            "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
            "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
            "--proc", "/proc", "--dev", "/dev",
            "--perms", "1777", "--size", str(self.limits.tmp_size_bytes), "--tmpfs", "/tmp",
            "--perms", "0755", "--dir", "/run", "--ro-bind", str(prog), f"/run/{main}",
            "--chdir", "/tmp", "--clearenv",
            "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp",
            "--setenv", "TMPDIR", "/tmp", "--setenv", "LANG", "C.UTF-8",
            "--",
            self._setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs",
            self.python, "-I", "-S", f"/run/{main}",
        ]  # fmt: skip

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
        prog = self._program_path(program)
        uid = self._slots.get()
        try:
            return self._run(prog, uid, stdin, cpu_s, wall_s, watch)
        finally:
            self._slots.put(uid)

    def _run(
        self,
        prog: Path,
        uid: int,
        stdin: bytes,
        cpu_s: float,
        wall_s: float,
        watch: Callable[[bytes], None] | None,
    ) -> ExecResult:
        cpu_limit = max(1, int(cpu_s + 0.999))  # RLIMIT_CPU counts whole seconds
        info_r, info_w = os.pipe()
        block_r, block_w = os.pipe()
        cmd = self._command(prog, uid, info_w, block_r)
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}  # nothing of ours leaks in
        with (
            tempfile.TemporaryFile(dir=self._dir) as fin,
            tempfile.TemporaryFile(dir=self._dir) as fout,
            tempfile.TemporaryFile(dir=self._dir) as ferr,
        ):
            fin.write(stdin)
            fin.seek(0)
            t0 = time.monotonic()
            try:
                proc = subprocess.Popen(
                    cmd, stdin=fin, stdout=fout, stderr=ferr, env=env, start_new_session=True,
                    pass_fds=(info_w, block_r),
                )  # fmt: skip
            finally:
                os.close(info_w)
                os.close(block_r)
            try:
                self._limit(info_r, cpu_limit)
            except BaseException:
                self._kill(proc.pid, uid)
                proc.wait()
                raise
            finally:
                os.close(info_r)
                os.write(block_w, b"1")  # the sandbox may exec now (or find its parent gone)
                os.close(block_w)
            timed_out = False
            pidfd = os.pidfd_open(proc.pid)
            try:
                if watch is None:
                    exited = bool(select.select([pidfd], [], [], wall_s)[0])
                else:
                    exited = self._watch(pidfd, fout.fileno(), t0 + wall_s, watch)
                if not exited:
                    timed_out = True
                    self._kill(proc.pid, uid)
                _, status, usage = os.wait4(proc.pid, 0)
            finally:
                os.close(pidfd)
            proc.returncode = os.waitstatus_to_exitcode(status)
            wall = time.monotonic() - t0
            cpu = usage.ru_utime + usage.ru_stime
            if timed_out or proc.returncode != 0:
                self._sweep(uid)
            out = self._read(fout)
            err = self._read(ferr)
        outputs, bad = _parse_lines(out)
        code = proc.returncode
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
    def _watch(pidfd: int, fd: int, deadline: float, watch: Callable[[bytes], None]) -> bool:
        """Wait for the exit (True) or the deadline (False), passing new output to `watch`."""
        seen = 0
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([pidfd], [], [], max(0.0, min(0.25, left)))
            size = os.fstat(fd).st_size
            if size > seen:  # pread: the child shares this file's offset
                chunk = os.pread(fd, size - seen, seen)
                seen += len(chunk)
                watch(chunk)
            if ready:
                return True
            if left <= 0:
                return False

    def _limit(self, info_fd: int, cpu_limit: int) -> None:
        """Set the rlimits of the sandbox's pid 1 while it waits before exec.

        They are inherited by everything the sandbox runs. RLIMIT_NPROC holds because the
        program then runs under its own unprivileged uid (setpriv).
        """
        data = b""
        deadline = time.monotonic() + 30.0
        while b"}" not in data:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([info_fd], [], [], left)[0]:
                raise SandboxUnavailable("bwrap did not report the sandbox's pid in time")
            chunk = os.read(info_fd, 4096)
            if not chunk:
                raise SandboxUnavailable(f"bwrap failed to start the sandbox ({data!r})")
            data += chunk
        pid = int(json.loads(data[: data.index(b"}") + 1])["child-pid"])
        lim = self.limits
        for res, value in (
            (resource.RLIMIT_CPU, cpu_limit),
            (resource.RLIMIT_AS, lim.memory_bytes),
            (resource.RLIMIT_FSIZE, lim.file_size_bytes),
            (resource.RLIMIT_NOFILE, lim.open_files),
            (resource.RLIMIT_NPROC, lim.processes),
            (resource.RLIMIT_CORE, 0),
        ):
            resource.prlimit(pid, res, (value, value))

    def _read(self, f: Any) -> bytes:
        f.seek(0)
        data: bytes = f.read(self.limits.file_size_bytes + 1)
        return data

    def _kill(self, pid: int, uid: int) -> None:
        """Kill the sandbox's pid-namespace init (which takes every process inside with it)."""
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            children = []
        fds = []
        for child in children:
            try:
                fds.append(os.pidfd_open(int(child)))
            except OSError:
                pass
        for fd in fds:
            try:
                signal.pidfd_send_signal(fd, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if fds:
            select.select(fds, [], [], 5.0)
        for fd in fds:
            os.close(fd)

    def _sweep(self, uid: int) -> None:
        """Make sure nothing of this slot's uid survives before the slot is reused."""
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
