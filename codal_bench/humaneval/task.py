"""HumanEval+ (EvalPlus release v0.1.10): loading the data, the prompt, and code extraction.

Data comes from the `data` argument, else `HUMANEVAL_OVERRIDE_PATH` (the variable EvalPlus
itself reads, so one setting points both tools at the same file), else the release download,
cached under the codal-eval cache directory.
"""

from __future__ import annotations

import os
import tempfile
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..files import file_sha256, read_jsonl
from ..taskfiles import task_config
from ..types import Message, Sample, UsageError, content_hash
from .extract import extract_code as extract_code  # re-exported (tests, audit)
from .scores import HumanEvalScoring

REQUIRED = ("task_id", "prompt", "entry_point", "canonical_solution", "base_input", "plus_input")

SYSTEM = "You are a careful Python programmer. Reply with code only, in one Python code block."
USER = (
    "Complete the Python function below so that it does what its docstring says. Return the "
    "whole function, including its signature and any imports it needs, in a single ```python "
    "code block, without tests or example calls.\n\n```python\n{prompt}```"
)


def read_problems(path: Path) -> list[dict[str, Any]]:
    """Problems of an EvalPlus-format file (.jsonl or .jsonl.gz), checked for required fields."""
    if not path.is_file():
        raise UsageError(f"HumanEval+ data file {path} does not exist")
    rows = []
    for n, row in read_jsonl(path):
        missing = [k for k in REQUIRED if k not in row]
        if missing:
            raise UsageError(
                f"{path}:{n}: not EvalPlus HumanEval+ data (missing {', '.join(missing)})"
            )
        rows.append(row)
    if not rows:
        raise UsageError(f"{path}: no HumanEval+ problems in the file")
    return rows


class HumanEvalPlusTask:
    """HumanEval+: 164 problems, each graded on its base and plus inputs by the sandbox."""

    name = "humaneval-plus"
    release_name = "HumanEvalPlus"
    scoring = HumanEvalScoring()

    def __init__(self, **_options: object) -> None:
        self.config = task_config(self.name)
        self.judge_kinds = tuple(self.config.get("judges") or ())
        self._source: str | None = None
        self._sha: str | None = None

    def _download(self) -> Path:
        from .checker import default_cache_dir

        src = self.config.get("source") or {}
        url = str(src["url"])
        dest = default_cache_dir() / "data" / f"{self.release_name}-{src['release']}.jsonl.gz"
        if dest.is_file():
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                data = resp.read()
        except OSError as exc:
            raise UsageError(
                f"cannot download {url} ({exc}); point HUMANEVAL_OVERRIDE_PATH or --data at a "
                f"local {self.release_name}.jsonl.gz"
            ) from exc
        with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False) as tmp:
            tmp.write(data)
        os.replace(tmp.name, dest)
        return dest

    def load(
        self, data: str | None = None, limit: int | None = None, ids: Sequence[str] | None = None
    ) -> list[Sample]:
        env = str((self.config.get("source") or {}).get("env") or "HUMANEVAL_OVERRIDE_PATH")
        path = Path(data or os.environ.get(env) or self._download())
        rows = read_problems(path)
        self._source, self._sha = str(path), file_sha256(path)
        if ids is not None:
            by_id = {r["task_id"]: r for r in rows}
            unknown = [i for i in ids if i not in by_id]
            if unknown:
                raise UsageError(f"unknown {self.name} task id(s): {', '.join(unknown[:5])}")
            rows = [by_id[i] for i in dict.fromkeys(ids)]
        if limit is not None:
            rows = rows[: max(0, limit)]
        return [Sample(task=self.name, item_id=r["task_id"], group=self.name, data=r) for r in rows]

    def messages(self, sample: Sample) -> list[Message]:
        return [
            Message("system", SYSTEM),
            Message("user", USER.format(prompt=sample.data["prompt"])),
        ]

    def recognizes(self, path: str) -> bool:
        return "humaneval" in Path(path).name.lower()

    def describe(self) -> dict[str, Any]:
        return {
            "source": self._source,
            "data_sha256": self._sha,
            "prompt_sha256": content_hash({"system": SYSTEM, "user": USER}),
        }


class HumanEvalPlusMiniTask(HumanEvalPlusTask):
    """HumanEval+ Mini: the same problems with a reduced set of plus inputs."""

    name = "humaneval-plus-mini"
    release_name = "HumanEvalPlus-Mini"
