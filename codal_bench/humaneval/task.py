"""HumanEval+ (EvalPlus release v0.1.10): loading the data, the prompts per backend, extraction.

Prompt sets: `evalplus` (the default) builds the prompt as EvalPlus 0.3.1's codegen does for the
candidate's backend: the OpenAI provider sends its system message and the instruction, the
Anthropic one the instruction only (with EvalPlus' stop strings), the vLLM one the instruction
plus its response prefix as a prefill (the rendered prompt is `make_raw_chat_prompt`'s) and its
stop strings; answers go through `evalplus.sanitize`. `paper` is the paper's own script
(prompts read from its pinned `evalplus/generate.py`, generation forced inside a python fence and
cut at the closing fence). `codal-eval` is our former prompt and extraction. A replay file is
evaluated as `evalplus.evaluate` does (`solution` as written, `completion` after the prompt),
or sanitized first with `sanitize=True`.

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
from .extract import extract_code
from .scores import HumanEvalScoring

__all__ = ["HumanEvalPlusMiniTask", "HumanEvalPlusTask", "PRESETS", "extract_code"]

REQUIRED = ("task_id", "prompt", "entry_point", "canonical_solution", "base_input", "plus_input")

# codal-eval's own former prompt, kept as the named prompt set `codal-eval`.
OWN_SYSTEM = "You are a careful Python programmer. Reply with code only, in one Python code block."
OWN_USER = (
    "Complete the Python function below so that it does what its docstring says. Return the "
    "whole function, including its signature and any imports it needs, in a single ```python "
    "code block, without tests or example calls.\n\n```python\n{prompt}```"
)
PROMPT_SETS = ("evalplus", "paper", "codal-eval")
# Backends that continue a final assistant message (a prefill; see backends/_prefill.py). The
# Anthropic API can too, but refuses a prefill that ends in whitespace, as the paper's does.
PREFILL_BACKENDS = ("vllm",)
# The paper's script forced generation to start inside a python code fence and cut it at the
# first closing fence: a prefill and a stop string.
PAPER_FENCE_OPEN, PAPER_FENCE_CLOSE = "```python\n", "```"
# Protocol presets for the lead's --protocol wiring: prompt set, sampling and samples per task.
PRESETS: dict[str, dict[str, Any]] = {
    "evalplus": {  # evalplus codegen's defaults: greedy, its providers' top_p, 768 new tokens
        "prompts": "evalplus",
        "sampling": {"temperature": 0.0, "top_p": 0.95, "max_tokens": 768},
        "samples": 1,
    },
    "paper": {  # the paper's Table V: T=0.8, top_p 0.95, 10 samples, 512 new tokens
        "prompts": "paper",
        "sampling": {"temperature": 0.8, "top_p": 0.95, "max_tokens": 512},
        "samples": 10,
    },
    "codal-eval": {
        "prompts": "codal-eval",
        "sampling": {"temperature": 0.0, "top_p": 1.0, "max_tokens": 512},
        "samples": 1,
    },
}


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
    presets = PRESETS

    def __init__(
        self, prompts: str = "evalplus", sanitize: bool = False, **_options: object
    ) -> None:
        self.config = task_config(self.name)
        self.judge_kinds = tuple(self.config.get("judges") or ())
        if prompts not in PROMPT_SETS:
            raise UsageError(
                f"unknown HumanEval+ prompt set {prompts!r} (known: {', '.join(PROMPT_SETS)})"
            )
        self.prompts = prompts
        self.sanitize = sanitize
        self._source: str | None = None
        self._sha: str | None = None
        self.prompt_set = self._prompt_set()

    def _prompt_set(self) -> dict[str, Any]:
        """Name, text hash and origin of the prompts, for the run record."""
        if self.prompts == "evalplus":
            from .evalplus_source import evalplus_prompts

            ep = evalplus_prompts()
            texts: dict[str, Any] = {k: v for k, v in ep.__dict__.items() if k != "version"}
            origin: dict[str, Any] = {"evalplus": ep.version}
        elif self.prompts == "paper":
            from ..codal import upstream

            paper = upstream.paper_humaneval_prompts()
            texts = {"system": paper.system, "user": paper.user_format,
                     "fence": [PAPER_FENCE_OPEN, PAPER_FENCE_CLOSE]}  # fmt: skip
            origin = {"upstream": {"repository": upstream.REPOSITORY, "commit": upstream.COMMIT,
                                   "files": {upstream.HUMANEVAL_FILE: paper.sha256}}}  # fmt: skip
        else:
            texts, origin = {"system": OWN_SYSTEM, "user": OWN_USER}, {}
        return {"name": self.prompts, "sha256": content_hash(texts), **origin}

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

    def messages(self, sample: Sample, backend: str = "openai") -> list[Message]:
        """The candidate's messages for `backend` (a backend registry name).

        A final assistant message is a prefill: the backend continues it. For `replay` the
        problem's prompt is that message, so a `completion` row continues the prompt.
        """
        prompt: str = sample.data["prompt"]
        if self.prompts == "codal-eval":
            return [Message("system", OWN_SYSTEM), Message("user", OWN_USER.format(prompt=prompt))]
        if backend == "replay":
            return [Message("assistant", prompt)]
        if self.prompts == "paper":
            from ..codal import upstream

            paper = upstream.paper_humaneval_prompts()
            msgs = [
                Message("system", paper.system),
                Message("user", paper.user_format.format(prompt)),
            ]
            if backend in PREFILL_BACKENDS:
                msgs.append(Message("assistant", PAPER_FENCE_OPEN))
            return msgs
        from .evalplus_source import evalplus_prompts

        ep = evalplus_prompts()
        task_prompt = prompt.strip() + "\n"  # codegen() strips the problem's prompt
        if backend == "vllm":  # make_raw_chat_prompt: the user turn and the response prefix
            return [
                Message("user", f"{ep.instruction_prefix}\n```\n{task_prompt.strip()}\n```\n"),
                Message("assistant", f"{ep.response_prefix}\n```python\n"),
            ]
        if backend == "anthropic":
            return [
                Message(
                    "user", ep.instruction_prefix + f"\n```python\n{task_prompt.strip()}\n```\n"
                )
            ]
        # OpenAI (and any other chat API): make_request's system message and the instruction.
        return [
            Message("system", ep.openai_system),
            Message("user", ep.instruction_prefix + f"\n```python\n{task_prompt.strip()}\n```"),
        ]

    def recognizes(self, path: str) -> bool:
        return "humaneval" in Path(path).name.lower()

    def stop(self, backend: str = "openai") -> tuple[str, ...]:
        """Stop strings for `backend`; the runner puts them in SamplingParams.stop."""
        if backend == "replay" or self.prompts == "codal-eval":
            return ()
        if self.prompts == "paper":
            return (PAPER_FENCE_CLOSE,) if backend in PREFILL_BACKENDS else ()
        from .evalplus_source import evalplus_prompts

        ep = evalplus_prompts()
        if backend == "vllm":
            return ep.eos + ep.chat_eos
        if backend == "anthropic":
            return ep.eos
        return ()

    def extraction(self, backend: str = "openai") -> str:
        """How answers from `backend` become programs (an ExecJudge `extraction` name)."""
        if self.prompts == "codal-eval":
            return "codal-eval"
        if backend == "replay":
            return "sanitize" if self.sanitize else "as-written"
        if self.prompts == "paper":  # cut at the closing fence by the stop string: run as written
            return "as-written" if backend in PREFILL_BACKENDS else "sanitize"
        return "evalplus-local" if backend == "vllm" else "sanitize"

    def describe(self) -> dict[str, Any]:
        return {
            "source": self._source,
            "data_sha256": self._sha,
            "prompt_sha256": self.prompt_set["sha256"],
            "prompt_set": self.prompt_set,
            "sanitize": self.sanitize,
        }


class HumanEvalPlusMiniTask(HumanEvalPlusTask):
    """HumanEval+ Mini: the same problems with a reduced set of plus inputs."""

    name = "humaneval-plus-mini"
    release_name = "HumanEvalPlus-Mini"
