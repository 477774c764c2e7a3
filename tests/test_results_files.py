"""Acceptance 2: `--output-path DIR --log-samples` writes a results.json that validates against the
schema in the repo and agrees with `runs show RUN --format json`, and a samples file with the
judge's prompt and reply (CODAL-Bench) and the extracted code (HumanEval+); `export` writes the
same records. Real runs through the CLI, answered and judged by replay files, graded by the real
sandbox."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from codal_bench.results import SCHEMA_FILE, load_schema
from codal_bench.store import Store
from tests.helpers_cli import HE_IDS, codal_ids, load, main, replay_files, run_args

NAME = "nightly-" + "n" * 56  # 64 characters


def test_results_file_validates_and_matches_runs_show(
    tmp_path: Path, codal_data: Path, heplus_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "s.sqlite"
    out = tmp_path / "results"
    files = replay_files(tmp_path, codal_data, heplus_data, broken=1)
    args = run_args(files, codal_data, heplus_data, store, "--name", NAME, "--tag", "ci")
    assert main([*args, "--output-path", str(out), "--log-samples"]) == 0
    capsys.readouterr()
    folder = out / NAME
    doc = load(folder / "results.json")

    schema = load_schema()
    assert SCHEMA_FILE.is_relative_to(Path(__file__).resolve().parent.parent)  # in the repo
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(doc, schema)
    assert schema["additionalProperties"] is False  # the top level is closed
    assert set(schema["required"]) >= {"state", "config", "versions", "git", "metrics"}
    item = schema["properties"]["metrics"]["items"]
    assert set(item["required"]) >= {"name", "value", "interval", "n"}
    # the schema rejects what it should: an unknown top-level key, a metric without interval
    for broken in ({**doc, "extra": 1}, {**doc, "metrics": [{"name": "x", "value": 1, "n": 1}]}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)

    assert doc["state"] == "complete" and doc["name"] == NAME and doc["tags"] == ["ci"]
    assert doc["git"] is None or len(doc["git"]["sha"]) == 40
    values = {(m["task"], m["name"]): m for m in doc["metrics"]}
    he = values[("humaneval-plus", "humaneval-plus")]
    assert he["value"] == pytest.approx(2 / 3) and he["n"] == 3
    lo, hi = he["interval"]
    assert 0 <= lo <= he["value"] <= hi <= 1
    assert values[("codal-bench", "codal-average")]["n"] == 5

    assert main(["runs", "show", NAME, "--format", "json", "--store", str(store)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [(m["name"], m["value"], m["interval"], m["n"]) for m in shown["metrics"]] == [
        (m["name"], m["value"], m["interval"], m["n"]) for m in doc["metrics"]
    ]
    jsonschema.validate(shown, schema)

    samples = [json.loads(x) for x in (folder / "samples.jsonl").read_text().splitlines()]
    assert doc["samples"] == "samples.jsonl" and len(samples) == 5 + len(HE_IDS)
    codal = {s["task_id"]: s for s in samples if s["task"] == "codal-bench"}
    assert set(codal) == {i for i, _ in codal_ids(codal_data)}
    for s in codal.values():
        assert s["prompt"][-1]["role"] == "user" and s["answer"].startswith("Here is code")
        judge_prompt = s["judge"]["prompt"]
        assert any(s["answer"] in m["content"] for m in judge_prompt)  # the answer it graded
        assert s["judge"]["reply"].endswith(f"Rating: {int(s['rating'])}")
        assert s["reference"] and s["reference_column"]
    he_rows = {s["task_id"]: s for s in samples if s["task"] == "humaneval-plus"}
    assert set(he_rows) == set(HE_IDS)
    for tid, s in he_rows.items():
        assert s["extracted_code"].lstrip().startswith(("from", "def", "import"))
        assert "```" not in s["extracted_code"] and s["extracted_code"] in s["answer"]
        assert s["status"] == ("fail" if tid == HE_IDS[0] else "pass")
        assert s["extraction"] == "as-written"  # a replay solution runs as written
        assert s["judge"] is None

    # export writes the same records
    exported = tmp_path / "export.jsonl"
    assert main(["export", NAME, "-o", str(exported), "--store", str(store)]) == 0
    assert [json.loads(x) for x in exported.read_text().splitlines()] == samples


def test_each_run_gets_its_own_folder(
    tmp_path: Path, codal_data: Path, heplus_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "s.sqlite"
    out = tmp_path / "results"
    files = replay_files(tmp_path, codal_data, heplus_data)
    args = run_args(files, codal_data, heplus_data, store, "--output-path", str(out))
    assert main(args) == 0 and main(args) == 0  # unnamed: folders named after the run ids
    ids = [r.run_id for r in Store(store).runs()]
    assert sorted(p.name for p in out.iterdir()) == sorted(ids)
    assert main([*args, "--name", "same"]) == 0
    # the same name again for the same settings is a resume: the name moves, a new folder is made
    assert main([*args, "--name", "same"]) == 0
    docs = [load(p / "results.json") for p in sorted(out.iterdir())]
    assert len({d["run_id"] for d in docs}) == 4 == len(docs)
    assert (out / "same-2" / "results.json").exists()
    capsys.readouterr()
    assert main(run_args(files, codal_data, heplus_data, store, "--log-samples")) == 2
    assert "--log-samples needs --output-path" in capsys.readouterr().err


def test_grade_names_its_run_and_writes_its_files(
    tmp_path: Path, codal_data: Path, heplus_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "s.sqlite"
    files = replay_files(tmp_path, codal_data, heplus_data)
    assert main(run_args(files, codal_data, heplus_data, store, "--name", "first")) == 0
    judge2 = tmp_path / "judge2.jsonl"
    judge2.write_text(
        "".join(
            json.dumps({"task_id": i, "solution": "Too long. Rating: 2"}) + "\n"
            for i, _ in codal_ids(codal_data)
        )
    )
    out = tmp_path / "res"
    args = ["grade", "first", "--judge", f"replay:{judge2}", "--name", "first-regraded", "--tag",
            "regrade", "--output-path", str(out), "--store", str(store), "--quiet"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "codal-eval run first-regraded" in printed
    doc = load(out / "first-regraded" / "results.json")
    jsonschema.validate(doc, load_schema())
    assert doc["config"]["parent_run"] == Store(store).run("first").run_id
    assert doc["tags"] == ["regrade"]
    avg = {m["name"]: m["value"] for m in doc["metrics"]}["codal-average"]
    assert avg == pytest.approx(2.0)
