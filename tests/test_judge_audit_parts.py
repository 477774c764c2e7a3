"""The pieces of `judge-audit` on their own: AUROC and the cluster bootstrap, the report's figures
from hand-made grades, the built-in set's edits, and the audits table's migration."""

from __future__ import annotations

import gzip
import itertools
import json
import random
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from codal_bench.codal import auditset
from codal_bench.codal.auditreport import AuditAnswer, summarise
from codal_bench.stats import auroc, cluster_bootstrap
from codal_bench.store import SCHEMA_VERSION, Store
from codal_bench.types import Grade


def _brute_auroc(x: list[float], y: list[bool]) -> float:
    pos = [a for a, b in zip(x, y, strict=True) if b]
    neg = [a for a, b in zip(x, y, strict=True) if not b]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auroc_equals_the_pairwise_definition_with_ties() -> None:
    rng = random.Random(7)
    for _ in range(50):
        n = rng.randint(2, 40)
        x = [float(rng.randint(0, 10)) for _ in range(n)]  # many ties, as 1-10 ratings have
        y = [rng.random() < 0.5 for _ in range(n)]
        if all(y) or not any(y):
            assert auroc(x, y) is None
            continue
        assert auroc(x, y) == pytest.approx(_brute_auroc(x, y))
    assert auroc([9, 9, 2, 2], [True, True, False, False]) == 1.0
    assert auroc([5, 5, 5, 5], [True, True, False, False]) == 0.5


def test_cluster_bootstrap_resamples_whole_clusters() -> None:
    # Two clusters of sizes 1 and 9: a resample holds 2, 10 or 18 observations, never anything
    # an answer-level bootstrap would give (any count from 1 to 10 of each kind).
    sizes: list[int] = []

    def size(idx: np.ndarray) -> float:
        sizes.append(len(idx))
        return float(len(idx))

    iv = cluster_bootstrap([[0], list(range(1, 10))], size, n_boot=300, seed=1)
    assert set(sizes) == {2, 10, 18}
    assert iv is not None and iv[0] == 2.0 and iv[1] == 18.0
    # Undefined resamples are skipped; if none is defined there is no interval.
    assert cluster_bootstrap([[0], [1]], lambda idx: None, n_boot=20) is None
    assert cluster_bootstrap([], lambda idx: 1.0) is None
    # Same seed, same interval.
    x = np.array([9.0, 8, 2, 3, 7, 1])
    y = np.array([True, True, False, False, True, False])
    clusters = [[0, 2], [1, 3], [4, 5]]
    one = cluster_bootstrap(clusters, lambda i: auroc(x[i], y[i]), n_boot=200, seed=3)
    assert one == cluster_bootstrap(clusters, lambda i: auroc(x[i], y[i]), n_boot=200, seed=3)


def _answer(task: str, index: int, passed: bool) -> AuditAnswer:
    return AuditAnswer("humaneval-plus", task, index, f"code {task} {index}", passed,
                       "pass" if passed else "fail", None)  # fmt: skip


def _grade(status: str, rating: float | None = None) -> Grade:
    return Grade("k", status, rating)


def test_report_figures_from_hand_made_grades() -> None:
    answers = [
        _answer("T/0", 0, True), _answer("T/0", 1, False), _answer("T/0", 2, False),
        _answer("T/1", 0, True), _answer("T/1", 1, False),
        _answer("T/2", 0, True), _answer("T/2", 1, False),
    ]  # fmt: skip
    grades = [
        _grade("rated", 8), _grade("rated", 9), _grade("parse_failure"),
        _grade("rated", 7), _grade("judge_error"),
        _grade("rated", 6), _grade("rated", 3),
    ]  # fmt: skip
    rep = summarise(answers, grades, n_boot=200, seed=0)
    # The judge error is left out; the parse failure scores 0.
    assert rep["answers"] == 6 and rep["judge_errors"] == 1
    assert (rep["passing"], rep["failing"], rep["tasks"]) == (3, 3, 3)
    assert rep["parse_failures"] == 1 and rep["parse_failure_rate"] == pytest.approx(1 / 6)
    scores = [8.0, 9.0, 0.0, 7.0, 6.0, 3.0]
    labels = [True, False, False, True, True, False]
    assert rep["auroc"] == pytest.approx(_brute_auroc(scores, labels))
    assert rep["auroc_rated_only"] == pytest.approx(_brute_auroc([8, 9, 7, 6, 3], [1, 0, 1, 1, 0]))
    assert rep["mean_rating"]["passing"]["value"] == pytest.approx(7.0)
    assert rep["mean_rating"]["failing"]["value"] == pytest.approx(4.0)
    cal = {c["rating"]: (c["n"], c["passing"]) for c in rep["calibration"]}
    assert cal == {3.0: (1, 0), 6.0: (1, 1), 7.0: (1, 1), 8.0: (1, 1), 9.0: (1, 0),
                   "no rating": (1, 0)}  # fmt: skip
    assert rep["calibration"][-1]["rating"] == "no rating"
    # Within-task pairs: T/0 has 2 (one inverted: 9 >= 8), T/1 none left, T/2 one (not inverted).
    inv = rep["inverted_pairs"]
    assert (inv["count"], inv["pairs"]) == (1, 3)
    (ex,) = inv["examples"]
    assert ex["task_id"] == "T/0" and ex["failing"]["rating"] == 9.0
    assert ex["passing"]["rating"] == 8.0


def test_report_with_one_class_only_has_no_auroc() -> None:
    answers = [_answer("T/0", 0, True), _answer("T/1", 0, True)]
    rep = summarise(answers, [_grade("rated", 5), _grade("rated", 6)], n_boot=50, seed=0)
    assert rep["auroc"] is None and rep["auroc_interval"] is None
    assert rep["mean_rating"]["failing"]["value"] is None


def test_built_in_variants_are_one_edit_from_the_same_code(heplus_data: Path) -> None:
    problems = [json.loads(line) for line in gzip.open(heplus_data, "rt")]
    chosen = auditset.picked(problems)
    assert [p["task_id"] for p in chosen][:3] == ["HumanEval/0", "HumanEval/8", "HumanEval/16"]
    assert len(chosen) == 21 and len(auditset.picked(problems, 4)) == 4
    for p in chosen:
        vs = auditset.variants(p)
        ref = auditset.reference_text(p)
        assert vs and all(v.answer != ref and v.task_id == p["task_id"] for v in vs)
        correct = [v for v in vs if v.expect_pass]
        assert len(correct) == 1 and vs[0] is correct[0]
        assert all(v.answer.startswith("```python\n") for v in vs)
        assert len({v.answer for v in vs}) == len(vs)  # every edit changed the program


def test_select_keeps_verdicts_that_match_the_intent() -> None:
    v = auditset.Variant
    graded = [
        (v("T/0", "correct:rename", True, "a"), "fail"),  # a "correct" edit that broke it
        (v("T/0", "broken:comparison", False, "b"), "pass"),  # an edit nobody could observe
        (v("T/0", "broken:constant", False, "c"), "fail"),
        (v("T/0", "broken:arithmetic", False, "d"), "timeout"),
        (v("T/0", "broken:return", False, "e"), "fail"),  # beyond the two broken per problem
        (v("T/1", "correct:mirror", True, "f"), "pass"),
    ]
    kept = auditset.select(graded)
    assert [x.answer for x, _ in kept] == ["c", "d", "f"]


def test_migration_adds_the_audits_table_to_a_schema_1_store(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE audits")
    conn.execute("DROP TABLE migrations")  # a store written before steps were recorded by name
    conn.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    ro = Store(path, readonly=True)  # read-only: not migrated, and no audits to show
    assert ro.latest_audit({"a": 1}, "t") is None
    ro.close()
    s = Store(path)
    assert s.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(
        SCHEMA_VERSION
    )
    applied = {r[0] for r in s.conn.execute("SELECT name FROM migrations")}
    assert any("audits" in name for name in applied)  # the audits step ran on the old store
    first = s.put_audit("openai:j", {"a": 1}, "t", "built-in", {"auroc": 0.75})
    second = s.put_audit("openai:j", {"a": 1}, "t", "run-1", {"auroc": 0.8})
    s.put_audit("openai:j", {"a": 1}, "other-templates", "run-2", {"auroc": 0.1})
    s.put_audit("openai:j", {"a": 2}, "t", "run-3", {"auroc": 0.2})
    got = s.latest_audit({"a": 1}, "t")
    assert got is not None and got["audit_id"] == second != first
    assert got["auroc"] == 0.8 and got["source"] == "run-1"
    assert got["report"] == {"auroc": 0.8}
