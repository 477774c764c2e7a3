"""`codal-eval runs`: list the runs in a store (filtered, newest first), show one, remove one."""

from __future__ import annotations

import json
from typing import Any

import click
from click_default_group import DefaultGroup

from .cli_options import store_option

STATUS_CHOICES = ("running", "complete", "incomplete", "interrupted", "failed")


def _store(path: str | None, readonly: bool = True) -> Any:
    from .store import Store, default_store_path

    return Store(path or default_store_path(), readonly=readonly)


@click.group("runs", cls=DefaultGroup, default="list", default_if_no_args=True)
def _runs_group() -> None:
    """List, show and remove the runs in the store (`runs` alone lists them).

    A RUN argument is a run id, a unique prefix of one, a run name, or `latest`.

    \b
    Examples:
      codal-eval runs --model gpt --tag nightly
      codal-eval runs show gpt4o-base
      codal-eval runs rm 20261201-101500-ab12cd --prune --yes
    """


# DefaultGroup is untyped; the commands below only need the click.Group interface.
runs_group: click.Group = _runs_group


@runs_group.command("list")
@click.option("--model", metavar="TEXT", help="Only runs whose model spec contains TEXT.")
@click.option("--task", metavar="TASK", help="Only runs that evaluated this task.")
@click.option("--judge", metavar="TEXT", help="Only runs whose judge spec contains TEXT.")
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="Only runs with this tag.")
@click.option("--name", metavar="TEXT", help="Only runs whose name contains TEXT.")
@click.option(
    "--status", type=click.Choice(STATUS_CHOICES), help="Only runs in this state (e.g. complete)."
)
@click.option(
    "--limit",
    type=click.IntRange(1),
    default=50,
    show_default=True,
    help="Show at most this many runs (the newest).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["terminal", "json"]),
    default="terminal",
    show_default=True,
    help="Output format printed on standard output.",
)
@store_option
def list_cmd(fmt: str, limit: int, store: str | None, **kw: Any) -> None:
    """Runs in the store, newest first, with each task's headline score.

    \b
    Examples:
      codal-eval runs
      codal-eval runs --status complete --task humaneval-plus --limit 10
    """
    from .runs import RunFilter, list_runs

    flt = RunFilter(**kw)
    runs = list_runs(_store(store), flt, limit)
    if fmt == "json":
        from .runs import headline, when

        rows = [
            {
                "run_id": r.run_id,
                "name": r.name,
                "status": r.status,
                "model": r.model,
                "judge": r.judge,
                "tasks": list(r.config.tasks),
                "tags": r.tags,
                "created": when(r.created),
                "headline": dict(headline(r)),
            }
            for r in runs
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    from .runs_view import print_runs

    print_runs(runs)


@runs_group.command("show")
@click.argument("run", metavar="RUN")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["terminal", "json"]),
    default="terminal",
    show_default=True,
    help="json: the same document as results.json (metrics with intervals).",
)
@store_option
def show_cmd(run: str, fmt: str, store: str | None) -> None:
    """One run: what it ran, its scores with 95 % intervals, and its warnings.

    \b
    Examples:
      codal-eval runs show gpt4o-base
      codal-eval runs show latest --format json
    """
    s = _store(store)
    info = s.run(run)
    if fmt == "json":
        from .results import run_document

        click.echo(json.dumps(run_document(s, info, git=False), indent=2, default=str))
        return
    from .report import print_run

    print_run(s, info)


@runs_group.command("rm")
@click.argument("run", metavar="RUN")
@click.option(
    "--prune",
    is_flag=True,
    help="Also delete the answers and grades no other run uses (they are kept by default: "
    "they make a repeat of the run free).",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@store_option
def rm_cmd(run: str, prune: bool, yes: bool, store: str | None) -> None:
    """Remove a run from the store (its name becomes free again).

    \b
    Examples:
      codal-eval runs rm old-experiment --yes
      codal-eval runs rm 20261201-101500-ab12cd --prune --yes
    """
    from .runs import remove_run

    s = _store(store, readonly=False)
    info = s.run(run)
    if not yes:
        click.confirm(
            f"remove run {info.label} ({info.model}, {info.status})?", abort=True, err=True
        )
    done = remove_run(s, info.run_id, prune=prune)
    what = f"removed run {done.name or done.run_id} ({done.items} item rows)"
    if prune:
        what += f"; pruned {done.generations} answers and {done.grades} grades no other run used"
    click.echo(what, err=True)
