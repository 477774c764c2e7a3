"""The data that flows through a run, and the four protocols that carry the architecture.

Everything here is plain data (frozen dataclasses) so that it can be hashed into content keys,
stored as JSON and compared in tests. Nothing in this module imports anything heavy.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .errors import BadFlag as BadFlag  # re-exported: older imports name them from here
from .errors import CodalError as CodalError
from .errors import PreflightError as PreflightError
from .errors import RunStopped as RunStopped
from .errors import UsageError as UsageError

if TYPE_CHECKING:
    from .scoring import MetricScores


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace, so equal content always hashes equally."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def content_hash(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True)
class SamplingParams:
    """Sampling settings; part of every generation's content key."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 1024
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop)
        return d


@dataclass(frozen=True)
class Sample:
    """One benchmark item.

    `data` holds the task-specific fields (an instruction and its references, a prompt and its
    tests, ...). `group` is the stratum the item's score is averaged within (a category of the
    benchmark, or the task name when it has none).
    """

    task: str
    item_id: str
    group: str
    data: dict[str, Any] = field(hash=False, compare=False)


@dataclass(frozen=True)
class Request:
    """One call to a model. `key` is the content key under which its answer is stored."""

    key: str
    messages: tuple[Message, ...]
    params: SamplingParams
    sample_index: int = 0
    item_id: str = ""
    task: str = ""

    @staticmethod
    def make(
        model_identity: dict[str, Any],
        messages: Sequence[Message],
        params: SamplingParams,
        sample_index: int = 0,
        item_id: str = "",
        task: str = "",
    ) -> Request:
        """Build a request whose key covers everything that can change the answer."""
        key = content_hash(
            {
                "kind": "generation",
                "model": model_identity,
                "messages": [asdict(m) for m in messages],
                "params": params.to_dict(),
                "sample_index": sample_index,
            }
        )
        return Request(key, tuple(messages), params, sample_index, item_id, task)


@dataclass
class Generation:
    """A model's answer to one request, or the error that remained after retries.

    An error is never an empty answer: `text` is None when `error` is set.
    """

    key: str
    text: str | None
    error: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    latency_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.text is not None


@dataclass
class Grade:
    """A grader's verdict on one answer.

    status: "rated" (rating parsed), "parse_failure" (judge output had no rating),
    "pass" / "fail" / "timeout" / "error" (execution), "judge_error" (the judge call failed).
    """

    key: str
    status: str
    rating: float | None = None
    rationale: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GradeInput:
    """What a judge sees: the item, one answer to it, and which repeat of the grading this is."""

    sample: Sample
    answer: str
    sample_index: int = 0
    repeat: int = 0


GenerateFn = Callable[[Sequence[Request]], list[Generation]]
"""What the runner hands a judge: cached, stored, concurrent generation on the judge's backend."""


@runtime_checkable
class Backend(Protocol):
    """Generates answers for a batch of requests.

    The runner owns caching, retries, concurrency limits and storage; a backend only turns
    requests into generations. A backend may instead (or also) offer
    `async def agenerate(self, request) -> Generation` for one request at a time; the runner
    then drives it with its own concurrency and retry policy.
    """

    def identity(self) -> dict[str, Any]:
        """Name, version and, for local checkpoints, a fingerprint: part of every cache key."""
        ...

    def generate(self, requests: Sequence[Request]) -> list[Generation]: ...

    def close(self) -> None: ...


@runtime_checkable
class Judge(Protocol):
    """Grades a batch of answers. An LLM judge calls `generate` (the runner's cached path)."""

    kind: str  # "llm" (built as cls(backend, model_name=, templates=, reference=, repeats=),
    # and then offers `settings(task_data)` for the run record) or anything else (built as cls())

    def identity(self) -> dict[str, Any]: ...

    def prepare(self, task_data: dict[str, Any]) -> None:
        """Check what can be checked before any call, given the loaded task's `describe()`."""
        ...

    def grade_key(self, item: GradeInput) -> str:
        """Content key of the grade: changes whenever anything that could change it changes."""
        ...

    def grade(self, items: Sequence[GradeInput], generate: GenerateFn) -> list[Grade]: ...


@dataclass
class ExecResult:
    """What an executor observed; it never decides pass/fail itself.

    `outputs` holds one parsed JSON value per line the program printed (unparsable lines are
    dropped and counted in `detail`), so a caller can use what a crashed program got through.
    """

    status: str  # "ok", "timeout" (CPU or wall limit), "error" (crash, non-zero exit)
    outputs: list[Any] = field(default_factory=list)
    stdout_tail: str = ""
    stderr_tail: str = ""
    cpu_s: float = 0.0
    wall_s: float = 0.0
    exit_code: int | None = None  # negative: killed by that signal; 128+N: bwrap's child got N
    detail: str = ""  # why the status is not "ok"


@runtime_checkable
class Executor(Protocol):
    """Runs programs under OS limits and returns what they produced."""

    def identity(self) -> dict[str, Any]:
        """Name, version and limits: part of every execution grade's key."""
        ...

    def run(self, program: str, stdin: bytes, cpu_s: float, wall_s: float) -> ExecResult:
        """Run a Python `program` fed `stdin`; stop it at `cpu_s` CPU seconds or `wall_s`."""
        ...


@runtime_checkable
class Scoring(Protocol):
    """A task's scoring face: everything downstream of grading asks this, never a task's name.

    It is a class attribute of the task (`Task.scoring`), so reports and the leaderboard can score
    stored runs without building the task (which may read data or download prompts).
    `codal_bench.scoring.BaseScoring` gives defaults for all but `score`.
    """

    def score(self, rows: Sequence[dict[str, Any]]) -> list[MetricScores]:
        """The task's metrics from one run's stored rows (every planned item, ungraded ones too).

        Items pair up between runs by (stratum, item id); an item without a usable grade scores
        its metric's `error_value`.
        """
        ...

    def comparable(self, task_config: dict[str, Any]) -> dict[str, Any]:
        """Task-specific settings, beyond the generic ones, that two comparable runs share."""
        ...

    def describe_item(self, rows: Sequence[dict[str, Any]]) -> str:
        """Why one item scored what it did, in one line (its rows: samples and repeats)."""
        ...

    def export_fields(self, row: dict[str, Any]) -> dict[str, Any]:
        """Task-specific fields of one exported row."""
        ...

    def notes(self, rows: Sequence[dict[str, Any]]) -> list[str]:
        """Lines the run summary prints under the task's metrics."""
        ...


@runtime_checkable
class Task(Protocol):
    """Loads samples (with a local override), builds each sample's messages, names its judges.

    Built as `cls(**options)`; options a task does not use are ignored (`RunOptions.task_options`).
    `config` is the task's declaration (tasks/<name>.yaml for built-ins): `generation`
    (temperature, top_p, max_tokens, samples), `judges`, `default`.
    """

    name: str
    judge_kinds: tuple[str, ...]
    config: dict[str, Any]
    scoring: Scoring

    def load(
        self, data: str | None = None, limit: int | None = None, ids: Sequence[str] | None = None
    ) -> list[Sample]: ...

    def messages(self, sample: Sample, backend: str = "openai") -> list[Message]:
        """The candidate's messages for a backend (its registry name: vllm, openai, ...).

        A final assistant message is a prefill: the backend continues that message.
        """
        ...

    def describe(self) -> dict[str, Any]:
        """Data source, data hash and prompt hash, for the run record."""
        ...

    def recognizes(self, path: str) -> bool:
        """Whether a data file given without `TASK=` is this task's (by its name)."""
        ...
