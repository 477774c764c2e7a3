"""The `codal-eval runs` table: a run's name (or id) and state first, never cut."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from .runs import headline, when
from .store import RunInfo
from .termtable import ESSENTIAL, Col, console, fit, width


def short_model(spec: str) -> str:
    """`vllm:/abs/path/to/ckpt` -> `vllm:ckpt`: the folder name is what people recognise."""
    backend, sep, rest = spec.partition(":")
    if sep and rest.startswith("/"):
        return f"{backend}:{rest.rstrip('/').rsplit('/', 1)[-1]}"
    return spec


def print_runs(runs: Sequence[RunInfo], out: TextIO | None = None) -> None:
    from rich.text import Text

    w = width()
    con = console(out, w=w)
    if not runs:
        con.print(Text("No runs match (see `codal-eval runs --help` for the filters)."))
        return
    tasks = list(dict.fromkeys(t for r in runs for t in r.config.tasks))
    cols = [
        Col("run", "run", ESSENTIAL, whole=True),
        Col("status", "status", 90, whole=True),
        *[Col(t, t, 70 - i, right=True, whole=True) for i, t in enumerate(tasks)],
        Col("model", "model", 80, max_width=40),
        Col("date", "started", 60, whole=True),
        Col("tags", "tags", 50),
        Col("judge", "judge", 40),
        Col("id", "id", 30, whole=True),
    ]
    rows = []
    for r in runs:
        row = {
            "run": r.label,
            "status": r.status,
            "model": short_model(r.model),
            "date": when(r.created),
            "tags": ", ".join(r.tags),
            "judge": short_model(r.judge or ""),
            "id": r.run_id if r.name else "",
            **dict(headline(r)),
        }
        rows.append(row)
    con.print(fit(cols, rows, w))
