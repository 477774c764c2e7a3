"""Acceptance 1: in a real 80-column terminal (a pty made by `script`, `stty cols 80`), the
commands people read never print a line wider than 80 columns, and every run name (up to 64
characters) appears unbroken on one line.

Each command runs as `python -m codal_bench.cli` in the pty with COLUMNS unset, so the width comes
from the terminal itself, as it would for a user.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from codal_bench.store import Store
from tests.helpers_cli import main, replay_files, run_args
from tests.helpers_store import populate

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[()][A-Z0-9]")
LONG = "experiment-" + "a" * 49 + "-end"  # 64 characters
NAMES = [LONG, "baseline-run", "candidate-" + "c" * 40 + "-64chars-ok"[:14]]


def columns(line: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)


def in_terminal(args: list[str], cols: int = 80) -> tuple[int, list[str]]:
    """Run codal-eval in a pty of `cols` columns; the screen's lines, escape codes removed."""
    assert shutil.which("script"), "util-linux `script` is needed (Debian: bsdutils)"
    cmd = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "codal_bench.cli", *args])
    inner = f"stty cols {cols} rows 50; {cmd}; echo EXIT=$?"
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["TERM"] = "xterm-256color"
    p = subprocess.run(
        ["script", "-qefc", inner, "/dev/null"],
        capture_output=True,
        cwd=REPO,
        env=env,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    text = ANSI.sub("", p.stdout.decode("utf-8", errors="replace"))
    # a carriage return redraws a line: the screen keeps what came after the last one
    lines = [x.split("\r")[-1] for x in text.replace("\r\n", "\n").split("\n")]
    code = next(int(x[5:]) for x in reversed(lines) if x.startswith("EXIT="))
    return code, [x for x in lines if not x.startswith("EXIT=")]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, codal_data: Path, heplus_data: Path) -> Path:
    tmp = tmp_path_factory.mktemp("width")
    # module-scoped: set up before the per-test fixture that points at the offline prompt files
    os.environ.setdefault("CODAL_BENCH_UPSTREAM", str(codal_data.parent / "upstream-src"))
    path = tmp / "s.sqlite"
    st = Store(path)
    ids = populate(st, 3, per_preference=4, n_humaneval=8, seed=5)
    for rid, name in zip(ids, NAMES, strict=True):
        st.set_name(rid, name)
    st.close()
    files = replay_files(tmp, codal_data, heplus_data, broken=1)
    assert main(run_args(files, codal_data, heplus_data, path, "--name", "replayed-base")) == 0
    return path


def _base_judge(store: Path) -> Path:
    return store.parent / "judge-1.jsonl"  # the judge replay file of the fixture's run


COMMANDS = {
    "leaderboard": ["leaderboard"],
    "runs": ["runs"],
    "runs show": ["runs", "show", LONG],
    "diff": ["diff", NAMES[1], LONG],
    "plugins": ["plugins"],
}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_readable_at_80_columns(store: Path, name: str) -> None:
    args = COMMANDS[name] + (["--store", str(store)] if name != "plugins" else [])
    code, lines = in_terminal(args)
    assert code == 0, "\n".join(lines)
    wide = [(columns(x), x) for x in lines if columns(x) > 80]
    assert not wide, f"{name}: lines wider than 80:\n" + "\n".join(x for _, x in wide)
    assert max(columns(x) for x in lines) > 40  # the command printed something real
    shown = {n for n in NAMES if any(n in x for x in lines)}
    expected = {
        "leaderboard": set(NAMES),
        "runs": set(NAMES),
        "runs show": {LONG},
        "diff": {LONG, NAMES[1]},
        "plugins": set(),
    }[name]
    assert shown >= expected, f"{name}: names cut or missing: {expected - shown}"


def test_run_summary_and_check_at_80_columns(
    store: Path, tmp_path: Path, codal_data: Path, heplus_data: Path
) -> None:
    files = replay_files(tmp_path, codal_data, heplus_data)
    name = "summary-" + "s" * 56
    args = run_args(files, codal_data, heplus_data, store, "--name", name)
    code, lines = in_terminal(args)
    assert code == 0, "\n".join(lines)
    assert max(columns(x) for x in lines) <= 80, "\n".join(lines)
    assert any(name in x for x in lines) and any("HE+ pass@1" in x for x in lines)

    cand = "cand-" + "k" * 59
    judge = f"replay:{_base_judge(store)}"
    check = ["check", "--model", f"replay:{files['model']}", "--judge", judge, "--baseline",
             "replayed-base", "--name", cand, "--store", str(store), "--quiet"]  # fmt: skip
    code, lines = in_terminal(check)
    assert code in (0, 3), "\n".join(lines)  # one broken task fixed: pass or inconclusive
    wide = [x for x in lines if columns(x) > 80]
    assert not wide, "\n".join(wide)
    assert any(cand in x for x in lines) and any("replayed-base" in x for x in lines)
    assert any("humaneval-plus" in x for x in lines)
