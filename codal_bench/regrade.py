"""`grade RUN`: grade a stored run's answers again with another judge, without generating.

The new run points at the same generation keys as the old one and at new grade keys for every
task graded through a model judge; the grades of other tasks (execution, which does not depend on
the judge) are carried over as they are.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from .config import RunConfig, RunOptions, TaskSettings
from .judging import build_judges, model_judged
from .progress import Progress
from .runner import Runner, RunResult, _judge_settings, make_task
from .spec import build_backend, parse_spec
from .store import ItemRef, Store
from .summary import run_summary
from .types import GradeInput, UsageError


def _same_revision(opts: RunOptions, tasks: dict[str, TaskSettings]) -> RunOptions:
    """Read the dataset at the commit the run read: what it asked for (nothing, a branch or a
    tag) may resolve to a newer commit today."""
    for settings in tasks.values():
        dataset = settings.data.get("dataset") or {}
        if dataset.get("revision_from") == "datasets" and dataset.get("revision"):
            return replace(opts, data_revision=str(dataset["revision"]))
    return opts


def _same_data(run_id: str, task: str, was: dict[str, Any], now: dict[str, Any]) -> None:
    """The new grades are filed under the run's data hash, so they must be graded against that
    very data (references included): a file edited or replaced since is refused."""
    old, new = was.get("data_sha256"), now.get("data_sha256")
    if old and old != new:
        source = str(was.get("source") or "")
        how = (
            "unset $CODAL_BENCH_DATA, so that it is downloaded again"
            if source.startswith("hf:")
            else "put that file back (or point $CODAL_BENCH_DATA at a copy of it)"
        )
        raise UsageError(
            f"grade: {task} data differs from the data run {run_id} was made on "
            f"(sha256 {str(new)[:12]}… from {now.get('source')}, run had {str(old)[:12]}… from "
            f"{source}); {how}"
        )


def regrade(
    store: Store,
    run_id: str,
    *,
    judge: str | None,
    judge_options: dict[str, Any] | None = None,
    judge_templates: str | None = None,
    reference: str | None = None,
    judge_repeats: int = 1,
    concurrency: int = 8,
    progress: Progress | None = None,
    max_error_rate: float = 0.0,
    max_parse_failure_rate: float = 0.5,
    name: str | None = None,
    tags: Sequence[str] = (),
) -> RunResult:
    from .outcome import decide
    from .records import run_record

    base = store.run(run_id)
    opts = base.config.rerun_options(base.record.items, base.model, judge)
    opts = replace(
        opts,
        judge_templates=judge_templates or opts.judge_templates,
        reference=reference,  # None: the new judge's own default reference column
        judge_repeats=judge_repeats,
        judge_options=judge_options or {},
    )
    opts = _same_revision(opts, base.config.tasks)
    if not opts.judge:
        raise UsageError("grade: pass --judge SPEC")
    tasks = [make_task(t, opts) for t in base.config.tasks]
    tasks = [t for t in tasks if model_judged(t)]
    if not tasks:
        raise UsageError(f"run {base.run_id} has no answers graded by a model judge to re-grade")
    t0 = time.monotonic()
    samples = {}
    for task in tasks:
        for s in task.load(opts.data.get(task.name), None, None):
            samples[(task.name, s.item_id)] = s
        _same_data(base.run_id, task.name, base.config.tasks[task.name].data, task.describe())
    judge_spec = parse_spec(opts.judge, opts.judge_options)
    judge_backend = build_backend(judge_spec)
    judges = {
        k: j for k, j in build_judges(tasks, judge_backend, judge_spec, opts).items()
        if j.kind == "llm"
    }  # fmt: skip
    names = {t.name for t in tasks}

    rows = store.results(base.run_id)
    items: dict[str, list[GradeInput]] = {k: [] for k in judges}
    gen_of: dict[tuple[str, str, int], tuple[str, str]] = {}
    kinds = {t.name: [k for k in t.judge_kinds if k in judges] for t in tasks}
    for r in rows:
        if r["task"] not in names or r["repeat"] != 0:
            continue
        gen_of[(r["task"], r["item_id"], r["sample_index"])] = (r["gen_key"], r["group"])
        sample = samples.get((r["task"], r["item_id"]))
        if r["answer"] is None or sample is None:
            continue
        for kind in kinds[r["task"]]:
            for rep in range(judge_repeats):
                items[kind].append(GradeInput(sample, r["answer"], r["sample_index"], rep))

    config = RunConfig(
        **{
            **base.config.__dict__,
            "command": "grade",
            "parent_run": base.run_id,
            "judge": _judge_settings(judges, tasks, judge_spec, opts),
            "options": {**base.config.options, **opts.to_stored()},
        }
    )
    store.check_writable()
    new_id = store.new_run(base.model, str(judge_spec), config, name=name, tags=tags)
    runner = Runner(store, progress)
    with store.running(new_id):
        generate = runner.cached_generate(judge_backend, judge_spec, concurrency, 300.0, "judge")
        refs: list[ItemRef] = []
        for kind, judge_ in judges.items():
            keys = runner.grade(judge_, str(judge_spec), items[kind], generate, kind)
            for i in items[kind]:
                t = i.sample.task
                refs.append(
                    ItemRef(
                        t, i.sample.item_id, i.sample.group, i.sample_index, i.repeat,
                        gen_of[(t, i.sample.item_id, i.sample_index)][0],
                        keys[(i.sample.item_id, i.sample_index, i.repeat)],
                    )
                )  # fmt: skip
        graded = {(x.task, x.item_id, x.sample_index) for x in refs}
        for (t, iid, k), (gk, grp) in gen_of.items():
            if (t, iid, k) not in graded:
                refs.append(ItemRef(t, iid, grp, k, 0, gk, None))
        refs += [
            ItemRef(
                r["task"], r["item_id"], r["group"], r["sample_index"], r["repeat"],
                r["gen_key"], r["grade_key"],
            )
            for r in rows
            if r["task"] not in names
        ]  # fmt: skip
        store.put_run_items(new_id, refs)
        judge_backend.close()
    new_rows = store.results(new_id)
    summary = run_summary(new_rows)
    runner.stats.timings = {}
    record = run_record(runner.stats, new_rows, summary, base.record.items, t0, config)
    record.counts = {
        "requests_sent": runner.stats.backend_calls,
        "cached": runner.stats.cached,
        "rows": len(new_rows),
    }
    outcome = decide(
        new_rows,
        summary,
        max_error_rate=max_error_rate,
        max_grader_failure_rate=max_parse_failure_rate,
        stopped=runner.stats.stopped,
        judge=str(judge_spec),
    )
    record.failures, record.reasons = runner.stats.failure_list(), outcome.reasons
    store.update_run(new_id, status=outcome.status, record=record)
    return RunResult(new_id, summary, record, new_rows, status=outcome.status)
