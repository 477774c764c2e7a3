"""The runs of a store: what each run asked for, where its items point, and how it ended.

Runs only point at content keys (`run_items`), which is why a re-grade or a re-run shares every
answer and grade it can. A mixin of `Store`, kept apart from the content-keyed tables.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import RunConfig, RunRecord
from .types import CodalError, UsageError, canonical_json, content_hash


class StoreError(CodalError):
    """The store cannot be used (unreadable, newer, full, read-only) or has no such run:
    nothing could start (exit 4)."""

    exit_code = 4


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class RunInfo:
    run_id: str
    created: float
    updated: float
    status: str
    model: str
    judge: str | None
    config: RunConfig
    record: RunRecord
    name: str | None = None
    tags: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """What people call the run: its name, else its id."""
        return self.name or self.run_id


NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+@=:/-]{0,63}")


def check_name(name: str, what: str = "run name") -> str:
    """A run name or tag: 1-64 characters, no spaces, not `latest` (it names the newest run)."""
    if not NAME_RE.fullmatch(name) or name == "latest":
        raise UsageError(
            f"{what} {name!r}: use 1-64 letters, digits and . _ + @ = : / - (no spaces), "
            "starting with a letter or digit, and not 'latest'"
        )
    return name


@dataclass
class ItemRef:
    """Where one (item, sample, repeat) of a run points in the content-keyed tables."""

    task: str
    item_id: str
    group: str
    sample_index: int
    repeat: int
    gen_key: str
    grade_key: str | None


class RunTables:
    """Run bookkeeping; `Store` provides the connection and transactions."""

    conn: sqlite3.Connection
    path: Path

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def resume_or_new(
        self,
        model: str,
        judge: str | None,
        config: RunConfig,
        *,
        name: str | None = None,
        tags: Sequence[str] = (),
    ) -> str:
        """The unfinished run of exactly this config (same command, same settings), reopened;
        else a new run. A complete run is never reopened: re-running it makes a new one.

        A reopened run keeps its name (or takes `name`, if that is free) and gains `tags`."""
        digest = content_hash(config.to_dict())
        with self.transaction() as c:
            self._mark_dead_runs(c)
        for info in reversed(self.runs()):
            if info.status in ("incomplete", "interrupted", "failed", "invalid"):
                if content_hash(info.config.to_dict()) == digest:
                    if name is not None and name != info.name:
                        self.set_name(info.run_id, name)
                    if tags:
                        self.set_tags(info.run_id, [*info.tags, *tags])
                    owner = {"host": platform.node(), "pid": os.getpid()}
                    with self.transaction() as c:
                        c.execute(
                            "UPDATE runs SET status='running', updated=?, record=? WHERE run_id=?",
                            (time.time(), canonical_json({"owner": owner}), info.run_id),
                        )
                    return info.run_id
        return self.new_run(model, judge, config, name=name, tags=tags)

    def new_run(
        self,
        model: str,
        judge: str | None,
        config: RunConfig | dict[str, Any],
        run_id: str | None = None,
        *,
        name: str | None = None,
        tags: Sequence[str] = (),
    ) -> str:
        if isinstance(config, dict):  # an older or hand-written config: read as a stored one
            config = RunConfig.from_dict(config)
        run_id = run_id or time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        now = time.time()
        owner = {"host": platform.node(), "pid": os.getpid()}
        stored = canonical_json(config.to_dict())
        tag_list = sorted({check_name(t, "tag") for t in tags})
        with self.transaction() as c:
            self._mark_dead_runs(c)
            if name is not None:
                self._claim_name(c, check_name(name), stored)
            c.execute(
                "INSERT INTO runs(run_id, created, updated, status, model, judge, config, record,"
                " name, tags) VALUES(?,?,?,?,?,?,?,?,?,?)",
                (
                    run_id,
                    now,
                    now,
                    "running",
                    model,
                    judge,
                    stored,
                    canonical_json({"owner": owner}),
                    name,
                    json.dumps(tag_list),
                ),
            )
        return run_id

    def _claim_name(self, c: sqlite3.Connection, name: str, config: str) -> None:
        """Names are unique. Running the same thing again under its name (which the cache makes
        cheap) moves the name to the new run; a run of other settings keeps it: an error."""
        if c.execute("SELECT 1 FROM runs WHERE run_id = ?", (name,)).fetchone():
            raise UsageError(f"run name {name!r} is another run's id; pick another name")
        row = c.execute("SELECT run_id, model, config FROM runs WHERE name = ?", (name,)).fetchone()
        if row is None:
            return
        if row["config"] != config:
            raise UsageError(
                f"run name {name!r} is taken by run {row['run_id']} ({row['model']}), which ran "
                f"other settings; pick another name, or free it with `codal-eval runs rm {name}`"
            )
        c.execute("UPDATE runs SET name = NULL WHERE run_id = ?", (row["run_id"],))

    def set_name(self, run_id: str, name: str | None) -> None:
        """Name (or, with None, unname) an existing run; a name held by another run is an error."""
        with self.transaction() as c:
            if name is not None:
                check_name(name)
                held = c.execute("SELECT run_id FROM runs WHERE name = ?", (name,)).fetchone()
                if held is not None and held["run_id"] != run_id:
                    raise UsageError(f"run name {name!r} is taken by run {held['run_id']}")
            c.execute("UPDATE runs SET name = ? WHERE run_id = ?", (name, run_id))

    def set_tags(self, run_id: str, tags: Sequence[str]) -> None:
        tag_list = sorted({check_name(t, "tag") for t in tags})
        with self.transaction() as c:
            c.execute("UPDATE runs SET tags = ? WHERE run_id = ?", (json.dumps(tag_list), run_id))

    def _mark_dead_runs(self, c: sqlite3.Connection) -> None:
        """A run whose process died (kill -9, power loss) on this host is marked interrupted."""
        for r in c.execute("SELECT run_id, record FROM runs WHERE status='running'").fetchall():
            owner = json.loads(r["record"] or "{}").get("owner") or {}
            if owner.get("host") == platform.node() and not _pid_alive(int(owner.get("pid", 0))):
                c.execute(
                    "UPDATE runs SET status='interrupted', updated=? WHERE run_id=?",
                    (time.time(), r["run_id"]),
                )

    def update_run(
        self,
        run_id: str,
        *,
        status: str | None = None,
        record: RunRecord | dict[str, Any] | None = None,
    ) -> None:
        if isinstance(record, dict):
            record = RunRecord.from_dict(record)
        with self.transaction() as c:
            if status is not None:
                c.execute(
                    "UPDATE runs SET status=?, updated=? WHERE run_id=?",
                    (status, time.time(), run_id),
                )
            if record is not None:
                c.execute(
                    "UPDATE runs SET record=?, updated=? WHERE run_id=?",
                    (canonical_json(record.to_dict()), time.time(), run_id),
                )

    @contextmanager
    def running(self, run_id: str) -> Iterator[None]:
        """Mark the run interrupted (Ctrl-C) or failed (any other error) if the block raises."""
        try:
            yield
        except KeyboardInterrupt:
            self.update_run(run_id, status="interrupted")
            raise
        except BaseException:
            self.update_run(run_id, status="failed")
            raise

    def put_run_items(self, run_id: str, items: Sequence[ItemRef]) -> None:
        with self.transaction() as c:
            c.executemany(
                "INSERT OR REPLACE INTO run_items VALUES(?,?,?,?,?,?,?,?)",
                [
                    (
                        run_id,
                        i.task,
                        i.item_id,
                        i.group,
                        i.sample_index,
                        i.repeat,
                        i.gen_key,
                        i.grade_key,
                    )
                    for i in items
                ],
            )

    def runs(self, status: str | None = None) -> list[RunInfo]:
        sql = "SELECT * FROM runs"
        args: tuple[Any, ...] = ()
        if status:
            sql += " WHERE status=?"
            args = (status,)
        return [_run_info(r) for r in self.conn.execute(sql + " ORDER BY created", args)]

    def run(self, run_id: str) -> RunInfo:
        """A run by id, by name, or by a unique prefix of its id; `latest` is the newest run."""
        named = None
        if run_id != "latest" and self._has_names():
            named = self.conn.execute("SELECT * FROM runs WHERE name = ?", (run_id,)).fetchone()
        if named is not None and run_id != named["run_id"]:
            exact_id = self.conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,))
            if exact_id.fetchone() is None:
                return _run_info(named)
        if run_id == "latest":
            r = self.conn.execute("SELECT * FROM runs ORDER BY created DESC LIMIT 1").fetchone()
        else:
            rows = self.conn.execute(
                "SELECT * FROM runs WHERE run_id = ? OR run_id LIKE ?", (run_id, run_id + "%")
            ).fetchall()
            exact = [x for x in rows if x["run_id"] == run_id]
            if len(rows) > 1 and not exact:
                raise StoreError(f"run id {run_id!r} is ambiguous: {len(rows)} runs match")
            r = exact[0] if exact else (rows[0] if rows else None)
        if r is None:
            raise StoreError(f"no run {run_id!r} in store {self.path}")
        return _run_info(r)

    def _has_names(self) -> bool:
        """False for a read-only store opened before the names migration."""
        cols = {r[1] for r in self.conn.execute("PRAGMA table_info(runs)")}
        return "name" in cols

    def results(self, run_id: str) -> list[dict[str, Any]]:
        """Every (item, sample, repeat) of a run with its answer and grade, for reports."""
        rows = self.conn.execute(
            """SELECT i.task, i.item_id, i.grp, i.sample_index, i.repeat, i.gen_key, i.grade_key,
                      g.text AS answer, g.error AS gen_error, g.prompt_tokens, g.completion_tokens,
                      d.status, d.rating, d.rationale, d.details
               FROM run_items i
               LEFT JOIN generations g ON g.key = i.gen_key
               LEFT JOIN grades d ON d.key = i.grade_key
               WHERE i.run_id = ?
               ORDER BY i.task, i.grp, i.item_id, i.sample_index, i.repeat""",
            (run_id,),
        ).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            d["group"] = d.pop("grp")
            d["details"] = json.loads(d["details"]) if d["details"] else {}
            out.append(d)
        return out


def _run_info(r: sqlite3.Row) -> RunInfo:
    keys = r.keys()
    return RunInfo(
        r["run_id"],
        r["created"],
        r["updated"],
        r["status"],
        r["model"],
        r["judge"],
        RunConfig.from_dict(json.loads(r["config"])),
        RunRecord.from_dict(json.loads(r["record"])),
        r["name"] if "name" in keys else None,
        json.loads(r["tags"]) if "tags" in keys and r["tags"] else [],
    )
