"""Reading the line-oriented data files every loader shares, with errors that name the line."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .types import UsageError


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def read_jsonl(
    path: Path, label: str = "", expect: str = "a JSON object"
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a .jsonl or .jsonl.gz file.

    A corrupt line, a truncated gzip stream or a line that is not an object is one UsageError
    naming the file and line; `label` prefixes it (e.g. "replay: "), `expect` says what a line
    should hold.
    """
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    n = 0
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise UsageError(
                        f"{label}{path}:{n}: invalid JSON ({exc.msg}); the file may be truncated"
                    ) from exc
                if not isinstance(row, dict):
                    raise UsageError(f"{label}{path}:{n}: expected {expect} per line")
                yield n, row
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        where = f"{path}:{n + 1}" if n else str(path)
        raise UsageError(f"{label}{where}: cannot read ({exc})") from exc
