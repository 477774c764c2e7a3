"""Gate statistics: hand-checked numbers, and acceptance 2 (CODAL drop caught, jitter not)."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from codal_bench.codal.scores import PREFERENCES
from codal_bench.gate import CheckError, compare_runs, parse_max_drop
from codal_bench.gate import stats as gs
from codal_bench.store import ItemRef, Store
from codal_bench.summary import run_summary
from codal_bench.types import Generation, Grade, UsageError, content_hash

# -- a synthetic run writer (CODAL with per-repeat ratings, HumanEval with failure details) -----

SAMPLING: dict[str, Any] = {
    "temperature": 0.0,
    "top_p": 1.0,
    "max_tokens": 1024,
    "seed": None,
    "stop": [],
}

CODAL_TASK = "codal-bench"


def write_run(
    store: Store,
    model: str,
    codal: Mapping[tuple[str, str], Sequence[float]] | None = None,
    humaneval: Mapping[str, Sequence[tuple[bool, bool]]] | None = None,
    *,
    he_task: str = "humaneval-plus",
    rationale: str = "rated {rating} because {model}",
    status: str = "complete",
    judge: str = "openai:gpt-4",
) -> str:
    """One run through the real Store API. codal: (preference, item) -> rating per judge repeat."""
    tasks: dict[str, Any] = {}
    gens: list[Generation] = []
    grades: list[Grade] = []
    refs: list[ItemRef] = []
    for (pref, item), reps in (codal or {}).items():
        tasks[CODAL_TASK] = {"sampling": SAMPLING, "samples": 1, "data": {"data_sha256": "d"}}
        gk = content_hash([model, item])
        gens.append(Generation(gk, f"{model} answers {item}"))
        for rep, rating in enumerate(reps):
            key = content_hash([gk, rep])
            why = rationale.format(rating=rating, model=model, item=item)
            grades.append(Grade(key, "rated", float(rating), why, {}))
            refs.append(ItemRef(CODAL_TASK, item, pref, 0, rep, gk, key))
    for tid, cells in (humaneval or {}).items():
        tasks[he_task] = {"sampling": SAMPLING, "samples": len(cells), "data": {"data_sha256": "h"}}
        for s, (base, plus) in enumerate(cells):
            gk = content_hash([model, he_task, tid, s])
            gens.append(Generation(gk, "def f(): ..."))
            key = content_hash([gk, "exec"])
            details = {
                "base": "pass" if base else "fail",
                "plus": "pass" if plus else "fail",
                "first_failed": None if base and plus else [1, 2],
            }
            grades.append(Grade(key, "pass" if base and plus else "fail", None, None, details))
            refs.append(ItemRef(he_task, tid, he_task, s, 0, gk, key))
    config = {
        "command": "run",
        "model": model,
        "judge": judge if codal else None,
        "judge_templates": {"name": "codal", "sha256": "t"} if codal else None,
        "reference": "gpt-4-turbo_response" if codal else None,
        "tasks": tasks,
    }
    rid = store.new_run(model, judge if codal else None, config)
    store.put_generations(gens, model, {})
    store.put_grades(grades, "judge")
    store.put_run_items(rid, refs)
    store.update_run(rid, status=status, record={"summary": run_summary(store.results(rid))})
    return rid


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "results.sqlite")


# -- hand-checked statistics ----------------------------------------------------------------------


def test_holm_matches_hand_computation() -> None:
    # sorted 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → raised to 0.06 (monotone)
    assert gs.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert gs.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert gs.holm([]) == []


def test_mcnemar_exact_one_sided() -> None:
    assert gs.mcnemar_exact(15, 0) == pytest.approx(0.5**15)
    assert gs.mcnemar_exact(1, 0) == pytest.approx(0.5)
    assert gs.mcnemar_exact(3, 1) == pytest.approx(5 / 16)  # P(X >= 3), X ~ Bin(4, 1/2)
    assert gs.mcnemar_exact(0, 0) == 1.0


def test_mcnemar_margin_reduces_to_mcnemar_and_shifts_with_margin() -> None:
    for b, c in ((15, 0), (3, 1), (7, 5)):
        assert gs.mcnemar_margin(b, c, 164, 0.0) == pytest.approx(gs.mcnemar_exact(b, c))
    pi0 = (1 + 0.03 * 164 / 15) / 2  # = 0.664
    assert gs.mcnemar_margin(15, 0, 164, 0.03) == pytest.approx(pi0**15)  # ≈ 0.0022
    # 1 discordant task of 164 can never make a drop above 0.05: p = 1
    assert gs.mcnemar_margin(1, 0, 164, 0.05) == 1.0
    assert gs.mcnemar_min_detectable(164, 0.0, 0.05) == pytest.approx(5 / 164)  # 0.5**5 < 0.05


def test_bootstrap_constant_and_se() -> None:
    d = np.full(50, 0.8)
    r = gs.paired_bootstrap([d], [1.0], margin=0.5, n_boot=2000, seed=1)
    assert (r.drop, r.lo, r.hi, r.se) == pytest.approx((0.8, 0.8, 0.8, 0.0))
    assert r.p_margin == pytest.approx(1 / 2001)
    assert gs.paired_se([np.array([1.0, 0.0, 0.0, 0.0])], [1.0]) == pytest.approx(0.25)
    # stratified: weights 1/2 each → (mean 1 + mean 3) / 2
    assert gs.weighted_drop([np.array([1.0, 1.0]), np.array([3.0])], [0.5, 0.5]) == 2.0


def test_bootstrap_is_seeded_and_brackets_the_estimate() -> None:
    rng = np.random.default_rng(0)
    d = rng.normal(0.3, 1.0, 200)
    a = gs.paired_bootstrap([d], [1.0], margin=0.0, seed=7)
    b = gs.paired_bootstrap([d], [1.0], margin=0.0, seed=7)
    assert a == b
    assert a.lo < a.drop < a.hi
    # the percentile interval is close to ±1.645·SE for a smooth mean
    assert a.hi - a.drop == pytest.approx(1.645 * a.se, rel=0.15)


def test_sign_flip_and_min_detectable() -> None:
    p = gs.sign_flip_pvalue([np.ones(10)], [1.0], n_perm=20000, seed=0)
    assert p == pytest.approx(1 / 1024, rel=0.35)  # exact answer: one of 2**10 sign patterns
    assert gs.min_detectable_drop(0.1, 0.0) == pytest.approx((1.6449 + 0.8416) * 0.1, rel=1e-3)
    assert gs.min_detectable_drop(0.1, 0.5, n_tests=2) == pytest.approx(
        0.5 + (1.96 + 0.8416) * 0.1, rel=1e-3
    )


def test_parse_max_drop() -> None:
    assert parse_max_drop(["humaneval-plus=0.05", "codal-style=1"]) == {
        "humaneval-plus": 0.05,
        "codal-style": 1.0,
    }
    for bad in ("humaneval-plus", "x=-1", "=0.1", "x=abc"):
        with pytest.raises(UsageError):
            parse_max_drop([bad])


# -- acceptance 2: CODAL side with stored ratings -------------------------------------------------


def _codal_pair(
    drop_pref: str | None, seed: int
) -> tuple[dict[Any, list[float]], dict[Any, list[float]]]:
    """Baseline ratings around 6; candidate = baseline + judge-sized jitter (-1/0/+1, sd ≈ 0.63),
    and on `drop_pref` one point lower on 80 of the 100 items (a mean drop of 0.8)."""
    rng = random.Random(seed)
    base: dict[Any, list[float]] = {}
    cand: dict[Any, list[float]] = {}
    for pref in PREFERENCES:
        lowered = set(rng.sample(range(100), 80)) if pref == drop_pref else set()
        for i in range(100):
            r = float(rng.randint(4, 8))
            base[(pref, f"{pref}-{i}")] = [r]
            c = r + rng.choice([-1, 0, 0, 0, 1]) - (1 if i in lowered else 0)
            cand[(pref, f"{pref}-{i}")] = [c]
    return base, cand


def test_codal_drop_of_0_8_on_one_preference_is_caught(store: Store) -> None:
    base, cand = _codal_pair("readability", seed=3)
    margins = {f"codal-{p}": 0.5 for p in PREFERENCES}  # tighter than the default 1.25
    res = compare_runs(
        store,
        write_run(store, "base", base),
        write_run(store, "cand", cand),
        seed=0,
        max_drop=margins,
    )
    by = {m.name: m for m in res.metrics}
    assert by["codal-readability"].decision == "regression"
    assert by["codal-readability"].drop == pytest.approx(0.8, abs=0.15)
    assert res.exit_code == 1
    assert set(by) == {f"codal-{p}" for p in PREFERENCES} | {"codal-average"}
    assert all(
        m.decision == "pass"
        for n, m in by.items()
        if n not in ("codal-readability", "codal-average")
    )


def test_codal_judge_noise_jitter_is_not_a_regression(store: Store) -> None:
    base, cand = _codal_pair(None, seed=3)
    res = compare_runs(
        store, write_run(store, "base", base), write_run(store, "cand", cand), seed=0
    )
    assert [m.decision for m in res.metrics] == ["pass"] * 6
    assert res.exit_code == 0


def test_judge_aa_noise_raises_the_bar(store: Store) -> None:
    """Every answer judged twice as r-1 and r+1 (A/A noise s² = 2); the candidate is 0.2 lower on
    every item of one preference. With a zero margin that would be a clear drop, but it is inside
    the judge's own noise band (1.645·sqrt(2·(1/2+1/2)/100) ≈ 0.23), so it is not a regression."""
    base: dict[Any, list[float]] = {}
    cand: dict[Any, list[float]] = {}
    for pref in PREFERENCES[:2]:
        for i in range(100):
            r = 5.0 + i % 3
            base[(pref, f"{pref}-{i}")] = [r - 1, r + 1]
            shift = 0.2 if pref == "explanation" else 0.0
            cand[(pref, f"{pref}-{i}")] = [r - 1 - shift, r + 1 - shift]
    a, b = write_run(store, "base", base), write_run(store, "cand", cand)
    res = compare_runs(store, a, b, max_drop={"codal-explanation": 0.0})
    m = {x.name: x for x in res.metrics}["codal-explanation"]
    assert m.noise_floor == pytest.approx(1.6449 * np.sqrt(2 * (1 / 2 + 1 / 2) / 100), rel=1e-3)
    assert m.p_no_drop < 0.01 and m.drop == pytest.approx(0.2)
    assert m.decision == "inconclusive" and "A/A noise" in m.reason
    assert res.exit_code == 3
    assert (
        compare_runs(
            store, a, b, max_drop={"codal-explanation": 0.0}, inconclusive="pass"
        ).exit_code
        == 0
    )


# -- HumanEval paths and refusals -----------------------------------------------------------------


def _he(n: int, broken: int, samples: int = 1) -> dict[str, list[tuple[bool, bool]]]:
    return {f"HumanEval/{i}": [(i >= broken, i >= broken)] * samples for i in range(n)}


def test_humaneval_acceptance_numbers(store: Store) -> None:
    base = write_run(store, "canon", humaneval=_he(164, 0))
    assert compare_runs(store, base, write_run(store, "c15", humaneval=_he(164, 15))).exit_code == 1
    assert compare_runs(store, base, write_run(store, "same", humaneval=_he(164, 0))).exit_code == 0
    one = write_run(store, "c1", humaneval=_he(164, 1))
    res = compare_runs(store, base, one, max_drop={"humaneval-plus": 0.05})
    assert res.exit_code == 0
    plus = res.metrics[0]
    assert (plus.name, plus.discordant, plus.test.startswith("exact McNemar")) == (
        "humaneval-plus",
        (1, 0),
        True,
    )


def test_several_samples_use_the_bootstrap_and_mini_gets_a_prefix(store: Store) -> None:
    base = write_run(store, "b", humaneval=_he(40, 0, samples=4))
    cand = write_run(store, "c", humaneval=_he(40, 0, samples=4))
    res = compare_runs(store, base, cand)
    # identical answers: no non-zero difference, so the sign-flip test (not McNemar, not the
    # bootstrap on zero differences)
    assert res.metrics[0].discordant is None and res.metrics[0].test.startswith("sign-flip")
    assert res.exit_code == 0
    # many tasks whose pass fraction moved: the bootstrap
    mixed = {f"HumanEval/{i}": [(s <= i % 4, s <= i % 4) for s in range(4)] for i in range(40)}
    moved = {f"HumanEval/{i}": [(s < i % 4, s < i % 4) for s in range(4)] for i in range(40)}
    res = compare_runs(
        store, write_run(store, "b2", humaneval=mixed), write_run(store, "c2", humaneval=moved)
    )
    assert res.metrics[0].test.startswith("paired bootstrap")
    # both HumanEval+ and its Mini variant in one run → the Mini metrics carry a prefix
    a, b = (write_run(store, m, humaneval=_he(10, 0)) for m in ("x", "y"))
    for rid in (a, b):
        mini = write_run(store, "tmp", humaneval=_he(10, 0), he_task="humaneval-plus-mini")
        store.put_run_items(
            rid,
            [
                ItemRef(r["task"], r["item_id"], r["group"], 0, 0, r["gen_key"], r["grade_key"])
                for r in store.results(mini)
            ],
        )
    names = [m.name for m in compare_runs(store, a, b, max_drop={"humaneval": 0.1}).metrics]
    assert names == [
        "humaneval-plus",
        "humaneval",
        "humaneval-plus-mini/humaneval-plus",
        "humaneval-plus-mini/humaneval",
    ]


def test_refusals_exit_4(store: Store) -> None:
    base = write_run(store, "canon", humaneval=_he(20, 0))
    fewer = write_run(store, "c", humaneval=_he(19, 0))
    running = write_run(store, "r", humaneval=_he(20, 0), status="running")
    same = write_run(store, "s", humaneval=_he(20, 0))
    cases: list[tuple[str, dict[str, float], str]] = [
        (fewer, {}, "different items"),
        (running, {}, "not complete"),
        ("nope", {}, "no run"),
        (same, {"humaneval_plus": 0.1}, "not a metric"),
    ]
    for cand, max_drop, match in cases:
        with pytest.raises(CheckError, match=match) as info:
            compare_runs(store, base, cand, max_drop=max_drop)
        assert info.value.exit_code == 4
