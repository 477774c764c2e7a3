"""The main job on the real embedded model: in-process vLLM and a real OpenAI-compatible server.

Few items and short outputs keep these within CI's time; every assertion is about what was
stored and printed, because a small model's scores themselves prove nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from codal_bench.store import Store

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def short_judge(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Path:
    """Our judge templates with a shorter rationale budget (the YAML is the place for it)."""
    d = tmp_path_factory.mktemp("judge") / "codal-short"
    shutil.copytree(repo_root / "judges" / "codal-eval", d)
    cfg = yaml.safe_load((d / "judge.yaml").read_text())
    cfg["max_tokens"] = 160
    (d / "judge.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return d


def small_job(codal: Path, heplus: Path, judge: Path, store: Path) -> tuple[str, ...]:
    """One item per CODAL preference and one HumanEval+ task, short answers, short rationales."""
    return (
        "--limit", "1", "--set", "codal-bench.max_tokens=96",
        "--set", "humaneval-plus.max_tokens=96", "--judge-templates", str(judge),
        "--data", f"codal-bench={codal}", "--data", f"humaneval-plus={heplus}",
        "--store", str(store),
        # as in `make demo`: the 135M judge mostly writes no rating; counted 0, said loudly
        "--max-parse-failure-rate", "1",
    )  # fmt: skip


def codal_eval(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "120"}
    return subprocess.run(
        [sys.executable, "-m", "codal_bench.cli", *args, "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def _check_run(store_path: Path, out: str, judge_spec_backend: str) -> dict[str, Any]:
    store = Store(store_path)
    (run,) = store.runs()
    assert run.status == "complete"
    rows = store.results(run.run_id)
    codal = [r for r in rows if r["task"] == "codal-bench"]
    he = [r for r in rows if r["task"] == "humaneval-plus"]
    assert len(codal) == 5 and {r["group"] for r in codal} == {
        "instruction-following",
        "explanation",
        "complexity",
        "readability",
        "style",
    }
    assert len(he) == 1
    assert all(isinstance(r["answer"], str) and r["gen_error"] is None for r in rows)
    # Every CODAL answer is graded: rated with a rationale, or a parse failure (counted 0).
    for r in codal:
        assert r["status"] in ("rated", "parse_failure"), r
        assert r["details"]["judge_output"] is not None
        if r["status"] == "rated":
            assert r["rating"] is not None
        else:
            assert r["rating"] is None
    failures = sum(r["status"] == "parse_failure" for r in codal)
    summary = run.record.summary
    assert run.record.reports["codal-bench"]["diagnostics"]["parse_failures"] == failures
    assert he[0]["status"] in ("pass", "fail", "timeout", "error")
    assert set(he[0]["details"]) >= {"base", "plus"}
    # The judge's configuration and diagnostics are recorded with the run.
    judge = run.config.judge
    assert judge is not None and judge.spec.startswith(judge_spec_backend)
    assert judge.sampling == {"temperature": 0.0, "max_tokens": 160}
    assert judge.templates["sha256"]
    assert judge.reference == "claude-3-sonnet-20240229_response"
    diag = run.record.reports["codal-bench"]["diagnostics"]
    assert diag["parse_failures"] == failures and "self_preference" in diag
    assert diag["self_preference"]["flag"] is True  # same model answers and judges
    # The table shows every CODAL preference, the average and both pass@1 figures.
    for label in (
        "codal-bench · Style",
        "codal-bench · CODAL avg",
        "judge parse failures",
        "humaneval-plus · HE pass@1",
        "humaneval-plus · HE+ pass@1",
    ):
        assert label in out, out
    shown = [x for x in out.splitlines() if "judge parse failures" in x]
    assert shown and f"{failures} of " in shown[0], out
    return summary


def test_main_job_in_process_then_fully_cached(
    smollm2_dir: Path, codal_data: Path, heplus_data: Path, short_judge: Path, tmp_path: Path
) -> None:
    store = tmp_path / "s.sqlite"
    args = (
        "--model", str(smollm2_dir), "--judge", str(smollm2_dir),
        *small_job(codal_data, heplus_data, short_judge, store),
    )  # fmt: skip
    first = codal_eval(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    summary = _check_run(store, first.stdout, "vllm:")
    rec = Store(store).runs()[0].record
    assert rec.counts["requests_sent"] == 6 + 5  # 6 answers, 5 judge calls
    assert rec.tokens["completion"] > 0

    second = codal_eval(*args)
    assert second.returncode == 0, second.stderr[-3000:]
    runs = Store(store).runs()
    assert len(runs) == 2 and runs[1].record.counts["requests_sent"] == 0
    assert runs[1].record.summary == summary
    table = lambda out: out.split("requests sent")[0].split("\nmetric", 1)[1]  # noqa: E731
    assert table(second.stdout) == table(first.stdout)


def test_main_job_over_http(
    openai_server: str, codal_data: Path, heplus_data: Path, short_judge: Path, tmp_path: Path
) -> None:
    store = tmp_path / "s.sqlite"
    p = codal_eval(
        "--model", "openai:smollm2", "--base-url", openai_server, "--judge", "openai:smollm2",
        "--judge-base-url", openai_server, "--concurrency", "4",
        *small_job(codal_data, heplus_data, short_judge, store),
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    _check_run(store, p.stdout, "openai:")
    rec = Store(store).runs()[0].record
    assert rec.tokens["prompt"] > 0 and rec.tokens["completion"] > 0


def test_pass_at_k_five_samples_one_batched_call(
    smollm2_dir: Path, heplus_data: Path, store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from codal_bench.backends.vllm import VLLMBackend
    from codal_bench.runner import RunOptions, run

    calls: list[int] = []
    real = VLLMBackend.generate

    def counting(self: VLLMBackend, requests: Any) -> Any:
        calls.append(len(requests))
        return real(self, requests)

    monkeypatch.setattr(VLLMBackend, "generate", counting)
    opts = RunOptions(
        model=str(smollm2_dir),
        tasks=["humaneval-plus"],
        limit=8,
        samples=5,
        temperature=0.8,
        max_tokens=256,
        seed=1,
        data={"humaneval-plus": str(heplus_data)},
    )
    res = run(opts, Store(store_path))
    assert calls == [40]  # 8 tasks × 5 samples in one batched call
    he = res.summary["tasks"]["humaneval-plus"]["metrics"]
    assert he["humaneval-plus"]["n"] == 8 and set(he) == {
        "humaneval-plus",
        "humaneval-plus@5",
        "humaneval",
        "humaneval@5",
    }
    assert 0.0 <= he["humaneval-plus"]["value"] <= he["humaneval-plus@5"]["value"] <= 1.0
    answers = [r["answer"] for r in res.rows]
    assert len(answers) == 40 and len(set(answers)) > 8  # sampled, not one answer copied
