"""The one rule for "these two runs may be compared", used by the leaderboard and the CI gate.

Two runs' scores on a task mean something side by side only when the task saw the same items,
the same data, the same candidate prompts and sampling, the same graders (an execution judge's
version and limits) and, for a task graded by a model judge, the same judge (spec, identity,
templates, sampling, reference column). A task may add settings
of its own through its scoring face (`Scoring.comparable`). Everything else (the model, when it
ran, how it was served) may differ: that is what is being compared.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import registry
from .config import RunConfig
from .types import content_hash


def key(config: RunConfig, task: str, items: Sequence[str]) -> dict[str, Any]:
    """The comparability key of one task of one run: equal keys, comparable scores."""
    t = config.tasks[task]
    out: dict[str, Any] = {
        "task": task,
        "items": content_hash(sorted(items)),
        "n_items": len(items),
        "samples": t.samples,
        "sampling": t.sampling,
        "data_sha256": t.data.get("data_sha256"),
        "prompt_sha256": t.data.get("prompt_sha256"),
        "prompt_set_sha256": (t.prompt_set or {}).get("sha256"),
        "graders": t.graders,  # an execution judge's version and limits
    }
    if t.judged:
        j = config.judge
        out["judge"] = {
            "spec": j.spec if j else None,
            "identity": j.identity if j else None,
            "templates_sha256": (j.templates or {}).get("sha256") if j else None,
            "sampling": j.sampling if j else None,
            "reference": j.reference if j else None,
        }
    extra = registry.scoring(task).comparable(t.__dict__)
    out.update({f"task.{k}": v for k, v in extra.items()})
    return out


def flat(
    d: dict[str, Any], prefix: str = "", whole: tuple[str, ...] = ("sampling",)
) -> dict[str, Any]:
    """`{"judge": {"spec": x}}` -> `{"judge.spec": x}` (how published rows name what they match).
    Dicts named in `whole` stay one value (a difference in sampling is one difference)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        name = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v and k not in whole:
            out.update(flat(v, name, whole))
        else:
            out[name] = v
    return out


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Names of the settings in which two keys differ (what to tell a user who compares them)."""
    fa, fb = flat(a), flat(b)
    return [k for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]
