"""`grade RUN`: grade a stored run's answers again with another judge, without generating.

The new run points at the same generation keys as the old one and at new grade keys; execution
grades (which do not depend on the judge) are carried over as they are.
"""

from __future__ import annotations

import time
from typing import Any

from .judging import build_judges, judge_config
from .progress import Progress
from .rerun import rerun_options
from .runner import Runner, RunOptions, RunResult, make_task
from .scores import CODAL_TASK, run_summary
from .spec import build_backend, parse_spec
from .store import ItemRef, Store
from .types import GradeInput, UsageError


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
) -> RunResult:
    base = store.run(run_id)
    if CODAL_TASK not in base.config.get("tasks", {}):
        raise UsageError(f"run {base.run_id} has no CODAL-Bench answers to grade")
    opts: RunOptions = rerun_options(base.config, base.record, base.model, judge)
    opts.judge_templates = judge_templates or opts.judge_templates
    opts.reference = reference  # None: the new judge's own default reference column
    opts.judge_repeats = judge_repeats
    opts.judge_options = judge_options or {}
    if not opts.judge:
        raise UsageError("grade: pass --judge SPEC")
    t0 = time.monotonic()
    task = make_task(CODAL_TASK, opts)
    samples = {s.item_id: s for s in task.load(opts.data.get(CODAL_TASK), None, None)}
    task_cfg = {CODAL_TASK: {**base.config["tasks"][CODAL_TASK], "data": task.describe()}}
    judge_spec = parse_spec(opts.judge, opts.judge_options)
    judge_backend = build_backend(judge_spec)
    llm = build_judges([task], judge_backend, judge_spec, opts, task_cfg)["codal"]

    rows = store.results(base.run_id)
    items: list[GradeInput] = []
    gen_of: dict[tuple[str, int], tuple[str, str]] = {}
    for r in rows:
        if r["task"] != CODAL_TASK or r["repeat"] != 0:
            continue
        gen_of[(r["item_id"], r["sample_index"])] = (r["gen_key"], r["group"])
        if r["answer"] is None or r["item_id"] not in samples:
            continue
        for rep in range(judge_repeats):
            items.append(GradeInput(samples[r["item_id"]], r["answer"], r["sample_index"], rep))

    config = {
        **base.config,
        "command": "grade",
        "parent_run": base.run_id,
        "judge": str(judge_spec),
        "judge_repeats": judge_repeats,
        **judge_config(llm, task_cfg),
    }
    store.check_writable()
    new_id = store.new_run(base.model, str(judge_spec), config)
    runner = Runner(store, progress)
    with store.running(new_id):
        generate = runner.cached_generate(judge_backend, judge_spec, concurrency, 300.0, "judge")
        keys = runner.grade(llm, str(judge_spec), items, generate, "codal")
        refs = [
            ItemRef(
                CODAL_TASK,
                i.sample.item_id,
                i.sample.group,
                i.sample_index,
                i.repeat,
                gen_of[(i.sample.item_id, i.sample_index)][0],
                keys[(i.sample.item_id, i.sample_index, i.repeat)],
            )
            for i in items
        ]
        graded = {(x.item_id, x.sample_index) for x in refs}
        for (iid, k), (gk, grp) in gen_of.items():
            if (iid, k) not in graded:
                refs.append(ItemRef(CODAL_TASK, iid, grp, k, 0, gk, None))
        refs += [
            ItemRef(
                r["task"],
                r["item_id"],
                r["group"],
                r["sample_index"],
                r["repeat"],
                r["gen_key"],
                r["grade_key"],
            )
            for r in rows
            if r["task"] != CODAL_TASK
        ]
        store.put_run_items(new_id, refs)
        judge_backend.close()
    new_rows = store.results(new_id)
    summary = run_summary(new_rows)
    record = {
        **base.record,
        "summary": summary,
        "errors": summary.get("errors", 0),
        "counts": {
            "requests_sent": runner.stats.backend_calls,
            "cached": runner.stats.cached,
            "rows": len(new_rows),
        },
        "tokens": {
            "prompt": runner.stats.prompt_tokens,
            "completion": runner.stats.completion_tokens,
        },
        "cost_usd": round(runner.stats.cost_usd, 6),
        "timings": {"total_s": time.monotonic() - t0},
    }
    from .codal.report import codal_report

    record["codal_report"] = codal_report(
        new_rows, candidate=base.model, judge=config["judge"], reference=config["reference"]
    )
    store.update_run(new_id, status="complete", record=record)
    return RunResult(new_id, summary, record, new_rows)
