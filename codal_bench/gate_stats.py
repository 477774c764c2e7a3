"""Paired statistics for the CI gate: bootstrap, sign-flip, exact McNemar with a margin, Holm.

They live apart from `stats.py` (pass@k, leaderboard bootstrap) because the gate asks a different
question — "is the candidate worse than the baseline *on the same items*, by more than a margin?" —
and every function here works on per-item paired differences `baseline - candidate` (a positive
value is a drop). Everything random takes an explicit seed so a CI verdict can be reproduced.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import sqrt

import numpy as np
from numpy.typing import NDArray
from scipy.stats import binomtest, norm

ALPHA = 0.05
POWER = 0.8
_CHUNK = 2000  # bootstrap replicates drawn per block, so memory stays flat for large item sets

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class PairedBootstrap:
    """Drop estimate with one-sided bounds and the p-value of H0: drop <= margin.

    `lo`/`hi` are each a one-sided (1 - alpha) bound, i.e. together a two-sided 1 - 2·alpha
    interval; the gate uses `hi` to clear a metric and `p_margin` to call a regression, and both
    come from the same replicates so the printed interval and the verdict never disagree.
    """

    drop: float
    lo: float
    hi: float
    se: float
    p_margin: float


def weighted_drop(strata: Sequence[FloatArray], weights: Sequence[float]) -> float:
    """The metric's drop: a weighted sum of per-stratum mean differences.

    One stratum for a single preference or pass@1; five with weight 1/5 for the CODAL average,
    which is the mean of the preference means (not the mean over all items).
    """
    return float(sum(w * float(np.mean(d)) for d, w in zip(strata, weights, strict=True)))


def paired_se(strata: Sequence[FloatArray], weights: Sequence[float]) -> float:
    """Analytic standard error of `weighted_drop` (strata resampled independently)."""
    var = 0.0
    for d, w in zip(strata, weights, strict=True):
        if len(d) > 1:
            var += w * w * float(np.var(d, ddof=1)) / len(d)
    return sqrt(var)


def bootstrap_drops(
    strata: Sequence[FloatArray], weights: Sequence[float], n_boot: int, seed: int
) -> FloatArray:
    """Replicates of `weighted_drop`, resampling items with replacement within each stratum.

    Resampling whole items keeps the pairing: an item's baseline and candidate scores move together.
    """
    rng = np.random.default_rng(seed)
    out = np.zeros(n_boot)
    for start in range(0, n_boot, _CHUNK):
        stop = min(n_boot, start + _CHUNK)
        for d, w in zip(strata, weights, strict=True):
            idx = rng.integers(0, len(d), size=(stop - start, len(d)))
            out[start:stop] += w * d[idx].mean(axis=1)
    return out


def paired_bootstrap(
    strata: Sequence[FloatArray],
    weights: Sequence[float],
    *,
    margin: float,
    n_boot: int = 10000,
    seed: int = 0,
    alpha: float = ALPHA,
) -> PairedBootstrap:
    """Percentile bootstrap of the drop; p_margin = share of replicates at or below the margin.

    The percentile p-value is the test that inverts the percentile interval: p_margin < alpha
    exactly when the one-sided lower bound exceeds the margin. (+1)/(B+1) keeps it above zero.
    """
    if not strata or any(len(d) == 0 for d in strata):
        raise ValueError("every stratum needs at least one paired item")
    boots = bootstrap_drops(strata, weights, n_boot, seed)
    lo = float(np.quantile(boots, alpha, method="lower"))
    hi = float(np.quantile(boots, 1 - alpha, method="higher"))
    p = (1 + int(np.count_nonzero(boots <= margin + 1e-12))) / (n_boot + 1)
    return PairedBootstrap(weighted_drop(strata, weights), lo, hi, paired_se(strata, weights), p)


def sign_flip_pvalue(
    strata: Sequence[FloatArray], weights: Sequence[float], *, n_perm: int = 10000, seed: int = 0
) -> float:
    """One-sided sign-flip permutation p-value of H0: no drop (differences symmetric about 0).

    Reported beside the margin test as the answer to "is there any drop at all?".
    """
    rng = np.random.default_rng(seed)
    observed = weighted_drop(strata, weights)
    hits = 0
    for start in range(0, n_perm, _CHUNK):
        size = min(n_perm, start + _CHUNK) - start
        total = np.zeros(size)
        for d, w in zip(strata, weights, strict=True):
            signs = rng.choice(np.array([-1.0, 1.0]), size=(size, len(d)))
            total += w * (signs * d).mean(axis=1)
        hits += int(np.count_nonzero(total >= observed - 1e-12))
    return (1 + hits) / (n_perm + 1)


def mcnemar_exact(b: int, c: int) -> float:
    """One-sided exact McNemar p-value of H0: no drop.

    b = tasks that pass in the baseline and fail in the candidate, c = the reverse. Under H0 each
    discordant task is equally likely to go either way, so b ~ Binomial(b + c, 1/2).
    """
    if b + c == 0:
        return 1.0
    return float(binomtest(b, b + c, 0.5, alternative="greater").pvalue)


def mcnemar_margin(b: int, c: int, n: int, margin: float) -> float:
    """Exact conditional test of H0: drop <= margin for paired pass/fail; McNemar at margin 0.

    Given N = b + c discordant tasks out of n, the drop is (b - c) / n, and a drop of `margin`
    means a discordant task goes baseline-pass → candidate-fail with probability
    pi0 = (1 + margin·n/N) / 2 (the discordance rate N/n plugged in). The test is the exact
    binomial tail P(Binomial(N, pi0) >= b). When pi0 >= 1 even all N discordant tasks could not
    make a drop above the margin, so the p-value is 1.
    """
    if margin < 0:
        raise ValueError("margin must be >= 0")
    big_n = b + c
    if big_n == 0:
        return 1.0
    pi0 = (1 + margin * n / big_n) / 2
    if pi0 >= 1:
        return 1.0
    return float(binomtest(b, big_n, pi0, alternative="greater").pvalue)


def mcnemar_min_detectable(n: int, margin: float, alpha: float) -> float:
    """Smallest drop (b/n with c = 0) the exact margin test can call significant at `alpha`.

    A floor for the power formula, which says 0 when nothing changed: with 164 tasks, margin 0 and
    alpha 0.05 it is 5/164, because 0.5**5 < 0.05 < 0.5**4.
    """
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
