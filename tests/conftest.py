"""Shared fixtures: where the offline data lives, and a store that never touches the user's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("CODAL_SHARED_DATA", REPO.parent / "shared" / "data"))


def _need(path: Path) -> Path:
    # No skip: CI has ../shared beside the checkout, and a test that silently skips proves nothing.
    assert path.exists(), f"offline data missing: {path} (expected ../shared/data beside the repo)"
    return path


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _need(SHARED_DATA)


@pytest.fixture(scope="session")
def codal_data(shared_data: Path) -> Path:
    return _need(shared_data / "codal-bench" / "codal-bench-partial-50.jsonl")


@pytest.fixture(scope="session")
def upstream_prompts(shared_data: Path) -> Path:
    return _need(shared_data / "codal-bench" / "upstream-prompts")


@pytest.fixture(scope="session")
def heplus_data(shared_data: Path) -> Path:
    return _need(shared_data / "humanevalplus" / "HumanEvalPlus-v0.1.10.jsonl.gz")


@pytest.fixture(scope="session")
def heplus_mini_data(shared_data: Path) -> Path:
    return _need(shared_data / "humanevalplus" / "HumanEvalPlus-Mini-v0.1.10.jsonl.gz")


@pytest.fixture(scope="session")
def humaneval_data(shared_data: Path) -> Path:
    return _need(shared_data / "humaneval" / "HumanEval.jsonl.gz")


@pytest.fixture(autouse=True)
def _isolated_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own default store; none writes to the user's."""
    monkeypatch.setenv("CODAL_BENCH_STORE", str(tmp_path / "default-store.sqlite"))


@pytest.fixture(autouse=True)
def _offline_upstream(monkeypatch: pytest.MonkeyPatch) -> None:
    """The paper's prompt files come from ../shared (no network here); the download path has
    its own tests, which clear this variable."""
    monkeypatch.setenv(
        "CODAL_BENCH_UPSTREAM", str(_need(SHARED_DATA / "codal-bench" / "upstream-src"))
    )


@pytest.fixture(scope="session")
def upstream_src(shared_data: Path) -> Path:
    return _need(shared_data / "codal-bench" / "upstream-src")


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "results.sqlite"


@pytest.fixture
def published_without_protocols(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped published rows with their protocol requirements emptied, so that synthetic runs
    (which carry no paper hashes, revision or 500-item set) show how attached rows behave. The
    requirements themselves are tested on real runs in test_published_protocols.py."""
    import yaml

    from codal_bench.leaderboard.model import load_published

    data = load_published()
    for proto in (data.get("protocols") or {}).values():
        proto["require"] = {}
    path = tmp_path / "published-no-protocols.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    monkeypatch.setenv("CODAL_BENCH_PUBLISHED", str(path))
    return path
