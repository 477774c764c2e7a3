"""One HumanEval+ answer run in metered steps, every reply judged as hostile bytes.

The answer is loaded once, then called on batches of inputs. The supervisor outside the answer
measures each batch's CPU time; a batch may use no more than the smallest per-input limit in it,
so a batch within that budget proves every input in it was within its own limit. Batches are cut
from the canonical solution's CPU times so that an honest answer several times slower than the
canonical one still fits. A batch over its budget is killed and its inputs re-run one at a time
in a fresh process, each against its own limit -- no round trip per input otherwise, and no
signal inside the answer that it could ignore.

A reply is parsed as records (tag, length, payload) within a cap derived from the expected
outputs; anything malformed, oversized or missing is that answer's failure, never the run's.
"""

from __future__ import annotations

import json
import marshal
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from codal_bench.executors.session import Session, Step
from codal_bench.humaneval.compare import Undecodable, decode, match_values
from codal_bench.humaneval.expected import CHILD_SOURCE, Expected

_HONEST_SLOWDOWN = 4.0  # a batch's canonical CPU times this must stay under its budget
_RECORD = 5  # tag byte + 4-byte length
_SLACK = 1024  # room for one exception message
_WHY = {"exited": "the program exited", "too_big": "output too large"}


class Malformed(ValueError):
    """A reply that does not follow the record format."""


class SandboxLost(RuntimeError):
    """The sandbox stopped answering (an overloaded or broken machine): the answer gets no
    verdict, and the grade is an error to retry, never a fail."""


def _lost(st: Step) -> None:
    if st.status == "lost":
        raise SandboxLost("the sandbox stopped answering (machine overloaded?); grade again")


def records(reply: bytes) -> list[tuple[bytes, bytes]]:
    out = []
    off, end = 0, len(reply)
    while off < end:
        if end - off < _RECORD:
            raise Malformed("truncated record")
        tag = reply[off : off + 1]
        size = int.from_bytes(reply[off + 1 : off + 5], "little")
        off += _RECORD
        if size > end - off or tag not in (b"R", b"X", b"O"):
            raise Malformed("bad record")
        out.append((tag, reply[off : off + size]))
        off += size
    return out


def _text(payload: bytes) -> str:
    return payload[:400].decode("utf-8", "replace")


def plan(times: list[float], limits: list[float]) -> list[int]:
    """Batch starts: each batch's canonical CPU, times the slowdown, within its smallest limit."""
    starts: list[int] = []
    total, low = 0.0, 0.0
    for i, (t, lim) in enumerate(zip(times, limits, strict=True)):
        if starts and (total + t) * _HONEST_SLOWDOWN <= min(low, lim):
            total += t
            low = min(low, lim)
        else:
            starts.append(i)
            total, low = t, lim
    return starts


@dataclass
class AnswerRun:
    """Checks one answer group by group; `verdict(g)` returns (status, first failure or None)."""

    problem: Mapping[str, Any]
    code: str
    expected: Expected
    checker: Any  # HumanEvalChecker (its executor, limits and memoised inputs)
    cpu_s: float = 0.0
    wall_s: float = 0.0
    tails: list[str] = field(default_factory=list)
    _session: Session | None = None
    _load: tuple[str, str] | None = None  # a failure to load, for every group: (status, reason)
    _failed_load: tuple[str, str] | None = None  # the last failure to load

    def close(self) -> None:
        if self._session is not None:
            end = self._session.close()
            if end.stderr_tail:
                self.tails.append(end.stderr_tail)
            self._session = None

    def _live(self, cpu_left: float, active_left: float) -> tuple[Session | None, Step | None]:
        """A session with the answer loaded (None when loading failed, see `_load`), and the
        load step if one ran now: loading runs the module's top-level code, which EvalPlus
        times only against the whole task's limit, so it is charged to the group's allowance
        (`cpu_left`, `active_left`: what the group has left)."""
        if self._session is not None and self._session.alive:
            return self._session, None
        self.close()
        if self._load is not None:
            return None, None
        ck = self.checker
        lim, wall = max(cpu_left, 0.0), max(active_left, 0.0)
        total = lim + 2 * ck.max_group_cpu_s + 2.0
        self._session = ck.executor.session(CHILD_SOURCE, total, 3 * total + 5)
        head = ("L", self.code, self.problem["entry_point"], self.expected.mode)
        st = self._session.step(marshal.dumps(head, 4), lim, wall, 4096)
        _lost(st)
        self.cpu_s += st.cpu_s
        self.wall_s += st.wall_s
        load: tuple[str, str] | None = None
        if st.status in ("cpu", "wall"):
            load = ("timeout", "load timeout")
        elif st.status != "ok":
            load = ("fail", _WHY.get(st.status, st.status) + " while loading")
        else:
            try:
                recs = records(st.reply)
            except Malformed as e:
                recs = [(b"X", str(e).encode())]
            if recs != [(b"O", b"")]:
                why = _text(recs[0][1]) if recs and recs[0][0] == b"X" else "malformed reply"
                load = ("fail", why)
        if load is None:
            return self._session, st
        self.close()
        # A failure to load is the answer's for good; a timeout only for this group: the next
        # group starts with a whole allowance, as each EvalPlus task does.
        if load[0] != "timeout":
            self._load = load
        self._failed_load = load
        return None, st

    def _budget(self, g: str) -> float:
        """A group's whole allowance, as EvalPlus gives a task: its limits summed, at most the
        cap, plus one second. It bounds CPU and also time off the run queue (sleeping)."""
        limits = self.checker.limits(self.expected, g)
        return float(min(self.checker.max_group_cpu_s, sum(limits)) + 1.0)

    def verdict(self, g: str) -> tuple[str, dict[str, Any] | None]:
        inputs = self.problem[f"{g}_input"]
        limits = self.checker.limits(self.expected, g)
        budget = self._budget(g)
        starts = plan(self.expected.times[g], limits) + [len(inputs)]
        ends = dict(zip(starts, starts[1:], strict=False))
        i, single_until, spent, active = 0, 0, 0.0, 0.0

        def failed(status: str, index: int, reason: str) -> tuple[str, dict[str, Any]]:
            first = {"group": g, "index": index, "reason": reason}
            if index < len(inputs):
                first["input"] = _short(inputs[index])
            return status, first

        while i < len(inputs):
            sess, loaded = self._live(budget - spent, budget - active)
            if loaded is not None:
                spent += loaded.cpu_s
                active += loaded.active_s
            if sess is None:
                status, why = self._load or self._failed_load or ("fail", "")
                return failed(status, i, why)
            j = i + 1 if i < single_until else ends.get(i, i + 1)
            low = min(limits[i:j])
            cpu = min(low, budget - spent)
            wall = min(3 * low + 1, budget - active)
            if cpu <= 0 or wall <= 0:
                return failed("timeout", i, "group time budget")
            payload = self.checker.batch(self.problem, g, i, j)
            st = sess.step(payload, cpu, wall, self._cap(g, i, j))
            _lost(st)
            self.wall_s += st.wall_s
            if st.status in ("cpu", "wall"):
                # over the group's allowance (not this batch's own limit): no re-run can pass
                short = cpu < low if st.status == "cpu" else wall < 3 * low + 1
                if j - i == 1 or short:
                    self.cpu_s += st.cpu_s
                    return failed("timeout", i, "time limit")
                single_until = j  # which input? each alone, against its own limit
                continue
            self.cpu_s += st.cpu_s
            spent += st.cpu_s
            active += st.active_s
            if st.status != "ok":
                return failed("fail", i, _WHY.get(st.status, st.status))
            try:
                recs = records(st.reply)
            except Malformed:
                return failed("fail", i, "malformed reply")
            bad = self._judge(g, i, recs)
            if bad is not None:
                return failed("fail", *bad)
            if len(recs) != j - i:
                return failed("fail", i + len(recs), "malformed reply")
            i = j
        return "pass", None

    def _cap(self, g: str, i: int, j: int) -> int:
        if self.expected.mode == "digest":
            return (j - i) * (_RECORD + 32) + _SLACK
        sizes: list[int] = self.checker.value_sizes(self.expected, g)
        return sum(4 * s + 64 for s in sizes[i:j]) + (j - i) * _RECORD + _SLACK

    def _judge(self, g: str, i: int, recs: list[tuple[bytes, bytes]]) -> tuple[int, str] | None:
        """(index, reason) of the first wrong or failed output in this batch, else None."""
        if self.expected.mode == "digest":
            want = self.expected.digests[g]
            for k, (tag, payload) in enumerate(recs):
                if tag == b"X":
                    return i + k, "exception: " + _text(payload)
                if tag != b"R" or i + k >= len(want) or payload != want[i + k].encode():
                    return i + k, "wrong output"
            return None
        outs: list[Any] = []
        for k, (tag, payload) in enumerate(recs):
            if tag == b"X":
                return i + k, "exception: " + _text(payload)
            if tag != b"R":
                return i + k, "malformed reply"
            try:
                outs.append(decode(json.loads(payload)))
            except (ValueError, Undecodable, RecursionError):
                return i + k, "malformed output"
        # Only this batch: an answer re-run input by input must not cost the parent the
        # square of its inputs (fourth red team). EvalPlus' tolerance, once on, stays on (not
        # for `find_zero`, whose oracle check comes before EvalPlus turns it on).
        p = self.problem
        exps, first_float = self.checker.decoded(self.expected, g)
        carried = first_float < i and p["entry_point"] != "find_zero"
        atol = float(p.get("atol") or 0) or (1e-6 if carried else 0.0)
        n, inputs = len(outs), p[f"{g}_input"]
        bad = match_values(outs, exps[i : i + n], inputs[i : i + n], atol, p["entry_point"])
        return (i + bad, "wrong output") if bad is not None and bad < n else None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."
