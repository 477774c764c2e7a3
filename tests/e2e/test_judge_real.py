"""The CODAL judge with the real embedded SmolLM2 through vLLM in-process (no runner needed).

A 135M model is a poor judge, which is the point here: its outputs exercise both the rated and
the parse-failure paths on real text, and the report must carry rationale, rating or failure,
the judge config and the diagnostics either way.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from codal_bench.codal.judge import LLMJudge
from codal_bench.codal.report import codal_report
from codal_bench.store import Store
from codal_bench.types import Backend, Generation, GradeInput, Request, Sample

pytestmark = pytest.mark.e2e

CLAUDE = "claude-3-sonnet-20240229_response"
MAX_TOKENS = 160  # short rationales keep a CPU run quick; recorded with every grade


@pytest.fixture(scope="module")
def backend(smollm2_dir: Path) -> Iterator[Backend]:
    # smollm2_dir: the shared session fixture converts the embedded model once for all e2e tests.
    from codal_bench.backends.vllm import VLLMBackend

    b = VLLMBackend("smollm2")
    yield b
    b.close()


def _items(data: Path) -> list[GradeInput]:
    """Two short real rows of different preferences; the answer is a cut of the reference."""
    rows = [json.loads(line) for line in data.read_text().splitlines() if line.strip()]
    picked: dict[str, dict[str, Any]] = {}
    for r in sorted(rows, key=lambda r: len(r["instruction"]) + len(r[CLAUDE])):
        picked.setdefault(r["preference"], r)
    out = []
    for i, r in enumerate(list(picked.values())[:2]):
        sample = Sample("codal-bench", f"real-{i}", r["preference"], dict(r))
        out.append(GradeInput(sample, r[CLAUDE][:400]))
    return out


def test_real_judge_grades_records_and_reports(
    backend: Backend, tmp_path: Path, codal_data: Path
) -> None:
    store = Store(tmp_path / "results.sqlite")
    calls: list[int] = []

    def generate(requests: Sequence[Request]) -> list[Generation]:
        have = store.get_generations(r.key for r in requests)
        missing = [r for r in requests if r.key not in have]
        calls.append(len(missing))
        new = backend.generate(missing) if missing else []
        store.put_generations(new, "smollm2", {})
        have.update({g.key: g for g in new})
        return [have[r.key] for r in requests]

    judge = LLMJudge(backend, model_name="smollm2", repeats=2, max_tokens=MAX_TOKENS)
    items = judge.expand_repeats(_items(codal_data))
    grades = judge.grade(items, generate)
    assert calls == [len(items)]
    for g in grades:
        assert g.status in ("rated", "parse_failure"), g.details.get("error")
        d = g.details
        assert d["judge_output"].strip()
        assert d["reference_column"] == CLAUDE
        assert d["temperature"] == 0.0 and d["max_tokens"] == MAX_TOKENS
        assert d["templates"]["name"] == "paper"  # the published templates by default
        if g.status == "rated":
            assert g.rating is not None and isinstance(g.rationale, str)
        else:
            assert g.rating is None
    store.put_grades(grades, "vllm:smollm2")

    rows = [
        {
            "task": "codal-bench", "item_id": it.sample.item_id, "group": it.sample.group,
            "sample_index": 0, "repeat": it.repeat, "answer": it.answer, "gen_error": None,
            "status": g.status, "rating": g.rating, "rationale": g.rationale,
            "details": g.details,
        }
        for it, g in zip(items, grades, strict=True)
    ]  # fmt: skip
    rep = codal_report(rows, candidate="smollm2", judge="smollm2", reference=None, n_boot=1000)
    diag = rep["diagnostics"]
    assert diag["outputs"] == len(items)
    assert 0.0 <= diag["parse_failure_rate"] <= 1.0
    assert diag["self_preference"]["flag"] is True  # smollm2 judging smollm2
    assert diag["aa_noise"] is not None and diag["aa_noise"]["repeats"] == 2
    assert "length_slope" in diag
    # Two preferences graded: each has a published mean, but there is no five-preference average.
    assert all(
        rep["preferences"][it.sample.group]["published"]["value"] is not None for it in items
    )
    assert rep["average"]["published"]["value"] is None

    # The same judge again: every request is served from the store.
    judge.grade(items, generate)
    assert calls[-1] == 0
