"""The gate's decision rule in array form: G comparisons at once (`check` passes G = 1).

The seeded simulation in the test suite runs a thousand gates per case through these functions,
so the figures it reports are those of the code `check` runs, not of a re-implementation.

Per metric, the test follows the data (see `codal_bench.gate.check` for the rule itself):

- one pass/fail outcome per item: the exact conditional McNemar test generalised to the margin,
  both ways, with Clopper-Pearson bounds that invert it;
- otherwise, when some stratum has fewer than `SMALL_N` non-zero differences: the sign-flip test
  (exact below `EXACT_MAX` items), whose bounds are order statistics of its thresholds;
- otherwise the stratified paired bootstrap.

A metric with fewer than `MIN_ITEMS` paired items is never decided: at that size no resampling
method knows its own error, and an exact test could at best say "no regression shown".
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil
from typing import Any

import numpy as np

from ..stats import FloatArray
from . import stats as gs
from .result import Decision

PASS, REGRESSION, INCONCLUSIVE = 0, 1, 2
DECISIONS: tuple[Decision, Decision, Decision] = ("pass", "regression", "inconclusive")


@dataclass
class MetricInput:
    """One metric's paired differences for G comparisons: each stratum is (n_items, G)."""

    strata: list[FloatArray]
    weights: list[float]
    margin: float
    binary: bool = False  # one pass/fail outcome per item, one stratum
    noise_floor: float | None = None  # the judge's one-sided A/A band, when repeats measured it
    default_sd: float = 0.5  # per-item SD assumed when too few items to estimate one
    samples: int | None = None  # samples per item, for a pass-rate metric

    @property
    def n(self) -> int:
        return sum(len(d) for d in self.strata)

    @property
    def effective_margin(self) -> float:
        return max(self.margin, self.noise_floor or 0.0)


def test_metric(
    x: MetricInput, *, n_tests: int, n_boot: int, seed: int, alpha: float, bounds: bool = True
) -> dict[str, Any]:
    """Drop, bounds, p-values, the test used and the sample-size need, each an array of G.

    The decision needs only the p-values; `bounds=False` skips the interval (a sort of every
    comparison's replicates), which the simulation does not print.
    """
    cols = [np.asarray(d, dtype=np.float64).reshape(len(d), -1) for d in x.strata]
    g = cols[0].shape[1]
    eff, m = x.effective_margin, x.margin
    drop = gs.weighted_drop(cols, x.weights)
    se = gs.paired_se(cols, x.weights)
    method = np.empty(g, dtype=object)
    if x.binary and len(cols) == 1:
        b, c = (cols[0] > 0).sum(axis=0), (cols[0] < 0).sum(axis=0)
        t = gs.mcnemar_tests(b, c, x.n, eff, m, alpha)
        t["p_no_drop"] = gs.mcnemar_tests(b, c, x.n, 0.0, 0.0, alpha)["p_regression"]
        method[:] = "exact McNemar (conditional binomial, margin-shifted)"
        discordant = np.stack([b, c])
    else:
        t = _resampling(cols, x.weights, eff, m, (n_boot, seed, alpha, bounds), method)
        discordant = None
    mdd = eff + (gs.z(1 - alpha / max(1, n_tests)) + gs.z(gs.POWER)) * se
    if x.binary:
        mdd = np.maximum(mdd, gs.mcnemar_min_detectable(x.n, eff, alpha / max(1, n_tests)))
    factor = gs.required_factor(_planning_se(cols, x), m, alpha=alpha, n_tests=n_tests)
    return {
        **t,
        "drop": drop,
        "se": se,
        "mdd": mdd,
        "method": method,
        "discordant": discordant,
        "need_items": [_need(x.n, f) for f in np.ravel(factor)],
        "need_samples": [_need(x.samples, f) for f in np.ravel(factor)],
    }


def _resampling(
    cols: list[FloatArray],
    weights: list[float],
    eff: float,
    margin: float,
    how: tuple[int, int, float, bool],
    method: Any,
) -> dict[str, Any]:
    """Sign flips where a stratum has few non-zero differences, the bootstrap elsewhere."""
    n_boot, seed, alpha, bounds = how
    nonzero = np.min([np.count_nonzero(d, axis=0) for d in cols], axis=0)
    small = nonzero < gs.SMALL_N
    out: dict[str, Any] = {}
    for use in (small, ~small):
        if not use.any():
            continue
        if use is small:
            reps = gs.flip_thresholds(cols, weights, n_boot, seed)
        else:
            boots = gs.bootstrap_drops(cols, weights, n_boot, seed)
            reps = gs.Replicates(boots, n_boot + 1, 0, "paired bootstrap")
        t = gs.replicate_tests(reps, eff, margin, alpha, bounds)
        t["p_no_drop"] = gs.replicate_tests(reps, 0.0, 0.0, alpha, bounds=False)["p_regression"]
        for k, v in t.items():
            out[k] = np.where(use, v, out[k]) if k in out else np.where(use, v, np.nan)
        label = reps.method + (" (stratified)" if len(cols) > 1 else "")
        method[use] = label
    return out


def _planning_se(cols: list[FloatArray], x: MetricInput) -> Any:
    """The SE a sample-size plan starts from: below MIN_ITEMS the per-item SD is not trusted
    and never taken below the metric's default (a handful of equal differences has SD 0)."""
    if x.n >= gs.MIN_ITEMS:
        return gs.paired_se(cols, x.weights)
    var: Any = 0.0
    for d, w in zip(cols, x.weights, strict=True):
        sd = d.std(axis=0, ddof=1) if len(d) > 1 else np.zeros(d.shape[1])
        var = var + w * w * np.maximum(sd, x.default_sd) ** 2 / len(d)
    return np.sqrt(var)


def _need(count: int | None, factor: float) -> int | None:
    if count is None or not np.isfinite(factor):
        return None
    return int(max(count, ceil(count * factor - 1e-9)))


def holm_batch(p: FloatArray) -> FloatArray:
    """Holm step-down adjusted p-values for K metrics × G comparisons (axis 0 = metrics)."""
    k = p.shape[0]
    order = np.argsort(p, axis=0, kind="stable")
    sorted_p = np.take_along_axis(p, order, axis=0)
    scaled = np.minimum(1.0, (k - np.arange(k))[:, None] * sorted_p)
    running = np.maximum.accumulate(scaled, axis=0)
    out = np.empty_like(p)
    np.put_along_axis(out, order, running, axis=0)
    return out


def decide(
    inputs: list[MetricInput], tests: list[dict[str, Any]], alpha: float
) -> tuple[FloatArray, Any]:
    """Holm-adjusted p-values and decisions (PASS / REGRESSION / INCONCLUSIVE), K × G."""
    p_adj = holm_batch(np.stack([t["p_regression"] for t in tests]))
    codes = np.full(p_adj.shape, INCONCLUSIVE, dtype=np.int8)
    for i, (x, t) in enumerate(zip(inputs, tests, strict=True)):
        if x.n < gs.MIN_ITEMS:
            continue
        reg = (p_adj[i] < alpha) & (t["drop"] > x.effective_margin)
        ok = (t["p_pass"] < alpha) & ~reg
        codes[i] = np.where(reg, REGRESSION, np.where(ok, PASS, INCONCLUSIVE))
    return p_adj, codes


def exit_codes(codes: Any, inconclusive: str) -> Any:
    """The job's exit code per comparison: 1 any regression, 3 an inconclusive metric under
    `--inconclusive fail`, else 0."""
    codes = np.asarray(codes).reshape(len(codes), -1)
    regression = (codes == REGRESSION).any(axis=0)
    unsure = (codes == INCONCLUSIVE).any(axis=0) & (inconclusive == "fail")
    return np.where(regression, 1, np.where(unsure, 3, 0))
