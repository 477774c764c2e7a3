# ruff: noqa: UP031  (%-formatting, like child.py: no str.format machinery needed)
# mypy: ignore-errors
# (Runs alone under the system python inside the outer sandbox; standard library only.)
"""Starts each candidate in fresh namespaces by forking an interpreter that is already running.

Starting ``python3`` costs about 6 ms of CPU, more than most benchmark candidates run, so one
sandbox per worker holds this trusted process (the "zygote"). Per request it forks a trusted
**supervisor**, which enters a new pid namespace and forks the candidate into it as pid 1 (it
sees no other process; killing it kills all it made, and nothing else). The candidate, still
trusted code at first, takes new mount/network/IPC/UTS namespaces, mounts a ``/tmp`` capped in
size and in files and a fresh ``/proc`` (``/proc/keys`` hidden), sets rlimits, joins a fresh
anonymous session keyring, enters a fresh **user namespace** that the supervisor maps to a fresh
uid (as root a random unprivileged host uid; rootless the user's own), starts its own session,
drops every capability, sets no_new_privs, installs the seccomp filter, and runs the program. The
supervisor enforces the limits from outside: it reads the candidate's CPU clock and its threads'
run-queue waits (``/proc/PID/task/*/schedstat``) and kills it when a step uses more CPU than
allowed, or spends longer than allowed *not* waiting for a CPU (a busy machine cannot turn CPU
limits into timeouts).

Control socket (descriptor in ``argv[1]``; the parent is trusted): a request is marshal bytes
``(key, mode, cpu, wall, forks)`` with descriptors. ``"run"`` passes stdin, stdout, stderr and
the program's source; the candidate runs once under ``cpu``/``wall``. ``"session"`` passes
stderr, the source and a stream socket: the parent sends steps ``[len][marshal (payload, cpu,
wall, cap)]``; the supervisor writes ``[len][payload]`` to the candidate's stdin (a pipe), reads
one reply frame ``[len][bytes]`` (at most ``cap`` bytes) from its stdout and answers ``[len]
[marshal (status, cpu, wall, reply, active)]`` (``active``: wall time off the run queue), status
0 ok, 1 CPU limit, 2 wall limit, 3 exited, 4 too large.
Once the candidate's namespaces are gone the zygote replies ``marshal.dumps((exit_code,
cpu_seconds, setup_failed, why))``, ``why`` one of "", "cpu", "wall", "exited".
"""

import ctypes
import marshal
import os
import resource
import select
import socket
import sys
import traceback

if __name__ != "__main__":  # imported (tools, tests); the sandbox runs meter.py's source first
    from codal_bench.executors.meter import CPU, _Meter, _session

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_BIND, MS_REC, MS_PRIVATE = 0x1000, 0x4000, 1 << 18
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_SECCOMP = 1, 4, 22
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 24, 38
SIGKILL, SIGUSR2 = 9, 12
INNER_ID = 1000  # the candidate's uid and gid inside its own user namespace

_libc = ctypes.CDLL(None, use_errno=True)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint32) for name in ("effective", "permitted", "inheritable")]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def _check(result, what):
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, "%s: %s" % (what, os.strerror(err)))


def _mount(source, target, fstype, flags, data=None):
    _check(
        _libc.mount(
            source and source.encode(),
            target.encode(),
            fstype and fstype.encode(),
            ctypes.c_ulong(flags),
            data and data.encode(),
        ),
        "mount " + target,
    )


def _prctl(option, arg, arg2=0):
    _check(
        _libc.prctl(
            ctypes.c_int(option),
            ctypes.c_ulong(arg),
            ctypes.c_void_p(arg2),
            ctypes.c_ulong(0),
            ctypes.c_ulong(0),
        ),
        "prctl %d" % option,
    )


def _write_file(path, text):
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    except OSError as e:
        raise OSError(e.errno, "%s: %s" % (path, e.strerror)) from None
    finally:
        os.close(fd)


def _confine(config, req, outer, fds, sync_w, sync_r):
    """In the candidate (pid 1 of fresh namespaces, still holding the zygote's capabilities)."""
    _, _, cpu, _, forks = req
    # Our own mount namespace: the supervisor keeps the zygote's /proc, where we have a pid.
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS), "unshare")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing of ours propagates outwards
    _mount(
        "tmpfs",
        "/tmp",
        "tmpfs",
        MS_NOSUID | MS_NODEV,
        "size=%d,nr_inodes=%d,mode=0700,uid=%d,gid=%d"
        % (config["tmp_size"], config["tmp_inodes"], outer, outer),
    )
    # Read-only: rootless, our own /proc files (every thread's too) are ours even when not
    # dumpable (their owner is the root of the user namespace our memory was made in: the
    # user), and the owner of an `autogroup` file may set the nice level of our session, so
    # that a waiting thread buys sleep. Nothing here needs writing (the supervisor writes our
    # uid map through its own /proc).
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY)
    for hidden in ("/proc/keys", "/proc/key-users"):  # rootless, the harness's keys share our uid
        _mount("/dev/null", hidden, None, MS_BIND)
    for res, value in (
        (resource.RLIMIT_CPU, max(1, int(cpu + 1.999))),  # a backstop: the supervisor counts
        (resource.RLIMIT_AS, config["memory"]),
        (resource.RLIMIT_FSIZE, config["file_size"]),
        (resource.RLIMIT_NOFILE, config["open_files"]),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_MSGQUEUE, 0),
    ):
        resource.setrlimit(res, (value, value))
    # A fresh anonymous session keyring (KEYCTL_JOIN_SESSION_KEYRING with no name): nothing the
    # harness's session keyring holds is reachable; the fresh user namespace below gives a fresh
    # user keyring, and seccomp then refuses every keyring call.
    if _libc.syscall(ctypes.c_long(config["keyctl"]), ctypes.c_long(1), None) < 0:
        raise OSError(ctypes.get_errno(), "keyctl join session keyring")
    _check(_libc.unshare(CLONE_NEWUSER), "unshare user namespace")
    os.write(sync_w, b"U")
    if os.read(sync_r, 1) != b"M":
        raise OSError("no uid map")
    os.setresgid(INNER_ID, INNER_ID, INNER_ID)
    os.setresuid(INNER_ID, INNER_ID, INNER_ID)
    # Counted in the fresh user namespace; set only now, or it would also cap the parent
    # namespace's count (which holds the zygotes' own processes when rootless).
    # Threads count too (seccomp leaves threads, not processes, to an answer).
    nproc = max(config["processes"], forks + 1)
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    for cap in range(config["last_cap"] + 1):
        _prctl(PR_CAPBSET_DROP, cap)
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    # Not dumpable (rootless, the uid switch kept the host uid, which leaves it dumpable): no
    # core dumps, and as root its /proc files belong to no one it can be. Seccomp refuses
    # setting it back.
    _prctl(PR_SET_DUMPABLE, 0)
    _check(_libc.capset(ctypes.byref(_CapHeader(0x20080522, 0)), (_CapData * 2)()), "capset")
    _prctl(PR_SET_PDEATHSIG, SIGKILL)
    if os.getuid() != INNER_ID or os.geteuid() != INNER_ID:
        raise OSError("uid switch did not hold")
    # A session and process group of its own: signals to a process group cross pid namespaces,
    # and rootless the zygote has the candidate's uid.
    os.setsid()
    os.chdir("/tmp")
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    os.write(sync_w, b"1")  # confined: from here on, whatever happens is the candidate's doing
    os.closerange(3, 1 << 16)
    bpf = config["seccomp_forks" if forks else "seccomp"]
    prog = _SockFprog(len(bpf) // 8, bpf)
    _prctl(PR_SET_SECCOMP, 2, ctypes.addressof(prog))  # SECCOMP_MODE_FILTER


def _run_program(code):
    """Run the program as `python3 file` would: exit status from SystemExit, traceback on error."""
    status = 0
    main = type(sys)("__main__")
    main.__file__ = "/run/program.py"
    sys.modules["__main__"] = main
    sys.argv = ["/run/program.py"]
    try:
        exec(code, main.__dict__)
    except SystemExit as e:
        code_ = e.code
        if code_ is None:
            status = 0
        elif isinstance(code_, int):
            status = code_ & 0xFF
        else:
            try:
                sys.stderr.write(str(code_) + "\n")
            except BaseException:
                pass
            status = 1
    except BaseException:
        try:
            traceback.print_exc()
        except BaseException:
            pass
        status = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    os._exit(status)


def _supervise(config, req, code, fds, status_w):
    """The first fork: new namespaces, the candidate forked into them, its limits enforced."""
    _, mode, cpu, wall, _ = req
    _prctl(PR_SET_PDEATHSIG, SIGKILL)  # the zygote gone: so are we, and our namespace
    _check(_libc.unshare(CLONE_NEWPID), "unshare pid namespace")  # the candidate is its pid 1
    up_r, up_w = os.pipe()  # candidate -> supervisor: "U" (in its user namespace), "1" (ready)
    down_r, down_w = os.pipe()  # supervisor -> candidate: "M" (mapped)
    if mode == "session":
        stdin_r, stdin_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        child_fds = [stdin_r, stdout_w, fds[0]]
    else:
        child_fds = fds[:3]
    outer = config["outer_uid"] if config["outer_uid"] >= 0 else _fresh_uid()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(up_r)
            os.close(down_w)
            _confine(config, req, outer, child_fds, up_w, down_r)
        except BaseException as e:
            try:
                os.write(child_fds[2], ("sandbox setup failed: %s\n" % e).encode())
            finally:
                os._exit(125)
        _run_program(code)
    os.close(up_w)
    os.close(down_r)
    for fd in child_fds:
        os.close(fd)
    confined = False
    if os.read(up_r, 1) == b"U":
        _write_file("/proc/%d/setgroups" % pid, "deny")
        _write_file("/proc/%d/uid_map" % pid, "%d %d 1" % (INNER_ID, outer))
        _write_file("/proc/%d/gid_map" % pid, "%d %d 1" % (INNER_ID, outer))
        os.write(down_w, b"M")
        confined = os.read(up_r, 1) == b"1"
    os.close(down_w)
    os.close(up_r)
    killed = b""
    if confined:
        meter = _Meter(pid)
        pidfd = os.pidfd_open(pid)
        if mode == "session":
            killed = _session(meter, pidfd, fds[-1], stdin_w, stdout_r)
        else:
            meter.start(cpu, wall)
            while True:
                hit, _, sleep = meter.check()
                if hit is not None:
                    killed = b"c" if hit == CPU else b"w"
                    break
                if select.select([pidfd], [], [], sleep)[0]:
                    break
        if killed:
            os.kill(pid, SIGKILL)  # pid 1 of its namespace: every process it made goes too
    os.write(status_w, killed)
    _, status = os.waitpid(pid, 0)
    if not confined:
        os.kill(os.getpid(), SIGUSR2)  # the zygote's sign that the candidate never ran
    if os.WIFEXITED(status):
        os._exit(os.WEXITSTATUS(status))
    os._exit(128 + os.WTERMSIG(status))


def _fresh_uid():
    """A random unprivileged host uid for one answer (root mode): 2**30 .. 2**31 - 2."""
    return (1 << 30) + int.from_bytes(os.urandom(4), "little") % ((1 << 30) - 2)


def _compile(fd):
    with os.fdopen(os.dup(fd), "rb") as f:
        source = f.read()
    try:
        return compile(source, "/run/program.py", "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as e:
        return compile(
            "raise SystemExit(%r)" % ("program does not compile: %s" % e), "<sandbox>", "exec"
        )


def main():
    sock = socket.socket(fileno=int(sys.argv[1]))
    config = marshal.loads(bytes.fromhex(sys.argv[2]))
    codes = {}
    sock.sendall(b"ready")
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(sock, 4096, 4)
        except OSError:
            return
        if not msg:
            return  # the parent closed its end
        req = marshal.loads(msg)
        key, mode = req[0], req[1]
        if len(fds) != (3 if mode == "session" else 4):
            for fd in fds:
                os.close(fd)
            sock.sendall(marshal.dumps((125, 0.0, True, "")))
            continue
        prog = fds[1] if mode == "session" else fds[3]
        code = codes.get(key)
        if code is None:
            code = codes[key] = _compile(prog)
        status_r, status_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            sock.close()
            os.close(status_r)
            try:
                _supervise(config, req, code, fds, status_w)
            except BaseException as e:
                try:
                    traceback.print_exc()  # the zygote's stderr: the parent reports it
                    err = fds[0 if mode == "session" else 2]
                    os.write(err, ("sandbox setup failed: %s\n" % e).encode())
                finally:
                    os.kill(os.getpid(), SIGUSR2)
                    os._exit(125)
        os.close(status_w)
        for fd in fds:
            os.close(fd)
        _, status, usage = os.wait4(pid, 0)
        killed = os.read(status_r, 1)
        os.close(status_r)
        failed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == SIGUSR2
        code_ = os.waitstatus_to_exitcode(status)
        if code_ < 0:
            code_ = 128 - code_
        why = {b"c": "cpu", b"w": "wall", b"x": "exited"}.get(killed, "")
        sock.sendall(marshal.dumps((code_, usage.ru_utime + usage.ru_stime, failed, why)))


if __name__ == "__main__":
    main()
