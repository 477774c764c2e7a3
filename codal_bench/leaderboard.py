"""The leaderboard: every complete run in the store, ranked only against runs it can be compared to.

A CODAL score means something only next to scores from the same judge, reference column, judge
templates, candidate prompts, generation settings, data and items; a pass@k only next to runs with
the same HumanEval variant, tasks, samples and sampling. So runs are split into groups by exactly
those fields and each group is its own table: nothing ranks across groups.

Rank uncertainty comes from a seeded bootstrap over items, drawn once per group and shared by all
its runs (they answered the same items), so a resample that is hard for one model is hard for all.
Published numbers from the paper sit beside our runs for context and never enter our ranks.

numpy/pandas are imported inside functions: `codal-eval --help` must stay fast.
"""

from __future__ import annotations

import fnmatch
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .leaderboard_stats import HE_LABEL, codal_stats, humaneval_stats
from .resources import data_dir
from .scores import (
    CODAL_TASK,
    HUMANEVAL_TASKS,
    PREFERENCES,
    codal_item_ratings,
    humaneval_item_counts,
)
from .stats import pass_at_k
from .store import RunInfo, Store
from .types import CodalError, content_hash

if TYPE_CHECKING:
    import pandas as pd

FORMATS = ("terminal", "markdown", "csv", "json", "html")

# Only the columns scores.py reads: answers and judge transcripts would make loading 50 runs slow.
_ROWS_SQL = """
SELECT i.task, i.item_id, i.grp, d.status, d.rating,
       CASE WHEN i.task = 'codal-bench' THEN NULL ELSE json_extract(d.details, '$.base') END,
       CASE WHEN i.task = 'codal-bench' THEN NULL ELSE json_extract(d.details, '$.plus') END
FROM run_items i LEFT JOIN grades d ON d.key = i.grade_key
WHERE i.run_id = ?
"""


@dataclass
class RunData:
    """One complete run reduced to item-level numbers."""

    info: RunInfo
    codal_pref: dict[str, str]  # item_id -> preference, for every item the run has rows for
    codal: dict[str, dict[str, float]]  # preference -> item_id -> rating (published rule)
    he: dict[str, dict[str, dict[str, tuple[int, int]]]]  # task -> base|plus -> id -> (n, c)


@dataclass
class Table:
    """One group of comparable runs (plus the published rows attached to it)."""

    id: str
    kind: str  # "codal" | "humaneval"
    title: str
    meta: dict[str, Any]
    frame: pd.DataFrame
    metrics: list[str]  # columns that carry `<m>_lo` / `<m>_hi` interval columns
    context: list[str]  # point-only columns shown for context (pass@1 beside CODAL scores)
    rank_by: str
    published_only: bool = False


@dataclass
class Leaderboard:
    tables: list[Table]
    skipped: list[dict[str, str]]
    n_boot: int
    seed: int
    generated: str
    source: dict[str, str] = field(default_factory=dict)


# -- loading ---------------------------------------------------------------------------------


def load_run(store: Store, info: RunInfo) -> RunData:
    rows: list[dict[str, Any]] = []
    pref: dict[str, str] = {}
    for task, item, grp, status, rating, base, plus in store.conn.execute(
        _ROWS_SQL, (info.run_id,)
    ):
        rows.append(
            {
                "task": task,
                "item_id": item,
                "group": grp,
                "status": status,
                "rating": rating,
                "details": {"base": base, "plus": plus},
            }
        )
        if task == CODAL_TASK:
            pref[item] = grp
    he: dict[str, dict[str, dict[str, tuple[int, int]]]] = defaultdict(dict)
    for key, counts in humaneval_item_counts(rows).items():
        task, part = key.rsplit("/", 1)
        he[task][part] = counts
    return RunData(info, pref, codal_item_ratings(rows), dict(he))


def load_published() -> dict[str, Any]:
    path = data_dir("leaderboard") / "published.yaml"
    try:
        data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CodalError(f"published rows {path} cannot be read: {exc}") from exc
    return data


def _items(run: RunData, task: str, fallback: list[str]) -> list[str]:
    """The item ids the run planned (from its record), so a failed item still counts as asked."""
    planned = (run.info.record.get("items") or {}).get(task)
    return sorted(planned) if planned else sorted(fallback)


def _codal_key(run: RunData) -> dict[str, Any]:
    c = run.info.config
    t = (c.get("tasks") or {}).get(CODAL_TASK) or {}
    return {
        "judge": c.get("judge"),
        "judge_identity": c.get("judge_identity"),
        "judge_sampling": c.get("judge_sampling"),
        "reference": c.get("reference"),
        "templates_sha256": (c.get("judge_templates") or {}).get("sha256"),
        "prompt_set_sha256": (t.get("prompt_set") or {}).get("sha256"),
        "sampling": t.get("sampling"),
        "samples": t.get("samples"),
        "data_sha256": (t.get("data") or {}).get("data_sha256"),
        "items": content_hash(_items(run, CODAL_TASK, list(run.codal_pref))),
    }


def _he_key(run: RunData, task: str) -> dict[str, Any]:
    t = (run.info.config.get("tasks") or {}).get(task) or {}
    ids = list(run.he[task].get("base", {}))
    return {
        "task": task,
        "items": content_hash(_items(run, task, ids)),
        "samples": t.get("samples"),
        "sampling": t.get("sampling"),
        "data_sha256": (t.get("data") or {}).get("data_sha256"),
    }


def _he_points(run: RunData) -> dict[str, float]:
    """pass@1 of a run for context beside its CODAL scores (the full variant if it has both)."""
    for task in HUMANEVAL_TASKS:
        if task in run.he:
            return {
                f"{HE_LABEL[part]}@1": sum(pass_at_k(n, c, 1) for n, c in cnt.values()) / len(cnt)
                for part, cnt in run.he[task].items()
                if cnt
            }
    return {}


def _run_columns(run: RunData) -> dict[str, Any]:
    c = run.info.config
    return {
        "published": False,
        "model": run.info.model,
        "run_id": run.info.run_id,
        "judge": c.get("judge"),
        "reference": c.get("reference"),
        "templates": ((c.get("judge_templates") or {}).get("sha256") or "")[:12] or None,
        "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime(run.info.created)),
    }


def _frame(rows: list[dict[str, Any]], rank_by: str) -> pd.DataFrame:
    """Rows ordered by the ranked score, published rows interleaved where their score falls."""
    import pandas as pd

    df = pd.DataFrame(rows)
    for c in ("rank", "rank_lo", "rank_hi", "tie", "n_items"):
        if c not in df:
            df[c] = float("nan")
    df["tie"] = df["tie"].eq(True)  # published rows: never tied, never ranked
    if rank_by in df:
        df = df.sort_values(rank_by, ascending=False, na_position="last", kind="stable")
    return df.reset_index(drop=True)


def _published_rows(
    entries: list[dict[str, Any]], he_pub: dict[str, dict[str, Any]], setting: dict[str, Any]
) -> list[dict[str, Any]]:
    out = []
    for e in entries:
        row = {k: v for k, v in e.items() if k != "model"}
        row.update({k: v for k, v in he_pub.get(e["model"], {}).items() if k.endswith("@1")})
        row.update(
            published=True,
            model=e["model"],
            run_id=None,
            judge=setting.get("judge_family"),
            reference=setting.get("reference"),
            templates=None,
            date=setting.get("date"),
            setting=setting.get("label"),
        )
        out.append(row)
    return out


def _he_published(pub: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Published pass@k rows by model, converted from the paper's percent to fractions."""
    he = pub.get("humaneval") or {}
    scale = 0.01 if he.get("unit") == "percent" else 1.0
    return {
        r["model"]: {k: (v * scale if k != "model" else v) for k, v in r.items()}
        for r in he.get("rows", [])
    }


def _setting_for(
    judge: str | None, reference: str | None, pub: dict[str, Any]
) -> dict[str, Any] | None:
    for s in pub.get("judge_settings", []):
        if judge and reference == s.get("reference"):
            if any(fnmatch.fnmatchcase(judge, pat) for pat in s.get("judge_match", [])):
                return dict(s)
    return None


def compile_leaderboard(store: Store, *, n_boot: int = 10000, seed: int = 0) -> Leaderboard:
    """Every complete run, grouped for comparability, with bootstrap intervals and rank intervals.

    Runs that are running, interrupted or failed are not ranked (their items are partial); they
    are listed in `Leaderboard.skipped` so every format can say why a run is missing.
    """
    if n_boot < 1:
        raise CodalError("n_boot must be at least 1")
    pub = load_published()
    runs: list[RunData] = []
    skipped: list[dict[str, str]] = []
    for info in store.runs():
        if info.status == "complete":
            runs.append(load_run(store, info))
        else:
            skipped.append({"run_id": info.run_id, "model": info.model, "status": info.status})
    codal: dict[str, tuple[dict[str, Any], list[RunData]]] = {}
    he: dict[str, tuple[dict[str, Any], list[RunData]]] = {}
    for r in runs:
        if r.codal_pref:
            key = _codal_key(r)
            codal.setdefault(content_hash(key)[:8], (key, []))[1].append(r)
        for task in r.he:
            key = _he_key(r, task)
            he.setdefault(content_hash(key)[:8], (key, []))[1].append(r)
    tables = _codal_tables(codal, pub, n_boot, seed) + _he_tables(he, pub, n_boot, seed)
    generated = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return Leaderboard(tables, skipped, n_boot, seed, generated, dict(pub.get("source") or {}))


Groups = dict[str, tuple[dict[str, Any], list[RunData]]]


def _largest_first(groups: Groups) -> list[tuple[str, tuple[dict[str, Any], list[RunData]]]]:
    return sorted(groups.items(), key=lambda kv: (-len(kv[1][1]), kv[0]))


def _codal_tables(groups: Groups, pub: dict[str, Any], n_boot: int, seed: int) -> list[Table]:
    he_pub = _he_published(pub)
    tables: list[Table] = []
    used: set[str] = set()
    for gid, (key, members) in _largest_first(groups):
        metrics, cols = codal_stats(members, n_boot, seed)
        rows = [
            {**_run_columns(r), **_he_points(r),
             "n_items": len(_items(r, CODAL_TASK, list(r.codal_pref))),
             **{c: v[j].item() for c, v in cols.items()}}
            for j, r in enumerate(members)
        ]  # fmt: skip
        setting = _setting_for(key["judge"], key["reference"], pub)
        if setting:
            used.add(setting["id"])
            rows += _published_rows(setting.get("rows", []), he_pub, setting)
        meta = {**key, "runs": len(members), "items": rows[0]["n_items"],
                "published_setting": setting["label"] if setting else None}  # fmt: skip
        title = f"CODAL-Bench · judge {key['judge']} · reference {key['reference']}"
        tables.append(_table(gid, "codal", title, meta, rows, metrics, "average"))
    for s in pub.get("judge_settings", []):
        if s["id"] not in used:
            rows = _published_rows(s.get("rows", []), he_pub, s)
            metrics = [m for m in [*PREFERENCES, "average"] if any(m in r for r in rows)]
            meta = {"judge": s.get("judge_family"), "reference": s.get("reference"),
                    "published_setting": s.get("label"), "runs": 0}  # fmt: skip
            title = f"CODAL-Bench · published only · {s.get('label')}"
            tables.append(
                _table(f"pub-{s['id']}", "codal", title, meta, rows, metrics, "average", True)
            )
    return tables


def _he_tables(groups: Groups, pub: dict[str, Any], n_boot: int, seed: int) -> list[Table]:
    """One table per HumanEval group; the paper's pass@k sit beside the full variant only."""
    he_pub = _he_published(pub)
    setting = pub.get("humaneval") or {}
    tables: list[Table] = []
    attached = False
    for gid, (key, members) in _largest_first(groups):
        task = key["task"]
        metrics, cols = humaneval_stats(members, task, n_boot, seed)
        rows = [
            {**_run_columns(r), "judge": None, "reference": None, "templates": None,
             "n_items": len(_items(r, task, list(r.he[task].get("base", {})))),
             **{c: v[j].item() for c, v in cols.items()}}
            for j, r in enumerate(members)
        ]  # fmt: skip
        here = task == setting.get("variant")
        if here:
            attached = True
            rows += [_he_pub_row(m, r, setting) for m, r in he_pub.items()]
        meta = {**key, "runs": len(members), "items": rows[0]["n_items"],
                "published_setting": setting.get("label") if here else None}  # fmt: skip
        s = key["sampling"] or {}
        title = (
            f"{task} · {rows[0]['n_items']} tasks · n={key['samples']} · "
            f"T={s.get('temperature')} top_p={s.get('top_p')} max_tokens={s.get('max_tokens')}"
        )
        tables.append(_table(gid, "humaneval", title, meta, rows, metrics, "humaneval+@1"))
    if he_pub and not attached:
        rows = [_he_pub_row(m, r, setting) for m, r in he_pub.items()]
        metrics = [m for m in ("humaneval@1", "humaneval+@1", "humaneval@10", "humaneval+@10")
                   if any(m in r for r in rows)]  # fmt: skip
        meta = {"task": setting.get("variant"), "published_setting": setting.get("label"),
                "runs": 0}  # fmt: skip
        title = f"HumanEval+ · published only · {setting.get('label')}"
        tables.append(
            _table("pub-humaneval", "humaneval", title, meta, rows, metrics, "humaneval+@1", True)
        )
    return tables


def _table(gid: str, kind: str, title: str, meta: dict[str, Any], rows: list[dict[str, Any]],
           metrics: list[str], rank_by: str, published_only: bool = False) -> Table:  # fmt: skip
    ctx = [] if kind != "codal" else [c for c in ("humaneval@1", "humaneval+@1")
                                      if any(c in r for r in rows)]  # fmt: skip
    return Table(gid, kind, title, meta, _frame(rows, rank_by), metrics, ctx, rank_by,
                 published_only)  # fmt: skip


def _he_pub_row(model: str, row: dict[str, Any], setting: dict[str, Any]) -> dict[str, Any]:
    return {**{k: v for k, v in row.items() if k != "model"}, "published": True, "model": model,
            "run_id": None, "judge": None, "reference": None, "templates": None,
            "date": setting.get("date"), "setting": setting.get("label")}  # fmt: skip


def render(lb: Leaderboard, fmt: str) -> str:
    """The leaderboard as text in one format (the terminal format has ANSI colour on a tty)."""
    from . import leaderboard_render

    return leaderboard_render.render(lb, fmt)


def write_all(lb: Leaderboard, out_dir: Path) -> list[Path]:
    """leaderboard.md / .csv / .json / .html in out_dir; returns the paths written."""
    from . import leaderboard_render

    return leaderboard_render.write_all(lb, out_dir)
