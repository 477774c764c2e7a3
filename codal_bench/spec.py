"""Model specs: what `--model` and `--judge` accept, turned into a backend name and a model name.

`BACKEND:NAME` always works (that is how plugins are reached); the short forms cover what users
type most: a checkpoint directory, `gpt-4o`, `claude-3-5-sonnet`, `smollm2`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import registry
from .types import Backend, UsageError

EMBEDDED = "smollm2"


@dataclass(frozen=True)
class ModelSpec:
    backend: str
    model: str
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def __str__(self) -> str:
        return f"{self.backend}:{self.model}"

    def public_options(self) -> dict[str, Any]:
        """Options safe to store: anything that looks like a credential is dropped."""
        from .config import public

        return public(self.options)


def parse_spec(text: str, options: dict[str, Any] | None = None) -> ModelSpec:
    """Parse a model spec; UsageError (with suggestions) for an unknown backend."""
    text = text.strip()
    opts = dict(options or {})
    if not text:
        raise UsageError("empty model spec")
    m = re.match(r"^([A-Za-z][\w.-]*):(?!//)(.+)$", text)
    if m:
        backend, model = m.group(1), m.group(2)
        known = registry.names("backend")
        if backend not in known:
            raise UsageError(f"unknown backend {backend!r}{registry.suggest(backend, known)}")
        return ModelSpec(backend, model, opts)
    if text == EMBEDDED:
        return ModelSpec("vllm", EMBEDDED, opts)
    path = Path(text).expanduser()
    if path.is_dir():
        return ModelSpec("vllm", str(path.resolve()), opts)
    if path.is_file() and path.suffix in (".jsonl", ".json", ".gz"):
        return ModelSpec("replay", str(path.resolve()), opts)
    if re.match(r"^(gpt-|o\d|chatgpt-|text-)", text):
        return ModelSpec("openai", text, opts)
    if text.startswith("claude"):
        return ModelSpec("anthropic", text, opts)
    if "/" in text or text.startswith("."):
        raise UsageError(f"model {text!r}: no such directory or samples file")
    raise UsageError(
        f"cannot tell which backend serves {text!r}: write BACKEND:NAME "
        f"(backends: {', '.join(registry.names('backend'))}), a checkpoint directory, "
        f"gpt-*, claude-*, or {EMBEDDED}"
    )


def build_backend(spec: ModelSpec) -> Backend:
    cls = registry.load("backend", spec.backend)
    backend: Backend = cls(spec.model, **spec.options)
    return backend
