"""The run path end to end on scripted backends: caching, resume, records, bad input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from codal_bench import registry
from codal_bench.runner import RunOptions, run
from codal_bench.store import Store
from codal_bench.summary import metric_value
from codal_bench.types import CodalError, UsageError
from tests.fakes import CountingBackend, JudgeBackend, TrackedJudge


@pytest.fixture(autouse=True)
def fake_backends() -> Iterator[None]:
    registry.register("backend", "counting", "tests.fakes:CountingBackend")
    registry.register("backend", "judge", "tests.fakes:JudgeBackend")
    CountingBackend.calls.clear()
    JudgeBackend.calls.clear()
    yield
    registry.unregister("backend", "counting")
    registry.unregister("backend", "judge")


def _opts(codal_data: Path, **kw: object) -> RunOptions:
    base: dict[str, object] = dict(
        model="counting:m1",
        judge="judge:j1",
        tasks=["codal-bench"],
        limit=2,
        data={"codal-bench": str(codal_data)},
    )
    base.update(kw)
    return RunOptions(**base)  # type: ignore[arg-type]


def test_codal_run_records_and_second_run_makes_no_calls(
    codal_data: Path, store_path: Path
) -> None:
    store = Store(store_path)
    first = run(_opts(codal_data), store)
    assert len(CountingBackend.calls) == 10  # 2 per preference × 5
    assert len(JudgeBackend.calls) == 10
    assert set(first.summary["tasks"]["codal-bench"]["metrics"]) == {
        "codal-instruction-following",
        "codal-explanation",
        "codal-complexity",
        "codal-readability",
        "codal-style",
        "codal-average",
    }
    info = store.run(first.run_id or "")
    assert info.status == "complete"
    assert info.config.judge and info.config.judge.reference == "claude-3-sonnet-20240229_response"
    assert len(info.record.items["codal-bench"]) == 10
    rows = store.results(info.run_id)
    assert len(rows) == 10 and all(r["status"] == "rated" for r in rows)
    assert all(r["rationale"] for r in rows)

    second = run(_opts(codal_data), store)
    assert len(CountingBackend.calls) == 10 and len(JudgeBackend.calls) == 10  # zero new calls
    assert second.summary == first.summary
    assert second.record.counts["requests_sent"] == 0


@pytest.mark.parametrize(
    ("judge", "judge_options", "instances"),
    [("tracked:m", {}, 1), ("tracked:m", {"temperature_scale": 2}, 2), ("tracked:other", {}, 2)],
)
def test_the_candidates_backend_judges_when_the_judge_is_the_same_model(
    codal_data: Path,
    store_path: Path,
    judge: str,
    judge_options: dict[str, object],
    instances: int,
) -> None:
    """One backend (one local engine) when candidate and judge are the same spec with the same
    options, closed once after judging; otherwise the candidate's is closed before judging."""
    registry.register("backend", "tracked", "tests.fakes:TrackedJudge")
    TrackedJudge.instances.clear()
    TrackedJudge.calls.clear()
    try:
        res = run(
            _opts(codal_data, model="tracked:m", judge=judge, judge_options=judge_options),
            Store(store_path),
        )
    finally:
        registry.unregister("backend", "tracked")
    assert res.status == "complete"
    assert len(TrackedJudge.calls) == 20  # 10 answers, 10 ratings
    assert len(TrackedJudge.instances) == instances
    closes = [b.closed_after_calls for b in TrackedJudge.instances]
    assert closes == ([[20]] if instances == 1 else [[10], [20]])


def test_new_judge_regrades_but_reuses_answers(codal_data: Path, store_path: Path) -> None:
    store = Store(store_path)
    run(_opts(codal_data), store)
    run(_opts(codal_data, judge="judge:j2"), store)
    assert len(CountingBackend.calls) == 10
    assert len(JudgeBackend.calls) == 20


def test_parse_failures_counted_zero(codal_data: Path, store_path: Path) -> None:
    store = Store(store_path)
    res = run(_opts(codal_data, judge="judge:mute", limit=1), store)
    assert res.record.reports["codal-bench"]["diagnostics"]["parse_failures"] == 5
    assert metric_value(res.summary, "codal-bench", "codal-average") == 0.0
    assert {r["status"] for r in res.rows} == {"parse_failure"}


def test_judge_repeats_make_distinct_cached_calls(codal_data: Path, store_path: Path) -> None:
    store = Store(store_path)
    run(_opts(codal_data, limit=1, judge_repeats=3), store)
    assert len(JudgeBackend.calls) == 15
    assert sorted({r.sample_index for r in JudgeBackend.calls}) == [0, 1, 2]
    run(_opts(codal_data, limit=1, judge_repeats=3), store)
    assert len(JudgeBackend.calls) == 15


def test_codal_needs_a_judge(codal_data: Path, store_path: Path) -> None:
    with pytest.raises(UsageError, match="needs a judge"):
        run(_opts(codal_data, judge=None), Store(store_path))


def test_unknown_task_suggests(codal_data: Path, store_path: Path) -> None:
    with pytest.raises(UsageError, match="did you mean codal-bench"):
        run(_opts(codal_data, tasks=["codal-bnech"]), Store(store_path))


def test_dry_run_counts_cache_hits_and_sends_nothing(codal_data: Path, store_path: Path) -> None:
    store = Store(store_path)
    res = run(_opts(codal_data, dry_run=True), store)
    assert res.dry_run and res.dry_run["requests"] == 10 and res.dry_run["cached"] == 0
    assert CountingBackend.calls == [] and store.runs() == []
    run(_opts(codal_data, limit=1), store)
    res = run(_opts(codal_data, dry_run=True), store)
    assert res.dry_run and res.dry_run["cached"] == 5
    assert len(CountingBackend.calls) == 5


def test_changed_sampling_is_a_cache_miss(codal_data: Path, store_path: Path) -> None:
    store = Store(store_path)
    run(_opts(codal_data, limit=1), store)
    run(_opts(codal_data, limit=1, max_tokens=100), store)
    assert len(CountingBackend.calls) == 10


def test_corrupt_store_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(CodalError, match="cannot be used"):
        Store(bad)


def test_swapping_templates_regrades(
    codal_data: Path, store_path: Path, upstream_prompts: Path
) -> None:
    store = Store(store_path)
    run(_opts(codal_data, limit=1, judge_templates="codal-eval"), store)
    run(_opts(codal_data, limit=1, judge_templates=str(upstream_prompts)), store)
    assert len(CountingBackend.calls) == 5
    assert len(JudgeBackend.calls) == 10
    run(_opts(codal_data, limit=1, judge_templates=str(upstream_prompts)), store)
    assert len(JudgeBackend.calls) == 10
    # The default (the paper's prompts read from the pinned source files) sends the very same
    # judge requests as the paper's prompts given as .txt files: answered from the cache.
    run(_opts(codal_data, limit=1), store)
    assert len(JudgeBackend.calls) == 10


def test_grade_command_regrades_without_generating(codal_data: Path, store_path: Path) -> None:
    from codal_bench.regrade import regrade

    store = Store(store_path)
    first = run(_opts(codal_data, limit=1, tasks=["codal-bench"]), store)
    assert first.run_id
    res = regrade(store, first.run_id, judge="judge:j2")
    assert len(CountingBackend.calls) == 5  # no new answers
    assert len(JudgeBackend.calls) == 10
    info = store.run(res.run_id or "")
    assert info.config.parent_run == first.run_id and info.config.judge_spec == "judge:j2"
    assert info.status == "complete" and len(store.results(info.run_id)) == 5
    old = {r["item_id"]: r["answer"] for r in first.rows}
    assert {r["item_id"]: r["answer"] for r in store.results(info.run_id)} == old
    regrade(store, first.run_id, judge="judge:j2")
    assert len(JudgeBackend.calls) == 10  # the same judge again: all cached
