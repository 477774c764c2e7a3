"""One counting rule: a run's pass@1 is the same in the summary, the leaderboard, `check` and
`diff`, with passing, failing, timed-out, sandbox-error, generation-error and ungraded items."""

from __future__ import annotations

from pathlib import Path

import pytest

from codal_bench.gate import compare_runs, diff_runs
from codal_bench.leaderboard import compile_leaderboard
from codal_bench.store import ItemRef, Store
from codal_bench.summary import metric_value, run_summary
from codal_bench.types import Generation, Grade, content_hash

TASK = "humaneval-plus"
# item -> (generation error?, grade status or None for ungraded, plus verdict)
OUTCOMES = {
    "HumanEval/0": (False, "pass", "pass"),
    "HumanEval/1": (False, "pass", "pass"),
    "HumanEval/2": (False, "pass", "pass"),
    "HumanEval/3": (False, "fail", "fail"),  # wrong answer
    "HumanEval/4": (False, "timeout", "timeout"),  # too slow
    "HumanEval/5": (False, "error", "error"),  # crashed in the sandbox
    "HumanEval/6": (True, None, None),  # the model call failed after its retries
    "HumanEval/7": (False, None, None),  # answered but never graded
    "HumanEval/8": (False, "fail", "pass"),  # base fails: plus cannot pass
    "HumanEval/9": (False, "pass", "fail"),  # base passes, plus fails
}


def _write(
    store: Store, model: str, outcomes: dict[str, tuple[bool, str | None, str | None]]
) -> str:
    config = {
        "model": model,
        "tasks": {TASK: {"sampling": {"temperature": 0.0}, "samples": 1, "data": {}}},
    }
    rid = store.new_run(model, None, config)
    gens, grades, refs = [], [], []
    for item, (gen_error, base, plus) in outcomes.items():
        gk = content_hash([model, item])
        gens.append(
            Generation(gk, None, error="APIConnectionError") if gen_error else Generation(gk, "x")
        )
        key = None
        if base is not None:
            key = content_hash([gk, "grade"])
            status = (
                "pass" if base == "pass" and plus == "pass" else base if base != "pass" else plus
            )
            grades.append(Grade(key, str(status), details={"base": base, "plus": plus}))
        refs.append(ItemRef(TASK, item, TASK, 0, 0, gk, key))
    store.put_generations(gens, model, {})
    store.put_grades(grades, "exec")
    store.put_run_items(rid, refs)
    store.update_run(
        rid,
        status="complete",
        record={"items": {TASK: list(outcomes)}, "summary": run_summary(store.results(rid))},
    )
    return rid


def test_pass_at_1_agrees_everywhere(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    a = _write(store, "model-a", OUTCOMES)
    better = {**OUTCOMES, "HumanEval/3": (False, "pass", "pass")}
    b = _write(store, "model-b", better)
    # By hand: 3 of 10 pass plus (0, 1, 2), 4 of 10 pass base (and 9); errors count as fails.
    want = {"humaneval-plus": 3 / 10, "humaneval": 4 / 10}
    want_b = {"humaneval-plus": 4 / 10, "humaneval": 5 / 10}
    summary = store.run(a).record.summary
    for metric, value in want.items():
        assert metric_value(summary, TASK, metric) == pytest.approx(value)
    assert summary["tasks"][TASK]["errors"] == 2  # the failed call and the ungraded answer

    lb = compile_leaderboard(store, n_boot=50)
    (table,) = [t for t in lb.tables if t.kind == TASK and not t.published_only]
    rows = {r["run_id"]: r for r in table.frame.to_dict("records") if not r["published"]}
    for metric, value in want.items():
        assert rows[a][metric] == pytest.approx(value)
        assert rows[b][metric] == pytest.approx(want_b[metric])

    result = compare_runs(store, a, b, n_boot=200)
    by_name = {m.name: m for m in result.metrics}
    for metric, value in want.items():
        assert by_name[metric].baseline == pytest.approx(value)
        assert by_name[metric].candidate == pytest.approx(want_b[metric])
        assert by_name[metric].excluded == 0  # nothing dropped out of the comparison

    d = diff_runs(store, a, b)
    deltas = {m.name: m for m in d.metrics if m.task == TASK}
    for metric, value in want.items():
        assert deltas[metric].a == pytest.approx(value)
        assert deltas[metric].b == pytest.approx(want_b[metric])
    assert [f.item_id for f in d.fail_to_pass] == ["HumanEval/3"]


def test_a_different_grader_is_a_different_table() -> None:
    """An execution judge with other limits (or version) grades differently: its runs are not
    comparable, in the leaderboard or the gate, even with the same items and prompts."""
    from codal_bench import comparable
    from codal_bench.config import RunConfig, TaskSettings

    def config(time_factor: float) -> RunConfig:
        grader = {"humaneval": {"judge": "exec", "time_factor": time_factor}}
        return RunConfig("m", {TASK: TaskSettings(samples=1, graders=grader)})

    items = ["HumanEval/0", "HumanEval/1"]
    same = comparable.key(config(4.0), TASK, items) == comparable.key(config(4.0), TASK, items)
    a, b = comparable.key(config(4.0), TASK, items), comparable.key(config(2.0), TASK, items)
    assert same and a != b
    assert comparable.differences(a, b) == ["graders.humaneval.time_factor"]
