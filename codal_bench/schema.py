"""The store's schema: its tables, and the named steps that build and change them."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

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
    """One named schema step, run once inside one transaction.

    Steps are applied in `version` order and recorded by name, so a step added on another branch
    is still applied to a store that already has later ones; a store holding a step this
    codal-eval does not know was written by a newer one and is refused.
    """

    version: int
    name: str
    apply: Callable[[sqlite3.Connection], None]


def _create_supersedes(c: sqlite3.Connection) -> None:
    c.execute(
        "CREATE TABLE IF NOT EXISTS supersedes("
        "old_key TEXT PRIMARY KEY, new_key TEXT NOT NULL, created REAL NOT NULL)"
    )


def _create_audits(c: sqlite3.Connection) -> None:
    """Judge audits: how well a model judge's ratings separate answers known to pass or fail.

    Their own table, not runs: an audit rates a judge, not a model, has no items of its own, and
    every reader of `runs` (leaderboard, gate, `runs` listing) would otherwise have to skip it.
    A judge is found by the hash of its identity and its template hash, the two things that make
    its ratings what they are.
    """
    c.execute(
        """CREATE TABLE IF NOT EXISTS audits(
            audit_id TEXT PRIMARY KEY, created REAL NOT NULL, judge TEXT NOT NULL,
            identity_sha256 TEXT NOT NULL, templates_sha256 TEXT NOT NULL, source TEXT NOT NULL,
            auroc REAL, report TEXT NOT NULL)"""
    )
    c.execute(
        "CREATE INDEX IF NOT EXISTS audits_judge ON audits(identity_sha256, templates_sha256)"
    )


def _create_bundles(c: sqlite3.Connection) -> None:
    """Runs imported from baseline bundles (`check --baseline FILE`): which file content made
    which run, and the judge endpoints the bundle named (never used unless named again)."""
    c.execute(
        """CREATE TABLE IF NOT EXISTS bundles(
            sha256 TEXT PRIMARY KEY, run_id TEXT NOT NULL, source_run TEXT NOT NULL,
            path TEXT NOT NULL, endpoints TEXT NOT NULL, imported REAL NOT NULL)"""
    )


def _add_run_names(c: sqlite3.Connection) -> None:
    """Runs get a user-given name (unique in the store) and tags (a JSON list).

    Guarded, so it applies cleanly whatever other steps did before it.
    """
    cols = {r[1] for r in c.execute("PRAGMA table_info(runs)")}
    if "name" not in cols:
        c.execute("ALTER TABLE runs ADD COLUMN name TEXT")
    if "tags" not in cols:
        c.execute("ALTER TABLE runs ADD COLUMN tags TEXT NOT NULL DEFAULT '[]'")
    c.execute("CREATE UNIQUE INDEX IF NOT EXISTS runs_name ON runs(name) WHERE name IS NOT NULL")


MIGRATIONS = (
    Migration(1, "create the generations, grades, runs and run_items tables", _create_tables),
    Migration(2, "add the audits table (judge audits against known pass/fail)", _create_audits),
    Migration(3, "run names and tags", _add_run_names),
    Migration(4, "bundles: runs imported from portable baseline files", _create_bundles),
    Migration(5, "supersedes: answers and grades asked again with --refresh", _create_supersedes),
)
SCHEMA_VERSION = max(m.version for m in MIGRATIONS)
