"""The CODAL report: published scores with uncertainty, and the diagnostics that qualify them.

The published numbers come from `codal_bench.codal.scores`, the single place the paper's rule
lives (parse failures and errors count 0, ratings kept as parsed). Beside them we put what the
paper did not report but a reader needs in order to trust a difference: the score over parsed
in-range ratings only, how often the judge failed to produce a usable rating, bootstrap
intervals, and signs of bias (self-preference, length) or noise (A/A repeats).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..stats import draw, mean_interval
from ..stats import percentile_interval as _interval
from .judge import REFERENCE_SUFFIX, model_family, own_reference_model
from .scores import PREFERENCES, means, preference_scores

TASK = "codal-bench"

Array = npt.NDArray[np.float64]
GRADED = ("rated", "parse_failure")
# Every metric has a point value and an interval; the first two are scores, the rest are rates.
METRICS = ("published", "parsed", "parse_failure_rate", "out_of_range_rate")


def percentile_ci(boot: Array, level: float = 0.95) -> list[float] | None:
    """Percentile interval of bootstrap statistics; None when nothing could be resampled."""
    finite = boot[np.isfinite(boot)]
    if finite.size == 0:
        return None
    lo, hi = _interval(finite, level)
    return [float(lo), float(hi)]


def bootstrap_ci(
    values: Sequence[float] | Array, n_boot: int = 10_000, seed: int = 0, level: float = 0.95
) -> list[float] | None:
    """95 % percentile bootstrap interval of the mean, reproducible for a given seed."""
    return mean_interval(list(np.asarray(values, dtype=np.float64)), n_boot, seed, level)


def _mean_of(values: list[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return sum(got) / len(got) if got else None


def _rate(part: Array, whole: Array) -> Array:
    """Per-item rates over the judge outputs an item got (NaN for an item with none)."""
    out: Array = np.divide(part, whole, out=np.full(part.shape, np.nan), where=whole > 0)
    return out


def _nanmean(x: Array) -> float | None:
    return float(np.nanmean(x)) if np.isfinite(x).any() else None


def _nanmean_rows(m: Array) -> Array:
    ok = np.isfinite(m)
    count = ok.sum(axis=1)
    total = np.where(ok, m, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out: Array = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return out


def _num(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def _out_of_range(row: dict[str, Any], lo: float, hi: float) -> bool:
    if row.get("status") != "rated":
        return False
    d = row.get("details") or {}
    if "out_of_range" in d:
        return bool(d["out_of_range"])
    return not lo <= float(row["rating"]) <= hi


def codal_report(
    rows: Sequence[dict[str, Any]],
    *,
    candidate: str,
    judge: str | None,
    reference: str | None,
    n_boot: int = 10_000,
    seed: int = 0,
    scale: tuple[float, float] = (1, 10),
) -> dict[str, Any]:
    """Scores and diagnostics of one run's CODAL rows (`Store.results` shape).

    Items are resampled within each preference; the average's interval comes from the same
    resamples (mean of the five resampled means), so it reflects the published aggregation.
    """
    lo, hi = scale
    codal = [r for r in rows if r.get("task", TASK) == TASK]
    pub_scores, par_scores = preference_scores(codal), preference_scores(codal, parsed_only=True)
    published = {p: s.strata[p] for p, s in pub_scores.items()}
    parsed = {p: s.strata[p] for p, s in par_scores.items()}
    pub_means, par_means = means(pub_scores), means(par_scores)

    graded: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])  # n, fail, oor
    errors: dict[str, int] = defaultdict(int)
    for r in codal:
        if r.get("status") in GRADED:
            cell = graded[(r["group"], r["item_id"])]
            cell[0] += 1
            cell[1] += r["status"] == "parse_failure"
            cell[2] += _out_of_range(r, lo, hi)
        else:
            errors[r["group"]] += 1

    prefs = [p for p in PREFERENCES if p in published] + sorted(set(published) - set(PREFERENCES))
    rng = np.random.default_rng(seed)
    boots: dict[str, list[Array]] = {m: [] for m in METRICS}
    per_pref: dict[str, Any] = {}
    for p in prefs:
        items = sorted(published[p])
        cells = np.array([graded[(p, i)] for i in items], dtype=np.float64)
        arrays = {
            "published": np.array([published[p][i] for i in items], dtype=np.float64),
            "parsed": np.array([parsed.get(p, {}).get(i, np.nan) for i in items], dtype=np.float64),
            "parse_failure_rate": _rate(cells[:, 1], cells[:, 0]),
            "out_of_range_rate": _rate(cells[:, 2], cells[:, 0]),
        }
        points = {
            "published": pub_means[p],
            "parsed": par_means.get(p),
            "parse_failure_rate": _nanmean(arrays["parse_failure_rate"]),
            "out_of_range_rate": _nanmean(arrays["out_of_range_rate"]),
        }
        if n_boot > 0:
            idx = draw(rng, len(items), n_boot)
            for m in METRICS:
                boots[m].append(_nanmean_rows(arrays[m][idx]))
        per_pref[p] = {
            "n": len(items),
            "parsed_n": int(np.isfinite(arrays["parsed"]).sum()),
            "outputs": int(cells[:, 0].sum()),
            "errors": errors.get(p, 0),
            **{m: _metric(points[m], boots[m][-1] if n_boot > 0 else None) for m in METRICS},
        }

    average: dict[str, Any] = {}
    if prefs:
        points = {
            "published": pub_means.get("average"),
            "parsed": par_means.get("average"),
            **{m: _mean_of([v[m]["value"] for v in per_pref.values()]) for m in METRICS[2:]},
        }
        average = {
            "n": sum(v["n"] for v in per_pref.values()),
            "parsed_n": sum(v["parsed_n"] for v in per_pref.values()),
            "outputs": sum(v["outputs"] for v in per_pref.values()),
            "errors": sum(v["errors"] for v in per_pref.values()),
        }
        for m in METRICS:
            # Mean of the preference statistics of each resample: the published aggregation.
            boot = _nanmean_rows(np.stack(boots[m], axis=1)) if n_boot > 0 else None
            average[m] = _metric(points[m], boot)

    refs = sorted(
        str(c) for c in {(r.get("details") or {}).get("reference_column") for r in codal} if c
    )
    used_reference = reference or (refs[0] if len(refs) == 1 else None)
    outputs = sum(c[0] for c in graded.values())
    failures = sum(c[1] for c in graded.values())
    return {
        "candidate": candidate,
        "judge": judge,
        "reference": used_reference,
        "scale": [lo, hi],
        "preferences": per_pref,
        "average": average,
        "bootstrap": {
            "n_boot": n_boot,
            "seed": seed,
            "level": 0.95,
            "method": "percentile; items resampled within each preference",
        },
        "diagnostics": {
            "outputs": outputs,
            "parse_failures": failures,
            "parse_failure_rate": failures / outputs if outputs else None,
            "judge_errors": sum(1 for r in codal if r.get("status") == "judge_error"),
            "ungraded": sum(1 for r in codal if r.get("status") is None),
            "reference_columns": refs,
            "self_preference": self_preference(
                candidate, judge, [used_reference] if used_reference else refs
            ),
            "length_slope": length_slope(codal, lo, hi),
            "aa_noise": aa_noise(codal, lo, hi),
        },
    }


def _metric(point: float | None, boot: Array | None) -> dict[str, Any]:
    return {"value": _num(point), "ci": percentile_ci(boot) if boot is not None else None}


def self_preference(candidate: str, judge: str | None, references: Sequence[str]) -> dict[str, Any]:
    """Flag setups where the judge may favour itself: its own (family's) references or answers."""
    reasons: list[str] = []
    if judge:
        fam = model_family(judge)
        own = own_reference_model(judge)
        for col in references:
            ref_model = col[: -len(REFERENCE_SUFFIX)] if col.endswith(REFERENCE_SUFFIX) else col
            if own == ref_model:
                reasons.append(f"reference {col} holds the judge's own model line's answers")
            elif model_family(ref_model) == fam:
                reasons.append(f"reference {col} comes from the judge's family ({fam})")
        if candidate and model_family(candidate) == fam:
            reasons.append(f"judge {judge} and candidate {candidate} share the family {fam!r}")
    return {"flag": bool(reasons), "reasons": reasons}


def length_slope(rows: Sequence[dict[str, Any]], lo: float, hi: float) -> dict[str, Any] | None:
    """OLS slope of parsed in-range rating on answer length (per 1000 characters).

    Parse failures are left out: they would tie length to the 0 score through truncation.
    """
    pts = [
        (len(r["answer"]), float(r["rating"]))
        for r in rows
        if r.get("status") == "rated" and r.get("answer") is not None and lo <= r["rating"] <= hi
    ]
    if len(pts) < 3:
        return None
    x = np.array([p[0] for p in pts], dtype=np.float64) / 1000.0
    y = np.array([p[1] for p in pts], dtype=np.float64)
    if np.ptp(x) == 0:
        return None
    xc, yc = x - x.mean(), y - y.mean()
    slope = float((xc * yc).sum() / (xc * xc).sum())
    denom = float(np.sqrt((xc * xc).sum() * (yc * yc).sum()))
    return {
        "per_1000_chars": slope,
        "intercept": float(y.mean() - slope * x.mean()),
        "r": float((xc * yc).sum() / denom) if denom > 0 else None,
        "n": len(pts),
    }


def aa_noise(rows: Sequence[dict[str, Any]], lo: float, hi: float) -> dict[str, Any] | None:
    """The judge's disagreement with itself: std (ddof=1) of repeated ratings of one answer."""
    if not any((r.get("repeat") or 0) > 0 for r in rows):
        return None
    by_answer: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    statuses: dict[tuple[str, str, int], set[str]] = defaultdict(set)
    for r in rows:
        k = (r["group"], r["item_id"], int(r.get("sample_index") or 0))
        if r.get("status") in GRADED:
            statuses[k].add(r["status"])
        if r.get("status") == "rated" and lo <= r["rating"] <= hi:
            by_answer[k].append(float(r["rating"]))
    stds = [float(np.std(v, ddof=1)) for v in by_answer.values() if len(v) >= 2]
    return {
        "repeats": max(int(r.get("repeat") or 0) for r in rows) + 1,
        "answers": len(stds),
        "mean_std": _num(float(np.mean(stds))) if stds else None,
        "max_std": max(stds) if stds else None,
        "disagreeing_share": float(np.mean([s > 0 for s in stds])) if stds else None,
        "parse_flip_share": (
            float(np.mean([len(s) > 1 for s in statuses.values()])) if statuses else None
        ),
    }
