"""`codal-eval diff RUN_A RUN_B`: what changed in the config, and which items flipped.

A gate verdict says *that* something moved; a reviewer needs to see *what*: for each task, the
items whose score on the task's headline metric moved -- pass/fail flips for a rate (with why the
worse side failed), the largest changes for a mean score (with the grader's reason from each run).
What an item's score and reason are comes from the task's scoring face.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any

from .. import registry
from ..store import Store

Rows = list[dict[str, Any]]
_VOLATILE = ("model_identity", "judge.identity")  # shown only through their parents' changes


@dataclass
class ItemFlip:
    task: str
    item_id: str
    a: float  # the item's score (a pass rate) in run A
    b: float
    detail: str = ""  # why the worse side failed


@dataclass
class RatingChange:
    group: str  # the item's stratum
    item_id: str
    a: float
    b: float
    rationale_a: str = ""
    rationale_b: str = ""

    @property
    def delta(self) -> float:
        return self.b - self.a


@dataclass
class MetricDelta:
    """One metric of one task in both runs (the headline numbers of a diff)."""

    task: str
    name: str
    label: str
    a: float
    b: float
    percent: bool = False
    headline: bool = False

    @property
    def delta(self) -> float:
        return self.b - self.a


@dataclass
class DiffResult:
    run_a: str
    run_b: str
    model_a: str
    model_b: str
    config_changes: list[tuple[str, Any, Any]] = field(default_factory=list)
    pass_to_fail: list[ItemFlip] = field(default_factory=list)
    fail_to_pass: list[ItemFlip] = field(default_factory=list)
    rating_changes: list[RatingChange] = field(default_factory=list)  # largest |change| first
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    metrics: list[MetricDelta] = field(default_factory=list)
    name_a: str | None = None  # the runs' names, when they have one
    name_b: str | None = None


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict) and obj:
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: obj}


def config_changes(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    fa, fb = _flatten(a), _flatten(b)
    return [(k, fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]


def _by_item(rows: Rows) -> dict[tuple[str, str], Rows]:
    out: dict[tuple[str, str], Rows] = {}
    for r in rows:
        out.setdefault((r["task"], r["item_id"]), []).append(r)
    return out


def diff_runs(store: Store, run_a: str, run_b: str) -> DiffResult:
    """Config changes, then per task the items whose headline score changed, A → B."""
    ia, ib = store.run(run_a), store.run(run_b)
    rows_a, rows_b = store.results(ia.run_id), store.results(ib.run_id)
    changes = [
        c
        for c in config_changes(ia.config.to_dict(), ib.config.to_dict())
        if not c[0].startswith(_VOLATILE)
    ]
    out = DiffResult(ia.run_id, ib.run_id, ia.model, ib.model, changes)
    out.name_a, out.name_b = ia.name, ib.name
    items_a, items_b = _by_item(rows_a), _by_item(rows_b)
    out.only_a = [f"{t}:{i}" for t, i in sorted(set(items_a) - set(items_b))]
    out.only_b = [f"{t}:{i}" for t, i in sorted(set(items_b) - set(items_a))]
    tasks = [t for t in ia.config.tasks if t in ib.config.tasks]
    for task in tasks:
        scoring = registry.scoring(task)
        ta = [r for r in rows_a if r["task"] == task]
        tb = [r for r in rows_b if r["task"] == task]
        sa = {s.metric.name: s for s in scoring.score(ta)}
        sb = {s.metric.name: s for s in scoring.score(tb)}
        out.metrics += [
            MetricDelta(task, n, m.metric.label, m.value, sb[n].value, m.metric.percent,
                        m.metric.headline)
            for n, m in sa.items()
            if n in sb
        ]  # fmt: skip
        covered: set[str] = set()
        for name, ms in sa.items():  # each stratum's items once, from the first metric with it
            if name not in sb or ms.metric.gate_margin is None:
                continue
            for stratum in ms.weights:
                if stratum in covered:
                    continue
                covered.add(stratum)
                xa, xb = ms.strata.get(stratum, {}), sb[name].strata.get(stratum, {})
                for item in sorted(set(xa) & set(xb), key=_task_order):
                    a, b = xa[item], xb[item]
                    if a == b:
                        continue
                    why_a = scoring.describe_item(items_a.get((task, item), []))
                    why_b = scoring.describe_item(items_b.get((task, item), []))
                    if ms.metric.percent:
                        flip = ItemFlip(task, item, a, b, why_b if a > b else why_a)
                        (out.pass_to_fail if a > b else out.fail_to_pass).append(flip)
                    else:
                        out.rating_changes.append(RatingChange(stratum, item, a, b, why_a, why_b))
    out.rating_changes.sort(key=lambda c: (-abs(c.delta), c.delta, c.group, c.item_id))
    return out


def _task_order(item: str) -> tuple[str, int]:
    """Task/2 before Task/10: ids that end in a number sort by it."""
    head, _, tail = item.rpartition("/")
    return (head, int(tail)) if tail.isdigit() else (item, -1)


def _short(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def diff_markdown(d: DiffResult, top: int = 10, heading: str = "###") -> str:
    """Markdown for a pull-request comment; rationales folded in <details>."""
    lines: list[str] = []
    if d.metrics:
        lines += [f"{heading} Metrics", "", "| task | metric | A | B | change |"]
        lines += ["| --- | --- | ---: | ---: | ---: |"]
        lines += [
            f"| {x.task} | {x.label} | {_val(x, x.a)} | {_val(x, x.b)} | {_val(x, x.delta, True)} |"
            for x in sorted(d.metrics, key=lambda x: not x.headline)
        ]
        lines.append("")
    if d.config_changes:
        lines += [f"{heading} Config changes", "", "| setting | A | B |", "| --- | --- | --- |"]
        lines += [f"| `{k}` | {_md(a)} | {_md(b)} |" for k, a, b in d.config_changes]
        lines.append("")
    for title, flips in (("pass → fail", d.pass_to_fail), ("fail → pass", d.fail_to_pass)):
        if flips:
            lines += [f"{heading} {title} ({len(flips)})", ""]
            lines += [
                f"- `{f.item_id}` ({f.task}) {f.a:.2g} → {f.b:.2g}"
                + (f" — {_md(f.detail)}" if f.detail else "")
                for f in flips
            ]
            lines.append("")
    if d.rating_changes:
        lines += [f"{heading} Items with the largest score changes", ""]
        lines += ["| group | item | A | B | change |", "| --- | --- | --- | --- | --- |"]
        shown = d.rating_changes[:top]
        lines += [
            f"| {_md(c.group)} | `{_md(c.item_id)}` | {c.a:.3g} | {c.b:.3g} | {c.delta:+.3g} |"
            for c in shown
        ]
        lines.append("")
        for c in shown:
            if c.rationale_a or c.rationale_b:
                lines += [
                    f"<details><summary>{_md(c.item_id)}: the grader's reasons</summary>",
                    "",
                    f"- A ({c.a:.3g}): {_md(_short(c.rationale_a, 600))}",
                    f"- B ({c.b:.3g}): {_md(_short(c.rationale_b, 600))}",
                    "",
                    "</details>",
                    "",
                ]
    if d.only_a or d.only_b:
        lines += [f"Items only in A: {len(d.only_a)}; only in B: {len(d.only_b)}", ""]
    if not lines:
        lines = ["No config changes and no flipped items.", ""]
    return "\n".join(lines)


_MD_SPECIAL = re.compile(r"([\\`*_\[\]()!#|~])")


def _md(v: Any) -> str:
    """Text that came from a model (an exception message, a rationale) as inert Markdown: no
    link, image, HTML tag, code span or table break can survive into a pull-request comment."""
    text = html.escape(_short(str(v), 200), quote=False).replace("\n", " ")
    return _MD_SPECIAL.sub(r"\\\1", text)


def _val(x: MetricDelta, v: float, signed: bool = False) -> str:
    """A metric value as its task shows it (a rate in %, a rating with two decimals)."""
    if x.percent:
        return f"{100 * v:+.1f} pts" if signed else f"{100 * v:.1f} %"
    return f"{v:+.2f}" if signed else f"{v:.2f}"


def _plain(v: Any) -> str:
    """A config value for a person: lists and mappings as text, not Python reprs."""
    if isinstance(v, dict):
        return ", ".join(f"{k}={_plain(x)}" for k, x in v.items()) or "–"
    if isinstance(v, list | tuple):
        return ", ".join(_plain(x) for x in v) or "–"
    return "–" if v is None else str(v)


def render_diff(d: DiffResult, top: int = 10, w: int = 100) -> Any:
    """A rich renderable that fits `w` columns: metric changes first, then settings and items
    (plain Text cells: rationales may contain brackets)."""
    from rich.console import Group
    from rich.text import Text

    from ..termtable import ESSENTIAL, Col, fit

    la, lb = d.name_a or d.run_a, d.name_b or d.run_b
    parts: list[Any] = [
        Text(f"diff A {la} ({d.model_a})", style="bold", overflow="fold"),
        Text(f"  →  B {lb} ({d.model_b})", style="bold", overflow="fold"),
    ]
    if d.metrics:
        cols = [
            Col("metric", "metric", ESSENTIAL),
            Col("a", "A", ESSENTIAL, right=True, whole=True),
            Col("b", "B", ESSENTIAL, right=True, whole=True),
            Col("change", "change", ESSENTIAL, right=True, whole=True),
        ]
        rows = []
        for x in sorted(d.metrics, key=lambda x: not x.headline):
            change = Text(
                _val(x, x.delta, True),
                style="green" if x.delta > 0 else ("red" if x.delta < 0 else ""),
            )
            rows.append({"metric": f"{x.task} · {x.label}", "a": _val(x, x.a),
                         "b": _val(x, x.b), "change": change})  # fmt: skip
        parts.append(fit(cols, rows, w, title="metrics"))
    if d.config_changes:
        cols = [Col("k", "setting", ESSENTIAL), Col("a", "A", ESSENTIAL), Col("b", "B", ESSENTIAL)]
        rows = [
            {"k": Text(k), "a": Text(_short(_plain(a), 60)), "b": Text(_short(_plain(b), 60))}
            for k, a, b in d.config_changes
        ]
        parts.append(fit(cols, rows, w, title="settings that differ"))
    for title, flips in (("pass → fail", d.pass_to_fail), ("fail → pass", d.fail_to_pass)):
        if flips:
            cols = [
                Col("item", "item", ESSENTIAL, whole=True),
                Col("task", "task", 40),
                Col("detail", "why (input → reason)", ESSENTIAL),
            ]
            rows = [
                {"item": Text(f.item_id), "task": f.task, "detail": Text(_short(f.detail, 160))}
                for f in flips
            ]
            parts.append(fit(cols, rows, w, title=f"{title} ({len(flips)})"))
    if d.rating_changes:
        shown = d.rating_changes[:top]
        cols = [
            Col("item", "item", ESSENTIAL, whole=True),
            Col("ab", "A → B", ESSENTIAL, whole=True),
            Col("ra", "reason A", 50),
            Col("rb", "reason B", 60),
        ]
        rows = [
            {
                "item": Text(c.item_id),
                "ab": f"{c.a:.3g} → {c.b:.3g}",
                "ra": Text(_short(c.rationale_a, 80)),
                "rb": Text(_short(c.rationale_b, 80)),
            }
            for c in shown
        ]
        parts.append(fit(cols, rows, w, title=f"largest score changes (top {len(shown)})"))
    if d.only_a or d.only_b:
        parts.append(Text(f"items only in A: {len(d.only_a)}; only in B: {len(d.only_b)}"))
    if len(parts) == 2:
        parts.append(Text("no metric or config changes and no flipped items"))
    return Group(*parts)
