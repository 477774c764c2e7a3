"""Runs as things a user manages: list them with filters, show one, remove one.

A store collects dozens of runs in a day; ids are timestamps, so runs carry an optional name
(unique in the store) and tags, and every command that takes a run accepts either. Removing a run
forgets its record and its item list; its answers and grades stay in the content-keyed cache
(another run may share them, and they make the next run free) unless pruning is asked for, which
deletes only what no remaining run still points at.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .store import RunInfo, Store
from .types import UsageError

STATUSES = ("running", "complete", "incomplete", "interrupted", "failed")


@dataclass
class RunFilter:
    """Which runs `codal-eval runs` lists; empty fields match everything.

    `model` and `judge` match a substring of the spec (case-insensitive), `task` a task the run
    evaluated, `tag` every given tag.
    """

    model: str | None = None
    task: str | None = None
    judge: str | None = None
    tags: Sequence[str] = ()
    status: str | None = None
    name: str | None = None

    def matches(self, r: RunInfo) -> bool:
        if self.model and self.model.lower() not in r.model.lower():
            return False
        if self.judge and self.judge.lower() not in (r.judge or "").lower():
            return False
        if self.task and self.task not in r.config.tasks:
            return False
        if self.status and r.status != self.status:
            return False
        if self.name and self.name.lower() not in (r.name or "").lower():
            return False
        return all(t in r.tags for t in self.tags)


def list_runs(
    store: Store, flt: RunFilter | None = None, limit: int | None = None
) -> list[RunInfo]:
    """Matching runs, newest first."""
    flt = flt or RunFilter()
    out = [r for r in reversed(store.runs()) if flt.matches(r)]
    return out[:limit] if limit else out


@dataclass
class Removed:
    run_id: str
    name: str | None
    items: int
    generations: int = 0
    grades: int = 0
    kept_shared: list[str] = field(default_factory=list)


def remove_run(store: Store, ref: str, prune: bool = False) -> Removed:
    """Delete a run's record and item list; with `prune`, also the answers and grades (and the
    judge calls behind those grades) that no other run points at."""
    info = store.run(ref)
    if info.status == "running":
        raise UsageError(f"run {info.label} is still running; stop it first")
    with store.transaction() as c:
        refs = c.execute(
            "SELECT gen_key, grade_key FROM run_items WHERE run_id = ?", (info.run_id,)
        ).fetchall()
        gen_keys = {r["gen_key"] for r in refs}
        grade_keys = {r["grade_key"] for r in refs if r["grade_key"]}
        c.execute("DELETE FROM run_items WHERE run_id = ?", (info.run_id,))
        c.execute("DELETE FROM runs WHERE run_id = ?", (info.run_id,))
        out = Removed(info.run_id, info.name, len(refs))
        if not prune:
            return out
        used_gens = {r[0] for r in c.execute("SELECT DISTINCT gen_key FROM run_items")}
        used_grades = {r[0] for r in c.execute("SELECT DISTINCT grade_key FROM run_items") if r[0]}
        drop_grades = sorted(grade_keys - used_grades)
        judge_calls = set()
        for key in drop_grades:
            row = c.execute("SELECT details FROM grades WHERE key = ?", (key,)).fetchone()
            rk = json.loads(row["details"] or "{}").get("request_key") if row else None
            if rk:
                judge_calls.add(rk)
            c.execute("DELETE FROM grades WHERE key = ?", (key,))
        out.grades = len(drop_grades)
        if judge_calls:  # a judge call another remaining grade was built from stays
            still = {
                r[0]
                for r in c.execute("SELECT json_extract(details, '$.request_key') FROM grades")
                if r[0]
            }
            judge_calls -= still
        drop_gens = sorted((gen_keys - used_gens) | judge_calls)
        for key in drop_gens:
            c.execute("DELETE FROM generations WHERE key = ?", (key,))
        out.generations = len(drop_gens)
        out.kept_shared = sorted(gen_keys & used_gens)
    return out


def when(created: float) -> str:
    """`2026-12-01 14:03`: a run's start in local time, as its id spells it."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(created))


def headline(r: RunInfo) -> list[tuple[str, str]]:
    """(task, shown value) of each task's headline metric in the run's stored summary."""
    out = []
    for task, t in (r.record.summary.get("tasks") or {}).items():
        metrics = list((t.get("metrics") or {}).values())
        if metrics:
            best = next((m for m in metrics if m.get("headline")), metrics[0])
            out.append((task, show_value(best)))
    return out


def show_value(m: dict[str, Any]) -> str:
    v = m.get("value")
    if v is None:
        return "–"
    return f"{100 * v:.1f}%" if m.get("percent") else f"{v:.2f}"


def select(infos: Sequence[RunInfo], flt: RunFilter, latest: bool = False) -> list[RunInfo]:
    """The runs a leaderboard shows: those matching `flt` (in store order); with `latest`,
    only each model's newest complete run."""
    chosen = [r for r in infos if flt.matches(r)]
    if not latest:
        return chosen
    newest: dict[str, RunInfo] = {}
    for r in chosen:
        if r.status == "complete" and (
            r.model not in newest or r.created >= newest[r.model].created
        ):
            newest[r.model] = r
    keep = {r.run_id for r in newest.values()}
    return [r for r in chosen if r.run_id in keep]
