"""Runs a GitHub Actions job's `run:` steps on this machine, the way a hosted runner would.

What Actions does that matters here, and nothing more: `${{ }}` expressions in `env:` (context
lookups joined by `||`, with literals), workflow-, job- and step-level `env:`, the files behind
`$GITHUB_ENV`, `$GITHUB_OUTPUT` and `$GITHUB_STEP_SUMMARY`, `bash --noprofile --norc -eo pipefail`
as the shell, steps skipped after a failure unless `if: always()`, and the job's result being the
first failing step's. `uses:` steps are the caller's business (checkout = the fresh clone it hands
over, setup-python = the interpreter first on PATH, upload-artifact = the files left behind).

Each step runs as `user` (via runuser, with a clean environment) when one is given.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def lookup(ctx: dict[str, Any], path: str) -> Any:
    cur: Any = ctx
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return ""
        cur = cur[part]
    return cur


def evaluate(expr: str, ctx: dict[str, Any]) -> Any:
    """`a || b || 'lit'` (first truthy), optionally `(...) == 'x'`; all this workflow uses."""
    expr = expr.strip()
    if " == " in expr:
        left, right = expr.split(" == ", 1)
        return str(evaluate(left.strip().strip("()"), ctx)) == str(evaluate(right, ctx))
    for term in (t.strip() for t in expr.split("||")):
        value = term[1:-1] if term.startswith("'") and term.endswith("'") else lookup(ctx, term)
        if value not in ("", None, False):
            return value
    return ""


def render(value: Any, ctx: dict[str, Any]) -> str:
    text = str(value)
    m = _EXPR.fullmatch(text.strip())
    if m:
        v = evaluate(m.group(1), ctx)
        return ("true" if v else "false") if isinstance(v, bool) else str(v)
    return _EXPR.sub(lambda mm: str(evaluate(mm.group(1), ctx)), text)


@dataclass
class StepResult:
    name: str
    code: int | None  # None: skipped
    stdout: str = ""
    stderr: str = ""


@dataclass
class JobResult:
    steps: list[StepResult] = field(default_factory=list)
    summary: str = ""

    @property
    def code(self) -> int:
        return next((s.code for s in self.steps if s.code not in (None, 0)), 0) or 0

    @property
    def log(self) -> str:
        return "\n".join(f"## {s.name} -> {s.code}\n{s.stdout}{s.stderr}" for s in self.steps)

    def ran(self, prefix: str) -> StepResult:
        return next(s for s in self.steps if s.name.startswith(prefix))


def run_job(
    workflow: dict[str, Any],
    job_id: str,
    ctx: dict[str, Any],
    workspace: Path,
    machine_env: dict[str, str],
    user: str | None = None,
    on_step: Any = None,
) -> JobResult:
    """Run every `run:` step of one job in order; `on_step(name)` is called before each."""
    job = workflow["jobs"][job_id]
    temp = workspace.parent / f"{workspace.name}-runner"
    temp.mkdir(exist_ok=True)
    files = {k: temp / k.lower() for k in ("GITHUB_ENV", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY")}
    for f in files.values():
        f.write_text("")
    if user:
        subprocess.run(["chown", "-R", f"{user}:{user}", str(temp)], check=True)
    env: dict[str, str] = {**machine_env}
    env.update({k: str(v) for k, v in files.items()})
    env.update({"GITHUB_WORKSPACE": str(workspace), "RUNNER_TEMP": str(temp), "CI": "true"})
    env.update({"GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": str(ctx["github"]["event_name"])})
    for scope in (workflow.get("env") or {}, job.get("env") or {}):
        env.update({k: render(v, ctx) for k, v in scope.items()})
    result = JobResult()
    failed = False
    for i, step in enumerate(job["steps"]):
        name = step.get("name") or step.get("uses") or f"step {i}"
        if "run" not in step:
            continue
        cond = str(step.get("if", "")).strip()
        assert cond in ("", "always()"), f"{name}: condition {cond!r} is outside this runner"
        if failed and cond != "always()":
            result.steps.append(StepResult(name, None))
            continue
        if on_step:
            on_step(name)
        step_env = {**env, **_github_env(files["GITHUB_ENV"])}
        step_env.update({k: render(v, ctx) for k, v in (step.get("env") or {}).items()})
        script = temp / f"step-{i}.sh"
        script.write_text(str(step["run"]))
        os.chmod(script, 0o755)
        cmd = ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)]
        if user:
            pairs = [f"{k}={v}" for k, v in step_env.items()]
            cmd = ["runuser", "-u", user, "--", "env", "-i", *pairs, *cmd]
        p = subprocess.run(
            cmd,
            cwd=workspace,
            env=None if user else step_env,
            capture_output=True,
            text=True,
            timeout=3600,
        )
        result.steps.append(StepResult(name, p.returncode, p.stdout, p.stderr))
        failed = failed or p.returncode != 0
    result.summary = files["GITHUB_STEP_SUMMARY"].read_text()
    return result


def _github_env(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out
