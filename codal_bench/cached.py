"""Generation and grading through the store: the cache, the resume point and the bookkeeping.

A backend or a judge should not have to think about which requests are already answered, about
storing each finished batch, about endpoints that stop answering or about `--refresh`; `Runner`
does, for the run, for `grade RUN` and for the judge audit alike.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .progress import Progress
from .spec import ModelSpec
from .store import Store
from .types import Backend, Generation, GradeInput, Judge, Request, content_hash

GRADE_CHUNK = 64


@dataclass
class RunStats:
    backend_calls: int = 0
    cached: int = 0
    generated: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    # (role, endpoint) -> [count, first message]: what went wrong, said once per endpoint
    failures: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    stopped: dict[str, str] = field(default_factory=dict)  # role -> why it stopped sending

    def failed(self, role: str, endpoint: str, message: str, n: int = 1) -> None:
        cell = self.failures.setdefault((role, endpoint), [0, message])
        cell[0] += n

    def failure_list(self) -> list[dict[str, Any]]:
        return [
            {"role": role, "endpoint": endpoint, "count": n, "first": first}
            for (role, endpoint), (n, first) in self.failures.items()
        ]


class Runner:
    def __init__(self, store: Store, progress: Progress | None = None) -> None:
        self.store = store
        self.progress = progress or Progress(enabled=False)
        self.stats = RunStats()
        self.nonce = uuid.uuid4().hex  # salts the keys of what --refresh asks again

    # -- generation through the store -----------------------------------------------------

    def cached_generate(
        self,
        backend: Backend,
        spec: ModelSpec,
        concurrency: int,
        timeout_s: float,
        label: str,
        max_cost: float | None = None,
        refresh: bool = False,
    ) -> Callable[[Sequence[Request]], list[Generation]]:
        """Generation that asks the backend only for what the store does not have yet.

        With `refresh`, everything is asked again under new keys that supersede the old ones:
        the old rows stay, this run and later ones see the new answers.
        """
        from .cost import cost_of, price_for, token_totals
        from .dispatch import BackendFailed, BudgetExceeded, DispatchOptions, generate_all

        price = price_for(spec.backend, spec.model, spec.options.get("base_url"))
        model = str(spec)
        endpoint = _endpoint(backend, spec)

        def generate(requests: Sequence[Request]) -> list[Generation]:
            have = {} if refresh else self.store.get_generations(r.key for r in requests)
            seen: set[str] = set()
            missing = []
            for r in requests:
                if r.key not in have and r.key not in seen:
                    seen.add(r.key)
                    missing.append(r)
            renamed: dict[str, str] = {}
            if refresh:  # new keys for the same requests; mapped back below
                renamed = {r.key: self.refreshed(r.key) for r in missing}
                missing = [dataclasses.replace(r, key=renamed[r.key]) for r in missing]
            self.stats.cached += len(requests) - len(missing)
            if missing:
                req_json = {r.key: _request_json(r) for r in missing}
                opts = DispatchOptions(
                    concurrency=concurrency,
                    timeout_s=timeout_s,
                    max_cost_usd=max_cost,
                    price=price,
                    spent_usd=self.stats.cost_usd,
                )

                def sink(gens: list[Generation]) -> None:
                    self.store.put_generations(gens, model, req_json)
                    tokens = token_totals(gens)
                    self.stats.generated += len(gens)
                    self.stats.errors += sum(g.error is not None for g in gens)
                    for g in gens:
                        if g.error is not None:
                            self.stats.failed(label, endpoint, g.error)
                    self.stats.prompt_tokens += tokens["prompt"]
                    self.stats.completion_tokens += tokens["completion"]
                    self.stats.cost_usd += cost_of(gens, price) or 0.0

                why = self.stats.stopped.get(label)
                got: list[Generation | None] = []
                if why is None:
                    with self.progress.task(f"{label}: generate", len(missing)) as advance:
                        self.stats.backend_calls += len(missing)
                        try:
                            got = list(
                                generate_all(
                                    backend, missing, options=opts, sink=sink, progress=advance
                                )
                            )
                        except (BackendFailed, BudgetExceeded) as exc:
                            why = str(exc)
                            self.stats.stopped[label] = why
                            got = list(exc.results)
                have.update({g.key: g for g in got if g is not None})
                if renamed:
                    back = {new: old for old, new in renamed.items()}
                    have = {back.get(k, k): g for k, g in have.items()}
                    self.store.supersede(
                        {back[g.key]: g.key for g in got if g is not None and g.ok}
                    )
                    missing = [dataclasses.replace(r, key=back[r.key]) for r in missing]
                unsent = [r for r in missing if r.key not in have]
                if unsent:  # never sent: an error of this run, not stored (the next run asks)
                    self.stats.failed(label, endpoint, f"not sent: {why}", len(unsent))
                    have.update(
                        {r.key: Generation(r.key, None, error=f"not sent: {why}") for r in unsent}
                    )
            # Keyed as asked (a refreshed or superseded answer keeps the caller's key); where
            # the stored row lives is `Store.resolve`'s business.
            return [dataclasses.replace(have[r.key], key=r.key) for r in requests]

        return generate

    def grade(
        self,
        judge: Judge,
        judge_name: str,
        items: list[GradeInput],
        generate: Callable[[Sequence[Request]], list[Generation]],
        label: str,
        refresh: bool = False,
    ) -> dict[tuple[str, int, int], str]:
        """Grade what is not graded yet, a stored chunk at a time; returns the grade keys (the
        newest, when a grade was asked again with `refresh`)."""

        def slot(i: GradeInput) -> tuple[str, int, int]:
            return (i.sample.item_id, i.sample_index, i.repeat)

        keys = {slot(i): judge.grade_key(i) for i in items}
        # A grade whose judge call failed is asked again, like a failed generation.
        stored = {} if refresh else self.store.get_grades(keys.values())
        todo = [i for i in items if keys[slot(i)] not in stored]
        keys.update({k: stored[v].key for k, v in keys.items() if v in stored})
        with self.progress.task(f"{label}: grade", len(todo)) as advance:
            for start in range(0, len(todo), GRADE_CHUNK):
                chunk = todo[start : start + GRADE_CHUNK]
                grades = judge.grade(chunk, generate)
                renamed: dict[str, str] = {}
                if refresh:  # stored under new keys that supersede the old ones
                    renamed = {g.key: self.refreshed(g.key) for g in grades}
                    for g in grades:
                        g.key = renamed[g.key]
                    for i in chunk:
                        keys[slot(i)] = renamed.get(keys[slot(i)], keys[slot(i)])
                self.store.put_grades(grades, judge_name)
                ok = {g.key for g in grades if g.status != "judge_error"}
                if renamed:
                    self.store.supersede({o: n for o, n in renamed.items() if n in ok})
                advance(len(chunk))
        return keys

    def refreshed(self, key: str) -> str:
        """The new key of a request or grade asked again in this invocation."""
        return content_hash({"refresh": self.nonce, "key": key})


def _endpoint(backend: Backend, spec: ModelSpec) -> str:
    """Where requests go, for messages: host:port of an HTTP backend, else the spec."""
    endpoint = getattr(backend, "endpoint", None)
    return str(endpoint()) if callable(endpoint) else str(spec)


def _request_json(r: Request) -> dict[str, Any]:
    return {
        "task": r.task,
        "item_id": r.item_id,
        "sample_index": r.sample_index,
        "messages": [{"role": m.role, "content": m.content} for m in r.messages],
        "params": r.params.to_dict(),
    }
