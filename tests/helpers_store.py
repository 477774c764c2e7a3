"""Synthetic runs written through the real Store API, for tests and benchmarks.

A synthetic run goes through `new_run` → `put_generations` → `put_grades` → `put_run_items` →
`update_run`, the same calls the runner makes, so readers of the store (leaderboard, CI gate) are
tested against rows shaped exactly like real ones, without a model or a judge.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from codal_bench.codal.scores import PREFERENCES
from codal_bench.store import ItemRef, Store
from codal_bench.summary import run_summary
from codal_bench.types import Generation, Grade, content_hash

Rating = float | str | None
"""A CODAL grade: a number (rated), "parse_failure", or None (the judge call failed)."""

HeSample = tuple[bool, bool]
"""One HumanEval sample's verdict: (passes base tests, passes plus tests)."""

DEFAULT_SAMPLING: dict[str, Any] = {
    "temperature": 0.0,
    "top_p": 1.0,
    "max_tokens": 1024,
    "seed": None,
    "stop": [],
}

CODAL_TASK = "codal-bench"


def codal_item_ids(per_preference: int) -> list[tuple[str, str]]:
    """(item_id, preference) pairs: `per_preference` items for each of the five preferences."""
    return [(f"{p}-{i:03d}", p) for p in PREFERENCES for i in range(per_preference)]


def humaneval_ids(n: int) -> list[str]:
    return [f"HumanEval/{i}" for i in range(n)]


def random_codal(
    rng: random.Random, items: Sequence[tuple[str, str]], mean: float, spread: int = 2
) -> dict[str, tuple[str, Rating]]:
    """Ratings scattered around `mean` (clipped to 1..10), one per item."""
    out: dict[str, tuple[str, Rating]] = {}
    for item, pref in items:
        out[item] = (pref, float(min(10, max(1, round(mean + rng.randint(-spread, spread))))))
    return out


def random_humaneval(
    rng: random.Random, ids: Sequence[str], p_base: float, p_plus: float, samples: int = 1
) -> dict[str, list[HeSample]]:
    out: dict[str, list[HeSample]] = {}
    for tid in ids:
        cells = []
        for _ in range(samples):
            base = rng.random() < p_base
            cells.append((base, base and rng.random() < p_plus / max(p_base, 1e-9)))
        out[tid] = cells
    return out


def make_run(
    store: Store,
    model: str,
    *,
    judge: str | None = "openai:gpt-4-turbo",
    reference: str | None = "gpt-4-turbo_response",
    templates_sha: str = "a" * 64,
    codal: Mapping[str, tuple[str, Rating]] | None = None,
    humaneval: Mapping[str, Sequence[HeSample]] | None = None,
    humaneval_task: str = "humaneval-plus",
    codal_sampling: Mapping[str, Any] | None = None,
    humaneval_sampling: Mapping[str, Any] | None = None,
    status: str = "complete",
    judge_repeats: int = 1,
    run_id: str | None = None,
) -> str:
    """Write one run. `codal`: item_id -> (preference, rating); `humaneval`: task_id -> samples.

    Every repeat of a CODAL item gets the same rating, so judge repeats do not move scores.
    """
    tasks: dict[str, Any] = {}
    items: dict[str, list[str]] = {}
    gens: list[Generation] = []
    grades_llm: list[Grade] = []
    grades_exec: list[Grade] = []
    refs: list[ItemRef] = []
    if codal is not None:
        tasks[CODAL_TASK] = {
            "sampling": dict(codal_sampling or DEFAULT_SAMPLING),
            "samples": 1,
            "prompt_set": {"name": "codal", "sha256": "p" * 64},
            "data": {"source": "synthetic", "data_sha256": "d" * 64, "prompt_sha256": "q" * 64},
            "limit": None,
            "task_ids": None,
        }
        items[CODAL_TASK] = list(codal)
        for item, (pref, rating) in codal.items():
            gk = content_hash({"m": model, "t": CODAL_TASK, "i": item})
            gens.append(Generation(gk, f"answer of {model} to {item}", None, 10, 20))
            for rep in range(judge_repeats):
                key = content_hash({"g": gk, "j": judge, "r": reference, "rep": rep})
                if rating is None:
                    grades_llm.append(Grade(key, "judge_error", None, None, {"error": "boom"}))
                elif rating == "parse_failure":
                    grades_llm.append(Grade(key, "parse_failure", None, None, {}))
                else:
                    grades_llm.append(
                        Grade(key, "rated", float(rating), "ok", {"reference_column": reference})
                    )
                refs.append(ItemRef(CODAL_TASK, item, pref, 0, rep, gk, key))
    if humaneval is not None:
        n = max((len(v) for v in humaneval.values()), default=1)
        tasks[humaneval_task] = {
            "sampling": dict(humaneval_sampling or {**DEFAULT_SAMPLING, "max_tokens": 512}),
            "samples": n,
            "data": {"source": "synthetic", "data_sha256": "h" * 64, "prompt_sha256": "q" * 64},
            "limit": None,
            "task_ids": None,
        }
        items[humaneval_task] = list(humaneval)
        for tid, cells in humaneval.items():
            for s, (base, plus) in enumerate(cells):
                gk = content_hash({"m": model, "t": humaneval_task, "i": tid, "s": s})
                gens.append(Generation(gk, f"def f(): pass  # {model}", None, 10, 20))
                key = content_hash({"g": gk, "exec": humaneval_task})
                details = {"base": "pass" if base else "fail", "plus": "pass" if plus else "fail"}
                status_ = "pass" if base and plus else "fail"
                grades_exec.append(Grade(key, status_, None, None, details))
                refs.append(ItemRef(humaneval_task, tid, humaneval_task, s, 0, gk, key))
    config: dict[str, Any] = {
        "command": "run",
        "model": model,
        "model_identity": {"name": model},
        "judge": judge if codal is not None else None,
        "judge_identity": {"spec": judge} if codal is not None else None,
        "judge_templates": {"name": "codal", "sha256": templates_sha}
        if codal is not None
        else None,
        "judge_sampling": {"temperature": 0.0, "max_tokens": 1024} if codal is not None else None,
        "judge_repeats": judge_repeats,
        "reference": reference if codal is not None else None,
        "tasks": tasks,
        "parent_run": None,
    }
    rid = store.new_run(model, config["judge"], config, run_id=run_id)
    store.put_generations(gens, model, {})
    store.put_grades(grades_llm, str(judge))
    store.put_grades(grades_exec, "humaneval")
    store.put_run_items(rid, refs)
    record = {"items": items, "summary": run_summary(store.results(rid))}
    store.update_run(rid, status=status, record=record)
    return rid


JUDGES = (
    ("openai:gpt-4-turbo", "gpt-4-turbo_response"),
    ("openai:gpt-3.5-turbo-0125", "gpt-3.5-turbo_response"),
)


def populate(
    store: Store,
    n_runs: int,
    *,
    per_preference: int = 100,
    n_humaneval: int = 164,
    samples: int = 1,
    seed: int = 0,
    judges: Sequence[tuple[str, str]] = JUDGES,
) -> list[str]:
    """`n_runs` complete runs (CODAL + HumanEval+), alternating between `judges`.

    Model quality rises with the run index so rankings are predictable but not trivially so.
    """
    rng = random.Random(seed)
    items = codal_item_ids(per_preference)
    he = humaneval_ids(n_humaneval)
    ids = []
    for i in range(n_runs):
        judge, ref = judges[i % len(judges)]
        q = i / max(1, n_runs - 1)
        ids.append(
            make_run(
                store,
                f"vllm:/models/model-{i:02d}",
                judge=judge,
                reference=ref,
                codal=random_codal(rng, items, 4.5 + 3.5 * q),
                humaneval=random_humaneval(rng, he, 0.3 + 0.5 * q, 0.25 + 0.5 * q, samples),
            )
        )
    return ids
