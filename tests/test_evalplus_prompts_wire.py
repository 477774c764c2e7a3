"""Acceptance 2: a default HumanEval+ run prompts each backend exactly as EvalPlus 0.3.1 does.

EvalPlus' own `run_codegen` runs in a subprocess (it reads HUMANEVAL_OVERRIDE_PATH at import),
against the same loopback server as codal-eval (OpenAI, Anthropic), or with a stand-in `vllm`
module that records the prompt and stop strings EvalPlus hands to `LLM.generate` (vLLM). The
prefixes therefore come from the installed EvalPlus, by its own code path, never from ours.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from codal_bench.runner import RunOptions, run
from codal_bench.store import Store
from tests.counting_server import CountingServer, cli, messages_key

pytestmark = pytest.mark.slow  # each test starts EvalPlus in a subprocess and runs the sandbox

ROOT = Path(__file__).resolve().parents[1]
PLUS = ROOT.parent / "shared" / "data" / "humanevalplus" / "HumanEvalPlus-v0.1.10.jsonl.gz"
N_TASKS = 2

_EVALPLUS = r"""
import json, sys, types
backend, out_path, arg = sys.argv[1:4]
records = []
if backend == "anthropic":
    # anthropic 2.x takes no top_p/temperature keywords (EvalPlus passes both): send them in the
    # body as an older SDK did, so that EvalPlus' request reaches the server unchanged otherwise.
    from anthropic.resources.messages import Messages
    original = Messages.create
    def create(self, *a, top_p=None, temperature=None, **kw):
        kw["extra_body"] = {"top_p": top_p, "temperature": temperature}
        return original(self, *a, **kw)
    Messages.create = create
if backend == "vllm":
    fake = types.ModuleType("vllm")
    class SamplingParams:
        def __init__(self, **kw):
            self.kw = kw
    class Out:
        def __init__(self):
            self.outputs = [types.SimpleNamespace(text="def f():\n\treturn 1\n")]
    class LLM:
        def __init__(self, **kw):
            pass
        def generate(self, prompts, params, use_tqdm=False):
            for p in prompts:
                records.append({"prompt": p, "params": params.kw})
            return [Out() for _ in prompts]
    fake.LLM, fake.SamplingParams = LLM, SamplingParams
    sys.modules["vllm"] = fake
    import transformers
    from transformers import PreTrainedTokenizerFast
    tok = PreTrainedTokenizerFast.from_pretrained(arg)
    transformers.AutoTokenizer.from_pretrained = staticmethod(lambda *a, **k: tok)
from evalplus.codegen import run_codegen
run_codegen(model="evalref" if backend != "vllm" else arg, dataset="humaneval", backend=backend,
            greedy=True, id_range=[0, int(sys.argv[5])], root=sys.argv[4],
            base_url=arg if backend == "openai" else None)
json.dump(records, open(out_path, "w"))
"""


def _evalplus(backend: str, arg: str, tmp: Path, env: dict[str, str] | None = None) -> Any:
    script = tmp / "ref.py"
    script.write_text(_EVALPLUS)
    out = tmp / "ref.json"
    full_env = {**os.environ, "HUMANEVAL_OVERRIDE_PATH": str(PLUS), **(env or {})}
    p = subprocess.run(
        [sys.executable, str(script), backend, str(out), arg, str(tmp / "evalplus_results"),
         str(N_TASKS)],
        env=full_env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(out.read_text())


def _ours(srv: CountingServer, spec: str, url: str, tmp: Path) -> None:
    p = cli(
        "--model", spec, "--base-url", url, "--tasks", "humaneval-plus", "--limit", str(N_TASKS),
        "--data", str(PLUS), "--store", str(tmp / "s.sqlite"),
        env={"OPENAI_API_KEY": "x", "ANTHROPIC_API_KEY": "x"},
    )  # fmt: skip
    assert p.returncode in (0, 1), p.stderr  # 1: the server's answers fail the tests, fine


def test_openai_requests_equal_evalplus(tmp_path: Path) -> None:
    with CountingServer() as srv:
        _ours(srv, "openai:cand", srv.url, tmp_path)
        _evalplus("openai", srv.url, tmp_path, {"OPENAI_API_KEY": "x"})
        ours, theirs = srv.hits_for("cand"), srv.hits_for("evalref")
    assert len(ours) == len(theirs) == N_TASKS
    # Our requests go out concurrently: compare in a fixed order.
    ours.sort(key=lambda h: json.dumps(h.body["messages"]))
    theirs.sort(key=lambda h: json.dumps(h.body["messages"]))
    assert [messages_key(h.body["messages"]) for h in ours] == [
        messages_key(h.body["messages"]) for h in theirs
    ]
    for a, b in zip(ours, theirs, strict=True):
        assert a.body["max_tokens"] == b.body["max_tokens"] == 768
        assert a.body["temperature"] == b.body["temperature"] == 0
        assert a.body["top_p"] == b.body["top_p"] == 0.95
        assert "stop" not in a.body and "stop" not in b.body


def test_anthropic_requests_equal_evalplus(tmp_path: Path) -> None:
    with CountingServer() as srv:
        _ours(srv, "anthropic:cand", srv.root, tmp_path)
        _evalplus("anthropic", "", tmp_path, {"ANTHROPIC_BASE_URL": srv.root, "ANTHROPIC_KEY": "x"})
        ours, theirs = srv.hits_for("cand"), srv.hits_for("evalref")
    assert len(ours) == len(theirs) == N_TASKS
    ours.sort(key=lambda h: json.dumps(h.body["messages"]))
    theirs.sort(key=lambda h: json.dumps(h.body["messages"]))
    for a, b in zip(ours, theirs, strict=True):
        assert a.path.endswith("/messages") and b.path.endswith("/messages")
        assert a.body["messages"] == b.body["messages"]
        assert "system" not in a.body and "system" not in b.body
        assert a.body["stop_sequences"] == b.body["stop_sequences"]
        assert a.body["max_tokens"] == b.body["max_tokens"] == 768
        assert a.body["temperature"] == b.body["temperature"] == 0


CHAT_TEMPLATES = {
    # SmolLM2/ChatML style: contents as they are.
    "chatml": (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    ),
    # Llama-2 style: a BOS, [INST] tags and trimmed contents.
    "llama": (
        "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] "
        "{{ m['content'] | trim }} [/INST]{% else %} {{ m['content'] | trim }} {{ eos_token }}"
        "{% endif %}{% endfor %}"
    ),
}


def _tokenizer_dir(tmp: Path, template: str) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.WordLevel({"[UNK]": 0, "<s>": 1, "</s>": 2}, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=raw, unk_token="[UNK]", bos_token="<s>", eos_token="</s>"
    )
    tok.chat_template = CHAT_TEMPLATES[template]
    d = tmp / f"tok-{template}"
    tok.save_pretrained(str(d))
    (d / "config.json").write_text("{}")
    return d


class _FakeLLM:
    """Records what the backend hands vLLM; answers every prompt with one tab-indented def."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.calls: list[dict[str, Any]] = []

    def get_tokenizer(self) -> Any:
        return self.tokenizer

    def generate(self, prompts: list[str], params: list[Any], use_tqdm: bool = False) -> Any:
        from types import SimpleNamespace

        out = []
        for p, sp in zip(prompts, params, strict=True):
            self.calls.append({"prompt": p, "params": sp.kw})
            c = SimpleNamespace(text="def f():\n\treturn 1\n", index=0, token_ids=[1],
                                finish_reason="stop")  # fmt: skip
            out.append(SimpleNamespace(outputs=[c], prompt_token_ids=[1]))
        return out

    def chat(self, *a: Any, **k: Any) -> Any:
        raise AssertionError("a prefilled request must not go through llm.chat")


@pytest.mark.parametrize("template", sorted(CHAT_TEMPLATES))
def test_vllm_prompt_equals_make_raw_chat_prompt(
    template: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import PreTrainedTokenizerFast

    from codal_bench.backends import vllm as vb

    tok_dir = _tokenizer_dir(tmp_path, template)
    theirs = _evalplus("vllm", str(tok_dir), tmp_path)
    fake = _FakeLLM(PreTrainedTokenizerFast.from_pretrained(str(tok_dir)))

    class Params:
        def __init__(self, **kw: Any) -> None:
            self.kw = kw

    def engine(self: Any) -> Any:
        self._sampling_cls, self._has_template = Params, True
        return fake

    monkeypatch.setattr(vb.VLLMBackend, "_engine", engine)
    monkeypatch.setattr(vb, "_vllm_version", lambda: "fake")
    opts = RunOptions(model=f"vllm:{tok_dir}", tasks=["humaneval-plus"], limit=N_TASKS,
                      data={"humaneval-plus": str(PLUS)})  # fmt: skip
    run(opts, Store(tmp_path / "s.sqlite"))
    assert len(fake.calls) == len(theirs) == N_TASKS
    for ours, ref in zip(
        sorted(fake.calls, key=lambda c: c["prompt"]),
        sorted(theirs, key=lambda c: c["prompt"]),
        strict=True,
    ):
        assert ours["prompt"] == ref["prompt"]
        assert ours["params"]["stop"] == ref["params"]["stop"]
        assert ours["params"]["max_tokens"] == ref["params"]["max_tokens"] == 768
        assert ours["params"]["temperature"] == ref["params"]["temperature"] == 0
    # EvalPlus' stop strings include its chat-model fence closer; the prompt ends in the prefix.
    assert "\n```\n" in theirs[0]["params"]["stop"]
    assert theirs[0]["prompt"].endswith("```python\n")


@pytest.mark.e2e
def test_vllm_prefill_with_the_real_smollm2_tokenizer(smollm2_tokenizer: Any) -> None:
    """The embedded model's own chat template: our rendering equals make_raw_chat_prompt."""
    from evalplus.provider.utility import make_raw_chat_prompt

    from codal_bench.backends._prefill import render_prefill
    from codal_bench.humaneval.evalplus_source import evalplus_prompts
    from codal_bench.humaneval.task import HumanEvalPlusTask

    ep = evalplus_prompts()
    task = HumanEvalPlusTask()
    for s in task.load(str(PLUS), limit=3):
        want = make_raw_chat_prompt(
            s.data["prompt"].strip() + "\n", ep.instruction_prefix, ep.response_prefix,
            smollm2_tokenizer,
        )  # fmt: skip
        assert render_prefill(smollm2_tokenizer, task.messages(s, "vllm")) == want
        assert want.endswith(ep.response_prefix + "\n```python\n")


@pytest.fixture(scope="module")
def smollm2_tokenizer() -> Any:
    from transformers import AutoTokenizer

    from codal_bench.embedded import smollm2_checkpoint

    return AutoTokenizer.from_pretrained(str(smollm2_checkpoint()))
