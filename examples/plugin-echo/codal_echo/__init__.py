"""A codal-eval backend plugin in a dozen lines: it answers every request by echoing the prompt.

Its answers end with a `Rating: N` line (N from 1 to 10, fixed by the prompt), so it also serves
as a judge: `codal-eval --model echo:a --judge echo:b` runs end to end with no model at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from codal_bench.types import Generation, Request


class EchoBackend:
    def __init__(self, model: str, **options: Any) -> None:
        self.model = model
        self.options = options

    def identity(self) -> dict[str, Any]:
        # Part of every cache key: change it whenever the answers would change.
        return {"backend": "echo", "model": self.model, "version": 1}

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        out = []
        for r in requests:
            prompt = r.messages[-1].content
            rating = int(hashlib.sha256(prompt.encode()).hexdigest(), 16) % 10 + 1
            text = f"{prompt[:200]}\n\nRationale: echoed.\nRating: {rating}"
            out.append(
                Generation(
                    r.key,
                    text,
                    prompt_tokens=len(prompt) // 4,
                    completion_tokens=len(text) // 4,
                    finish_reason="stop",
                )
            )
        return out

    def close(self) -> None:
        pass
