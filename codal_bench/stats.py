"""Every statistic codal-eval reports, written once.

- pass@k (the unbiased estimator);
- one resampler: items drawn with replacement, seeded, within each stratum (`draw`), used by the
  leaderboard's intervals and ranks, the gate's paired bootstrap and the judge report;
- one percentile interval (`percentile_interval`);
- the batch bootstrap of a weighted mean of stratum means (`bootstrap_drops`), for many
  comparisons at once; the gate's paired tests built on it are in `codal_bench.gate.stats`;
- rank intervals (competition ranks over shared resamples);
- AUROC (how well a score separates two classes) and a cluster bootstrap that resamples whole
  clusters (e.g. tasks with several answers each), for intervals of any statistic of them.

Everything random takes an explicit seed so a verdict or an interval can be reproduced.
numpy and scipy are imported inside the functions that need them: `codal-eval --help` imports
this module's users without paying for them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
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


# -- the batch resampler ---------------------------------------------------------------------------
#
# The CI gate works on a batch of G independent comparisons at once: a stratum is an array of
# shape (n_items,) or (n_items, G). The gate passes G = 1; the seeded simulation in the test suite
# passes G = 1000 through the very same code. With a fixed seed every comparison in a batch sees
# the same resamples, exactly what G separate calls with that seed would draw.


def as_columns(strata: Sequence[FloatArray]) -> list[FloatArray]:
    """Strata as (n_items, G) arrays: a 1-D stratum is a batch of one comparison."""
    import numpy as np

    return [np.asarray(d, dtype=np.float64).reshape(len(d), -1) for d in strata]


def bootstrap_drops(
    strata: Sequence[FloatArray], weights: Sequence[float], n_boot: int, seed: int
) -> FloatArray:
    """(n_boot, G) replicates of the weighted drop, items resampled within each stratum.

    Drawn in blocks of CHUNK with `draw`, in the same order as `stratified_replicates`, as
    counts so that one matrix product resamples every comparison of the batch at once.
    """
    import numpy as np

    cols = as_columns(strata)
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


def z(q: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(q))


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
