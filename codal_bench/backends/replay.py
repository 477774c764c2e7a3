"""Replay: answers from a samples file instead of a model.

The file is EvalPlus-compatible JSONL: one object per line with `task_id` and `solution` (full
code) or `completion` (text that follows the prompt). Several lines for one task are its samples
0, 1, 2, ... in file order. A file that covers only some tasks restricts the run to those tasks,
which is why the backend reports what it covers.

As in `evalplus.evaluate`, a `solution` is the whole answer and a `completion` continues the
prompt: when a request ends with an assistant message (a prefill; a code task puts the problem's
prompt there for replay), the answer is that message followed by the completion.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..files import file_sha256, read_jsonl
from ..types import Generation, Request, UsageError


class ReplayBackend:
    def __init__(self, model: str, **options: Any) -> None:
        self.path = Path(model).expanduser()
        if not self.path.is_file():
            raise UsageError(f"replay: samples file {self.path} does not exist")
        self.sha256 = file_sha256(self.path)
        self.answers: dict[str, list[tuple[str, bool]]] = {}  # (text, is a completion)
        for n, row in read_jsonl(
            self.path, "replay: ", "an object with 'task_id' and 'solution' or 'completion'"
        ):
            if not isinstance(row.get("task_id"), str):
                raise UsageError(f"replay: {self.path}:{n}: field 'task_id' is missing")
            text = row.get("solution", row.get("completion"))
            if not isinstance(text, str):
                raise UsageError(
                    f"replay: {self.path}:{n}: field 'solution' or 'completion' is missing "
                    "or not a string"
                )
            self.answers.setdefault(row["task_id"], []).append((text, "solution" not in row))
        if not self.answers:
            raise UsageError(f"replay: {self.path}: no samples")

    def identity(self) -> dict[str, Any]:
        return {"backend": "replay", "path": str(self.path.resolve()), "sha256": self.sha256}

    def covered_items(self) -> dict[str, int]:
        """item id -> number of samples in the file."""
        return {k: len(v) for k, v in self.answers.items()}

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        out = []
        for r in requests:
            texts = self.answers.get(r.item_id, [])
            if r.sample_index < len(texts):
                text, completion = texts[r.sample_index]
                if completion and r.messages and r.messages[-1].role == "assistant":
                    text = r.messages[-1].content + text
                out.append(Generation(r.key, text, finish_reason="replay"))
            else:
                out.append(
                    Generation(
                        r.key, None, f"replay file has no sample {r.sample_index} for {r.item_id}"
                    )
                )
        return out

    def close(self) -> None:
        pass
