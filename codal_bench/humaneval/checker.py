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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codal_bench.executors.sandbox import SandboxExecutor
from codal_bench.humaneval.compare import Undecodable, decode, match_values
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
from codal_bench.types import ExecResult, Executor

__all__ = ["CheckResult", "Expected", "HumanEvalChecker", "default_cache_dir", "problem_key"]

_RANK = {"pass": 0, "fail": 1, "timeout": 2, "error": 3}
_UNIT = 8  # inputs per unit of work when preparing expected outputs
_CANON_CPU = 20.0  # CPU seconds a canonical solution may take per input
_MISSING = object()  # a value not (yet) computed


def _complete(results: Mapping[tuple[str, str, int], PieceResult], pc: Piece) -> bool:
    values = results[(pc[0], pc[2], pc[3])][2]
    return values is not None and not any(v is _MISSING for v in values)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


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
        executor: Executor | None = None,
        cache_dir: str | Path | None = None,
        time_factor: float = 4.0,
        min_time_limit: float = 1.0,
        max_group_cpu_s: float = 60.0,
        workers: int | None = None,
        progress: bool = True,
    ) -> None:
        self.executor: Executor = executor or SandboxExecutor()
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.time_factor = time_factor
        self.min_time_limit = min_time_limit
        self.max_group_cpu_s = max_group_cpu_s
        self.workers = workers or os.cpu_count() or 1
        self.progress = progress
        self._expected: dict[str, Expected] = {}
        self._inputs_bin: dict[int, tuple[Any, bytes]] = {}
        self._keys: dict[int, tuple[Any, str]] = {}

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
        head = {
            "mode": "prepare",
            "workers": max(1, min(self.workers, 16)),
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

                res = self.executor.run(CHILD_SOURCE, request, total, 2 * total + 5, watch)
        else:
            res = self.executor.run(CHILD_SOURCE, request, total, 2 * total + 5)
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

    def _inputs(self, problem: Mapping[str, Any], group: str) -> bytes:
        """Inputs marshalled once per input list (held, so its id stays unique)."""
        obj = problem[f"{group}_input"]
        hit = self._inputs_bin.get(id(obj))
        if hit is None or hit[0] is not obj:
            hit = self._inputs_bin[id(obj)] = (obj, frame(obj))
        return hit[1]

    def key(self, problem: Mapping[str, Any]) -> str:
        """`problem_key`, memoised per problem object (hashing the inputs is not free)."""
        hit = self._keys.get(id(problem))
        if hit is None or hit[0] is not problem:
            hit = self._keys[id(problem)] = (problem, problem_key(problem))
        return hit[1]

    def _request(
        self,
        problem: Mapping[str, Any],
        code: str,
        mode: str,
        limits: Mapping[str, list[float]],
        budget_cap: float,
    ) -> tuple[bytes, float]:
        """The child's request for one problem, and the CPU seconds it may use in all."""
        parts = []
        total = self.min_time_limit + 1.0
        for g, lim in limits.items():
            budget = min(budget_cap, sum(lim)) + 1.0
            total += budget
            meta = {"cpu": lim, "wall": [3 * t + 1 for t in lim], "budget": budget}
            parts += [self._inputs(problem, g), frame(meta)]
        head = {
            "code": code,
            "entry": problem["entry_point"],
            "mode": mode,
            "load_cpu": self.min_time_limit,
            "n_groups": len(limits),
        }
        return frame(head) + b"".join(parts), total

    def limits(self, expected: Expected, group: str) -> list[float]:
        return [max(self.min_time_limit, self.time_factor * t) for t in expected.times[group]]

    def check(self, problem: Mapping[str, Any], code: str, expected: Expected) -> CheckResult:
        """Run one candidate (both groups in one sandbox when it survives) and judge it."""
        todo = list(GROUPS)
        verdicts: dict[str, tuple[str, dict[str, Any] | None]] = {}
        tails, cpu, wall = [], 0.0, 0.0
        while todo:
            limits = {g: self.limits(expected, g) for g in todo}
            request, total = self._request(
                problem, code, expected.mode, limits, self.max_group_cpu_s
            )
            res = self.executor.run(CHILD_SOURCE, request, total, 2 * total + 5)
            cpu, wall = cpu + res.cpu_s, wall + res.wall_s
            tails.append(res.stderr_tail)
            ran = self._judge_run(problem, expected, todo, res)
            verdicts.update(ran)
            todo = [g for g in todo if g not in ran]
            if res.status == "timeout":
                # Killed at the backstop: the groups it never reached get no second wait.
                verdicts.update({g: ("timeout", None) for g in todo})
                todo = []
            # A crash before a group started gives that group a sandbox of its own.
        first = None
        for g in GROUPS:
            if verdicts[g][1] is not None:
                first = verdicts[g][1]
                break
        tail = "".join(t for t in tails if t)[-2000:]
        return CheckResult(verdicts["base"][0], verdicts["plus"][0], first, tail, cpu, wall)

    def _judge_run(
        self, problem: Mapping[str, Any], expected: Expected, todo: list[str], res: ExecResult
    ) -> dict[str, tuple[str, dict[str, Any] | None]]:
        """Verdict per group that this run reached; groups it never started are left out."""
        seen: dict[int, dict[int, list[Any]]] = {i: {} for i in range(len(todo))}
        load_fail: list[Any] | None = None
        done: set[int] = set()
        for rec in res.outputs:
            if not isinstance(rec, list) or not rec or not isinstance(rec[0], str):
                continue
            if rec[0] in ("R", "X", "T") and len(rec) >= 3 and rec[1] == -1:
                load_fail = load_fail or rec
            elif rec[0] in ("R", "X", "T") and len(rec) >= 3 and rec[1] in seen:
                if isinstance(rec[2], int):
                    seen[rec[1]].setdefault(rec[2], rec)  # first record wins
            elif rec[0] == "G" and len(rec) == 2:
                done.add(rec[1])
        out: dict[str, tuple[str, dict[str, Any] | None]] = {}
        for gi, g in enumerate(todo):
            if load_fail is not None:
                st = "timeout" if load_fail[0] == "T" else "fail"
                why = "load timeout" if st == "timeout" else str(load_fail[3:4])[:300]
                out[g] = (st, {"group": g, "index": 0, "reason": why})
                continue
            recs = seen[gi]
            if not recs and gi not in done and gi > 0 and res.status != "ok":
                continue  # never started
            out[g] = self._group_verdict(problem, expected, g, recs, res)
        return out

    def _group_verdict(
        self,
        problem: Mapping[str, Any],
        expected: Expected,
        g: str,
        recs: dict[int, list[Any]],
        res: ExecResult,
    ) -> tuple[str, dict[str, Any] | None]:
        inputs = problem[f"{g}_input"]
        n = len(inputs)
        outs: list[Any] = []
        stop: tuple[str, str] | None = None
        for i in range(n):
            rec = recs.get(i)
            if rec is None:
                died = "timeout" if res.status == "timeout" else "error"
                stop = (died, res.detail or "program ended early")
                break
            if rec[0] == "X":
                stop = ("fail", "exception: " + str(rec[3] if len(rec) > 3 else "")[:300])
                break
            if rec[0] == "T":
                stop = ("timeout", "time limit")
                break
            outs.append(rec[3] if len(rec) > 3 else None)
        bad = self._first_mismatch(problem, expected, g, outs)
        if bad is not None:
            return "fail", {
                "group": g,
                "index": bad,
                "reason": "wrong output",
                "input": _short(inputs[bad]),
            }
        if stop is not None:
            i = len(outs)
            return stop[0], {"group": g, "index": i, "reason": stop[1], "input": _short(inputs[i])}
        return "pass", None

    def _first_mismatch(
        self, problem: Mapping[str, Any], expected: Expected, g: str, outs: list[Any]
    ) -> int | None:
        if expected.mode == "digest":
            for i, (got, want) in enumerate(zip(outs, expected.digests[g], strict=False)):
                if got != want or not isinstance(got, str):
                    return i
            return None
        decoded = []
        for i, v in enumerate(outs):
            try:
                decoded.append(decode(v))
            except (Undecodable, RecursionError):
                return i
        exps = [decode(v) for v in expected.values[g][: len(decoded)]]
        inputs = problem[f"{g}_input"][: len(decoded)]
        return match_values(
            decoded, exps, inputs, float(problem.get("atol") or 0), problem["entry_point"]
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
