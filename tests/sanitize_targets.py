"""Stand-ins for the sanitizer in a worker process (tests/test_sanitize_proc.py): each behaves
like `sanitize_fast.sanitize` on ordinary text and misbehaves on a marker."""

from __future__ import annotations

import os
import signal


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
