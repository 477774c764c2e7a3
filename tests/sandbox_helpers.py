"""What tests of the sandbox share: finding leftover processes, and the offline HumanEval+ rows."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any

from codal_bench.executors.sandbox import SandboxExecutor, SandboxLimits
from codal_bench.humaneval.checker import Expected, HumanEvalChecker

ROOT = Path(__file__).resolve().parents[1]
PLUS = ROOT.parent / "shared" / "data" / "humanevalplus" / "HumanEvalPlus-v0.1.10.jsonl.gz"


def add_checker(
    cache: Path, limits: SandboxLimits
) -> tuple[HumanEvalChecker, dict[str, Any], Expected]:
    """A checker with short limits (0.5 s per input, 2 s per group) and HumanEval/53 prepared:
    what the hostile-answer tests run each answer against. Close its executor when done."""
    executor = SandboxExecutor(limits)
    executor.check()  # no sandbox here: fail loudly, never skip
    checker = HumanEvalChecker(
        executor=executor, cache_dir=cache, min_time_limit=0.5, max_group_cpu_s=2.0, progress=False
    )
    add = problem("HumanEval/53")
    return checker, add, checker.prepare([add])[add["task_id"]]


def problem(task_id: str) -> dict[str, Any]:
    with gzip.open(PLUS, "rt") as f:
        for line in f:
            row = json.loads(line)
            if row["task_id"] == task_id:
                return dict(row)
    raise AssertionError(f"{task_id} missing from the data file")


def _stat(pid: int) -> tuple[str, int] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    comm = text[text.index("(") + 1 : text.rindex(")")]
    return comm, int(text[text.rindex(")") + 2 :].split()[1])


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None:
                children.setdefault(st[1], []).append(int(entry))
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def leftovers(executor: SandboxExecutor) -> list[int]:
    """Processes under the executor's sandboxes other than bwrap and the idle zygotes."""
    found = []
    for top in executor.zygote_pids():
        for pid in descendants(top):
            st = _stat(pid)
            if st is None or st[0] == "bwrap":
                continue
            parent = _stat(st[1])
            if parent is not None and parent[0] == "bwrap":
                continue  # the zygote itself
            found.append(pid)
    return found
