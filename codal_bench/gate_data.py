"""Turn two runs' stored rows into paired per-item differences, one set per gate metric.

Pairing is the whole point of the gate: both runs saw the same items, so the item-to-item
variation (some tasks are simply hard) cancels and only the model's change remains. A metric's
differences are `baseline - candidate` per item, so a positive mean is a drop.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from math import sqrt
from typing import Any

import numpy as np

from .gate_stats import FloatArray
from .scores import CODAL_TASK, HUMANEVAL_TASKS, PREFERENCES, codal_item_ratings, published_rating

Rows = list[dict[str, Any]]


@dataclass
class Paired:
    """One metric's paired data, ready for the statistics in `gate_stats`."""

    name: str
    task: str
    kind: str  # "rating" or "pass"
    strata: list[FloatArray]
    weights: list[float]
    baseline: float
    candidate: float
    n: int
    excluded: int = 0
    discordant: tuple[int, int] | None = None  # set when every task has exactly one sample
    aa_se: float | None = None  # SE of the metric between two judgings of identical answers


def paired_metrics(rows_a: Rows, rows_b: Rows) -> list[Paired]:
    return _codal(rows_a, rows_b) + _humaneval(rows_a, rows_b)


def _codal(rows_a: Rows, rows_b: Rows) -> list[Paired]:
    ra, rb = codal_item_ratings(rows_a), codal_item_ratings(rows_b)
    seen: dict[str, set[str]] = defaultdict(set)
    for r in rows_a + rows_b:
        if r.get("task") == CODAL_TASK:
            seen[r["group"]].add(r["item_id"])
    prefs = [p for p in PREFERENCES if p in ra and p in rb]
    prefs += sorted(set(ra) & set(rb) - set(prefs))
    out: list[Paired] = []
    for pref in prefs:
        common = sorted(set(ra[pref]) & set(rb[pref]))
        if not common:
            continue
        a = np.array([ra[pref][i] for i in common], dtype=float)
        b = np.array([rb[pref][i] for i in common], dtype=float)
        aa = _aa_se(rows_a, rows_b, pref, len(common))
        out.append(
            Paired(
                f"codal-{pref}",
                CODAL_TASK,
                "rating",
                [a - b],
                [1.0],
                float(a.mean()),
                float(b.mean()),
                len(common),
                len(seen[pref]) - len(common),
                None,
                aa,
            )
        )
    if len(out) >= 2:
        w = 1.0 / len(out)
        ses = [p.aa_se for p in out]
        out.append(
            Paired(
                "codal-average",
                CODAL_TASK,
                "rating",
                [p.strata[0] for p in out],
                [w] * len(out),
                sum(p.baseline for p in out) * w,
                sum(p.candidate for p in out) * w,
                sum(p.n for p in out),
                0,
                None,
                sqrt(sum((w * s) ** 2 for s in ses if s is not None)) if None not in ses else None,
            )
        )
    return out


def _aa_se(rows_a: Rows, rows_b: Rows, pref: str, n: int) -> float | None:
    """The judge's own noise, from repeats: SE of a preference mean between two judgings.

    Within-answer variance s² of the rating across repeats (pooled over both runs); each run's
    item mean averages r ratings, so an A/A difference of a mean over n items has variance
    s²·(1/r_a + 1/r_b)/n. None when no answer was judged more than once.
    """
    variances: list[float] = []
    per_item: list[float] = []
    for rows in (rows_a, rows_b):
        groups: dict[tuple[str, int], list[float]] = defaultdict(list)
        for r in rows:
            if r.get("task") == CODAL_TASK and r["group"] == pref:
                rating = published_rating(r)
                if rating is not None:
                    groups[(r["item_id"], r["sample_index"])].append(rating)
        variances += [float(np.var(g, ddof=1)) for g in groups.values() if len(g) > 1]
        items: dict[str, int] = defaultdict(int)
        for (item, _), g in groups.items():
            items[item] += len(g)
        per_item.append(sum(items.values()) / len(items) if items else 1.0)
    if not variances:
        return None
    s2 = sum(variances) / len(variances)
    return sqrt(s2 * (1 / per_item[0] + 1 / per_item[1]) / n)


def _he_counts(rows: Rows, task: str) -> dict[str, dict[str, tuple[int, int]]]:
    """part ("base"/"plus") -> task_id -> (samples, passes).

    Unlike the leaderboard, an answer the model failed to produce (generation error) counts as a
    failure here: a checkpoint that errors must not look better to the gate. Answers that were
    never graded are left out (and reported as excluded).
    """
    acc: dict[str, dict[str, list[int]]] = {"base": {}, "plus": {}}
    for r in rows:
        if r.get("task") != task:
            continue
        if r.get("status") is None and not r.get("gen_error"):
            continue
        d = r.get("details") or {}
        graded = r.get("status") is not None
        base_ok = graded and d.get("base", r.get("status")) == "pass"
        plus_ok = base_ok and d.get("plus", r.get("status")) == "pass"
        for part, ok in (("base", base_ok), ("plus", plus_ok)):
            cell = acc[part].setdefault(r["item_id"], [0, 0])
            cell[0] += 1
            cell[1] += int(ok)
    return {p: {i: (v[0], v[1]) for i, v in d.items()} for p, d in acc.items()}


def _humaneval(rows_a: Rows, rows_b: Rows) -> list[Paired]:
    tasks_a = {r["task"] for r in rows_a}
    tasks_b = {r["task"] for r in rows_b}
    present = [t for t in HUMANEVAL_TASKS if t in tasks_a and t in tasks_b]
    out: list[Paired] = []
    for task in present:
        prefix = f"{task}/" if len(present) > 1 and task != "humaneval-plus" else ""
        ca, cb = _he_counts(rows_a, task), _he_counts(rows_b, task)
        seen = {r["item_id"] for r in rows_a + rows_b if r.get("task") == task}
        for part, metric in (("plus", "humaneval-plus"), ("base", "humaneval")):
            common = sorted(set(ca[part]) & set(cb[part]))
            if not common:
                continue
            a = np.array([ca[part][i][1] / ca[part][i][0] for i in common])
            b = np.array([cb[part][i][1] / cb[part][i][0] for i in common])
            one = all(ca[part][i][0] == 1 and cb[part][i][0] == 1 for i in common)
            disc = (int(np.sum((a == 1) & (b == 0))), int(np.sum((a == 0) & (b == 1))))
            out.append(
                Paired(
                    prefix + metric,
                    task,
                    "pass",
                    [a - b],
                    [1.0],
                    float(a.mean()),
                    float(b.mean()),
                    len(common),
                    len(seen) - len(common),
                    disc if one else None,
                )
            )
    return out
