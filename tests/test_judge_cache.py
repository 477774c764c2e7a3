"""The judge through a counting fake backend and a Store-backed cache, as the runner drives it.

Swapping the judge or its templates must re-grade; the same judge again must not call the
backend; `repeats=K` is K distinct, separately cached calls per answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from codal_bench.codal.judge import LLMJudge, reference_column
from codal_bench.store import Store
from codal_bench.types import (
    GenerateFn,
    Generation,
    Grade,
    GradeInput,
    Judge,
    Request,
    Sample,
    UsageError,
)

CLAUDE = "claude-3-sonnet-20240229_response"


class CountingBackend:
    """Answers from a script (by call order) and counts every request it receives."""

    def __init__(self, name: str = "fake-judge", outputs: Sequence[str | None] = ()) -> None:
        self.name = name
        self.outputs = list(outputs)
        self.requests: list[Request] = []

    def identity(self) -> dict[str, Any]:
        return {"backend": "fake", "model": self.name}

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        out = []
        for r in requests:
            i = len(self.requests)
            self.requests.append(r)
            text = (
                self.outputs[i % len(self.outputs)]
                if self.outputs
                else f"Fine.\nRating: {i % 10 + 1}"
            )
            if text is None:
                out.append(Generation(r.key, None, error="HTTP 500 after 3 retries"))
            else:
                out.append(Generation(r.key, text, finish_reason="stop"))
        return out

    def close(self) -> None:
        pass


def cached_generate(store: Store, backend: CountingBackend) -> GenerateFn:
    """What the runner hands the judge: only keys missing from the store reach the backend."""

    def generate(requests: Sequence[Request]) -> list[Generation]:
        have = store.get_generations(r.key for r in requests)
        missing = [r for r in requests if r.key not in have]
        new = backend.generate(missing) if missing else []
        store.put_generations(new, backend.name, {r.key: {"item": r.item_id} for r in missing})
        have.update({g.key: g for g in new})
        return [have[r.key] for r in requests]

    return generate


def grade_cached(
    store: Store, judge: LLMJudge, items: Sequence[GradeInput], gen: GenerateFn
) -> list[Grade]:
    """The runner's grade step: look up grade keys, grade only what is missing, store it."""
    keys = [judge.grade_key(it) for it in items]
    have = store.get_grades(keys)
    todo = [it for it, k in zip(items, keys, strict=True) if k not in have]
    new = judge.grade(todo, gen)
    store.put_grades(new, "judge")
    have.update({g.key: g for g in new})
    return [have[k] for k in keys]


def items(n: int = 3, pref: str = "style") -> list[GradeInput]:
    out = []
    for i in range(n):
        data = {"instruction": f"task {i}", "preference": pref, CLAUDE: f"reference {i}"}
        sample = Sample("codal-bench", f"{pref}-{i}", pref, data)
        out.append(GradeInput(sample, f"answer {i}"))
    return out


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "results.sqlite")


def test_judge_satisfies_the_protocol() -> None:
    judge = LLMJudge(CountingBackend(), model_name="fake")
    assert isinstance(judge, Judge) and judge.kind == "llm"
    ident = judge.identity()
    assert ident["temperature"] == 0.0 and ident["max_tokens"] == 1024
    assert ident["backend"] == {"backend": "fake", "model": "fake-judge"}
    assert ident["templates_sha256"] == judge.templates.sha256


def test_same_judge_again_makes_no_calls(store: Store) -> None:
    backend = CountingBackend()
    judge = LLMJudge(backend, model_name="fake")
    first = grade_cached(store, judge, items(), cached_generate(store, backend))
    assert len(backend.requests) == 3
    again = LLMJudge(backend, model_name="fake")  # a fresh judge object, same identity
    second = grade_cached(store, again, items(), cached_generate(store, backend))
    assert len(backend.requests) == 3
    assert [g.rating for g in second] == [g.rating for g in first]
    # Even with the grade cache gone, the generation cache answers.
    with store.transaction() as c:
        c.execute("DELETE FROM grades")
    grade_cached(store, again, items(), cached_generate(store, backend))
    assert len(backend.requests) == 3


def test_swapping_the_judge_regrades(store: Store) -> None:
    a, b = CountingBackend("judge-a"), CountingBackend("judge-b")
    grade_cached(store, LLMJudge(a, model_name="a"), items(), cached_generate(store, a))
    grade_cached(store, LLMJudge(b, model_name="b"), items(), cached_generate(store, b))
    assert (len(a.requests), len(b.requests)) == (3, 3)
    # Sampling settings are part of the judge: changing them re-grades too.
    judge_hot = LLMJudge(a, model_name="a", temperature=0.7, max_tokens=256)
    grade_cached(store, judge_hot, items(), cached_generate(store, a))
    assert len(a.requests) == 6
    assert a.requests[-1].params.temperature == 0.7 and a.requests[-1].params.max_tokens == 256


def test_swapping_the_templates_regrades(store: Store, upstream_prompts: Path) -> None:
    backend = CountingBackend()
    ours = LLMJudge(backend, model_name="fake", templates="codal-eval")
    upstream = LLMJudge(backend, model_name="fake", templates=str(upstream_prompts))
    assert ours.grade_key(items()[0]) != upstream.grade_key(items()[0])
    grade_cached(store, ours, items(), cached_generate(store, backend))
    grade_cached(store, upstream, items(), cached_generate(store, backend))
    assert len(backend.requests) == 6
    grade_cached(store, upstream, items(), cached_generate(store, backend))
    assert len(backend.requests) == 6


def test_changing_answer_or_reference_regrades_only_that_item(store: Store) -> None:
    backend = CountingBackend()
    judge = LLMJudge(backend, model_name="fake")
    gen = cached_generate(store, backend)
    grade_cached(store, judge, items(), gen)
    changed = items()
    changed[0] = GradeInput(changed[0].sample, "a different answer")
    data = dict(changed[1].sample.data, **{CLAUDE: "another reference"})
    changed[1] = GradeInput(Sample("codal-bench", "style-1", "style", data), changed[1].answer)
    grade_cached(store, judge, changed, gen)
    assert len(backend.requests) == 5


def test_repeats_make_k_distinct_calls_each_cached_by_index(store: Store) -> None:
    backend = CountingBackend()
    judge = LLMJudge(backend, model_name="fake", repeats=3)
    expanded = judge.expand_repeats(items(2))
    assert [it.repeat for it in expanded] == [0, 1, 2, 0, 1, 2]
    grades = grade_cached(store, judge, expanded, cached_generate(store, backend))
    assert len(backend.requests) == 6
    assert len({r.key for r in backend.requests}) == 6
    assert [r.sample_index for r in backend.requests] == [0, 1, 2, 0, 1, 2]
    assert len({g.key for g in grades}) == 6
    # Going from 3 to 4 repeats only adds the new index.
    four = LLMJudge(backend, model_name="fake", repeats=4)
    grade_cached(store, four, four.expand_repeats(items(2)), cached_generate(store, backend))
    assert len(backend.requests) == 8
    with pytest.raises(UsageError):
        LLMJudge(backend, model_name="fake", repeats=0)


def test_grade_calls_generate_once_with_the_whole_batch() -> None:
    backend = CountingBackend()
    calls: list[int] = []

    def gen(requests: Sequence[Request]) -> list[Generation]:
        calls.append(len(requests))
        return backend.generate(requests)

    judge = LLMJudge(backend, model_name="fake", repeats=2)
    judge.grade(judge.expand_repeats(items(4)), gen)
    assert calls == [8]
    assert judge.grade([], gen) == [] and calls == [8]


def test_grade_records_rationale_rating_failures_and_config() -> None:
    outputs = ["Rationale: Tidy.\nRating: 8/10", "**Rating:** 6", None, "Rationale: x\nRating: 12"]
    backend = CountingBackend(outputs=outputs)
    judge = LLMJudge(backend, model_name="fake")
    got = judge.grade(items(4), backend.generate)
    assert [g.status for g in got] == ["rated", "parse_failure", "judge_error", "rated"]
    assert got[0].rating == 8.0 and got[0].rationale == "Tidy."
    assert got[0].details["judge_output"] == outputs[0]
    assert got[1].rating is None and got[1].details["judge_output"] == "**Rating:** 6"
    assert got[2].details["error"] == "HTTP 500 after 3 retries"
    assert got[3].rating == 12.0 and got[3].details["out_of_range"] is True
    for g in got:
        assert g.details["reference_column"] == CLAUDE
        assert g.details["temperature"] == 0.0 and g.details["max_tokens"] == 1024
        assert g.details["templates"]["sha256"] == judge.templates.sha256


def test_the_judge_sees_the_answer_text_and_the_requested_reference() -> None:
    backend = CountingBackend()
    data = {
        "instruction": "Sort a list.",
        "preference": "complexity",
        CLAUDE: "CLAUDE REF",
        "gpt-4-turbo_response": "GPT4 REF",
        "gpt-3.5-turbo_response": "GPT35 REF",
    }
    item = GradeInput(Sample("codal-bench", "c-1", "complexity", data), "sorted(xs)")
    LLMJudge(backend, model_name="claude-3-opus").grade([item], backend.generate)
    LLMJudge(backend, model_name="claude-3-opus", reference="gpt-4-turbo").grade(
        [item], backend.generate
    )
    first, second = (r.messages[-1].content for r in backend.requests)
    assert "CLAUDE REF" in first and "GPT4 REF" not in first
    assert "GPT4 REF" in second and "CLAUDE REF" not in second
    assert "sorted(xs)" in first and "'preference'" not in first  # the text, not the record
    assert [m.role for m in backend.requests[0].messages] == ["system", "user"]


@pytest.mark.parametrize(
    ("judge", "requested", "expected"),
    [
        ("gpt-3.5-turbo-0125", None, "gpt-3.5-turbo_response"),
        ("gpt-4", None, "gpt-4-turbo_response"),
        ("openai:gpt-4o", None, "gpt-4-turbo_response"),
        ("claude-3-opus-20240229", None, "claude-3-sonnet-20240229_response"),
        ("smollm2", None, "gpt-4-turbo_response"),
        ("/models/Llama-3-8B", None, "gpt-4-turbo_response"),
        ("gpt-4", "gpt-3.5-turbo", "gpt-3.5-turbo_response"),
        ("gpt-4", "claude-3-sonnet-20240229_response", CLAUDE),
    ],
)
def test_reference_column_full_data(judge: str, requested: str | None, expected: str) -> None:
    cols = ["instruction", "preference", CLAUDE, "gpt-3.5-turbo_response", "gpt-4-turbo_response"]
    assert reference_column(judge, cols, requested) == expected


def test_reference_column_partial_data() -> None:
    cols = ["instruction", "preference", CLAUDE]  # the 50-row partial file has only Claude
    assert reference_column("gpt-4", cols, None) == CLAUDE
    assert reference_column("smollm2", cols, None) == CLAUDE
    with pytest.raises(UsageError, match="gpt-4-turbo_response.*not in the data"):
        reference_column("gpt-4", cols, "gpt-4-turbo")
    with pytest.raises(UsageError, match="no reference column"):
        reference_column("gpt-4", ["instruction"], None)


def test_unknown_preference_fails_before_any_call() -> None:
    backend = CountingBackend()
    bad = items(1, pref="speed")
    with pytest.raises(UsageError, match="speed"):
        LLMJudge(backend, model_name="fake").grade(bad, backend.generate)
    assert backend.requests == []
