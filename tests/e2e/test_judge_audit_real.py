"""`judge-audit` with the real embedded SmolLM2 as the judge (vLLM in-process), on the built-in set.

A 135M model is no judge of code, so nothing is asserted about its AUROC beyond its range: the
point is that the whole path (sandbox-graded set, real judge prompts, rating parse, report,
stored audit) works on real text, and that parse failures are counted, not dropped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from codal_bench.store import Store

pytestmark = pytest.mark.e2e

PROBLEMS = 3  # the first three problems of the built-in set: about nine answers to rate


def test_smollm2_audit_report(
    smollm2_dir: Path, heplus_data: Path, repo_root: Path, tmp_path: Path
) -> None:
    templates = tmp_path / "codal-short"
    shutil.copytree(repo_root / "judges" / "codal-eval", templates)
    cfg = yaml.safe_load((templates / "judge.yaml").read_text())
    cfg["max_tokens"] = 128  # short rationales keep a CPU run quick
    (templates / "judge.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    store, report = tmp_path / "s.sqlite", tmp_path / "audit.json"
    args = [sys.executable, "-m", "codal_bench.cli", "judge-audit", "--judge", "smollm2",
            "--judge-templates", str(templates), "--data", str(heplus_data),
            "--limit", str(PROBLEMS), "--store", str(store), "--json", str(report),
            "--quiet"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "120"}
    p = subprocess.run(args, capture_output=True, text=True, env=env, timeout=1200)
    assert p.returncode == 0, p.stderr[-3000:]
    rep = json.loads(report.read_text())
    print(
        f"\nSmolLM2 audit: AUROC {rep['auroc']} interval {rep['auroc_interval']}, "
        f"{rep['answers']} answers ({rep['passing']} passing), parse failures "
        f"{rep['parse_failures']} ({rep['parse_failure_rate']:.2f}), mean ratings "
        f"{rep['mean_rating']['passing']['value']} / {rep['mean_rating']['failing']['value']}"
    )
    assert rep["source"]["set"] == "built-in" and rep["source"]["problems"] == PROBLEMS
    assert rep["passing"] >= 1 and rep["failing"] >= 1
    assert rep["answers"] == rep["passing"] + rep["failing"]
    assert rep["answers_equal_to_reference"] == 0
    assert rep["judge_requests"] == rep["answers"] and rep["judge_errors"] == 0
    assert rep["judge"]["identity"]["max_tokens"] == 128
    # Parse failures are counted (each scored 0), whether or not this small model produced any.
    assert 0 <= rep["parse_failures"] <= rep["answers"]
    assert rep["parse_failure_rate"] == pytest.approx(rep["parse_failures"] / rep["answers"])
    unrated = [c for c in rep["calibration"] if c["rating"] == "no rating"]
    assert sum(c["n"] for c in unrated) == rep["parse_failures"]
    assert sum(c["n"] for c in rep["calibration"]) == rep["answers"]
    assert rep["auroc"] is not None and 0.0 <= rep["auroc"] <= 1.0
    assert "AUROC (pass vs fail)" in p.stdout and "parse failures" in p.stdout
    # The audit is stored under the judge's identity and template hash.
    found = Store(store).latest_audit(rep["judge"]["identity"], rep["judge"]["templates"]["sha256"])
    assert found is not None and found["auroc"] == rep["auroc"]
