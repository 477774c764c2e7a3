"""The results store: SQLite, content-keyed generations and grades, runs, migrations.

Generations and grades are keyed by the hash of everything that can change them, so the store is
both the cache and the resume point. Runs only point at keys (`run_items`), which is why a re-grade
or a re-run shares every row it can. WAL mode and a busy timeout let two runs share one file.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import RunConfig, RunRecord
from .types import CodalError, Generation, Grade, canonical_json

DEFAULT_STORE_ENV = "CODAL_BENCH_STORE"

_TABLES = (
    """CREATE TABLE IF NOT EXISTS generations(
        key TEXT PRIMARY KEY, model TEXT NOT NULL, request TEXT NOT NULL,
        text TEXT, error TEXT, prompt_tokens INTEGER, completion_tokens INTEGER,
        finish_reason TEXT, latency_s REAL, created REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS grades(
        key TEXT PRIMARY KEY, judge TEXT NOT NULL, status TEXT NOT NULL,
        rating REAL, rationale TEXT, details TEXT NOT NULL, created REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS runs(
        run_id TEXT PRIMARY KEY, created REAL NOT NULL, updated REAL NOT NULL,
        status TEXT NOT NULL, model TEXT NOT NULL, judge TEXT,
        config TEXT NOT NULL, record TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS run_items(
        run_id TEXT NOT NULL, task TEXT NOT NULL, item_id TEXT NOT NULL, grp TEXT NOT NULL,
        sample_index INTEGER NOT NULL, repeat INTEGER NOT NULL,
        gen_key TEXT NOT NULL, grade_key TEXT,
        PRIMARY KEY(run_id, task, item_id, sample_index, repeat))""",
    "CREATE INDEX IF NOT EXISTS run_items_gen ON run_items(gen_key)",
)


def _create_tables(c: sqlite3.Connection) -> None:
    for statement in _TABLES:
        c.execute(statement)


@dataclass(frozen=True)
class Migration:
    """One named step from schema `version - 1` to `version`, run inside one transaction."""

    version: int
    name: str
    apply: Callable[[sqlite3.Connection], None]


def _create_bundles(c: sqlite3.Connection) -> None:
    """Runs imported from baseline bundles: which file content made which run, and the judge
    endpoints the bundle named (never used unless the user names them again)."""
    c.execute(
        """CREATE TABLE IF NOT EXISTS bundles(
            sha256 TEXT PRIMARY KEY, run_id TEXT NOT NULL, source_run TEXT NOT NULL,
            path TEXT NOT NULL, endpoints TEXT NOT NULL, imported REAL NOT NULL)"""
    )


MIGRATIONS = (
    Migration(1, "create the generations, grades, runs and run_items tables", _create_tables),
    # 2 and 3 are other branches' steps; each step only creates what it needs (IF NOT EXISTS),
    # so the order in which they are merged does not matter.
    Migration(4, "bundles: runs imported from portable baseline files", _create_bundles),
)
SCHEMA_VERSION = max(m.version for m in MIGRATIONS)


def _disk_problem(path: Path) -> str | None:
    """Why the folder holding the store cannot take writes, in words a user can act on."""
    folder = path.parent
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    if st.f_flag & os.ST_RDONLY:
        return f"{folder} is on a read-only file system"
    free = st.f_bavail * st.f_frsize
    if free < (1 << 20):
        return f"the disk holding {folder} is full ({free // 1024} KiB free)"
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def default_store_path() -> Path:
    env = os.environ.get(DEFAULT_STORE_ENV)
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "codal-eval" / "results.sqlite"


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


class Store:
    """One SQLite file. Every write is a short transaction; batches are written in one."""

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        try:
            if readonly:
                if not self.path.exists():
                    raise CodalError(f"store {self.path} does not exist (run an evaluation first)")
                uri = f"file:{self.path}?mode=ro"
                self.conn = sqlite3.connect(uri, uri=True, timeout=60, check_same_thread=False)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.conn = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
            self.conn.row_factory = sqlite3.Row
            self.conn.execute("PRAGMA busy_timeout = 60000")
            if not readonly:
                self.conn.execute("PRAGMA journal_mode = WAL")
                self.conn.execute("PRAGMA synchronous = NORMAL")
                self._migrate()
            else:
                self._check_version()
        except (sqlite3.DatabaseError, OSError, CodalError) as exc:
            problem = None if readonly else _disk_problem(self.path)
            if problem:
                raise CodalError(f"store {self.path} cannot be written: {problem}") from exc
            if isinstance(exc, CodalError):
                raise
            verb = "used" if isinstance(exc, sqlite3.DatabaseError) else "opened"
            raise CodalError(f"store {self.path} cannot be {verb}: {exc}") from exc

    # -- schema ---------------------------------------------------------------------------

    def _check_version(self) -> int:
        row = self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name='meta'"
        ).fetchone()
        if row is None:
            return 0
        got = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        version = int(got[0]) if got else 0
        if version > SCHEMA_VERSION:
            raise CodalError(
                f"store {self.path} has schema {version}, newer than this codal-eval "
                f"({SCHEMA_VERSION}): upgrade codal-eval"
            )
        return version

    def _migrate(self) -> None:
        with self.transaction() as c:
            c.execute("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT)")
            version = self._check_version()
            for step in MIGRATIONS:
                if step.version > version:
                    step.apply(c)
            c.execute(
                "INSERT OR REPLACE INTO meta VALUES('schema_version', ?)", (str(SCHEMA_VERSION),)
            )

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE so a writer waits for the lock up front instead of failing mid-way."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            yield self.conn
            self.conn.execute("COMMIT")
        except BaseException as exc:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError) and "full" in str(exc):
                raise CodalError(f"store {self.path}: disk is full ({exc})") from exc
            if isinstance(exc, sqlite3.OperationalError) and "readonly" in str(exc):
                raise CodalError(f"store {self.path} is read-only ({exc})") from exc
            raise

    def check_writable(self) -> None:
        """Fail before any paid request when the store cannot take writes (read-only, full)."""
        problem = _disk_problem(self.path)
        if problem:
            raise CodalError(f"store {self.path} cannot be written: {problem}")
        try:
            with self.transaction() as c:
                c.execute(
                    "INSERT OR REPLACE INTO meta VALUES('last_open', ?)", (repr(time.time()),)
                )
                # Make SQLite actually grow the file a little, so a full disk shows up now.
                c.execute("CREATE TEMP TABLE IF NOT EXISTS _probe(x)")
        except sqlite3.Error as exc:
            raise CodalError(f"store {self.path} cannot be written: {exc}") from exc

    def close(self) -> None:
        self.conn.close()

    # -- generations ----------------------------------------------------------------------

    def get_generations(
        self, keys: Iterable[str], *, ok_only: bool = True
    ) -> dict[str, Generation]:
        """Stored generations for these keys; errors are left out unless asked (so they retry)."""
        out: dict[str, Generation] = {}
        keys = list(keys)
        for chunk in _chunks(keys, 500):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT * FROM generations WHERE key IN ({marks})"
            if ok_only:
                sql += " AND error IS NULL"
            for r in self.conn.execute(sql, chunk):
                out[r["key"]] = Generation(
                    r["key"],
                    r["text"],
                    r["error"],
                    r["prompt_tokens"],
                    r["completion_tokens"],
                    r["finish_reason"],
                    r["latency_s"],
                )
        return out

    def put_generations(
        self, gens: Sequence[Generation], model: str, requests: dict[str, Any]
    ) -> None:
        """Write a finished batch in one transaction. A success never gets replaced by an error."""
        if not gens:
            return
        now = time.time()
        with self.transaction() as c:
            for g in gens:
                if g.error is not None:
                    c.execute(
                        "INSERT INTO generations VALUES(?,?,?,?,?,?,?,?,?,?) "
                        "ON CONFLICT(key) DO UPDATE SET "
                        "error=excluded.error, created=excluded.created "
                        "WHERE generations.error IS NOT NULL",
                        (
                            g.key,
                            model,
                            canonical_json(requests.get(g.key, {})),
                            None,
                            g.error,
                            None,
                            None,
                            g.finish_reason,
                            g.latency_s,
                            now,
                        ),
                    )
                else:
                    c.execute(
                        "INSERT OR REPLACE INTO generations VALUES(?,?,?,?,?,?,?,?,?,?)",
                        (
                            g.key,
                            model,
                            canonical_json(requests.get(g.key, {})),
                            g.text,
                            None,
                            g.prompt_tokens,
                            g.completion_tokens,
                            g.finish_reason,
                            g.latency_s,
                            now,
                        ),
                    )

    # -- grades ---------------------------------------------------------------------------

    def get_grades(self, keys: Iterable[str]) -> dict[str, Grade]:
        """Stored grades; judge errors are left out so they are retried."""
        out: dict[str, Grade] = {}
        keys = list(keys)
        for chunk in _chunks(keys, 500):
            marks = ",".join("?" * len(chunk))
            for r in self.conn.execute(
                f"SELECT * FROM grades WHERE key IN ({marks}) AND status != 'judge_error'", chunk
            ):
                out[r["key"]] = Grade(
                    r["key"], r["status"], r["rating"], r["rationale"], json.loads(r["details"])
                )
        return out

    def put_grades(self, grades: Sequence[Grade], judge: str) -> None:
        if not grades:
            return
        now = time.time()
        with self.transaction() as c:
            c.executemany(
                "INSERT OR REPLACE INTO grades VALUES(?,?,?,?,?,?,?)",
                [
                    (g.key, judge, g.status, g.rating, g.rationale, canonical_json(g.details), now)
                    for g in grades
                ],
            )

    # -- runs -----------------------------------------------------------------------------

    def new_run(
        self,
        model: str,
        judge: str | None,
        config: RunConfig | dict[str, Any],
        run_id: str | None = None,
    ) -> str:
        if isinstance(config, dict):  # an older or hand-written config: read as a stored one
            config = RunConfig.from_dict(config)
        run_id = run_id or time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        now = time.time()
        owner = {"host": platform.node(), "pid": os.getpid()}
        with self.transaction() as c:
            self._mark_dead_runs(c)
            c.execute(
                "INSERT INTO runs VALUES(?,?,?,?,?,?,?,?)",
                (
                    run_id,
                    now,
                    now,
                    "running",
                    model,
                    judge,
                    canonical_json(config.to_dict()),
                    canonical_json({"owner": owner}),
                ),
            )
        return run_id

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
        """A run by id, or by a unique prefix of it; `latest` is the newest run."""
        if run_id == "latest":
            r = self.conn.execute("SELECT * FROM runs ORDER BY created DESC LIMIT 1").fetchone()
        else:
            rows = self.conn.execute(
                "SELECT * FROM runs WHERE run_id = ? OR run_id LIKE ?", (run_id, run_id + "%")
            ).fetchall()
            exact = [x for x in rows if x["run_id"] == run_id]
            if len(rows) > 1 and not exact:
                raise CodalError(f"run id {run_id!r} is ambiguous: {len(rows)} runs match")
            r = exact[0] if exact else (rows[0] if rows else None)
        if r is None:
            raise CodalError(f"no run {run_id!r} in store {self.path}")
        return _run_info(r)

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
    return RunInfo(
        r["run_id"],
        r["created"],
        r["updated"],
        r["status"],
        r["model"],
        r["judge"],
        RunConfig.from_dict(json.loads(r["config"])),
        RunRecord.from_dict(json.loads(r["record"])),
    )


def _chunks(seq: Sequence[str], n: int) -> Iterator[list[str]]:
    for i in range(0, len(seq), n):
        yield list(seq[i : i + n])
