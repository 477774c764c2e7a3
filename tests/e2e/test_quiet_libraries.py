"""Acceptance 3: the command `make demo` runs prints no vLLM, torch, transformers or httpx line on
the terminal; those lines are in `codal-eval.log` beside the store instead.

The real thing: SmolLM2 through in-process vLLM on the CPU, candidate and judge, `--limit 1`,
with stdout and stderr captured exactly as a terminal would receive them (the engine processes
write to the file descriptors they inherit, which is what this checks).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent.parent
# What library output looks like: vLLM's prefixed log lines, torch/C++ warnings, transformers and
# httpx loggers, tqdm bars of model loading, Python warnings raised inside those packages.
LIBRARY = re.compile(
    r"vllm|VLLM|EngineCore|torch|Triton|triton|NUMA|tcmalloc|transformers|httpx|HTTP Request|"
    r"safetensors|Loading weights|it/s\]|site-packages|WARNING \d\d-\d\d"
)


def demo_args() -> list[str]:
    """The arguments of the `codal-eval` line of the Makefile's demo target, LIMIT=1."""
    lines = (REPO / "Makefile").read_text(encoding="utf-8").splitlines()
    start = lines.index(next(x for x in lines if x.startswith("demo:")))
    cmd = next(x.strip() for x in lines[start + 1 :] if x.strip().startswith("codal-eval"))
    return cmd.replace("$(LIMIT)", "1").split()[1:]


@pytest.mark.timeout(2400)  # both phases on a shared 2-core machine can pass 15 minutes
def test_demo_prints_no_library_lines(tmp_path: Path, codal_data: Path, heplus_data: Path) -> None:
    store = tmp_path / "store" / "results.sqlite"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "CODAL_BENCH_STORE": str(store),
        "CODAL_BENCH_DATA": str(codal_data),
        "HUMANEVAL_OVERRIDE_PATH": str(heplus_data),
    }
    for var in ("VLLM_LOGGING_LEVEL", "VLLM_LOGGING_STREAM", "COLUMNS"):
        env.pop(var, None)
    p = subprocess.run(
        [sys.executable, "-m", "codal_bench.cli", *demo_args()],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=1800,
    )  # fmt: skip
    terminal = p.stdout + p.stderr
    log = store.parent / "codal-eval.log"
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    assert p.returncode == 0, (
        f"exit {p.returncode}\nstdout:\n{p.stdout[-2500:]}\nstderr:\n{p.stderr[-2500:]}\n"
        f"log tail:\n{text[-2500:]}"
    )
    leaked = [x for x in terminal.splitlines() if LIBRARY.search(x)]
    # our own lines may name the model spec (vllm:smollm2) or the log file: not library output
    ours = ("id ", "library log ", "run ", "warning: ", "codal-eval: ")
    leaked = [x for x in leaked if not x.startswith(ours)]
    assert leaked == [], "\n".join(leaked[:20])
    assert "HE+ pass@1" in p.stdout and "CODAL avg" in p.stdout
    assert "warning: codal-bench: self-preference" in p.stdout  # readable, not a JSON blob
    assert '{"outputs"' not in p.stdout

    assert f"library log {log}" in p.stdout
    in_log = [x for x in text.splitlines() if LIBRARY.search(x)]
    vllm_lines = [x for x in in_log if "vllm" in x.lower() or "EngineCore" in x]
    assert len(vllm_lines) >= 5, text[-3000:]
    # the spawned engine process wrote there itself (through the descriptors it inherited)
    assert any(x.startswith("(EngineCore pid=") for x in in_log), text[-3000:]
    # and the run really ran on the engine: every answer and grade is there
    from codal_bench.store import Store

    (run,) = Store(store).runs()
    assert run.status == "complete" and run.record.summary["errors"] == 0, run.record.summary
    assert run.record.counts["requests_sent"] == 6 + 5  # 6 answers, 5 judge calls
    print(f"terminal: {len(terminal.splitlines())} lines, 0 library lines; log: {len(in_log)} "
          f"library lines ({len(vllm_lines)} from vLLM)")  # fmt: skip
