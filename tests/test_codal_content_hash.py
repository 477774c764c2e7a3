"""`content_sha256`: what candidates and judge see of CODAL-Bench data, however it was read.

A published protocol pins it, so it must be the same for the same rows in any file format (the
data hash of a local copy is of its file), change with any reference cell, and not break on a
file that repeats an item.
"""

from __future__ import annotations

import json
from pathlib import Path

from codal_bench.codal.task import CodalBenchTask


def _rows(codal_data: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in codal_data.read_text().splitlines()[:10]]


def _load(path: Path) -> CodalBenchTask:
    task = CodalBenchTask(principles="codal-eval")
    task.load(str(path))
    return task


def test_the_same_rows_hash_alike_in_any_format(tmp_path: Path, codal_data: Path) -> None:
    rows = _rows(codal_data)
    as_jsonl, as_json = tmp_path / "c.jsonl", tmp_path / "c.json"
    as_jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    as_json.write_text(json.dumps({"rows": list(reversed(rows))}, indent=1))
    a, b = _load(as_jsonl), _load(as_json)
    assert a.data_sha256 != b.data_sha256  # files differ
    assert a.content_sha256 == b.content_sha256 and len(a.content_sha256) == 64


def test_any_reference_cell_changes_it(tmp_path: Path, codal_data: Path) -> None:
    rows = _rows(codal_data)
    original, edited = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    original.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ref = next(k for k in rows[3] if str(k).endswith("_response"))
    rows[3][ref] = str(rows[3][ref]) + " "
    edited.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert _load(original).content_sha256 != _load(edited).content_sha256


def test_a_repeated_item_does_not_break_loading(tmp_path: Path, codal_data: Path) -> None:
    """The review's case: the same id twice with other references made sorting compare dicts."""
    rows = _rows(codal_data)
    ref = next(k for k in rows[0] if str(k).endswith("_response"))
    twin = {**rows[0], ref: "another reference"}
    path = tmp_path / "twice.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [*rows, twin]))
    assert len(_load(path).content_sha256) == 64
