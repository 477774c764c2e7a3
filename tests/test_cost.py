"""Price lookup (exact, patterns, loopback, override file) and the rough token estimate."""

from __future__ import annotations

from pathlib import Path

import pytest

from codal_bench import cost
from codal_bench.types import Generation, Message, Request, SamplingParams, UsageError


def test_price_lookup() -> None:
    assert cost.price_for("openai", "gpt-4o") == pytest.approx((2.5e-6, 10e-6))
    assert cost.price_for("openai", "gpt-4o-2024-08-06") == pytest.approx((2.5e-6, 10e-6))
    assert cost.price_for("openai", "gpt-4o-mini-2024-07-18") == pytest.approx((0.15e-6, 0.6e-6))
    assert cost.price_for("openai", "gpt-4") == pytest.approx((30e-6, 60e-6))
    assert cost.price_for("anthropic", "claude-3-5-sonnet-20241022") == pytest.approx((3e-6, 15e-6))
    assert cost.price_for("openai", "my-finetune") is None
    assert cost.price_for("openai", "smollm2", "http://127.0.0.1:8000/v1") == (0.0, 0.0)
    assert cost.price_for("vllm", "/models/x") == (0.0, 0.0)


def test_override_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "prices.yaml"
    f.write_text("openai:\n  gpt-4o: [1, 2]\n  my-finetune: [3, 4]\n")
    monkeypatch.setenv(cost.PRICES_ENV, str(f))
    assert cost.price_for("openai", "gpt-4o") == pytest.approx((1e-6, 2e-6))
    assert cost.price_for("openai", "my-finetune") == pytest.approx((3e-6, 4e-6))
    assert cost.price_for("openai", "gpt-4o-mini") == pytest.approx((0.15e-6, 0.6e-6))
    f2 = tmp_path / "bad.yaml"
    f2.write_text("openai:\n  gpt-4o: cheap\n")
    with pytest.raises(UsageError, match="gpt-4o"):
        cost.load_prices(f2)


def test_estimates_and_totals() -> None:
    msgs = [Message("system", ""), Message("user", "x" * 400)]
    assert 100 <= cost.estimate_tokens(msgs) <= 115
    reqs = [Request.make({}, msgs, SamplingParams(max_tokens=50), sample_index=i) for i in range(3)]
    est = cost.estimate(reqs, (1e-6, 2e-6), cached=2)
    assert (est.requests, est.cached, est.max_completion_tokens) == (3, 2, 150)
    assert est.max_cost_usd == pytest.approx(est.prompt_tokens * 1e-6 + 150 * 2e-6)
    assert "3 requests to send (2 cached)" in est.describe()
    gens = [Generation("a", "x", prompt_tokens=10, completion_tokens=5),
            Generation("b", None, error="boom")]  # fmt: skip
    assert cost.cost_of(gens, (1.0, 2.0)) == 20.0
    assert cost.cost_of(gens, None) is None
    assert cost.token_totals(gens) == {"prompt": 10, "completion": 5}
