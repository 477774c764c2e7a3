"""Repeating a stored run's items and settings with another model (the CI gate) or judge.

A stored run's config is enough to rebuild its options: tasks, item ids, per-task sampling,
judge templates, reference and prompt set all live there.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .progress import Progress
from .runner import RunOptions, run
from .store import Store


def rerun_options(
    base: dict[str, Any], record: dict[str, Any], model: str, judge: str | None
) -> RunOptions:
    """Options that reproduce a stored run's items and settings for another model."""
    tasks = list(base["tasks"])
    ids = [i for t in tasks for i in record.get("items", {}).get(t, [])]
    data = {
        t: v["data"]["source"]
        for t, v in base["tasks"].items()
        if v.get("data", {}).get("source") and not v["data"]["source"].startswith("hf:")
    }
    ps = base["tasks"].get("codal-bench", {}).get("prompt_set") or {}
    tmpl = base.get("judge_templates") or {}
    sampling = {t: {**v["sampling"], "samples": v["samples"]} for t, v in base["tasks"].items()}
    return RunOptions(
        model=model,
        judge=judge or base.get("judge"),
        tasks=tasks,
        task_ids=ids or None,
        data=data,
        principles=None if ps.get("name") in (None, "codal") else ps["name"],
        reference=base.get("reference"),
        judge_templates=tmpl.get("name"),
        judge_repeats=base.get("judge_repeats", 1),
        task_sampling=sampling,
    )


def run_like(
    store: Store,
    baseline_run_id: str,
    model: str,
    judge: str | None = None,
    progress: Progress | None = None,
    **overrides: Any,
) -> str:
    """Run `model` on exactly the items and settings of a stored run (for the CI gate)."""
    base = store.run(baseline_run_id)
    opts = replace(rerun_options(base.config, base.record, model, judge), **overrides)
    result = run(opts, store, progress)
    assert result.run_id is not None
    return result.run_id
