"""Acceptance 5: every option of every command explains itself, shows its default and names its
environment variable; every command's help has an example; `python -m codal_bench` works."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator

import click

from codal_bench.cli import cli


def commands(group: click.Group, path: str = "codal-eval") -> Iterator[tuple[str, click.Command]]:
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None
        yield f"{path} {name}", cmd
        if isinstance(cmd, click.Group):
            yield from commands(cmd, f"{path} {name}")


def _record(cmd: click.Command, opt: click.Option) -> str:
    ctx = click.Context(cmd, info_name=cmd.name)
    rec = opt.get_help_record(ctx)
    assert rec is not None
    return rec[1]


def _has_default(opt: click.Option) -> bool:
    d = opt.default
    if d is None or "UNSET" in repr(d):  # click 8.2+ marks "no default" with a sentinel
        return False
    if opt.is_flag and not opt.multiple:
        return bool(d)  # a flag that is off by default needs no "[default: False]"
    return d not in ((), [], "") and not callable(d)


def test_every_option_has_help_default_and_envvar() -> None:
    problems = []
    seen = 0
    for path, cmd in [("codal-eval", cli), *commands(cli)]:
        for p in cmd.params:
            if not isinstance(p, click.Option):
                continue
            seen += 1
            text = " ".join(_record(cmd, p).split())
            help_text = (p.help or "").strip()
            words = re.findall(r"[A-Za-z]{2,}", help_text)
            names = {n.lstrip("-").replace("-", " ").lower() for n in p.opts}
            if len(words) < 3 or help_text.lower().rstrip(".") in names:
                problems.append(f"{path} {p.opts[0]}: help too thin: {help_text!r}")
            if _has_default(p) and "default:" not in text:
                problems.append(f"{path} {p.opts[0]}: default {p.default!r} not shown")
            for var in [p.envvar] if isinstance(p.envvar, str) else list(p.envvar or []):
                if var not in text:
                    problems.append(f"{path} {p.opts[0]}: env var {var} not named")
    assert seen > 60
    assert not problems, "\n".join(problems)


def test_every_command_has_an_example_and_store_shows_its_default() -> None:
    for path, cmd in [("codal-eval", cli), *commands(cli)]:
        ctx = click.Context(cmd, info_name=path)
        text = cmd.get_help(ctx)
        assert re.search(r"Examples?:\n\s+codal-eval ", text), f"{path}: no example"
    run = cli.get_command(click.Context(cli), "run")
    assert run is not None
    text = " ".join(run.get_help(click.Context(run, info_name="run")).split())
    assert "env var: CODAL_BENCH_STORE" in text and "results.sqlite" in text
    assert "--bootstrap-seed" not in text and "--seed" in text  # sampling seed only in run
    board = cli.get_command(click.Context(cli), "leaderboard")
    assert board is not None
    text = " ".join(board.get_help(click.Context(board, info_name="leaderboard")).split())
    assert "--bootstrap-seed" in text and "--output-path, --out DIR" in text


def test_python_dash_m_codal_bench() -> None:
    p = subprocess.run(
        [sys.executable, "-m", "codal_bench", "--help"], capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("Usage: codal-eval")
