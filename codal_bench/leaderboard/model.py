"""The leaderboard: every complete run in the store, ranked only against runs it can be compared to.

A task's scores mean something only next to scores made under the same conditions, and
`codal_bench.comparable` says which those are; runs are split into groups by that key, per task,
and each group is its own table: nothing ranks across groups. What the columns are, how an item
scores and which metric ranks come from the task's scoring face, so a plugin task gets tables of
its own without this module knowing it.

Rank uncertainty comes from a seeded bootstrap over items, drawn once per stratum of a group and
shared by all its runs and metrics (they answered the same items), so a resample that is hard for
one model is hard for all. Published numbers sit beside comparable runs for context and never
enter a rank.

numpy/pandas are imported inside functions: `codal-eval --help` must stay fast.
"""

from __future__ import annotations

import fnmatch
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .. import comparable, registry
from ..resources import data_dir
from ..scoring import Metric, MetricScores
from ..store import RunInfo, Store
from ..types import CodalError, UsageError, content_hash

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

FORMATS = ("terminal", "markdown", "csv", "json", "html")

# Only what scoring reads: answers and judge transcripts would make loading 50 runs slow.
_ROWS_SQL = """
SELECT i.task, i.item_id, i.grp, i.sample_index, i.repeat, d.status, d.rating, d.details,
       g.error
FROM run_items i
LEFT JOIN grades d ON d.key = i.grade_key
LEFT JOIN generations g ON g.key = i.gen_key
WHERE i.run_id = ?
"""


@dataclass
class RunScores:
    """One task of one complete run, reduced to its metrics."""

    info: RunInfo
    task: str
    scores: dict[str, MetricScores]
    items: list[str]


@dataclass
class Table:
    """One group of comparable runs of one task (plus the published rows attached to it)."""

    id: str
    kind: str  # the task's name
    title: str
    meta: dict[str, Any]
    frame: pd.DataFrame
    metrics: list[str]  # columns that carry `<m>_lo` / `<m>_hi` interval columns
    context: list[str]  # point-only columns: the runs' headline metrics on their other tasks
    rank_by: str
    published_only: bool = False
    labels: dict[str, Metric] = field(default_factory=dict)


@dataclass
class Leaderboard:
    tables: list[Table]
    skipped: list[dict[str, str]]
    n_boot: int
    seed: int
    generated: str
    source: dict[str, str] = field(default_factory=dict)


# -- loading ---------------------------------------------------------------------------------


def load_run(store: Store, info: RunInfo) -> dict[str, RunScores]:
    """task -> its scores, for every task of the run that is installed."""
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for task, item, grp, k, rep, status, rating, details, error in store.conn.execute(
        _ROWS_SQL, (info.run_id,)
    ):
        rows[task].append(
            {
                "task": task, "item_id": item, "group": grp, "sample_index": k, "repeat": rep,
                "status": status, "rating": rating, "gen_error": error,
                "details": json.loads(details) if details else {},
            }
        )  # fmt: skip
    out = {}
    for task, trows in rows.items():
        scores = registry.scoring(task).score(trows)
        items = info.record.items.get(task) or sorted({r["item_id"] for r in trows})
        out[task] = RunScores(info, task, {s.metric.name: s for s in scores}, sorted(items))
    return out


def load_published() -> dict[str, Any]:
    """The published rows: leaderboard/published.yaml, or the file `CODAL_BENCH_PUBLISHED` names
    (a team's own reference rows)."""
    given = os.environ.get("CODAL_BENCH_PUBLISHED")
    path = Path(given) if given else data_dir("leaderboard") / "published.yaml"
    try:
        data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CodalError(f"published rows {path} cannot be read: {exc}") from exc
    return data


def _fits(want: Any, got: Any) -> bool:
    if isinstance(want, list):  # shell-style patterns
        return any(fnmatch.fnmatchcase(str(got), str(p)) for p in want)
    return bool(got == want)


def unmet(
    entry: dict[str, Any],
    key: dict[str, Any],
    protocols: dict[str, Any],
    data: dict[str, Any] | None = None,
) -> list[str]:
    """The settings in which a table differs from what a published entry requires (empty: the
    entry's rows may stand beside the table's runs). `data` holds facts every run of the table
    recorded alike (`_common_data`): the dataset revision read, matched as `dataset.revision`,
    and the hash of the data's content, `data.content_sha256`. They are not part of the
    comparability key (the data's hash is), so that runs of the same data stay comparable
    whatever commit they were read at. A required value left unrecorded (null) is never met: a
    pin nobody wrote down cannot be checked."""
    if entry.get("task") != key["task"]:
        return ["task"]
    facts = {**comparable.flat(key, whole=()), **(data or {})}
    out = [n for n, want in (entry.get("match") or {}).items() if not _fits(want, facts.get(n))]
    name = entry.get("protocol")
    if name is not None:
        proto = protocols.get(str(name))
        if not isinstance(proto, dict):
            return [*out, f"protocol {name!r} (not defined)"]
        if proto.get("task", entry.get("task")) != entry.get("task"):
            return [*out, f"protocol {name!r} (for task {proto.get('task')!r})"]
        for n, want in (proto.get("require") or {}).items():
            if want is None or not _fits(want, facts.get(n)):
                out.append(n)
    return out


def _published_rows(entry: dict[str, Any]) -> list[dict[str, Any]]:
    scale = 0.01 if entry.get("unit") == "percent" else 1.0
    cols = entry.get("columns") or {}
    out = []
    for e in entry.get("rows", []):
        row = {k: (v * scale if isinstance(v, int | float) else v) for k, v in e.items()}
        row.update(
            published=True, run_id=None, judge=cols.get("judge"),
            reference=cols.get("reference"), templates=None, date=entry.get("date"),
            setting=entry.get("label"),
        )  # fmt: skip
        out.append(row)
    return out


# -- statistics of one group -------------------------------------------------------------------


def group_stats(
    members: list[RunScores], n_boot: int, seed: int
) -> tuple[list[str], dict[str, Metric], dict[str, np.ndarray]]:
    """Point values, intervals and ranks of one group: column -> one value per run.

    Items are resampled within each stratum; one draw per stratum, in the order the metrics
    first need them, is shared by every metric and run of the group.
    """
    import numpy as np

    from ..stats import draw_counts, percentile_interval, rank_intervals, resampled_means

    rng = np.random.default_rng(seed)
    labels: dict[str, Metric] = {}
    for m in members:
        for s in m.scores.values():
            labels.setdefault(s.metric.name, s.metric)
    draws: dict[str, tuple[list[str], np.ndarray]] = {}
    cols: dict[str, np.ndarray] = {}
    boots: dict[str, np.ndarray] = {}
    for name in labels:
        point = np.array([m.scores[name].value if name in m.scores else np.nan for m in members])
        boot = np.zeros((n_boot, len(members)))
        weights = next(m.scores[name].weights for m in members if name in m.scores)
        for stratum, w in weights.items():
            if stratum not in draws:
                ids = sorted({i for m in members for i in _stratum_items(m, stratum)})
                draws[stratum] = (ids, draw_counts(rng, len(ids), n_boot))
            ids, counts = draws[stratum]
            x = np.array([[_item(m, name, stratum, i) for m in members] for i in ids], dtype=float)
            boot += w * resampled_means(counts, x)
        cols[name] = point
        cols[name + "_lo"], cols[name + "_hi"] = percentile_interval(boot)
        boots[name] = boot
    rank_by = next((n for n, m in labels.items() if m.headline), None)
    if rank_by is not None:
        cols.update(rank_intervals(cols[rank_by], boots[rank_by]))
    return list(labels), labels, cols


def _stratum_items(run: RunScores, stratum: str) -> set[str]:
    return {i for s in run.scores.values() for i in s.strata.get(stratum, ())}


def _item(run: RunScores, metric: str, stratum: str, item: str) -> float:
    s = run.scores.get(metric)
    v = s.strata.get(stratum, {}).get(item) if s is not None else None
    return float("nan") if v is None else float(v)


# -- tables ------------------------------------------------------------------------------------


def compile_leaderboard(
    store: Store,
    *,
    n_boot: int = 10000,
    seed: int = 0,
    select: Callable[[list[RunInfo]], list[RunInfo]] | None = None,
    tasks: Sequence[str] | None = None,
) -> Leaderboard:
    """Every complete run, grouped for comparability, with bootstrap intervals and rank intervals.

    Runs that are not complete are not ranked (their items are partial); they are listed in
    `Leaderboard.skipped` so every format can say why a run is missing. So are runs of a task
    that is not installed here. `select` narrows the runs and `tasks` the tables (filters).
    """
    if n_boot < 1:
        raise CodalError("n_boot must be at least 1")
    pub = load_published()
    by_run: dict[str, dict[str, RunScores]] = {}
    skipped: list[dict[str, str]] = []
    groups: dict[str, tuple[dict[str, Any], list[RunScores]]] = {}
    infos = store.runs()
    for info in select(infos) if select is not None else infos:
        if info.status != "complete":
            skipped.append({"run_id": info.run_id, "model": info.model, "status": info.status})
            continue
        if info.config.command == "bundle":  # another store's results, imported as a baseline
            skipped.append({"run_id": info.run_id, "model": info.model, "status": "imported"})
            continue
        try:
            by_run[info.run_id] = load_run(store, info)
        except UsageError as exc:
            skipped.append({"run_id": info.run_id, "model": info.model, "status": str(exc)})
            continue
        for task, rs in by_run[info.run_id].items():
            if task not in info.config.tasks or (tasks and task not in tasks):
                continue
            key = comparable.key(info.config, task, rs.items)
            groups.setdefault(content_hash(key)[:8], (key, []))[1].append(rs)
    entries = [e for e in pub.get("tables") or [] if not tasks or e.get("task") in tasks]
    protocols = dict(pub.get("protocols") or {})
    used: set[str] = set()
    nearest: dict[str, list[str]] = {}
    tables = []
    ordered = sorted(groups.items(), key=lambda kv: (kv[1][0]["task"], -len(kv[1][1]), kv[0]))
    for gid, (key, members) in ordered:
        attached = []
        common = _common_data(members)
        for e in entries:
            why = unmet(e, key, protocols, common)
            if not why:
                attached.append(e)
            elif e.get("task") == key["task"]:  # remember the nearest miss, to say why
                old = nearest.get(str(e["id"]))
                nearest[str(e["id"])] = why if old is None or len(why) < len(old) else old
        used |= {str(e["id"]) for e in attached}
        table = _group_table(gid, key, members, attached, by_run, entries, n_boot, seed)
        if key.get("judge"):
            table.meta["judge_audit"] = judge_audit(store, key["judge"])
        tables.append(table)
    for e in entries:
        if str(e["id"]) not in used:
            tables.append(_published_table(e, nearest.get(str(e["id"]))))
    generated = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return Leaderboard(tables, skipped, n_boot, seed, generated, dict(pub.get("source") or {}))


def _common_data(members: list[RunScores]) -> dict[str, Any]:
    """What every run of a group recorded alike about its data (a value that differs, or that
    a run did not record, is None): the dataset revision read and the content hash."""

    def common(values: set[Any]) -> Any:
        return values.pop() if len(values) == 1 and None not in values else None

    data = [m.info.config.tasks[m.task].data or {} for m in members]
    return {
        "dataset.revision": common({(d.get("dataset") or {}).get("revision") for d in data}),
        "data.content_sha256": common({d.get("content_sha256") or None for d in data}),
    }


def _group_table(
    gid: str,
    key: dict[str, Any],
    members: list[RunScores],
    attached: list[dict[str, Any]],
    by_run: dict[str, dict[str, RunScores]],
    entries: list[dict[str, Any]],
    n_boot: int,
    seed: int,
) -> Table:
    metrics, labels, cols = group_stats(members, n_boot, seed)
    context: list[str] = []
    rows = []
    for j, r in enumerate(members):
        row = {**_run_columns(r, key), "n_items": len(r.items)}
        for other, rs in by_run[r.info.run_id].items():
            if other != r.task:
                for s in rs.scores.values():
                    if s.metric.headline:
                        labels.setdefault(s.metric.name, s.metric)
                        row[s.metric.name] = s.value
                        context += [s.metric.name] if s.metric.name not in context else []
        row.update({c: v[j].item() for c, v in cols.items()})
        rows.append(row)
    others = [x for e in entries if e.get("task") != key["task"] for x in _published_rows(e)]
    for e in attached:
        for pub in _published_rows(e):
            for c in context:  # the same model's published number on the other task
                hit = next((x for x in others if x["model"] == pub["model"] and c in x), None)
                if hit is not None:
                    pub.setdefault(c, hit[c])
            rows.append(pub)
    rank_by = next((n for n in metrics if labels[n].headline), metrics[0] if metrics else "")
    setting = "; ".join(str(e.get("label")) for e in attached) or None
    meta = {**key, "runs": len(members), "items": len(members[0].items),
            "published_setting": setting}  # fmt: skip
    return Table(gid, key["task"], _title(key), meta, _frame(rows, rank_by), metrics, context,
                 rank_by, False, labels)  # fmt: skip


def judge_audit(store: Store, judge: dict[str, Any]) -> dict[str, Any] | None:
    """The newest audit of a table's judge (same identity and template hash), in brief.

    An audit made with other templates does not count: they are a different judge.
    """
    found = store.latest_audit(judge.get("identity") or {}, str(judge.get("templates_sha256")))
    if found is None:
        return None
    r = found["report"]
    return {
        "auroc": found["auroc"],
        "interval": r.get("auroc_interval"),
        "answers": r.get("answers"),
        "preference": r.get("preference"),
        "source": found["source"],
        "audit_id": found["audit_id"],
        "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime(found["created"])),
    }


def _published_table(e: dict[str, Any], unmet_by_nearest: list[str] | None) -> Table:
    """The paper panel of one published entry: its rows, unranked, and why no table of ours has
    them (the settings the nearest table differs in, or no run of the task at all)."""
    rows = _published_rows(e)
    skip = {"model", "published", "run_id", "judge", "reference", "templates", "date", "setting"}
    metrics = list(dict.fromkeys(k for r in rows for k in r if k not in skip))
    meta = {"task": e.get("task"), "published_setting": e.get("label"), "runs": 0,
            "not_beside_runs_because": unmet_by_nearest or ["no complete run of this task"],
            **(e.get("columns") or {})}  # fmt: skip
    title = f"{e.get('task')} · paper panel (published, unranked) · {e.get('label')}"
    labels = {m: Metric(m, m, percent=e.get("unit") == "percent") for m in metrics}
    rank_by = str(e.get("rank_by") or (metrics[-1] if metrics else ""))
    return Table(f"pub-{e['id']}", str(e.get("task")), title, meta, _frame(rows, rank_by),
                 metrics, [], rank_by, True, labels)  # fmt: skip


def _title(key: dict[str, Any]) -> str:
    parts = [str(key["task"])]
    j = key.get("judge")
    if j:
        parts += [f"judge {j.get('spec')}", f"reference {j.get('reference')}"]
    s = key.get("sampling") or {}
    parts += [
        f"{key['n_items']} items",
        f"n={key['samples']}",
        f"T={s.get('temperature')} top_p={s.get('top_p')} max_tokens={s.get('max_tokens')}",
    ]
    return " · ".join(parts)


def _run_columns(run: RunScores, key: dict[str, Any]) -> dict[str, Any]:
    j = key.get("judge") or {}
    return {
        "published": False,
        "model": run.info.model,
        "run_id": run.info.run_id,
        "name": run.info.name,
        "judge": j.get("spec"),
        "reference": j.get("reference"),
        "templates": (j.get("templates_sha256") or "")[:12] or None,
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
