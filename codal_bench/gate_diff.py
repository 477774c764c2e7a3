"""`codal-eval diff RUN_A RUN_B`: what changed in the config, and which items flipped.

A gate verdict says *that* something moved; a reviewer needs to see *what*: the HumanEval+ tasks
that went from pass to fail (with the first failing input) and the CODAL items whose rating moved
most, with the judge's rationale from each run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .gate_data import Rows, _he_counts
from .scores import CODAL_TASK, HUMANEVAL_TASKS, codal_item_ratings
from .store import Store

_VOLATILE = ("model_identity", "judge_identity")  # shown only through their parents' changes


@dataclass
class ItemFlip:
    task: str
    item_id: str
    a: float  # pass rate (HumanEval+: base and plus) in run A
    b: float
    detail: str = ""  # why the worse side failed


@dataclass
class RatingChange:
    preference: str
    item_id: str
    a: float
    b: float
    rationale_a: str = ""
    rationale_b: str = ""

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


def _failure_detail(rows: Rows, task: str, item: str) -> str:
    for r in rows:
        if r.get("task") == task and r["item_id"] == item:
            if r.get("gen_error"):
                return f"generation error: {r['gen_error']}"[:200]
            d = r.get("details") or {}
            parts = [f"base={d.get('base', r.get('status'))}", f"plus={d.get('plus', '-')}"]
            if d.get("first_failed") is not None:
                parts.append(f"first failing input: {str(d['first_failed'])[:120]}")
            elif d.get("stderr_tail"):
                parts.append(str(d["stderr_tail"]).strip().splitlines()[-1][:120])
            return "; ".join(parts)
    return ""


def _rationales(rows: Rows) -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], str] = {}
    for r in rows:
        if r.get("task") == CODAL_TASK and r.get("rationale"):
            out.setdefault((r["group"], r["item_id"]), str(r["rationale"]))
    return out


def diff_runs(store: Store, run_a: str, run_b: str) -> DiffResult:
    """Config changes, HumanEval+ flips (base and plus) and CODAL rating changes, A → B."""
    ia, ib = store.run(run_a), store.run(run_b)
    rows_a, rows_b = store.results(ia.run_id), store.results(ib.run_id)
    ca = {k: v for k, v in ia.config.items() if k not in _VOLATILE}
    cb = {k: v for k, v in ib.config.items() if k not in _VOLATILE}
    out = DiffResult(ia.run_id, ib.run_id, ia.model, ib.model, config_changes(ca, cb))
    keys_a = {(r["task"], r["item_id"]) for r in rows_a}
    keys_b = {(r["task"], r["item_id"]) for r in rows_b}
    out.only_a = [f"{t}:{i}" for t, i in sorted(keys_a - keys_b)]
    out.only_b = [f"{t}:{i}" for t, i in sorted(keys_b - keys_a)]
    for task in HUMANEVAL_TASKS:
        pa, pb = _he_counts(rows_a, task)["plus"], _he_counts(rows_b, task)["plus"]
        for item in sorted(set(pa) & set(pb), key=_task_order):
            a, b = pa[item][1] / pa[item][0], pb[item][1] / pb[item][0]
            if a > b:
                out.pass_to_fail.append(
                    ItemFlip(task, item, a, b, _failure_detail(rows_b, task, item))
                )
            elif b > a:
                out.fail_to_pass.append(
                    ItemFlip(task, item, a, b, _failure_detail(rows_a, task, item))
                )
    ra, rb = codal_item_ratings(rows_a), codal_item_ratings(rows_b)
    why_a, why_b = _rationales(rows_a), _rationales(rows_b)
    for pref in sorted(set(ra) & set(rb)):
        for item in sorted(set(ra[pref]) & set(rb[pref])):
            if ra[pref][item] != rb[pref][item]:
                out.rating_changes.append(
                    RatingChange(
                        pref,
                        item,
                        ra[pref][item],
                        rb[pref][item],
                        why_a.get((pref, item), ""),
                        why_b.get((pref, item), ""),
                    )
                )
    out.rating_changes.sort(key=lambda c: (-abs(c.delta), c.delta, c.preference, c.item_id))
    return out


def _task_order(item: str) -> tuple[str, int]:
    """HumanEval/2 before HumanEval/10."""
    head, _, tail = item.rpartition("/")
    return (head, int(tail)) if tail.isdigit() else (item, -1)


def _short(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def diff_markdown(d: DiffResult, top: int = 10, heading: str = "###") -> str:
    """Markdown for a pull-request comment; rationales folded in <details>."""
    lines: list[str] = []
    if d.config_changes:
        lines += [f"{heading} Config changes", "", "| setting | A | B |", "| --- | --- | --- |"]
        lines += [f"| `{k}` | {_md(a)} | {_md(b)} |" for k, a, b in d.config_changes]
        lines.append("")
    for title, flips in (("pass → fail", d.pass_to_fail), ("fail → pass", d.fail_to_pass)):
        if flips:
            lines += [f"{heading} HumanEval+ {title} ({len(flips)})", ""]
            lines += [
                f"- `{f.item_id}` ({f.task}) {f.a:.2g} → {f.b:.2g}"
                + (f" — {_md(f.detail)}" if f.detail else "")
                for f in flips
            ]
            lines.append("")
    if d.rating_changes:
        lines += [f"{heading} CODAL items with the largest rating changes", ""]
        lines += ["| preference | item | A | B | change |", "| --- | --- | --- | --- | --- |"]
        shown = d.rating_changes[:top]
        lines += [
            f"| {c.preference} | `{c.item_id}` | {c.a:.3g} | {c.b:.3g} | {c.delta:+.3g} |"
            for c in shown
        ]
        lines.append("")
        for c in shown:
            if c.rationale_a or c.rationale_b:
                lines += [
                    f"<details><summary>{c.item_id}: judge's rationales</summary>",
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


def _md(v: Any) -> str:
    return _short(str(v), 200).replace("|", "\\|").replace("\n", " ")


def render_diff(d: DiffResult, top: int = 10) -> Any:
    """A rich renderable for the terminal (plain Text cells: rationales may contain brackets)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = [
        Text(f"diff {d.run_a} ({d.model_a}) → {d.run_b} ({d.model_b})", style="bold")
    ]
    if d.config_changes:
        t = Table(title="config changes")
        for col in ("setting", "A", "B"):
            t.add_column(col)
        for k, a, b in d.config_changes:
            t.add_row(Text(k), Text(_short(str(a), 60)), Text(_short(str(b), 60)))
        parts.append(t)
    for title, flips in (("pass → fail", d.pass_to_fail), ("fail → pass", d.fail_to_pass)):
        if flips:
            t = Table(title=f"HumanEval+ {title} ({len(flips)})")
            for col in ("task", "item", "A", "B", "detail"):
                t.add_column(col)
            for f in flips:
                t.add_row(
                    f.task, Text(f.item_id), f"{f.a:.2g}", f"{f.b:.2g}", Text(_short(f.detail, 80))
                )
            parts.append(t)
    if d.rating_changes:
        t = Table(title=f"CODAL: largest rating changes (top {min(top, len(d.rating_changes))})")
        for col in ("preference", "item", "A", "B", "rationale A", "rationale B"):
            t.add_column(col)
        for c in d.rating_changes[:top]:
            t.add_row(
                c.preference,
                Text(c.item_id),
                f"{c.a:.3g}",
                f"{c.b:.3g}",
                Text(_short(c.rationale_a, 80)),
                Text(_short(c.rationale_b, 80)),
            )
        parts.append(t)
    if d.only_a or d.only_b:
        parts.append(Text(f"items only in A: {len(d.only_a)}; only in B: {len(d.only_b)}"))
    if len(parts) == 1:
        parts.append(Text("no config changes and no flipped items"))
    return Group(*parts)
