"""Small samples: exact tests, the minimum-items rule and the printed sample-size need (issue 16,
acceptance 3), and the array form of the rule that the simulation relies on."""

from __future__ import annotations

from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import binomtest

from codal_bench.codal.scores import PREFERENCES
from codal_bench.gate import compare_runs, render_terminal
from codal_bench.gate import stats as gs
from codal_bench.gate.decide import holm_batch
from codal_bench.store import Store
from tests.test_gate_stats import write_run


def _codal(per_pref: int, drop: float, seed: int = 0) -> tuple[dict[Any, list[float]], ...]:
    rng = np.random.default_rng(seed)
    base, cand = {}, {}
    for pref in PREFERENCES:
        for i in range(per_pref):
            r = float(rng.integers(6, 11))
            base[(pref, f"{pref}-{i}")] = [r]
            cand[(pref, f"{pref}-{i}")] = [r - drop]
    return base, cand


def test_one_item_per_preference_is_never_a_regression(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    base, cand = _codal(1, 5.0)
    res = compare_runs(store, write_run(store, "b", base), write_run(store, "c", cand))
    assert res.exit_code == 3
    assert {m.decision for m in res.metrics} == {"inconclusive"}
    for m in res.metrics:
        assert m.need_items is not None and m.need_items > m.n_items
        assert f"you need ≈ {m.need_items} items (now {m.n_items})" in m.reason
        assert "at least 10 are needed" in m.reason
    avg = next(m for m in res.metrics if m.name == "codal-average")
    # equal differences have SD 0; the plan falls back to the scale's SD (10/4) rather than 0
    z = gs.z(1 - 0.05 / 6) + gs.z(0.8)
    assert avg.need_items == int(np.ceil(5 * (z * 2.5 / np.sqrt(5) / avg.margin) ** 2))
    text = str(render_terminal(res).renderables[1])
    assert "you need ≈" in text


def test_ten_items_per_preference_decide_a_large_drop(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    base, cand = _codal(10, 5.0)
    res = compare_runs(store, write_run(store, "b", base), write_run(store, "c", cand))
    assert res.exit_code == 1
    assert all(m.decision == "regression" for m in res.metrics)
    pref = next(m for m in res.metrics if m.name == "codal-style")
    assert pref.test == "exact sign-flip" and pref.p_margin == pytest.approx(1 / 1024)
    # and an identical candidate at that size passes every metric
    same = compare_runs(store, write_run(store, "b2", base), write_run(store, "c2", base))
    assert same.exit_code == 0, [m.reason for m in same.metrics]


def test_three_pairs_cannot_reach_significance() -> None:
    """The issue's case: a bootstrap on 3 pairs said p = 0.0006; no test on 3 pairs can."""
    d = [np.array([3.0, 4.0, 5.0])]
    reps = gs.flip_thresholds(d, [1.0], 10000, 0)
    assert reps.method == "exact sign-flip" and reps.total == 8
    t = gs.replicate_tests(reps, 0.0, 0.0)
    assert t["p_regression"][0] == pytest.approx(1 / 8)
    assert t["lo"][0] == -np.inf  # no margin can be rejected at alpha = 0.05


def test_exact_sign_flip_matches_enumeration() -> None:
    rng = np.random.default_rng(4)
    d = rng.normal(0.5, 1.0, 9)
    m = 0.2
    # brute force: P(sum s·(d - m) >= sum (d - m)) over all 2**9 sign patterns
    obs = np.sum(d - m)
    hits = sum(np.sum(np.array(s) * (d - m)) >= obs - 1e-12 for s in product([1, -1], repeat=9))
    reps = gs.flip_thresholds([d], [1.0], 1000, 0)
    t = gs.replicate_tests(reps, m, m)
    assert t["p_regression"][0] == pytest.approx(hits / 2**9)
    # the bound inverts the test: the margin just below lo is rejected, just above is not
    lo = t["lo"][0]
    assert gs.replicate_tests(reps, lo - 1e-6, 0)["p_regression"][0] < 0.05
    assert gs.replicate_tests(reps, lo + 1e-6, 0)["p_regression"][0] >= 0.05


def test_mcnemar_tests_match_binomtest_and_bounds_invert_them() -> None:
    b, c, n, m = 12, 3, 164, 0.02
    t = gs.mcnemar_tests(b, c, n, m, m)
    pi = (1 + m * n / 15) / 2
    assert t["p_regression"][0] == pytest.approx(binomtest(b, 15, pi, "greater").pvalue)
    assert t["p_pass"][0] == pytest.approx(binomtest(b, 15, pi, "less").pvalue)
    assert gs.mcnemar_tests(b, c, n, t["lo"][0] - 1e-6, 0)["p_regression"][0] < 0.05
    assert gs.mcnemar_tests(b, c, n, t["lo"][0] + 1e-6, 0)["p_regression"][0] > 0.05
    assert gs.mcnemar_tests(b, c, n, 0, t["hi"][0] + 1e-6)["p_pass"][0] < 0.05
    assert gs.mcnemar_tests(b, c, n, 0, t["hi"][0] - 1e-6)["p_pass"][0] > 0.05
    # no discordant item: the drop is exactly 0, so any positive margin passes
    z = gs.mcnemar_tests(0, 0, n, 0.05, 0.05)
    assert (z["p_regression"][0], z["p_pass"][0], z["lo"][0], z["hi"][0]) == (1, 0, 0, 0)


def test_batch_form_equals_single_comparisons() -> None:
    rng = np.random.default_rng(1)
    batch = rng.normal(0.1, 1.0, size=(60, 5))
    reps = gs.Replicates(gs.bootstrap_drops([batch], [1.0], 2000, 3), 2001, 0, "bootstrap")
    t = gs.replicate_tests(reps, 0.05, 0.05)
    for g in range(5):
        one = gs.paired_bootstrap([batch[:, g]], [1.0], margin=0.05, n_boot=2000, seed=3)
        assert t["p_regression"][g] == pytest.approx(one.p_margin)
        assert (t["lo"][g], t["hi"][g]) == pytest.approx((one.lo, one.hi))
    p = rng.uniform(size=(4, 7))
    assert holm_batch(p) == pytest.approx(np.array([gs.holm(list(col)) for col in p.T]).T)
