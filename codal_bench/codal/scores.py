"""CODAL-Bench scores: the paper's aggregation, written once for every consumer.

The published rule: an item's rating is the first `Rating: N` the judge wrote; a reply without
one (a parse failure) counts 0. A preference's score is the mean over its items, the average the
mean of the five preference means. An item without a usable grade (the answer or the judge call
failed) also counts 0 -- the same as an unusable reply -- and is counted as an error, so errors
never raise a score by dropping out of it. Without all five preferences there is no average: a
mean of four would not be comparable with anyone's five.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..scoring import Metric, MetricScores, Row, mean_of_means, stratified_means

PREFERENCES = ("instruction-following", "explanation", "complexity", "readability", "style")
SCALE = (1.0, 10.0)
SHORT = {
    "instruction-following": "Instr.",
    "explanation": "Expl.",
    "complexity": "Complex.",
    "readability": "Read.",
    "style": "Style",
}
AVERAGE = Metric("codal-average", "CODAL avg", scale=(0.0, 10.0), gate_margin=0.4, headline=True)


def preference_metric(pref: str) -> Metric:
    return Metric(f"codal-{pref}", SHORT.get(pref, pref), scale=(0.0, 10.0), gate_margin=1.0)


def published_rating(row: Row) -> float:
    """The rating as the paper aggregates it: parsed value as is, a parse failure 0."""
    return float(row["rating"]) if row.get("status") == "rated" else 0.0


def in_range(row: Row, lo: float = SCALE[0], hi: float = SCALE[1]) -> bool:
    return row.get("status") == "rated" and lo <= float(row["rating"]) <= hi


def preference_scores(rows: Sequence[Row], parsed_only: bool = False) -> dict[str, MetricScores]:
    """preference -> its scores. `parsed_only` keeps only parsed in-range ratings: the
    diagnostic score beside the published one, where nothing else counts at all."""
    if parsed_only:
        rows = [r for r in rows if in_range(r)]
    parts = stratified_means(rows, published_rating, preference_metric, PREFERENCES)
    return {next(iter(p.strata)): p for p in parts}


def means(scores: dict[str, MetricScores]) -> dict[str, float]:
    """preference -> mean, and `average` when every preference is there."""
    out = {p: s.value for p, s in scores.items()}
    if all(p in scores for p in PREFERENCES):
        out["average"] = mean_of_means(AVERAGE, [scores[p] for p in PREFERENCES]).value
    return out
