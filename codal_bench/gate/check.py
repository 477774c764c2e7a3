"""The CI regression gate: compare a candidate run with a baseline run, item by item.

Decision rule (per metric, drop = baseline - candidate in the metric's own units, margin m):

- **regression** when the one-sided paired test rejects H0: drop <= m at Holm-adjusted α = 0.05
  (which implies the estimated drop exceeds m and that "no drop" is rejected too);
- **pass** when the one-sided 95 % upper bound of the drop is at most m;
- **inconclusive** otherwise.

Why the regression test is of H0: drop <= m and not of H0: drop <= 0. The issue's wording
("estimated drop > m and the test rejects 'no drop'") protects only against calling an *unchanged*
model a regression: a candidate whose true drop is exactly the allowed m would be flagged about half
the time (whenever its estimate lands above m), and one at m - SE about 16 % of the time, so α
would say nothing about the error a margin is meant to bound. Testing H0: drop <= m makes α (with
Holm, family-wise) the chance of calling *any acceptable* change a regression, and makes the three
outcomes the symmetric confidence-bound rule: lower bound above m → regression, upper bound at or
below m → pass, interval straddling m → inconclusive. Every regression under this rule is also one
under the issue's wording; the cases that differ become "inconclusive", which still fails the job by
default (`--inconclusive fail`, exit 3), so nothing slips through — it is just not labelled a
confirmed regression. No multiplicity correction is applied to "pass": concluding that *all*
metrics pass is an intersection-union test, which is level α without adjustment; Holm is needed
only for "some metric regressed". Acceptance: 15 of 164 pass/fail items broken gives a drop of
0.091 whose exact test against m = 0.03 has p ≈ 0.002; one broken task gives an upper bound of
about 0.018 <= 0.05.

Tests: a metric whose items are each one pass/fail outcome in both runs (pass@1, one sample) uses
the exact conditional McNemar test generalised to the margin (`stats.mcnemar_margin`, plain
McNemar at m = 0); other metrics (ratings, several samples per item) use the paired bootstrap over
items, stratified where the metric is a mean of stratum means. Intervals always come from the
paired bootstrap. Where judge repeats measure the judge's own A/A noise, the margin used for
"regression" is raised to the one-sided 95 % A/A noise band when that is larger, so drops the
judge alone could produce are not called regressions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .. import comparable
from ..config import RunConfig, backend_options
from ..store import Store
from ..types import CodalError, UsageError
from . import stats as gs
from .baseline import Selection, find_baseline, items_for, resolve
from .decide import DECISIONS, MetricInput, decide, test_metric
from .diff import DiffResult, diff_runs, render_diff
from .paired import Paired, paired_metrics
from .result import (
    CheckError,
    CheckResult,
    Decision,
    MetricResult,
    check_same_items,
    check_same_settings,
    margin_for,
    parse_max_drop,
)

__all__ = [
    "CheckError",
    "find_baseline",
    "CheckResult",
    "MetricResult",
    "DiffResult",
    "check",
    "run_check",
    "compare_runs",
    "diff_runs",
    "render_diff",
    "render_terminal",
    "write_reports",
    "parse_max_drop",
]


def compare_runs(
    store: Store,
    baseline_run_id: str,
    candidate_run_id: str,
    *,
    max_drop: dict[str, float] | None = None,
    inconclusive: str = "fail",
    n_boot: int = 10000,
    seed: int = 0,
    alpha: float = gs.ALPHA,
    strict_settings: bool = True,
    subset: bool = False,
) -> CheckResult:
    """Per-metric decisions for candidate vs baseline on their common items (see module doc).

    `subset`: the candidate ran on part of the baseline (`check --tasks/--limit`); the baseline
    is compared on exactly the candidate's items.
    """
    import time

    if inconclusive not in ("pass", "fail"):
        raise UsageError(f"--inconclusive must be pass or fail, not {inconclusive!r}")
    max_drop = dict(max_drop or {})
    try:
        base, cand = store.run(baseline_run_id), store.run(candidate_run_id)
    except CheckError:
        raise
    except CodalError as exc:
        raise CheckError(str(exc)) from exc
    for info, role in ((base, "baseline"), (cand, "candidate")):
        if info.status != "complete":
            raise CheckError(f"{role} run {info.run_id} is {info.status}, not complete")
    rows_a, rows_b = store.results(base.run_id), store.results(cand.run_id)
    if subset:
        chosen = {(r["task"], r["item_id"]) for r in rows_b}
        rows_a = [r for r in rows_a if (r["task"], r["item_id"]) in chosen]
    if strict_settings:
        for task in sorted(set(base.config.tasks) & set(cand.config.tasks)):
            check_same_settings(
                comparable.key(base.config, task, base.record.items.get(task, [])),
                comparable.key(cand.config, task, cand.record.items.get(task, [])),
            )
    check_same_items(rows_a, rows_b)
    paired = paired_metrics(rows_a, rows_b, list(base.config.tasks))
    if not paired:
        raise CheckError("the two runs have no scored items in common: nothing to compare")
    known = {p.name for p in paired} | {p.name.rsplit("/", 1)[-1] for p in paired}
    unknown = sorted(set(max_drop) - known)
    if unknown:
        raise CheckError(
            f"--max-drop names {', '.join(unknown)}, not a metric of these runs "
            f"(metrics: {', '.join(p.name for p in paired)})"
        )
    k = len(paired)
    inputs = [_input(p, margin_for(p.name, p.metric.gate_margin or 0.0, max_drop)) for p in paired]
    tests, times = [], []
    for x in inputs:
        t0 = time.perf_counter()
        tests.append(test_metric(x, n_tests=k, n_boot=n_boot, seed=seed, alpha=alpha))
        times.append(time.perf_counter() - t0)
    p_adj, codes = decide(inputs, tests, alpha)
    metrics = [
        _result(p, x, t, float(p_adj[i, 0]), DECISIONS[int(codes[i, 0])], times[i])
        for i, (p, x, t) in enumerate(zip(paired, inputs, tests, strict=True))
    ]
    result = CheckResult(
        base.run_id,
        cand.run_id,
        base.model,
        cand.model,
        metrics,
        alpha,
        inconclusive,
        n_boot,
        seed,
        diff_runs(store, base.run_id, cand.run_id),
    )
    excluded = sum(m.excluded for m in metrics)
    if excluded:
        result.notes.append(f"{excluded} item scores left out (no usable grade in one run)")
    return result


def _input(p: Paired, margin: float) -> MetricInput:
    floor = gs.z(1 - gs.ALPHA) * p.aa_se if p.aa_se is not None else None
    lo, hi = p.metric.scale
    return MetricInput(
        strata=p.strata,
        weights=p.weights,
        margin=margin,
        binary=p.discordant is not None,
        noise_floor=floor,
        default_sd=0.5 if p.metric.percent else (hi - lo) / 4,
        samples=p.samples,
    )


def _result(
    p: Paired, x: MetricInput, t: dict[str, Any], p_adj: float, decision: Decision, s: float
) -> MetricResult:
    def one(key: str) -> float:
        return float(np.ravel(t[key])[0])

    need_i, need_s = t["need_items"][0], t["need_samples"][0]
    m = MetricResult(
        name=p.name, task=p.task, kind=p.kind, n_items=p.n, baseline=p.baseline,
        candidate=p.candidate, drop=one("drop"), lo=one("lo"), hi=one("hi"), margin=x.margin,
        noise_floor=x.noise_floor, p_no_drop=one("p_no_drop"), p_margin=one("p_regression"),
        p_adjusted=p_adj, se=one("se"), mdd=one("mdd"), test=str(t["method"][0]),
        decision=decision, excluded=p.excluded, discordant=p.discordant, elapsed_s=s,
        p_pass=one("p_pass"), need_items=None if need_i is None else int(need_i),
        need_samples=None if need_s is None else int(need_s),
    )  # fmt: skip
    m.reason = _reason(m, x)
    return m


def _reason(m: MetricResult, x: MetricInput) -> str:
    eff = x.effective_margin
    if m.decision == "regression":
        return (
            f"drop {m.drop:.3g} exceeds the allowed {eff:.3g} (Holm-adjusted p={m.p_adjusted:.2g})"
        )
    if m.decision == "pass":
        return f"upper 95 % bound of the drop {m.hi:.3g} is within {m.margin:.3g}"
    if m.n_items < gs.MIN_ITEMS:
        why = f"only {m.n_items} paired items (at least {gs.MIN_ITEMS} are needed to decide)"
    else:
        why = f"upper 95 % bound {m.hi:.3g} exceeds {m.margin:.3g}"
        if m.noise_floor is not None and m.drop > m.margin and m.drop <= m.noise_floor:
            why += f"; the drop is within the judge's A/A noise ({m.noise_floor:.3g})"
        elif m.drop > eff:
            why += f", but the drop is not significant (Holm-adjusted p={m.p_adjusted:.2g})"
        why += f"; this run can detect drops of {m.mdd:.3g} (80 % power)"
    return why + "; " + need_text(m)


def need_text(m: MetricResult) -> str:
    """ "to decide a 0.25 drop you need ≈ N items / k samples per item" (the sample-size plan)."""
    if m.need_items is None:
        return "no sample-size estimate (margin 0)"
    text = f"to decide a drop of {m.margin:.3g} you need ≈ {m.need_items} items (now {m.n_items})"
    if m.need_samples is not None and m.need_samples > 1:
        text += f" or ≈ {m.need_samples} samples per item on these items"
    return text


def judge_where_the_baseline_did(
    base: RunConfig, judge: str | None, overrides: dict[str, Any]
) -> None:
    """Refuse to send judge prompts to a host the baseline's judge was not at, unless the user
    named the judge again: a changed OPENAI_BASE_URL must not reroute a team's prompts."""
    from ..spec import build_backend, parse_spec

    if base.judge is None or judge or (overrides.get("judge_options") or {}).get("base_url"):
        return
    was = (base.judge.identity.get("backend") or {}).get("host")
    if not was:
        return  # a local judge (checkpoint): nothing is sent anywhere
    options = {
        **(base.options.get("judge_options") or {}),
        **(overrides.get("judge_options") or {}),
    }
    try:
        now = build_backend(parse_spec(base.judge.spec, options)).identity().get("host")
    except CodalError as exc:
        raise CheckError(f"cannot repeat the baseline's judge {base.judge.spec}: {exc}") from exc
    if now != was:
        raise CheckError(
            f"the baseline's judge {base.judge.spec} was at {was}, this check would ask {now}: "
            "name the judge's server with --judge-base-url (or --judge) to go ahead"
        )


def run_check(
    store: Store,
    *,
    model: str,
    baseline: str,
    judge: str | None = None,
    max_drop: dict[str, float] | None = None,
    inconclusive: str = "fail",
    n_boot: int = 10000,
    seed: int = 0,
    quiet: bool = True,
    baseline_sha256: str | None = None,
    selection: Selection | None = None,
    **overrides: Any,
) -> CheckResult:
    """Find the baseline, run the candidate like it (the store reuses what it can), compare."""
    from ..progress import Progress
    from ..rerun import run_like

    sel = selection or Selection()
    overrides = {k: v for k, v in overrides.items() if v not in (None, {}, (), [])}
    with Progress(enabled=not quiet) as progress:
        base_id, notes = resolve(store, baseline, judge, sel, overrides, progress, baseline_sha256)
        items = items_for(store, base_id, sel)
        judge_where_the_baseline_did(store.run(base_id).config, judge, overrides)
        try:
            cand_id = run_like(store, base_id, model, judge, progress, items=items, **overrides)
        except UsageError:
            raise
        except CodalError as exc:
            raise CheckError(f"the candidate run failed: {exc}") from exc
    result = compare_runs(
        store,
        base_id,
        cand_id,
        max_drop=max_drop,
        inconclusive=inconclusive,
        n_boot=n_boot,
        seed=seed,
        subset=items is not None,
    )
    result.notes[:0] = notes
    return result


def check(
    store: Store,
    *,
    model: str,
    baseline: str,
    max_drop: tuple[str, ...] | list[str] = (),
    inconclusive: str = "fail",
    junit: str | Path | None = None,
    summary_md: str | Path | None = None,
    json_path: str | Path | None = None,
    seed: int = 0,
    quiet: bool = False,
    judge: str | None = None,
    judge_templates: str | None = None,
    reference: str | None = None,
    judge_base_url: str | None = None,
    judge_kv: tuple[str, ...] = (),
    judge_concurrency: int | None = None,
    judge_repeats: int | None = None,
    base_url: str | None = None,
    model_kv: tuple[str, ...] = (),
    concurrency: int | None = None,
    n_boot: int = 10000,
    baseline_sha256: str | None = None,
    tasks: str | list[str] | None = None,
    limit: int | None = None,
    samples: int | None = None,
    temperature: float | None = None,
    data: tuple[str, ...] = (),
    name: str | None = None,
    tags: tuple[str, ...] | list[str] = (),
    output_path: str | Path | None = None,
    log_samples: bool = False,
) -> int:
    """What `codal-eval check` does: run, compare, print, write reports; returns the exit code.

    `name` and `tags` label the candidate's run; `output_path` gets both runs' results files.
    """
    if isinstance(tasks, str):
        tasks = [t.strip() for t in tasks.split(",") if t.strip()]
    by_task = {
        k: v for k, _, v in (d.partition("=") for d in data if "=" in d and not Path(d).exists())
    }
    bare = [d for d in data if "=" not in d or Path(d).exists()]
    m_opts = backend_options(model_kv, base_url, "-M")
    j_opts = backend_options(judge_kv, judge_base_url, "-J")
    overrides: dict[str, Any] = {
        "model_options": m_opts,
        "judge_options": j_opts,
        "concurrency": concurrency,
        "judge_concurrency": judge_concurrency,
        "judge_templates": judge_templates,
        "reference": reference,
        # 1 is the flag's default: keep the baseline's repeats unless more were asked for.
        "judge_repeats": judge_repeats if judge_repeats and judge_repeats > 1 else None,
        "data": by_task,
        "data_files": bare,
        "name": name,
        "tags": tuple(tags),
    }
    result = run_check(
        store,
        model=model,
        baseline=baseline,
        judge=judge,
        max_drop=parse_max_drop(max_drop),
        inconclusive=inconclusive,
        n_boot=n_boot,
        seed=seed,
        quiet=quiet,
        baseline_sha256=baseline_sha256,
        selection=Selection(tasks or None, limit, samples, temperature),
        **overrides,
    )
    from .reports import print_terminal

    print_terminal(result)
    if output_path:
        from ..results import write_run_files

        for run_id in (result.baseline_run, result.candidate_run):
            write_run_files(store, run_id, output_path, log_samples)
    write_reports(
        result,
        Path(junit) if junit else None,
        Path(summary_md) if summary_md else None,
        Path(json_path) if json_path else None,
    )
    return result.exit_code


def render_terminal(result: CheckResult) -> Any:
    from .reports import render_terminal as _render

    return _render(result)


def write_reports(
    result: CheckResult, junit: Path | None, summary_md: Path | None, json_path: Path | None
) -> None:
    from .reports import write_reports as _write

    _write(result, junit, summary_md, json_path)
