"""Stand-ins for the sanitizer in a worker process (tests/test_sanitize_proc.py): each behaves
like `sanitize_fast.sanitize` on ordinary text and misbehaves on a marker."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def crash(text: str, entry: str, budget: float) -> str:
    if "CRASH" in text:
        os.kill(os.getpid(), signal.SIGSEGV)  # as a fault in tree-sitter's C code would
    return text


def hog(text: str, entry: str, budget: float) -> str:
    if "HOG" in text:
        held = [bytearray(1 << 30) for _ in range(64)]  # far past the worker's address space
        return str(len(held))
    return text


def spin(text: str, entry: str, budget: float) -> str:
    while "SPIN" in text:  # a pass of the sanitizer that checks no budget
        pass
    return text


def broken(text: str, entry: str, budget: float) -> str:
    if "BROKEN" in text:  # as when an import of the sanitizer's fails
        raise ImportError("tree_sitter_python is missing")
    return text


def slow(text: str, entry: str, budget: float) -> str:
    if "SLOW" in text:
        time.sleep(1.0)
    return text


def unbudgeted(text: str, entry: str, budget: float) -> str:
    """The real sanitizer with no in-process budget: only the kernel's limit can stop it."""
    from codal_bench.humaneval.sanitize_fast import sanitize

    return sanitize(text, entry, budget=1e9)


def meet(text: str, entry: str, budget: float) -> str:
    """`MEET DIR`: mark DIR, then wait (without using CPU) until two calls have marked it."""
    if text.startswith("MEET "):
        folder = Path(text[5:])
        (folder / str(os.getpid())).touch()
        deadline = time.monotonic() + 10
        while len(list(folder.iterdir())) < 2:
            if time.monotonic() > deadline:
                return "alone"
            time.sleep(0.01)
        return "met"
    return text
