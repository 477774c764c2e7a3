"""Which run the gate compares against: a bundle file, a stored run, or a model's run (found or
made), and which of its items (`check --tasks/--limit/--samples`).

An existing file path wins over a run id or a model spec (a samples file stays a replay spec):
it is a bundle, imported through `gate.bundle`, which also refuses a judge endpoint the user
did not name. A model spec finds the newest complete run of that model whose tasks, samples and
items cover what was asked; when none does, the baseline is run once with those settings.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import RunOptions
from ..progress import Progress
from ..store import RunInfo, Store
from ..types import CodalError, UsageError
from .bundle import guard_endpoints, import_bundle, is_bundle_path
from .result import CheckError


@dataclass
class Selection:
    """The size a team chose for its gate; None keeps the baseline's."""

    tasks: list[str] | None = None
    limit: int | None = None  # items per group (first N of a single-group task)
    samples: int | None = None  # samples per item for tasks graded without a model judge
    temperature: float | None = None  # sampling temperature of a baseline made here

    def fits(self, run: RunInfo) -> bool:
        """Whether a stored run can serve as this selection's baseline."""
        tasks = self.tasks or list(run.config.tasks)
        if any(t not in run.config.tasks for t in tasks):
            return False
        for t in tasks:
            ts = run.config.tasks[t]
            if self.samples is not None and not ts.judged and ts.samples != self.samples:
                return False
            if (
                self.temperature is not None
                and not ts.judged
                and ts.sampling.get("temperature") != self.temperature
            ):
                return False
            if self.limit is not None and ts.limit is not None and ts.limit < self.limit:
                return False
        return True


def resolve(
    store: Store,
    baseline: str,
    judge: str | None,
    sel: Selection,
    overrides: dict[str, Any],
    progress: Progress,
    sha256: str | None = None,
) -> tuple[str, list[str]]:
    """The baseline run id, and notes for the report."""
    if is_bundle_path(baseline):
        imported = import_bundle(store, Path(baseline).expanduser(), sha256)
        config = store.run(imported.run_id).config
        judged = [t for t in (sel.tasks or config.tasks) if t in config.tasks]
        if any(config.tasks[t].judged for t in judged):  # no judge, no endpoint to guard
            guard_endpoints(imported, overrides.get("judge_options") or {})
        note = (
            f"baseline from bundle {baseline} (sha256 {imported.sha256}, exported run "
            f"{imported.source_run}); its answers and grades serve this baseline only"
        )
        return imported.run_id, [note]
    if sha256 is not None:
        raise UsageError("--baseline-sha256 applies only when --baseline is a bundle file")
    try:
        base_id = find_baseline(store, baseline, judge, sel)
    except CheckError:
        if not _is_spec(baseline):
            raise
        return _make(store, baseline, judge, sel, overrides, progress), []
    return base_id, []


def _make(
    store: Store,
    baseline: str,
    judge: str | None,
    sel: Selection,
    overrides: dict[str, Any],
    progress: Progress,
) -> str:
    """ "found or made": a model spec without a fitting stored run gets one, with this check's
    size and judge settings (the candidate's -M/--base-url are not its own)."""
    from ..judging import model_judged_task
    from ..runner import run
    from ..taskfiles import default_tasks

    shared = {k: v for k, v in overrides.items() if k.startswith(("judge", "reference", "data"))}
    names = list(sel.tasks or default_tasks())
    # Like --samples, the temperature is for the tasks graded without a model judge (pass@k):
    # it never leaks into a judged benchmark's greedy protocol.
    settings = (
        {t: {"temperature": sel.temperature} for t in names if not model_judged_task(t)}
        if sel.temperature is not None
        else {}
    )
    opts = RunOptions(
        model=baseline,
        judge=judge,
        tasks=names,
        limit=sel.limit,
        samples=sel.samples,
        settings=settings,
        **shared,
    )
    try:
        made = run(opts, store, progress)
    except UsageError:
        raise
    except CodalError as exc:
        raise CheckError(f"the baseline run of {baseline} failed: {exc}") from exc
    assert made.run_id is not None
    return made.run_id


def find_baseline(
    store: Store, baseline: str, judge: str | None = None, sel: Selection | None = None
) -> str:
    """A run id (or unique prefix, or `latest`), else the newest complete run of a model spec
    that fits the selection."""
    try:
        return store.run(baseline).run_id
    except CodalError as exc:
        why = str(exc)
    names = {baseline}
    try:
        from ..spec import parse_spec

        spec = parse_spec(baseline)
        names |= {str(spec), spec.model}
        if Path(spec.model).exists():
            names.add(f"{spec.backend}:{Path(spec.model).resolve()}")
    except CodalError:
        pass
    runs = [r for r in store.runs("complete") if r.model in names or r.config.model in names]
    if judge is not None:
        runs = [r for r in runs if r.judge == judge] or runs
    if sel is not None:
        runs = [r for r in runs if sel.fits(r)]
    if not runs:
        raise CheckError(
            f"baseline: {why}, and no complete run of a model {baseline!r} is stored either "
            f"(pass a run id, or run `codal-eval run --model {baseline} ...` first)"
        )
    return runs[-1].run_id


def _is_spec(text: str) -> bool:
    from ..spec import parse_spec

    try:
        parse_spec(text)
    except CodalError:
        return False
    return True


def items_for(store: Store, run_id: str, sel: Selection) -> dict[str, list[str]] | None:
    """The baseline's items the candidate runs on: all (None), or the subset `--tasks` and
    `--limit` select. `--samples` must match the baseline (a different number of samples is a
    different measurement; make a baseline with that many)."""
    if sel.tasks is None and sel.limit is None and sel.samples is None:
        return None
    run = store.run(run_id)
    tasks = sel.tasks or list(run.config.tasks)
    missing = [t for t in tasks if t not in run.config.tasks]
    if missing:
        raise CheckError(
            f"--tasks {','.join(missing)}: not in the baseline run {run.run_id} "
            f"(its tasks: {', '.join(run.config.tasks)})"
        )
    for t in tasks:
        ts = run.config.tasks[t]
        if sel.samples is not None and not ts.judged and ts.samples != sel.samples:
            raise CheckError(
                f"--samples {sel.samples}: the baseline run {run.run_id} has {ts.samples} "
                f"samples per item for {t}; compare against a baseline made with --samples "
                f"{sel.samples}"
            )
    groups: dict[tuple[str, str], str] = {}
    for r in store.results(run.run_id):
        groups.setdefault((r["task"], r["item_id"]), r["group"])
    out: dict[str, list[str]] = {}
    for t in tasks:
        taken: dict[str, int] = defaultdict(int)
        keep = []
        for item in run.record.items.get(t, []):
            g = groups.get((t, item), "")
            if sel.limit is None or taken[g] < sel.limit:
                taken[g] += 1
                keep.append(item)
        out[t] = keep
    return out
