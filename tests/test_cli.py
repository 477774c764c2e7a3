"""The command line as users meet it: one clear line and a non-zero exit for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from codal_bench.store import Store

HEAVY = ("vllm", "torch", "transformers", "evalplus", "datasets", "pandas")


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    e = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "codal_bench.cli", *args],
        capture_output=True,
        text=True,
        env=e,
        timeout=120,
    )


def _one_error_line(p: subprocess.CompletedProcess[str]) -> str:
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, p.stderr
    assert "Traceback" not in p.stderr
    return lines[0]


def test_help_imports_nothing_heavy() -> None:
    code = (
        "import sys\nfrom codal_bench.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "Usage: codal-eval" in p.stdout
    assert p.stdout.strip().splitlines()[-1] == "HEAVY=", "heavy modules imported"


def test_unknown_backend_suggests(store_path: Path) -> None:
    p = cli("--model", "opnai:gpt-4o", "--judge", "x", "--store", str(store_path))
    assert p.returncode == 4  # could not start: bad input
    line = _one_error_line(p)
    assert "unknown backend 'opnai'" in line and "did you mean openai" in line
    assert not store_path.exists()


def test_missing_data_file(store_path: Path, tmp_path: Path) -> None:
    p = cli(
        "--model",
        "replay:" + str(_samples(tmp_path)),
        "--judge",
        "replay:" + str(_samples(tmp_path)),
        "--tasks",
        "codal-bench",
        "--data",
        str(tmp_path / "nope.jsonl"),
        "--store",
        str(store_path),
    )
    assert p.returncode == 4  # could not start: bad input
    assert "does not exist" in _one_error_line(p)
    assert not store_path.exists() or Store(store_path).runs() == []


def test_wrong_columns(store_path: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q", "preference": "style"}) + "\n")
    p = codal_with_data(tmp_path, bad, store_path)
    assert p.returncode == 4  # could not start: bad input
    line = _one_error_line(p)
    assert "missing instruction" in line and "columns found: preference, question" in line
    assert not store_path.exists() or Store(store_path).runs() == []


def test_truncated_data_file_names_the_line(
    store_path: Path, tmp_path: Path, codal_data: Path
) -> None:
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(codal_data.read_bytes()[:5000])
    p = codal_with_data(tmp_path, cut, store_path)
    assert p.returncode == 4  # could not start: bad input
    line = _one_error_line(p)
    assert f"{cut}:" in line and "truncated" in line


@pytest.mark.parametrize(
    ("model", "var"),
    [("openai:gpt-4o", "OPENAI_API_KEY"), ("claude-3-5-sonnet", "ANTHROPIC_API_KEY")],
)
def test_missing_api_key(store_path: Path, model: str, var: str) -> None:
    p = cli(
        "--model",
        model,
        "--judge",
        model,
        "--store",
        str(store_path),
        env={
            "OPENAI_API_KEY": "",
            "ANTHROPIC_API_KEY": "",
            "OPENAI_BASE_URL": "",
            "ANTHROPIC_BASE_URL": "",
        },
    )
    assert p.returncode != 0
    assert var in _one_error_line(p)
    assert not store_path.exists() or Store(store_path).runs() == []


def test_corrupt_samples_file_names_line(store_path: Path, tmp_path: Path) -> None:
    f = tmp_path / "s.jsonl"
    f.write_text('{"task_id": "HumanEval/0", "solution": "x"}\n{"task_id": "HumanEval/1", "solu\n')
    p = cli("--model", f"replay:{f}", "--tasks", "humaneval-plus", "--store", str(store_path))
    assert p.returncode == 4  # could not start: bad input
    assert f"{f}:2: invalid JSON" in _one_error_line(p)
    f.write_text('{"task_id": "HumanEval/0", "answer": "x"}\n')
    p = cli("--model", f"replay:{f}", "--tasks", "humaneval-plus", "--store", str(store_path))
    assert p.returncode == 4  # could not start: bad input
    assert "field 'solution' or 'completion' is missing" in _one_error_line(p)


def test_unknown_command_word_is_a_model_error_not_a_crash(store_path: Path) -> None:
    p = cli("--model", "./no/such/dir", "--store", str(store_path))
    assert p.returncode == 4  # could not start: bad input
    assert "no such directory" in _one_error_line(p)


def codal_with_data(tmp_path: Path, data: Path, store: Path) -> subprocess.CompletedProcess[str]:
    """A CODAL-Bench run on `data` whose model and judge are a replay file (no model needed)."""
    replay = "replay:" + str(_samples(tmp_path))
    return cli("--model", replay, "--judge", replay, "--tasks", "codal-bench", "--data", str(data),
               "--store", str(store))  # fmt: skip


def _samples(tmp_path: Path) -> Path:
    f = tmp_path / "samples.jsonl"
    f.write_text(json.dumps({"task_id": "x", "solution": "Rating: 5"}) + "\n")
    return f


def test_help_is_nearly_as_fast_as_importing_click_and_rich() -> None:
    from benchmarks.bench_help import measure

    assert measure(rounds=9) <= 1.5
