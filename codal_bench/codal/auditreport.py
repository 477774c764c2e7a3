"""The judge-audit report: AUROC with a bootstrap interval over tasks, mean ratings of passing and
failing answers, a calibration table, the parse-failure rate and within-task inversions.

A rating the judge gave counts as its number; an output without a rating counts 0, as the published
CODAL aggregation counts it (so a judge that fails to answer on broken code is not rewarded for
it), and the AUROC over rated answers only is reported beside it. An answer whose judge call
failed after retries has no score and is left out (and counted). Answers to the same task are
not independent, so intervals resample tasks, not answers.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from ..stats import auroc, cluster_bootstrap
from ..types import Grade

EXAMPLES = 5  # inverted pairs shown in the report


@dataclass(frozen=True)
class AuditAnswer:
    """One answer with its sandbox verdict: `index` numbers the answers of one task."""

    task: str
    task_id: str
    index: int
    answer: str
    passed: bool
    status: str  # the sandbox's verdict: pass / fail / timeout / error
    kind: str | None  # built-in set: how the variant was made


def _score(g: Grade | None) -> float | None:
    if g is None or g.status == "judge_error":
        return None
    if g.status == "rated" and g.rating is not None:
        return float(g.rating)
    return 0.0  # no rating in the output: 0, as the published score counts it


def summarise(
    answers: list[AuditAnswer], grades: list[Grade | None], *, n_boot: int, seed: int
) -> dict[str, Any]:
    """Every figure of the report (see the module docstring) from answers and their grades."""
    import numpy as np

    kept = [(a, g, s) for a, g in zip(answers, grades, strict=True) if (s := _score(g)) is not None]
    x = np.array([s for _, _, s in kept], dtype=float)
    y = np.array([a.passed for a, _, _ in kept], dtype=bool)
    rated = np.array([g is not None and g.status == "rated" for _, g, _ in kept], dtype=bool)
    tasks: dict[str, list[int]] = defaultdict(list)
    for i, (a, _, _) in enumerate(kept):
        tasks[a.task_id].append(i)
    clusters = list(tasks.values())

    def auc(idx: Any) -> float | None:
        return auroc(x[idx], y[idx])

    def mean_of(cls: bool) -> dict[str, Any]:
        pick = y == cls
        value = float(x[pick].mean()) if pick.any() else None

        def stat(idx: Any) -> float | None:
            sel = idx[y[idx] == cls]
            return float(x[sel].mean()) if sel.size else None

        return {"value": value, "n": int(pick.sum()),
                "interval": cluster_bootstrap(clusters, stat, n_boot, seed)}  # fmt: skip

    parse_failures = int((~rated).sum())
    return {
        "auroc": auroc(x, y),
        "auroc_interval": cluster_bootstrap(clusters, auc, n_boot, seed),
        "auroc_rated_only": auroc(x[rated], y[rated]),
        "answers": len(kept),
        "passing": int(y.sum()),
        "failing": int((~y).sum()),
        "tasks": len(clusters),
        "judge_errors": len(answers) - len(kept),
        "parse_failures": parse_failures,
        "parse_failure_rate": parse_failures / len(kept) if kept else None,
        "mean_rating": {"passing": mean_of(True), "failing": mean_of(False)},
        "calibration": _calibration(kept),
        "inverted_pairs": _inversions(kept),
        "n_boot": n_boot,
        "seed": seed,
        "scoring": "rating as given; an output without a rating counts 0 (the published rule); "
        "answers whose judge call failed are left out",
    }


def _calibration(kept: list[tuple[AuditAnswer, Grade | None, float]]) -> list[dict[str, Any]]:
    """rating -> how many answers got it and what share of them pass; unparsed outputs apart."""
    cells: dict[Any, list[bool]] = defaultdict(list)
    for a, g, s in kept:
        key = s if g is not None and g.status == "rated" else "no rating"
        cells[key].append(a.passed)
    order = sorted((k for k in cells if k != "no rating"), key=float)
    order += ["no rating"] if "no rating" in cells else []
    return [
        {"rating": k, "n": len(cells[k]), "passing": sum(cells[k]),
         "share_passing": sum(cells[k]) / len(cells[k])}
        for k in order
    ]  # fmt: skip


def _inversions(kept: list[tuple[AuditAnswer, Grade | None, float]]) -> dict[str, Any]:
    """Pairs of one task where a failing answer got at least the rating of a passing one."""
    by_task: dict[str, list[tuple[AuditAnswer, float]]] = defaultdict(list)
    for a, _, s in kept:
        by_task[a.task_id].append((a, s))
    found = []
    pairs = 0
    for task_id, rows in by_task.items():
        for f, sf in rows:
            if f.passed:
                continue
            for p, sp in rows:
                if not p.passed:
                    continue
                pairs += 1
                if sf >= sp:
                    found.append((sf - sp, task_id, f, sf, p, sp))
    found.sort(key=lambda t: (-t[0], t[1], t[2].index, t[4].index))
    examples = [
        {
            "task_id": task_id,
            "failing": {"index": f.index, "rating": sf, "status": f.status, "kind": f.kind},
            "passing": {"index": p.index, "rating": sp, "status": p.status, "kind": p.kind},
        }
        for _, task_id, f, sf, p, sp in found[:EXAMPLES]
    ]
    return {"count": len(found), "pairs": pairs, "examples": examples}


# -- terminal ----------------------------------------------------------------------------------


def _num(v: Any, digits: int = 3) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def _interval(iv: Any, digits: int = 3) -> str:
    return "" if not iv else f"{iv[0]:.{digits}f}–{iv[1]:.{digits}f}"


def render(report: dict[str, Any]) -> Any:
    """A short rich summary: the figures, the calibration table, a few inverted pairs."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    j = report["judge"]
    src = report["source"]
    where = f"run {src['run']} ({src.get('model')})" if src.get("run") else "the built-in set"
    head = Table(title=f"judge audit · {j['spec']} · templates {j['templates']['sha256'][:12]}",
                 show_header=False, title_style="bold")  # fmt: skip
    head.add_column(style="cyan")
    head.add_column(justify="right")
    head.add_column(style="dim")
    mean = report["mean_rating"]
    rows = [
        ("AUROC (pass vs fail)", _num(report["auroc"]), _interval(report["auroc_interval"])),
        ("AUROC, rated answers only", _num(report["auroc_rated_only"]), ""),
        ("mean rating, passing", _num(mean["passing"]["value"], 2),
         _interval(mean["passing"]["interval"], 2)),
        ("mean rating, failing", _num(mean["failing"]["value"], 2),
         _interval(mean["failing"]["interval"], 2)),
        ("parse failures", f"{report['parse_failures']} of {report['answers']}",
         _num(report["parse_failure_rate"])),
        ("answers (passing / failing)", f"{report['passing']} / {report['failing']}",
         f"{report['tasks']} tasks"),
        ("judge requests sent", str(report["judge_requests"]),
         f"{report['grades_reused']} grades from the store"),
    ]  # fmt: skip
    for r in rows:
        head.add_row(*r)
    cal = Table(title="calibration: rating → share passing", title_style="bold")
    for c in ("rating", "answers", "passing", "share"):
        cal.add_column(c, justify="right")
    for c in report["calibration"]:
        rating = c["rating"] if isinstance(c["rating"], str) else f"{c['rating']:g}"
        cal.add_row(rating, str(c["n"]), str(c["passing"]), f"{c['share_passing']:.2f}")
    inv = report["inverted_pairs"]
    lines = [
        Text(f"Answers: {where}; preference {report['preference']}; reference: "
             f"{report['reference']}."),
        Text(f"Within-task pairs where a failing answer was rated at least as high as a passing "
             f"one: {inv['count']} of {inv['pairs']}."),
    ]  # fmt: skip
    for e in inv["examples"]:
        f, p = e["failing"], e["passing"]
        lines.append(
            Text(f"  {e['task_id']}: failing #{f['index']} ({f['kind'] or f['status']}) rated "
                 f"{f['rating']:g} ≥ passing #{p['index']} ({p['kind'] or 'pass'}) rated "
                 f"{p['rating']:g}", style="dim")
        )  # fmt: skip
    if report.get("answers_equal_to_reference"):
        lines.append(Text(f"{report['answers_equal_to_reference']} answers are the reference "
                          "itself: for them the judge only has to compare texts.",
                          style="yellow"))  # fmt: skip
    left = {k: v for k, v in report["left_out"].items() if v}
    if left or report["judge_errors"]:
        left["judge_errors"] = report["judge_errors"]
        lines.append(Text("Left out: " + ", ".join(f"{k} {v}" for k, v in left.items()),
                          style="dim"))  # fmt: skip
    lines.append(Text(f"audit {report['audit_id']} stored", style="dim"))
    return Group(head, cal, *lines)
