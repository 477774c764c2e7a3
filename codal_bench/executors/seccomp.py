"""The seccomp filter every candidate runs under, compiled here and installed by the zygote.

Built with libseccomp (through `pyseccomp`) in the trusted parent, exported as classic BPF, and
loaded by the zygote into each candidate as its last step before running untrusted code. Refused
(``EPERM``; ``clone3`` gets ``ENOSYS`` so that libc falls back to ``clone``, whose flags a filter
can see):

* new processes (``fork``, ``vfork``, ``clone`` without ``CLONE_THREAD``) and ``execve``: an
  answer is one process, so its address-space limit bounds all of its memory;
* anything that holds memory outside that limit: ``memfd_create``, System V shared memory,
  message queues and semaphores, POSIX message queues (``/dev/shm`` and ``/`` are read-only);
* new namespaces (``unshare``, ``setns``, namespace flags to ``clone``): no nested user namespace,
  so none of the capabilities one would grant;
* the kernel keyring (``keyctl``, ``add_key``, ``request_key``), ``ptrace`` and cross-process
  memory access, ``bpf``, ``perf_event_open``, ``userfaultfd``, ``io_uring``, every mount call,
  module, reboot, clock, swap, quota and accounting calls, ``pidfd_getfd``;
* ``fallocate`` and the ioctls that do the same (they reserve disk blocks past the file-size
  limit: an inherited stderr file lives on the host's disk), inotify (watches are charged to the
  host user, whose quota an answer could use up), and lowering a thread's scheduling priority
  (a thread that waits for a CPU at the lowest priority would make the answer look waiting,
  not sleeping, while costing it almost no CPU), including ``prctl(PR_SET_DUMPABLE)``: a
  dumpable answer owns its ``/proc/self`` files, and writing ``/proc/self/autogroup`` sets the
  nice level of its whole session (fourth red team);
* sockets of any family but ``AF_UNIX`` (no raw, packet or netlink sockets; the network
  namespace is empty anyway).

Trusted programs that need workers (the expected-output pass over canonical solutions) get the
same filter with ``fork``/``clone`` allowed.
"""

from __future__ import annotations

import errno
import functools
import tempfile
from typing import Any

CLONE_THREAD = 0x00010000
NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000,
                   0x40000000, 0x00000080)  # fmt: skip  # NEWNS CGROUP UTS IPC USER PID NET TIME
AF_UNIX = 1

DENIED = """
    execve execveat memfd_create memfd_secret
    shmget shmat shmdt shmctl msgget msgsnd msgrcv msgctl semget semop semtimedop semctl
    mq_open mq_timedsend mq_timedreceive mq_notify mq_getsetattr mq_unlink
    unshare setns keyctl add_key request_key ptrace process_vm_readv process_vm_writev
    pidfd_getfd kcmp bpf perf_event_open userfaultfd io_uring_setup io_uring_enter
    io_uring_register mount umount2 pivot_root chroot move_mount open_tree fsopen fsconfig
    fsmount fspick mount_setattr swapon swapoff reboot kexec_load kexec_file_load init_module
    finit_module delete_module acct quotactl quotactl_fd syslog vhangup sethostname
    setdomainname settimeofday clock_settime clock_adjtime adjtimex iopl ioperm fanotify_init
    open_by_handle_at name_to_handle_at lookup_dcookie personality
    fallocate inotify_init inotify_init1 inotify_add_watch
    setpriority sched_setscheduler sched_setattr sched_setparam
""".split()
# ioctl requests that reserve or zero disk blocks like fallocate (FS_IOC_RESVSP, _RESVSP64,
# _ZERO_RANGE); the kernel reads the request as 32 bits, so compare only those.
IOCTL_DENIED = (0x40305828, 0x4030582A, 0x40305839)
PR_SET_DUMPABLE = 4  # prctl options are ints: compared on 32 bits, like the ioctl requests
NO_FORK = ["fork", "vfork"]


def _seccomp() -> Any:
    try:
        import pyseccomp
    except (ImportError, OSError) as e:  # OSError: libseccomp.so.2 missing
        raise RuntimeError(f"pyseccomp / libseccomp unavailable: {e}") from e
    return pyseccomp


@functools.lru_cache(maxsize=2)
def compile_filter(forks: bool) -> bytes:
    """The filter as classic BPF (8 bytes per instruction), ready for ``PR_SET_SECCOMP``."""
    sc = _seccomp()
    f = sc.SyscallFilter(sc.ALLOW)
    eperm = sc.ERRNO(errno.EPERM)
    arch = sc.system_arch()
    for name in DENIED + ([] if forks else NO_FORK):
        try:
            sc.resolve_syscall(arch, name)
        except Exception:  # not a syscall on this architecture
            continue
        f.add_rule(eperm, name)
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    for flag in NAMESPACE_FLAGS:
        f.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    if not forks:
        f.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, CLONE_THREAD, 0))
    f.add_rule(eperm, "socket", sc.Arg(0, sc.NE, AF_UNIX))
    f.add_rule(eperm, "prctl", sc.Arg(0, sc.MASKED_EQ, 0xFFFFFFFF, PR_SET_DUMPABLE))
    for request in IOCTL_DENIED:
        f.add_rule(eperm, "ioctl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, request))
    with tempfile.TemporaryFile() as out:
        f.export_bpf(out)
        out.flush()
        out.seek(0)
        bpf: bytes = out.read()
    if not bpf or len(bpf) % 8:
        raise RuntimeError("libseccomp exported no filter")
    return bpf


def syscall_number(name: str) -> int:
    sc = _seccomp()
    number: int = sc.resolve_syscall(sc.system_arch(), name)
    return number


def available() -> str:
    """ "" when filters can be built here, else why not."""
    try:
        compile_filter(False)
        syscall_number("keyctl")
    except (RuntimeError, OSError) as e:
        return str(e)
    return ""


__all__ = ["available", "compile_filter", "syscall_number"]
