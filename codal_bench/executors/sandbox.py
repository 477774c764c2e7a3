"""Runs untrusted Python in fresh namespaces under limits enforced from outside it.

Layering, outermost first: one ``bwrap`` per worker slot (its own pid/net/ipc/uts namespaces
and, without root, its own user namespace; a read-only root holding only ``/usr/bin``,
``/usr/lib`` and ``/usr/lib64`` of the host, read-only ``/dev``, no host file, an environment
cleared before it starts) runs the trusted `zygote` with just the capabilities it needs to build
a sandbox. Each answer is a fork of that zygote: a trusted supervisor, and under it the answer
as pid 1 of fresh mount/pid/net/ipc/uts/**user** namespaces with a private size-capped ``/tmp``,
rlimits, a fresh session keyring, no capabilities, no_new_privs and the `seccomp` filter (one
process: no fork, no exec, no memfd). The supervisor measures the answer's CPU time and its
time off the run queue and kills it (its whole pid namespace, nothing else) at the limits.

Forking an interpreter that is already running, rather than starting ``bwrap`` and ``python3``
per answer, saves about 8 ms of CPU per answer -- more than most benchmark answers run.

Two ways to run a program: `run` (stdin in, JSON lines out, one CPU/wall limit) and `session`
(length-framed steps, each with its own CPU/wall limit and a cap on its reply; no round trip
between steps beyond the step itself).
"""

from __future__ import annotations

import hashlib
import marshal
import os
import queue
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

from codal_bench.executors import seccomp
from codal_bench.executors.session import (
    SandboxUnavailable,
    Session,
    parse_lines,
    readable,
    tail,
    tail_of,
    watch_output,
)
from codal_bench.types import ExecResult

SANDBOX_VERSION = "5"
_SLOTS = 64
# meter.py's source first: the zygote runs as one `-c` program with no import path
_ZYGOTE_SOURCE = "\n\n".join(
    Path(__file__).with_name(name).read_text() for name in ("meter.py", "zygote.py")
)
_USR = ("bin", "lib", "lib64")  # what the system python needs; nothing else of /usr
_USERNS_KNOBS = (
    ("/proc/sys/kernel/unprivileged_userns_clone", "0",
     "sysctl -w kernel.unprivileged_userns_clone=1"),
    ("/proc/sys/user/max_user_namespaces", "0", "sysctl -w user.max_user_namespaces=15000"),
    ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1",
     "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"),
)  # fmt: skip


@dataclass(frozen=True)
class SandboxLimits:
    """Per-answer OS limits. Sizes in bytes."""

    memory_bytes: int = 4 << 30  # EvalPlus allows 4 GiB too, so honest verdicts agree
    file_size_bytes: int = 64 << 20  # also caps what the child can write to stdout/stderr
    tmp_size_bytes: int = 64 << 20
    # Files and folders in the private /tmp: an empty file takes no data blocks but ~1 KB of
    # kernel memory that no process owns (tmpfs's default is half of RAM's pages).
    tmp_inodes: int = 4096
    open_files: int = 64
    processes: int = 32  # threads of an answer; processes only for `run(..., forks=n)`


# Zygotes are started from this pool's one long-lived thread: ``bwrap --die-with-parent`` ties
# the sandbox to the *thread* that started it (the kernel's parent-death signal fires when that
# thread ends), and the callers' worker threads come and go.
_launcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="codal-eval-sandbox")


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
    text = tail(z.stderr.read())
    z.stderr.close()
    return text


def _stop(zygotes: dict[int, _Zygote]) -> None:
    for z in list(zygotes.values()):
        _end(z)
    zygotes.clear()


def rootless() -> bool:
    return os.geteuid() != 0


class SandboxExecutor:
    """An `Executor`: runs a Python program in a fresh sandbox per call; never judges output."""

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        python: str = "/usr/bin/python3",
        bwrap: str = "bwrap",
    ) -> None:
        self.limits = limits or SandboxLimits()
        self.python = python
        self.rootless = rootless()
        self._bwrap = shutil.which(bwrap) or ""
        # Last in, first out: a slot used a moment ago has a zygote ready.
        self._slots: queue.LifoQueue[int] = queue.LifoQueue()
        for slot in reversed(range(_SLOTS)):
            self._slots.put(slot)
        self._dir = Path(tempfile.mkdtemp(prefix="codal-eval-sandbox-"))
        self._zygotes: dict[int, _Zygote] = {}
        weakref.finalize(self, shutil.rmtree, self._dir, True)
        self._finalizer = weakref.finalize(self, _stop, self._zygotes)
        self._checked = False
        self._programs: dict[str, Path] = {}
        self._lock = threading.Lock()

    def check(self) -> None:
        """Preflight: one clear line saying what is missing and how to get it, or nothing."""
        missing = []
        if not self._bwrap:
            missing.append("bwrap (apt: bubblewrap)")
        if not os.access(self.python, os.X_OK):
            missing.append(f"{self.python} (apt: python3)")
        why = seccomp.available()
        if why:
            missing.append(f"seccomp filters ({why}; pip: pyseccomp, apt: libseccomp2)")
        if self.rootless:
            for path, off, fix in _USERNS_KNOBS:
                try:
                    if Path(path).read_text().strip() == off:
                        missing.append(f"unprivileged user namespaces ({path} is {off}: `{fix}`"
                                       " as root, or run as root)")  # fmt: skip
                except OSError:
                    pass
        if missing:
            raise SandboxUnavailable("sandbox unavailable, missing: " + "; ".join(missing))
        slot = self._slots.get()
        try:
            self._zygote(slot)  # the real test: a sandbox starts here
        finally:
            self._slots.put(slot)
        self._checked = True

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

    def zygote_pids(self) -> list[int]:
        """Host pids of the running outer sandboxes (for tests that look for leftovers)."""
        return [z.proc.pid for z in self._zygotes.values() if z.proc.poll() is None]

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

    def _zygote_command(self, fd: int) -> list[str]:
        lim = self.limits
        config = {
            "outer_uid": 0 if self.rootless else -1,  # rootless: ours; root: fresh per answer
            "tmp_size": lim.tmp_size_bytes,
            "tmp_inodes": lim.tmp_inodes,
            "memory": lim.memory_bytes,
            "file_size": lim.file_size_bytes,
            "open_files": lim.open_files,
            "processes": lim.processes,
            "last_cap": int(Path("/proc/sys/kernel/cap_last_cap").read_text()),
            "keyctl": seccomp.syscall_number("keyctl"),
            "seccomp": seccomp.compile_filter(False),
            "seccomp_forks": seccomp.compile_filter(True),
        }
        usr = ["--perms", "0755", "--dir", "/usr"]
        for d in _USR:
            p = Path("/usr") / d
            if p.is_dir() and not p.is_symlink():
                usr += ["--ro-bind", str(p), str(p)]
        user = ["--unshare-user", "--uid", "0", "--gid", "0"] if self.rootless else []
        return [
            self._bwrap, *user,
            "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session",
            "--hostname", "sandbox", *usr,
            "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
            "--symlink", "usr/bin", "/bin", "--symlink", "usr/bin", "/sbin",
            "--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev",
            "--perms", "0755", "--dir", "/tmp", "--perms", "0755", "--dir", "/run",
            "--remount-ro", "/",
            "--chdir", "/", "--clearenv",
            "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp",
            "--setenv", "TMPDIR", "/tmp", "--setenv", "LANG", "C.UTF-8",
            # what building an answer's sandbox takes, and nothing else
            "--cap-drop", "ALL", "--cap-add", "CAP_SYS_ADMIN", "--cap-add", "CAP_SETUID",
            "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP",
            "--cap-add", "CAP_SETFCAP",  # rootless: to map our own uid (0 here) into a child
            "--",
            # the source on the command line: no host path shows in the sandbox's mount table
            self.python, "-I", "-S", "-c", _ZYGOTE_SOURCE, str(fd),
            marshal.dumps(config, 4).hex(),
        ]  # fmt: skip

    def _zygote(self, slot: int) -> _Zygote:
        z = self._zygotes.get(slot)
        if z is not None and z.proc.poll() is None:
            return z
        if z is not None:
            self._discard_zygote(slot)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}  # nothing of ours leaks in
        try:
            err = tempfile.TemporaryFile(dir=self._dir)
            proc = _launcher.submit(
                lambda: subprocess.Popen(
                    self._zygote_command(theirs.fileno()),
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
        z = self._zygotes[slot] = _Zygote(proc, ours, err)
        # It says "ready" once it runs; anything else means no sandbox can be built here.
        if not readable(ours, 30.0) or ours.recv(16) != b"ready":
            why = (self._discard_zygote(slot) or "no answer in 30 s").strip()
            if self.rootless and "namespace" in why.lower():
                why += (
                    " (unprivileged user namespaces are disabled here: enable them, or run as root)"
                )
            raise SandboxUnavailable(f"the sandbox did not start: {why}")
        return z

    def _discard_zygote(self, slot: int) -> str:
        z = self._zygotes.pop(slot, None)
        return _end(z) if z is not None else ""

    def _acquire(self) -> tuple[int, _Zygote]:
        if not self._checked:
            self.check()  # once: never run anything unsandboxed or half-sandboxed
        slot = self._slots.get()
        try:
            return slot, self._zygote(slot)
        except BaseException:
            self._slots.put(slot)
            raise

    def _send(self, slot: int, z: _Zygote, req: tuple[Any, ...], fds: list[int]) -> None:
        try:
            socket.send_fds(z.sock, [marshal.dumps(req, 4)], fds)
        except OSError:
            why = self._discard_zygote(slot)
            raise SandboxUnavailable(f"the sandbox did not start: {why}") from None

    def _finish(self, slot: int, z: _Zygote, backstop: float) -> tuple[int, float, bool, str]:
        """The zygote's report on the answer once its namespaces are gone. A zygote with no
        report by `backstop` is stopped, which takes every namespace under it along."""
        try:
            if z.sock.fileno() >= 0 and readable(z.sock, backstop):
                code, cpu, failed, why = marshal.loads(z.sock.recv(256))
                return int(code), float(cpu), bool(failed), str(why)
        except (OSError, EOFError, ValueError, TypeError):
            pass
        except BaseException:  # its report unread: this zygote would hand it to the next run
            self._discard_zygote(slot)
            raise
        why = self._discard_zygote(slot) or "no report"
        raise SandboxUnavailable(f"the sandbox stopped: {why.strip()}")

    def session(self, program: str, cpu_s: float, wall_s: float) -> Session:
        """Start `program` for a conversation of steps (see `Session`); close it when done."""
        key, prog = self._program_path(program)
        slot, z = self._acquire()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ferr = tempfile.TemporaryFile(dir=self._dir)
        try:
            with open(prog, "rb") as fprog:
                req = (key, "session", cpu_s, wall_s, 0)
                self._send(slot, z, req, [ferr.fileno(), fprog.fileno(), theirs.fileno()])
        except BaseException:
            ours.close()
            ferr.close()
            self._slots.put(slot)
            raise
        finally:
            theirs.close()

        def finish() -> tuple[int, float, bool, str]:
            try:
                return self._finish(slot, z, max(60.0, 20 * wall_s))
            finally:
                self._slots.put(slot)

        return Session(ours, ferr, finish)

    def run(
        self,
        program: str,
        stdin: bytes,
        cpu_s: float,
        wall_s: float,
        watch: Callable[[bytes], None] | None = None,
        forks: int = 0,
    ) -> ExecResult:
        """Run `program` with `stdin`; kill it at `cpu_s` CPU or `wall_s` wall off the run queue.

        `watch`, if given, is called a few times a second with the stdout written since (for
        progress reports). `forks` lets a *trusted* program start that many worker processes
        (each then has the address-space limit of its own).
        """
        key, prog = self._program_path(program)
        slot, z = self._acquire()
        try:
            return self._run(slot, z, key, prog, stdin, cpu_s, wall_s, watch, forks)
        finally:
            self._slots.put(slot)

    def _run(
        self,
        slot: int,
        z: _Zygote,
        key: str,
        prog: Path,
        stdin: bytes,
        cpu_s: float,
        wall_s: float,
        watch: Callable[[bytes], None] | None,
        forks: int,
    ) -> ExecResult:
        forks = min(forks, self.limits.processes)
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
            self._send(slot, z, (key, "run", cpu_s, wall_s, forks), fds)
            if watch is not None:
                watch_output(z.sock.fileno(), fout.fileno(), watch)
            code, cpu, setup_failed, why = self._finish(slot, z, max(60.0, 20 * wall_s))
            wall = time.monotonic() - t0
            fout.seek(0)
            out: bytes = fout.read(self.limits.file_size_bytes + 1)
            err = tail_of(ferr)
        if setup_failed:  # the answer never ran: nothing it wrote can cause this
            raise SandboxUnavailable(err.strip() or "sandbox setup failed")
        outputs, bad = parse_lines(out)
        if why == "wall":
            status_s, detail = "timeout", f"wall-clock limit {wall_s:.1f}s"
        elif why == "cpu" or code == 128 + signal.SIGXCPU:
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
            stdout_tail=tail(out),
            stderr_tail=err,
            cpu_s=cpu,
            wall_s=wall,
            exit_code=code,
            detail=detail,
        )


__all__ = ["ExecResult", "SandboxExecutor", "SandboxLimits", "SandboxUnavailable", "Session"]
