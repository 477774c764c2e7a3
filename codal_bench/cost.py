"""Token and cost accounting: the price table, rough token estimates for --dry-run, run totals.

Prices are data (`prices.yaml`, USD per million tokens, overridable through CODAL_BENCH_PRICES)
because they change more often than the code. A model missing from the table has no price (None):
the caller then shows tokens without a cost, and --max-cost refuses rather than guessing.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .backends._common import is_loopback_url
from .types import Generation, Message, Request, UsageError

PRICES_ENV = "CODAL_BENCH_PRICES"
Price = tuple[float, float]
"""USD per prompt token, USD per completion token."""

_BASE_URL_ENV = {"openai": "OPENAI_BASE_URL", "anthropic": "ANTHROPIC_BASE_URL"}
_cache: dict[str, dict[str, dict[str, Price]]] = {}


def _read_table(text: str, origin: str) -> dict[str, dict[str, Price]]:
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise UsageError(f"price table {origin}: not valid YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise UsageError(f"price table {origin}: expected backend -> model -> [prompt, completion]")
    table: dict[str, dict[str, Price]] = {}
    for backend, models in raw.items():
        if not isinstance(models, dict):
            raise UsageError(f"price table {origin}: {backend!r} must map model names to prices")
        for model, pair in models.items():
            if (
                not isinstance(pair, (list, tuple))
                or len(pair) != 2
                or not all(isinstance(x, (int, float)) and x >= 0 for x in pair)
            ):
                raise UsageError(
                    f"price table {origin}: {backend}/{model}: expected [prompt, completion] "
                    f"in USD per million tokens, got {pair!r}"
                )
            table.setdefault(str(backend), {})[str(model)] = (
                float(pair[0]) / 1e6,
                float(pair[1]) / 1e6,
            )
    return table


def load_prices(override: str | Path | None = None) -> dict[str, dict[str, Price]]:
    """The packaged table with the override file (argument, else $CODAL_BENCH_PRICES) on top."""
    override = override if override is not None else os.environ.get(PRICES_ENV) or None
    cache_key = str(override)
    if cache_key in _cache:
        return _cache[cache_key]
    packaged = resources.files("codal_bench").joinpath("prices.yaml").read_text("utf-8")
    table = _read_table(packaged, "prices.yaml (packaged)")
    if override:
        path = Path(override).expanduser()
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise UsageError(f"price table {path} ({PRICES_ENV}) cannot be read: {exc}") from exc
        for backend, models in _read_table(text, str(path)).items():
            table.setdefault(backend, {}).update(models)
    _cache[cache_key] = table
    return table


def price_for(
    backend: str, model: str, base_url: str | None = None, *, table: dict[str, Any] | None = None
) -> Price | None:
    """Price per token for this model, or None when the table does not know it.

    A server on this machine (loopback base_url) is free whatever it is called, which is what
    makes --max-cost usable with a local OpenAI-compatible server.
    """
    base_url = base_url or os.environ.get(_BASE_URL_ENV.get(backend, ""), "")
    if base_url and is_loopback_url(base_url):
        return (0.0, 0.0)
    models = (table if table is not None else load_prices()).get(backend)
    if not models:
        return None
    if model in models:
        return models[model]
    patterns = [p for p in models if any(c in p for c in "*?[") and fnmatch.fnmatchcase(model, p)]
    if not patterns:
        return None
    best = max(patterns, key=lambda p: (len(p.replace("*", "")), len(p)))
    return models[best]


def estimate_tokens(messages: Iterable[Message]) -> int:
    """About four characters a token, plus the few tokens of framing each message carries."""
    total = 3
    for m in messages:
        total += 4 + (len(m.content) + 3) // 4
    return total


def request_cost_bound(request: Request, price: Price) -> float:
    """What one request can cost at most: its estimated prompt and its full max_tokens."""
    return estimate_tokens(request.messages) * price[0] + request.params.max_tokens * price[1]


def generation_cost(gen: Generation, price: Price) -> float:
    return (gen.prompt_tokens or 0) * price[0] + (gen.completion_tokens or 0) * price[1]


def cost_of(generations: Iterable[Generation], price: Price | None) -> float | None:
    """USD for these answers from their recorded usage; None when the price is unknown."""
    if price is None:
        return None
    return sum(generation_cost(g, price) for g in generations if g.error is None)


def token_totals(generations: Iterable[Generation]) -> dict[str, int]:
    """Prompt and completion tokens as the API reported them (errors count nothing)."""
    prompt = completion = 0
    for g in generations:
        if g.error is None:
            prompt += g.prompt_tokens or 0
            completion += g.completion_tokens or 0
    return {"prompt": prompt, "completion": completion}


@dataclass(frozen=True)
class Estimate:
    """What --dry-run prints: requests still to send (cache hits excluded) and their size."""

    requests: int
    cached: int
    prompt_tokens: int
    max_completion_tokens: int
    max_cost_usd: float | None

    def describe(self) -> str:
        cost = "unknown price" if self.max_cost_usd is None else f"at most ${self.max_cost_usd:.4f}"
        return (
            f"{self.requests} requests to send ({self.cached} cached), "
            f"~{self.prompt_tokens} prompt tokens, up to {self.max_completion_tokens} "
            f"completion tokens, {cost}"
        )


def estimate(requests: Sequence[Request], price: Price | None, cached: int = 0) -> Estimate:
    """Size of the requests that will actually be sent; pass the cache hits as `cached`."""
    prompt = sum(estimate_tokens(r.messages) for r in requests)
    completion = sum(r.params.max_tokens for r in requests)
    bound = None if price is None else prompt * price[0] + completion * price[1]
    return Estimate(len(requests), cached, prompt, completion, bound)
