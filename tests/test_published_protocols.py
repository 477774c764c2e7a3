"""The paper's rows stand only beside runs of the paper's protocol on its whole item set.

Real runs (the runner and a loopback server playing candidate and GPT-4 judge) on a synthetic
500-row CODAL-Bench file (and a copy with the same ids whose reference answers were edited), then
the leaderboard with a published file whose item pin is that file's
(the shipped file cannot pin the real 500 ids here: this machine does not reach the Hub).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from codal_bench.codal.pin import pin
from codal_bench.codal.scores import PREFERENCES
from codal_bench.codal.task import REFERENCE_COLUMNS
from codal_bench.leaderboard import compile_leaderboard
from codal_bench.leaderboard.model import load_published
from codal_bench.store import Store
from tests.counting_server import CountingServer, cli

pytestmark = pytest.mark.slow  # five runs of up to 500 items against a loopback server (~1 min)

ENV = {"OPENAI_API_KEY": "sk-test-not-a-secret"}
REVISION = "0123456789abcdef0123456789abcdef01234567"  # the test's stand-in for the Hub commit


def _rows(path: Path, tag: str, reference: str = "reference") -> Path:
    with path.open("w") as f:
        for pref in PREFERENCES:
            for i in range(100):
                row: dict[str, Any] = {"instruction": f"{tag}: task {i} for {pref}.",
                                       "preference": pref}  # fmt: skip
                row.update({c: f"{reference} {i} from {c}" for c in REFERENCE_COLUMNS})
                f.write(json.dumps(row) + "\n")
    return path


def _reply(model: str, prompt: str) -> str:
    if model.startswith("gpt-4"):
        return "The answer does what was asked.\nRating: 7"
    return "```python\ndef f():\n    return 1\n```"


def _run(srv: CountingServer, store: Path, data: Path, name: str, *extra: str) -> None:
    p = cli("--model", f"openai:cand-{name}", "--base-url", srv.url, "--judge", "openai:gpt-4",
            "--judge-base-url", srv.url, "--reference", "gpt-4-turbo_response", "--tasks",
            "codal-bench", "--data", str(data), "--store", str(store), "--name", name,
            "--quiet", *extra, env=ENV, timeout=900)  # fmt: skip
    assert p.returncode == 0, p.stderr[-2000:]


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("published")
    right, other = _rows(d / "codal-500.jsonl", "synthetic"), _rows(d / "other-500.jsonl", "else")
    # the same 500 ids, declared the same commit, but reference answers not the published ones
    edited = _rows(d / "edited-500.jsonl", "synthetic", "edited reference")
    store = d / "s.sqlite"
    with CountingServer(reply=_reply, max_requests=20000) as srv:
        rev = ("--data-revision", REVISION)
        _run(srv, store, right, "paper", *rev)
        _run(srv, store, right, "own-templates", *rev, "--principles", "codal-eval",
             "--judge-templates", "codal-eval")  # fmt: skip
        _run(srv, store, right, "other-settings", *rev, "--set", "codal-bench.max_tokens=512")
        _run(srv, store, right, "ten-items", *rev, "--limit", "2")
        _run(srv, store, other, "other-ids", *rev)
        _run(srv, store, edited, "edited-references", *rev)
    # The published file as shipped, with the item pin of the right file filled in.
    published = load_published()
    found = pin(REVISION, str(right))
    assert found.pop("read from").endswith("(revision declared)")
    assert found["n_items"] == 500 and found["dataset.revision"] == REVISION
    published["protocols"]["codal-paper"]["require"].update(found)
    pinned = d / "published.yaml"
    pinned.write_text(yaml.safe_dump(published), encoding="utf-8")
    return store, pinned


def _beside(store: Path) -> dict[str, list[str]]:
    """run name -> the published entries whose rows stand in its table."""
    lb = compile_leaderboard(Store(store, readonly=True), n_boot=200)
    out: dict[str, list[str]] = {}
    for t in lb.tables:
        if t.published_only:
            continue
        ours = t.frame[~t.frame["published"].astype(bool)]
        setting = t.meta.get("published_setting")
        for name in ours["name"] if "name" in ours else ours["run_id"]:
            out[str(name)] = [setting] if setting else []
    return out


def test_only_the_paper_protocol_on_the_pinned_500_items_gets_the_paper_rows(
    board: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, pinned = board
    monkeypatch.setenv("CODAL_BENCH_PUBLISHED", str(pinned))
    beside = _beside(store)
    assert beside["paper"] == ["paper: GPT-4 judge, GPT-4 ref"], beside
    for name in ("own-templates", "other-settings", "ten-items", "other-ids", "edited-references"):
        assert beside[name] == [], (name, beside)


def test_with_the_pin_unrecorded_no_run_gets_them_and_the_panel_says_why(
    board: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _ = board
    monkeypatch.delenv("CODAL_BENCH_PUBLISHED", raising=False)  # the shipped file: pin is null
    assert all(v == [] for v in _beside(store).values())
    lb = compile_leaderboard(Store(store, readonly=True), n_boot=200)
    (panel,) = [t for t in lb.tables if t.id == "pub-gpt4-judge-gpt4-ref"]
    assert panel.published_only and "unranked" in panel.title
    assert "items" in panel.meta["not_beside_runs_because"]
    assert "dataset.revision" in panel.meta["not_beside_runs_because"]
    assert "data.content_sha256" in panel.meta["not_beside_runs_because"]
