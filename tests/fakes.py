"""Scripted backends for tests: they count every call, so caching can be proven by numbers."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, ClassVar

from codal_bench.types import Generation, Request


class CountingBackend:
    """Answers deterministically from the prompt; `calls` counts requests across instances."""

    calls: ClassVar[list[Request]] = []
    reply: ClassVar[str] = "def f():\n    return 1\n"

    def __init__(self, model: str, **options: Any) -> None:
        self.model = model
        self.options = options

    def identity(self) -> dict[str, Any]:
        return {"backend": "counting", "model": self.model}

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        out = []
        for r in requests:
            type(self).calls.append(r)
            out.append(Generation(r.key, self.answer(r), prompt_tokens=10, completion_tokens=5))
        return out

    def answer(self, r: Request) -> str:
        return f"answer {r.item_id} {r.sample_index}\n{self.reply}"

    def close(self) -> None:
        pass


class JudgeBackend(CountingBackend):
    """A judge whose rating is a deterministic function of what it is shown (1..10)."""

    calls: ClassVar[list[Request]] = []

    def identity(self) -> dict[str, Any]:
        return {"backend": "judge", "model": self.model}

    def answer(self, r: Request) -> str:
        if self.model == "mute":
            return "I cannot decide."
        digest = hashlib.sha256(r.messages[-1].content.encode()).digest()
        return f"Rationale: looks fine.\nRating: {1 + digest[0] % 10}"


class TrackedJudge(JudgeBackend):
    """A `JudgeBackend` that records each instance and when it was closed (engine sharing)."""

    calls: ClassVar[list[Request]] = []
    instances: ClassVar[list[TrackedJudge]] = []

    def __init__(self, model: str, **options: Any) -> None:
        super().__init__(model, **options)
        self.closed_after_calls: list[int] = []
        type(self).instances.append(self)

    def close(self) -> None:
        self.closed_after_calls.append(len(type(self).calls))
