"""Turn two runs' stored rows into paired per-item differences, one set per gated metric.

Pairing is the whole point of the gate: both runs saw the same items, so the item-to-item
variation (some tasks are simply hard) cancels and only the model's change remains. A metric's
differences are `baseline - candidate` per item (reversed for a lower-is-better metric), so a
positive mean is a drop. Which metrics exist, how an item scores and how errors count all come from
each task's scoring face; items pair up by (stratum, item id).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from math import sqrt
from typing import Any

import numpy as np

from .. import registry
from ..scoring import Metric, MetricScores
from ..stats import FloatArray

Rows = list[dict[str, Any]]


@dataclass
class Paired:
    """One metric's paired data, ready for the statistics in `codal_bench.stats`."""

    name: str
    task: str
    metric: Metric
    strata: list[FloatArray]
    weights: list[float]
    baseline: float
    candidate: float
    n: int
    excluded: int = 0
    discordant: tuple[int, int] | None = None  # set when every item is one pass/fail outcome
    aa_se: float | None = None  # SE of the metric between two gradings of identical answers
    samples: int | None = None  # samples per item behind a pass rate (for the sample-size plan)

    @property
    def kind(self) -> str:
        return "pass" if self.metric.percent else "rating"


def _by_task(rows: Rows) -> dict[str, Rows]:
    out: dict[str, Rows] = defaultdict(list)
    for r in rows:
        out[r["task"]].append(r)
    return out


def paired_metrics(rows_a: Rows, rows_b: Rows, order: Sequence[str] = ()) -> list[Paired]:
    """Every gated metric (one with a default margin) of every task both runs have.

    A metric name two tasks share (a task and its variant) is prefixed `task/` for every task but
    the first in `order`, so margins can be set for each.
    """
    ta, tb = _by_task(rows_a), _by_task(rows_b)
    tasks = [t for t in order if t in ta and t in tb]
    tasks += sorted(t for t in ta if t in tb and t not in tasks)
    scored: list[tuple[str, MetricScores, MetricScores]] = []
    for task in tasks:
        scoring = registry.scoring(task)
        sa = {s.metric.name: s for s in scoring.score(ta[task])}
        sb = {s.metric.name: s for s in scoring.score(tb[task])}
        for name, a in sa.items():
            if name in sb and a.metric.gate_margin is not None:
                scored.append((task, a, sb[name]))
    seen: dict[str, str] = {}
    out = []
    for task, a, b in scored:
        first = seen.setdefault(a.metric.name, task)
        name = a.metric.name if first == task else f"{task}/{a.metric.name}"
        p = pair(name, task, a, b)
        if a.metric.percent:
            p.samples = _samples(ta[task])
        out.append(p)
    return out


def _samples(rows: Rows) -> int:
    """Samples per item (the largest count; every item of a run has the same)."""
    per: dict[str, set[int]] = defaultdict(set)
    for r in rows:
        per[r["item_id"]].add(int(r.get("sample_index", 0)))
    return max((len(v) for v in per.values()), default=1)


def pair(name: str, task: str, a: MetricScores, b: MetricScores) -> Paired:
    """Paired differences of one metric, stratum by stratum, on the items both runs scored."""
    sign = 1.0 if a.metric.higher_is_better else -1.0
    strata, weights, ses = [], [], []
    n = excluded = 0
    va: list[float] = []
    vb: list[float] = []
    for s, w in a.weights.items():
        ia, ib = a.strata.get(s, {}), b.strata.get(s, {})
        common = sorted(set(ia) & set(ib))
        excluded += len(set(ia) ^ set(ib))
        if not common:
            continue
        xa = np.array([ia[i] for i in common], dtype=float)
        xb = np.array([ib[i] for i in common], dtype=float)
        strata.append(sign * (xa - xb))
        weights.append(w)
        va.append(float(xa.mean()))
        vb.append(float(xb.mean()))
        n += len(common)
        ses.append(_aa_se(a, b, s, len(common)))
    total = sum(weights) or 1.0
    weights = [w / total for w in weights]
    values = np.concatenate(strata) if strata else np.array([])
    binary = a.binary and b.binary
    disc = None
    if binary and len(strata) == 1:
        disc = (int(np.sum(values > 0)), int(np.sum(values < 0)))
    known = [se for se in ses if se is not None]
    aa = (
        sqrt(sum((w * se) ** 2 for w, se in zip(weights, known, strict=True)))
        if ses and len(known) == len(ses)
        else None
    )
    return Paired(
        name, task, a.metric, strata, weights,
        sum(w * v for w, v in zip(weights, va, strict=True)),
        sum(w * v for w, v in zip(weights, vb, strict=True)),
        n, excluded, disc, aa,
    )  # fmt: skip


def _aa_se(a: MetricScores, b: MetricScores, stratum: str, n: int) -> float | None:
    """The grader's own noise, from repeats: SE of a stratum mean between two gradings.

    Within-answer variance s² of the grade across repeats (pooled over both runs); each run's
    item mean averages r grades, so an A/A difference of a mean over n items has variance
    s²·(1/r_a + 1/r_b)/n. None when no answer was graded more than once.
    """
    variances = a.repeat_var.get(stratum, []) + b.repeat_var.get(stratum, [])
    if not variances:
        return None
    s2 = sum(variances) / len(variances)
    ra, rb = a.repeats.get(stratum, 1.0), b.repeats.get(stratum, 1.0)
    return sqrt(s2 * (1 / ra + 1 / rb) / n)
