"""The API backends over real HTTP: vLLM's OpenAI-compatible server with the embedded SmolLM2.

The same server speaks the Anthropic Messages API at /v1/messages, so the Anthropic backend is
tested against a real implementation too (its base URL has no /v1: the SDK adds it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from codal_bench.backends.anthropic import AnthropicBackend
from codal_bench.backends.openai import OpenAIBackend
from codal_bench.dispatch import DispatchOptions, generate_all
from codal_bench.store import Store
from codal_bench.types import Generation, Message, Request, SamplingParams

pytestmark = pytest.mark.e2e

QUESTIONS = [
    "Write a Python function that returns the sum of a list.",
    "What does the `len` function do in Python?",
    "Write a Python one-liner that reverses a string.",
    "Name one sorting algorithm.",
    "Write a Python function that checks whether a number is even.",
    "What is a Python dictionary?",
    "Write a for loop that prints 0 to 4 in Python.",
    "What keyword defines a function in Python?",
]


def _requests(backend: object, sp: SamplingParams) -> list[Request]:
    ident = backend.identity()  # type: ignore[attr-defined]
    return [
        Request.make(ident, [Message("system", "You are a concise coding assistant."),
                             Message("user", q)], sp)
        for q in QUESTIONS
    ]  # fmt: skip


def test_openai_backend_concurrency_4(openai_server: str, tmp_path: Path) -> None:
    backend = OpenAIBackend("smollm2", base_url=openai_server)
    port = openai_server.split(":")[2].split("/")[0]
    assert backend.identity()["host"] == f"127.0.0.1:{port}"  # another port, another model
    reqs = _requests(backend, SamplingParams(temperature=0.0, max_tokens=24, seed=1))
    store = Store(tmp_path / "s.sqlite")
    batches: list[int] = []

    def sink(gens: list[Generation]) -> None:
        batches.append(len(gens))
        store.put_generations(gens, "openai:smollm2", {})

    out = generate_all(
        backend, reqs, options=DispatchOptions(concurrency=4, timeout_s=120, flush_every=3),
        sink=sink,
    )  # fmt: skip
    assert len(out) == len(QUESTIONS) and sum(batches) == len(QUESTIONS)
    for g in out:
        assert g.ok and g.text, g.error
        assert g.prompt_tokens and g.prompt_tokens > 5
        assert g.completion_tokens and 0 < g.completion_tokens <= 24
        assert g.finish_reason in ("stop", "length")
    stored = store.get_generations(r.key for r in reqs)
    assert {k: (g.prompt_tokens, g.completion_tokens) for k, g in stored.items()} == {
        g.key: (g.prompt_tokens, g.completion_tokens) for g in out
    }
    # Temperature 0: asking again gives the same text.
    again = generate_all(
        backend, reqs[:2], options=DispatchOptions(concurrency=2), sink=lambda _: None
    )
    assert [g.text for g in again] == [g.text for g in out[:2]]


def test_anthropic_backend_messages_api(openai_server: str) -> None:
    base = openai_server[: -len("/v1")] if openai_server.endswith("/v1") else openai_server
    backend = AnthropicBackend("smollm2", base_url=base)
    reqs = _requests(backend, SamplingParams(temperature=0.0, max_tokens=16, stop=("\n\n\n",)))[:4]
    out = generate_all(
        backend, reqs, options=DispatchOptions(concurrency=4, timeout_s=120), sink=lambda _: None
    )
    for g in out:
        assert g.ok and g.text, g.error
        assert g.prompt_tokens and g.completion_tokens and g.completion_tokens <= 16
        assert g.finish_reason in ("end_turn", "max_tokens", "stop_sequence")
