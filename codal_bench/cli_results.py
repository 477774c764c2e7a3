"""Commands that read the store: export, leaderboard, diff, and the plugin listing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from .cli_common import console, open_store
from .cli_options import bootstrap_seed, store_option


@click.command("export")
@click.argument("run_id", metavar="RUN")
@click.option(
    "-o",
    "--output",
    "--out",  # the former name, kept working
    "out",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    show_default="standard output",
    help="Write the JSONL records to this file.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "bundle"]),
    default="jsonl",
    show_default=True,
    help="jsonl: per-sample records; bundle: a portable baseline for `check --baseline FILE`.",
)
@store_option
def export_cmd(run_id: str, out: str | None, fmt: str, store: str | None) -> None:
    """Per-sample records of a run as JSONL: prompt, answer, verdict or rating, the judge's
    prompt and reply, the reference and the extracted code where the task has them; or the
    whole run as a portable baseline bundle (--format bundle -o FILE).

    \b
    Examples:
      codal-eval export gpt4o-base -o gpt4o-base.jsonl
      codal-eval export latest | jq .status
      codal-eval export gpt4o-base --format bundle -o baseline.bundle
    """
    from .report import export_jsonl

    s = open_store(store, readonly=True)
    if fmt == "bundle":
        from .gate.bundle import export_bundle

        if not out:
            raise click.UsageError("--format bundle needs --out FILE")
        info = export_bundle(s, run_id, Path(out))
        click.echo(f"wrote bundle {out} ({info['items']} rows, sha256 {info['sha256']})", err=True)
        return
    if out:
        with open(out, "w", encoding="utf-8") as f:
            n = export_jsonl(s, run_id, f)
        click.echo(f"wrote {n} rows to {out}", err=True)
    else:
        export_jsonl(s, run_id, sys.stdout)


@click.command("leaderboard")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["terminal", "markdown", "csv", "json", "html"]),
    default="terminal",
    show_default=True,
    help="Output format printed on standard output.",
)
@click.option(
    "--output-path",
    "--out",
    "out",
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="Write every format (md, csv, json, html) into this folder (--out is the old name).",
)
@click.option("--task", metavar="TASK", help="Only the tables of this task.")
@click.option("--model", metavar="TEXT", help="Only runs whose model spec contains TEXT.")
@click.option("--judge", metavar="TEXT", help="Only runs whose judge spec contains TEXT.")
@click.option("--name", metavar="TEXT", help="Only runs whose name contains TEXT.")
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="Only runs with this tag.")
@click.option("--latest", is_flag=True, help="Only the newest complete run of each model.")
@bootstrap_seed
@store_option
def leaderboard_cmd(fmt: str, out: str | None, bootstrap_seed: int, **kw: Any) -> None:
    """Rank every run in the store, comparable runs only, with rank intervals.

    \b
    Examples:
      codal-eval leaderboard --latest
      codal-eval leaderboard --task humaneval-plus --model gpt
      codal-eval leaderboard --format markdown > LEADERBOARD.md
      codal-eval leaderboard --output-path site/
    """
    from .leaderboard import compile_leaderboard, render, write_all
    from .runs import RunFilter, select

    flt = RunFilter(model=kw["model"], judge=kw["judge"], name=kw["name"], tags=kw["tags"])
    lb = compile_leaderboard(
        open_store(kw["store"], readonly=True),
        seed=bootstrap_seed,
        select=lambda infos: select(infos, flt, latest=kw["latest"]),
        tasks=[kw["task"]] if kw["task"] else None,
    )
    if out:
        for p in write_all(lb, Path(out)):
            click.echo(f"wrote {p}", err=True)
        return
    text = render(lb, fmt)
    if text:
        click.echo(text, nl=not text.endswith("\n"))


@click.command("diff")
@click.argument("run_a", metavar="RUN_A")
@click.argument("run_b", metavar="RUN_B")
@click.option(
    "--top",
    type=click.IntRange(0),
    default=10,
    show_default=True,
    help="CODAL items to show (largest rating changes first).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["terminal", "markdown", "json"]),
    default="terminal",
    show_default=True,
    help="Output format printed on standard output.",
)
@store_option
def diff_cmd(run_a: str, run_b: str, top: int, fmt: str, store: str | None) -> None:
    """What changed between two runs: metric deltas, settings, and which items flipped.

    \b
    Examples:
      codal-eval diff gpt4o-base gpt4o-new
      codal-eval diff 20261201-101500-ab12cd latest --format markdown
    """
    from .gate import diff_runs, render_diff

    d = diff_runs(open_store(store, readonly=True), run_a, run_b)
    if fmt == "terminal":
        from .termtable import width

        console().print(render_diff(d, top=top, w=width()))
    elif fmt == "markdown":
        from .gate.diff import diff_markdown

        click.echo(diff_markdown(d, top=top, heading="##"))
    else:
        import json
        from dataclasses import asdict

        click.echo(json.dumps(asdict(d), indent=2, default=str))


@click.command("plugins")
def plugins_cmd() -> None:
    """Every backend, judge and task: where it came from and whether it loads.

    \b
    Example:
      codal-eval plugins
    """
    from rich.text import Text

    from .registry import describe_all
    from .termtable import ESSENTIAL, Col, fit, width

    cols = [
        Col("kind", "kind", ESSENTIAL, whole=True),
        Col("name", "name", ESSENTIAL, whole=True),
        Col("loads", "loads", ESSENTIAL),
        Col("package", "package", 60),
        Col("target", "target", 40, whole=True),
    ]
    rows = []
    for p in describe_all():
        loads = Text("yes", style="green") if p.loads else Text(f"no: {p.error}", style="red")
        rows.append(
            {
                "kind": p.kind,
                "name": p.name,
                "loads": loads,
                "package": f"{p.package} {p.version}",
                "target": p.target,
            }
        )
    console().print(fit(cols, rows, width(), title="codal-eval plugins"))
