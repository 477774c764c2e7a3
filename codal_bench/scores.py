"""Item-level scores from stored results rows: the one place that turns grades into numbers.

Reports, the leaderboard and the CI gate all start from these functions, so a rule such as "a
parse failure counts 0 in the published score" is written exactly once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from .stats import pass_at_k

PREFERENCES = ("instruction-following", "explanation", "complexity", "readability", "style")
CODAL_TASK = "codal-bench"
HUMANEVAL_TASKS = ("humaneval-plus", "humaneval-plus-mini")


def published_rating(row: dict[str, Any]) -> float | None:
    """The rating as the paper aggregates it: parsed value as is, a parse failure counts 0.

    None when the item has no usable grade (generation or judge call failed): such items are
    reported as errors, never silently scored.
    """
    status = row.get("status")
    if status == "rated":
        return float(row["rating"])
    if status == "parse_failure":
        return 0.0
    return None


def codal_item_ratings(
    rows: Iterable[dict[str, Any]], *, parsed_only: bool = False, lo: float = 1, hi: float = 10
) -> dict[str, dict[str, float]]:
    """preference -> item_id -> rating, averaged over judge repeats.

    parsed_only keeps only parsed in-range ratings (the diagnostic score beside the published one).
    """
    acc: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in rows:
        if r.get("task") != CODAL_TASK:
            continue
        if parsed_only:
            if r.get("status") != "rated" or not (lo <= float(r["rating"]) <= hi):
                continue
            v: float | None = float(r["rating"])
        else:
            v = published_rating(r)
        if v is not None:
            acc[(r["group"], r["item_id"])].append(v)
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for (pref, item), vals in acc.items():
        out[pref][item] = sum(vals) / len(vals)
    return dict(out)


def codal_means(ratings: dict[str, dict[str, float]]) -> dict[str, float]:
    """Mean per preference and `average` = mean of the five preference means (the published
    method). Without a graded item in every preference there is no average: a mean of four
    would not be comparable with anyone's five.
    """
    means = {p: sum(v.values()) / len(v) for p, v in ratings.items() if v}
    if means and all(p in means for p in PREFERENCES):
        means["average"] = sum(means[p] for p in PREFERENCES) / len(PREFERENCES)
    return means


def humaneval_item_counts(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, tuple[int, int]]]:
    """task -> task_id -> (samples, passes) for `base` and for `plus` (HumanEval+ = base and plus).

    Keys of the outer dict: "<task>/base" and "<task>/plus".
    """
    acc: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for r in rows:
        if r.get("task") not in HUMANEVAL_TASKS or r.get("status") is None:
            continue
        d = r.get("details") or {}
        base_ok = d.get("base") == "pass"
        plus_ok = base_ok and d.get("plus") == "pass"
        for part, ok in (("base", base_ok), ("plus", plus_ok)):
            cell = acc[f"{r['task']}/{part}"][r["item_id"]]
            cell[0] += 1
            cell[1] += int(ok)
    return {k: {i: (v[0], v[1]) for i, v in d.items()} for k, d in acc.items()}


def humaneval_pass_at(
    counts: dict[str, tuple[int, int]], ks: Iterable[int] = (1,)
) -> dict[int, float]:
    """Mean pass@k over tasks, for every k that every task has enough samples for."""
    out: dict[int, float] = {}
    if not counts:
        return out
    n_min = min(n for n, _ in counts.values())
    for k in ks:
        if k <= n_min:
            out[k] = sum(pass_at_k(n, c, k) for n, c in counts.values()) / len(counts)
    return out


def run_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The headline numbers of one run: CODAL per preference + average, pass@1 (and @k)."""
    out: dict[str, Any] = {}
    ratings = codal_item_ratings(rows)
    if ratings:
        out["codal"] = codal_means(ratings)
        out["codal_items"] = sum(len(v) for v in ratings.values())
        out["codal_parse_failures"] = sum(
            1 for r in rows if r.get("task") == CODAL_TASK and r.get("status") == "parse_failure"
        )
    for key, counts in humaneval_item_counts(rows).items():
        n_min = min(n for n, _ in counts.values())
        ks = [k for k in (1, 5, 10, 100) if k <= n_min]
        out[key] = {"tasks": len(counts), "pass_at": humaneval_pass_at(counts, ks)}
    out["empty_answers"] = len(
        {
            (r["task"], r["item_id"], r["sample_index"])
            for r in rows
            if r.get("answer") == "" and not r.get("gen_error")
        }
    )
    out["errors"] = sum(1 for r in rows if r.get("gen_error") or r.get("status") == "judge_error")
    return out
