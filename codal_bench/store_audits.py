"""Judge audits in the store: how well a model judge's ratings separate answers known to pass
or fail (`codal-eval judge-audit`). A mixin of `Store`."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from contextlib import AbstractContextManager
from typing import Any

from .types import canonical_json, content_hash


class AuditTable:
    """Audit reports, found by the judge's identity and template hash."""

    conn: sqlite3.Connection

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def put_audit(
        self,
        judge: str,
        identity: dict[str, Any],
        templates_sha256: str,
        source: str,
        report: dict[str, Any],
    ) -> str:
        """Store one audit report (its `auroc` field is also a column); returns its id."""
        audit_id = time.strftime("audit-%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        auroc = report.get("auroc")
        with self.transaction() as c:
            c.execute(
                "INSERT INTO audits VALUES(?,?,?,?,?,?,?,?)",
                (
                    audit_id,
                    time.time(),
                    judge,
                    content_hash(identity),
                    templates_sha256,
                    source,
                    None if auroc is None else float(auroc),
                    canonical_json(report),
                ),
            )
        return audit_id

    def latest_audit(
        self, identity: dict[str, Any], templates_sha256: str
    ) -> dict[str, Any] | None:
        """The newest audit of this judge (same identity, same templates), or None.

        A store made before audits existed (schema 1, opened read-only) simply has none.
        """
        has = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='audits'"
        ).fetchone()
        if has is None:
            return None
        r = self.conn.execute(
            "SELECT * FROM audits WHERE identity_sha256=? AND templates_sha256=? "
            "ORDER BY created DESC LIMIT 1",
            (content_hash(identity), templates_sha256),
        ).fetchone()
        if r is None:
            return None
        return {
            "audit_id": r["audit_id"],
            "created": r["created"],
            "judge": r["judge"],
            "source": r["source"],
            "auroc": r["auroc"],
            "report": json.loads(r["report"]),
        }
