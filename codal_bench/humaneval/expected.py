"""Expected outputs of HumanEval+ problems: what is kept per problem, its cache key, assembly.

Kept per problem: the canonical solution's CPU time per input (for time limits) and either a
16-byte digest per output (exact-match problems) or the outputs themselves in the child's typed
encoding (problems with floats, a tolerance or the `find_zero` oracle).
"""

from __future__ import annotations

import base64
import hashlib
import json
import marshal
import os
import struct
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

CHILD_SOURCE = (Path(__file__).with_name("child.py")).read_text()
CHILD_VERSION = hashlib.sha256(CHILD_SOURCE.encode()).hexdigest()[:12]
GROUPS = ("base", "plus")

T = TypeVar("T")
R = TypeVar("R")


def default_cache_dir() -> Path:
    env = os.environ.get("CODAL_BENCH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "codal-eval"


def frame(obj: Any) -> bytes:
    """One object of a child request: its marshal bytes after their length (4 bytes, little
    endian), so the child can `marshal.loads` a slice instead of reading a stream, which is
    ten times slower on big inputs."""
    data = marshal.dumps(obj, 4)
    return struct.pack("<I", len(data)) + data


def problem_key(problem: Mapping[str, Any]) -> str:
    """Content key of one problem's expected outputs (and of the code computing them)."""
    fields = ("task_id", "prompt", "canonical_solution", "entry_point", "atol")
    h = hashlib.sha256(CHILD_VERSION.encode())
    for f in fields:
        h.update(json.dumps(problem.get(f), sort_keys=True).encode() + b"\0")
    for g in GROUPS:
        h.update(json.dumps(problem[f"{g}_input"]).encode() + b"\0")
    return h.hexdigest()


@dataclass
class Expected:
    """Expected outputs of one problem: digests (exact match) or values, plus canonical CPU."""

    mode: str  # "digest" or "values"
    times: dict[str, list[float]]
    digests: dict[str, list[str]] = field(default_factory=dict)
    values: dict[str, list[Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mode": self.mode, "times": self.times}
        if self.mode == "digest":
            d["digests"] = {
                g: base64.b64encode(bytes.fromhex("".join(v))).decode()
                for g, v in self.digests.items()
            }
        else:
            d["values"] = self.values  # kept in the child's typed encoding
        return d

    @staticmethod
    def from_json(d: dict[str, Any]) -> Expected:
        digests = {}
        for g, b in d.get("digests", {}).items():
            raw = base64.b64decode(b).hex()
            digests[g] = [raw[i : i + 32] for i in range(0, len(raw), 32)]
        return Expected(d["mode"], d["times"], digests, d.get("values", {}))


def parallel(
    fn: Callable[[T], R], jobs: Sequence[T], workers: int, label: str, bar: bool
) -> list[R]:
    """Run `fn` over `jobs` on threads (each blocks on its own sandbox), with a progress bar."""
    results: list[R | None] = [None] * len(jobs)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(fn, job): i for i, job in enumerate(jobs)}
        if bar:
            from ..progress import current

            with current().task(label, len(jobs)) as advance:
                for fut in as_completed(futures):
                    results[futures[fut]] = fut.result()
                    advance(1)
        else:
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
    return results  # type: ignore[return-value]


Piece = tuple[str, Mapping[str, Any], str, int, int]  # key, problem, group, start, end
PieceResult = tuple[list[float], list[str], list[Any] | None]  # times, digests, values


def assemble(
    problem: Mapping[str, Any], pieces: list[Piece], results: list[PieceResult]
) -> Expected:
    """One problem's Expected from its pieces, in input order."""
    times: dict[str, list[float]] = {g: [] for g in GROUPS}
    digests: dict[str, list[str]] = {g: [] for g in GROUPS}
    values: dict[str, list[Any]] = {g: [] for g in GROUPS}
    for (_, _, g, _, _), (t, d, v) in sorted(
        zip(pieces, results, strict=True), key=lambda x: (x[0][2] != "base", x[0][3])
    ):
        times[g] += t
        digests[g] += d
        values[g] += v or []
    if any(r[2] is not None for r in results):
        return Expected("values", times, values=values)
    return Expected("digest", times, digests=digests)
