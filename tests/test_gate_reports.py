"""Acceptance 3: JUnit XML that CI systems (and junitparser) read; markdown shows flipped items."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from junitparser import Failure, JUnitXml, Skipped
from rich.console import Console

from codal_bench.gate import (
    CheckResult,
    compare_runs,
    diff_runs,
    render_diff,
    render_terminal,
    write_reports,
)
from codal_bench.gate.reports import summary_markdown
from codal_bench.store import Store
from tests.test_gate_stats import write_run


def _he(broken: set[int]) -> dict[str, list[tuple[bool, bool]]]:
    return {f"HumanEval/{i}": [(i not in broken, i not in broken)] for i in range(164)}


def _codal(shift: float) -> dict[tuple[str, str], list[float]]:
    return {("style", f"style-{i}"): [6.0 - (shift if i < 3 else 0.0)] for i in range(30)} | {
        ("readability", f"readability-{i}"): [7.0] for i in range(30)
    }


@pytest.fixture()
def result(tmp_path: Path) -> CheckResult:
    store = Store(tmp_path / "s.sqlite")
    # HumanEval/3 is fixed by the candidate, 15 others break; three style items drop 4 points
    a = write_run(
        store, "base-model", _codal(0), _he({3}), rationale="base: {item} is [neat] | {rating}"
    )
    b = write_run(
        store,
        "cand-model",
        _codal(4),
        _he(set(range(20, 45))),
        rationale="cand: {item} got {rating} <worse>",
    )
    return compare_runs(store, a, b, max_drop={"codal-style": 1.0})


def test_junit_xml_is_read_back_by_junitparser(result: CheckResult, tmp_path: Path) -> None:
    path = tmp_path / "gate.xml"
    write_reports(result, path, None, None)
    xml = JUnitXml.fromfile(str(path))
    assert xml._tag == "testsuites"
    suites = list(xml)
    assert len(suites) == 1
    suite = suites[0]
    cases = {c.name: c for c in suite}
    assert set(cases) == {m.name for m in result.metrics}
    assert suite.tests == len(result.metrics) and xml.tests == len(result.metrics)
    failed = {m.name for m in result.metrics if m.decision != "pass"}
    assert suite.failures == len(failed) and suite.time >= 0
    for m in result.metrics:
        case = cases[m.name]
        assert case.classname == f"codal-eval.check.{m.task}"
        if m.decision == "pass":
            assert case.is_passed
        else:
            (fail,) = [r for r in case.result if isinstance(r, Failure)]
            assert fail.message.startswith(m.decision) and fail.type == m.decision
    assert cases["humaneval-plus"].result[0].message.startswith("regression")


def test_inconclusive_under_pass_policy_is_skipped(result: CheckResult, tmp_path: Path) -> None:
    for m in result.metrics:
        if m.name == "codal-style":
            m.decision = "inconclusive"
    result.inconclusive_policy = "pass"
    path = tmp_path / "gate.xml"
    write_reports(result, path, None, None)
    case = {c.name: c for c in next(iter(JUnitXml.fromfile(str(path))))}["codal-style"]
    assert isinstance(case.result[0], Skipped)


def test_markdown_summary_renders_flipped_items(result: CheckResult, tmp_path: Path) -> None:
    md_path, json_path = tmp_path / "summary.md", tmp_path / "gate.json"
    write_reports(result, None, md_path, json_path)
    md = md_path.read_text()
    assert md.startswith("## ❌ codal-eval check: regression (exit 1)")
    assert "| `humaneval-plus` |" in md and "❌ regression" in md
    assert "pass → fail (25)" in md and "`HumanEval/20`" in md and "`HumanEval/44`" in md
    assert "fail → pass (1)" in md and "`HumanEval/3`" in md
    assert "first failing input: \\[1, 2\\]" in md  # model text is inert Markdown
    # CODAL items with the largest changes, with the judge's rationales (table pipes escaped)
    assert "| style | `style-0` | 6 | 2 | -4 |" in md
    assert (
        "base: style-0 is \\[neat\\] \\| 6.0" in md and "cand: style-0 got 2.0 &lt;worse&gt;" in md
    )
    assert "<worse>" not in md  # no HTML from a rationale reaches the comment
    assert md == summary_markdown(result)
    data = json.loads(json_path.read_text())
    assert data["exit_code"] == 1 and data["verdict"] == "regression"
    assert {m["name"] for m in data["metrics"]} == {m.name for m in result.metrics}
    assert len(data["diff"]["pass_to_fail"]) == 25


def test_terminal_and_diff_render_without_markup_surprises(
    result: CheckResult, tmp_path: Path
) -> None:
    out = StringIO()
    Console(file=out, width=220).print(render_terminal(result))
    text = out.getvalue()
    assert "REGRESSION (exit 1)" in text and "humaneval-plus" in text
    store = Store(tmp_path / "s.sqlite")  # the fixture's store lives in the same tmp_path
    d = diff_runs(store, result.baseline_run, result.candidate_run)
    assert [f.item_id for f in d.fail_to_pass] == ["HumanEval/3"]
    assert ("model", "base-model", "cand-model") in d.config_changes
    out = StringIO()
    Console(file=out, width=220).print(render_diff(d, top=3))
    text = out.getvalue()
    assert "[neat]" in text  # brackets in rationales are text, not rich markup
    assert "HumanEval/20" in text


def test_model_text_cannot_become_a_link_or_html_in_the_comment() -> None:
    """Class 10 of the sandbox red team: an exception message is candidate-controlled text."""
    from codal_bench.gate.diff import _md

    hostile = "AssertionError: [click](https://evil.example) ![x](y) <a href=z>z</a> `c` | t"
    out = _md(hostile)
    assert (
        "](" not in out.replace("\\](", "")
        and "<a" not in out
        and "|" not in out.replace("\\|", "")
    )
    assert "&lt;a href=z&gt;" in out and "\\[click\\]" in out and "\\`c\\`" in out
