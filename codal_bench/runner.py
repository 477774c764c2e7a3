"""One run: load → plan (cache lookup) → generate → grade → record.

The runner owns everything a backend or judge should not have to think about: which requests are
already answered in the store, storing each finished batch, closing the candidate's engine before
the judge's loads, and writing a run record that reports and the CI gate can trust.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import registry
from .config import JudgeSettings, RunConfig, RunOptions, RunRecord, TaskSettings
from .progress import Progress
from .spec import ModelSpec, build_backend, parse_spec
from .store import ItemRef, Store
from .types import (
    Backend,
    CodalError,
    Generation,
    GradeInput,
    Judge,
    Request,
    Sample,
    SamplingParams,
    Task,
    UsageError,
    content_hash,
)

GRADE_CHUNK = 64


__all__ = ["RunOptions", "RunResult", "Runner", "run", "make_task", "task_sampling"]


@dataclass
class RunResult:
    run_id: str | None
    summary: dict[str, Any]
    record: RunRecord
    rows: list[dict[str, Any]]
    dry_run: dict[str, Any] | None = None
    status: str = "complete"


@dataclass
class _Stats:
    backend_calls: int = 0
    cached: int = 0
    generated: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    # (role, endpoint) -> [count, first message]: what went wrong, said once per endpoint
    failures: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    stopped: dict[str, str] = field(default_factory=dict)  # role -> why it stopped sending

    def failed(self, role: str, endpoint: str, message: str, n: int = 1) -> None:
        cell = self.failures.setdefault((role, endpoint), [0, message])
        cell[0] += n

    def failure_list(self) -> list[dict[str, Any]]:
        return [
            {"role": role, "endpoint": endpoint, "count": n, "first": first}
            for (role, endpoint), (n, first) in self.failures.items()
        ]


def task_sampling(
    name: str, task_cfg: dict[str, Any], opts: RunOptions, multi_sample: bool
) -> tuple[SamplingParams, int]:
    """Per-task defaults from the task YAML, overridden by the command line.

    `--samples` applies to tasks graded without a model judge (pass@k); `opts.task_sampling[name]`
    (used to repeat a stored run exactly) wins over everything.
    """
    g = {**task_cfg.get("generation", {}), **opts.task_sampling.get(name, {})}
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


def make_task(name: str, opts: RunOptions) -> Task:
    cls = registry.load("task", name)
    task: Task = cls(**opts.task_options())
    return task


class Runner:
    def __init__(self, store: Store, progress: Progress | None = None) -> None:
        self.store = store
        self.progress = progress or Progress(enabled=False)
        self.stats = _Stats()
        self.nonce = uuid.uuid4().hex  # salts the keys of what --refresh asks again

    # -- generation through the store -----------------------------------------------------

    def cached_generate(
        self,
        backend: Backend,
        spec: ModelSpec,
        concurrency: int,
        timeout_s: float,
        label: str,
        max_cost: float | None = None,
        refresh: bool = False,
    ) -> Callable[[Sequence[Request]], list[Generation]]:
        """Generation that asks the backend only for what the store does not have yet.

        With `refresh`, everything is asked again under new keys that supersede the old ones:
        the old rows stay, this run and later ones see the new answers.
        """
        from .cost import cost_of, price_for, token_totals
        from .dispatch import BackendFailed, BudgetExceeded, DispatchOptions, generate_all

        price = price_for(spec.backend, spec.model, spec.options.get("base_url"))
        model = str(spec)
        endpoint = _endpoint(backend, spec)

        def generate(requests: Sequence[Request]) -> list[Generation]:
            have = {} if refresh else self.store.get_generations(r.key for r in requests)
            seen: set[str] = set()
            missing = []
            for r in requests:
                if r.key not in have and r.key not in seen:
                    seen.add(r.key)
                    missing.append(r)
            renamed: dict[str, str] = {}
            if refresh:  # new keys for the same requests; mapped back below
                renamed = {r.key: self.refreshed(r.key) for r in missing}
                missing = [dataclasses.replace(r, key=renamed[r.key]) for r in missing]
            self.stats.cached += len(requests) - len(missing)
            if missing:
                req_json = {r.key: _request_json(r) for r in missing}
                opts = DispatchOptions(
                    concurrency=concurrency,
                    timeout_s=timeout_s,
                    max_cost_usd=max_cost,
                    price=price,
                    spent_usd=self.stats.cost_usd,
                )

                def sink(gens: list[Generation]) -> None:
                    self.store.put_generations(gens, model, req_json)
                    tokens = token_totals(gens)
                    self.stats.generated += len(gens)
                    self.stats.errors += sum(g.error is not None for g in gens)
                    for g in gens:
                        if g.error is not None:
                            self.stats.failed(label, endpoint, g.error)
                    self.stats.prompt_tokens += tokens["prompt"]
                    self.stats.completion_tokens += tokens["completion"]
                    self.stats.cost_usd += cost_of(gens, price) or 0.0

                why = self.stats.stopped.get(label)
                got: list[Generation | None] = []
                if why is None:
                    with self.progress.task(f"{label}: generate", len(missing)) as advance:
                        self.stats.backend_calls += len(missing)
                        try:
                            got = list(
                                generate_all(
                                    backend, missing, options=opts, sink=sink, progress=advance
                                )
                            )
                        except (BackendFailed, BudgetExceeded) as exc:
                            why = str(exc)
                            self.stats.stopped[label] = why
                            got = list(exc.results)
                have.update({g.key: g for g in got if g is not None})
                if renamed:
                    back = {new: old for old, new in renamed.items()}
                    have = {back.get(k, k): g for k, g in have.items()}
                    self.store.supersede(
                        {back[g.key]: g.key for g in got if g is not None and g.ok}
                    )
                    missing = [dataclasses.replace(r, key=back[r.key]) for r in missing]
                unsent = [r for r in missing if r.key not in have]
                if unsent:  # never sent: an error of this run, not stored (the next run asks)
                    self.stats.failed(label, endpoint, f"not sent: {why}", len(unsent))
                    have.update(
                        {r.key: Generation(r.key, None, error=f"not sent: {why}") for r in unsent}
                    )
            # Keyed as asked (a refreshed or superseded answer keeps the caller's key); where
            # the stored row lives is `Store.resolve`'s business.
            return [dataclasses.replace(have[r.key], key=r.key) for r in requests]

        return generate

    def grade(
        self,
        judge: Judge,
        judge_name: str,
        items: list[GradeInput],
        generate: Callable[[Sequence[Request]], list[Generation]],
        label: str,
        refresh: bool = False,
    ) -> dict[tuple[str, int, int], str]:
        """Grade what is not graded yet, a stored chunk at a time; returns the grade keys (the
        newest, when a grade was asked again with `refresh`)."""

        def slot(i: GradeInput) -> tuple[str, int, int]:
            return (i.sample.item_id, i.sample_index, i.repeat)

        keys = {slot(i): judge.grade_key(i) for i in items}
        # A grade whose judge call failed is asked again, like a failed generation.
        stored = {} if refresh else self.store.get_grades(keys.values())
        todo = [i for i in items if keys[slot(i)] not in stored]
        keys.update({k: stored[v].key for k, v in keys.items() if v in stored})
        with self.progress.task(f"{label}: grade", len(todo)) as advance:
            for start in range(0, len(todo), GRADE_CHUNK):
                chunk = todo[start : start + GRADE_CHUNK]
                grades = judge.grade(chunk, generate)
                renamed: dict[str, str] = {}
                if refresh:  # stored under new keys that supersede the old ones
                    renamed = {g.key: self.refreshed(g.key) for g in grades}
                    for g in grades:
                        g.key = renamed[g.key]
                    for i in chunk:
                        keys[slot(i)] = renamed.get(keys[slot(i)], keys[slot(i)])
                self.store.put_grades(grades, judge_name)
                ok = {g.key for g in grades if g.status != "judge_error"}
                if renamed:
                    self.store.supersede({o: n for o, n in renamed.items() if n in ok})
                advance(len(chunk))
        return keys

    def refreshed(self, key: str) -> str:
        """The new key of a request or grade asked again in this invocation."""
        return content_hash({"refresh": self.nonce, "key": key})


def _endpoint(backend: Backend, spec: ModelSpec) -> str:
    """Where requests go, for messages: host:port of an HTTP backend, else the spec."""
    endpoint = getattr(backend, "endpoint", None)
    return str(endpoint()) if callable(endpoint) else str(spec)


def _request_json(r: Request) -> dict[str, Any]:
    return {
        "task": r.task,
        "item_id": r.item_id,
        "sample_index": r.sample_index,
        "messages": [{"role": m.role, "content": m.content} for m in r.messages],
        "params": r.params.to_dict(),
    }


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
    tasks = [make_task(t, opts) for t in _check_tasks(opts.tasks)]
    data = assign_data(opts.data, opts.data_files, tasks)
    opts = dataclasses.replace(opts, data=data, data_files=[])  # recorded as resolved
    backend = build_backend(spec)
    covered = backend.covered_items() if hasattr(backend, "covered_items") else None
    judged = [t for t in tasks if model_judged(t)]
    if judged and judge_spec is None:
        raise UsageError(f"{judged[0].name} needs a judge: pass --judge SPEC (e.g. gpt-4, smollm2)")
    judge_backend = build_backend(judge_spec) if (judge_spec and judged) else None

    # Load: every data problem surfaces here, before anything is written or sent.
    plan: list[tuple[Task, Sample, SamplingParams, int]] = []
    warnings: list[str] = []
    settings: dict[str, TaskSettings] = {}
    for task in tasks:
        samples = task.load(data.get(task.name), opts.limit, opts.task_ids)
        params, n = task_sampling(task.name, task.config, opts, task not in judged)
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
        msgs = task.messages(s)
        for k in range(n):
            r = Request.make(ident, msgs, params, k, s.item_id, task.name)
            requests.append(r)
            by_item.append((task, s, k, r))

    judges = build_judges(tasks, judge_backend, judge_spec, opts)
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
    run_id = store.resume_or_new(str(spec), config.judge_spec, config)
    with store.running(run_id):
        t = time.monotonic()
        gen = runner.cached_generate(
            backend, spec, opts.concurrency, opts.timeout_s, "candidate", opts.max_cost,
            refresh=refresh_answers,
        )  # fmt: skip
        answers = {r.key: g for r, g in zip(requests, gen(requests), strict=True)}
        newest = store.resolve(answers)  # where each answer's row is, after a --refresh
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
