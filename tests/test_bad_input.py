"""Bad input gets one clear line, a non-zero exit when the run cannot go on, and nothing stored.

Extends `test_cli.py` (which covers a corrupt JSONL line, a truncated plain JSONL data file, wrong
columns, missing keys): here the line *and* field of bad samples, compressed files cut short,
malformed task and judge YAML (file and line), corrupt or unusable stores, and the two model
answers that are not errors but must show: an empty answer and a judge without a rating. Runs
go against `CountingServer`, so "nothing was sent" is checked by the server's count.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from codal_bench.store import Store
from codal_bench.summary import metric_value
from tests.counting_server import CountingServer, cli, one_error_line

ENV = {"OPENAI_API_KEY": "sk-test-not-a-secret"}


def codal_args(srv: CountingServer, store: Path, data: Path, *, model: str = "cand",
               judge: str = "judge", limit: int = 1) -> list[str]:  # fmt: skip
    return [
        "--model", f"openai:{model}", "--base-url", srv.url,
        "--judge", f"openai:{judge}", "--judge-base-url", srv.url,
        "--tasks", "codal-bench", "--data", str(data), "--limit", str(limit), "--quiet",
        "--store", str(store),
    ]  # fmt: skip


def nothing_stored(store: Path) -> None:
    """No run, no answer, no grade: a failed start leaves no partial garbage."""
    if not store.exists():
        return
    conn = sqlite3.connect(store)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        for t in ("runs", "generations", "grades", "run_items"):
            if t in tables:
                assert conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] == 0, t
    finally:
        conn.close()


def fails_cleanly(
    args: list[str], store: Path, *, code: int = 4, env: dict[str, str] | None = None
) -> str:
    """Run the CLI against a fresh server; it must fail with one line and send nothing."""
    with CountingServer() as srv:
        p = cli(*[a.replace("{url}", srv.url) for a in args], env={**ENV, **(env or {})})
        sent = srv.count()
    assert p.returncode == code, p.stderr
    line = one_error_line(p)
    assert line.startswith("codal-eval: error:"), line
    assert sent == 0, "a request was sent before the input was found to be bad"
    nothing_stored(store)
    return line


def url_args(store: Path, data: Path, **kw: str) -> list[str]:
    """Like codal_args, with `{url}` filled in by `fails_cleanly` once the server is up."""
    model, judge = kw.get("model", "cand"), kw.get("judge", "judge")
    return [
        "--model", f"openai:{model}", "--base-url", "{url}",
        "--judge", f"openai:{judge}", "--judge-base-url", "{url}",
        "--tasks", "codal-bench", "--data", str(data), "--limit", "1", "--quiet",
        "--store", str(store),
    ]  # fmt: skip


# -- samples files (replay): which line, which field ----------------------------------------


_A = '{"task_id": "%s", "solution": "x"}'


@pytest.mark.parametrize(
    ("lines", "where", "what"),
    [
        ([_A, '{"task_id": "%s", "solution": 42}'], ":2:", "'solution'"),
        ([_A, "", '{"solution": "y"}'], ":3:", "'task_id'"),
        (['{"task_id": 7, "completion": "y"}'], ":1:", "'task_id'"),
        ([_A, "[1, 2]"], ":2:", "'task_id'"),
    ],
    ids=["wrong-type", "missing-after-blank-line", "task-id-not-text", "not-an-object"],
)
def test_samples_file_error_names_line_and_field(
    lines: list[str], where: str, what: str, tmp_path: Path, store_path: Path, codal_data: Path
) -> None:
    f = tmp_path / "samples.jsonl"
    f.write_text("\n".join(x.replace("%s", "ab12") for x in lines) + "\n")
    line = fails_cleanly(replay_args(f, store_path, codal_data), store_path)
    assert f"{f}{where}" in line and what in line, line


def replay_args(samples: Path, store: Path, data: Path) -> list[str]:
    """A CODAL run answered from a samples file (keyed by CODAL item id)."""
    return [
        "--model", f"replay:{samples}", "--judge", "openai:judge", "--judge-base-url", "{url}",
        "--tasks", "codal-bench", "--data", str(data), "--quiet", "--store", str(store),
    ]  # fmt: skip


def test_truncated_gzip_samples_file(tmp_path: Path, store_path: Path, codal_data: Path) -> None:
    rows = "".join(
        json.dumps({"task_id": f"item{i}", "solution": "def f():\n    return 1\n" * 20}) + "\n"
        for i in range(50)
    )
    whole = gzip.compress(rows.encode())
    f = tmp_path / "samples.jsonl.gz"
    f.write_bytes(whole[: len(whole) // 2])
    line = fails_cleanly(replay_args(f, store_path, codal_data), store_path)
    assert str(f) in line and "gzip" in line, line


def test_empty_samples_file(tmp_path: Path, store_path: Path, codal_data: Path) -> None:
    f = tmp_path / "samples.jsonl"
    f.write_text("\n\n")
    line = fails_cleanly(replay_args(f, store_path, codal_data), store_path)
    assert str(f) in line and "no samples" in line, line


# -- data files -----------------------------------------------------------------------------


def test_truncated_gzip_data_file(tmp_path: Path, store_path: Path, codal_data: Path) -> None:
    whole = gzip.compress(codal_data.read_bytes())
    cut = tmp_path / "codal.jsonl.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    line = fails_cleanly(url_args(store_path, cut), store_path)
    assert str(cut) in line and ("end-of-stream" in line or "truncated" in line), line


def test_data_file_cut_inside_the_last_line(
    tmp_path: Path, store_path: Path, codal_data: Path
) -> None:
    lines = codal_data.read_text().splitlines(keepends=True)
    cut = tmp_path / "codal.jsonl"
    cut.write_text("".join(lines[:7]) + lines[7][:40])
    line = fails_cleanly(url_args(store_path, cut), store_path)
    assert f"{cut}:8:" in line and "truncated" in line, line


@pytest.mark.parametrize(
    ("change", "what"),
    [({"instruction": 5}, "row 3: field 'instruction'"),
     ({"preference": "speed"}, "row 3: preference 'speed'")],
    ids=["instruction-not-text", "unknown-preference"],
)  # fmt: skip
def test_bad_data_row_names_row_and_field(
    change: dict[str, object], what: str, tmp_path: Path, store_path: Path, codal_data: Path
) -> None:
    rows = [json.loads(x) for x in codal_data.read_text().splitlines() if x.strip()]
    rows[2].update(change)
    bad = tmp_path / "codal.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    line = fails_cleanly(url_args(store_path, bad), store_path)
    assert what in line, line


# -- task YAML ------------------------------------------------------------------------------


@pytest.fixture
def tasks_copy(tmp_path: Path, repo_root: Path) -> Path:
    d = tmp_path / "tasks"
    shutil.copytree(repo_root / "tasks", d)
    return d


def test_malformed_task_yaml_names_file_and_line(
    tasks_copy: Path, store_path: Path, codal_data: Path
) -> None:
    y = tasks_copy / "codal-bench.yaml"
    lines = y.read_text().splitlines()
    at = next(i for i, x in enumerate(lines) if x.startswith("generation:"))
    lines.insert(at + 1, "  temperature: [0.0")  # an unclosed flow sequence
    y.write_text("\n".join(lines) + "\n")
    line = fails_cleanly(url_args(store_path, codal_data), store_path,
                         env={"CODAL_BENCH_TASKS_DIR": str(tasks_copy)})  # fmt: skip
    assert f"{y}:" in line and "malformed YAML" in line, line
    reported = int(line.split(f"{y}:", 1)[1].split(":", 1)[0])
    assert at + 1 <= reported <= at + 3, line  # at (or just after) the broken line


def test_task_yaml_without_guidelines_is_one_clear_line(
    tasks_copy: Path, store_path: Path, codal_data: Path
) -> None:
    y = tasks_copy / "codal-bench.yaml"
    text = y.read_text()
    y.write_text(text[: text.index("\nguidelines:")] + "\n")
    line = fails_cleanly(url_args(store_path, codal_data), store_path,
                         env={"CODAL_BENCH_TASKS_DIR": str(tasks_copy)})  # fmt: skip
    assert str(y) in line and "guidelines" in line, line


def test_task_yaml_that_is_not_a_mapping(
    tasks_copy: Path, store_path: Path, codal_data: Path
) -> None:
    y = tasks_copy / "codal-bench.yaml"
    y.write_text("- just\n- a list\n")
    line = fails_cleanly(url_args(store_path, codal_data), store_path,
                         env={"CODAL_BENCH_TASKS_DIR": str(tasks_copy)})  # fmt: skip
    assert str(y) in line and "mapping" in line, line


# -- judge YAML and templates -------------------------------------------------------------


@pytest.fixture
def judge_copy(tmp_path: Path, repo_root: Path) -> Path:
    d = tmp_path / "myjudge"
    shutil.copytree(repo_root / "judges" / "codal", d)
    return d


def test_malformed_judge_yaml_names_file_and_line(
    judge_copy: Path, store_path: Path, codal_data: Path
) -> None:
    y = judge_copy / "judge.yaml"
    lines = y.read_text().splitlines()
    at = next(i for i, x in enumerate(lines) if x.startswith("scale:"))
    lines[at] = "scale: [1, 10"
    y.write_text("\n".join(lines) + "\n")
    line = fails_cleanly(
        [*url_args(store_path, codal_data), "--judge-templates", str(judge_copy)], store_path
    )
    assert f"{y}:" in line and "malformed YAML" in line, line
    reported = int(line.split(f"{y}:", 1)[1].split(":", 1)[0])
    assert at + 1 <= reported <= at + 3, line


def test_judge_yaml_with_a_bad_regex(judge_copy: Path, store_path: Path, codal_data: Path) -> None:
    y = judge_copy / "judge.yaml"
    y.write_text(y.read_text().replace(r"'\bRating:\s*(\d+)\b'", r"'Rating: (\d+'"))
    line = fails_cleanly(
        [*url_args(store_path, codal_data), "--judge-templates", str(judge_copy)], store_path
    )
    assert str(y) in line and "rating_regex" in line, line


def test_broken_judge_template_names_file_and_line(
    judge_copy: Path, store_path: Path, codal_data: Path
) -> None:
    t = judge_copy / "user_style.jinja"
    lines = t.read_text().splitlines()
    lines.insert(2, "{% if response %}never closed")
    t.write_text("\n".join(lines) + "\n")
    line = fails_cleanly(
        [*url_args(store_path, codal_data), "--judge-templates", str(judge_copy)], store_path
    )
    assert f"{t}:" in line and "template error" in line, line


# -- the store ------------------------------------------------------------------------------


def _valid_store_bytes(tmp_path: Path, codal_data: Path) -> bytes:
    """A real store with a finished run in it, checkpointed into one file."""
    s = tmp_path / "good.sqlite"
    with CountingServer() as srv:
        p = cli(*codal_args(srv, s, codal_data), env=ENV)
    assert p.returncode == 0, p.stderr
    conn = sqlite3.connect(s)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    return s.read_bytes()


@pytest.mark.parametrize("kind", ["garbage", "truncated", "zeroed-pages"])
def test_corrupt_store_is_one_clear_line_and_left_alone(
    kind: str, tmp_path: Path, codal_data: Path
) -> None:
    good = _valid_store_bytes(tmp_path, codal_data)
    if kind == "garbage":
        bad = b"this is not a database" * 200
    elif kind == "truncated":
        bad = good[: len(good) // 3]
    else:  # the header survives, the schema and data pages do not
        bad = good[:100] + b"\0" * (len(good) - 100)
    store = tmp_path / "bad.sqlite"
    store.write_bytes(bad)
    with CountingServer() as srv:
        runs = [
            cli(*codal_args(srv, store, codal_data), env=ENV),
            cli("export", "latest", "--store", str(store)),
            cli("leaderboard", "--store", str(store)),
        ]
        sent = srv.count()
    assert sent == 0
    for p in runs:
        assert p.returncode == 4, (p.args, p.stderr)  # could not start
        line = one_error_line(p)
        assert line.startswith("codal-eval: error:") and str(store) in line, line
        assert "malformed" in line or "not a database" in line or "cannot be used" in line, line
    assert store.read_bytes() == bad  # nothing written into a file we cannot read


def test_store_path_that_is_a_directory(tmp_path: Path, codal_data: Path) -> None:
    store = tmp_path / "store.sqlite"
    store.mkdir()
    with CountingServer() as srv:
        p = cli(*codal_args(srv, store, codal_data), env=ENV)
        assert srv.count() == 0
    assert p.returncode == 2 and "Traceback" not in p.stderr  # click's usage error
    assert "is a directory" in p.stderr and str(store) in p.stderr, p.stderr


def test_store_that_cannot_be_opened(tmp_path: Path, codal_data: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be")
    store = blocker / "results.sqlite"
    line = fails_cleanly(url_args(store, codal_data), store)
    assert str(store) in line and "cannot be opened" in line, line


def test_store_from_a_newer_codal_eval(tmp_path: Path, codal_data: Path) -> None:
    store = tmp_path / "new.sqlite"
    Store(store).close()
    conn = sqlite3.connect(store)
    conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    line = fails_cleanly(url_args(store, codal_data), store)
    assert "schema 99" in line and "upgrade codal-eval" in line, line


# -- answers that are not errors but must be visible ----------------------------------------


def test_empty_answer_is_stored_as_empty_and_graded(store_path: Path, codal_data: Path) -> None:
    with CountingServer() as srv:
        p = cli(*codal_args(srv, store_path, codal_data, model="empty"), env=ENV)
        judged = srv.hits_for("judge")
    assert p.returncode == 0, p.stderr
    store = Store(store_path, readonly=True)
    (run,) = store.runs()
    rows = store.results(run.run_id)
    assert len(rows) == 5
    for r in rows:
        assert r["answer"] == "" and r["gen_error"] is None  # an answer, not an error
        assert r["status"] == "rated"  # the judge saw it and rated it
    assert len(judged) == 5
    summary = run.record.summary
    assert summary["errors"] == 0
    # Visible in the summary: how many answers were empty.
    assert summary.get("empty_answers") == 5, summary
    assert "empty answers" in p.stdout.lower(), p.stdout


def test_judge_without_rating_is_a_parse_failure_counted_zero(
    store_path: Path, codal_data: Path
) -> None:
    # Allowed here (the limit is tested in test_honest_runs.py): what is stored and counted.
    with CountingServer() as srv:
        p = cli(
            *codal_args(srv, store_path, codal_data, judge="mute"),
            "--max-parse-failure-rate", "1",
            env=ENV,
        )  # fmt: skip
    assert p.returncode == 0, p.stderr
    store = Store(store_path, readonly=True)
    (run,) = store.runs()
    rows = store.results(run.run_id)
    assert {r["status"] for r in rows} == {"parse_failure"}
    assert all(r["rating"] is None and r["answer"] for r in rows)
    assert all(r["details"]["judge_output"] == "I cannot decide." for r in rows)
    diag = run.record.reports["codal-bench"]["diagnostics"]
    assert diag["parse_failures"] == 5
    assert metric_value(run.record.summary, "codal-bench", "codal-average") == 0.0
    shown = [x for x in p.stdout.splitlines() if "parse failures" in x]
    assert shown and "5" in shown[0], p.stdout
