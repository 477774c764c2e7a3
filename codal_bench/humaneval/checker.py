"""HumanEval+ checking: expected outputs (computed once, cached), time limits, verdicts.

Expected outputs come from running each canonical solution in the same sandbox as candidates,
and are cached per problem under a key of the problem's content (so any change to the data file
that touches a problem recomputes it). Exact-match problems keep only a 16-byte digest per
input; problems that need a tolerance or the `find_zero` oracle keep values. Per-input CPU time of
the canonical run sets the limits: like EvalPlus, a factor of it with a floor, but CPU time rather
than wall time, so a busy machine does not turn passes into timeouts.
"""

from __future__ import annotations

import gzip
import json
import marshal
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from codal_bench.executors.sandbox import SandboxExecutor
from codal_bench.humaneval.compare import decode, is_floats
from codal_bench.humaneval.expected import (
    CHILD_SOURCE,
    CHILD_VERSION,
    GROUPS,
    Expected,
    Piece,
    PieceResult,
    assemble,
    default_cache_dir,
    frame,
    parallel,
    problem_key,
)
from codal_bench.humaneval.steps import AnswerRun, SandboxLost

__all__ = ["CheckResult", "Expected", "HumanEvalChecker", "default_cache_dir", "problem_key"]

T = TypeVar("T")
_RANK = {"pass": 0, "fail": 1, "timeout": 2, "error": 3, "judge_error": 4}
_UNIT = 8  # inputs per unit of work when preparing expected outputs
_CANON_CPU = 20.0  # CPU seconds a canonical solution may take per input
_MISSING = object()  # a value not (yet) computed


def _complete(results: Mapping[tuple[str, str, int], PieceResult], pc: Piece) -> bool:
    values = results[(pc[0], pc[2], pc[3])][2]
    return values is not None and not any(v is _MISSING for v in values)


def worst(*statuses: str) -> str:
    return max(statuses, key=lambda s: _RANK.get(s, 3))


@dataclass
class CheckResult:
    """Verdict on one candidate: per group status, and where it first went wrong."""

    base: str
    plus: str
    first_failed: dict[str, Any] | None = None
    stderr_tail: str = ""
    cpu_s: float = 0.0
    wall_s: float = 0.0

    @property
    def status(self) -> str:
        return worst(self.base, self.plus)


class HumanEvalChecker:
    """Grades HumanEval+ candidates: prepares expected outputs, runs, compares, reports."""

    def __init__(
        self,
        executor: SandboxExecutor | None = None,
        cache_dir: str | Path | None = None,
        time_factor: float = 4.0,
        min_time_limit: float = 1.0,
        max_group_cpu_s: float = 60.0,
        workers: int | None = None,
        progress: bool = True,
    ) -> None:
        self.executor = executor or SandboxExecutor()
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.time_factor = time_factor
        self.min_time_limit = min_time_limit
        self.max_group_cpu_s = max_group_cpu_s
        self.workers = workers or os.cpu_count() or 1
        self.progress = progress
        self._expected: dict[str, Expected] = {}
        self._memo: dict[tuple[Any, ...], tuple[Any, Any]] = {}  # see `_memoised`

    def identity(self) -> dict[str, Any]:
        return {
            "checker": "humaneval-plus",
            "child": CHILD_VERSION,
            "time_factor": self.time_factor,
            "min_time_limit": self.min_time_limit,
            "max_group_cpu_s": self.max_group_cpu_s,
            "executor": self.executor.identity(),
        }

    # -- expected outputs ------------------------------------------------------------------

    def _cache_path(self, key: str) -> Path:
        return self.cache_dir / "humaneval-expected" / f"{key}.json.gz"

    def prepare(self, problems: Sequence[Mapping[str, Any]]) -> dict[str, Expected]:
        """Expected outputs for `problems` by task id: from the cache, else computed (parallel)."""
        found: dict[str, Expected] = {}
        missing = []
        for p in problems:
            key = self.key(p)
            if key in self._expected:
                found[p["task_id"]] = self._expected[key]
                continue
            path = self._cache_path(key)
            try:
                exp = Expected.from_json(json.loads(gzip.decompress(path.read_bytes())))
            except (OSError, ValueError, KeyError):
                missing.append((key, p))
                continue
            self._expected[key] = found[p["task_id"]] = exp
        # Canonical solutions are trusted, so they all share one sandbox whose workers pull
        # small units of inputs as they go: start-up is most of a small problem's cost, and the
        # cost of a problem sits in a few inputs that no size of input predicts.
        pieces: list[Piece] = []
        for key, p in missing:
            pieces.append((key, p, "base", 0, len(p["base_input"])))
            pieces.append((key, p, "plus", 0, len(p["plus_input"])))
        results = self._compute_all(pieces, False)
        # Values mode (a float output anywhere): every input of that problem needs its value.
        floaty = {pc[0] for pc in pieces if results[(pc[0], pc[2], pc[3])][2] is not None}
        redo = [pc for pc in pieces if pc[0] in floaty and not _complete(results, pc)]
        results.update(self._compute_all(redo, True))
        for key, p in missing:
            mine = [pc for pc in pieces if pc[0] == key]
            if key in floaty and not all(_complete(results, pc) for pc in mine):
                raise RuntimeError(f"{p['task_id']}: canonical outputs incomplete")
            exp = assemble(p, mine, [results[(key, pc[2], pc[3])] for pc in mine])
            path = self._cache_path(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_bytes(gzip.compress(json.dumps(exp.to_json()).encode(), compresslevel=6))
            tmp.replace(path)
            self._expected[key] = found[p["task_id"]] = exp
        return found

    def _compute_all(
        self, pieces: list[Piece], force: bool
    ) -> dict[tuple[str, str, int], PieceResult]:
        if not pieces:
            return {}
        done = self._compute(pieces, force)
        return {(pc[0], pc[2], pc[3]): r for pc, r in zip(pieces, done, strict=True)}

    def _compute(self, pieces: list[Piece], force: bool = False) -> list[PieceResult]:
        """Run canonical solutions on pieces of their inputs, all in one sandbox.

        Each piece is cut into units of about `_UNIT` inputs taken with a stride, so that the
        few slow inputs of a problem, which tend to sit together, spread over many units.
        """
        problems, units, blobs, total, offset = [], [], [], self.min_time_limit + 1.0, 0
        for k, (_, p, g, a, b) in enumerate(pieces):
            forced = force or bool(p.get("atol")) or p["entry_point"] == "find_zero"
            code = p["prompt"] + p["canonical_solution"]
            problems.append((code, p["entry_point"], forced, self.min_time_limit))
            inputs = p[f"{g}_input"][a:b]
            stride = max(1, -(-len(inputs) // _UNIT))
            for j in range(min(stride, len(inputs))):
                blob = marshal.dumps(inputs[j::stride], 4)
                units.append((k, j, stride, offset, len(blob)))
                blobs.append(blob)
                offset += len(blob)
            total += min(300.0, _CANON_CPU * (b - a)) + 1.0
        workers = max(1, min(self.workers, 16))
        head = {
            "mode": "prepare",
            "workers": workers,
            "cpu": _CANON_CPU,
            "wall": 3 * _CANON_CPU + 1,
            "problems": problems,
            "units": units,
        }
        request = frame(head) + b"".join(blobs)
        n_inputs = sum(b - a for _, _, _, a, b in pieces)
        if self.progress and not force and isinstance(self.executor, SandboxExecutor):
            from ..progress import current

            with current().task("expected outputs", n_inputs) as advance:

                def watch(chunk: bytes) -> None:
                    advance(chunk.count(b'["R"'))

                res = self.executor.run(
                    CHILD_SOURCE, request, total, 2 * total + 5, watch, forks=workers
                )
        else:
            res = self.executor.run(CHILD_SOURCE, request, total, 2 * total + 5, forks=workers)
        n = [b - a for _, _, _, a, b in pieces]
        times: list[list[float]] = [[0.0] * m for m in n]
        digests: list[list[Any]] = [[None] * m for m in n]
        values: list[list[Any] | None] = [None] * len(pieces)
        failed: dict[int, str] = {}
        for rec in res.outputs:
            tag = rec[0]
            if tag == "R":
                times[rec[1]][rec[2]] = rec[4]
                digests[rec[1]][rec[2]] = rec[3]
            elif tag == "V":
                vals = values[rec[1]]
                if vals is None:
                    vals = values[rec[1]] = [_MISSING] * n[rec[1]]
                vals[rec[2]] = rec[3]
            elif tag in ("X", "T"):
                failed.setdefault(rec[1], f"input {rec[2]}: {rec[3:] or 'time limit'}")
        out: list[PieceResult] = []
        for k, (_, p, g, _, _) in enumerate(pieces):
            if k in failed or None in digests[k]:
                why = failed.get(k) or f"no output for input {digests[k].index(None)}"
                raise RuntimeError(
                    f"{p['task_id']}: canonical solution failed on {g} {why}:"
                    f" {res.detail} {res.stderr_tail[-300:]}"
                )
            out.append((times[k], digests[k], values[k]))
        return out

    # -- running candidates ----------------------------------------------------------------

    def _memoised(self, owner: Any, key: tuple[Any, ...], compute: Callable[[], T]) -> T:
        """`compute()` once per `owner` object and `key`: stored under the owner's id and
        checked by identity, since an id may be reused once its object is gone."""
        k = (id(owner), *key)
        hit = self._memo.get(k)
        if hit is None or hit[0] is not owner:
            hit = self._memo[k] = (owner, compute())
        return cast(T, hit[1])

    def key(self, problem: Mapping[str, Any]) -> str:
        """`problem_key`, memoised per problem object (hashing the inputs is not free)."""
        return self._memoised(problem, ("key",), lambda: problem_key(problem))

    def batch(self, problem: Mapping[str, Any], g: str, i: int, j: int) -> bytes:
        """The step that calls an answer on inputs i..j-1 of group `g` (memoised: the batches
        of a problem are the same for every answer)."""
        obj = problem[f"{g}_input"]
        return self._memoised(obj, ("batch", i, j), lambda: marshal.dumps(("I", obj[i:j]), 4))

    def value_sizes(self, expected: Expected, g: str) -> list[int]:
        """Encoded size of each expected value (values mode): the reply caps follow from them."""
        return self._memoised(
            expected, ("sizes", g), lambda: [len(json.dumps(v)) for v in expected.values[g]]
        )

    def decoded(self, expected: Expected, g: str) -> tuple[list[Any], int]:
        """Expected values (values mode) decoded once for every answer, and the index of the
        first float among them: EvalPlus' 1e-6 tolerance is on from there to the group's end."""

        def compute() -> tuple[list[Any], int]:
            values = [decode(v) for v in expected.values[g]]
            return values, next((n for n, v in enumerate(values) if is_floats(v)), len(values))

        return self._memoised(expected, ("decoded", g), compute)

    def limits(self, expected: Expected, group: str) -> list[float]:
        return [max(self.min_time_limit, self.time_factor * t) for t in expected.times[group]]

    def check(self, problem: Mapping[str, Any], code: str, expected: Expected) -> CheckResult:
        """Run one answer (both groups in one process while it lives) and judge it."""
        run = AnswerRun(problem, code, expected, self)
        try:
            verdicts = {g: run.verdict(g) for g in GROUPS}
        except SandboxLost as exc:
            return CheckResult("judge_error", "judge_error", {"reason": str(exc)})
        finally:
            run.close()
        first = next((verdicts[g][1] for g in GROUPS if verdicts[g][1] is not None), None)
        tail = "".join(run.tails)[-2000:]
        return CheckResult(
            verdicts["base"][0], verdicts["plus"][0], first, tail, run.cpu_s, run.wall_s
        )

    def check_many(
        self, jobs: Sequence[tuple[Mapping[str, Any], str]], expected: Mapping[str, Expected]
    ) -> list[CheckResult]:
        """Check (problem, code) pairs in parallel, longest canonical run first."""
        order = sorted(
            range(len(jobs)),
            key=lambda i: -sum(sum(expected[jobs[i][0]["task_id"]].times[g]) for g in GROUPS),
        )

        def one(i: int) -> CheckResult:
            p, code = jobs[i]
            return self.check(p, code, expected[p["task_id"]])

        res = parallel(one, order, self.workers, "checking", self.progress)
        out: list[CheckResult | None] = [None] * len(jobs)
        for i, r in zip(order, res, strict=False):
            out[i] = r
        return out  # type: ignore[return-value]
