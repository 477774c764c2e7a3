"""Repeating a stored run's items and settings with another model (the CI gate) or judge.

A stored run's config keeps the options it was given (`RunConfig.options`), so repeating it is the
inverse of writing it: `RunConfig.rerun_options`, with the run's items and per-task sampling.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .progress import Progress
from .runner import run
from .store import Store


def run_like(
    store: Store,
    baseline_run_id: str,
    model: str,
    judge: str | None = None,
    progress: Progress | None = None,
    items: dict[str, list[str]] | None = None,
    **overrides: Any,
) -> str:
    """Run `model` on exactly the items and settings of a stored run (for the CI gate), or on
    `items`, a subset of them (task -> item ids; `check --tasks/--limit`)."""
    base = store.run(baseline_run_id)
    opts = base.config.rerun_options(items or base.record.items, model, judge)
    if items:
        opts.tasks = [t for t in opts.tasks if t in items]
    result = run(replace(opts, **overrides), store, progress)
    assert result.run_id is not None
    return result.run_id
