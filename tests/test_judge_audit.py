"""`judge-audit` against loopback judges on a real execution-graded run.

The run: 60 HumanEval+ problems replayed, every other one with its canonical solution and the rest
with a body that returns None and carries the marker BROKEN, all graded by the sandbox. The
judges (tests/counting_server.py) are an oracle that rates 9 unless the answer is marked broken,
a judge rating from a hash of the prompt, and the oracle inverted. What the server saw proves the
caching claims: a second identical audit sends nothing, and an audit after a CODAL run with the
same judge reuses none of that run's grades.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codal_bench.cli import main
from codal_bench.codal.templates import load_templates
from codal_bench.leaderboard import compile_leaderboard, render
from codal_bench.store import Store
from tests.counting_server import BROKEN_MARK, CountingServer

pytestmark = pytest.mark.slow  # one sandbox-graded run of 60 answers (about 20 s)

N_TASKS = 60
KEY = {"OPENAI_API_KEY": "sk-test-not-a-secret"}


def _cli(*args: str) -> None:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    assert exc.value.code == 0


def _half_broken(heplus: Path, out: Path) -> None:
    rows = [json.loads(line) for line in gzip.open(heplus, "rt")][:N_TASKS]
    with out.open("w") as f:
        for i, p in enumerate(rows):
            body = p["canonical_solution"] if i % 2 == 0 else f"    return None  # {BROKEN_MARK}\n"
            # a samples file's `solution` runs as written (as in `evalplus.evaluate`): no fences
            solution = f"{p['prompt']}{body}"
            f.write(json.dumps({"task_id": p["task_id"], "solution": solution}) + "\n")


@pytest.fixture(scope="module")
def he_run(tmp_path_factory: pytest.TempPathFactory, heplus_data: Path) -> tuple[Path, str]:
    """A store holding the half-broken HumanEval+ run (copied per test: audits write to it)."""
    d = tmp_path_factory.mktemp("audit-run")
    samples = d / "half.jsonl"
    _half_broken(heplus_data, samples)
    store = d / "run.sqlite"
    with pytest.raises(SystemExit) as exc:
        main(["--model", f"replay:{samples}", "--tasks", "humaneval-plus", "--data",
              str(heplus_data), "--store", str(store), "--quiet"])  # fmt: skip
    assert exc.value.code == 0
    (info,) = Store(store).runs()
    rows = Store(store).results(info.run_id)
    # The ground truth the audit reads: the marker is on exactly the answers the sandbox failed.
    assert len(rows) == N_TASKS
    assert sum(r["status"] == "pass" for r in rows) == N_TASKS // 2
    assert all((r["status"] == "pass") == (BROKEN_MARK not in r["answer"]) for r in rows)
    return store, info.run_id


@pytest.fixture
def store(he_run: tuple[Path, str], tmp_path: Path) -> Path:
    path = tmp_path / "store.sqlite"
    src, dst = sqlite3.connect(he_run[0]), sqlite3.connect(path)
    src.backup(dst)  # the WAL's pages too, which a plain file copy would miss
    src.close()
    dst.close()
    return path


@pytest.fixture
def srv(monkeypatch: pytest.MonkeyPatch) -> Iterator[CountingServer]:
    for k, v in KEY.items():
        monkeypatch.setenv(k, v)
    with CountingServer(lifetime_s=300) as s:
        yield s


def audit(
    srv: CountingServer, store: Path, run: str | None, judge: str, out: Path, *extra: str
) -> dict[str, Any]:
    args = ["judge-audit", "--judge", f"openai:{judge}", "--judge-base-url", srv.url,
            "--store", str(store), "--json", str(out), "--quiet", *extra]  # fmt: skip
    _cli(*args, *(["--run", run] if run else []))
    report: dict[str, Any] = json.loads(out.read_text())
    return report


@pytest.mark.parametrize(
    ("judge", "lo", "hi"), [("oracle", 0.95, 1.0), ("judge", 0.3, 0.7), ("invert", 0.0, 0.05)]
)
def test_auroc_of_oracle_hash_and_inverted_judges(
    judge: str, lo: float, hi: float, he_run: tuple[Path, str], store: Path,
    srv: CountingServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    rep = audit(srv, store, he_run[1], judge, tmp_path / "a.json")
    with capsys.disabled():  # the measured figure, for the record (pytest -s)
        print(f"\nAUROC {judge}: {rep['auroc']:.3f} interval {rep['auroc_interval']}")
    assert lo <= rep["auroc"] <= hi
    assert rep["answers"] == N_TASKS and rep["passing"] == rep["failing"] == N_TASKS // 2
    assert rep["tasks"] == N_TASKS and rep["parse_failures"] == 0
    assert rep["answers_equal_to_reference"] == N_TASKS // 2  # the replayed canonical solutions
    assert srv.count(judge) == N_TASKS == rep["judge_requests"]
    lo_i, hi_i = rep["auroc_interval"]
    assert lo_i <= rep["auroc"] <= hi_i
    # Every answer was rated with the instruction-following prompt against the canonical solution.
    assert rep["preference"] == "instruction-following"
    assert "canonical solution" in rep["reference"]
    # (the default templates are the paper's: the user message opens as its template does)
    ts = load_templates(None)
    opening = ts.texts[ts.user_files["instruction-following"]].split("{instruction}")[0]
    assert opening.strip() and all(opening in h.prompt for h in srv.hits_for(judge))
    cal = {c["rating"]: c for c in rep["calibration"]}
    if judge == "oracle":
        assert cal[9.0]["share_passing"] == 1.0 and cal[2.0]["share_passing"] == 0.0
        assert rep["mean_rating"]["passing"]["value"] == 9.0
    out = capsys.readouterr().out
    assert "AUROC (pass vs fail)" in out and f"{rep['auroc']:.3f}" in out


def test_second_identical_audit_sends_nothing(
    he_run: tuple[Path, str], store: Path, srv: CountingServer, tmp_path: Path
) -> None:
    first = audit(srv, store, he_run[1], "judge", tmp_path / "1.json")
    sent = srv.count()
    second = audit(srv, store, he_run[1], "judge", tmp_path / "2.json")
    assert srv.count() == sent == N_TASKS
    assert second["judge_requests"] == 0 and second["grades_reused"] == N_TASKS
    assert second["auroc"] == first["auroc"] and second["calibration"] == first["calibration"]


def test_audit_after_a_codal_run_with_the_same_judge_reuses_nothing(
    he_run: tuple[Path, str], store: Path, srv: CountingServer, tmp_path: Path, codal_data: Path
) -> None:
    _cli("--model", "openai:cand", "--base-url", srv.url, "--judge", "openai:judge",
         "--judge-base-url", srv.url, "--tasks", "codal-bench", "--data", str(codal_data),
         "--limit", "2", "--store", str(store), "--quiet")  # fmt: skip
    codal_grades = srv.count("judge")
    assert codal_grades == 10
    rep = audit(srv, store, he_run[1], "judge", tmp_path / "a.json")
    assert rep["grades_reused"] == 0 and rep["judge_requests"] == N_TASKS
    assert srv.count("judge") == codal_grades + N_TASKS
    # ...and a CODAL run after the audit is not served from the audit's grades either.
    _cli("--model", "openai:cand2", "--base-url", srv.url, "--judge", "openai:judge",
         "--judge-base-url", srv.url, "--tasks", "codal-bench", "--data", str(codal_data),
         "--limit", "2", "--store", str(store), "--quiet")  # fmt: skip
    assert srv.count("judge") == codal_grades + N_TASKS + 10


def _templates_copy(repo_root: Path, tmp_path: Path) -> Path:
    """The default judge templates with one changed word: another template hash."""
    folder = tmp_path / "templates"
    shutil.copytree(repo_root / "judges" / "codal-eval", folder)
    system = folder / "system.jinja"
    system.write_text(system.read_text().replace("brief justification", "short justification"))
    return folder


def test_leaderboard_shows_the_judges_latest_audit(
    he_run: tuple[Path, str], store: Path, srv: CountingServer, tmp_path: Path,
    codal_data: Path, repo_root: Path,
) -> None:  # fmt: skip
    _cli("--model", "openai:cand", "--base-url", srv.url, "--judge", "openai:oracle",
         "--judge-base-url", srv.url, "--tasks", "codal-bench", "--data", str(codal_data),
         "--limit", "2", "--store", str(store), "--quiet")  # fmt: skip
    # An audit of the same judge with other templates does not count for these tables.
    other = audit(srv, store, he_run[1], "invert", tmp_path / "x.json")
    assert other["auroc"] <= 0.05
    templates = _templates_copy(repo_root, tmp_path)
    elsewhere = audit(srv, store, he_run[1], "oracle", tmp_path / "t.json",
                      "--judge-templates", str(templates))  # fmt: skip
    assert elsewhere["judge"]["templates"]["sha256"] != other["judge"]["templates"]["sha256"]

    def codal_table(lb: Any) -> Any:
        (t,) = [t for t in lb.tables if t.meta.get("judge") and not t.published_only]
        return t

    ro = Store(store, readonly=True)
    before = compile_leaderboard(ro, n_boot=50)
    assert codal_table(before).meta["judge_audit"] is None
    assert "judge audit: none" in " ".join(render(before, "terminal").split())

    first = audit(srv, store, he_run[1], "oracle", tmp_path / "o1.json")
    latest = audit(srv, store, he_run[1], "oracle", tmp_path / "o2.json")
    assert latest["judge_requests"] == 0 and latest["audit_id"] != first["audit_id"]
    lb = compile_leaderboard(Store(store, readonly=True), n_boot=50)
    meta = codal_table(lb).meta["judge_audit"]
    assert meta["audit_id"] == latest["audit_id"] and meta["auroc"] == latest["auroc"] >= 0.95
    text = f"judge audit AUROC {latest['auroc']:.2f}"
    for fmt in ("terminal", "html", "markdown"):  # the terminal wraps its caption: unwrap it
        assert text in " ".join(render(lb, fmt).split()), fmt
    doc = json.loads(render(lb, "json"))
    (jt,) = [t for t in doc["tables"] if t["meta"].get("judge") and not t["published_only"]]
    assert jt["meta"]["judge_audit"]["auroc"] == latest["auroc"]
    assert jt["meta"]["judge_audit"]["interval"] == latest["auroc_interval"]
    # Tables without a model judge carry no audit.
    assert all("judge_audit" not in t["meta"] for t in doc["tables"] if not t["meta"].get("judge"))


def test_run_without_an_execution_task_is_refused(
    srv: CountingServer, tmp_path: Path, codal_data: Path
) -> None:
    store = tmp_path / "s.sqlite"
    _cli("--model", "openai:cand", "--base-url", srv.url, "--judge", "openai:judge",
         "--judge-base-url", srv.url, "--tasks", "codal-bench", "--data", str(codal_data),
         "--limit", "1", "--store", str(store), "--quiet")  # fmt: skip
    (info,) = Store(store).runs()
    with pytest.raises(SystemExit) as exc:
        main(["judge-audit", "--judge", "openai:judge", "--judge-base-url", srv.url,
              "--run", info.run_id, "--store", str(store)])  # fmt: skip
    assert exc.value.code == 4  # could not start: bad input
    assert Store(store).latest_audit({}, "") is None


def test_built_in_set_is_graded_by_the_sandbox_first(
    srv: CountingServer, tmp_path: Path, heplus_data: Path
) -> None:
    """No --run: correct and broken variants, sandbox verdicts matching intent, none equal to
    the reference; a second audit asks neither the judge nor (through the cache) the sandbox."""
    store = tmp_path / "s.sqlite"
    args = ("--data", str(heplus_data), "--limit", "6")
    rep = audit(srv, store, None, "judge", tmp_path / "a.json", *args)
    print(f"\nAUROC hash judge, built-in set: {rep['auroc']:.3f} ({rep['answers']} answers)")
    assert rep["source"]["set"] == "built-in" and rep["source"]["problems"] == 6
    assert rep["answers_equal_to_reference"] == 0
    assert rep["passing"] >= 5 and rep["failing"] >= 2 * rep["passing"] - 2
    assert rep["tasks"] == 6 and rep["judge_requests"] == rep["answers"] == srv.count("judge")
    kinds = {(e["failing"]["kind"] or "").split(":")[0] for e in rep["inverted_pairs"]["examples"]}
    assert kinds <= {"broken"}
    s = Store(store)
    exec_rows = s.conn.execute("SELECT status, COUNT(*) FROM grades WHERE judge='humaneval' "
                               "GROUP BY status").fetchall()  # fmt: skip
    graded = sum(n for _, n in exec_rows)
    assert graded == rep["answers"] + rep["left_out"]["variants_dropped"]
    assert s.runs() == []  # the set is not a run: it never reaches the leaderboard or the gate
    again = audit(srv, store, None, "judge", tmp_path / "b.json", *args)
    assert again["judge_requests"] == 0 and again["auroc"] == rep["auroc"]
    exec_after = s.conn.execute("SELECT COUNT(*) FROM grades WHERE judge='humaneval'").fetchone()
    assert exec_after[0] == graded
