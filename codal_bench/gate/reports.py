"""Gate reports: terminal table, markdown for a pull-request comment, JUnit XML and JSON.

JUnit is what CI systems already display, so each metric is one test case: a regression (or an
inconclusive metric under `--inconclusive fail`) is a <failure>, an inconclusive metric under
`--inconclusive pass` is <skipped>, a cleared metric passes.
"""

from __future__ import annotations

import json
import math
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .diff import diff_markdown

if TYPE_CHECKING:
    from .result import CheckResult, MetricResult

_ICON = {"pass": "✅", "regression": "❌", "inconclusive": "⚠️"}


def _num(x: float | None, fmt: str = ".3g") -> str:
    if x is None:
        return "–"
    if not math.isfinite(x):
        return "∞"
    return format(x, fmt)


def _interval(m: MetricResult) -> str:
    return f"[{_num(m.lo)}, {_num(m.hi)}]"


def _allowed(m: MetricResult) -> str:
    if m.noise_floor is not None and m.noise_floor > m.margin:
        return f"{_num(m.margin)} (judge noise {_num(m.noise_floor)})"
    return _num(m.margin)


def _row(m: MetricResult) -> list[str]:
    return [
        m.name,
        _num(m.baseline),
        _num(m.candidate),
        _num(m.drop),
        _interval(m),
        _allowed(m),
        _num(m.mdd),
        _num(m.p_adjusted, ".2g"),
        m.decision,
    ]


_HEADER = [
    "metric",
    "baseline",
    "candidate",
    "drop",
    "90% interval",
    "allowed drop",
    "detectable (80% power)",
    "p (Holm)",
    "result",
]


_PRIORITY = {  # which columns a narrow terminal keeps longest (metric and result always)
    "metric": 100, "result": 100, "drop": 90, "candidate": 85, "baseline": 84,
    "90% interval": 70, "allowed drop": 60, "p (Holm)": 50, "detectable (80% power)": 40,
}  # fmt: skip


def render_terminal(result: CheckResult, w: int = 130) -> Any:
    """Rich renderable that fits `w` columns: the per-metric table, the reasons, the verdict."""
    from rich.console import Group
    from rich.text import Text

    from ..termtable import Col, fit

    names = (result.diff.name_a, result.diff.name_b) if result.diff else (None, None)
    base = names[0] or result.baseline_run
    cand = names[1] or result.candidate_run
    cols = [
        Col(h, h, _PRIORITY[h], right=h not in ("metric", "result"), whole=True) for h in _HEADER
    ]
    colour = {"pass": "green", "regression": "red", "inconclusive": "yellow"}
    rows = []
    for m in result.metrics:
        row: dict[str, Any] = {h: Text(c) for h, c in zip(_HEADER, _row(m), strict=True)}
        row["result"].stylize(colour[m.decision])
        rows.append(row)
    title = f"codal-eval check: {result.candidate_model} vs {result.baseline_model}"
    parts: list[Any] = [fit(cols, rows, w, title=title)]
    parts += [Text(f"  {m.name}: {m.reason}", overflow="fold") for m in result.metrics]
    parts += [Text(f"  note: {n}", overflow="fold") for n in result.notes]
    verdict = Text(f"{result.verdict.upper()} (exit {result.exit_code})")
    verdict.stylize("bold " + colour[result.verdict], 0, len(result.verdict))
    parts.append(verdict)
    parts.append(Text(f"baseline run {base}", overflow="fold"))
    parts.append(Text(f"candidate run {cand}", overflow="fold"))
    parts.append(
        Text(
            "drop = baseline - candidate, interval = one-sided 95% bounds, "
            f"α = {result.alpha} with Holm's correction, bootstrap seed {result.seed}",
            style="dim",
        )
    )
    return Group(*parts)


def print_terminal(result: CheckResult) -> None:
    """The check's report on stdout, laid out for the terminal (wide enough in CI logs)."""
    from ..termtable import console, width

    w = width(default=130)
    console(w=w).print(render_terminal(result, w))


def summary_markdown(result: CheckResult, top: int = 10) -> str:
    """Markdown for `$GITHUB_STEP_SUMMARY` or a pull-request comment."""
    lines = [
        f"## {_ICON[result.verdict]} codal-eval check: {result.verdict} (exit {result.exit_code})",
        "",
        f"Candidate `{result.candidate_model}` (run `{result.candidate_run}`) against baseline "
        f"`{result.baseline_model}` (run `{result.baseline_run}`), on the same items and settings.",
        "",
        "| " + " | ".join(_HEADER) + " |",
        "|" + " --- |" * len(_HEADER),
    ]
    for m in result.metrics:
        cells = _row(m)
        cells[0] = f"`{cells[0]}`"
        cells[-1] = f"{_ICON[m.decision]} {cells[-1]}"
        lines.append("| " + " | ".join(cells) + " |")
    lines += [""] + [
        f"- **{m.name}**: {m.reason} ({m.test}, n={m.n_items})" for m in result.metrics
    ]
    lines += [f"- note: {n}" for n in result.notes]
    lines += [
        "",
        f"Drop = baseline − candidate in the metric's units; intervals are one-sided 95 % bounds; "
        f"regression = drop significantly above the allowed drop (α = {result.alpha}, Holm); "
        f"pass = upper bound within it. {result.n_boot} bootstrap replicates, seed {result.seed}. "
        f"Inconclusive metrics {'fail' if result.inconclusive_policy == 'fail' else 'pass'} "
        "the check.",
        "",
    ]
    if result.diff is not None:
        lines += ["### What changed", "", diff_markdown(result.diff, top=top, heading="####")]
    return "\n".join(lines)


def junit_xml(result: CheckResult) -> str:
    """One <testsuite>, one <testcase> per metric, in the shape CI systems parse."""
    failures = skipped = 0
    total_time = sum(m.elapsed_s for m in result.metrics)
    suites = ET.Element("testsuites", name="codal-eval check")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name="codal-eval check",
        timestamp=time.strftime("%Y-%m-%dT%H:%M:%S"),
        errors="0",
    )
    props = ET.SubElement(suite, "properties")
    for k, v in (
        ("baseline_run", result.baseline_run),
        ("candidate_run", result.candidate_run),
        ("baseline_model", result.baseline_model),
        ("candidate_model", result.candidate_model),
        ("alpha", str(result.alpha)),
        ("seed", str(result.seed)),
        ("verdict", result.verdict),
    ):
        ET.SubElement(props, "property", name=k, value=v)
    for m in result.metrics:
        case = ET.SubElement(
            suite,
            "testcase",
            name=m.name,
            classname=f"codal-eval.check.{m.task}",
            time=f"{m.elapsed_s:.3f}",
        )
        text = _case_text(m)
        if m.decision == "regression" or (
            m.decision == "inconclusive" and result.inconclusive_policy == "fail"
        ):
            failures += 1
            fail = ET.SubElement(case, "failure", message=f"{m.decision}: {m.reason}")
            fail.set("type", m.decision)
            fail.text = text
        elif m.decision == "inconclusive":
            skipped += 1
            ET.SubElement(case, "skipped", message=f"inconclusive: {m.reason}")
        ET.SubElement(case, "system-out").text = text
    n = str(len(result.metrics))
    for el in (suites, suite):
        el.set("tests", n)
        el.set("failures", str(failures))
        el.set("errors", "0")
        el.set("skipped", str(skipped))
        el.set("time", f"{total_time:.3f}")
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode")


def _case_text(m: MetricResult) -> str:
    return (
        f"{m.name}: baseline {_num(m.baseline)}, candidate {_num(m.candidate)}, drop "
        f"{_num(m.drop)} {_interval(m)}, allowed {_allowed(m)}, detectable at 80% power "
        f"{_num(m.mdd)}, p(no drop)={_num(m.p_no_drop, '.2g')}, "
        f"p(drop<=allowed, Holm)={_num(m.p_adjusted, '.2g')}; {m.test}; n={m.n_items}"
    )


def _finite(obj: Any) -> Any:
    """JSON has no Infinity/NaN: write them as null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def result_json(result: CheckResult) -> dict[str, Any]:
    data = asdict(result)
    data.pop("diff", None)
    data = {
        "schema": "codal-eval.check/1",
        "verdict": result.verdict,
        "exit_code": result.exit_code,
        **data,
    }
    if result.diff is not None:
        diff = asdict(result.diff)
        for c, raw in zip(result.diff.rating_changes, diff["rating_changes"], strict=True):
            raw["delta"] = c.delta
        data["diff"] = diff
    return dict(_finite(data))


def write_reports(
    result: CheckResult, junit: Path | None, summary_md: Path | None, json_path: Path | None
) -> None:
    render: list[tuple[Path | None, Callable[[], str]]] = [
        (junit, lambda: junit_xml(result)),
        (summary_md, lambda: summary_markdown(result)),
        (json_path, lambda: json.dumps(result_json(result), indent=2, default=str) + "\n"),
    ]
    for path, text in render:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text(), encoding="utf-8")
