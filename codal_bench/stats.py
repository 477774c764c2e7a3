"""Every statistic codal-eval reports, written once.

- pass@k (the unbiased estimator);
- one resampler: items drawn with replacement, seeded, within each stratum (`draw`), used by the
  leaderboard's intervals and ranks, the gate's paired bootstrap and the judge report;
- one percentile interval (`percentile_interval`);
- paired tests for the CI gate: bootstrap of the drop, sign flip, exact McNemar with a margin,
  Holm, the minimum detectable drop;
- rank intervals (competition ranks over shared resamples);
- AUROC (how well a score separates two classes) and a cluster bootstrap that resamples whole
  clusters (e.g. tasks with several answers each), for intervals of any statistic of them.

Paired statistics work on per-item differences `baseline - candidate`, so a positive value is a
drop. Everything random takes an explicit seed so a verdict or an interval can be reproduced.
numpy and scipy are imported inside the functions that need them: `codal-eval --help` imports
this module's users without paying for them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    FloatArray = NDArray[np.float64]
else:
    FloatArray = Any

ALPHA = 0.05
POWER = 0.8
CHUNK = 2000  # replicates drawn per block, so memory stays flat for large item sets


# -- pass@k ------------------------------------------------------------------------------------


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c passed: 1 - C(n-c, k) / C(n, k).

    Computed as a running product rather than with binomials, which overflow floats for the
    sample counts people use (n = 200 and more).
    """
    if not 0 <= c <= n or k < 1 or n < 1:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and k, n >= 1 (got n={n}, c={c}, k={k})")
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per task, got {n}")
    if n - c < k:
        return 1.0
    miss = 1.0
    for i in range(n - c + 1, n + 1):
        miss *= 1.0 - k / i
    return 1.0 - miss


# -- the resampler and the interval -------------------------------------------------------------


def draw(rng: np.random.Generator, n_items: int, n_boot: int) -> NDArray[np.int64]:
    """Row b holds the item indices of resample b: `n_items` draws with replacement.

    The only way items are resampled anywhere; strata call it once each, in a fixed order.
    """
    out: NDArray[np.int64] = rng.integers(0, n_items, size=(n_boot, n_items))
    return out


def draw_counts(rng: np.random.Generator, n_items: int, n_boot: int) -> FloatArray:
    """`draw` as counts (how often each item is drawn in each resample), so that one matrix
    product gives every run's resampled mean at once."""
    import numpy as np

    idx = draw(rng, n_items, n_boot)
    flat = (idx + np.arange(n_boot)[:, None] * n_items).ravel()
    counts: FloatArray = (
        np.bincount(flat, minlength=n_boot * n_items).reshape(n_boot, n_items).astype(float)
    )
    return counts


def resampled_means(counts: FloatArray, x: FloatArray) -> FloatArray:
    """Resampled means of each column of x (items x runs), skipping missing (NaN) items."""
    import numpy as np

    mask = ~np.isnan(x)
    if mask.all():  # the usual case: every resample has exactly n_items draws
        out: FloatArray = (counts @ x) / x.shape[0]
        return out
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (counts @ np.where(mask, x, 0.0)) / (counts @ mask.astype(float))
    return out


def percentile_interval(
    boot: FloatArray, level: float = 0.95, *, axis: int = 0, conservative: bool = False
) -> tuple[Any, Any]:
    """The percentile interval of bootstrap replicates (NaN replicates ignored).

    `conservative` rounds the bounds outwards to actual replicates (the gate's one-sided bounds).
    """
    import numpy as np

    q = [(1 - level) / 2, 1 - (1 - level) / 2]
    kw: dict[str, Any] = {"axis": axis}
    if conservative:
        lo = np.nanquantile(boot, q[0], method="lower", **kw)
        hi = np.nanquantile(boot, q[1], method="higher", **kw)
        return lo, hi
    if not np.isnan(boot).any():
        lo, hi = np.percentile(boot, [100 * q[0], 100 * q[1]], **kw)
        return lo, hi
    with warnings.catch_warnings():  # a run with no score in some resample: ignore those
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanpercentile(boot, [100 * q[0], 100 * q[1]], **kw)
    return lo, hi


def mean_interval(
    values: Sequence[float], n_boot: int = 10_000, seed: int = 0, level: float = 0.95
) -> list[float] | None:
    """Percentile bootstrap interval of a plain mean; None when there is nothing to resample."""
    import numpy as np

    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return None
    boot = bootstrap_drops([x], [1.0], n_boot, seed)[:, 0]
    lo, hi = percentile_interval(boot, level)
    return [float(lo), float(hi)]


# -- ranks -------------------------------------------------------------------------------------


def competition_ranks(scores: FloatArray) -> NDArray[np.int64]:
    """1 + how many runs score strictly higher (ties share a rank); NaN ranks last.

    Scores are rounded to 1e-9 first so two runs with identical items stay tied whatever
    summation order BLAS used.
    """
    import numpy as np

    s = np.where(np.isnan(scores), -np.inf, np.round(scores, 9))
    out = np.empty(s.shape, dtype=np.int64)
    step = max(1, 2_000_000 // max(1, s.shape[-1] ** 2))
    for a in range(0, s.shape[0], step):
        c = s[a : a + step]
        out[a : a + step] = 1 + (c[:, None, :] > c[:, :, None]).sum(axis=-1)
    return out


def rank_intervals(point: FloatArray, boot: FloatArray) -> dict[str, Any]:
    """Rank of each run, its 95 % rank interval over the resamples, and whether it is tied."""
    import numpy as np

    rank = competition_ranks(point[None, :])[0]
    ranks = competition_ranks(boot)
    lo = np.percentile(ranks, 2.5, axis=0, method="lower")
    hi = np.percentile(ranks, 97.5, axis=0, method="higher")
    tie = np.array([(rank == r).sum() > 1 for r in rank])
    return {"rank": rank, "rank_lo": lo.astype(int), "rank_hi": hi.astype(int), "tie": tie}


# -- paired tests (the CI gate) ------------------------------------------------------------------
#
# Every function below works on a batch of G independent comparisons at once: a stratum is an
# array of shape (n_items,) or (n_items, G). The gate passes G = 1; the seeded simulation in the
# test suite passes G = 1000 through the very same code. With a fixed seed every comparison in a
# batch sees the same resamples, exactly what G separate calls with that seed would draw.

MIN_ITEMS = 10  # paired items below which a metric is never decided (inconclusive)
SMALL_N = 30  # fewer non-zero differences than this in a stratum: sign-flip test, not bootstrap
EXACT_MAX = 12  # up to this many items every one of the 2**n sign patterns is enumerated


def _columns(strata: Sequence[FloatArray]) -> list[FloatArray]:
    import numpy as np

    return [np.asarray(d, dtype=np.float64).reshape(len(d), -1) for d in strata]


def weighted_drop(strata: Sequence[FloatArray], weights: Sequence[float]) -> Any:
    """The metric's drop: a weighted sum of per-stratum mean differences (a float for 1-D
    strata, an array of G drops for a batch)."""
    out = sum(w * d.mean(axis=0) for d, w in zip(_columns(strata), weights, strict=True))
    return float(out[0]) if all(getattr(d, "ndim", 1) == 1 for d in strata) else out


def paired_se(strata: Sequence[FloatArray], weights: Sequence[float]) -> Any:
    """Analytic standard error of `weighted_drop` (strata resampled independently)."""
    import numpy as np

    var: Any = 0.0
    for d, w in zip(_columns(strata), weights, strict=True):
        if len(d) > 1:
            var = var + w * w * d.var(axis=0, ddof=1) / len(d)
    se = np.sqrt(np.asarray(var, dtype=np.float64))
    return float(np.ravel(se)[0]) if all(getattr(d, "ndim", 1) == 1 for d in strata) else se


def bootstrap_drops(
    strata: Sequence[FloatArray], weights: Sequence[float], n_boot: int, seed: int
) -> FloatArray:
    """(n_boot, G) replicates of the weighted drop, items resampled within each stratum.

    Drawn in blocks of CHUNK with `draw`, in the same order as `stratified_replicates`, as
    counts so that one matrix product resamples every comparison of the batch at once.
    """
    import numpy as np

    cols = _columns(strata)
    rng = np.random.default_rng(seed)
    out = np.zeros((n_boot, cols[0].shape[1]))
    for start in range(0, n_boot, CHUNK):
        stop = min(n_boot, start + CHUNK)
        for d, w in zip(cols, weights, strict=True):
            if d.shape[1] == 1:  # one comparison: gathering is cheaper than counting
                out[start:stop, 0] += w * d[draw(rng, len(d), stop - start), 0].mean(axis=1)
            else:
                out[start:stop] += (w / len(d)) * (draw_counts(rng, len(d), stop - start) @ d)
    return out


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

    cols = _columns(strata)
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


def z(q: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(q))


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


# -- separation of two classes, and resampling of clusters ----------------------------------------


def auroc(
    scores: Sequence[float] | FloatArray, positive: Sequence[bool] | NDArray[np.bool_]
) -> float | None:
    """Area under the ROC curve of `scores` for telling positives from negatives.

    The probability that a random positive scores above a random negative, ties counting one
    half (the Mann-Whitney U statistic over n_pos * n_neg); None when either class is empty.
    Computed from mid-ranks, so it costs a sort rather than n_pos * n_neg comparisons.
    """
    import numpy as np
    from scipy.stats import rankdata

    x = np.asarray(scores, dtype=np.float64)
    y = np.asarray(positive, dtype=bool)
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(x)  # mid-ranks: a tie contributes one half to U
    u = float(ranks[y].sum()) - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


def cluster_bootstrap(
    clusters: Sequence[Sequence[int]],
    statistic: Callable[[NDArray[np.int64]], float | None],
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> list[float] | None:
    """Percentile interval of `statistic` when whole clusters are resampled with replacement.

    `clusters` lists, per cluster, the indices of its observations; `statistic` gets the
    observation indices of one resample (a cluster drawn twice appears twice) and may return None
    when it is undefined there (e.g. a resample with one class only), which is skipped. Answers
    to the same task are not independent, so the task, not the answer, is what gets resampled.
    None when no resample gives a value.
    """
    import numpy as np

    members = [np.asarray(c, dtype=np.int64) for c in clusters]
    if not members:
        return None
    rng = np.random.default_rng(seed)
    out = []
    for row in draw(rng, len(members), n_boot):
        value = statistic(np.concatenate([members[i] for i in row]))
        if value is not None and np.isfinite(value):
            out.append(float(value))
    if not out:
        return None
    lo, hi = percentile_interval(np.asarray(out), level)
    return [float(lo), float(hi)]
