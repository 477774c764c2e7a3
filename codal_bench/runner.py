"""One run: load → plan (cache lookup) → generate → grade → record.

The runner owns everything a backend or judge should not have to think about: which requests are
already answered in the store, storing each finished batch, closing the candidate's engine before
the judge's loads, and writing a run record that reports and the CI gate can trust.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from . import registry
from .cached import Runner
from .config import JudgeSettings, RunConfig, RunOptions, RunRecord, TaskSettings
from .progress import Progress
from .spec import ModelSpec, build_backend, parse_spec
from .store import ItemRef, Store
from .types import (
    CodalError,
    Generation,
    GradeInput,
    Judge,
    Message,
    Request,
    Sample,
    SamplingParams,
    Task,
    UsageError,
)

__all__ = ["RunOptions", "RunResult", "Runner", "run", "make_task", "task_sampling"]


@dataclass
class RunResult:
    run_id: str | None
    summary: dict[str, Any]
    record: RunRecord
    rows: list[dict[str, Any]]
    dry_run: dict[str, Any] | None = None
    status: str = "complete"


def task_sampling(
    name: str, task_cfg: dict[str, Any], opts: RunOptions, multi_sample: bool
) -> tuple[SamplingParams, int]:
    """Per-task defaults from the task YAML, overridden by the command line.

    `--samples` applies to tasks graded without a model judge (pass@k); `opts.task_sampling[name]`
    (used to repeat a stored run exactly) wins over everything.
    """
    p = preset(name, opts)
    g = {
        **task_cfg.get("generation", {}),
        **p.get("sampling", {}),
        **({"samples": p["samples"]} if "samples" in p else {}),
        **opts.settings.get(name, {}),
        **opts.task_sampling.get(name, {}),
    }
    params = SamplingParams(
        temperature=float(
            opts.temperature if opts.temperature is not None else g.get("temperature", 0.0)
        ),
        top_p=float(opts.top_p if opts.top_p is not None else g.get("top_p", 1.0)),
        max_tokens=int(
            opts.max_tokens if opts.max_tokens is not None else g.get("max_tokens", 1024)
        ),
        seed=opts.seed if opts.seed is not None else g.get("seed"),
    )
    samples = int(g.get("samples", 1))
    if multi_sample and opts.samples is not None and name not in opts.task_sampling:
        samples = opts.samples
    return params, samples


PRESET_RUN_KEYS = ("sampling", "samples", "judge_templates")


def preset(name: str, opts: RunOptions) -> dict[str, Any]:
    """The task's preset for `--protocol` ({} without one): prompts, sampling, samples, judge."""
    if not opts.protocol:
        return {}
    presets = getattr(registry.load("task", name), "presets", None) or {}
    if opts.protocol not in presets:
        known = ", ".join(presets) or "none"
        raise UsageError(f"task {name} has no protocol {opts.protocol!r} (its protocols: {known})")
    found: dict[str, Any] = presets[opts.protocol]
    return found


def make_task(name: str, opts: RunOptions) -> Task:
    """The task built with its preset's options, the command line's winning."""
    cls = registry.load("task", name)
    options = {k: v for k, v in preset(name, opts).items() if k not in PRESET_RUN_KEYS}
    options.update(opts.task_options())
    task: Task = cls(**options)
    return task


def run(
    opts: RunOptions,
    store: Store | Callable[[], Store],
    progress: Progress | None = None,
    parent: str | None = None,
    command: str = "run",
) -> RunResult:
    """Evaluate one model; see the module docstring for the stages.

    `store` may be a function that opens it, so that bad input is reported before a store file
    is created.
    """
    from .judging import build_judges, grade_inputs, model_judged
    from .outcome import decide, preflight
    from .records import dry_run_estimate, run_record
    from .summary import run_summary

    t0 = time.monotonic()
    spec = parse_spec(opts.model, opts.model_options)
    judge_spec = parse_spec(opts.judge, opts.judge_options) if opts.judge else None
    names = _check_tasks(opts.tasks)
    _check_settings(names, opts)
    tasks = [make_task(t, opts) for t in names]
    if opts.judge_templates is None:  # a protocol names the judge's templates too
        chosen = [preset(t, opts).get("judge_templates") for t in names]
        opts = dataclasses.replace(opts, judge_templates=next((c for c in chosen if c), None))
    data = assign_data(opts.data, opts.data_files, tasks)
    opts = dataclasses.replace(opts, data=data, data_files=[])  # recorded as resolved
    backend = build_backend(spec)
    covered = backend.covered_items() if hasattr(backend, "covered_items") else None
    judged = [t for t in tasks if model_judged(t)]
    if judged and judge_spec is None:
        raise UsageError(f"{judged[0].name} needs a judge: pass --judge SPEC (e.g. gpt-4, smollm2)")
    judge_backend = None
    if judge_spec and judged:
        # The same model with the same options judges through the candidate's backend: a second
        # start of one local checkpoint (the demo: smollm2 both ways) costs ~25 s on the CPU.
        same = judge_spec == spec and judge_spec.options == spec.options
        judge_backend = backend if same else build_backend(judge_spec)

    # Load: every data problem surfaces here, before anything is written or sent.
    plan: list[tuple[Task, Sample, SamplingParams, int]] = []
    warnings: list[str] = []
    settings: dict[str, TaskSettings] = {}
    for task in tasks:
        samples = task.load(data.get(task.name), opts.limit, opts.task_ids)
        params, n = task_sampling(task.name, task.config, opts, task not in judged)
        stop = getattr(task, "stop", None)  # issue 15 hook: a task's stop strings per backend
        if stop is not None:
            params = dataclasses.replace(params, stop=tuple(stop(spec.backend)))
        if covered is not None:
            kept = [s for s in samples if s.item_id in covered]
            if len(kept) < len(samples):
                warnings.append(
                    f"{spec}: the file covers {len(kept)} of the {len(samples)} {task.name} "
                    "items asked for; only those are evaluated"
                )
            short = [s.item_id for s in kept if opts.samples and covered[s.item_id] < opts.samples]
            if short and task not in judged:
                raise UsageError(
                    f"--samples {opts.samples}: {spec} holds fewer samples for {len(short)} "
                    f"{task.name} items (e.g. {short[0]}: {covered[short[0]]})"
                )
            samples = kept
            if not samples:
                continue
        for s in samples:
            plan.append((task, s, params, covered.get(s.item_id, n) if covered else n))
        settings[task.name] = TaskSettings(
            sampling=params.to_dict(),
            samples=n,
            data=task.describe(),
            limit=opts.limit,
            task_ids=list(opts.task_ids) if opts.task_ids else None,
            prompt_set=getattr(task, "prompt_set", None),
            judged=task in judged,
        )
    if not plan:
        raise UsageError(
            "nothing to evaluate: no items selected (check --tasks/--task-ids/--limit)"
        )

    ident = backend.identity()
    requests: list[Request] = []
    by_item: list[tuple[Task, Sample, int, Request]] = []
    for task, s, params, n in plan:
        msgs = _messages(task, s, spec.backend)
        for k in range(n):
            r = Request.make(ident, msgs, params, k, s.item_id, task.name)
            requests.append(r)
            by_item.append((task, s, k, r))

    judges = build_judges(tasks, judge_backend, judge_spec, opts)
    for name, ts in settings.items():  # what grades each task without a model: its identity
        kinds = next(t.judge_kinds for t in tasks if t.name == name)
        ts.graders = {k: judges[k].identity() for k in kinds if judges[k].kind != "llm"}
    config = RunConfig(
        command=command,
        model=str(spec),
        model_identity=ident,
        model_options=spec.public_options(),
        tasks=settings,
        judge=_judge_settings(judges, judged, judge_spec, opts),
        options=opts.to_stored(),
        parent_run=parent,
    )

    if callable(store):
        store = store()
    runner = Runner(store, progress)
    if opts.dry_run:
        estimate = dry_run_estimate(
            store, requests, spec, _judge_plan(judges, judge_spec, by_item, store, opts)
        )
        return RunResult(None, {}, RunRecord(), [], dry_run=estimate)

    store.check_writable()
    refresh_answers = opts.refresh in ("candidate", "all")
    refresh_grades = opts.refresh in ("judge", "all") or refresh_answers
    preflight(
        store, requests, by_item, backend, judges, judge_backend, opts.judge_repeats,
        refresh_answers, refresh_grades,
    )  # fmt: skip
    run_id = store.resume_or_new(
        str(spec), config.judge_spec, config, name=opts.name, tags=opts.tags
    )
    with store.running(run_id):
        t = time.monotonic()
        gen = runner.cached_generate(
            backend, spec, opts.concurrency, opts.timeout_s, "candidate", opts.max_cost,
            refresh=refresh_answers,
        )  # fmt: skip
        answers = {r.key: g for r, g in zip(requests, gen(requests), strict=True)}
        newest = store.resolve(answers)  # where each answer's row is, after a --refresh
        if judge_backend is not backend:
            backend.close()  # frees a local engine before the judge's loads
        runner.stats.timings["generate_s"] = time.monotonic() - t

        t = time.monotonic()
        refs: list[ItemRef] = []
        req_of = {(task.name, s.item_id, k): r for task, s, k, r in by_item}
        for kind, judge in judges.items():
            llm = judge.kind == "llm"
            judge_name = str(judge_spec) if llm else kind
            items = grade_inputs(by_item, answers, kind, opts.judge_repeats if llm else 1)
            generate: Callable[[Sequence[Request]], list[Generation]] = (
                runner.cached_generate(
                    judge_backend,
                    judge_spec,
                    opts.judge_concurrency,
                    opts.timeout_s,
                    "judge",
                    opts.max_cost,
                    refresh=refresh_grades,
                )
                if llm and judge_backend is not None and judge_spec is not None
                else _no_generate
            )
            keys = runner.grade(judge, judge_name, items, generate, kind, refresh_grades)
            for i in items:
                gk = keys[(i.sample.item_id, i.sample_index, i.repeat)]
                req = req_of[(i.sample.task, i.sample.item_id, i.sample_index)]
                refs.append(
                    ItemRef(
                        i.sample.task,
                        i.sample.item_id,
                        i.sample.group,
                        i.sample_index,
                        i.repeat,
                        newest[req.key],  # the newest answer, after a --refresh
                        gk,
                    )
                )
        graded = {(x.task, x.item_id, x.sample_index) for x in refs}
        for task, s, k, r in by_item:  # answers that could not be graded still belong to the run
            if (task.name, s.item_id, k) not in graded:
                refs.append(ItemRef(task.name, s.item_id, s.group, k, 0, newest[r.key], None))
        store.put_run_items(run_id, refs)
        if judge_backend is not None:
            judge_backend.close()
        runner.stats.timings["grade_s"] = time.monotonic() - t

    rows = store.results(run_id)
    summary = run_summary(rows)
    items_of: dict[str, list[str]] = {}
    for task, s, _p, _n in plan:
        items_of.setdefault(task.name, []).append(s.item_id)
    record = run_record(runner.stats, rows, summary, items_of, t0, config)
    outcome = decide(
        rows,
        summary,
        max_error_rate=opts.max_error_rate,
        max_grader_failure_rate=opts.max_parse_failure_rate,
        stopped=runner.stats.stopped,
        judge=config.judge_spec,
    )
    record.failures = runner.stats.failure_list()
    record.reasons = warnings + outcome.reasons
    store.update_run(run_id, status=outcome.status, record=record)
    return RunResult(run_id, summary, record, rows, status=outcome.status)


def _messages(task: Task, sample: Sample, backend: str) -> list[Message]:
    """The task's messages for this backend; a task whose `messages` takes only the sample
    (written before prompts could depend on the backend) is asked that way."""
    import inspect

    params = inspect.signature(task.messages).parameters
    if len(params) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in params.values()):
        return task.messages(sample, backend)
    return task.messages(sample)


def _judge_settings(
    judges: dict[str, Judge],
    judged: Sequence[Task],
    judge_spec: ModelSpec | None,
    opts: RunOptions,
) -> JudgeSettings | None:
    """The model judge as the run config records it (None when no task needs one)."""
    llm = next((j for j in judges.values() if j.kind == "llm"), None)
    if llm is None or judge_spec is None or not judged:
        return None
    described: dict[str, Any] = llm.settings(judged[0].describe())  # type: ignore[attr-defined]
    return JudgeSettings(
        spec=str(judge_spec),
        identity=llm.identity(),
        templates=described["templates"],
        sampling=described["sampling"],
        reference=described["reference"],
        repeats=opts.judge_repeats,
    )


def _judge_plan(
    judges: dict[str, Judge],
    judge_spec: ModelSpec | None,
    by_item: Sequence[tuple[Task, Sample, int, Request]],
    store: Store,
    opts: RunOptions,
) -> tuple[Any, ModelSpec, list[GradeInput]] | None:
    """What the model judge would grade, for --dry-run: stored answers as they are, answers
    still to come as a stand-in of the candidate's full max_tokens."""
    kind, llm = next(((k, j) for k, j in judges.items() if j.kind == "llm"), ("", None))
    if llm is None or judge_spec is None:
        return None
    have = store.get_generations(r.key for *_, r in by_item)
    items = []
    for task, sample, k, req in by_item:
        if kind in task.judge_kinds:
            g = have.get(req.key)
            answer = (
                g.text
                if g is not None and g.text is not None
                else "x" * (4 * req.params.max_tokens)
            )
            items += [GradeInput(sample, answer, k, rep) for rep in range(opts.judge_repeats)]
    return llm, judge_spec, items


def _no_generate(requests: Sequence[Request]) -> list[Generation]:
    raise CodalError("this judge does not call a model")


SETTING_KEYS = ("temperature", "top_p", "max_tokens", "seed", "samples")


def _check_settings(names: Sequence[str], opts: RunOptions) -> None:
    """Sampling flags cannot leak from one benchmark into another: with several tasks, a global
    --temperature/--top-p/--max-tokens is refused in favour of --set TASK.KEY=VALUE."""
    flags = {
        "--temperature": opts.temperature,
        "--top-p": opts.top_p,
        "--max-tokens": opts.max_tokens,
    }
    given = [f for f, v in flags.items() if v is not None]
    if given and len(names) > 1 and not opts.task_sampling:
        raise UsageError(
            f"{', '.join(given)} would change every task of this run ({', '.join(names)}): set "
            f"it for one with --set TASK.KEY=VALUE (e.g. --set {names[-1]}.temperature=0.8)"
        )
    for task, values in opts.settings.items():
        if task not in names:
            hint = registry.suggest(task, list(names))
            raise UsageError(f"--set {task}.…: {task!r} is not a task of this run{hint}")
        bad = [k for k in values if k not in SETTING_KEYS]
        if bad:
            raise UsageError(
                f"--set {task}.{bad[0]}: not a setting (settings: {', '.join(SETTING_KEYS)})"
            )


def _check_tasks(names: Sequence[str]) -> list[str]:
    from .taskfiles import default_tasks

    known = registry.names("task")
    names = list(names) or default_tasks()
    for n in names:
        if n not in known:
            raise UsageError(f"unknown task {n!r}{registry.suggest(n, known)}")
    return list(dict.fromkeys(names))


def assign_data(
    data: dict[str, str], files: Sequence[str], tasks: Sequence[Task]
) -> dict[str, str]:
    """`--data TASK=PATH` by task name; a bare path goes to the one task that recognizes it,
    or to the only task."""
    names = [t.name for t in tasks]
    out: dict[str, str] = {}
    for key, path in data.items():
        if key not in names:
            raise UsageError(
                f"--data {key}={path}: {key!r} is not a task of this run "
                f"(tasks: {', '.join(names)}){registry.suggest(key, names)}"
            )
        out[key] = path
    for path in files:
        claim = [t.name for t in tasks if t.recognizes(path)] if len(tasks) > 1 else names
        if len(claim) != 1:
            raise UsageError(
                f"--data {path}: cannot tell which task it is for; write TASK=PATH "
                f"(tasks: {', '.join(names)})"
            )
        out[claim[0]] = path
    return out
