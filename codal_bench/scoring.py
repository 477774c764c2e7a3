"""The scoring face every task shares: what a metric is, and per-item scores in strata.

Every consumer (run summary, leaderboard, `check`, `diff`, `grade`, export) asks a task for its
`MetricScores` and never needs to know which benchmark it is looking at. A metric is always the
weighted mean of per-stratum means of per-item scores: one stratum with weight 1 for a plain mean
(pass@1 over tasks), several with equal weights for a mean of group means (an average over a
benchmark's categories). That one shape is enough for a point value, a stratified bootstrap, a
paired test between two runs and a rank interval, so none of those is written per benchmark.

The one rule for errors: every item a run planned is scored. An item without a usable grade (the
answer failed after retries, the grader failed) scores the metric's `error_value` (0 for a rating,
fail for pass@k) and is counted in the summary, so a model that errors never looks better for it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .stats import pass_at_k

Row = dict[str, Any]
"""One stored (item, sample, repeat) row of a run, as `Store.results` returns it."""

PASS_KS = (1, 5, 10, 100)


@dataclass(frozen=True)
class Metric:
    """What a task reports: a stable name (for `--max-drop`, JSON, CSV) and how to show it."""

    name: str
    label: str  # short column header
    scale: tuple[float, float] = (0.0, 1.0)  # the range a value can take (chart axes)
    percent: bool = False  # shown as a percentage (pass rates)
    higher_is_better: bool = True
    gate_margin: float | None = None  # default allowed drop in `check`; None: reported, not gated
    headline: bool = False  # ranks the task's leaderboard tables
    error_value: float = 0.0  # what an item without a usable grade scores

    def show(self, value: float | None) -> str:
        if value is None or value != value:
            return "–"
        return f"{100 * value:.1f}" if self.percent else f"{value:.2f}"


@dataclass
class MetricScores:
    """One metric of one run: per-item scores in strata; the value is sum(w * stratum mean).

    `repeat_var` holds, per stratum, the variance of the grades of each answer graded more than
    once (judge repeats), and `repeats` the mean number of gradings behind an item's score: the
    grader's own noise, which the CI gate uses as a floor under its margin.
    """

    metric: Metric
    strata: dict[str, dict[str, float]]  # stratum -> item id -> score
    weights: dict[str, float]
    repeat_var: dict[str, list[float]] = field(default_factory=dict)
    repeats: dict[str, float] = field(default_factory=dict)
    binary: bool = False  # each item is one pass/fail outcome (pass@1 of one sample)

    @property
    def value(self) -> float:
        return sum(
            w * sum(self.strata[s].values()) / len(self.strata[s])
            for s, w in self.weights.items()
            if self.strata.get(s)
        )

    @property
    def n(self) -> int:
        return sum(len(v) for v in self.strata.values())

    def items(self) -> dict[str, float]:
        """item id -> score, every stratum together (item ids are unique within a task)."""
        return {i: v for s in self.strata.values() for i, v in s.items()}


def pass_at_k_scores(
    rows: Iterable[Row],
    passed: Callable[[Row], bool],
    metric: Callable[[int], Metric],
    stratum: str = "all",
    ks: Sequence[int] = PASS_KS,
) -> list[MetricScores]:
    """pass@k per item for every k that every item has samples for (the unbiased estimator).

    Each (item, sample) row counts once (repeat 0); an ungraded or errored row is a failed
    sample, by the rule in the module docstring. `metric(k)` names the metric for each k.
    """
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        if r.get("repeat", 0) != 0:
            continue
        cell = counts[r["item_id"]]
        cell[0] += 1
        cell[1] += int(usable(r) and passed(r))
    if not counts:
        return []
    n_min = min(n for n, _ in counts.values())
    n_max = max(n for n, _ in counts.values())
    out = []
    for k in ks:
        if k <= n_min:
            scores = {i: pass_at_k(n, c, k) for i, (n, c) in counts.items()}
            ms = MetricScores(metric(k), {stratum: scores}, {stratum: 1.0})
            ms.binary = n_max == 1
            out.append(ms)
    return out


def usable(r: Row) -> bool:
    """The row has an answer and a grade (which may still be a fail or a parse failure)."""
    return r.get("status") not in (None, "judge_error") and not r.get("gen_error")


def stratified_means(
    rows: Iterable[Row],
    score: Callable[[Row], float],
    metric: Callable[[str], Metric],
    strata_order: Sequence[str] = (),
) -> list[MetricScores]:
    """One metric per stratum (`row["group"]`): the mean over its items of each item's mean score
    over samples and repeats. A row that is not `usable` scores the metric's `error_value`.
    """
    acc: dict[tuple[str, str], list[float]] = defaultdict(list)
    per_answer: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    for r in rows:
        s = str(r["group"])
        if usable(r):
            v = score(r)
            per_answer[(s, r["item_id"], r.get("sample_index", 0))].append(v)
        else:
            v = metric(s).error_value
        acc[(s, r["item_id"])].append(v)
    strata: dict[str, dict[str, float]] = defaultdict(dict)
    for (s, item), vals in acc.items():
        strata[s][item] = sum(vals) / len(vals)
    ordered = [s for s in strata_order if s in strata] + sorted(set(strata) - set(strata_order))
    out = []
    for s in ordered:
        answers = {k: v for k, v in per_answer.items() if k[0] == s}
        variances = [_var(v) for v in answers.values() if len(v) > 1]
        graded_items = {k[1] for k in answers}
        per_item = sum(len(v) for v in answers.values()) / max(1, len(graded_items))
        out.append(
            MetricScores(metric(s), {s: strata[s]}, {s: 1.0}, {s: variances}, {s: per_item or 1.0})
        )
    return out


def _var(values: list[float]) -> float:
    m = sum(values) / len(values)
    return sum((v - m) ** 2 for v in values) / (len(values) - 1)


def mean_of_means(metric: Metric, parts: Sequence[MetricScores]) -> MetricScores:
    """The equal-weight mean of several stratum metrics (an average of category means)."""
    w = 1.0 / len(parts)
    out = MetricScores(metric, {}, {})
    for p in parts:
        out.strata.update(p.strata)
        out.repeat_var.update(p.repeat_var)
        out.repeats.update(p.repeats)
    out.weights = {s: w for s in out.strata}
    return out


def error_rows(rows: Iterable[Row]) -> int:
    """Rows without a usable answer or grade: each scored as its metric's error value."""
    return sum(1 for r in rows if not usable(r))


class BaseScoring:
    """Defaults for the parts of the scoring face most tasks need not change.

    A task's `scoring` object must implement `score`; the rest reads well for any task whose
    grades carry a status (pass, fail, rated ...) and a details dict.
    """

    def score(self, rows: Sequence[Row]) -> list[MetricScores]:
        raise NotImplementedError

    def comparable(self, task_config: dict[str, Any]) -> dict[str, Any]:
        """Task-specific settings, beyond the generic ones, that two runs must share."""
        return {}

    def describe_item(self, rows: Sequence[Row]) -> str:
        """Why an item scored what it did, in one line (for `diff` and reports)."""
        for r in rows:
            if r.get("gen_error"):
                return f"generation error: {r['gen_error']}"[:200]
        statuses = sorted({str(r.get("status")) for r in rows})
        return "status " + ", ".join(statuses)

    def export_fields(self, row: Row) -> dict[str, Any]:
        """Task-specific fields of one exported row (beyond answer, status, error)."""
        return {"details": row.get("details") or {}}

    def notes(self, rows: Sequence[Row]) -> list[str]:
        """Lines the run summary shows under the task's metrics (diagnostics, warnings)."""
        return []

    def sample_fields(
        self, row: Row, data: dict[str, Any] | None, settings: Any = None
    ) -> dict[str, Any]:
        """Fields of a per-sample log that need the item's own data (its reference answer, the
        code actually run); `data` is the item's `Sample.data`, None when it cannot be loaded,
        and `settings` the run's `TaskSettings` for the task (how it was graded)."""
        return {}

    def warnings(self, report: dict[str, Any]) -> list[str]:
        """One readable line per problem in the task's stored `report` that qualifies its
        scores (e.g. a judge rating its own answers); the full report stays in JSON output."""
        return []

    def report(self, rows: Sequence[Row], config: Any) -> dict[str, Any] | None:
        """A task's own report kept in the run record (e.g. a judge's diagnostics), or None."""
        return None


class PassAtK(BaseScoring):
    """pass@k over items for an execution task whose grade status is "pass" or not.

    Metrics are named `name` (pass@1, gated with `margin` and ranked) and `name@k` for larger k.
    """

    def __init__(self, name: str, label: str, margin: float = 0.03) -> None:
        self.name, self.label, self.margin = name, label, margin

    def metric(self, k: int) -> Metric:
        return Metric(
            self.name if k == 1 else f"{self.name}@{k}",
            f"{self.label} pass@{k}",
            percent=True,
            gate_margin=self.margin if k == 1 else None,
            headline=k == 1,
        )

    def score(self, rows: Sequence[Row]) -> list[MetricScores]:
        return pass_at_k_scores(rows, lambda r: r.get("status") == "pass", self.metric)
