"""The task's scoring face: pass@k from codal-eval's `PassAtK`, plus a one-line reason per item."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from codal_bench.scoring import PassAtK

NOTE = "verdict = exit status of check(candidate) in the sandbox; not tamper-proof"


class OriginalScoring(PassAtK):
    """Metrics `humaneval-original` (pass@1, gated, ranked) and `humaneval-original@k`."""

    def describe_item(self, rows: Sequence[dict[str, Any]]) -> str:
        """The first sample that did not pass, and why (the last line of its traceback)."""
        for r in rows:
            if r.get("gen_error"):
                return f"generation error: {r['gen_error']}"[:200]
            if r.get("status") != "pass":
                reason = (r.get("details") or {}).get("reason") or ""
                return f"{r.get('status')}: {reason}".rstrip(": ")[:200]
        return "pass"

    def notes(self, rows: Sequence[dict[str, Any]]) -> list[str]:
        return [NOTE]
