"""Real runs through the real CLI, without a model: replay files answer and judge.

CODAL-Bench answers and the judge's replies come from replay files keyed by item id (the judge's
requests carry the item id of the answer they grade); HumanEval+ answers are canonical solutions
(or broken ones) that the real sandbox runs. Everything else (store, runner, grading, summary,
results files) is the production path.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from codal_bench.config import RunOptions
from codal_bench.runner import make_task

HE_IDS = ("HumanEval/0", "HumanEval/2", "HumanEval/4")


def codal_ids(codal_data: Path) -> list[tuple[str, str]]:
    task = make_task("codal-bench", RunOptions(model="x"))
    return [(s.item_id, s.group) for s in task.load(str(codal_data), 1, None)]


def replay_files(
    tmp: Path, codal_data: Path, heplus_data: Path, broken: int = 0
) -> dict[str, Path]:
    """The replay files cover 5 CODAL items (one per preference) and 3 HumanEval+ tasks, which
    restricts the run to them. `model`: CODAL answers and HumanEval+ solutions (the first
    `broken` of them return None); `judge`: a rating with a rationale per CODAL item."""
    with gzip.open(heplus_data, "rt", encoding="utf-8") as f:
        problems = {p["task_id"]: p for p in map(json.loads, f) if p["task_id"] in HE_IDS}
    model, judge = [], []
    for n, (item, pref) in enumerate(codal_ids(codal_data)):
        model.append(
            {"task_id": item, "solution": f"Here is code for {pref}:\n```py\nx = {n}\n```"}
        )
        judge.append({"task_id": item, "solution": f"Clear and correct [{pref}]. Rating: {4 + n}"})
    for i, tid in enumerate(HE_IDS):
        p = problems[tid]
        body = "    return None\n" if i < broken else p["canonical_solution"]
        # a replay `solution` is run as written (as `evalplus.evaluate` does)
        model.append({"task_id": tid, "solution": p["prompt"] + body})
    out = {}
    for name, rows in (("model", model), ("judge", judge)):
        path = tmp / f"{name}-{broken}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        out[name] = path
    return out


def run_args(
    files: dict[str, Path], codal_data: Path, heplus_data: Path, store: Path, *extra: str
) -> list[str]:
    return [
        "--model", f"replay:{files['model']}", "--judge", f"replay:{files['judge']}",
        "--data", f"codal-bench={codal_data}", "--data", f"humaneval-plus={heplus_data}",
        "--store", str(store), "--quiet", *extra,
    ]  # fmt: skip


def main(args: list[str]) -> int:
    """`codal_bench.cli.main` in-process; returns its exit code."""
    from codal_bench.cli import main as cli_main

    try:
        cli_main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
