"""Real OpenAI and Anthropic backends through the dispatcher, against a server that misbehaves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codal_bench.backends.anthropic import AnthropicBackend
from codal_bench.backends.openai import OpenAIBackend
from codal_bench.dispatch import BackendFailed, DispatchOptions, generate_all
from codal_bench.store import Store
from codal_bench.types import Generation, Message, Request, SamplingParams, UsageError
from tests.fault_server import FaultServer

RETRY_AFTER = 1.0
OPTS = dict(concurrency=4, timeout_s=1.0, max_attempts=3, backoff_initial_s=0.05, backoff_max_s=0.2)


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer(retry_after=RETRY_AFTER, hang_s=20) as srv:
        yield srv


def backend(kind: str, srv: FaultServer, **options: Any) -> Any:
    if kind == "openai":
        return OpenAIBackend("fake-model", base_url=srv.url + "/v1", **options)
    return AnthropicBackend("fake-model", base_url=srv.url, **options)


def requests_for(b: Any, prompts: list[str], **params: Any) -> list[Request]:
    sp = SamplingParams(**{"max_tokens": 32, **params})
    return [
        Request.make(b.identity(), [Message("system", "Be brief."), Message("user", p)], sp)
        for p in prompts
    ]


@pytest.fixture(autouse=True)
def no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_every_request_ends_in_an_answer_or_an_error(kind: str, server: FaultServer) -> None:
    tag = f"every-{kind}"
    faults = {
        "ok": "answer",
        "429": "answer",
        "500": "answer",
        "503,529": "answer",
        "hang": "answer",
        "malformed": "answer",
        "drop": "answer",
        "drop,hang": "answer",
        "429,malformed": "answer",
        "500*": "error",
        "malformed*": "error",
        "400": "error",
        "drop,hang,500": "error",
    }
    prompts = [f"{tag} {i} FAULTS={f}" for i, f in enumerate(faults)]
    b = backend(kind, server)
    batches: list[list[Generation]] = []
    out = generate_all(
        b, requests_for(b, prompts), options=DispatchOptions(**OPTS), sink=batches.append
    )
    assert len(out) == len(prompts)
    for prompt, expected, g in zip(prompts, faults.values(), out, strict=True):
        assert (g.text is None) != (g.error is None), prompt
        if expected == "answer":
            assert g.ok and g.text.startswith("echo:"), (prompt, g.error)
            assert g.prompt_tokens and g.completion_tokens and g.finish_reason
        else:
            assert g.text is None and g.error, prompt
    by_prompt = {p: g for p, g in zip(prompts, out, strict=True)}
    assert "after 3 attempts" in (by_prompt[prompts[9]].error or "")
    assert len(server.hits_for(prompts[11])) == 1  # a 400 is not retried
    assert sum(len(x) for x in batches) == len(prompts)


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize("form", ["429", "429date@2"])
def test_retry_after_is_honoured(kind: str, form: str, server: FaultServer) -> None:
    prompt = f"wait-{kind}-{form} FAULTS={form}"
    b = backend(kind, server)
    (g,) = generate_all(
        b, requests_for(b, [prompt]), options=DispatchOptions(**OPTS), sink=lambda _: None
    )
    assert g.ok
    first, second = server.hits_for(prompt)[:2]
    waited = second.t - first.t
    if form == "429":  # delta-seconds: at least what was asked, plus at most the jitter
        assert RETRY_AFTER <= waited < RETRY_AFTER + 0.05 + 0.5, waited
    else:  # an HTTP date has one-second resolution: somewhere in (1, 2] seconds from the 429
        assert 0.9 <= waited < 2.0 + 0.05 + 0.5, waited
    print(f"{kind} {form}: waited {waited:.3f}s")


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_rerun_retries_only_the_errors(kind: str, server: FaultServer, tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    b = backend(kind, server)
    prompts = [f"rerun-{kind} {i}" + (" FAULTS=500,500" if i % 3 == 0 else "") for i in range(9)]
    reqs = requests_for(b, prompts)
    bodies = {r.key: {"prompt": p} for r, p in zip(reqs, prompts, strict=True)}
    opts = DispatchOptions(**{**OPTS, "max_attempts": 2})

    def sink(batch: list[Generation]) -> None:
        store.put_generations(batch, kind, bodies)

    first = generate_all(b, reqs, options=opts, sink=sink)
    failed = {r.key for r, g in zip(reqs, first, strict=True) if g.error}
    assert failed == {reqs[i].key for i in (0, 3, 6)}
    assert all(g.text is None for g in first if g.error)

    cached = store.get_generations([r.key for r in reqs])  # errors are left out: they retry
    todo = [r for r in reqs if r.key not in cached]
    assert {r.key for r in todo} == failed
    second = generate_all(b, todo, options=opts, sink=sink)
    assert all(g.ok for g in second)
    for i, p in enumerate(prompts):
        assert len(server.hits_for(p)) == (3 if i % 3 == 0 else 1), p
    final = store.get_generations([r.key for r in reqs])
    assert len(final) == 9 and all(g.ok for g in final.values())


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_bad_key_stops_the_run(kind: str, server: FaultServer) -> None:
    b = backend(kind, server)
    prompts = [f"fatal-{kind} {i}" + (" FAULTS=401*" if i == 0 else "") for i in range(30)]
    with pytest.raises(BackendFailed, match="401"):
        generate_all(
            b,
            requests_for(b, prompts),
            options=DispatchOptions(**{**OPTS, "concurrency": 1}),
            sink=lambda _: None,
        )
    assert len(server.hits_for(f"fatal-{kind} ")) == 1


def test_openai_request_shape(server: FaultServer) -> None:
    b = backend("openai", server, top_k="40")
    prompt = "shape-openai"
    reqs = requests_for(b, [prompt], temperature=0.7, top_p=0.9, seed=3, stop=("###",))
    generate_all(b, reqs, options=DispatchOptions(**OPTS), sink=lambda _: None)
    (hit,) = server.hits_for(prompt)
    assert hit.path == "/v1/chat/completions"
    assert hit.headers["authorization"] == "Bearer EMPTY"
    body = hit.body
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"]) == (
        0.7,
        0.9,
        32,
        3,
    )
    assert body["stop"] == ["###"] and body["top_k"] == 40
    # The port is part of the identity: two local servers are two different models.
    assert b.identity() == {
        "backend": "openai",
        "model": "fake-model",
        "host": f"127.0.0.1:{server.port}",
        "options": {"top_k": 40},
    }


def test_anthropic_request_shape(server: FaultServer) -> None:
    b = backend("anthropic", server, api_key="sk-ant-secret")
    prompt = "shape-anthropic"
    reqs = requests_for(b, [prompt], temperature=0.5, top_p=0.8, stop=("###",))
    (g,) = generate_all(b, reqs, options=DispatchOptions(**OPTS), sink=lambda _: None)
    assert g.ok and g.finish_reason == "end_turn"
    (hit,) = server.hits_for(prompt)
    assert hit.path == "/v1/messages"
    body = hit.body
    assert body["system"] == "Be brief."
    assert body["messages"] == [{"role": "user", "content": prompt}]
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (32, 0.5, 0.8)
    assert body["stop_sequences"] == ["###"]
    assert "secret" not in repr(b.identity())


def test_keys_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError, match="OPENAI_API_KEY is not set"):
        OpenAIBackend("gpt-4o")
    with pytest.raises(UsageError, match="ANTHROPIC_API_KEY is not set"):
        AnthropicBackend("claude-3-5-sonnet")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    assert OpenAIBackend("gpt-4o").identity()["host"] == "api.openai.com"
    assert AnthropicBackend("claude-3-5-sonnet").identity()["host"] == "api.anthropic.com"
    monkeypatch.setenv("OPENAI_BASE_URL", "")  # set but empty: the official API, not ""
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "")
    assert str(OpenAIBackend("gpt-4o")._make_client().base_url) == "https://api.openai.com/v1/"
    assert str(AnthropicBackend("claude-x")._make_client().base_url) == "https://api.anthropic.com"
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:9/v1")
    assert OpenAIBackend("m").identity()["host"] == "localhost:9"


def test_sync_generate_runs_the_dispatcher(server: FaultServer) -> None:
    b = backend("openai", server)
    out = b.generate(requests_for(b, ["sync-1", "sync-2 FAULTS=500"]))
    assert [g.ok for g in out] == [True, True]
    out = b.generate(requests_for(b, ["sync-3"]))  # a second event loop: a fresh client
    assert out[0].ok
    b.close()
