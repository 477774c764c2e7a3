"""The gate's paired statistics, on per-item differences `baseline - candidate` (a positive
value is a drop); the general resampler, intervals and z are in `codal_bench.stats`.

- the sign-flip test, exact for small item counts, reduced to thresholds that give every
  margin's p-value and the confidence bounds at once;
- the paired bootstrap of the drop (replicates from `stats.bootstrap_drops`), tested the same way;
- the exact conditional McNemar test generalised to a margin, both ways, with Clopper-Pearson
  bounds that invert it;
- Holm, the minimum detectable drop, and the size a metric needs to be decided.

Every function takes a batch of G comparisons (a stratum is (n_items,) or (n_items, G)); the gate
passes one, the seeded simulation in the tests a thousand. Everything random takes an explicit
seed; numpy and scipy are imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..stats import ALPHA, POWER, FloatArray, as_columns, bootstrap_drops, z

__all__ = [
    "ALPHA", "EXACT_MAX", "MIN_ITEMS", "POWER", "SMALL_N", "PairedBootstrap", "Replicates",
    "bootstrap_drops", "flip_thresholds", "holm", "mcnemar_exact", "mcnemar_margin",
    "mcnemar_min_detectable", "mcnemar_tests", "min_detectable_drop", "paired_bootstrap",
    "paired_se", "replicate_tests", "required_factor", "sign_flip_pvalue", "weighted_drop", "z",
]  # fmt: skip


MIN_ITEMS = 10  # paired items below which a metric is never decided (inconclusive)
SMALL_N = 30  # fewer non-zero differences than this in a stratum: sign-flip test, not bootstrap
EXACT_MAX = 12  # up to this many items every one of the 2**n sign patterns is enumerated


def weighted_drop(strata: Sequence[FloatArray], weights: Sequence[float]) -> Any:
    """The metric's drop: a weighted sum of per-stratum mean differences (a float for 1-D
    strata, an array of G drops for a batch)."""
    out = sum(w * d.mean(axis=0) for d, w in zip(as_columns(strata), weights, strict=True))
    return float(out[0]) if all(getattr(d, "ndim", 1) == 1 for d in strata) else out


def paired_se(strata: Sequence[FloatArray], weights: Sequence[float]) -> Any:
    """Analytic standard error of `weighted_drop` (strata resampled independently)."""
    import numpy as np

    var: Any = 0.0
    for d, w in zip(as_columns(strata), weights, strict=True):
        if len(d) > 1:
            var = var + w * w * d.var(axis=0, ddof=1) / len(d)
    se = np.sqrt(np.asarray(var, dtype=np.float64))
    return float(np.ravel(se)[0]) if all(getattr(d, "ndim", 1) == 1 for d in strata) else se


@dataclass(frozen=True)
class Replicates:
    """What a resampling test compares the margin with.

    `values` (P, G): bootstrap drops, or sign-flip thresholds. Tail counts are turned into
    p-values as (1 + always + #{values on the tail}) / total, where `total` counts every pattern
    (the observed one included) and `always` the patterns that lie on both tails whatever the
    margin (a sign-flip draw that flips nothing).
    """

    values: FloatArray
    total: int
    always: int
    method: str


def flip_thresholds(
    strata: Sequence[FloatArray], weights: Sequence[float], n_perm: int, seed: int
) -> Replicates:
    """The sign-flip test of H0: drop <= m, for every m at once.

    Under H0 the differences minus m are symmetric about 0, so flipping the signs of any subset
    F of items is as likely as the data. The flipped statistic is at least the observed one
    exactly when m >= (weighted mean of the differences in F), so each pattern reduces to that
    one threshold: p(m) = (1 + #{thresholds <= m}) / total. That makes the p-value of every
    margin, and the confidence bounds (order statistics of the thresholds), one computation.
    With at most EXACT_MAX items every pattern is enumerated (an exact test whose smallest
    p-value is 2**-n: three items can never give less than 1/8); above, n_perm random patterns.
    """
    import numpy as np

    cols = as_columns(strata)
    c = np.concatenate([np.full(len(d), w / len(d)) for d, w in zip(cols, weights, strict=True)])
    cd = np.concatenate(cols) * c[:, None]
    n = len(c)
    if n <= EXACT_MAX:
        codes = np.arange(1, 2**n, dtype=np.int64)  # every non-empty subset
        flips = ((codes[:, None] >> np.arange(n)) & 1).astype(np.float64)
        total, method = 2**n, "exact sign-flip"
    else:
        rng = np.random.default_rng(seed)
        flips = rng.integers(0, 2, size=(n_perm, n)).astype(np.float64)
        total, method = n_perm + 1, "sign-flip permutation"
    den = flips @ c
    empty = den <= 0
    with np.errstate(invalid="ignore", divide="ignore"):
        values = (flips[~empty] @ cd) / den[~empty, None]
    return Replicates(values, total, int(empty.sum()), method)


def replicate_tests(
    reps: Replicates, margin: Any, pass_margin: Any, alpha: float = ALPHA, bounds: bool = True
) -> dict[str, FloatArray]:
    """p-values of H0: drop <= margin (a regression) and H0: drop >= pass_margin (a pass),
    and the one-sided (1 - alpha) bounds that invert them: p_regression < alpha exactly when
    margin < lo, p_pass < alpha exactly when pass_margin > hi."""
    import numpy as np

    v = reps.values
    g = v.shape[1]
    m = np.broadcast_to(np.asarray(margin, dtype=np.float64), (g,))
    mp = np.broadcast_to(np.asarray(pass_margin, dtype=np.float64), (g,))
    base = 1 + reps.always
    p_reg = (base + (v <= m + 1e-12).sum(axis=0)) / reps.total
    p_pass = (base + (v >= mp - 1e-12).sum(axis=0)) / reps.total
    # the largest count of replicates on a tail that still gives p < alpha
    out = {"p_regression": p_reg, "p_pass": p_pass}
    if not bounds:
        return out
    kk = int(np.ceil(alpha * reps.total - base)) - 1
    if kk < 0 or kk >= len(v) - 1 - kk:
        out["lo"], out["hi"] = np.full(g, -np.inf), np.full(g, np.inf)
    else:
        part = np.partition(v, [kk, len(v) - 1 - kk], axis=0)
        out["lo"], out["hi"] = part[kk], part[len(v) - 1 - kk]
    return out


def mcnemar_tests(
    b: Any, c: Any, n: int, margin: Any, pass_margin: Any, alpha: float = ALPHA
) -> dict[str, FloatArray]:
    """Exact conditional tests for paired pass/fail items, both ways, with matching bounds.

    Given N = b + c discordant items the drop is (b - c) / n, and a true drop of m makes a
    discordant item a loss with probability pi(m) = (1 + m·n/N) / 2. Regression: P(Bin(N,
    pi(margin)) >= b); pass: P(Bin(N, pi(pass_margin)) <= b). The bounds come from the one-sided
    Clopper-Pearson limits of b/N, which invert exactly these binomial tests. See
    `mcnemar_margin` for the one-comparison form.
    """
    import numpy as np
    from scipy.stats import beta, binom

    b = np.atleast_1d(np.asarray(b, dtype=np.float64))
    c = np.atleast_1d(np.asarray(c, dtype=np.float64))
    big = b + c
    safe = np.maximum(big, 1)
    m = np.broadcast_to(np.asarray(margin, dtype=np.float64), b.shape)
    mp = np.broadcast_to(np.asarray(pass_margin, dtype=np.float64), b.shape)
    pi_r = (1 + m * n / safe) / 2
    pi_p = (1 + mp * n / safe) / 2
    with np.errstate(invalid="ignore"):
        p_reg = np.where(pi_r >= 1, 1.0, binom.sf(b - 1, big, np.minimum(pi_r, 1)))
        p_pass = np.where(pi_p > 1, 0.0, binom.cdf(b, big, np.minimum(pi_p, 1)))
        lo_pi = np.where(b > 0, beta.ppf(alpha, b, big - b + 1), 0.0)
        hi_pi = np.where(b < big, beta.ppf(1 - alpha, b + 1, big - b), 1.0)
    p_reg = np.where(big == 0, 1.0, p_reg)
    p_pass = np.where(big == 0, np.where(mp > 0, 0.0, 1.0), p_pass)
    return {
        "p_regression": p_reg,
        "p_pass": p_pass,
        "lo": (2 * lo_pi - 1) * big / n,
        "hi": (2 * hi_pi - 1) * big / n,
    }


@dataclass(frozen=True)
class PairedBootstrap:
    """Drop estimate with one-sided bounds and the p-value of H0: drop <= margin, for one
    comparison (the batch form is `bootstrap_drops` + `replicate_tests`)."""

    drop: float
    lo: float
    hi: float
    se: float
    p_margin: float


def paired_bootstrap(
    strata: Sequence[FloatArray],
    weights: Sequence[float],
    *,
    margin: float,
    n_boot: int = 10000,
    seed: int = 0,
    alpha: float = ALPHA,
) -> PairedBootstrap:
    """Percentile bootstrap of the drop; p_margin = (1 + replicates at or below the margin) /
    (B + 1), which is below alpha exactly when the one-sided lower bound exceeds the margin."""
    if not strata or any(len(d) == 0 for d in strata):
        raise ValueError("every stratum needs at least one paired item")
    reps = Replicates(bootstrap_drops(strata, weights, n_boot, seed), n_boot + 1, 0, "bootstrap")
    t = replicate_tests(reps, margin, margin, alpha)
    return PairedBootstrap(
        weighted_drop(strata, weights),
        float(t["lo"][0]),
        float(t["hi"][0]),
        paired_se(strata, weights),
        float(t["p_regression"][0]),
    )


def sign_flip_pvalue(
    strata: Sequence[FloatArray], weights: Sequence[float], *, n_perm: int = 10000, seed: int = 0
) -> float:
    """One-sided sign-flip p-value of H0: no drop (differences symmetric about 0)."""
    reps = flip_thresholds(strata, weights, n_perm, seed)
    return float(replicate_tests(reps, 0.0, 0.0)["p_regression"][0])


def mcnemar_exact(b: int, c: int) -> float:
    """One-sided exact McNemar p-value of H0: no drop.

    b = items that pass in the baseline and fail in the candidate, c = the reverse. Under H0 each
    discordant item is equally likely to go either way, so b ~ Binomial(b + c, 1/2).
    """
    return mcnemar_margin(b, c, max(1, b + c), 0.0)


def mcnemar_margin(b: int, c: int, n: int, margin: float) -> float:
    """Exact conditional test of H0: drop <= margin for paired pass/fail; McNemar at margin 0.

    Given N = b + c discordant items out of n, the drop is (b - c) / n, and a drop of `margin`
    means a discordant item goes baseline-pass → candidate-fail with probability
    pi0 = (1 + margin·n/N) / 2 (the discordance rate N/n plugged in). The test is the exact
    binomial tail P(Binomial(N, pi0) >= b). When pi0 >= 1 even all N discordant items could not
    make a drop above the margin, so the p-value is 1. (One comparison of `mcnemar_tests`.)
    """
    if margin < 0:
        raise ValueError("margin must be >= 0")
    return float(mcnemar_tests(b, c, n, margin, margin)["p_regression"][0])


def mcnemar_min_detectable(n: int, margin: float, alpha: float) -> float:
    """Smallest drop (b/n with c = 0) the exact margin test can call significant at `alpha`."""
    for b in range(1, n + 1):
        if mcnemar_margin(b, 0, n, margin) < alpha:
            return b / n
    return float("inf")


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (family-wise error rate), in the input order."""
    k = len(pvalues)
    order = sorted(range(k), key=lambda i: pvalues[i])
    adjusted = [0.0] * k
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (k - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def min_detectable_drop(
    se: float, margin: float, *, alpha: float = ALPHA, power: float = POWER, n_tests: int = 1
) -> float:
    """Smallest true drop the gate calls a regression with probability `power`.

    margin + (z_{1-alpha/k} + z_power)·SE: the drop must clear the margin by enough that the
    one-sided test rejects at Holm's strictest step (alpha/k, the level a lone regression among k
    metrics is held to). With margin 0 and k = 1 this is the textbook (z_{1-α} + z_{0.8})·SE.
    """
    return margin + (z(1 - alpha / max(1, n_tests)) + z(power)) * se


def required_factor(
    se: Any, margin: float, *, alpha: float = ALPHA, power: float = POWER, n_tests: int = 1
) -> Any:
    """How many times more items (or samples per item) a metric needs to be decided.

    "Decided" means the minimum detectable drop is at most twice the margin: a true drop of 2m
    is called a regression with `power` (at Holm's strictest level alpha/k), and an unchanged
    model clears the margin with at least that probability too. The standard error shrinks as
    1/sqrt(items), and as 1/sqrt(samples) where sampling is the noise, so both needs are the
    current count times ((z_{1-alpha/k} + z_power)·SE / m)².
    """
    zsum = z(1 - alpha / max(1, n_tests)) + z(power)
    return (zsum * se / margin) ** 2 if margin > 0 else float("inf")
