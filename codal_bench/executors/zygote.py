# ruff: noqa: UP031  (%-formatting, like child.py: no str.format machinery needed)
# mypy: ignore-errors
# (Runs alone under the system python inside the outer sandbox; standard library only.)
"""Starts each candidate in fresh namespaces by forking an interpreter that is already running.

Starting ``python3`` costs about 6 ms of CPU, more than most HumanEval+ candidates run, so one
sandbox per worker holds this trusted process (the "zygote") and every candidate is a fork of it.
The fork does what ``bwrap`` and ``setpriv`` did per candidate before:

1. ``unshare`` new mount, pid, network, IPC and UTS namespaces, then fork again so that the
   candidate is pid 1 of its own pid namespace (it sees no other process, the zygote included);
2. mount a fresh size-capped tmpfs on ``/tmp`` owned by the candidate's uid, and a fresh
   ``/proc``;
3. set the rlimits (CPU, address space, file size, open files, processes, no core dumps);
4. empty the capability bounding set, set no_new_privs, and switch to the slot's unprivileged
   uid and gid with no supplementary groups (which clears every remaining capability);
5. close every descriptor but the candidate's stdin, stdout and stderr, and run the program.

The rest of the sandbox is the outer ``bwrap`` the zygote runs in: only ``/usr`` read-only, no
host files, an environment cleared before it started.

Protocol on the control socket (descriptor number in ``argv[1]``; the parent is trusted):
a request is one message of marshal bytes ``(key, cpu_limit)`` with four descriptors: the
candidate's stdin, stdout and stderr, and the program's source (read and compiled once per key);
the reply is ``marshal.dumps((exit_code,
cpu_seconds, setup_failed))`` once the candidate's namespace is gone. An exit code of ``128 + n``
means killed by signal ``n``; ``setup_failed`` means the candidate never ran, and why is on its
stderr.
"""

import ctypes
import marshal
import os
import resource
import socket
import sys
import traceback

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 2, 4, 8, 0x4000, 1 << 18
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 24, 38
SIGKILL, SIGUSR2 = 9, 12

_libc = ctypes.CDLL(None, use_errno=True)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint32) for name in ("effective", "permitted", "inheritable")]


def _clear_capabilities():
    """Empty the effective, permitted and inheritable sets (capset, version 3 layout)."""
    header = _CapHeader(0x20080522, 0)
    data = (_CapData * 2)()  # all zero
    _check(_libc.capset(ctypes.byref(header), data), "capset")


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


def _prctl(option, arg):
    _check(
        _libc.prctl(
            ctypes.c_int(option),
            ctypes.c_ulong(arg),
            ctypes.c_ulong(0),
            ctypes.c_ulong(0),
            ctypes.c_ulong(0),
        ),
        "prctl %d" % option,
    )


def _confine(config, cpu_limit, fds, ready):
    """In the candidate's process (pid 1 of a fresh pid namespace): the steps 2-5 above."""
    uid = config["uid"]
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing of ours propagates outwards
    _mount(
        "tmpfs",
        "/tmp",
        "tmpfs",
        MS_NOSUID | MS_NODEV,
        "size=%d,mode=0700,uid=%d,gid=%d" % (config["tmp_size"], uid, uid),
    )
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for res, value in (
        (resource.RLIMIT_CPU, cpu_limit),
        (resource.RLIMIT_AS, config["memory"]),
        (resource.RLIMIT_FSIZE, config["file_size"]),
        (resource.RLIMIT_NOFILE, config["open_files"]),
        (resource.RLIMIT_NPROC, config["processes"]),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(res, (value, value))
    for cap in range(config["last_cap"] + 1):
        _prctl(PR_CAPBSET_DROP, cap)
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)  # from root to another uid: permitted and effective cleared
    _clear_capabilities()  # and the inheritable set, which the uid switch keeps
    _prctl(PR_SET_PDEATHSIG, SIGKILL)
    if os.getuid() != uid or os.geteuid() != uid or os.getgroups():
        raise OSError("uid switch did not hold")
    os.chdir("/tmp")
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    os.write(ready, b"1")  # confined: from here on, whatever happens is the candidate's doing
    os.closerange(3, 1 << 16)


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


def _setup_failed(fds, why):
    """Report on the candidate's stderr, then die of SIGUSR2: the zygote's sign that the
    candidate never ran (an exit status could be the candidate's own)."""
    try:
        os.write(fds[2], ("sandbox setup failed: %s\n" % why).encode())
    finally:
        os.kill(os.getpid(), SIGUSR2)
        os._exit(125)


def _candidate(config, code, cpu_limit, fds):
    """The first fork: enter new namespaces, fork the candidate into them, report its status."""
    try:
        _prctl(PR_SET_PDEATHSIG, SIGKILL)  # the zygote gone: so are we, and our namespace
        _check(
            _libc.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS),
            "unshare",
        )
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(ready_r)
                _confine(config, cpu_limit, fds, ready_w)
            except BaseException as e:
                try:
                    os.write(fds[2], ("sandbox setup failed: %s\n" % e).encode())
                finally:
                    os._exit(125)
            _run_program(code)
        os.close(ready_w)
        for fd in fds:
            os.close(fd)
        confined = os.read(ready_r, 1) == b"1"
        _, status = os.waitpid(pid, 0)
    except BaseException as e:
        _setup_failed(fds, e)
    if not confined:
        os.kill(os.getpid(), SIGUSR2)
    if os.WIFEXITED(status):
        os._exit(os.WEXITSTATUS(status))
    os._exit(128 + os.WTERMSIG(status))


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
        key, cpu_limit = marshal.loads(msg)
        if len(fds) != 4:
            for fd in fds:
                os.close(fd)
            sock.sendall(marshal.dumps((125, 0.0, True)))
            continue
        code = codes.get(key)
        if code is None:
            code = codes[key] = _compile(fds[3])
        os.close(fds[3])
        fds = fds[:3]
        pid = os.fork()
        if pid == 0:
            sock.close()
            _candidate(config, code, cpu_limit, fds)
        for fd in fds:
            os.close(fd)
        _, status, usage = os.wait4(pid, 0)
        failed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == SIGUSR2
        code_ = os.waitstatus_to_exitcode(status)
        if code_ < 0:
            code_ = 128 - code_
        sock.sendall(marshal.dumps((code_, usage.ru_utime + usage.ru_stime, failed)))


if __name__ == "__main__":
    main()
