"""Acceptance 1 through the real CLI (replay backend), and `check` orchestration without models."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from junitparser import JUnitXml

from codal_bench import gate
from codal_bench.gate import CheckError, check, find_baseline
from codal_bench.store import Store
from tests.test_gate_stats import write_run

HEPLUS = "HumanEvalPlus-v0.1.10.jsonl.gz"


def _he(n: int, broken: int) -> dict[str, list[tuple[bool, bool]]]:
    return {f"HumanEval/{i}": [(i >= broken, i >= broken)] for i in range(n)}


# -- orchestration: check() with the runner replaced by stored runs -----------------------------


def test_check_orchestration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "s.sqlite")
    base = write_run(store, "replay:canon.jsonl", humaneval=_he(164, 0))
    calls: list[tuple[Any, ...]] = []

    def fake_run_like(
        st: Store, base_id: str, model: str, judge: str | None, progress: Any = None, **kw: Any
    ) -> str:
        assert kw.pop("items") is None  # no --tasks/--limit: every item of the baseline
        calls.append((base_id, model, judge, kw))
        return write_run(st, model, humaneval=_he(164, int(model.split(":")[1])))

    monkeypatch.setattr("codal_bench.rerun.run_like", fake_run_like)
    out = {k: tmp_path / f"r.{k}" for k in ("xml", "md", "json")}
    kw: dict[str, Any] = {
        "junit": out["xml"],
        "summary_md": out["md"],
        "json_path": out["json"],
        "quiet": True,
        "n_boot": 2000,
    }
    # the baseline named by its model spec finds the stored run
    assert check(store, model="fake:15", baseline="replay:canon.jsonl", **kw) == 1
    assert calls[-1][:3] == (base, "fake:15", None)
    assert json.loads(out["json"].read_text())["verdict"] == "regression"
    assert "HumanEval/14" in out["md"].read_text()
    assert len(list(next(iter(JUnitXml.fromfile(str(out["xml"])))))) == 2
    assert check(store, model="fake:0", baseline=base, **kw) == 0
    assert (
        check(store, model="fake:1", baseline=base[:-2], max_drop=("humaneval-plus=0.05",), **kw)
        == 0
    )
    # -M / --base-url reach the runner as model options; the default judge repeats are not forced
    check(
        store,
        model="fake:0",
        baseline=base,
        model_kv=("gpu_memory_utilization=0.8",),
        base_url="http://x",
        judge_repeats=1,
        **kw,
    )
    assert calls[-1][3] == {
        "model_options": {"gpu_memory_utilization": "0.8", "base_url": "http://x"}
    }


def test_check_cannot_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "s.sqlite")
    with pytest.raises(CheckError, match="no complete run of a model") as info:
        find_baseline(store, "20990101-000000-abcdef")
    assert info.value.exit_code == 4
    base = write_run(store, "base", humaneval=_he(10, 0))
    monkeypatch.setattr(
        "codal_bench.rerun.run_like", lambda st, *a, **k: write_run(st, "c", humaneval=_he(9, 0))
    )
    with pytest.raises(CheckError, match="different items"):
        gate.run_check(store, model="c", baseline=base)


# -- acceptance 1 through the real command line -------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codal_bench.cli", *args],
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )


def _samples(path: Path, problems: list[dict[str, Any]], broken: int) -> Path:
    """EvalPlus samples: the canonical solution, or `return None` for the first `broken` tasks."""
    with path.open("w", encoding="utf-8") as f:
        for i, p in enumerate(problems):
            body = "    return None\n" if i < broken else p["canonical_solution"]
            f.write(json.dumps({"task_id": p["task_id"], "solution": p["prompt"] + body}) + "\n")
    return path


@pytest.mark.slow
def test_acceptance_through_the_cli(tmp_path: Path, heplus_data: Path) -> None:
    with gzip.open(heplus_data, "rt", encoding="utf-8") as f:
        problems = [json.loads(line) for line in f if line.strip()]
    assert len(problems) == 164
    store = str(tmp_path / "store.sqlite")
    canon = _samples(tmp_path / "canon.jsonl", problems, 0)
    p = _cli(
        "run",
        "--model",
        f"replay:{canon}",
        "--tasks",
        "humaneval-plus",
        "--data",
        str(heplus_data),
        "--store",
        store,
        "--quiet",
    )
    assert p.returncode == 0, p.stderr
    (base,) = [r.run_id for r in Store(store).runs()]

    def gate_cli(cand: Path, baseline: str, *extra: str) -> tuple[int, Path]:
        rep = tmp_path / cand.stem
        p = _cli(
            "check",
            "--model",
            f"replay:{cand}",
            "--baseline",
            baseline,
            "--store",
            store,
            "--quiet",
            "--junit",
            str(rep / "gate.xml"),
            "--summary-md",
            str(rep / "gate.md"),
            "--json",
            str(rep / "gate.json"),
            *extra,
        )
        assert "Traceback" not in p.stderr, p.stderr
        return p.returncode, rep

    code, rep = gate_cli(_samples(tmp_path / "broken15.jsonl", problems, 15), f"replay:{canon}")
    assert code == 1
    data = json.loads((rep / "gate.json").read_text())
    assert {m["name"]: m["decision"] for m in data["metrics"]}["humaneval-plus"] == "regression"
    assert "`HumanEval/14`" in (rep / "gate.md").read_text()
    code, _ = gate_cli(_samples(tmp_path / "same.jsonl", problems, 0), base)
    assert code == 0
    code, rep = gate_cli(
        _samples(tmp_path / "broken1.jsonl", problems, 1), base, "--max-drop", "humaneval-plus=0.05"
    )
    assert code == 0, (rep / "gate.md").read_text()
    # a baseline that does not exist: the check could not run
    code, _ = gate_cli(tmp_path / "same.jsonl", "20990101-000000-abcdef")
    assert code == 4


def test_cli_exit_codes_when_the_check_cannot_run(tmp_path: Path) -> None:
    samples = tmp_path / "c.jsonl"
    samples.write_text('{"task_id": "HumanEval/0", "solution": "x = 1"}\n')
    store = str(tmp_path / "s.sqlite")
    p = _cli("check", "--model", f"replay:{samples}", "--baseline", "2099-nope", "--store", store)
    assert p.returncode == 4 and "no run '2099-nope'" in p.stderr and "Traceback" not in p.stderr
    drop = ("--max-drop", "humaneval-plus")
    p = _cli("check", "--model", f"replay:{samples}", "--baseline", "x", *drop, "--store", store)
    assert p.returncode == 2 and "METRIC=VALUE" in p.stderr
