"""`grade RUN` grades against the data the run was made on, or refuses.

The new run is filed under the old run's data hash (its answers were generated for that data), so
a data file edited since, or a download resolving to a newer dataset commit, would give grades
that look comparable and are not. Real runs through the CLI, answered and judged by replay files.
"""

from __future__ import annotations

import io
import json
import shutil
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from codal_bench.config import RunOptions, TaskSettings
from codal_bench.regrade import _same_revision
from tests.helpers_cli import codal_ids, main, replay_files, run_args


def _judge2(tmp_path: Path, codal_data: Path) -> Path:
    path = tmp_path / "judge2.jsonl"
    path.write_text(
        "".join(
            json.dumps({"task_id": i, "solution": "Fine. Rating: 3"}) + "\n"
            for i, _ in codal_ids(codal_data)
        )
    )
    return path


def main_json(args: list[str]) -> list[dict[str, object]]:
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(args) == 0
    out: list[dict[str, object]] = json.loads(buf.getvalue())
    return out


def test_grade_refuses_data_changed_since_the_run(
    tmp_path: Path, codal_data: Path, heplus_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "codal.jsonl"
    shutil.copy(codal_data, data)
    store = tmp_path / "s.sqlite"
    files = replay_files(tmp_path, data, heplus_data)
    assert main(run_args(files, data, heplus_data, store, "--name", "first")) == 0
    judge2 = _judge2(tmp_path, data)
    grade = ["grade", "first", "--judge", f"replay:{judge2}", "--store", str(store), "--quiet"]
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    rows[0]["claude-3-sonnet-20240229_response"] += " (edited reference)"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    capsys.readouterr()
    assert main(grade) == 4  # could not start
    err = capsys.readouterr().err
    assert "codal-bench data differs from the data run" in err
    runs = main_json(["runs", "list", "--store", str(store), "--format", "json"])
    assert [r["name"] for r in runs] == ["first"]  # nothing filed
    shutil.copy(codal_data, data)  # the same bytes again: graded
    assert main([*grade, "--name", "second"]) == 0


def test_grade_reads_the_dataset_commit_the_run_resolved() -> None:
    resolved = "a" * 40
    downloaded = TaskSettings(
        data={"dataset": {"revision": resolved, "revision_from": "datasets", "requested": None}}
    )
    declared = TaskSettings(data={"dataset": {"revision": "v1", "revision_from": "declared"}})
    opts = RunOptions(model="m")
    assert _same_revision(opts, {"codal-bench": downloaded}).data_revision == resolved
    assert _same_revision(opts, {"codal-bench": declared}).data_revision is None
    # a run that asked for a branch read the commit it resolved to then, not today's
    asked = RunOptions(model="m", data_revision="main")
    assert _same_revision(asked, {"codal-bench": downloaded}).data_revision == resolved
