"""Acceptance 3: chat-style replies scored by codal-eval equal EvalPlus 0.3.1, reply by reply.

25 replies we wrote (CRLF fences, an unclosed fence cut by max_tokens, prose around unfenced code,
a failing self-test assert, a top-level example call that raises, body-only code, a `__main__`
block, two code blocks, tabs, helpers, completions, and ordinary ones) go through the real runner
as a replay file, with `sanitize` on and off. EvalPlus' side runs in a subprocess: its own
`sanitize` (as its sanitize script builds the code) and its own `check_correctness`. The only
differences allowed are the deviations listed in the README, each asserted as such below.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from codal_bench import runner
from codal_bench.humaneval.task import HumanEvalPlusTask
from codal_bench.runner import RunOptions, run
from codal_bench.store import Store
from tests import counting_server
from tests.counting_server import CountingServer
from tests.test_humaneval_fidelity import PLUS, _same

pytestmark = pytest.mark.slow  # EvalPlus' ground truth in a subprocess, and ~50 sandboxed runs

# name, task_id and the samples-file fields (solution | completion) of each reply we wrote;
# "find-zero" gets EvalPlus' canonical solution for HumanEval/32.
REPLY_FILE = Path(__file__).resolve().parent / "fixtures" / "humaneval" / "chat_replies.jsonl"
REPLIES: list[tuple[str, str, dict[str, str]]] = [
    (r.pop("name"), r["task_id"], {k: v for k, v in r.items() if k != "task_id"})
    for r in map(json.loads, REPLY_FILE.read_text().splitlines())
]

# README "HumanEval+ deviations from EvalPlus 0.3.1": (reply name, sanitize) -> (ours, theirs).
DEVIATIONS = {
    # HumanEval/32: EvalPlus 0.3.1 fails every solution; we judge by the oracle.
    ("find-zero", True): (["pass", "pass"], ["fail", "fail"]),
    ("find-zero", False): (["pass", "pass"], ["fail", "fail"]),
    # Shape-exact comparison: values are rebuilt outside the sandbox, so an object claiming
    # equality with everything matches nothing; EvalPlus' `out == exp` believes it.
    ("always-equal", True): (["fail", "fail"], ["pass", "pass"]),
    ("always-equal", False): (["fail", "fail"], ["pass", "pass"]),
}
# CPU-time limits: a run-away answer is our "timeout"; EvalPlus reports "fail" (or "timeout").
# (Unsanitized, that reply is a markdown text: a syntax error for both.)
CPU_LIMITED = {("infinite-loop", True)}

_EVALPLUS = r"""
import json, sys
samples_path, out_path = sys.argv[1:3]
from evalplus.data import get_human_eval_plus
from evalplus.evaluate import check_correctness
from evalplus.gen.util import trusted_exec
from evalplus.sanitize import sanitize
problems = get_human_eval_plus()
gt, out = {}, []
for s in map(json.loads, open(samples_path)):
    p = problems[s["task_id"]]
    if s["task_id"] not in gt:
        code = p["prompt"] + p["canonical_solution"]
        e = {}
        for g in ("base", "plus"):
            e[g], e[g + "_time"] = trusted_exec(
                code, p[g + "_input"], p["entry_point"], record_time=True)
        gt[s["task_id"]] = e
    row = {}
    # evalplus.evaluate: a solution as written, a completion after the prompt.
    raw = s["solution"] if "solution" in s else p["prompt"] + s["completion"]
    # evalplus.sanitize's script: the solution, or prompt + "\n" + completion, sanitized.
    old = s["solution"] if "solution" in s else p["prompt"] + "\n" + s["completion"]
    for mode, code in (("raw", raw), ("sanitized", sanitize(old, entrypoint=p["entry_point"]))):
        r = check_correctness("humaneval", 0, p, code, gt[s["task_id"]], fast_check=True)
        row[mode] = [r["base"][0], r["plus"][0]]
    out.append(row)
json.dump(out, open(out_path, "w"))
"""


def _samples() -> list[dict[str, str]]:
    with gzip.open(PLUS, "rt") as f:
        canon = {r["task_id"]: r for r in map(json.loads, f)}
    out = []
    for name, tid, fields in REPLIES:
        if name == "find-zero":
            fields = {"solution": canon[tid]["prompt"] + canon[tid]["canonical_solution"]}
        out.append({"task_id": tid, **fields})
    return out


def _evalplus(samples: list[dict[str, str]], tmp: Path) -> list[dict[str, list[str]]]:
    sp, script, out = tmp / "ref-samples.jsonl", tmp / "ref.py", tmp / "ref.json"
    sp.write_text("".join(json.dumps(s) + "\n" for s in samples))
    script.write_text(_EVALPLUS)
    env = {**os.environ, "HUMANEVAL_OVERRIDE_PATH": str(PLUS), "XDG_CACHE_HOME": str(tmp / "x")}
    subprocess.run([sys.executable, str(script), str(sp), str(out)], env=env, check=True,
                   timeout=900)  # fmt: skip
    result: list[dict[str, list[str]]] = json.loads(out.read_text())
    return result


def _ours(
    samples: list[dict[str, str]], tmp: Path, sanitize: bool, monkeypatch: pytest.MonkeyPatch
) -> list[list[str]]:
    """The real runner on a replay file; the task built as `--sanitize` will build it."""
    path = tmp / f"samples-{sanitize}.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in samples))
    monkeypatch.setattr(
        runner, "make_task", lambda name, opts: HumanEvalPlusTask(sanitize=sanitize)
    )
    res = run(RunOptions(model=f"replay:{path}", tasks=["humaneval-plus"],
                         data={"humaneval-plus": str(PLUS)}), Store(tmp / "s.sqlite"))  # fmt: skip
    by = {(r["item_id"], r["sample_index"]): r["details"] for r in res.rows}
    seen: dict[str, int] = {}
    out = []
    for s in samples:
        k = seen.get(s["task_id"], 0)
        seen[s["task_id"]] = k + 1
        d = by[(s["task_id"], k)]
        out.append([d["base"], d["plus"]])
    return out


def _check(name: str, sanitize: bool, ours: list[str], theirs: list[str]) -> str | None:
    """None if the verdicts agree as the README says they must; else what is wrong."""
    if (name, sanitize) in DEVIATIONS:
        want = DEVIATIONS[(name, sanitize)]
        ok = (ours, theirs) == (want[0], want[1])
        return None if ok else f"deviation changed: {ours} {theirs}"
    if (name, sanitize) in CPU_LIMITED:
        ok = ours[0] == "timeout" and theirs[0] in ("fail", "timeout")
        return None if ok else f"expected our timeout: {ours} {theirs}"
    same = all(_same(a, b) for a, b in zip(ours, theirs, strict=True))
    return None if same else f"ours {ours} != EvalPlus {theirs}"


def test_replay_verdicts_equal_evalplus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    samples = _samples()
    assert len(samples) >= 20
    theirs = _evalplus(samples, tmp_path)
    problems: list[str] = []
    for sanitize, mode in ((True, "sanitized"), (False, "raw")):
        (tmp_path / mode).mkdir()
        ours = _ours(samples, tmp_path / mode, sanitize, monkeypatch)
        for (name, tid, _), o, t in zip(REPLIES, ours, theirs, strict=True):
            msg = _check(name, sanitize, o, t[mode])
            if msg:
                problems.append(f"{name} ({tid}, sanitize={sanitize}): {msg}")
    assert not problems, "\n".join(problems)
    # Not vacuous: sanitizing changes verdicts, both ways of passing and failing occur.
    flat = {m: [t[m][0] for t in theirs] for m in ("raw", "sanitized")}
    assert flat["sanitized"].count("pass") >= 12
    assert flat["raw"].count("pass") < flat["sanitized"].count("pass")
    assert flat["sanitized"].count("fail") >= 5


def test_live_backend_gives_the_replay_verdicts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An OpenAI-compatible server answering the same text: the same verdicts as --sanitize."""
    samples = _samples()
    first: dict[str, dict[str, str]] = {}
    for s in samples:
        if "solution" in s:
            first.setdefault(s["task_id"], s)
    chosen = list(first.values())
    with_prompt = {}
    with gzip.open(PLUS, "rt") as f:
        entry = {r["task_id"]: r["entry_point"] for r in map(json.loads, f)}
    for s in chosen:
        with_prompt[f"def {entry[s['task_id']]}("] = s["solution"]

    def reply(model: str, prompt: str) -> str:
        return next(text for key, text in with_prompt.items() if key in prompt)

    monkeypatch.setattr(counting_server, "reply_for", reply)
    monkeypatch.setenv("OPENAI_API_KEY", "x")
    with CountingServer() as srv:
        res = run(RunOptions(model="openai:live", model_options={"base_url": srv.url},
                             tasks=["humaneval-plus"], data={"humaneval-plus": str(PLUS)},
                             task_ids=[s["task_id"] for s in chosen]),
                  Store(tmp_path / "live.sqlite"))  # fmt: skip
    live = {r["item_id"]: [r["details"]["base"], r["details"]["plus"]] for r in res.rows}
    replay = _ours(chosen, tmp_path, True, monkeypatch)
    assert [live[s["task_id"]] for s in chosen] == replay
    assert len(chosen) >= 9
