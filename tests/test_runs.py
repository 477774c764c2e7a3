"""Named runs: the store's names and tags, `codal-eval runs` (list, show, rm), names wherever a
run id goes, and the schema migration from a store written before names existed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from codal_bench.gate import find_baseline
from codal_bench.runs import RunFilter, list_runs, remove_run, select
from codal_bench.store import SCHEMA_VERSION, Store
from codal_bench.types import UsageError
from tests.helpers_cli import main
from tests.helpers_store import make_run, populate


def _store(tmp_path: Path, n: int = 3) -> tuple[Store, list[str]]:
    store = Store(tmp_path / "s.sqlite")
    return store, populate(store, n, per_preference=3, n_humaneval=6, seed=2)


def test_names_resolve_like_ids_and_are_unique(tmp_path: Path) -> None:
    store, ids = _store(tmp_path)
    store.set_name(ids[0], "base-model")
    assert store.run("base-model").run_id == ids[0]
    assert store.run(ids[0]).name == "base-model"
    assert store.run(ids[1][:-2]).run_id == ids[1]  # an id prefix still works
    with pytest.raises(UsageError, match="taken by run"):
        store.set_name(ids[1], "base-model")
    for bad in ("has space", "latest", "x" * 65, "-leading-dash"):
        with pytest.raises(UsageError, match="run name"):
            store.set_name(ids[1], bad)
    # a name is claimed when the run starts: another config under a taken name is an error
    cfg = {"model": "m", "tasks": {}}
    with pytest.raises(UsageError, match="taken by run"):
        store.new_run("m", None, cfg, name="base-model")
    # the same config again (a resume) moves the name to the new run
    first = store.new_run("m", None, cfg, name="resumable", tags=["a", "b", "a"])
    again = store.new_run("m", None, cfg, name="resumable")
    assert store.run("resumable").run_id == again != first
    assert store.run(first).name is None and store.run(first).tags == ["a", "b"]
    # a name that is another run's id would make that id ambiguous
    with pytest.raises(UsageError, match="another run's id"):
        store.new_run("m", None, {"model": "x", "tasks": {}}, name=ids[2])


def test_baseline_resolves_file_id_name_then_spec(tmp_path: Path) -> None:
    store, ids = _store(tmp_path)
    store.set_name(ids[1], "the-baseline")
    assert find_baseline(store, ids[1]) == ids[1]
    assert find_baseline(store, "the-baseline") == ids[1]
    assert find_baseline(store, "vllm:/models/model-02") == ids[2]  # a model spec
    bundle = tmp_path / "base.bundle"
    bundle.write_text("{}")
    with pytest.raises(Exception, match="bundle"):
        find_baseline(store, str(bundle))


def test_list_filters_newest_first(tmp_path: Path) -> None:
    store, ids = _store(tmp_path, 4)
    store.set_tags(ids[1], ["nightly", "gpu"])
    store.set_tags(ids[3], ["nightly"])
    make_run(store, "vllm:/models/half", humaneval={"HumanEval/0": [(True, True)]},
             status="interrupted")  # fmt: skip
    assert [r.run_id for r in list_runs(store)][1:] == list(reversed(ids))
    assert [r.run_id for r in list_runs(store, RunFilter(tags=["nightly"]))] == [ids[3], ids[1]]
    assert [r.run_id for r in list_runs(store, RunFilter(tags=["nightly", "gpu"]))] == [ids[1]]
    assert [r.model for r in list_runs(store, RunFilter(status="interrupted"))] == [
        "vllm:/models/half"
    ]
    assert len(list_runs(store, RunFilter(judge="gpt-3.5"))) == 2
    assert len(list_runs(store, RunFilter(task="codal-bench"))) == 4
    assert list_runs(store, RunFilter(model="MODEL-02"))[0].run_id == ids[2]
    # leaderboard --latest: each model's newest complete run only
    again = make_run(store, "vllm:/models/model-02", humaneval={"HumanEval/0": [(True, True)]})
    latest = select(store.runs(), RunFilter(), latest=True)
    assert again in {r.run_id for r in latest} and ids[2] not in {r.run_id for r in latest}
    assert "vllm:/models/half" not in {r.model for r in latest}


def test_rm_keeps_or_prunes_shared_answers(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite")
    he = {f"HumanEval/{i}": [(True, True)] for i in range(4)}
    a = make_run(store, "m", humaneval=he)
    b = make_run(store, "m", humaneval=he)  # same model and answers: shares every row with a
    c = make_run(store, "other", humaneval=he)
    n_gen = store.conn.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
    done = remove_run(store, a)
    assert (
        done.items == 4
        and store.conn.execute("SELECT COUNT(*) FROM generations").fetchone()[0] == n_gen
    )
    done = remove_run(store, b, prune=True)  # its rows are used by no other run now
    assert done.generations == 4 and done.grades == 4
    assert store.conn.execute("SELECT COUNT(*) FROM generations").fetchone()[0] == n_gen - 4
    assert [r.run_id for r in store.runs()] == [c]
    assert len(store.results(c)) == 4 and all(r["answer"] for r in store.results(c))


def test_migration_from_a_version_1_store(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    con = sqlite3.connect(path)
    from codal_bench.schema import _create_tables

    _create_tables(con)
    con.execute("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT)")
    con.execute("INSERT INTO meta VALUES('schema_version', '1')")
    con.execute(
        "INSERT INTO runs VALUES('20250101-000000-aaaaaa', 1, 1, 'complete', 'm', NULL, ?, ?)",
        (json.dumps({"model": "m", "tasks": {}}), json.dumps({})),
    )
    con.commit()
    con.close()
    ro = Store(path, readonly=True)  # an old store read as it is
    assert ro.run("20250101").name is None
    ro.close()
    store = Store(path)
    version = store.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    assert int(version[0]) == SCHEMA_VERSION >= 3
    store.set_name("20250101-000000-aaaaaa", "old-run")
    assert store.run("old-run").tags == []
    Store(path)  # migrating again is harmless


def test_runs_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store, ids = _store(tmp_path)
    store.set_name(ids[0], "first-run")
    s = str(store.path)
    assert main(["runs", "--store", s, "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["run_id"] for r in listed] == list(reversed(ids))
    assert listed[-1]["name"] == "first-run" and set(listed[-1]["headline"]) == {
        "codal-bench",
        "humaneval-plus",
    }
    assert main(["runs", "show", "first-run", "--store", s, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["run_id"] == ids[0] and doc["name"] == "first-run"
    assert main(["runs", "rm", "first-run", "--yes", "--store", s]) == 0
    assert "removed run first-run" in capsys.readouterr().err
    assert main(["runs", "show", "first-run", "--store", s]) == 4  # no such run: nothing ran
    assert "no run 'first-run'" in capsys.readouterr().err
