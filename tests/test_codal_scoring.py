"""CODAL aggregation reproduces the published method; intervals and diagnostics behave."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from codal_bench.codal.report import bootstrap_ci, codal_report, self_preference

PREFS = ("instruction-following", "explanation", "complexity", "readability", "style")


def row(
    pref: str,
    item: str,
    status: str | None,
    rating: float | None = None,
    *,
    repeat: int = 0,
    answer: str = "answer",
    ref: str = "claude-3-sonnet-20240229_response",
) -> dict[str, Any]:
    details: dict[str, Any] = {"reference_column": ref}
    if status == "rated":
        details["out_of_range"] = not 1 <= float(rating or 0) <= 10
    return {
        "task": "codal-bench", "item_id": item, "group": pref, "sample_index": 0,
        "repeat": repeat, "answer": answer, "gen_error": None, "status": status,
        "rating": rating, "rationale": "", "details": details,
    }  # fmt: skip


def hand_rows() -> list[dict[str, Any]]:
    return [
        row("instruction-following", "i1", "rated", 7),
        row("instruction-following", "i2", "parse_failure"),  # N/A counts 0
        row("explanation", "e1", "rated", 8),
        row("explanation", "e2", "rated", 6),
        row("complexity", "c1", "rated", 11),  # kept as parsed (11) in the published score
        row("complexity", "c2", "rated", 5),
        row("readability", "r1", "rated", 9),
        row("readability", "r2", "judge_error"),  # no grade: an error, scored 0 and counted
        row("style", "s1", "rated", 4),
        row("style", "s2", "rated", 2),
        {**row("style", "hx", None), "task": "humaneval-plus"},  # other tasks are ignored
    ]


def test_published_aggregation_by_hand() -> None:
    rep = codal_report(hand_rows(), candidate="m", judge="gpt-3.5-turbo", reference=None, n_boot=0)
    pub = {p: rep["preferences"][p]["published"]["value"] for p in PREFS}
    assert pub == {
        "instruction-following": 3.5,  # (7 + 0) / 2
        "explanation": 7.0,  # (8 + 6) / 2
        "complexity": 8.0,  # (11 + 5) / 2
        "readability": 4.5,  # r2 failed to grade: an error counts 0, never raises the mean
        "style": 3.0,
    }
    assert rep["average"]["published"]["value"] == pytest.approx(26.0 / 5)  # 5.2
    parsed = {p: rep["preferences"][p]["parsed"]["value"] for p in PREFS}
    assert parsed == {
        "instruction-following": 7.0,
        "explanation": 7.0,
        "complexity": 5.0,
        "readability": 9.0,
        "style": 3.0,
    }
    assert rep["average"]["parsed"]["value"] == pytest.approx(31 / 5)
    assert rep["preferences"]["instruction-following"]["parse_failure_rate"]["value"] == 0.5
    assert rep["preferences"]["complexity"]["out_of_range_rate"]["value"] == 0.5
    assert rep["average"]["parse_failure_rate"]["value"] == pytest.approx(0.1)
    assert rep["average"]["out_of_range_rate"]["value"] == pytest.approx(0.1)
    assert rep["preferences"]["readability"]["errors"] == 1
    d = rep["diagnostics"]
    assert (d["outputs"], d["parse_failures"], d["judge_errors"]) == (9, 1, 1)
    assert d["parse_failure_rate"] == pytest.approx(1 / 9)
    assert rep["reference"] == "claude-3-sonnet-20240229_response"
    assert rep["preferences"]["style"]["published"]["ci"] is None  # n_boot=0: no intervals


def test_repeats_are_averaged_per_item_before_the_preference_mean() -> None:
    rows = [
        row("style", "s1", "rated", 8, repeat=0),
        row("style", "s1", "parse_failure", repeat=1),  # item s1 = (8 + 0) / 2 = 4
        row("style", "s2", "rated", 6, repeat=0),
        row("style", "s2", "rated", 6, repeat=1),  # item s2 = 6
    ]
    rep = codal_report(rows, candidate="m", judge="j", reference=None, n_boot=0)
    assert rep["preferences"]["style"]["published"]["value"] == 5.0
    assert rep["preferences"]["style"]["parsed"]["value"] == 7.0  # (8 + 6) / 2
    # One preference graded: no average (the published average is over all five).
    assert rep["average"]["published"]["value"] is None
    aa = rep["diagnostics"]["aa_noise"]
    assert aa["repeats"] == 2 and aa["answers"] == 1 and aa["mean_std"] == 0.0
    assert aa["parse_flip_share"] == 0.5


def test_bootstrap_is_seeded_and_brackets_the_mean() -> None:
    rng = np.random.default_rng(123)
    rows = [
        row(p, f"{p}-{i}", "rated", float(rng.integers(1, 11))) for p in PREFS for i in range(100)
    ]
    a = codal_report(rows, candidate="m", judge="j", reference=None, seed=7)
    b = codal_report(rows, candidate="m", judge="j", reference=None, seed=7)
    c = codal_report(rows, candidate="m", judge="j", reference=None, seed=8)
    assert a == b
    assert a["average"]["published"]["ci"] != c["average"]["published"]["ci"]
    for p in PREFS:
        lo, hi = a["preferences"][p]["published"]["ci"]
        assert lo < a["preferences"][p]["published"]["value"] < hi
        vals = [r["rating"] for r in rows if r["group"] == p]
        half = 1.96 * np.std(vals, ddof=1) / np.sqrt(len(vals))
        assert hi - lo == pytest.approx(2 * half, rel=0.15)
    lo, hi = a["average"]["published"]["ci"]
    assert lo < a["average"]["published"]["value"] < hi
    # The average pools five preferences: its interval is narrower than any single one.
    assert hi - lo < min(np.diff(a["preferences"][p]["published"]["ci"])[0] for p in PREFS)


def test_bootstrap_ci_helper() -> None:
    assert bootstrap_ci([5.0] * 10) == [5.0, 5.0]
    assert bootstrap_ci([]) is None
    x = list(np.random.default_rng(0).normal(size=200))
    assert bootstrap_ci(x, seed=1) == bootstrap_ci(x, seed=1)
    lo, hi = bootstrap_ci(x, seed=1) or (0.0, 0.0)
    assert lo < float(np.mean(x)) < hi


def test_bootstrap_speed_500_items() -> None:
    rows = [row(p, f"{p}-{i}", "rated", float(i % 10 + 1)) for p in PREFS for i in range(100)]
    t0 = time.perf_counter()
    codal_report(rows, candidate="m", judge="j", reference=None, n_boot=10_000)
    assert time.perf_counter() - t0 < 1.0


def test_length_slope_recovers_a_linear_trend() -> None:
    rows = [
        row("style", f"s{n}", "rated", 2 + 3 * n / 1000, answer="x" * n)
        for n in (100, 500, 1000, 2000)
    ]
    rows.append(row("style", "pf", "parse_failure", answer="x" * 5000))  # not in the slope
    s = codal_report(rows, candidate="m", judge="j", reference=None, n_boot=0)["diagnostics"][
        "length_slope"
    ]
    assert s["per_1000_chars"] == pytest.approx(3.0)
    assert s["intercept"] == pytest.approx(2.0)
    assert s["r"] == pytest.approx(1.0)
    assert s["n"] == 4


def test_aa_noise_is_the_std_of_repeats() -> None:
    rows = [
        row("style", "s1", "rated", 6, repeat=0),
        row("style", "s1", "rated", 8, repeat=1),
        row("style", "s2", "rated", 5, repeat=0),
        row("style", "s2", "rated", 5, repeat=1),
    ]
    aa = codal_report(rows, candidate="m", judge="j", reference=None, n_boot=0)["diagnostics"][
        "aa_noise"
    ]
    assert aa["mean_std"] == pytest.approx(np.sqrt(2) / 2)  # (sqrt(2) + 0) / 2
    assert aa["max_std"] == pytest.approx(np.sqrt(2))
    assert aa["disagreeing_share"] == 0.5
    no_repeats = codal_report(rows[::2], candidate="m", judge="j", reference=None, n_boot=0)
    assert no_repeats["diagnostics"]["aa_noise"] is None


@pytest.mark.parametrize(
    ("candidate", "judge", "ref", "flag", "why"),
    [
        ("codellama-7b", "gpt-4", "gpt-4-turbo_response", True, "own model line"),
        ("codellama-7b", "gpt-3.5-turbo", "gpt-4-turbo_response", True, "family (openai)"),
        ("codellama-7b", "claude-3-opus", "gpt-4-turbo_response", False, ""),
        ("codellama-7b", "claude-3-opus", "claude-3-sonnet-20240229_response", True, "own"),
        ("/ckpt/smollm2-135m-instruct", "smollm2", "claude-3-sonnet-20240229_response", True,
         "share the family 'smollm'"),
        ("gpt-4o", "openai:gpt-4o-mini", "claude-3-sonnet-20240229_response", True, "share"),
    ],
)  # fmt: skip
def test_self_preference(candidate: str, judge: str, ref: str, flag: bool, why: str) -> None:
    sp = self_preference(candidate, judge, [ref])
    assert sp["flag"] is flag
    assert why in " ".join(sp["reasons"])


def test_self_preference_in_report_uses_the_rows_reference() -> None:
    rows = [row("style", "s1", "rated", 5, ref="gpt-4-turbo_response")]
    rep = codal_report(rows, candidate="m", judge="gpt-4-0613", reference=None, n_boot=0)
    assert rep["reference"] == "gpt-4-turbo_response"
    assert rep["diagnostics"]["self_preference"]["flag"] is True
    assert codal_report(rows, candidate="m", judge=None, reference=None)["diagnostics"][
        "self_preference"
    ] == {"flag": False, "reasons": []}
