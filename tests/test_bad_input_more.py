"""Inputs that used to end in a traceback or be accepted silently: one line or a clear warning."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from codal_bench.store import Store
from tests.counting_server import cli, one_error_line


def _samples(path: Path, heplus: Path, n: int, samples: int = 1) -> Path:
    with gzip.open(heplus, "rt", encoding="utf-8") as f:
        problems = [json.loads(line) for line in f][:n]
    with path.open("w", encoding="utf-8") as out:
        for p in problems:
            for _ in range(samples):
                sol = p["prompt"] + p["canonical_solution"]
                out.write(json.dumps({"task_id": p["task_id"], "solution": sol}) + "\n")
    return path


def test_task_ids_from_a_missing_file(tmp_path: Path) -> None:
    store = tmp_path / "s.sqlite"
    p = cli("--model", "gpt-4o", "--task-ids", f"@{tmp_path / 'nope.txt'}", "--store", str(store))
    assert p.returncode == 4
    assert "nope.txt" in one_error_line(p)
    assert not store.exists()


def test_export_into_a_missing_folder(tmp_path: Path, heplus_data: Path) -> None:
    store = tmp_path / "s.sqlite"
    f = _samples(tmp_path / "s.jsonl", heplus_data, 2)
    ok = cli("--model", f"replay:{f}", "--tasks", "humaneval-plus", "--data", str(heplus_data),
             "--store", str(store), "--quiet")  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    target = tmp_path / "missing" / "dir" / "x.jsonl"
    p = cli("export", "latest", "-o", str(target), "--store", str(store))
    assert p.returncode == 4
    assert str(target.parent) in one_error_line(p) or "x.jsonl" in one_error_line(p)
    assert not target.exists()


def test_partial_samples_file_is_said(tmp_path: Path, heplus_data: Path) -> None:
    store = tmp_path / "s.sqlite"
    f = _samples(tmp_path / "s.jsonl", heplus_data, 5)
    p = cli("--model", f"replay:{f}", "--tasks", "humaneval-plus", "--data", str(heplus_data),
            "--store", str(store), "--quiet")  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "covers 5 of the 164 humaneval-plus items" in p.stderr, p.stderr
    (run,) = Store(store, readonly=True).runs()
    assert any("covers 5 of the 164" in r for r in run.record.reasons)


def test_more_samples_than_the_replay_file_holds(tmp_path: Path, heplus_data: Path) -> None:
    store = tmp_path / "s.sqlite"
    f = _samples(tmp_path / "s.jsonl", heplus_data, 3)
    p = cli("--model", f"replay:{f}", "--tasks", "humaneval-plus", "--data", str(heplus_data),
            "--samples", "2", "--store", str(store))  # fmt: skip
    assert p.returncode == 4
    assert "--samples 2" in one_error_line(p)
    assert not store.exists()


def test_unknown_task_in_data(tmp_path: Path, heplus_data: Path) -> None:
    store = tmp_path / "s.sqlite"
    f = _samples(tmp_path / "s.jsonl", heplus_data, 2)
    p = cli("--model", f"replay:{f}", "--tasks", "humaneval-plus",
            "--data", f"humaneval-pluss={heplus_data}", "--store", str(store))  # fmt: skip
    assert p.returncode == 4
    line = one_error_line(p)
    assert "humaneval-pluss" in line and "did you mean humaneval-plus" in line, line
