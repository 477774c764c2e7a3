"""The example workflow is valid GitHub Actions YAML with the gate wired in (its steps are run
for real in tests/test_ci_workflow_runs.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

WORKFLOW = Path(__file__).resolve().parent.parent / "examples" / "ci" / "codal-eval.yml"


@pytest.fixture(scope="module")
def wf() -> dict[Any, Any]:
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _on(wf: dict[Any, Any]) -> dict[str, Any]:
    # YAML 1.1 (PyYAML) reads the bare key `on` as the boolean True; GitHub reads it as "on".
    on = wf.get("on", wf.get(True))
    assert isinstance(on, dict), "workflow has no `on:` triggers"
    return on


def test_top_level_structure(wf: dict[Any, Any]) -> None:
    assert isinstance(wf["name"], str) and wf["name"]
    on = _on(wf)
    assert {"push", "pull_request", "workflow_dispatch"} <= set(on)
    inputs = on["workflow_dispatch"]["inputs"]
    assert inputs["checkpoint"]["required"] is True
    assert inputs["backend"]["type"] == "choice" and inputs["backend"]["options"] == ["gpu", "api"]
    for inp in inputs.values():
        assert inp["type"] in ("string", "choice", "boolean", "number", "environment")
    assert isinstance(wf["jobs"], dict) and wf["jobs"]


def test_jobs_and_steps_are_well_formed(wf: dict[Any, Any]) -> None:
    allowed_job = {
        "name",
        "if",
        "runs-on",
        "timeout-minutes",
        "env",
        "steps",
        "needs",
        "permissions",
        "concurrency",
        "strategy",
        "outputs",
        "environment",
    }
    allowed_step = {
        "name",
        "id",
        "if",
        "uses",
        "run",
        "with",
        "env",
        "shell",
        "continue-on-error",
        "timeout-minutes",
        "working-directory",
    }
    for job_id, job in wf["jobs"].items():
        assert set(job) <= allowed_job, (job_id, set(job) - allowed_job)
        assert isinstance(job["runs-on"], (str, list))
        assert isinstance(job["steps"], list) and job["steps"]
        for step in job["steps"]:
            assert set(step) <= allowed_step, (job_id, step)
            assert ("uses" in step) != ("run" in step), (
                f"{job_id}: a step needs exactly one of uses/run"
            )
            if "uses" in step:
                assert "@" in step["uses"], f"{step['uses']} must pin a version"


def _check_step(job: dict[str, Any]) -> str:
    runs = [s["run"] for s in job["steps"] if "codal-eval check" in s.get("run", "")]
    assert len(runs) == 1
    return str(runs[0])


def test_gpu_job_runs_the_gate_and_reports(wf: dict[Any, Any]) -> None:
    job = wf["jobs"]["gate-gpu"]
    assert job["runs-on"] == ["self-hosted", "gpu"]
    steps = job["steps"]
    assert any('"$CODAL_EVAL_PACKAGE" "vllm' in s.get("run", "") for s in steps)
    uses = [s.get("uses", "") for s in steps]
    assert any(u.startswith("actions/checkout@") for u in uses)
    assert not any("cache" in u for u in uses), "the baseline is a bundle, not a cached store"
    assert any(u.startswith("actions/upload-artifact@") for u in uses)
    run = _check_step(job)
    for flag in (
        "--model",
        "--baseline",
        "--judge",
        "--junit",
        "--summary-md",
        "--json",
        "--inconclusive",
    ):
        assert flag in run
    # the check step's exit code is the job's: exit 1 (regression) fails it, with an annotation
    assert "exit $code" in run and '1) echo "::error' in run
    check_index = next(i for i, s in enumerate(steps) if "codal-eval check" in s.get("run", ""))
    after = steps[check_index + 1 :]
    assert any("GITHUB_STEP_SUMMARY" in s.get("run", "") for s in after)
    assert all(str(s.get("if", "")).startswith("always()") for s in after), (
        "reports must survive a failed gate"
    )


def test_api_variant_uses_secrets_not_a_gpu(wf: dict[Any, Any]) -> None:
    job = wf["jobs"]["gate-api"]
    assert job["runs-on"] == "ubuntu-latest"
    assert "vllm" not in " ".join(s.get("run", "") for s in job["steps"])
    assert "--base-url" in _check_step(job)
    env = wf["env"]
    assert env["OPENAI_API_KEY"] == "${{ secrets.OPENAI_API_KEY }}"
    assert "${{ secrets." in env["ANTHROPIC_API_KEY"]


def test_api_job_order_and_safety(wf: dict[Any, Any]) -> None:
    steps = wf["jobs"]["gate-api"]["steps"]
    runs = [str(s.get("run", "")) for s in steps]
    # no expression inside a script: inputs reach the shell through env only
    assert not any("${{" in r for r in runs)

    def index(text: str) -> int:
        return next(i for i, r in enumerate(runs) if text in r)

    assert index("apt-get install -y -q bubblewrap") < index('pip install "$CODAL_EVAL_PACKAGE"')
    assert index("SandboxExecutor") < index("codal-eval check")  # preflight first
    assert index("codal-eval check") < index("codal-eval-gate -->") < index("--format bundle")
    assert "--method PATCH" in runs[index("codal-eval-gate -->")]  # one comment, edited
    assert '--baseline "$BUNDLE"' in runs[index("codal-eval check")]
    assert "CANDIDATE//\\{sha\\}/$SHA" in runs[index("CANDIDATE=")]
    assert wf["env"]["FORK"] == "${{ github.event.pull_request.head.repo.fork }}"


def _plan(wf: dict[Any, Any], tmp_path: Path, **env: str) -> tuple[int, str, str]:
    """The API job's plan step alone, in an empty workspace, with the given environment."""
    import os
    import subprocess

    step = next(s for s in wf["jobs"]["gate-api"]["steps"] if s.get("name", "").startswith("Plan"))
    out = tmp_path / "github_env"
    out.write_text("")
    base = {"PATH": os.environ["PATH"], "GITHUB_ENV": str(out), "BUNDLE": "b/x.codal-bundle",
            "CANDIDATE": "openai:m-{sha}", "SHA": "abc123", "EVENT": "pull_request",
            "REF": "refs/pull/7/merge"}  # fmt: skip
    p = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=tmp_path, env={**base, **env}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return p.returncode, p.stdout, out.read_text()


def test_plan_step_handles_forks_missing_baselines_and_the_commit(
    wf: dict[Any, Any], tmp_path: Path
) -> None:
    # a fork's pull request has no secrets: skipped with a notice...
    code, out, genv = _plan(wf, tmp_path)
    assert code == 0 and "GATE=skip" in genv and "::notice" in out
    assert "CANDIDATE=openai:m-abc123" in genv  # the candidate of this commit
    # ...or, when the candidate server needs no key, only the unjudged tasks are gated
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.codal-bundle").write_bytes(b"x")
    code, out, genv = _plan(wf, tmp_path, BASE_URL="http://127.0.0.1:1/v1")
    assert code == 0 and "GATE=unjudged" in genv
    # with keys and a committed bundle: the full gate
    code, out, genv = _plan(wf, tmp_path, OPENAI_API_KEY="sk-x")
    assert code == 0 and "GATE=full" in genv
    # no bundle on a pull request: exit 4 with an error annotation
    (tmp_path / "b" / "x.codal-bundle").unlink()
    code, out, genv = _plan(wf, tmp_path, OPENAI_API_KEY="sk-x")
    assert code == 4 and "::error title=codal-eval::no baseline bundle" in out
    # no bundle on main: this commit becomes the baseline
    code, out, genv = _plan(
        wf, tmp_path, OPENAI_API_KEY="sk-x", EVENT="push", REF="refs/heads/main"
    )
    assert code == 0 and "GATE=bootstrap" in genv
