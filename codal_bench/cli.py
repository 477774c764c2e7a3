"""Command line: parse, call into the package, print. No logic lives here.

Imports are deferred into the commands so that `codal-eval --help` stays instant.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from click_default_group import DefaultGroup

from .cli_common import (
    after_run,
    check_name,
    data_map,
    open_store,
    outcome_options,
    set_values,
    split_list,
    working,
)
from .cli_options import (
    chatter_options,
    judge_options,
    model_options,
    run_outputs,
    store_option,
    timeout_option,
)
from .errors import CodalError

F = TypeVar("F", bound=Callable[..., Any])

_TASK_HELP = "Comma-separated tasks to run (the default runs codal-bench,humaneval-plus)."


_GROUP_EPILOG = """\b
Examples:
  codal-eval --model smollm2 --judge smollm2 --limit 1
  codal-eval --model openai:gpt-4o --judge gpt-4 --name gpt4o --tag nightly
  codal-eval runs --tag nightly
  codal-eval leaderboard --latest
  codal-eval check --model ./new-ckpt --baseline gpt4o
  codal-eval COMMAND --help

\b
Environment:
  CODAL_BENCH_STORE        results store, by default
                           %s
  CODAL_BENCH_DATA         local CODAL-Bench data file (offline)
  HUMANEVAL_OVERRIDE_PATH  local HumanEval+ data file (offline)
  CODAL_BENCH_REVISION     dataset revision to read (or that a local copy is of)
  CODAL_BENCH_UPSTREAM     the paper's prompt files
  CODAL_BENCH_PUBLISHED    published reference rows for the leaderboard (a YAML file)
  OPENAI_API_KEY, ANTHROPIC_API_KEY, OPENAI_BASE_URL, ANTHROPIC_BASE_URL
"""


def _epilog() -> str:
    from .cli_options import default_store_text

    return _GROUP_EPILOG % default_store_text()


@click.group(
    "codal-eval",
    cls=DefaultGroup,
    default="run",
    default_if_no_args=False,
    epilog=_epilog(),
    context_settings={"max_content_width": 100},
)
@click.version_option(package_name="codal-eval")
def _group() -> None:
    """Evaluate a code LLM on CODAL-Bench and HumanEval+, and file it in a leaderboard.

    `codal-eval --model SPEC --judge SPEC` runs the default command (run). Runs are kept in a
    store; name them with --name, and list them with the runs command.
    """


# DefaultGroup is untyped; the commands below only need the click.Group interface.
cli: click.Group = _group


@cli.command("run")
@click.option(
    "--model",
    required=True,
    metavar="SPEC",
    help="Model spec: a checkpoint dir, gpt-4o, claude-…, smollm2, BACKEND:NAME.",
)
@model_options
@judge_options
@click.option("--tasks", default="", metavar="LIST", help=_TASK_HELP)
@click.option(
    "--limit",
    type=click.IntRange(1),
    show_default="every item",
    help="Items per CODAL preference (first N tasks for HumanEval+).",
)
@click.option(
    "--task-ids", metavar="LIST|@FILE", help="Run only these item ids (comma-separated, or @FILE)."
)
@click.option(
    "--data",
    multiple=True,
    metavar="[TASK=]PATH",
    help="Local data file for a task, repeatable; without it a task reads its environment "
    "variable (CODAL_BENCH_DATA, HUMANEVAL_OVERRIDE_PATH) or downloads.",
)
@click.option(
    "--data-revision",
    metavar="REV",
    help="Dataset revision (Hub commit, tag or branch) to download, or the one a local --data copy "
    "was taken from; recorded with the run [env: CODAL_BENCH_REVISION; default: newest].",
)
@click.option(
    "--principles",
    metavar="NAME|FILE",
    help="Candidate guidelines: paper (default), codal-eval, or a principles.json (entry 0).",
)
@click.option(
    "--prompt-set",
    metavar="NAME",
    help="A task's named candidate prompts, e.g. evalplus (default), paper or codal-eval.",
)
@click.option(
    "--protocol",
    metavar="NAME",
    help="A published protocol for every task: prompts, sampling, samples and judge templates "
    "(paper, evalplus, codal-eval; flags given as well win).",
)
@click.option(
    "--sanitize", is_flag=True, help="Extract the code of raw replies in a samples file first."
)
@click.option(
    "--upstream",
    metavar="DIR",
    envvar="CODAL_BENCH_UPSTREAM",
    show_envvar=True,
    help="A folder laid out like the paper's repository, instead of downloading its prompt files.",
)
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="TASK.KEY=VALUE",
    help="A sampling setting of one task: temperature, top_p, max_tokens, seed or samples.",
)
@click.option(
    "--samples",
    type=click.IntRange(1),
    show_default="1",
    help="Samples per HumanEval+ task (for pass@k).",
)
@click.option(
    "--temperature",
    type=float,
    show_default="the task's, 0",
    help="Sampling temperature for the model's answers.",
)
@click.option(
    "--top-p", type=float, show_default="the task's, 1.0", help="Nucleus sampling cut-off (top_p)."
)
@click.option(
    "--max-tokens",
    type=click.IntRange(1),
    show_default="the task's, 512 or 1024",
    help="Longest answer in tokens.",
)
@click.option(
    "--seed",
    type=int,
    show_default="none",
    help="Sampling seed passed to the model's backend (not the bootstrap seed).",
)
@timeout_option
@click.option(
    "--dry-run", is_flag=True, help="Count requests and tokens (cache hits included); send nothing."
)
@click.option(
    "--max-cost", type=float, metavar="USD", help="Stop before spending more than this many USD."
)
@outcome_options
@click.option(
    "--refresh",
    type=click.Choice(["candidate", "judge", "all"]),
    help="Ask again instead of using stored answers (candidate), grades (judge) or both; "
    "the old rows stay in the store.",
)
@run_outputs
@chatter_options
@store_option
def run_cmd(**kw: Any) -> None:
    """Generate, grade and record one model's run (the default command).

    Exit codes: 0 the run is complete; 1 it finished incomplete (missing answers or grades
    beyond --max-error-rate: run the same command again to resume) or invalid (the judge's
    replies mostly had no rating); 2 usage error; 4 could not start (bad input, an endpoint or
    the sandbox failed its check before anything was sent).

    \b
    Examples:
      codal-eval --model smollm2 --judge smollm2 --limit 1
      codal-eval --model openai:gpt-4o --judge gpt-4 --name gpt4o-base --tag nightly
      codal-eval --model ./ckpt --tasks humaneval-plus --samples 10 --temperature 0.8 \\
          --output-path results --log-samples
    """
    from .config import RunOptions, backend_options
    from .report import print_dry_run
    from .runner import run

    tasks = split_list(kw["tasks"]) or []
    data, data_files = data_map(kw["data"])
    if kw["upstream"]:  # read by the task that fetches the paper's prompt files
        os.environ["CODAL_BENCH_UPSTREAM"] = str(kw["upstream"])
    m_opts = backend_options(kw["model_kv"], kw["base_url"], "-M")
    j_opts = backend_options(kw["judge_kv"], kw["judge_base_url"], "-J")
    opts = RunOptions(
        model=kw["model"],
        judge=kw["judge"],
        tasks=tasks,
        limit=kw["limit"],
        task_ids=split_list(kw["task_ids"]),
        data=data,
        data_files=data_files,
        data_revision=kw["data_revision"],
        principles=kw["principles"],
        prompt_set=kw["prompt_set"],
        protocol=kw["protocol"],
        sanitize=kw["sanitize"],
        settings=set_values(kw["settings"]),
        reference=kw["reference"],
        judge_templates=kw["judge_templates"],
        model_options=m_opts,
        judge_options=j_opts,
        concurrency=kw["concurrency"],
        judge_concurrency=kw["judge_concurrency"],
        samples=kw["samples"],
        temperature=kw["temperature"],
        top_p=kw["top_p"],
        max_tokens=kw["max_tokens"],
        seed=kw["seed"],
        judge_repeats=kw["judge_repeats"],
        dry_run=kw["dry_run"],
        max_cost=kw["max_cost"],
        timeout_s=kw["timeout"],
        max_error_rate=kw["max_error_rate"],
        max_parse_failure_rate=kw["max_parse_failure_rate"],
        refresh=kw["refresh"],
        name=kw["name"],
        tags=list(kw["tags"]),
    )
    check_name(kw)
    opened: list[Any] = []

    def opener() -> Any:  # opened only once the input has been checked
        opened.append(open_store(kw["store"]))
        return opened[0]

    with working(kw["store"], kw["quiet"], kw["verbose"]) as (progress, log):
        result = run(opts, opener, progress)
    if result.dry_run is not None:
        print_dry_run(result.dry_run)
        return
    after_run(opened[0], result.run_id, result, log, kw)
    if result.status != "complete":
        sys.exit(1)


@cli.command("grade")
@click.argument("run_id", metavar="RUN")
@judge_options
@outcome_options
@run_outputs
@chatter_options
@store_option
def grade_cmd(run_id: str, **kw: Any) -> None:
    """Re-grade a stored run's answers with another judge or templates (no new generation).

    RUN is a run id, a unique prefix of one, a run name, or `latest`. Exit codes as for run:
    0 complete, 1 incomplete or invalid, 2 usage, 4 could not start.

    \b
    Examples:
      codal-eval grade gpt4o-base --judge claude-3-5-sonnet --name gpt4o-by-claude
      codal-eval grade latest --judge gpt-4 --judge-repeats 3
    """
    from .config import backend_options
    from .regrade import regrade

    check_name(kw)
    j_opts = backend_options(kw["judge_kv"], kw["judge_base_url"], "-J")
    store = open_store(kw["store"])
    with working(kw["store"], kw["quiet"], kw["verbose"]) as (progress, log):
        result = regrade(
            store,
            run_id,
            judge=kw["judge"],
            judge_options=j_opts,
            judge_templates=kw["judge_templates"],
            reference=kw["reference"],
            judge_repeats=kw["judge_repeats"],
            concurrency=kw["judge_concurrency"],
            progress=progress,
            max_error_rate=kw["max_error_rate"],
            max_parse_failure_rate=kw["max_parse_failure_rate"],
            name=kw["name"],
            tags=list(kw["tags"]),
        )
    after_run(store, result.run_id, result, log, kw)
    if result.status != "complete":
        sys.exit(1)


def _register() -> None:
    from .cli_gate import check_cmd, judge_audit_cmd
    from .cli_results import diff_cmd, export_cmd, leaderboard_cmd, plugins_cmd
    from .cli_runs import runs_group

    for command in (export_cmd, leaderboard_cmd, check_cmd, diff_cmd, judge_audit_cmd):
        cli.add_command(command)
    cli.add_command(plugins_cmd)
    cli.add_command(runs_group)


_register()


def main(argv: list[str] | None = None) -> None:
    """Entry point: one clear line for the user's errors, exit codes from the design card."""
    try:
        cli.main(args=argv, prog_name="codal-eval", standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):
        # click turns Ctrl-C into Abort; every finished batch is already in the store.
        click.echo(
            "codal-eval: interrupted; finished answers and grades are stored — run the same "
            "command again to resume",
            err=True,
        )
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except CodalError as exc:
        click.echo(f"codal-eval: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except OSError as exc:  # a file we were pointed at: one line, never a traceback
        where = f" {exc.filename}" if exc.filename else ""
        click.echo(f"codal-eval: error:{where} {exc.strerror or exc}", err=True)
        sys.exit(4)
    except SystemExit:
        raise
    sys.exit(0)


if __name__ == "__main__":
    main()
