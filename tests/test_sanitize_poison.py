"""An answer that makes EvalPlus' sanitizer raise fails alone; the run goes on and completes.

Fourth red team: `evalplus.sanitize` runs in the harness (the default extraction for API and
vLLM backends; `--sanitize` for replay files), and its recursive walk of the syntax tree raised
`RecursionError` on a correct answer nesting 1000 unary minus signs: the run died with exit 1,
no grade stored, and every re-run died the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

from codal_bench.store import Store
from tests.helpers_cli import HE_IDS, main, replay_files, run_args

POISON = "def add(x, y):\n    return " + "-" * 1000 + "(x + y)\n"


def test_an_answer_the_sanitizer_cannot_take_fails_and_the_run_completes(
    tmp_path: Path, codal_data: Path, heplus_data: Path
) -> None:
    files = replay_files(tmp_path, codal_data, heplus_data)
    rows = [json.loads(line) for line in files["model"].read_text().splitlines()]
    poisoned = [r for r in rows if r["task_id"] == HE_IDS[0]]
    assert len(poisoned) == 1
    poisoned[0]["solution"] = POISON
    files["model"].write_text("".join(json.dumps(r) + "\n" for r in rows))
    store = tmp_path / "s.sqlite"
    args = run_args(files, codal_data, heplus_data, store, "--sanitize")
    assert main(args) == 0  # complete: the poisoned answer is graded, nothing is missing
    db = Store(store, readonly=True)
    (run,) = db.runs()
    found = {r["item_id"]: r for r in db.results(run.run_id) if r["task"] == "humaneval-plus"}
    assert sorted(found) == sorted(HE_IDS)
    assert [found[i]["status"] for i in HE_IDS] == ["fail", "pass", "pass"], found
    reason = found[HE_IDS[0]]["details"]["first_failed"]["reason"]
    assert reason.startswith("code extraction failed: evalplus sanitize raised RecursionError")
