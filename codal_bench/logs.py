"""Library output (vLLM, torch, transformers, httpx, …) goes to a log file, not the terminal.

A local run prints hundreds of warnings from the libraries under it (Triton, NUMA, tcmalloc,
compilation settings) around the few lines a user ran the command for. Setting Python logging
levels is not enough: vLLM's engine runs in processes started with *spawn*, and those, like
torch's C++ code and tqdm bars, write straight to the file descriptors they inherited. So for the
working part of a command, descriptors 1 and 2 themselves point at the log file (children inherit
that). Our own output keeps the terminal: `sys.stdout` becomes a stream on a duplicate of the
terminal's stdout (tables printed meanwhile, e.g. by `check`), and `terminal()` gives the
terminal's stderr for progress displays. Python-level library output goes to `sys.stderr`
(vLLM's logger is pointed there), which is the log file. `--verbose` leaves everything on the
terminal instead.

The log file sits beside the store (`codal-eval.log`) and is appended to, one header line per
command, so a warning can be found after the fact.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

LOG_NAME = "codal-eval.log"
ROTATE_BYTES = 20 << 20  # a log past this size is moved to codal-eval.log.1 first
LIBRARIES = (
    "vllm", "torch", "transformers", "httpx", "httpx2", "httpcore", "openai", "anthropic",
    "datasets", "huggingface_hub", "accelerate", "evalplus", "urllib3", "filelock",
)  # fmt: skip


_terminal: list[TextIO] = []  # the terminal's stderr while library output is redirected


def terminal() -> TextIO:
    """Where live displays go: the terminal's stderr, also while fd 2 points at the log."""
    return _terminal[-1] if _terminal else sys.stderr


def log_path(store: str | Path) -> Path:
    """The log file for a store: beside it, so each store keeps its own history."""
    return Path(store).expanduser().parent / LOG_NAME


def _open_log(path: Path) -> TextIO:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if path.stat().st_size > ROTATE_BYTES:
            path.replace(path.with_name(path.name + ".1"))
    except FileNotFoundError:
        pass
    f = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - closed by the caller
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    f.write(f"\n=== {stamp} pid {os.getpid()}: codal-eval {' '.join(redacted(sys.argv[1:]))}\n")
    return f


def redacted(argv: list[str]) -> list[str]:
    """The command line with credential values masked: `-M api_key=sk-…` is a common way to pass a
    key, and the log outlives the command (it is attached to bug reports). Also masked: the user
    and password part of a URL, and the values of its query string."""
    from .config import is_secret

    out: list[str] = []
    hide_next = False
    for arg in argv:
        name, eq, _ = arg.partition("=")
        if hide_next:
            out.append("***")
            hide_next = False
        elif eq and is_secret(name):
            out.append(name + "=***")  # --api-key=…, -M api_key=…
        else:
            out.append(_URL_SECRETS.sub(lambda m: m.group(1) + "***", arg))
            hide_next = arg.startswith("-") and not eq and is_secret(arg)  # --api-key …
    return out


_URL_SECRETS = re.compile(r"((?:\w+://)|[?&][^=&\s]+=)((?<=://)[^/@\s]+(?=@)|(?<==)[^&\s#]+)")


@contextmanager
def library_output(path: Path | None, verbose: bool = False) -> Iterator[TextIO]:
    """Send library output to `path` (or leave it on the terminal when `verbose`); yields the
    stream our own live output should use (the terminal's stderr either way)."""
    if verbose or path is None:
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "INFO" if verbose else "WARNING")
        if verbose:
            logging.basicConfig(level=logging.INFO, stream=sys.stderr)
        yield sys.stderr
        return
    try:
        log = _open_log(path)
    except OSError:  # the store's folder is unusable: the store says so; keep the log anyway
        import tempfile

        log = _open_log(Path(tempfile.gettempdir()) / f"codal-eval-{os.getuid()}.log")
    # vLLM reads these when it is imported (later, in this process and in its engine process).
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "INFO")
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = os.dup(1), os.dup(2)
    # A stream not backed by the descriptor (a test's capture) is not redirected: keep using it.
    err = _on(saved[1]) if _fd(sys.stderr) == 2 else sys.stderr
    out = _on(saved[0]) if _fd(sys.stdout) == 1 else sys.stdout
    handler = logging.StreamHandler(log)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    old_level, old_stdout = root.level, sys.stdout
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout = out
    _terminal.append(err)
    try:
        yield err
    finally:
        _terminal.pop()
        sys.stdout = old_stdout
        for stream in (sys.stdout, sys.stderr, out, err):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        root.removeHandler(handler)
        root.setLevel(old_level)
        for stream in (out, err):
            if stream is not old_stdout and stream is not sys.stderr:
                stream.close()
        log.close()


def _fd(stream: TextIO) -> int | None:
    try:
        return stream.fileno()
    except (OSError, ValueError, AttributeError):
        return None


def _on(fd: int) -> TextIO:
    return os.fdopen(os.dup(fd), "w", buffering=1, encoding="utf-8", errors="replace")
