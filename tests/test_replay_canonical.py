"""Replaying the EvalPlus canonical solutions scores HumanEval+ pass@1 = 1.0 (164/164).

EvalPlus 0.3.1 fails HumanEval/32 for every solution; our numbers must not inherit that.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from codal_bench.store import Store


@pytest.mark.slow
def test_canonical_replay_scores_one(heplus_data: Path, tmp_path: Path) -> None:
    samples = tmp_path / "canonical.jsonl"
    with gzip.open(heplus_data, "rt") as f, samples.open("w") as out:
        for line in f:
            p = json.loads(line)
            solution = p["prompt"] + p["canonical_solution"]
            out.write(json.dumps({"task_id": p["task_id"], "solution": solution}) + "\n")
    store = tmp_path / "s.sqlite"
    p = subprocess.run(
        [sys.executable, "-m", "codal_bench.cli", "--model", f"replay:{samples}",
         "--tasks", "humaneval-plus", "--data", str(heplus_data), "--store", str(store),
         "--quiet"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-2000:]
    (run,) = Store(store).runs()
    metrics = run.record.summary["tasks"]["humaneval-plus"]["metrics"]
    assert {k: (m["value"], m["n"]) for k, m in metrics.items()} == {
        "humaneval-plus": (1.0, 164),
        "humaneval": (1.0, 164),
    }
    rows = Store(store).results(run.run_id)
    he32 = [r for r in rows if r["item_id"] == "HumanEval/32"]
    assert len(he32) == 1 and he32[0]["details"]["plus"] == "pass"
    assert "HE+ pass@1" in p.stdout and "100.0 %" in p.stdout
