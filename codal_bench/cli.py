"""Command line: parse, call into the package, print. No logic lives here.

Imports are deferred into the commands so that `codal-eval --help` stays instant.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from click_default_group import DefaultGroup

from .cli_options import (
    bootstrap_seed,
    chatter_options,
    judge_options,
    model_options,
    run_outputs,
    store_option,
)
from .errors import CodalError, UsageError

F = TypeVar("F", bound=Callable[..., Any])

_TASK_HELP = "Comma-separated tasks to run (the default runs codal-bench,humaneval-plus)."


def _store(path: str | None, readonly: bool = False) -> Any:
    from .store import Store, default_store_path

    return Store(path or default_store_path(), readonly=readonly)


def _split(value: str | None) -> list[str] | None:
    if not value:
        return None
    if value.startswith("@"):
        try:
            text = Path(value[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{value}: cannot read {value[1:]} ({exc.strerror or exc})") from exc
        return [x.strip() for x in text.replace(",", "\n").splitlines() if x.strip()]
    return [x.strip() for x in value.split(",") if x.strip()]


def _data_map(values: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    """`--data TASK=PATH` (by task) and bare `--data PATH` (the runner finds its task)."""
    by_task: dict[str, str] = {}
    bare: list[str] = []
    for v in values:
        name, sep, path = v.partition("=")
        if sep and not Path(v).exists():
            by_task[name] = path
        else:
            bare.append(v)
    return by_task, bare


def _settings(values: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """`--set TASK.KEY=VALUE` (repeatable) -> {task: {key: value}}, numbers as numbers."""
    import json

    from .errors import BadFlag

    out: dict[str, dict[str, Any]] = {}
    for v in values:
        name, sep, value = v.partition("=")
        task, dot, key = name.rpartition(".")
        if not sep or not dot or not task or not key:
            raise BadFlag(f"--set {v!r}: expected TASK.KEY=VALUE")
        try:
            parsed: Any = json.loads(value)
        except ValueError:
            parsed = value
        out.setdefault(task, {})[key] = parsed
    return out


def _console(stderr: bool = False) -> Any:
    from .termtable import console

    return console(stderr=stderr)


@contextmanager
def _working(store: str | None, quiet: bool, verbose: bool) -> Iterator[tuple[Any, Path]]:
    """The working part of a command: library output to the log beside the store (unless
    --verbose), and the one progress display, on the terminal's stderr (unless --quiet)."""
    from .logs import library_output, log_path
    from .progress import Progress
    from .store import default_store_path

    path = log_path(store or default_store_path())
    with library_output(path, verbose) as term, Progress(not quiet, term) as progress:
        yield progress, path


def _after_run(
    store: Any, run_id: str | None, result: Any, log: Path | None, kw: dict[str, Any]
) -> None:
    """The end of a command that made a run: results files if asked, then the summary."""
    from .report import print_summary
    from .results import metric_entries, warnings_of, write_run_files

    assert run_id is not None  # a run that is not a dry run has an id
    info = store.run(run_id)
    if kw.get("output_path"):
        folder = write_run_files(store, run_id, kw["output_path"], kw.get("log_samples", False))
        click.echo(f"wrote {folder / 'results.json'}", err=True)
    print_summary(
        run_id,
        result.summary,
        result.record,
        store.path,
        result.status,
        name=info.name,
        metrics=metric_entries(result.rows),
        warnings=warnings_of(info),
        log=None if kw.get("verbose") else log,
    )


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
  CODAL_BENCH_UPSTREAM     the paper's prompt files
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


def _outcome_options(f: F) -> F:
    for opt in reversed(
        [
            click.option(
                "--max-error-rate",
                type=click.FloatRange(0, 1),
                default=0.0,
                show_default=True,
                help="Share of answers or grades that may be missing (each scored as a failure) "
                "for the run to count as complete; above it the run is incomplete (exit 1).",
            ),
            click.option(
                "--max-parse-failure-rate",
                type=click.FloatRange(0, 1),
                default=0.5,
                show_default=True,
                help="Share of judge replies without a rating above which the run is invalid "
                "(exit 1); below it they count 0, as published.",
            ),
        ]
    ):
        f = opt(f)
    return f


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
@click.option(
    "--timeout", type=float, default=300.0, show_default=True, help="Seconds allowed per request."
)
@click.option(
    "--dry-run", is_flag=True, help="Count requests and tokens (cache hits included); send nothing."
)
@click.option(
    "--max-cost", type=float, metavar="USD", help="Stop before spending more than this many USD."
)
@_outcome_options
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

    tasks = _split(kw["tasks"]) or []
    data, data_files = _data_map(kw["data"])
    if kw["upstream"]:  # read by the task that fetches the paper's prompt files
        os.environ["CODAL_BENCH_UPSTREAM"] = str(kw["upstream"])
    m_opts = backend_options(kw["model_kv"], kw["base_url"], "-M")
    j_opts = backend_options(kw["judge_kv"], kw["judge_base_url"], "-J")
    opts = RunOptions(
        model=kw["model"],
        judge=kw["judge"],
        tasks=tasks,
        limit=kw["limit"],
        task_ids=_split(kw["task_ids"]),
        data=data,
        data_files=data_files,
        data_revision=kw["data_revision"],
        principles=kw["principles"],
        prompt_set=kw["prompt_set"],
        protocol=kw["protocol"],
        sanitize=kw["sanitize"],
        settings=_settings(kw["settings"]),
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
    _check_name(kw)
    opened: list[Any] = []

    def open_store() -> Any:  # opened only once the input has been checked
        opened.append(_store(kw["store"]))
        return opened[0]

    with _working(kw["store"], kw["quiet"], kw["verbose"]) as (progress, log):
        result = run(opts, open_store, progress)
    if result.dry_run is not None:
        print_dry_run(result.dry_run)
        return
    _after_run(opened[0], result.run_id, result, log, kw)
    if result.status != "complete":
        sys.exit(1)


def _check_name(kw: dict[str, Any]) -> None:
    """Bad names and tags fail before anything starts."""
    from .store import check_name

    if kw.get("name"):
        check_name(kw["name"])
    for t in kw.get("tags") or ():
        check_name(t, "tag")
    if kw.get("log_samples") and not kw.get("output_path"):
        raise click.UsageError("--log-samples needs --output-path DIR")


@cli.command("grade")
@click.argument("run_id", metavar="RUN")
@judge_options
@_outcome_options
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

    _check_name(kw)
    j_opts = backend_options(kw["judge_kv"], kw["judge_base_url"], "-J")
    store = _store(kw["store"])
    with _working(kw["store"], kw["quiet"], kw["verbose"]) as (progress, log):
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
    _after_run(store, result.run_id, result, log, kw)
    if result.status != "complete":
        sys.exit(1)


@cli.command("export")
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

    s = _store(store, readonly=True)
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


@cli.command("leaderboard")
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
        _store(kw["store"], readonly=True),
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


@cli.command("check")
@click.option("--model", required=True, metavar="SPEC", help="The new checkpoint (model spec).")
@click.option(
    "--baseline-sha256", metavar="HEX", help="Refuse a bundle file whose SHA-256 differs."
)
@click.option("--tasks", default="", help="Gate only these of the baseline's tasks (comma list).")
@click.option(
    "--limit",
    type=click.IntRange(1),
    help="Gate on the first N items per group of the baseline (per preference; first N tasks).",
)
@click.option(
    "--samples",
    type=click.IntRange(1),
    help="Samples per item of execution-graded tasks; must match the baseline (or make one).",
)
@click.option(
    "--temperature",
    type=float,
    help="Sampling temperature of a baseline made by this check, for its tasks graded without "
    "a model judge (like --samples).",
)
@click.option("--data", multiple=True, metavar="[TASK=]PATH", help="Local data file (offline).")
@click.option(
    "--baseline",
    required=True,
    metavar="RUN|SPEC|BUNDLE",
    help="A bundle file, a run id or name in the store, or a model spec (run if not stored).",
)
@judge_options
@model_options
@click.option(
    "--max-drop",
    multiple=True,
    metavar="METRIC=VALUE",
    show_default="each metric's own margin",
    help="Allowed drop per metric, repeatable (e.g. humaneval-plus=0.05).",
)
@click.option(
    "--inconclusive",
    type=click.Choice(["pass", "fail"]),
    default="fail",
    show_default=True,
    help="What an inconclusive metric does to the check.",
)
@click.option(
    "--junit", type=click.Path(dir_okay=False), metavar="FILE", help="Write a JUnit XML report."
)
@click.option(
    "--summary-md",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Write a Markdown summary (e.g. $GITHUB_STEP_SUMMARY).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Write the full result as JSON.",
)
@bootstrap_seed
@run_outputs
@chatter_options
@store_option
def check_cmd(**kw: Any) -> None:
    """CI regression gate: exit 0 pass, 1 regression, 3 inconclusive, 4 could not run.

    The candidate runs on exactly the baseline's items and settings; --name and --tag label the
    candidate's run.

    \b
    Examples:
      codal-eval check --model ./new-ckpt --baseline gpt4o-base --junit report.xml
      codal-eval check --model ./ckpt --baseline ./base-ckpt --max-drop humaneval-plus=0.05

    \b
    Recommended size (a seeded simulation with judge SD 1.5 and 10 % of pass/fail verdicts
    flipping each way: an unchanged model passes >= 80 % of the time, a drop of twice a
    margin fails >= 80 %): a baseline run of every item with --samples 10 --temperature 0.8
    (100 rated items per preference, 164 executed tasks), the default margins (rating average
    0.4, each preference 1.0, pass@1 0.05) and --inconclusive fail. Smaller runs end
    inconclusive more often; the report prints how many items or samples a metric needs.
    """
    from .gate import check

    _check_name(kw)
    store = _store(kw.pop("store"))
    kw["seed"] = kw.pop("bootstrap_seed")
    kw["tags"] = list(kw["tags"])
    verbose = kw.pop("verbose")
    with _working(str(store.path), True, verbose):  # check shows its own progress (--quiet)
        code = check(store, **kw)
    sys.exit(code)


@cli.command("diff")
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

    d = diff_runs(_store(store, readonly=True), run_a, run_b)
    if fmt == "terminal":
        from .termtable import width

        _console().print(render_diff(d, top=top, w=width()))
    elif fmt == "markdown":
        from .gate.diff import diff_markdown

        click.echo(diff_markdown(d, top=top, heading="##"))
    else:
        import json
        from dataclasses import asdict

        click.echo(json.dumps(asdict(d), indent=2, default=str))


@cli.command("judge-audit")
@click.option(
    "--judge", required=True, metavar="SPEC", help="Judge model spec to audit (as for run --judge)."
)
@click.option(
    "--judge-templates",
    metavar="NAME|DIR",
    show_default="the judge's own set",
    help="Judge template set: a name under judges/ or a folder (the audit is tied to its hash).",
)
@click.option("--judge-base-url", metavar="URL", help="OpenAI-compatible server for the judge.")
@click.option(
    "-J",
    "judge_kv",
    multiple=True,
    metavar="KEY=VALUE",
    help="Backend option for the judge, repeatable (like -M for a model).",
)
@click.option(
    "--judge-concurrency",
    type=click.IntRange(1),
    default=8,
    show_default=True,
    help="Requests in flight at once to the judge's server.",
)
@click.option(
    "--run",
    "run_id",
    metavar="RUN",
    help="A stored HumanEval+ run whose answers the judge rates (default: the built-in audit set).",
)
@click.option(
    "--preference",
    show_default="instruction-following",
    help="Which of the judge's prompts rates the answers.",
)
@click.option(
    "--data",
    type=click.Path(dir_okay=False),
    help="Problems file for the built-in audit set (offline).",
)
@click.option(
    "--limit",
    type=click.IntRange(1),
    show_default="every problem",
    help="Built-in set: only its first N problems.",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Write the audit report as JSON.",
)
@click.option(
    "--timeout", type=float, default=300.0, show_default=True, help="Seconds allowed per request."
)
@bootstrap_seed
@chatter_options
@store_option
def judge_audit_cmd(**kw: Any) -> None:
    """How well a judge's ratings separate answers that pass their tests from ones that fail.

    \b
    Examples:
      codal-eval judge-audit --judge gpt-4 --limit 40
      codal-eval judge-audit --judge smollm2 --run my-run --json audit.json
    """
    from .config import backend_options
    from .judging import auditor

    audit = auditor()
    store = _store(kw["store"])
    with _working(str(store.path), kw["quiet"], kw["verbose"]) as (progress, _log):
        result = audit(
            store,
            judge=kw["judge"],
            judge_options=backend_options(kw["judge_kv"], kw["judge_base_url"], "-J"),
            judge_templates=kw["judge_templates"],
            run=kw["run_id"],
            preference=kw["preference"],
            data=kw["data"],
            limit=kw["limit"],
            concurrency=kw["judge_concurrency"],
            timeout_s=kw["timeout"],
            seed=kw["bootstrap_seed"],
            progress=progress,
        )
    if kw["json_path"]:
        result.write_json(kw["json_path"])
    _console().print(result.renderable())


@cli.command("plugins")
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
    _console().print(fit(cols, rows, width(), title="codal-eval plugins"))


def _register_runs() -> None:
    from .cli_runs import runs_group

    cli.add_command(runs_group)


_register_runs()


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
