"""Bootstrap statistics for one group of comparable runs: intervals and rank intervals.

One resample is one draw of the group's items, shared by every run in the group (they answered
the same items): that is what makes a rank interval meaningful, since a hard resample is hard for
all. Resamples are turned into counts so one matrix product gives every run's resampled mean.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from .scores import PREFERENCES
from .stats import pass_at_k

if TYPE_CHECKING:
    import numpy as np

    from .leaderboard import RunData

KS = (1, 5, 10, 100)
HE_LABEL = {"base": "humaneval", "plus": "humaneval+"}


def resample_weights(n_items: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """How often each item is drawn in each resample: row b of the result is resample b.

    Drawn as `rng.integers(0, n_items, (n_boot, n_items))` so a test can replay the same draws
    item by item; counting them lets one matrix product give every model's resampled mean.
    """
    import numpy as np

    idx = rng.integers(0, n_items, size=(n_boot, n_items))
    flat = (idx + np.arange(n_boot)[:, None] * n_items).ravel()
    return np.bincount(flat, minlength=n_boot * n_items).reshape(n_boot, n_items).astype(float)


def _means(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Resampled means of each column of x (items × models), skipping missing (NaN) items."""
    import numpy as np

    mask = ~np.isnan(x)
    if mask.all():  # the usual case: every resample has exactly n_items draws
        out: np.ndarray = (w @ x) / x.shape[0]
        return out
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (w @ np.where(mask, x, 0.0)) / (w @ mask.astype(float))
    return out


def competition_ranks(scores: np.ndarray) -> np.ndarray:
    """1 + how many models score strictly higher (ties share a rank); NaN ranks last.

    Scores are rounded to 1e-9 first so two models with identical items stay tied whatever
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


def _intervals(boot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    if not np.isnan(boot).any():
        lo, hi = np.percentile(boot, [2.5, 97.5], axis=0)
        return lo, hi
    with warnings.catch_warnings():  # a run with no rating in some resample: ignore those
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanpercentile(boot, [2.5, 97.5], axis=0)
    return lo, hi


def _rank_columns(point: np.ndarray, boot: np.ndarray) -> dict[str, Any]:
    import numpy as np

    rank = competition_ranks(point[None, :])[0]
    ranks = competition_ranks(boot)
    lo = np.percentile(ranks, 2.5, axis=0, method="lower")
    hi = np.percentile(ranks, 97.5, axis=0, method="higher")
    tie = np.array([(rank == r).sum() > 1 for r in rank])
    return {"rank": rank, "rank_lo": lo.astype(int), "rank_hi": hi.astype(int), "tie": tie}


def _nanmean(x: np.ndarray, axis: int) -> np.ndarray:

    import numpy as np

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out: np.ndarray = np.nanmean(x, axis=axis)
    return out


def codal_stats(
    runs: list[RunData], n_boot: int, seed: int
) -> tuple[list[str], dict[str, np.ndarray]]:
    """Point values, intervals and ranks for one CODAL group: column -> one value per run.

    Items are resampled within each preference (the benchmark's strata), preferences in
    PREFERENCES order then any others sorted; the average is the mean of preference means, as
    published.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    found = {p for r in runs for p in r.codal_pref.values()}
    prefs = [p for p in PREFERENCES if p in found] + sorted(found - set(PREFERENCES))
    cols: dict[str, np.ndarray] = {}
    points, boots = [], []
    for p in prefs:
        ids = sorted({i for r in runs for i, q in r.codal_pref.items() if q == p})
        x = np.array([[r.codal.get(p, {}).get(i, np.nan) for r in runs] for i in ids], float)
        boot = _means(resample_weights(len(ids), n_boot, rng), x)
        point = _nanmean(x, axis=0)
        cols[p], (cols[p + "_lo"], cols[p + "_hi"]) = point, _intervals(boot)
        points.append(point)
        boots.append(boot)
    if not prefs:
        return [], cols
    avg, avg_boot = _nanmean(np.stack(points), 0), _nanmean(np.stack(boots), 0)
    cols["average"], (cols["average_lo"], cols["average_hi"]) = avg, _intervals(avg_boot)
    cols.update(_rank_columns(avg, avg_boot))
    return [*prefs, "average"], cols


def humaneval_stats(
    runs: list[RunData], task: str, n_boot: int, seed: int
) -> tuple[list[str], dict[str, np.ndarray]]:
    """pass@k for base and plus tests per run, bootstrapped over tasks, ranked by plus pass@1."""
    import numpy as np

    rng = np.random.default_rng(seed)
    ids = sorted({i for r in runs for part in r.he[task].values() for i in part})
    n_min = min(
        (n for r in runs for part in r.he[task].values() for n, _ in part.values()), default=1
    )
    w = resample_weights(len(ids), n_boot, rng)
    metrics: list[str] = []
    cols: dict[str, np.ndarray] = {}
    boots: dict[str, np.ndarray] = {}
    for k in (k for k in KS if k <= n_min):
        for part in ("base", "plus"):
            m = f"{HE_LABEL[part]}@{k}"
            x = np.array(
                [[_pass_k(r.he[task].get(part, {}).get(i), k) for r in runs] for i in ids], float
            )
            boots[m] = _means(w, x)
            cols[m], (cols[m + "_lo"], cols[m + "_hi"]) = _nanmean(x, 0), _intervals(boots[m])
            metrics.append(m)
    cols.update(_rank_columns(cols["humaneval+@1"], boots["humaneval+@1"]))
    return metrics, cols


def _pass_k(cell: tuple[int, int] | None, k: int) -> float:
    return float("nan") if cell is None else pass_at_k(cell[0], cell[1], k)
