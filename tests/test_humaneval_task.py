"""The HumanEval+ task (loading, prompts, code extraction), the execution judge, and pass@k."""

from __future__ import annotations

import gzip
import json
import math
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from codal_bench.humaneval.judge import ExecJudge
from codal_bench.humaneval.task import (
    HumanEvalPlusMiniTask,
    HumanEvalPlusTask,
    extract_code,
)
from codal_bench.stats import pass_at_k
from codal_bench.types import GradeInput, Judge, Task, UsageError

ROOT = Path(__file__).resolve().parents[1]
PLUS = ROOT.parent / "shared" / "data" / "humanevalplus" / "HumanEvalPlus-v0.1.10.jsonl.gz"
MINI = ROOT.parent / "shared" / "data" / "humanevalplus" / "HumanEvalPlus-Mini-v0.1.10.jsonl.gz"


@pytest.fixture(autouse=True)
def _no_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HUMANEVAL_OVERRIDE_PATH", raising=False)
    monkeypatch.setenv("CODAL_BENCH_CACHE", str(tmp_path / "cache"))


def test_protocols() -> None:
    assert isinstance(HumanEvalPlusTask(), Task)
    assert isinstance(ExecJudge(), Judge)
    assert HumanEvalPlusTask.name == "humaneval-plus"
    assert HumanEvalPlusMiniTask.name == "humaneval-plus-mini"


def test_load_from_argument_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    task = HumanEvalPlusTask()
    samples = task.load(str(PLUS))
    assert len(samples) == 164
    s = samples[0]
    assert (s.task, s.item_id, s.group) == ("humaneval-plus", "HumanEval/0", "humaneval-plus")
    assert s.data["entry_point"] == "has_close_elements" and s.data["plus_input"]
    d = task.describe()
    assert d["source"] == str(PLUS)
    assert d["data_sha256"] == "272720b90ac375502c8ed23cd791c2a93dfb22a911641a494da74a426c09f101"
    assert len(d["prompt_sha256"]) == 64

    monkeypatch.setenv("HUMANEVAL_OVERRIDE_PATH", str(MINI))
    mini = HumanEvalPlusMiniTask()
    got = mini.load(limit=3)
    assert [x.item_id for x in got] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    assert got[0].task == "humaneval-plus-mini"
    assert len(got[0].data["plus_input"]) < len(samples[0].data["plus_input"])


def test_ids_and_limit() -> None:
    task = HumanEvalPlusTask()
    got = task.load(str(PLUS), ids=["HumanEval/53", "HumanEval/8"])
    assert [s.item_id for s in got] == ["HumanEval/53", "HumanEval/8"]
    assert task.load(str(PLUS), limit=0) == []
    with pytest.raises(UsageError, match="HumanEval/999"):
        task.load(str(PLUS), ids=["HumanEval/999"])


def test_plain_jsonl(tmp_path: Path) -> None:
    p = tmp_path / "he.jsonl"
    with gzip.open(PLUS, "rt") as f:
        p.write_text("".join(next(f) for _ in range(2)))
    assert len(HumanEvalPlusTask().load(str(p))) == 2


def test_bad_files(tmp_path: Path) -> None:
    task = HumanEvalPlusTask()
    with pytest.raises(UsageError, match="does not exist"):
        task.load(str(tmp_path / "missing.jsonl.gz"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task_id": "x"}\n')
    with pytest.raises(UsageError, match="missing prompt"):
        task.load(str(bad))
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{not json\n")
    with pytest.raises(UsageError, match=r"broken.jsonl:1: invalid JSON"):
        task.load(str(broken))
    notgz = tmp_path / "x.jsonl.gz"
    notgz.write_text("plain")
    with pytest.raises(UsageError, match="cannot read"):
        task.load(str(notgz))


def test_download_failure_says_how_to_point_at_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: Any, **kwargs: Any) -> Any:
        raise OSError("network unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(UsageError) as err:
        HumanEvalPlusTask().load()
    msg = str(err.value)
    assert "\n" not in msg and "HUMANEVAL_OVERRIDE_PATH" in msg and "v0.1.10" in msg


def test_messages_contain_the_prompt() -> None:
    task = HumanEvalPlusTask()
    s = task.load(str(PLUS), limit=1)[0]
    msgs = task.messages(s)
    assert msgs[-1].role == "user" and s.data["prompt"] in msgs[-1].content
    assert "```python" in msgs[-1].content


PROMPT = 'def add(x, y):\n    """Add."""\n'


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Sure!\n```python\ndef add(x, y):\n    return x + y\n```\nDone.",
         "def add(x, y):\n    return x + y\n"),
        ("```py\nimport math\n```\n```python\ndef add(x, y):\n    return x+y\n```",
         "def add(x, y):\n    return x+y\n"),
        ("    return x + y\n", PROMPT + "    return x + y\n"),
        ("```python\n    return x + y\n```", PROMPT + "    return x + y\n"),
        ("def add(x, y):\n    return x + y", "def add(x, y):\n    return x + y"),
        ("```python\ndef add(x, y):\n    return x + y\n", "def add(x, y):\n    return x + y\n"),
    ],
    ids=["fenced", "picks-block-with-def", "bare-body", "fenced-body", "raw", "unclosed-fence"],
)  # fmt: skip
def test_extract_code(reply: str, expected: str) -> None:
    assert extract_code(reply, PROMPT, "add") == expected


def test_exec_judge_grades(tmp_path: Path) -> None:
    task = HumanEvalPlusTask()
    samples = task.load(str(PLUS), ids=["HumanEval/53", "HumanEval/8"])
    add, sp = samples
    judge = ExecJudge(cache_dir=str(tmp_path / "c"), progress=False)
    items = [
        # EvalPlus "solution" style: full code in a fenced block
        GradeInput(add, "```python\ndef add(x: int, y: int):\n    return x + y\n```"),
        # EvalPlus "completion" style: just the body
        GradeInput(sp, sp.data["canonical_solution"]),
        GradeInput(add, "def add(x, y):\n    return x - y\n"),
        GradeInput(add, "def add(x, y):\n    while True:\n        pass\n"),
    ]
    grades = judge.grade(items, generate=lambda reqs: [])
    assert [g.status for g in grades] == ["pass", "pass", "fail", "timeout"]
    assert grades[0].details["base"] == grades[0].details["plus"] == "pass"
    assert grades[2].details["first_failed"]["group"] == "base"
    assert grades[2].details["first_failed"]["reason"] == "wrong output"
    assert set(grades[3].details) >= {"base", "plus", "first_failed", "stderr_tail"}
    keys = {judge.grade_key(it) for it in items}
    assert len(keys) == 4 and grades[0].key == judge.grade_key(items[0])
    assert judge.grade([], generate=lambda reqs: []) == []


def test_pass_at_k() -> None:
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(10, 0, 5) == 0.0
    assert pass_at_k(10, 6, 5) == 1.0
    for n, c, k in [(10, 3, 5), (20, 7, 10), (200, 13, 100)]:
        assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k))
    with pytest.raises(ValueError):
        pass_at_k(5, 6, 1)


def test_expected_outputs_are_cached_compactly(tmp_path: Path) -> None:
    """Second preparation reads the cache; exact-match problems keep digests, float ones values."""
    from codal_bench.humaneval.checker import HumanEvalChecker

    rows = [
        s.data for s in HumanEvalPlusTask().load(str(PLUS), ids=["HumanEval/53", "HumanEval/2"])
    ]
    first = HumanEvalChecker(cache_dir=tmp_path, progress=False).prepare(rows)
    files = list((tmp_path / "humaneval-expected").glob("*.json.gz"))
    assert len(files) == 2
    assert first["HumanEval/53"].mode == "digest" and first["HumanEval/2"].mode == "values"
    again = HumanEvalChecker(cache_dir=tmp_path, progress=False)
    again._compute = None  # type: ignore[assignment,method-assign]  # must not recompute
    second = again.prepare(rows)
    assert second["HumanEval/53"].digests == first["HumanEval/53"].digests
    cached = json.loads(gzip.decompress(files[0].read_bytes()))
    assert set(cached) >= {"mode", "times"}
