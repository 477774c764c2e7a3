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

from .. import comparable
from .. import stats as gs
from ..config import RunConfig, backend_options
from ..store import Store
from ..types import CodalError, UsageError
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
) -> CheckResult:
    """Per-metric decisions for candidate vs baseline on their common items (see module doc)."""
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
    metrics = []
    for p in paired:
        t0 = time.perf_counter()
        margin = margin_for(p.name, p.metric.gate_margin or 0.0, max_drop)
        metrics.append(_decide_one(p, margin, k, n_boot, seed, alpha))
        metrics[-1].elapsed_s = time.perf_counter() - t0
    for m, adj in zip(metrics, gs.holm([m.p_margin for m in metrics]), strict=True):
        m.p_adjusted = adj
        m.decision, m.reason = _decision(m, alpha)
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


def _decide_one(
    p: Paired, margin: float, k: int, n_boot: int, seed: int, alpha: float
) -> MetricResult:
    floor = gs.z(1 - alpha) * p.aa_se if p.aa_se is not None else None
    eff = max(margin, floor or 0.0)
    boot = gs.paired_bootstrap(
        p.strata, p.weights, margin=eff, n_boot=n_boot, seed=seed, alpha=alpha
    )
    mdd = gs.min_detectable_drop(boot.se, eff, alpha=alpha, n_tests=k)
    if p.discordant is not None:
        b, c = p.discordant
        p_margin, p_zero = gs.mcnemar_margin(b, c, p.n, eff), gs.mcnemar_exact(b, c)
        mdd = max(mdd, gs.mcnemar_min_detectable(p.n, eff, alpha / k))
        test = "exact McNemar (conditional binomial, margin-shifted)"
    else:
        p_margin = boot.p_margin
        p_zero = gs.sign_flip_pvalue(p.strata, p.weights, n_perm=n_boot, seed=seed)
        test = "paired bootstrap" + (" (stratified)" if len(p.strata) > 1 else "")
    return MetricResult(
        name=p.name, task=p.task, kind=p.kind, n_items=p.n, baseline=p.baseline,
        candidate=p.candidate, drop=boot.drop, lo=boot.lo, hi=boot.hi, margin=margin,
        noise_floor=floor, p_no_drop=p_zero, p_margin=p_margin, p_adjusted=p_margin, se=boot.se,
        mdd=mdd, test=test, excluded=p.excluded, discordant=p.discordant,
    )  # fmt: skip


def _decision(m: MetricResult, alpha: float) -> tuple[Decision, str]:
    eff = max(m.margin, m.noise_floor or 0.0)
    if m.p_adjusted < alpha and m.drop > eff:
        return "regression", (
            f"drop {m.drop:.3g} exceeds the allowed {eff:.3g} (Holm-adjusted p={m.p_adjusted:.2g})"
        )
    if m.hi <= m.margin:
        return "pass", f"upper 95 % bound of the drop {m.hi:.3g} is within {m.margin:.3g}"
    why = f"upper 95 % bound {m.hi:.3g} exceeds {m.margin:.3g}"
    if m.noise_floor is not None and m.drop > m.margin and m.drop <= m.noise_floor:
        why += f"; the drop is within the judge's A/A noise ({m.noise_floor:.3g})"
    elif m.drop > eff:
        why += f", but the drop is not significant (Holm-adjusted p={m.p_adjusted:.2g})"
    return "inconclusive", why + f"; this run can detect drops of {m.mdd:.3g} (80 % power)"


def find_baseline(store: Store, baseline: str, judge: str | None = None) -> str:
    """An existing file (a baseline bundle), a run id (or unique prefix, or `latest`), a run
    name, else the newest complete run of a model spec."""
    if Path(baseline).is_file():
        return baseline_from_bundle(store, Path(baseline))
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
    if not runs:
        raise CheckError(
            f"baseline: {why}, and no complete run of a model {baseline!r} is stored either "
            f"(pass a run id, or run `codal-eval run --model {baseline} ...` first)"
        )
    return runs[-1].run_id


def baseline_from_bundle(store: Store, path: Path) -> str:
    """Hook for portable baselines (`export --format bundle`): import the bundle's run into the
    store and return its id. Bundles are another change; until it lands, say so clearly."""
    raise CheckError(
        f"baseline {path} is a file: baseline bundles are not supported by this version "
        "(pass a run id, a run name or a model spec)"
    )


def _is_spec(text: str) -> bool:
    from ..spec import parse_spec

    try:
        parse_spec(text)
    except CodalError:
        return False
    return True


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
    **overrides: Any,
) -> CheckResult:
    """Find the baseline, run the candidate like it (the store reuses what it can), compare."""
    from ..config import RunOptions
    from ..progress import Progress
    from ..rerun import run_like
    from ..runner import run

    overrides = {k: v for k, v in overrides.items() if v not in (None, {}, ())}
    with Progress(enabled=not quiet) as progress:
        try:
            base_id = find_baseline(store, baseline, judge)
        except CheckError:
            if not _is_spec(baseline):
                raise
            # "found or made": a model spec without a stored run gets one, with default tasks and
            # the judge settings of this check (the candidate's -M/--base-url are not its own).
            shared = {k: v for k, v in overrides.items() if k.startswith(("judge", "reference"))}
            try:
                made = run(RunOptions(model=baseline, judge=judge, **shared), store, progress)
            except UsageError:
                raise
            except CodalError as exc:
                raise CheckError(f"the baseline run of {baseline} failed: {exc}") from exc
            assert made.run_id is not None
            base_id = made.run_id
        try:
            judge_where_the_baseline_did(store.run(base_id).config, judge, overrides)
            cand_id = run_like(store, base_id, model, judge, progress, **overrides)
        except UsageError:
            raise
        except CodalError as exc:
            raise CheckError(f"the candidate run failed: {exc}") from exc
    return compare_runs(
        store,
        base_id,
        cand_id,
        max_drop=max_drop,
        inconclusive=inconclusive,
        n_boot=n_boot,
        seed=seed,
    )


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
    name: str | None = None,
    tags: tuple[str, ...] | list[str] = (),
    output_path: str | Path | None = None,
    log_samples: bool = False,
) -> int:
    """What `codal-eval check` does: run, compare, print, write reports; returns the exit code.

    `name` and `tags` label the candidate's run; `output_path` gets both runs' results files.
    """
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
