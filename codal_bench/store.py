"""The results store: SQLite, content-keyed generations and grades, runs, migrations.

Generations and grades are keyed by the hash of everything that can change them, so the store is
both the cache and the resume point. Runs only point at keys (`run_items`), which is why a re-grade
or a re-run shares every row it can. WAL mode and a busy timeout let two runs share one file.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .schema import MIGRATIONS, SCHEMA_VERSION
from .store_audits import AuditTable
from .store_runs import ItemRef, RunInfo, RunTables, StoreError, check_name
from .types import CodalError, Generation, Grade, canonical_json

__all__ = ["ItemRef", "RunInfo", "Store", "StoreError", "check_name", "default_store_path"]

DEFAULT_STORE_ENV = "CODAL_BENCH_STORE"


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


def default_store_path() -> Path:
    env = os.environ.get(DEFAULT_STORE_ENV)
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "codal-eval" / "results.sqlite"


class Store(RunTables, AuditTable):
    """One SQLite file. Every write is a short transaction; batches are written in one."""

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        try:
            if readonly:
                if not self.path.exists():
                    raise StoreError(f"store {self.path} does not exist (run an evaluation first)")
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
                raise StoreError(f"store {self.path} cannot be written: {problem}") from exc
            if isinstance(exc, CodalError):
                raise
            verb = "used" if isinstance(exc, sqlite3.DatabaseError) else "opened"
            raise StoreError(f"store {self.path} cannot be {verb}: {exc}") from exc

    # -- schema ---------------------------------------------------------------------------

    def _check_version(self) -> int:
        row = self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name='meta'"
        ).fetchone()
        if row is None:
            return 0
        got = self.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        version = int(got[0]) if got else 0
        unknown = self._applied(version) - {m.name for m in MIGRATIONS}
        if version > SCHEMA_VERSION or unknown:
            raise StoreError(
                f"store {self.path} has schema {version}, newer than this codal-eval "
                f"({SCHEMA_VERSION}): upgrade codal-eval"
            )
        return version

    def _applied(self, version: int) -> set[str]:
        """Names of the steps this store has; before steps were recorded, the first one."""
        row = self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name='migrations'"
        ).fetchone()
        if row is None:
            return {m.name for m in MIGRATIONS if m.version == 1 and version >= 1}
        return {r[0] for r in self.conn.execute("SELECT name FROM migrations")}

    def _migrate(self) -> None:
        with self.transaction() as c:
            c.execute("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT)")
            version = self._check_version()
            applied = self._applied(version)
            c.execute(
                "CREATE TABLE IF NOT EXISTS migrations("
                "name TEXT PRIMARY KEY, version INTEGER NOT NULL, applied REAL NOT NULL)"
            )
            for step in sorted(MIGRATIONS, key=lambda m: m.version):
                if step.name not in applied:
                    step.apply(c)
                c.execute(
                    "INSERT OR IGNORE INTO migrations VALUES(?,?,?)",
                    (step.name, step.version, time.time()),
                )
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
                raise StoreError(f"store {self.path}: disk is full ({exc})") from exc
            if isinstance(exc, sqlite3.OperationalError) and "readonly" in str(exc):
                raise StoreError(f"store {self.path} is read-only ({exc})") from exc
            raise

    def check_writable(self) -> None:
        """Fail before any paid request when the store cannot take writes (read-only, full)."""
        problem = _disk_problem(self.path)
        if problem:
            raise StoreError(f"store {self.path} cannot be written: {problem}")
        try:
            with self.transaction() as c:
                c.execute(
                    "INSERT OR REPLACE INTO meta VALUES('last_open', ?)", (repr(time.time()),)
                )
                # Make SQLite actually grow the file a little, so a full disk shows up now.
                c.execute("CREATE TEMP TABLE IF NOT EXISTS _probe(x)")
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.path} cannot be written: {exc}") from exc

    def close(self) -> None:
        self.conn.close()

    # -- generations ----------------------------------------------------------------------

    def get_generations(
        self, keys: Iterable[str], *, ok_only: bool = True
    ) -> dict[str, Generation]:
        """Stored generations for these keys; errors are left out unless asked (so they retry).

        A key asked again with `--refresh` resolves to its newest answer: the result is keyed by
        the key asked for, and its `.key` is the row's own.
        """
        out: dict[str, Generation] = {}
        want = self.resolve(keys)
        asked = {v: k for k, v in want.items()}
        for chunk in _chunks(list(asked), 500):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT * FROM generations WHERE key IN ({marks})"
            if ok_only:
                sql += " AND error IS NULL"
            for r in self.conn.execute(sql, chunk):
                out[asked[r["key"]]] = Generation(
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
        """Stored grades; judge errors are left out so they are retried (keys resolve as in
        `get_generations`)."""
        out: dict[str, Grade] = {}
        want = self.resolve(keys)
        asked = {v: k for k, v in want.items()}
        for chunk in _chunks(list(asked), 500):
            marks = ",".join("?" * len(chunk))
            for r in self.conn.execute(
                f"SELECT * FROM grades WHERE key IN ({marks}) AND status != 'judge_error'", chunk
            ):
                out[asked[r["key"]]] = Grade(
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

    # -- refresh ---------------------------------------------------------------------------

    def resolve(self, keys: Iterable[str]) -> dict[str, str]:
        """key -> the key of its newest replacement (itself when it was never asked again)."""
        out = {k: k for k in keys}
        if not self._has_table("supersedes"):
            return out
        todo = set(out)
        for _ in range(64):  # chains are short: one link per --refresh of the same request
            if not todo:
                break
            found: dict[str, str] = {}
            for chunk in _chunks(sorted(todo), 500):
                marks = ",".join("?" * len(chunk))
                found.update(
                    self.conn.execute(
                        f"SELECT old_key, new_key FROM supersedes WHERE old_key IN ({marks})",
                        chunk,
                    ).fetchall()
                )
            for k, cur in list(out.items()):
                if cur in found:
                    out[k] = found[cur]
            todo = set(found.values())
        return out

    def supersede(self, pairs: dict[str, str]) -> None:
        """Record that each old key was asked again under a new one (both rows stay)."""
        with self.transaction() as c:
            c.executemany(
                "INSERT OR REPLACE INTO supersedes VALUES(?,?,?)",
                [(old, new, time.time()) for old, new in pairs.items()],
            )

    def _has_table(self, name: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)
        ).fetchone()
        return row is not None

    # -- runs -----------------------------------------------------------------------------


def _chunks(seq: Sequence[str], n: int) -> Iterator[list[str]]:
    for i in range(0, len(seq), n):
        yield list(seq[i : i + n])
