"""What a run is asked to do (`RunOptions`), and what it writes down about itself.

`RunConfig` is written once, by the runner, and read by everyone (leaderboard, gate, regrade,
reports). It keeps the options the run was given, so repeating a stored run with another model
is the inverse of writing it (`RunConfig.rerun_options`), not a rebuild by hand. Backend options
(`-M`, `-J`, base URLs) are parsed in one place (`backend_options`) and stored without secrets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .types import BadFlag

CONFIG_VERSION = 2
SECRET_WORDS = (
    "key", "token", "secret", "passw", "auth", "bearer", "credential", "header", "cookie",
)  # fmt: skip


def is_secret(name: str) -> bool:
    """Whether an option of this name may hold a credential (`max_tokens` is a count)."""
    low = name.lower().lstrip("-").replace("-", "_")
    if low.endswith("tokens"):
        return False
    return any(w in low for w in SECRET_WORDS)


def public(options: dict[str, Any]) -> dict[str, Any]:
    """Options safe to store or print: anything that looks like a credential is dropped."""
    return {k: v for k, v in options.items() if not is_secret(k)}


def backend_options(
    pairs: Sequence[str], base_url: str | None = None, flag: str = "-M"
) -> dict[str, Any]:
    """`-M key=value` pairs (values stay strings; the backend coerces what it knows) plus the
    base URL flag, which wins over a `base_url=` pair."""
    out: dict[str, Any] = {}
    for p in pairs:
        if "=" not in p:
            raise BadFlag(f"{flag} {p!r}: expected key=value")
        k, v = p.split("=", 1)
        out[k.strip()] = v
    if base_url:
        out["base_url"] = base_url
    return out


@dataclass
class RunOptions:
    """Everything `codal-eval run` was asked; also what a stored run is repeated from."""

    model: str
    judge: str | None = None
    tasks: Sequence[str] = ()  # empty: the tasks whose YAML says `default: true`
    limit: int | None = None
    task_ids: Sequence[str] | None = None
    data: dict[str, str] = field(default_factory=dict)  # task -> local data file
    data_files: list[str] = field(default_factory=list)  # files given without TASK=
    data_revision: str | None = None  # the dataset revision to load (or a local copy is of)
    principles: str | None = None
    prompt_set: str | None = None  # a task's named candidate prompt set (e.g. evalplus, paper)
    sanitize: bool = False  # run raw replies of a samples file through the task's extraction
    protocol: str | None = None  # a preset per task: prompts, sampling, samples, judge templates
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)  # --set TASK.key=VALUE
    reference: str | None = None
    judge_templates: str | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    judge_options: dict[str, Any] = field(default_factory=dict)
    concurrency: int = 8
    judge_concurrency: int = 8
    samples: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    judge_repeats: int = 1
    task_sampling: dict[str, dict[str, Any]] = field(default_factory=dict)
    dry_run: bool = False
    max_cost: float | None = None
    timeout_s: float = 300.0
    max_error_rate: float = 0.0  # share of answers/grades that may be missing in a complete run
    max_parse_failure_rate: float = 0.5  # share of judge replies without a rating; above: invalid
    refresh: str | None = None  # "candidate", "judge" or "all": ask again instead of the store
    name: str | None = None  # the run's name in the store (never repeated with the options)
    tags: Sequence[str] = ()

    # What a repeat of the run may reuse: never the candidate's own backend options (another
    # model), never a credential, never a one-off (dry run, cost cap).
    _REPEATABLE = (
        "judge", "tasks", "data", "data_revision", "principles", "prompt_set", "sanitize",
        "protocol", "reference", "judge_templates", "judge_options", "judge_repeats", "timeout_s",
    )  # fmt: skip

    def task_options(self) -> dict[str, Any]:
        """Options handed to every task's constructor (a task ignores what it does not use)."""
        given = {
            "principles": self.principles,
            "prompts": self.prompt_set,
            "data_revision": self.data_revision,
        }
        out: dict[str, Any] = {k: v for k, v in given.items() if v}
        if self.sanitize:
            out["sanitize"] = True
        return out

    def to_stored(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self._REPEATABLE}
        d["tasks"] = list(self.tasks)
        d["judge_options"] = public(self.judge_options)
        return d


@dataclass
class TaskSettings:
    """One task of a run: sampling, samples per item, data and prompt hashes (`Task.describe`)."""

    sampling: dict[str, Any] = field(default_factory=dict)
    samples: int = 1
    data: dict[str, Any] = field(default_factory=dict)
    limit: int | None = None
    task_ids: list[str] | None = None
    prompt_set: dict[str, Any] | None = None
    judged: bool = False  # graded through the run's model judge
    graders: dict[str, Any] = field(default_factory=dict)  # judge kind -> identity (not a model)


@dataclass
class JudgeSettings:
    """The model judge of a run, as the tasks it grades need it for comparability."""

    spec: str
    identity: dict[str, Any]
    templates: dict[str, Any]
    sampling: dict[str, Any]
    reference: str | None
    repeats: int = 1


@dataclass
class RunConfig:
    model: str
    tasks: dict[str, TaskSettings]
    command: str = "run"
    model_identity: dict[str, Any] = field(default_factory=dict)
    model_options: dict[str, Any] = field(default_factory=dict)
    judge: JudgeSettings | None = None
    options: dict[str, Any] = field(default_factory=dict)  # RunOptions.to_stored()
    parent_run: str | None = None
    version: int = CONFIG_VERSION

    @property
    def judge_spec(self) -> str | None:
        return self.judge.spec if self.judge else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        if d.get("version", 1) < 2:
            d = _from_v1(d)
        tasks = {k: TaskSettings(**_known(TaskSettings, v)) for k, v in d["tasks"].items()}
        judge = JudgeSettings(**_known(JudgeSettings, d["judge"])) if d.get("judge") else None
        rest = {k: v for k, v in _known(cls, d).items() if k not in ("tasks", "judge")}
        return cls(tasks=tasks, judge=judge, **rest)

    def rerun_options(
        self, items: dict[str, list[str]], model: str, judge: str | None = None
    ) -> RunOptions:
        """Options that reproduce this run's items and settings for another model (or judge)."""
        stored = {k: v for k, v in self.options.items() if k in RunOptions._REPEATABLE}
        opts = RunOptions(model=model, **stored)
        if judge:
            opts.judge = judge
        ids = [i for t in opts.tasks for i in items.get(t, [])]
        opts.task_ids = ids or None
        opts.task_sampling = {
            t: {**s.sampling, "samples": s.samples} for t, s in self.tasks.items()
        }
        return opts


@dataclass
class RunRecord:
    """What a run measured; written when it ends (the owner is written when it starts)."""

    owner: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    items: dict[str, list[str]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)
    cost_usd: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    errors: int = 0
    summary: dict[str, Any] = field(default_factory=dict)
    reports: dict[str, Any] = field(default_factory=dict)  # task -> its own report (judge stats)
    failures: list[dict[str, Any]] = field(default_factory=list)  # per role and endpoint
    reasons: list[str] = field(default_factory=list)  # why the run is not complete
    host: str = ""
    pid: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunRecord:
        return cls(**_known(cls, d))


def _known(cls: Any, d: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in d.items() if k in names}


def _from_v1(d: dict[str, Any]) -> dict[str, Any]:
    """Configs written before the typed record: judge fields at the top, no stored options."""
    judge = None
    if d.get("judge"):
        judge = {
            "spec": d["judge"],
            "identity": d.get("judge_identity") or {},
            "templates": d.get("judge_templates") or {},
            "sampling": d.get("judge_sampling") or {},
            "reference": d.get("reference"),
            "repeats": d.get("judge_repeats", 1),
        }
    tasks = {  # only the judged task of a v1 run had a candidate prompt set
        t: {**v, "judged": bool(d.get("judge") and v.get("prompt_set"))}
        for t, v in (d.get("tasks") or {}).items()
    }
    data = {
        t: v["data"]["source"]
        for t, v in tasks.items()
        if (v.get("data") or {}).get("source") and not str(v["data"]["source"]).startswith("hf:")
    }
    principles = next(
        (
            (v.get("prompt_set") or {}).get("name")
            for v in tasks.values()
            if str((v.get("prompt_set") or {}).get("name", "")).startswith("/")
        ),
        None,
    )
    options = {
        "judge": d.get("judge"),
        "tasks": list(tasks),
        "data": data,
        "principles": principles,
        "reference": d.get("reference"),
        "judge_templates": (d.get("judge_templates") or {}).get("name"),
        "judge_repeats": d.get("judge_repeats", 1),
    }
    return {**d, "tasks": tasks, "judge": judge, "options": options, "version": 2}
