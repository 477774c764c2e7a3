"""Which revision of the CODAL-Bench dataset a run read is recorded, and can be pinned.

The Hub is out of reach here, so `datasets.load_dataset_builder` is replaced by a stand-in that
records what it was asked and answers like a Hub builder (its `hash` is the commit it read).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from codal_bench.codal.scoring import CodalScoring
from codal_bench.codal.task import CodalBenchTask
from codal_bench.types import UsageError

ROW = {"instruction": "Sort a list.", "preference": "style", "gpt-4-turbo_response": "sorted(x)"}


class FakeBuilder:
    asked: list[str | None] = []

    def __init__(self, repo: str, revision: str | None = None) -> None:
        self.asked.append(revision)
        if revision == "no-such-revision":
            raise FileNotFoundError(revision)
        # the commit it resolved to; "d" * 40 stands for an offline fallback to another copy
        exact = revision is not None and len(revision) == 40 and revision != "d" * 40
        self.hash = revision if exact else "f" * 40

    def download_and_prepare(self) -> None:
        pass

    def as_dataset(self, split: str) -> list[dict[str, Any]]:
        assert split == "test"
        return [dict(ROW)]


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> type[FakeBuilder]:
    import datasets

    FakeBuilder.asked = []
    monkeypatch.setattr(datasets, "load_dataset_builder", FakeBuilder)
    monkeypatch.delenv("CODAL_BENCH_DATA", raising=False)
    monkeypatch.delenv("CODAL_BENCH_REVISION", raising=False)
    return FakeBuilder


def test_the_resolved_commit_is_recorded_and_keys_the_comparison(hub: type[FakeBuilder]) -> None:
    task = CodalBenchTask(principles="codal-eval")
    task.load()
    assert hub.asked == [None]  # newest
    want = {"repo": "coseal/codal-bench", "split": "test"}
    assert task.describe()["dataset"] == {
        **want,
        "revision": "f" * 40,
        "revision_from": "datasets",
        "requested": None,
    }
    # not in the comparability key (the data's hash is): runs of the same data stay comparable
    assert CodalScoring().comparable({"data": task.describe()}) == {}


def test_a_pinned_revision_is_asked_for(
    hub: type[FakeBuilder], monkeypatch: pytest.MonkeyPatch
) -> None:
    CodalBenchTask(principles="codal-eval", data_revision="a" * 40).load()
    monkeypatch.setenv("CODAL_BENCH_REVISION", "b" * 40)
    CodalBenchTask(principles="codal-eval").load()
    assert hub.asked == ["a" * 40, "b" * 40]
    with pytest.raises(UsageError, match="no-such-revision"):
        CodalBenchTask(principles="codal-eval", data_revision="no-such-revision").load()
    # a commit asked for but another one read (datasets' offline fallback) is refused
    with pytest.raises(UsageError, match="asked for commit d{40}, but `datasets` read f{40}"):
        CodalBenchTask(principles="codal-eval", data_revision="d" * 40).load()


def test_a_local_copy_records_the_declared_revision_or_none(
    tmp_path: Path, hub: type[FakeBuilder]
) -> None:
    data = tmp_path / "codal.jsonl"
    data.write_text(json.dumps(ROW) + "\n")
    task = CodalBenchTask(principles="codal-eval", data_revision="c" * 40)
    task.load(str(data))
    assert task.describe()["dataset"]["revision"] == "c" * 40
    assert task.describe()["dataset"]["revision_from"] == "declared"
    plain = CodalBenchTask(principles="codal-eval")
    plain.load(str(data))
    assert plain.describe()["dataset"]["revision"] is None
    assert hub.asked == []  # a local file never downloads
